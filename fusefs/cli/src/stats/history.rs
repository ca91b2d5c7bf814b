//! `kplugfs stats --history`: the samples of the history database as intervals (counter
//! changes between samples, merged into buckets) and the table of them; `--since`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use kplug_daemon::monitor::history::Sample;

use super::units::{mib, pct};

/// Parse `--since`: a duration back from `now`, or an RFC 3339 time. Returns ms since epoch.
pub fn parse_since(s: &str, now: SystemTime) -> Result<u64> {
    let t = if let Ok(d) = humantime::parse_duration(s) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else {
        bail!(
            "--since {s:?}: expected a duration (10m, 2h) or an RFC 3339 time (2026-11-26T18:00:00Z)"
        )
    };
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0))
}
/// Counter changes between samples (or over a bucket of them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// End, ms since the epoch.
    pub end_ms: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Bytes returned by FUSE reads.
    pub read_bytes: u64,
    /// Backend reads.
    pub backend_reads: u64,
    /// Backend bytes.
    pub backend_bytes: u64,
    /// Prefetched blocks used.
    pub prefetch_used: u64,
    /// Prefetched blocks wasted.
    pub prefetch_wasted: u64,
}

impl Interval {
    /// The change from `a` to `b`; when `b` is from a later mount (counters restarted), its
    /// counters since that mount began.
    pub fn between(a: &Sample, b: &Sample) -> Self {
        let reset = a.started_unix_ms != b.started_unix_ms;
        let d = |x: u64, y: u64| if reset || y < x { y } else { y - x };
        Interval {
            start_ms: a.time_ms,
            end_ms: b.time_ms,
            hits: d(a.cache_hits, b.cache_hits),
            misses: d(a.cache_misses, b.cache_misses),
            read_bytes: d(a.fuse_read_bytes, b.fuse_read_bytes),
            backend_reads: d(a.backend_reads, b.backend_reads),
            backend_bytes: d(a.backend_bytes, b.backend_bytes),
            prefetch_used: d(a.prefetch_used_blocks, b.prefetch_used_blocks),
            prefetch_wasted: d(a.prefetch_wasted_blocks, b.prefetch_wasted_blocks),
        }
    }

    fn merge(&mut self, o: &Interval) {
        self.end_ms = o.end_ms;
        self.hits += o.hits;
        self.misses += o.misses;
        self.read_bytes += o.read_bytes;
        self.backend_reads += o.backend_reads;
        self.backend_bytes += o.backend_bytes;
        self.prefetch_used += o.prefetch_used;
        self.prefetch_wasted += o.prefetch_wasted;
    }

    fn secs(&self) -> f64 {
        (self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0).max(1e-3)
    }

