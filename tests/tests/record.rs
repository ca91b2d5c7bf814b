//! `kplugfs trace record` / `trace stop` on a live mount: the recorded trace holds the reads
//! (with hit flags), writes and prefetches that happened, and reads back with the kplug reader.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::Write;

use kplug_traces::{Format, Op};
use kplugfs_tests::{TestMount, kplugfs};

#[test]
fn record_then_stop_captures_reads_writes_and_hits() {
    let m = TestMount::with_backing(&["--no-kernel-cache", "--block-size", "64KiB"], |b| {
        fs::write(b.join("data"), vec![7u8; 1 << 20]).unwrap();
    });
    let out = m.root.path().join("run.kplug");
    let r = kplugfs(&[
        "trace",
        "record",
        m.mnt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // A second recording while one is on is refused.
    let r2 = kplugfs(&[
        "trace",
        "record",
        m.mnt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!r2.status.success());
    assert_eq!(fs::read(m.m("data")).unwrap().len(), 1 << 20);
    assert_eq!(fs::read(m.m("data")).unwrap().len(), 1 << 20); // second pass: hits
    fs::OpenOptions::new()
        .append(true)
        .open(m.m("data"))
        .unwrap()
        .write_all(b"tail")
        .unwrap();
    let s = kplugfs(&["trace", "stop", m.mnt.to_str().unwrap()]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    assert!(String::from_utf8_lossy(&s.stdout).contains("recorded"));
    let reqs: Vec<_> = kplug_traces::open(&out, Format::Kplug)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let demand: Vec<_> = reqs.iter().filter(|r| !r.flags.is_prefetch()).collect();
    let reads: u64 = demand
        .iter()
        .filter(|r| r.op == Op::Read)
        .map(|r| r.size)
        .sum();
    assert_eq!(reads, 2 << 20, "both passes over the file were recorded");
    assert!(
        demand.iter().any(|r| r.flags.is_hit()),
        "the second pass hit the cache"
    );
    assert!(
        demand.iter().any(|r| r.op == Op::Write),
        "the append was recorded"
    );
    let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(m.m("data")).unwrap());
    assert!(reqs.iter().all(|r| r.stream == ino));
    // Stopping again is an error with a clear message.
    let s = kplugfs(&["trace", "stop", m.mnt.to_str().unwrap()]);
    assert!(!s.status.success());
    assert!(String::from_utf8_lossy(&s.stderr).contains("no recording in progress"));
}

/// The scenario of issue 20: three reads of an 8 MiB file, recorded, replay per block of the
/// mount (the trace's header carries its block size) without any --split-blocks.
#[test]
fn a_recorded_trace_replays_per_block_by_default() {
    let m = TestMount::with_backing(&["--no-kernel-cache"], |b| {
        fs::write(b.join("big"), vec![5u8; 8 << 20]).unwrap();
    });
    let out = m.root.path().join("t.trace");
    let mnt = m.mnt.to_str().unwrap();
    let r = kplugfs(&["trace", "record", mnt, "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for _ in 0..3 {
        assert_eq!(fs::read(m.m("big")).unwrap().len(), 8 << 20);
    }
    assert!(kplugfs(&["trace", "stop", mnt]).status.success());
    assert_eq!(
        kplug_traces::open(&out, Format::Kplug)
            .unwrap()
            .block_size(),
        Some(128 << 10)
    );
    let sim = |extra: &[&str]| {
        let mut args = vec![
            "sim",
            "--trace",
            out.to_str().unwrap(),
            "--format",
            "kplug",
            "--policy",
            "lru",
        ];
        args.extend_from_slice(extra);
        kplugfs(&args)
    };
    let s = sim(&["--cache-size", "0.1", "--json"]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let row: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&s.stdout).lines().next().unwrap()).unwrap();
    // 8 MiB in 128 KiB blocks: 64 blocks, a 6-block cache, LRU misses every access.
    assert_eq!(row["cache_objects"], 6, "{row}");
    assert_eq!(row["miss_ratio"], 1.0, "{row}");
    let table = sim(&["--cache-size", "1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("64 unique ids (blocks of 131072 bytes)"),
        "{text}"
    );
    // An explicit --split-blocks still wins, and a too-small size says what to do.
    let s = sim(&["--split-blocks", "8MiB", "--cache-size", "0.1"]);
    assert!(!s.status.success());
    let err = String::from_utf8_lossy(&s.stderr);
    assert!(
        err.contains("1 unique ids is 0 objects") && err.contains("--cache-objects"),
        "{err}"
    );
}
