//! The plugin lifecycle on a real mount, as an operator drives it with `cp` and `rm`, and the
//! defects of issue #21 each as the commands that showed it: replacing a plugin file by a
//! module of another kind, names that differ only by `.wasm`, a governor's candidate that
//! faults, a governor exporting a role, a load that must not stall readers, and error texts
//! that must be true and one line. Every step checks `.kplug/status` against the truth.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kplugfs_tests::fixtures::{self, EVICTION_EXPORTS};
use kplugfs_tests::{TestMount, check_status_truth, drop_plugin, exported_policy, pattern, status};
use serde_json::Value;

const SIZE: usize = 1 << 20;

/// A small-cache mount whose reads all reach the block cache, with `files` files of 1 MiB.
fn mount(files: usize, extra: &[&str]) -> TestMount {
    let mut args = vec![
        "--cache-size",
        "2MiB",
        "--block-size",
        "64KiB",
        "--no-kernel-cache",
    ];
    args.extend_from_slice(extra);
    TestMount::with_backing(&args, |b| {
        for i in 0..files {
            fs::write(b.join(format!("f{i}")), pattern(SIZE, i as u32)).unwrap();
        }
    })
}

fn read_all(m: &TestMount, files: usize) {
    for i in 0..files {
        assert_eq!(
            fs::read(m.m(&format!("f{i}"))).unwrap(),
            pattern(SIZE, i as u32),
            "f{i}"
        );
    }
}

/// `cp FROM MOUNT/.kplug/plugins/NAME`, as the issue ran it; its success.
fn cp(m: &TestMount, from: &Path, name: &str) -> std::process::Output {
    Command::new("cp")
        .arg(from)
        .arg(m.m(&format!(".kplug/plugins/{name}")))
        .output()
        .unwrap()
}

/// Write `bytes` to a scratch file named `name` and return its path.
fn scratch(m: &TestMount, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = m.root.path().join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn entries(st: &Value) -> &Vec<Value> {
    st["plugins"].as_array().expect("plugins[]")
}

fn plugin<'a>(st: &'a Value, file: &str) -> &'a Value {
    entries(st)
        .iter()
        .find(|p| p["file"] == file)
        .unwrap_or_else(|| panic!("{file} in {st:#}"))
}

/// Issue #21, 1: an eviction plugin replaced by a governor of the same file name, then
/// removed: nothing of either may stay, not even the candidate the governor followed.
#[test]
fn eviction_file_replaced_by_a_governor_then_removed_leaves_nothing() {
    let m = mount(3, &[]);
    let fifo = scratch(&m, "fifo.wasm", &exported_policy("fifo"));
    // A governor following the `lru` the binary carries from its load on.
    let gov = fixtures::governor(&[(0, "lru")], "(drop (call $act (i32.const 0)))", "", "");
    let gov = scratch(&m, "governor.wasm", &gov);
    assert!(cp(&m, &fifo, "swp.wasm").status.success());
    read_all(&m, 3);
    assert_eq!(status(&m)["active"]["eviction"], "swp");
    assert!(cp(&m, &gov, "swp.wasm").status.success());
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["governor"], "swp", "{st:#}");
    assert_eq!(
        st["active"]["eviction"], "lru",
        "the old eviction plugin serves: {st:#}"
    );
    let p = plugin(&st, "swp.wasm");
    assert_eq!(p["governor"], true);
    assert_eq!(p["state"], "active");
    assert_eq!(p["active_roles"], serde_json::json!(["eviction"]), "{p}");
    read_all(&m, 3);
    fs::remove_file(m.m(".kplug/plugins/swp.wasm")).unwrap();
    let st = status(&m);
    check_status_truth(&st);
    assert!(st["active"]["governor"].is_null(), "{st:#}");
    assert_eq!(st["active"]["eviction"], "builtin:lru", "{st:#}");
    assert!(entries(&st).is_empty());
    read_all(&m, 3);
}

