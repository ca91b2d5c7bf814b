//! The readable summary of one `.kplug/stats` snapshot (`kplugfs stats MOUNT`, and each
//! redraw of `--watch`), rendered from the typed schema.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use kplug_daemon::monitor::schema::{LatencyUs, Stats};
use kplug_engine::PluginState;

use super::units::{human_bytes, mib, pct};

fn lat(l: &LatencyUs) -> String {
    format!(
        "p50 {}us  p90 {}us  p99 {}us  max {}us",
        l.p50, l.p90, l.p99, l.max
    )
}

fn state(s: PluginState) -> &'static str {
    match s {
        PluginState::Loading => "loading",
        PluginState::Active => "active",
        PluginState::Failed => "failed",
        PluginState::Disabled => "disabled",
    }
}

/// FUSE read requests and bytes (0 before the first read).
fn fuse_reads(doc: &Stats) -> (u64, u64) {
    doc.fuse.get("read").map_or((0, 0), |r| (r.count, r.bytes))
}

/// The readable summary of one snapshot; with `prev` (the snapshot one interval earlier),
/// a first section of rates over that interval.
pub fn summary(mnt: &Path, doc: &Stats, prev: Option<&Stats>) -> String {
    let mut s = String::new();
    let up = Duration::from_secs(doc.uptime_ms / 1000);
    let at = UNIX_EPOCH + Duration::from_millis(doc.time_unix_ms);
    let _ = writeln!(
        s,
        "kplugfs stats {}   up {}   at {}",
        mnt.display(),
        humantime::format_duration(up),
        humantime::format_rfc3339_seconds(at)
    );
    if let Some(prev) = prev {
        let d = |now: u64, before: u64| now.saturating_sub(before);
        let dt_ms = d(doc.time_unix_ms, prev.time_unix_ms).max(1);
        let secs = dt_ms as f64 / 1000.0;
        let ((reads, read_bytes), (reads0, read_bytes0)) = (fuse_reads(doc), fuse_reads(prev));
        let _ = writeln!(
            s,
            "last {:.1}s   hit ratio {}   read {:.1} MiB/s ({} req/s)   backend {:.1} MiB/s ({:.0} reads/s)   prefetch accuracy {}",
            secs,
            pct(
                d(doc.cache.hits, prev.cache.hits),
                d(doc.cache.misses, prev.cache.misses)
            ),
            mib(d(read_bytes, read_bytes0)) / secs,
            (d(reads, reads0) as f64 / secs).round(),
            mib(d(doc.backend.bytes, prev.backend.bytes)) / secs,
            d(doc.backend.reads, prev.backend.reads) as f64 / secs,
            pct(
                d(doc.prefetch.used_blocks, prev.prefetch.used_blocks),
                d(doc.prefetch.wasted_blocks, prev.prefetch.wasted_blocks)
            ),
        );
    }
    let _ = writeln!(s);
    let c = &doc.cache;
    let _ = writeln!(
        s,
        "cache      hit ratio {}   hits {}   misses {}   resident {}/{} blocks of {}   evictions {}   admission refusals {}",
        pct(c.hits, c.misses),
        c.hits,
        c.misses,
        c.resident_blocks,
        c.capacity_blocks,
        human_bytes(c.block_size),
        c.evictions,
        c.admission_refusals,
    );
    let p = &doc.prefetch;
    let _ = writeln!(
        s,
        "prefetch   accuracy {}   issued {}   completed {}   used {}   wasted {}   dropped {}",
        pct(p.used_blocks, p.wasted_blocks),
        p.issued_blocks,
        p.completed_blocks,
        p.used_blocks,
        p.wasted_blocks,
        p.dropped_blocks,
    );
    let _ = writeln!(
        s,
        "backend    reads {}   bytes {}   latency {}",
        doc.backend.reads,
        human_bytes(doc.backend.bytes),
        lat(&doc.backend.latency_us),
    );
    if let Some(h) = &doc.kernel_hints {
        let _ = writeln!(
            s,
            "hints      {}   forwarded {}   bytes {}   errors {}",
            h.backend,
            h.forwarded,
            human_bytes(h.bytes),
            h.errors,
        );
    }
    if let Some(st) = &doc.store {
        let _ = writeln!(s, "store      {}", st.source);
        for (kind, k) in &st.requests {
            let _ = writeln!(
                s,
                "  {kind:<18} requests {}   retries {}   errors {}   bytes {}   latency {}",
                k.requests,
                k.retries,
                k.errors,
                human_bytes(k.bytes),
                lat(&k.latency_us),
            );
        }
    }
    let a = &doc.active;
    let _ = writeln!(
        s,
        "policies   eviction {}  admission {}  prefetch {}",
        a.eviction, a.admission, a.prefetch
    );
    for (name, p) in &doc.plugins {
        let _ = writeln!(
            s,
            "plugin     {name}: {}   calls {}   faults {}   time in hooks {} us",
            state(p.state),
            p.calls,
            p.faults,
            p.time_ns / 1000,
        );
    }
    if !doc.scopes.is_empty() {
        let _ = writeln!(
            s,
            "\nscopes\n  {:<12} {:<16} {:>14} {:>10} {:>10} {:>10} {:>7}  policies",
            "name", "path", "resident/share", "hits", "misses", "evictions", "hit %"
        );
        for (name, sc) in &doc.scopes {
            let total = sc.hits + sc.misses;
            let ratio = if total == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", 100.0 * sc.hits as f64 / total as f64)
            };
            let inherited = if sc.inherited.is_empty() {
                String::new()
            } else {
                let roles: Vec<String> = sc
                    .inherited
                    .iter()
                    .map(|r| {
                        serde_json::to_value(r)
                            .map_or(String::new(), |v| v.as_str().unwrap_or("").to_string())
                    })
                    .collect();
                format!(" (inherited: {})", roles.join(", "))
            };
            let _ = writeln!(
                s,
                "  {:<12} {:<16} {:>14} {:>10} {:>10} {:>10} {:>7}  {} / {} / {}{inherited}",
                name,
                sc.path
                    .as_deref()
                    .map_or("-".to_string(), |p| format!("/{p}")),
                format!("{}/{}", sc.resident_blocks, sc.share_blocks),
                sc.hits,
                sc.misses,
                sc.evictions,
                ratio,
                sc.active.eviction,
                sc.active.admission,
                sc.active.prefetch,
            );
        }
    }
    let mut ops: Vec<_> = doc.fuse.iter().collect();
    ops.sort_by_key(|(name, v)| (std::cmp::Reverse(v.count), name.as_str()));
    if !ops.is_empty() {
        let _ = writeln!(s, "\nFUSE ops (top by requests)");
        let _ = writeln!(
            s,
            "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "errors", "p50 us", "p90 us", "p99 us", "max us"
        );
        for (name, v) in ops.iter().take(8) {
            let l = &v.latency_us;
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
                name, v.count, v.errors, l.p50, l.p90, l.p99, l.max,
            );
        }
    }
    if let Some(h) = &doc.history {
        let err = h
            .error
            .as_deref()
            .map(|e| format!("   DISABLED: {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nhistory    {} every {} ms, {} rows written{err}",
            h.path, h.period_ms, h.rows_written,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_daemon::monitor::schema::{
        ActiveRoles, BackendStats, CacheCounters, FuseOpStats, HintStats, HistoryInfo, PluginStats,
        PrefetchCounters, StoreKindStats, StoreStats,
    };

    fn latency(base: u64) -> LatencyUs {
        LatencyUs {
            p50: base,
            p90: base + 1,
            p99: base + 2,
            max: base + 3,
            mean: base,
            histogram: None,
        }
    }

    fn doc(t: u64, hits: u64, misses: u64, bytes: u64) -> Stats {
        Stats {
            time_unix_ms: t,
            uptime_ms: 3000,
            cache: CacheCounters {
                hits,
                misses,
                resident_blocks: 3,
                capacity_blocks: 8,
                block_size: 131_072,
                ..Default::default()
            },
            prefetch: PrefetchCounters {
                used_blocks: 3,
                wasted_blocks: 1,
                ..Default::default()
            },
            backend: BackendStats {
                reads: misses,
                bytes: misses << 17,
                latency_us: latency(1),
                ..Default::default()
            },
            fuse: [
                (
                    "read".to_string(),
                    FuseOpStats {
                        count: 9,
                        bytes,
                        latency_us: latency(5),
                        ..Default::default()
                    },
                ),
                (
                    "getattr".to_string(),
                    FuseOpStats {
                        count: 9,
                        ..Default::default()
                    },
                ),
            ]
            .into(),
            active: ActiveRoles {
                eviction: "lru".into(),
                admission: "builtin:admit-all".into(),
                prefetch: "builtin:readahead".into(),
            },
            plugins: [(
                "lru".to_string(),
                PluginStats {
                    active_roles: vec![],
                    calls: 12,
                    faults: 0,
                    governor: false,
                    probe: false,
                    roles: vec![],
                    state: PluginState::Active,
                    time_ns: 5000,
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn summary_with_previous_shows_interval_rates() {
        let prev = doc(1000, 10, 10, 0);
        let now = doc(3000, 19, 11, 8 << 20);
        let s = summary(Path::new("/mnt"), &now, Some(&prev));
        assert!(s.contains("last 2.0s   hit ratio 90.0%"), "{s}");
        assert!(s.contains("read 4.0 MiB/s"), "{s}");
        assert!(s.contains("hit ratio 63.3%"), "{s}");
        assert!(s.contains("resident 3/8 blocks of 128.0 KiB"), "{s}");
        assert!(s.contains("accuracy 75.0%"), "{s}");
        assert!(
            s.contains("eviction lru  admission builtin:admit-all"),
            "{s}"
        );
        assert!(s.contains("plugin     lru: active   calls 12"), "{s}");
        assert!(s.contains("  read "), "{s}");
        assert!(!s.contains("hints"), "{s}");
        assert!(!s.contains("\nhistory"), "{s}");
        assert!(!s.contains("scopes"), "{s}");
    }

    #[test]
    fn summary_shows_each_scope() {
        let mut d = doc(1000, 10, 10, 0);
        d.scopes.insert(
            "hot".into(),
            kplug_daemon::monitor::schema::ScopeStats {
                active: ActiveRoles {
                    eviction: "lru".into(),
                    admission: "builtin:admit-all".into(),
                    prefetch: "builtin:readahead".into(),
                },
                hits: 30,
                misses: 10,
                evictions: 4,
                inherited: vec![serde_json::from_str("\"eviction\"").unwrap()],
                path: Some("data/hot".into()),
                resident_blocks: 5,
                share: "50%".into(),
                share_blocks: 4,
                ..Default::default()
            },
        );
        let s = summary(Path::new("/mnt"), &d, None);
        assert!(s.contains("\nscopes\n"), "{s}");
        assert!(s.contains("hot"), "{s}");
        assert!(s.contains("/data/hot"), "{s}");
        assert!(s.contains("5/4"), "{s}");
        assert!(s.contains("75.0"), "{s}");
        assert!(
            s.contains("lru / builtin:admit-all / builtin:readahead (inherited: eviction)"),
            "{s}"
        );
    }

    #[test]
    fn summary_lines_are_the_documents_fields() {
        let mut d = doc(1_800_000_000_000, 30, 10, 0);
        d.kernel_hints = Some(HintStats {
            backend: "fadvise".into(),
            forwarded: 4,
            bytes: 3 << 20,
            errors: 1,
        });
        d.history = Some(HistoryInfo {
            error: Some("disk full".into()),
            path: "/var/h.db".into(),
            period_ms: 1000,
            retention_ms: 60_000,
            rows_written: 17,
        });
        d.store = Some(StoreStats {
            requests: [(
                "get".to_string(),
                StoreKindStats {
                    bytes: 2 << 20,
                    errors: 1,
                    latency_us: latency(900),
                    requests: 10,
                    retries: 2,
                },
            )]
            .into(),
            source: "s3://b/p/".into(),
        });
        let s = summary(Path::new("/mnt"), &d, None);
        let want = "\
kplugfs stats /mnt   up 3s   at 2027-01-15T08:00:00Z

cache      hit ratio 75.0%   hits 30   misses 10   resident 3/8 blocks of 128.0 KiB   evictions 0   admission refusals 0
prefetch   accuracy 75.0%   issued 0   completed 0   used 3   wasted 1   dropped 0
backend    reads 10   bytes 1.2 MiB   latency p50 1us  p90 2us  p99 3us  max 4us
hints      fadvise   forwarded 4   bytes 3.0 MiB   errors 1
store      s3://b/p/
  get                requests 10   retries 2   errors 1   bytes 2.0 MiB   latency p50 900us  p90 901us  p99 902us  max 903us
policies   eviction lru  admission builtin:admit-all  prefetch builtin:readahead
plugin     lru: active   calls 12   faults 0   time in hooks 5 us

FUSE ops (top by requests)
  op                    count   errors    p50 us    p90 us    p99 us    max us
  getattr                   9        0         0         0         0         0
  read                      9        0         5         6         7         8

history    /var/h.db every 1000 ms, 17 rows written   DISABLED: disk full
";
        assert_eq!(s, want);
    }
}
