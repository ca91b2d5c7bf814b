//! `kplugfs trace info` and `kplugfs trace convert` through the binary, on the real traces of
//! `traces/data/` (replay needs a mount: tests/tests/trace_replay.rs), and `kplugfs sim` on a
//! compressed one.

mod common;
use common::{files_under, ok};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kplugfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kplugfs"))
        .args(args)
        .output()
        .expect("run kplugfs")
}

fn data(name: &str) -> String {
    manifest_dir()
        .join("../../traces/data")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn info_json(path: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["trace", "info", path, "--json"];
    args.extend_from_slice(extra);
    let out = ok(&kplugfs(&args));
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(&out).unwrap()
}

fn tmp(dir: &tempfile::TempDir, name: &str) -> String {
    let p: PathBuf = dir.path().join(name);
    p.to_str().unwrap().to_string()
}

#[test]
fn info_of_cloudphysics_in_every_encoding() {
    for (file, format) in [
        ("cloudPhysicsIO.vscsi", "vscsi"),
        ("cloudPhysicsIO.csv", "csv"),
        ("cloudPhysicsIO.txt", "txt"),
        ("cloudPhysicsIO.oracleGeneral.bin", "oracle"),
    ] {
        let v = info_json(&data(file), &[]);
        assert_eq!(v["requests"], 113_872, "{file}");
        assert_eq!(v["unique_ids"], 48_974, "{file}");
        assert_eq!(v["format"], format, "{file}");
    }
    let v = info_json(&data("cloudPhysicsIO.vscsi"), &["--format", "vscsi"]);
    assert_eq!(
        v["reads"].as_u64().unwrap() + v["writes"].as_u64().unwrap(),
        113_872
    );
    assert_eq!(v["reads"], 46_974);
    assert_eq!(v["writes"], 66_898);
    assert_eq!(v["unique_bytes"], 2_029_769_728u64);
    assert_eq!(v["streams"], 1);
    let hist: u64 = v["size_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(hist, 113_872);
    let seq = v["sequentiality"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&seq));
    // Object traces have no offsets: no sequentiality.
    let v = info_json(&data("sprite.trace"), &[]);
    assert_eq!(
        (v["requests"].as_u64(), v["unique_ids"].as_u64()),
        (Some(133_996), Some(7_075))
    );
    assert!(v["sequentiality"].is_null());
}

#[test]
fn info_text_is_readable() {
    let out = ok(&kplugfs(&["trace", "info", &data("cloudPhysicsIO.vscsi")]));
    for want in [
        "requests      113,872",
        "unique ids    48,974",
        "reads         46,974",
        "writes        66,898",
        "sequential    26.0%",
        "request sizes",
        "64 KiB - 128 KiB",
    ] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
}

#[test]
fn info_errors_name_the_problem() {
    let out = kplugfs(&["trace", "info", "/nonexistent/trace"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/trace") && err.contains("No such file"),
        "{err}"
    );
    let out = kplugfs(&["trace", "info", &data("README.md")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot tell the trace format"),
        "{out:?}"
    );
}

/// `sim` checks what it was asked before it reads the trace (a large one takes minutes): a
/// misspelt policy, a module that is not there or a size out of range is named even when
/// the trace is missing too; and an OS error is said once, not once per layer.
#[test]
fn sim_names_bad_policies_before_reading_the_trace() {
    let cases: [(&[&str], &str); 5] = [
        (&["builtin:fifo"], "unknown native policy \"builtin:fifo\""),
        (&["/nonexistent/p.wasm"], "reading /nonexistent/p.wasm"),
        (&["lru", "--cache-size", "1.5"], "--cache-size 1.5"),
        (&["lru", "--param", "arc:x=1"], "no policy named \"arc\""),
        // With nothing wrong but the trace, the trace.
        (&["lru"], "/nonexistent/trace"),
    ];
    for (args, want) in cases {
        let mut all = vec!["sim", "--trace", "/nonexistent/trace", "--policy"];
        all.extend_from_slice(args);
        if !args.contains(&"--cache-size") {
            all.extend_from_slice(&["--cache-objects", "10"]);
        }
        let out = kplugfs(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
        let trace_named = err.contains("/nonexistent/trace");
        assert_eq!(trace_named, want == "/nonexistent/trace", "{args:?}: {err}");
        let os_errors = err.matches("No such file").count();
        assert_eq!(os_errors, usize::from(want.contains('/')), "{err}");
    }
}

/// A trace compressed as libCacheSim distributes its traces (`NAME.oracleGeneral.zst`) is
/// read as its plain bytes by `trace info` and `sim`, detected by content and name.
#[test]
fn zstd_compressed_traces_give_what_the_plain_ones_give() {
    let dir = tempfile::tempdir().unwrap();
    let plain = data("cloudPhysicsIO.oracleGeneral.bin");
    let zst = tmp(&dir, "cloudPhysicsIO.oracleGeneral.zst");
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    assert!(std::fs::metadata(&zst).unwrap().len() < bytes.len() as u64 / 2);
    same_except(&info_json(&plain, &[]), &info_json(&zst, &[]), &["file"]);
    let sim = |trace: &str| -> Vec<serde_json::Value> {
        let out = ok(&kplugfs(&[
            "sim",
            "--trace",
            trace,
            "--policy",
            "lru,arc",
            "--cache-size",
            "0.01,0.1",
            "--json",
            "--jobs",
            "1",
        ]));
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (sim(&plain), sim(&zst));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert!(a["misses"].as_u64().unwrap() > 0, "{a}");
        same_except(a, b, &["seconds", "requests_per_sec", "trace"]);
    }
    // Cut short: an error naming the file, no figures.
    let cut = tmp(&dir, "cut.oracleGeneral.zst");
    let z = std::fs::read(&zst).unwrap();
    std::fs::write(&cut, &z[..z.len() / 2]).unwrap();
    let out = kplugfs(&[
        "sim",
        "--trace",
        &cut,
        "--policy",
        "lru",
        "--cache-size",
        "0.1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cut.oracleGeneral.zst") && err.contains("zstd"),
        "{err}"
    );
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("lru"));
}

fn same_except(a: &serde_json::Value, b: &serde_json::Value, except: &[&str]) {
    for (k, va) in a.as_object().unwrap() {
        if except.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(va, &b[k], "field {k}");
    }
}

#[test]
fn vscsi_to_kplug_and_back_to_csv_keeps_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let kplug = tmp(&dir, "cp.kplug");
    let out = kplugfs(&[
        "trace",
        "convert",
        &data("cloudPhysicsIO.vscsi"),
        &kplug,
        "--to",
        "kplug",
    ]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("converted 113,872 requests"));
    let orig = info_json(&data("cloudPhysicsIO.vscsi"), &[]);
    let k = info_json(&kplug, &[]);
    assert_eq!(k["format"], "kplug");
    // kplug keeps every request, op, size, offset and time; its id is the stream (file), so
    // the id counts become stream counts (documented, and announced by a note).
    same_except(&orig, &k, &["file", "format", "unique_ids", "unique_bytes"]);
    assert_eq!(k["unique_ids"], 1);
    // kplug -> csv recovers the lbn ids from the offsets; csv keeps whole seconds only.
    let csv = tmp(&dir, "cp.csv");
    ok(&kplugfs(&["trace", "convert", &kplug, &csv, "--to", "csv"]));
    let c = info_json(&csv, &[]);
    same_except(
        &orig,
        &c,
        &[
            "file",
            "format",
            "min_time_ns",
            "max_time_ns",
            "duration_ns",
        ],
    );
    assert_eq!(c["unique_ids"], 48_974);
    // And csv -> kplug -> info equals vscsi -> kplug -> info except times (seconds).
    let k2 = tmp(&dir, "cp2.kplug");
    ok(&kplugfs(&[
        "trace", "convert", &csv, &k2, "--to", "kplug", "--format", "csv",
    ]));
    same_except(
        &k,
        &info_json(&k2, &[]),
        &["file", "min_time_ns", "max_time_ns", "duration_ns"],
    );
}

#[test]
fn convert_to_object_formats() {
    let dir = tempfile::tempdir().unwrap();
    let orig = info_json(&data("cloudPhysicsIO.vscsi"), &[]);
    for to in ["txt", "lirs", "oracle"] {
        let out = tmp(&dir, &format!("cp.{to}"));
        ok(&kplugfs(&[
            "trace",
            "convert",
            &data("cloudPhysicsIO.vscsi"),
            &out,
            "--to",
            to,
        ]));
        let v = info_json(&out, &["--format", to]);
        assert_eq!(v["requests"], orig["requests"], "{to}");
        assert_eq!(v["unique_ids"], orig["unique_ids"], "{to}");
    }
    // The oracle file's next-access fields were computed: it reads back like the reference
    // oracleGeneral encoding of the same trace, id for id.
    let ours = info_json(&tmp(&dir, "cp.oracle"), &["--format", "oracle"]);
    let reference = info_json(&data("cloudPhysicsIO.oracleGeneral.bin"), &[]);
    assert_eq!(ours["requests"], reference["requests"]);
    assert_eq!(ours["unique_ids"], reference["unique_ids"]);
}

#[test]
fn convert_refuses_what_it_cannot_write_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    for to in ["vscsi", "msr", "systor", "auto"] {
        let out_path = tmp(&dir, "out");
        let out = kplugfs(&[
            "trace",
            "convert",
            &data("cloudPhysicsIO.csv"),
            &out_path,
            "--to",
            to,
        ]);
        assert!(!out.status.success(), "{to}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("txt, lirs, csv, oracle") && err.contains("kplug"),
            "{to}: {err}"
        );
        assert!(!Path::new(&out_path).exists(), "{to}");
    }
    let out = kplugfs(&[
        "trace",
        "convert",
        &data("sprite.trace"),
        &tmp(&dir, "x"),
        "--to",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown trace format `nope`"));
    // A request the target cannot hold: an error naming it, and no output file.
    let odd = tmp(&dir, "odd.msr");
    std::fs::write(&odd, "128166385295514663,hm,0,Read,100,512,10\n").unwrap();
    let out_path = tmp(&dir, "odd.csv");
    let out = kplugfs(&["trace", "convert", &odd, &out_path, "--to", "csv"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a multiple of 512") && err.contains("odd.csv"),
        "{err}"
    );
    assert!(!err.contains("partial"), "names the real output: {err}");
    assert!(!Path::new(&out_path).exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );
    // The input is never overwritten.
    let input = data("cloudPhysicsIO.txt");
    let out = kplugfs(&["trace", "convert", &input, &input, "--to", "txt"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the input"));
}

/// `kplugfs sim` leaves the module it compiled in the compiled-module cache, however short
/// its run: the cache's disk write runs in the background (niced), and the process waits for
/// it before it exits. Each run is given a cache of its own, so each compiles, and is pinned
/// to one CPU, where the write competes with the process's own exit: without the wait, 3 of
/// 10 such runs over 4 requests left no file (mutation-checked).
#[test]
fn sim_leaves_what_it_compiled_in_the_module_cache() {
    let dir = tempfile::tempdir().unwrap();
    let trace = tmp(&dir, "four.txt");
    std::fs::write(&trace, "1\n2\n1\n3\n").unwrap();
    for run in 0..20 {
        let cache = dir.path().join(format!("modules{run}"));
        let out = Command::new("taskset")
            .args(["-c", "0", env!("CARGO_BIN_EXE_kplugfs"), "sim"])
            .args(["--trace", &trace, "--format", "txt", "--policy", "lru"])
            .args(["--cache-objects", "2", "--json"])
            .env("KPLUGFS_MODULE_CACHE", &cache)
            .output()
            .expect("run kplugfs under taskset");
        ok(&out);
        // One directory per engine configuration, one file per module.
        let files = files_under(&cache);
        assert_eq!(files.len(), 1, "run {run}: {files:?}");
    }
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
