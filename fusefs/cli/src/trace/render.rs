//! The text `kplugfs trace info` and `kplugfs trace replay` print, and the number formats
//! they share.
//!
//! Design: pure functions from the libraries' results to strings (the JSON forms are the
//! results serialized), so the wording is tested here without a trace or a mount.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use kplug_traces::Format;
use kplug_traces::convert::InfoReport;
use kplug_traces::replay::ReplaySummary;

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `512 B`, `4 KiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// The text `kplugfs trace info` prints.
pub fn info_text(path: &Path, report: &InfoReport) -> String {
    let InfoReport {
        info: i,
        format,
        skipped,
    } = report;
    let (format, skipped) = (*format, *skipped);
    let pct = |n: u64| {
        if i.requests == 0 {
            0.0
        } else {
            100.0 * n as f64 / i.requests as f64
        }
    };
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "trace         {} ({format})", path.display());
    let _ = writeln!(w, "requests      {}", thousands(i.requests));
    if skipped > 0 {
        let _ = writeln!(
            w,
            "skipped       {} (by the format's rules)",
            thousands(skipped)
        );
    }
    let _ = writeln!(w, "unique ids    {}", thousands(i.unique_ids));
    let _ = writeln!(
        w,
        "reads         {} ({:.1}%), {}",
        thousands(i.reads),
        pct(i.reads),
        human_bytes(i.read_bytes)
    );
    let _ = writeln!(
        w,
        "writes        {} ({:.1}%), {}",
        thousands(i.writes),
        pct(i.writes),
        human_bytes(i.write_bytes)
    );
    let _ = writeln!(
        w,
        "bytes         {} ({}); working set {} (first-seen size of each id)",
        human_bytes(i.bytes),
        thousands(i.bytes),
        human_bytes(i.unique_bytes)
    );
    match i.sequentiality {
        Some(f) => {
            let _ = writeln!(
                w,
                "sequential    {:.1}% ({} requests continue the previous request of their stream; {} stream{})",
                100.0 * f,
                thousands(i.sequential_requests),
                thousands(i.streams),
                if i.streams == 1 { "" } else { "s" }
            );
        }
        None => {
            let _ = writeln!(w, "sequential    n/a (the format has no byte offsets)");
        }
    }
    if i.hits > 0 || i.prefetches > 0 || format == Format::Kplug {
        let _ = writeln!(
            w,
            "recorded      {} hits ({:.1}%), {} prefetches",
            thousands(i.hits),
            pct(i.hits),
            thousands(i.prefetches)
        );
    }
    if i.duration_ns > 0 {
        let _ = writeln!(
            w,
            "duration      {}",
            humantime::format_duration(Duration::from_secs(i.duration_ns / 1_000_000_000))
        );
    }
    if !i.size_histogram.is_empty() {
        let _ = writeln!(w, "request sizes");
        let max = i.size_histogram.iter().map(|b| b.count).max().unwrap_or(1);
        for b in &i.size_histogram {
            let range = if b.min == b.max {
                human_bytes(b.min)
            } else {
                format!("{} - {}", human_bytes(b.min), human_bytes(b.max + 1))
            };
            let bar_len = ((b.count as f64 / max as f64) * 30.0).ceil() as usize;
            let _ = writeln!(
                w,
                "  {range:>19}  {:>12}  {:>5.1}%  {}",
                thousands(b.count),
                pct(b.count),
                "#".repeat(bar_len)
            );
        }
    }
    s
}

/// The text `kplugfs trace replay` prints.
pub fn replay_text(r: &ReplaySummary) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "replayed      {} requests of {} ({}) in {}",
        thousands(r.requests),
        r.trace.display(),
        r.format,
        r.mount.display()
    );
    let _ = writeln!(
        w,
        "              {} reads ({}), {} writes ({}){}{}; {} thread{}",
        thousands(r.reads),
        human_bytes(r.bytes_read),
        thousands(r.writes),
        human_bytes(r.bytes_written),
        if r.skipped_writes > 0 {
            format!(", {} writes skipped", thousands(r.skipped_writes))
        } else {
            String::new()
        },
        if r.empty_requests > 0 {
            format!(", {} empty requests", thousands(r.empty_requests))
        } else {
            String::new()
        },
        r.threads,
        if r.threads == 1 { "" } else { "s" }
    );
    let sc = &r.scratch;
    let _ = writeln!(
        w,
        "scratch       {} files x {} in {}{} ({} blocks of {}{})",
        sc.files,
        human_bytes(sc.file_size),
        sc.dir.display(),
        if sc.reused { ", reused" } else { "" },
        thousands(sc.unique_blocks),
        human_bytes(sc.block_size),
        if sc.wrapped {
            format!(
                ", wrapped onto {} slots by --max-size: blocks share slots",
                thousands(sc.slots)
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        w,
        "throughput    {:.0} requests/s, {:.1} MiB/s ({:.2} s)",
        r.requests_per_sec, r.mib_per_sec, r.seconds
    );
    if let Some(l) = &r.latency {
        let us = |v: f64| human_duration_ns((v * 1000.0) as u64);
        let _ = writeln!(
            w,
            "latency       p50 {}  p90 {}  p99 {}  max {}",
            us(l.p50_us),
            us(l.p90_us),
            us(l.p99_us),
            us(l.max_us)
        );
    }
    match &r.cache {
        Some(c) => {
            let ratio = c
                .hit_ratio
                .map_or("n/a (no block accesses)".to_string(), |r| {
                    format!("{:.1}%", r * 100.0)
                });
            let _ = writeln!(
                w,
                "hit ratio     {ratio} ({} block hits, {} misses in .kplug/status)",
                thousands(c.hits),
                thousands(c.misses)
            );
        }
        None => {
            let _ = writeln!(
                w,
                "hit ratio     n/a ({} has no .kplug/status: not a kplugfs mount, or its cache is off)",
                r.mount.display()
            );
        }
    }
    if r.mismatches == 0 {
        let _ = writeln!(
            w,
            "verified      all {} reads returned the expected bytes",
            thousands(r.verified_reads)
        );
    } else {
        let _ = writeln!(
            w,
            "WRONG DATA    {} of {} reads; first: {}",
            thousands(r.mismatches),
            thousands(r.verified_reads),
            r.first_mismatch.as_deref().unwrap_or("?")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(113_872), "113,872");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn info_of_a_small_trace() {
        use kplug_traces::{Request, TraceStats};
        let mut stats = TraceStats::new();
        for (id, size) in [(1, 4096), (2, 100), (1, 4096)] {
            stats.add(&Request::object(id, size));
        }
        let report = InfoReport {
            info: stats.finish(),
            format: Format::Txt,
            skipped: 2,
        };
        assert_eq!(
            info_text(Path::new("t.txt"), &report),
            "trace         t.txt (txt)
requests      3
skipped       2 (by the format's rules)
unique ids    2
reads         3 (100.0%), 8.1 KiB
writes        0 (0.0%), 0 B
bytes         8.1 KiB (8,292); working set 4.1 KiB (first-seen size of each id)
sequential    n/a (the format has no byte offsets)
request sizes
         64 B - 128 B             1   33.3%  ###############
        4 KiB - 8 KiB             2   66.7%  ##############################
"
        );
    }

    fn summary() -> ReplaySummary {
        use kplug_traces::replay::{CacheDelta, Latency, ScratchInfo};
        ReplaySummary {
            trace: "traces/data/cloudPhysicsIO.vscsi".into(),
            format: Format::Vscsi,
            mount: "/mnt/data".into(),
            requests: 4153,
            reads: 4153,
            writes: 0,
            skipped_writes: 15_847,
            empty_requests: 0,
            bytes_read: 262_877_364,
            bytes_written: 0,
            seconds: 9.2,
            requests_per_sec: 452.0,
            mib_per_sec: 27.3,
            latency: Some(Latency {
                p50_us: 1340.0,
                p90_us: 4040.0,
                p99_us: 12850.0,
                max_us: 86870.0,
            }),
            cache: Some(CacheDelta {
                hits: 7509,
                misses: 2782,
                hit_ratio: Some(7509.0 / 10291.0),
            }),
            verified_reads: 4153,
            mismatches: 0,
            first_mismatch: None,
            threads: 1,
            scratch: ScratchInfo {
                dir: "/mnt/data/.kplugfs-replay".into(),
                files: 16,
                file_size: 4 << 20,
                block_size: 64 << 10,
                unique_blocks: 10_713,
                slots: 1024,
                wrapped: true,
                reused: false,
            },
        }
    }

    #[test]
    fn replay_text_is_the_one_in_the_docs() {
        let docs = include_str!("../../../../docs/traces.md");
        let start = docs
            .find("replayed      4,153")
            .expect("the example in docs/traces.md");
        let example = &docs[start..start + docs[start..].find("```").unwrap()];
        assert_eq!(replay_text(&summary()), example);
    }

    #[test]
    fn replay_text_without_cache_and_with_wrong_bytes() {
        let r = ReplaySummary {
            cache: None,
            mismatches: 3,
            first_mismatch: Some("request 9: f0002 at 0: byte 5 is 0x00, want 0x17".into()),
            ..summary()
        };
        let text = replay_text(&r);
        assert!(text.contains(
            "hit ratio     n/a (/mnt/data has no .kplug/status: not a kplugfs mount, or its \
             cache is off)\n"
        ));
        assert!(text.ends_with(
            "WRONG DATA    3 of 4,153 reads; first: request 9: f0002 at 0: byte 5 is 0x00, \
             want 0x17\n"
        ));
        let idle = ReplaySummary {
            cache: Some(kplug_traces::replay::CacheDelta {
                hits: 0,
                misses: 0,
                hit_ratio: None,
            }),
            ..summary()
        };
        assert!(replay_text(&idle).contains(
            "hit ratio     n/a (no block accesses) (0 block hits, 0 misses in .kplug/status)"
        ));
    }
}