/// Issue #21, 2: a governor replaced by an eviction plugin of the same name stops governing.
#[test]
fn governor_file_replaced_by_an_eviction_plugin_stops_governing() {
    let m = mount(3, &[]);
    let gov = scratch(&m, "adaptive.wasm", &exported_policy("adaptive"));
    let fifo = scratch(&m, "fifo.wasm", &exported_policy("fifo"));
    assert!(cp(&m, &gov, "swp.wasm").status.success());
    read_all(&m, 3);
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["governor"], "swp");
    assert!(cp(&m, &fifo, "swp.wasm").status.success());
    let st = status(&m);
    check_status_truth(&st);
    assert!(
        st["active"]["governor"].is_null(),
        "the old governor ticks: {st:#}"
    );
    assert_eq!(st["active"]["eviction"], "swp");
    let p = plugin(&st, "swp.wasm");
    assert_eq!(p["governor"], false);
    assert_eq!(p["active_roles"], serde_json::json!(["eviction"]));
    read_all(&m, 3);
    fs::remove_file(m.m(".kplug/plugins/swp.wasm")).unwrap();
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["eviction"], "builtin:lru");
}

/// Issue #21, 3: `nsk` beside `nsk.wasm` would be a second plugin named `nsk`: refused at
/// creation, and the first file's governor is untouched by any `rm` of the second name.
#[test]
fn names_that_differ_only_by_the_extension_are_refused_and_touch_nothing() {
    let m = mount(2, &[]);
    let gov = scratch(&m, "adaptive.wasm", &exported_policy("adaptive"));
    let fifo = scratch(&m, "fifo.wasm", &exported_policy("fifo"));
    assert!(cp(&m, &gov, "nsk.wasm").status.success());
    let out = cp(&m, &fifo, "nsk");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File exists"),
        "{out:?}"
    );
    let err = fs::remove_file(m.m(".kplug/plugins/nsk")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["governor"], "nsk");
    let p = plugin(&st, "nsk.wasm");
    assert_eq!(p["state"], "active", "{p}");
    assert!(p["error"].is_null(), "{p}");
    // The other way round too, and a parameter file is no clash.
    fs::remove_file(m.m(".kplug/plugins/nsk.wasm")).unwrap();
    assert!(cp(&m, &fifo, "nsk").status.success());
    assert!(!cp(&m, &gov, "nsk.wasm").status.success());
    drop_plugin(&m, "nsk.params", b"").unwrap();
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["eviction"], "nsk");
    read_all(&m, 2);
}

/// Issue #21, 4: a governor's admission candidate that answers 2 falls back to the built-in,
/// shows as failed with its fault, is no longer active, and `active()` says -1: this
/// governor then activates its other candidate, which it does only on -1.
#[test]
fn a_faulting_candidate_is_out_and_the_governor_sees_minus_one() {
    let m = mount(3, &[]);
    drop_plugin(&m, "badadmit.wasm", &fixtures::admission(2, 0)).unwrap();
    let gov = fixtures::governor(
        &[(1, "badadmit"), (1, "doorkeeper")],
        "(drop (call $act (i32.const 0)))",
        "(if (i32.eq (call $active (i32.const 1)) (i32.const -1))
           (then (drop (call $act (i32.const 1)))))",
        "",
    );
    drop_plugin(&m, "gov.wasm", &gov).unwrap();
    let st = status(&m);
    assert_eq!(st["active"]["admission"], "badadmit", "{st:#}");
    // Misses ask the admission candidate: it answers 2.
    read_all(&m, 3);
    // The governor ticks every 100 ms; after its next tick it has seen -1.
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = status(&m);
        if st["active"]["admission"] == "doorkeeper" || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    check_status_truth(&st);
    let c = &st["active"]["candidates"];
    assert_eq!(c[0]["active"], false, "{st:#}");
    let error = c[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("invalid answer") && error.contains("kplug_admit"),
        "{st:#}"
    );
    assert_eq!(
        st["active"]["admission"], "doorkeeper",
        "active() did not say -1 after the fault: {st:#}"
    );
    assert_eq!(c[1]["active"], true);
    assert!(st["cache"]["faults"].as_u64().unwrap() >= 1);
    read_all(&m, 3);
}

/// Issue #21, 5: a governor that also exports the eviction role is refused, saying why.
#[test]
fn a_governor_exporting_a_role_is_refused() {
    let m = mount(1, &[]);
    let gov = fixtures::governor(&[(0, "lru")], "", "", EVICTION_EXPORTS);
    let err = drop_plugin(&m, "both.wasm", &gov).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let st = status(&m);
    check_status_truth(&st);
    let p = plugin(&st, "both.wasm");
    assert_eq!(p["state"], "failed");
    assert!(
        p["error"]
            .as_str()
            .unwrap()
            .contains("may not serve a cache role"),
        "{p}"
    );
    assert!(st["active"]["governor"].is_null());
    assert_eq!(st["active"]["eviction"], "builtin:lru");
}

