//! `kplugfs trace replay` against a real mount, a plain directory and bad paths.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::path::Path;
use std::process::Output;

use kplugfs_tests::{TestMount, kplugfs, repo_root};

fn trace(name: &str) -> String {
    repo_root()
        .join("traces/data")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn replay(mount: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "trace",
        "replay",
        "--mount",
        mount.to_str().unwrap(),
        "--max-size",
        "16MiB",
    ];
    args.extend_from_slice(extra);
    kplugfs(&args)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn replay_on_a_mount_verifies_reads_and_reports_the_hit_ratio() {
    let m = TestMount::with_backing(&["--cache-size", "4MiB", "--block-size", "64KiB"], |b| {
        fs::write(b.join("user-file"), b"user data").unwrap()
    });
    // The MSR sample: 508 reads and 492 writes.
    let v = json(&replay(
        &m.mnt,
        &[&trace("msr-cambridge1-sample.csv"), "--json"],
    ));
    assert_eq!(v["requests"], 1000);
    let (reads, writes) = (v["reads"].as_u64().unwrap(), v["writes"].as_u64().unwrap());
    assert_eq!((reads, writes), (508, 492));
    assert_eq!(v["verified_reads"], reads);
    assert_eq!(v["mismatches"], 0);
    assert_eq!(
        v["scratch"]["block_size"],
        64 << 10,
        "the mount's block size by default"
    );
    let cache = &v["cache"];
    let accesses = cache["hits"].as_u64().unwrap() + cache["misses"].as_u64().unwrap();
    assert!(accesses > 0, "{v}");
    let ratio = cache["hit_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio));
    let lat = &v["latency"];
    assert!(lat["p50_us"].as_f64() <= lat["p90_us"].as_f64());
    assert!(lat["p99_us"].as_f64() <= lat["max_us"].as_f64());
    // Only the scratch directory was used, and it is gone; user files are untouched.
    assert!(!m.b(".kplugfs-replay").exists());
    assert_eq!(fs::read(m.b("user-file")).unwrap(), b"user data");
    let names: Vec<_> = fs::read_dir(&m.backing)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["user-file"]);
    // The first 10,000 requests of cloudPhysicsIO (1,424 reads among them), as text, with
    // two threads and writes skipped.
    let t = trace("cloudPhysicsIO.vscsi");
    let out = replay(
        &m.mnt,
        &[&t, "--limit", "10000", "--threads", "2", "--skip-writes"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "replayed",
        "throughput",
        "latency       p50",
        "hit ratio",
        "% (",
        "verified      all",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert!(
        text.contains("1,424 reads") && text.contains("8,576 writes skipped"),
        "{text}"
    );
}

#[test]
fn replay_on_a_plain_directory_has_no_hit_ratio() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let v = json(&replay(
        dir.path(),
        &[&trace("msr-cambridge1-sample.csv"), "--json"],
    ));
    assert!(v["cache"].is_null());
    assert_eq!(v["mismatches"], 0);
    assert_eq!(v["requests"], 1000);
    assert_eq!(
        v["scratch"]["block_size"],
        128 << 10,
        "128 KiB without a status"
    );
    let out = replay(
        dir.path(),
        &[&trace("sprite.trace"), "--block-size", "4KiB"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("hit ratio     n/a"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn replay_detects_wrong_bytes() {
    // Keep the scratch files, damage one behind the replay's back, replay again: it reuses
    // them and must report the reads of the damaged file and fail.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let t = trace("cloudPhysicsIO.vscsi");
    json(&replay(
        dir.path(),
        &[&t, "--json", "--keep", "--skip-writes", "--limit", "10000"],
    ));
    let f0 = dir.path().join(".kplugfs-replay/f0000");
    let len = fs::metadata(&f0).unwrap().len();
    fs::write(&f0, vec![0u8; len as usize]).unwrap();
    let out = replay(
        dir.path(),
        &[&t, "--json", "--skip-writes", "--limit", "10000"],
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scratch"]["reused"], true);
    assert!(v["mismatches"].as_u64().unwrap() > 0, "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("returned wrong bytes") && err.contains("f0000"),
        "{err}"
    );
    // Not --keep this time: removed.
    assert!(!dir.path().join(".kplugfs-replay").exists());
}

#[test]
fn replay_refuses_bad_mount_paths_and_foreign_scratch_dirs() {
    let t = trace("cloudPhysicsIO.vscsi");
    let out = replay(Path::new("/nonexistent/kplugfs-mount"), &[&t]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/kplugfs-mount") && err.contains("No such file"),
        "{err}"
    );
    let out = replay(Path::new(&t), &[&t]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    // A directory of that name the replay did not make is left alone.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    fs::create_dir(dir.path().join(".kplugfs-replay")).unwrap();
    fs::write(dir.path().join(".kplugfs-replay/f0000"), b"mine").unwrap();
    let out = replay(dir.path(), &[&t]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not made by"));
    assert_eq!(
        fs::read(dir.path().join(".kplugfs-replay/f0000")).unwrap(),
        b"mine"
    );
}