    /// Hits over accesses, `None` without accesses.
    pub fn hit_ratio(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    /// FUSE read throughput, MiB/s.
    pub fn read_mib_s(&self) -> f64 {
        mib(self.read_bytes) / self.secs()
    }

    /// Backend read throughput, MiB/s.
    pub fn backend_mib_s(&self) -> f64 {
        mib(self.backend_bytes) / self.secs()
    }
}

/// Most rows of the history table: more intervals are merged into this many buckets.
pub const MAX_TABLE_ROWS: usize = 40;

/// The intervals between consecutive samples, merged into at most `max` buckets of equal
/// sample counts.
pub fn intervals(samples: &[Sample], max: usize) -> Vec<Interval> {
    let all: Vec<Interval> = samples
        .windows(2)
        .map(|w| Interval::between(&w[0], &w[1]))
        .collect();
    let per = all.len().div_ceil(max.max(1)).max(1);
    all.chunks(per)
        .map(|c| {
            let mut it = c[0];
            for o in &c[1..] {
                it.merge(o);
            }
            it
        })
        .collect()
}

/// The history table.
pub fn history_table(samples: &[Sample]) -> String {
    let mut s = String::new();
    let rows = intervals(samples, MAX_TABLE_ROWS);
    let per = (samples.len().saturating_sub(1)).div_ceil(MAX_TABLE_ROWS.max(1));
    if per > 1 {
        let _ = writeln!(s, "{} samples, {per} intervals per row", samples.len());
    }
    // Sub-second samples get milliseconds in their time stamps.
    let millis = rows.iter().any(|r| r.end_ms - r.start_ms < 1000);
    let tw = if millis { 24 } else { 20 };
    let _ = writeln!(
        s,
        "{:<tw$} {:>7} {:>9} {:>10} {:>11} {:>13} {:>9}",
        "time (UTC)",
        "span s",
        "hit ratio",
        "read MiB/s",
        "backend r/s",
        "backend MiB/s",
        "prefetch"
    );
    for r in rows {
        let t = UNIX_EPOCH + Duration::from_millis(r.end_ms);
        let t = if millis {
            humantime::format_rfc3339_millis(t).to_string()
        } else {
            humantime::format_rfc3339_seconds(t).to_string()
        };
        let ratio = r
            .hit_ratio()
            .map_or("-".to_string(), |h| format!("{:.1}%", h * 100.0));
        let _ = writeln!(
            s,
            "{:<tw$} {:>7.1} {:>9} {:>10.2} {:>11.1} {:>13.2} {:>9}",
            t,
            r.secs(),
            ratio,
            r.read_mib_s(),
            r.backend_reads as f64 / r.secs(),
            r.backend_mib_s(),
            pct(r.prefetch_used, r.prefetch_wasted),
        );
    }
    s
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::stats) fn sample(t: u64, hits: u64, misses: u64, read: u64) -> Sample {
        Sample {
            time_ms: t,
            started_unix_ms: 1000,
            cache_hits: hits,
            cache_misses: misses,
            fuse_read_bytes: read,
            backend_reads: misses,
            backend_bytes: misses << 17,
            prefetch_used_blocks: hits / 2,
            prefetch_wasted_blocks: hits / 4,
            ..Default::default()
        }
    }

    #[test]
    fn intervals_are_deltas_and_merge_into_buckets() {
        let s: Vec<Sample> = (0..=10)
            .map(|i| sample(10_000 + i * 1000, i * 30, i * 10, i << 20))
            .collect();
        let one = intervals(&s, 100);
        assert_eq!(one.len(), 10);
        assert_eq!(one[0].hits, 30);
        assert_eq!(one[0].hit_ratio(), Some(0.75));
        assert!((one[3].read_mib_s() - 1.0).abs() < 1e-9);
        let merged = intervals(&s, 3);
        assert_eq!(merged.len(), 3); // 4 + 4 + 2 intervals
        assert_eq!(merged[0].hits, 120);
        assert_eq!(merged[0].end_ms - merged[0].start_ms, 4000);
        assert_eq!(merged[2].end_ms, 20_000);
        assert_eq!(merged.iter().map(|m| m.misses).sum::<u64>(), 100);
    }

    #[test]
    fn a_restarted_mount_is_a_reset_not_a_negative_rate() {
        let a = sample(5000, 100, 100, 0);
        let mut b = sample(6000, 7, 3, 0);
        b.started_unix_ms = 5500;
        let i = Interval::between(&a, &b);
        assert_eq!((i.hits, i.misses), (7, 3));
    }

    #[test]
    fn since_takes_durations_and_timestamps() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            parse_since("10m", now).unwrap(),
            (1_800_000_000 - 600) * 1000
        );
        let t = parse_since("2026-11-26T18:00:00Z", now).unwrap();
        assert_eq!(t, 1_795_716_000_000);
        let err = parse_since("yesterday-ish", now).unwrap_err().to_string();
        assert!(err.contains("expected a duration"), "{err}");
    }

    #[test]
    fn table_shows_ratio_throughput_and_accuracy() {
        let s = vec![sample(10_000, 0, 0, 0), sample(12_000, 30, 10, 4 << 20)];
        let t = history_table(&s);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("1970-01-01T00:00:12Z"), "{t}");
        // 30/40 hits, 4 MiB in 2 s, 10 backend reads in 2 s, 15/(15+7) prefetch.
        for want in ["75.0%", "2.00", "5.0", "68.2%"] {
            assert!(row.contains(want), "{want} in {row}");
        }
    }
}