/// Issue #21, 6: a governor whose six candidates each take 300 ms in `kplug_init` loads
/// while readers go on: reads complete while the `close()` that loads it is still running
/// (before, the candidates were initialised under the cache's lock and no read completed
/// until all of them were). Also a plain plugin whose `kplug_init` takes 600 ms.
#[test]
fn reads_go_on_while_plugins_initialise() {
    let m = Arc::new(mount(2, &[]));
    for i in 0..6 {
        // In service, so the governor's candidates resolve to it; its init takes 300 ms.
        drop_plugin(
            &m,
            &format!("slow{i}.wasm"),
            &fixtures::admission(1, 300_000),
        )
        .unwrap();
    }
    let cands: Vec<(i32, String)> = (0..6).map(|i| (1, format!("slow{i}"))).collect();
    let cands: Vec<(i32, &str)> = cands.iter().map(|(r, s)| (*r, s.as_str())).collect();
    let gov = fixtures::governor(&cands, "", "", "");
    for (name, bytes) in [
        ("gov.wasm", gov),
        ("slowinit.wasm", fixtures::slow_lru(600_000, 0)),
    ] {
        let loading = Arc::new(AtomicBool::new(true));
        let done: Arc<times::Times> = Arc::default();
        let reader = {
            let (m, loading, done) = (m.clone(), loading.clone(), done.clone());
            std::thread::spawn(move || {
                let want = pattern(SIZE, 1);
                while loading.load(Ordering::Acquire) {
                    let got = fs::read(m.m("f1")).unwrap();
                    assert_eq!(got, want);
                    done.push(Instant::now());
                }
            })
        };
        // Give the reader a head start, then load.
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        drop_plugin(&m, name, &bytes).unwrap();
        let end = Instant::now();
        loading.store(false, Ordering::Release);
        reader.join().unwrap();
        // Reads that completed well inside the load: neither just after it began nor just
        // before it ended (the load is 600 ms at least; its edges are 100 ms).
        let inside = done
            .take()
            .into_iter()
            .filter(|t| {
                *t > start + Duration::from_millis(100) && *t + Duration::from_millis(100) < end
            })
            .count();
        assert!(
            inside >= 1,
            "{name}: no read completed during the {:?} of its load",
            end - start
        );
    }
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["governor"], "gov");
    assert_eq!(st["active"]["eviction"], "slowinit");
}

/// Completion times pushed by one thread, taken by another.
mod times {
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Times(Mutex<Vec<Instant>>);

    impl Times {
        pub fn push(&self, t: Instant) {
            self.0.lock().unwrap().push(t);
        }
        pub fn take(&self) -> Vec<Instant> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }
}

/// Issue #21, 7: the texts an operator reads are true and one line.
#[test]
fn errors_are_true_and_one_line_and_plugin_logs_forge_nothing() {
    let log = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    let log_path = log.path().to_str().unwrap().to_string();
    let m = mount(2, &["-v", "--log-file", &log_path]);
    // An unknown import: the message lists every import of the ABI, the newest too.
    let foreign = wat::parse_str(
        r#"(module (import "kplug" "nope" (func)) (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10000)))"#,
    )
    .unwrap();
    assert!(drop_plugin(&m, "foreign.wasm", &foreign).is_err());
    // A data segment out of bounds, no start function: not "start function faulted".
    let segment = wat::parse_str(
        r#"(module (memory (export "memory") 1) (data (i32.const 65530) "0123456789")
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10000))
             (func (export "kplug_admit") (param i64 i64 i64) (result i32) (i32.const 1)))"#,
    )
    .unwrap();
    assert!(drop_plugin(&m, "segment.wasm", &segment).is_err());
    // A trap inside a host import (a log range outside memory), and a log message with a
    // newline and an escape sequence.
    let msg = "first line\n2099-01-01T00:00:00Z ERROR kplugfs: forged\u{1b}[31m";
    let log_import = r#"(import "kplug" "log" (func $log (param i32 i32 i32)))"#;
    let badlog = fixtures::eviction_with(
        log_import,
        "(call $log (i32.const 0) (i32.const 65500) (i32.const 1000))",
    );
    let forger = fixtures::eviction_with(
        log_import,
        &format!(
            "(call $log (i32.const 0) (i32.const 64) (i32.const {}))",
            msg.len()
        ),
    );
    drop_plugin(&m, "forger.wasm", &forger).unwrap();
    read_all(&m, 2);
    // Told the resident blocks at load, it traps in `log` then: refused.
    assert!(drop_plugin(&m, "badlog.wasm", &badlog).is_err());
    read_all(&m, 2);
    let st = status(&m);
    check_status_truth(&st);
    for p in entries(&st) {
        let e = p["error"].as_str().unwrap_or("");
        assert!(!e.contains(['\n', '\r', '\u{1b}']), "{p}");
    }
    let foreign = plugin(&st, "foreign.wasm")["error"].as_str().unwrap();
    assert!(
        foreign.contains("kplug.nope") && foreign.contains("kplug.set_weight"),
        "{foreign}"
    );
    let segment = plugin(&st, "segment.wasm")["error"].as_str().unwrap();
    assert!(
        !segment.contains("start function") && segment.contains("segment"),
        "{segment}"
    );
    let badlog = plugin(&st, "badlog.wasm");
    assert_eq!(badlog["state"], "failed");
    assert!(
        badlog["error"]
            .as_str()
            .unwrap()
            .contains("outside the plugin's memory"),
        "{badlog}"
    );
    let text = fs::read_to_string(log.path()).unwrap();
    assert!(text.contains(r"first line\n2099"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("2099-01-01")),
        "a plugin forged a log line: {text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
}

