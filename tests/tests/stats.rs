//! The monitoring plane through a live mount: `.kplug/stats`, `kplugfs stats` (summary,
//! `--json`, `--watch`), and the SQLite history (`--history-*`, `kplugfs stats --history`).
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kplugfs_tests::{TestMount, kplugfs, kplugfs_bin, pattern};
use serde_json::Value;

const BS: usize = 64 << 10;

/// Every read reaches the daemon; 64 KiB blocks, a 4 MiB cache.
fn mount(extra: &[&str]) -> TestMount {
    let mut args = vec![
        "--cache-size",
        "4MiB",
        "--block-size",
        "64KiB",
        "--no-kernel-cache",
    ];
    args.extend_from_slice(extra);
    TestMount::with_backing(&args, |b| {
        fs::write(b.join("f"), pattern(8 * BS, 1)).unwrap();
        fs::write(b.join("g"), pattern(3 * BS, 2)).unwrap();
    })
}

fn stats(m: &TestMount) -> Value {
    let text = fs::read(m.m(".kplug/stats")).expect("read .kplug/stats");
    serde_json::from_slice(&text).expect(".kplug/stats is JSON")
}

fn u(v: &Value, p: &str) -> u64 {
    v.pointer(p)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{p} is not an integer in {v}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn stats_file_counts_misses_then_hits_on_reread() {
    let m = mount(&[]);
    let mut names: Vec<_> = fs::read_dir(m.m(".kplug"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "metrics", "plugins", "probes", "scopes", "stats", "status", "trace", "views"
        ]
    );
    assert!(fs::write(m.m(".kplug/stats"), b"x").is_err());

    let s0 = stats(&m);
    // The contract fields, all integers.
    for p in [
        "/cache/hits",
        "/cache/misses",
        "/cache/evictions",
        "/cache/resident_blocks",
        "/cache/capacity_blocks",
        "/prefetch/issued_blocks",
        "/prefetch/used_blocks",
        "/prefetch/wasted_blocks",
        "/backend/reads",
        "/backend/bytes",
        "/time_unix_ms",
        "/uptime_ms",
    ] {
        u(&s0, p);
    }
    assert!(s0["plugins"].is_object());
    assert_eq!(u(&s0, "/cache/capacity_blocks"), 64);
    assert_eq!(u(&s0, "/cache/block_size"), BS as u64);

    assert_eq!(fs::read(m.m("f")).unwrap(), pattern(8 * BS, 1));
    std::thread::sleep(Duration::from_millis(300)); // prefetches in flight land
    let s1 = stats(&m);
    assert!(u(&s1, "/cache/misses") >= 1, "{s1}");
    assert!(u(&s1, "/backend/bytes") >= 8 * BS as u64, "{s1}");
    assert_eq!(u(&s1, "/cache/resident_blocks"), 8, "{s1}");
    assert!(u(&s1, "/fuse/read/count") >= 1, "{s1}");
    assert!(u(&s1, "/fuse/read/bytes") >= 8 * BS as u64, "{s1}");
    assert!(u(&s1, "/fuse/lookup/count") >= 1, "{s1}");
    assert!(u(&s1, "/fuse/read/latency_us/max") >= u(&s1, "/fuse/read/latency_us/p50"));
    assert!(u(&s1, "/uptime_ms") >= u(&s0, "/uptime_ms"));

    // The re-read (pages dropped at open by --no-kernel-cache) is served by the block cache:
    // hits only, nothing more from the backend.
    assert_eq!(fs::read(m.m("f")).unwrap(), pattern(8 * BS, 1));
    let s2 = stats(&m);
    assert!(
        u(&s2, "/cache/hits") >= u(&s1, "/cache/hits") + 8,
        "{s1}\n{s2}"
    );
    assert_eq!(u(&s2, "/cache/misses"), u(&s1, "/cache/misses"), "{s2}");
    assert_eq!(u(&s2, "/backend/bytes"), u(&s1, "/backend/bytes"), "{s2}");
    assert!(u(&s2, "/fuse/read/bytes") >= 16 * BS as u64, "{s2}");
    assert!(u(&s2, "/cache/resident_blocks") <= u(&s2, "/cache/capacity_blocks"));

    // Errors are counted per operation.
    assert!(fs::metadata(m.m("missing")).is_err());
    let s3 = stats(&m);
    assert!(u(&s3, "/fuse/lookup/errors") >= 1, "{s3}");
}

#[test]
fn stats_command_prints_summary_and_json() {
    let m = mount(&[]);
    fs::read(m.m("g")).unwrap();
    fs::read(m.m("g")).unwrap();
    let mnt = m.mnt.to_str().unwrap();
    let out = kplugfs(&["stats", mnt]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "hit ratio",
        "resident ",
        "/64 blocks of 64.0 KiB",
        "prefetch   accuracy",
        "backend    reads",
        "policies   eviction builtin:lru  admission builtin:admit-all  prefetch builtin:readahead",
        "FUSE ops (top by requests)",
        "  read ",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    let out = kplugfs(&["stats", mnt, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert!(u(&doc, "/cache/hits") >= 3, "{doc}");
    assert!(u(&doc, "/backend/bytes") >= 3 * BS as u64, "{doc}");

    // Not a kplugfs mount: one line, non-zero exit.
    for (path, want) in [
        (m.backing.to_str().unwrap(), "is not a kplugfs mount"),
        ("/proc", "is not a kplugfs mount"),
        ("/nonexistent/dir", "does not exist"),
    ] {
        let out = kplugfs(&["stats", path]);
        assert!(!out.status.success(), "{path}");
        let err = stderr(&out);
        assert!(err.contains(want), "{path}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let out = kplugfs(&["stats", mnt, "--plot", "x.svg"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--plot applies to --history"));
}

#[test]
fn passthrough_mount_has_no_stats() {
    let m = TestMount::new(&["--cache-size", "0"]);
    let out = kplugfs(&["stats", m.mnt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("without a block cache"),
        "{}",
        stderr(&out)
    );
}

fn spawn_watch(mnt: &Path) -> std::process::Child {
    Command::new(kplugfs_bin())
        .args([
            "stats",
            mnt.to_str().unwrap(),
            "--watch",
            "--interval",
            "100ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kplugfs stats --watch")
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kplugfs stats --watch did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pipe(p: Option<impl Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = p {
        p.read_to_string(&mut s).unwrap();
    }
    s
}

#[test]
fn watch_redraws_until_ctrl_c_or_until_the_mount_goes_away() {
    let m = mount(&[]);
    let mut child = spawn_watch(&m.mnt);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(700) {
        fs::read(m.m("f")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = wait_with_timeout(&mut child, Duration::from_secs(5));
    let out = read_pipe(child.stdout.take());
    assert!(st.success(), "{st:?}: {}", read_pipe(child.stderr.take()));
    assert!(out.contains("\x1b[2J\x1b[H"), "clears the screen: {out}");
    // At least a few redraws with per-interval rates, then the goodbye.
    assert!(out.matches("hit ratio").count() >= 6, "{out}");
    assert!(out.contains("last 0.1s"), "{out}");
    assert!(out.contains("MiB/s"), "{out}");
    assert!(out.contains("stopped watching"), "{out}");

    let mut child = spawn_watch(&m.mnt);
    std::thread::sleep(Duration::from_millis(300));
    // The watcher has the stats file open for a few µs every 100 ms: retry a busy umount.
    let mut tries = 0;
    loop {
        let out = kplugfs(&["umount", m.mnt.to_str().unwrap()]);
        if out.status.success() {
            break;
        }
        tries += 1;
        assert!(tries < 10, "umount: {}", stderr(&out));
        std::thread::sleep(Duration::from_millis(30));
    }
    let st = wait_with_timeout(&mut child, Duration::from_secs(5));
    assert!(!st.success());
    let err = read_pipe(child.stderr.take());
    assert!(err.contains("went away"), "{err}");
}

#[test]
fn history_records_snapshots_and_stats_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.db");
    let m = mount(&[
        "--history-period",
        "100ms",
        "--history-db",
        db.to_str().unwrap(),
    ]);
    for _ in 0..5 {
        fs::read(m.m("f")).unwrap();
        fs::read(m.m("g")).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let s = stats(&m);
    assert_eq!(s["history"]["path"], db.to_str().unwrap());
    assert_eq!(u(&s, "/history/period_ms"), 100);
    assert!(s["history"]["error"].is_null(), "{s}");
    assert!(u(&s, "/history/rows_written") >= 4, "{s}");

    let h = kplug_daemon::monitor::history::HistoryDb::open_read(&db).unwrap();
    let rows = h.samples(0).unwrap();
    assert!(rows.len() >= 4, "{} rows", rows.len());
    for w in rows.windows(2) {
        assert!(w[1].time_ms > w[0].time_ms, "{:?}", w);
        assert!(w[1].cache_hits + w[1].cache_misses >= w[0].cache_hits + w[0].cache_misses);
        assert!(w[1].backend_bytes >= w[0].backend_bytes);
    }
    let last = rows.last().unwrap();
    assert!(last.fuse_read_bytes > 0 && last.cache_hits > 0, "{last:?}");

    let mnt = m.mnt.to_str().unwrap();
    let out = kplugfs(&["stats", mnt, "--history"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("time (UTC)"), "{table}");
    assert!(table.lines().count() >= rows.len(), "{table}");
    assert!(table.contains('%'), "{table}");

    let out = kplugfs(&["stats", mnt, "--history", "--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kplugfs(&["stats", mnt, "--history", "--since", "soon"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));

    let svg = tmp.path().join("out.svg");
    let out = kplugfs(&["stats", mnt, "--history", "--plot", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("hit ratio") && text.contains("MiB/s"));

    // The database alone, without the mount.
    drop(m);
    let out = kplugfs(&["stats", "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("time (UTC)"));
}

#[test]
fn a_broken_history_database_never_fails_the_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"not a directory").unwrap();
    let db = file.join("h.db");
    let m = mount(&[
        "--history-period",
        "50ms",
        "--history-db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(m.m("g")).unwrap(), pattern(3 * BS, 2));
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = stats(&m);
        if !s["history"]["error"].is_null() || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(s["history"]["error"].is_string(), "{s}");
    assert_eq!(u(&s, "/history/rows_written"), 0);
    assert_eq!(fs::read(m.m("f")).unwrap(), pattern(8 * BS, 1));
    let out = kplugfs(&["stats", m.mnt.to_str().unwrap()]);
    assert!(stdout(&out).contains("DISABLED"), "{}", stdout(&out));
}

#[test]
fn history_off_with_period_zero() {
    let m = mount(&["--history-period", "0"]);
    assert!(stats(&m).get("history").is_none());
    let out = kplugfs(&["stats", m.mnt.to_str().unwrap(), "--history"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("keeps no history"),
        "{}",
        stderr(&out)
    );
}
