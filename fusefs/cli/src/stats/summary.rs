//! The readable summary of one `.kplug/stats` snapshot (`kplugfs stats MOUNT`, and each
//! redraw of `--watch`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::units::{human_bytes, mib, pct};

fn u(doc: &Value, ptr: &str) -> u64 {
    doc.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn lat(doc: &Value, ptr: &str) -> String {
    let l = |k: &str| u(doc, &format!("{ptr}/{k}"));
    format!(
        "p50 {}us  p90 {}us  p99 {}us  max {}us",
        l("p50"),
        l("p90"),
        l("p99"),
        l("max")
    )
}

fn active_line(doc: &Value) -> String {
    ["eviction", "admission", "prefetch"]
        .iter()
        .map(|r| {
            let v = doc
                .pointer(&format!("/active/{r}"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!("{r} {v}")
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The readable summary of one snapshot; with `prev` (the snapshot one interval earlier),
/// a first section of rates over that interval.
pub fn summary(mnt: &Path, doc: &Value, prev: Option<&Value>) -> String {
    let mut s = String::new();
    let up = Duration::from_secs(u(doc, "/uptime_ms") / 1000);
    let at = UNIX_EPOCH + Duration::from_millis(u(doc, "/time_unix_ms"));
    let _ = writeln!(
        s,
        "kplugfs stats {}   up {}   at {}",
        mnt.display(),
        humantime::format_duration(up),
        humantime::format_rfc3339_seconds(at)
    );
    if let Some(prev) = prev {
        let d = |p: &str| u(doc, p).saturating_sub(u(prev, p));
        let dt_ms = d("/time_unix_ms").max(1);
        let secs = dt_ms as f64 / 1000.0;
        let _ = writeln!(
            s,
            "last {:.1}s   hit ratio {}   read {:.1} MiB/s ({} req/s)   backend {:.1} MiB/s ({:.0} reads/s)   prefetch accuracy {}",
            secs,
            pct(d("/cache/hits"), d("/cache/misses")),
            mib(d("/fuse/read/bytes")) / secs,
            (d("/fuse/read/count") as f64 / secs).round(),
            mib(d("/backend/bytes")) / secs,
            d("/backend/reads") as f64 / secs,
            pct(d("/prefetch/used_blocks"), d("/prefetch/wasted_blocks")),
        );
    }
    let _ = writeln!(s);
    let (hits, misses) = (u(doc, "/cache/hits"), u(doc, "/cache/misses"));
    let _ = writeln!(
        s,
        "cache      hit ratio {}   hits {hits}   misses {misses}   resident {}/{} blocks of {}   evictions {}   admission refusals {}",
        pct(hits, misses),
        u(doc, "/cache/resident_blocks"),
        u(doc, "/cache/capacity_blocks"),
        human_bytes(u(doc, "/cache/block_size")),
        u(doc, "/cache/evictions"),
        u(doc, "/cache/admission_refusals"),
    );
    let (used, wasted) = (
        u(doc, "/prefetch/used_blocks"),
        u(doc, "/prefetch/wasted_blocks"),
    );
    let _ = writeln!(
        s,
        "prefetch   accuracy {}   issued {}   completed {}   used {used}   wasted {wasted}   dropped {}",
        pct(used, wasted),
        u(doc, "/prefetch/issued_blocks"),
        u(doc, "/prefetch/completed_blocks"),
        u(doc, "/prefetch/dropped_blocks"),
    );
    let _ = writeln!(
        s,
        "backend    reads {}   bytes {}   latency {}",
        u(doc, "/backend/reads"),
        human_bytes(u(doc, "/backend/bytes")),
        lat(doc, "/backend/latency_us"),
    );
    if let Some(h) = doc.get("kernel_hints").filter(|h| !h.is_null()) {
        let _ = writeln!(
            s,
            "hints      {}   forwarded {}   bytes {}   errors {}",
            h["backend"].as_str().unwrap_or("?"),
            u(h, "/forwarded"),
            human_bytes(u(h, "/bytes")),
            u(h, "/errors"),
        );
    }
    let _ = writeln!(s, "policies   {}", active_line(doc));
    if let Some(plugins) = doc.get("plugins").and_then(Value::as_object) {
        for (name, p) in plugins {
            let _ = writeln!(
                s,
                "plugin     {name}: {}   calls {}   faults {}   time in hooks {} us",
                p["state"].as_str().unwrap_or("?"),
                u(p, "/calls"),
                u(p, "/faults"),
                u(p, "/time_ns") / 1000,
            );
        }
    }
    if let Some(fuse) = doc.get("fuse").and_then(Value::as_object) {
        let mut ops: Vec<(&String, &Value)> = fuse.iter().collect();
        ops.sort_by_key(|(name, v)| (std::cmp::Reverse(u(v, "/count")), name.to_string()));
        if !ops.is_empty() {
            let _ = writeln!(s, "\nFUSE ops (top by requests)");
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
                "op", "count", "errors", "p50 us", "p90 us", "p99 us", "max us"
            );
            for (name, v) in ops.iter().take(8) {
                let _ = writeln!(
                    s,
                    "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
                    name,
                    u(v, "/count"),
                    u(v, "/errors"),
                    u(v, "/latency_us/p50"),
                    u(v, "/latency_us/p90"),
                    u(v, "/latency_us/p99"),
                    u(v, "/latency_us/max"),
                );
            }
        }
    }
    if let Some(h) = doc.get("history") {
        let err = h["error"]
            .as_str()
            .map(|e| format!("   DISABLED: {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nhistory    {} every {} ms, {} rows written{err}",
            h["path"].as_str().unwrap_or("?"),
            u(h, "/period_ms"),
            u(h, "/rows_written"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_with_previous_shows_interval_rates() {
        let mk = |t: u64, hits: u64, misses: u64, bytes: u64| {
            json!({
                "time_unix_ms": t, "uptime_ms": 3000,
                "cache": {"hits": hits, "misses": misses, "resident_blocks": 3,
                          "capacity_blocks": 8, "block_size": 131072},
                "prefetch": {"used_blocks": 3, "wasted_blocks": 1},
                "backend": {"reads": misses, "bytes": misses << 17,
                            "latency_us": {"p50": 1, "p90": 2, "p99": 3, "max": 4}},
                "fuse": {"read": {"count": 9, "bytes": bytes,
                                  "latency_us": {"p50": 5, "p90": 6, "p99": 7, "max": 8}}},
                "active": {"eviction": "lru", "admission": "builtin:admit-all",
                           "prefetch": "builtin:readahead"},
                "plugins": {"lru": {"state": "active", "calls": 12, "faults": 0,
                                    "time_ns": 5000}},
            })
        };
        let prev = mk(1000, 10, 10, 0);
        let doc = mk(3000, 19, 11, 8 << 20);
        let s = summary(Path::new("/mnt"), &doc, Some(&prev));
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
    }
}