/// Concurrent copies into one file (an eviction plugin and a governor, interleaved, some
/// of them mixing their bytes and refused): whatever happened, status tells the truth, and a
/// last copy decides what serves, with nothing of the others left.
#[test]
fn concurrent_copies_into_one_file_leave_the_last_one_serving() {
    let m = Arc::new(mount(2, &[]));
    let gov = fixtures::governor(&[(0, "lru")], "(drop (call $act (i32.const 0)))", "", "");
    let kinds: Vec<Vec<u8>> = vec![exported_policy("fifo"), gov];
    let threads: Vec<_> = kinds
        .iter()
        .cloned()
        .map(|bytes| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..15 {
                    // Refused when the two writers' bytes mixed: that is fine.
                    let _ = drop_plugin(&m, "race.wasm", &bytes);
                }
            })
        })
        .collect();
    let reader = {
        let m = m.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                read_all(&m, 2);
            }
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    reader.join().unwrap();
    check_status_truth(&status(&m));
    // A governor last: it governs, and the eviction plugin is gone.
    drop_plugin(&m, "race.wasm", &kinds[1]).unwrap();
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["governor"], "race", "{st:#}");
    assert_eq!(st["active"]["eviction"], "lru", "{st:#}");
    // The eviction plugin last: it serves, and the governor is gone with its candidate.
    drop_plugin(&m, "race.wasm", &kinds[0]).unwrap();
    let st = status(&m);
    check_status_truth(&st);
    assert!(st["active"]["governor"].is_null(), "{st:#}");
    assert_eq!(st["active"]["eviction"], "race", "{st:#}");
    read_all(&m, 2);
}

/// Every `close()` of a descriptor of a plugin file's bytes answers what loading them found,
/// not only the first: a refused module fails the writer's own `close()` even when another
/// descriptor of the same file closed first (a `dup`, or a copy a forked child inherited and
/// closed at its `exec`, which loads the bytes). Before, the second close found nothing new
/// to load and returned 0, so a `cp` could succeed on a refused plugin (seen once in CI:
/// `probes.rs`, a parallel test's child process closing an inherited descriptor).
#[test]
fn every_close_of_a_plugin_file_answers_its_load() {
    use std::io::Write;
    use std::os::fd::IntoRawFd;
    let m = TestMount::new(&[]);
    let close = |fd: i32| {
        if unsafe { libc::close(fd) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error())
        }
    };
    for (name, bytes, want) in [
        ("junk.wasm", b"junk".to_vec(), Err(Some(libc::EINVAL))),
        ("lru.wasm", kplugfs_tests::wat_lru(), Ok(())),
    ] {
        let mut f = fs::File::create(m.m(&format!(".kplug/plugins/{name}"))).unwrap();
        f.write_all(&bytes).unwrap();
        let other = f.try_clone().unwrap().into_raw_fd();
        let own = f.into_raw_fd();
        assert_eq!(close(other), want, "{name}: the first close");
        assert_eq!(close(own), want, "{name}: the writer's own close");
    }
    let st = status(&m);
    check_status_truth(&st);
    assert_eq!(st["active"]["eviction"], "lru", "{st}");
}
