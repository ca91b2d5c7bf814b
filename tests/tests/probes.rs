//! Probe plugins (ABI 1.5) in a live mount: a probe dropped into `.kplug/plugins/` appears as
//! `.kplug/probes/NAME` and reports on the workload it watched; removing the plugin removes
//! the file; hostile probes (a trap or a loop in the batch hook, a report past its memory, a
//! garbage length, a report that never returns) are disabled with a clear status while the
//! mount keeps serving correct bytes and the other probes keep reporting.
#![cfg(feature = "mount-tests")]

use std::fs;

use kplugfs_tests::{TestMount, drop_plugin, exported_policy, pattern, plugin, status};

const MIB: usize = 1 << 20;

/// A mount whose reads all reach the daemon: `dir/a` (1 MiB), `b` (256 KiB), `c` (64 KiB).
fn mount() -> TestMount {
    TestMount::with_backing(
        &[
            "--cache-size",
            "8MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
        |b| {
            fs::create_dir(b.join("dir")).unwrap();
            fs::write(b.join("dir/a"), pattern(MIB, 1)).unwrap();
            fs::write(b.join("b"), pattern(MIB / 4, 2)).unwrap();
            fs::write(b.join("c"), pattern(MIB / 16, 3)).unwrap();
        },
    )
}

/// Read `rel` whole through the mount, `times` times, checking every byte.
fn read(m: &TestMount, rel: &str, times: usize) {
    let want = fs::read(m.b(rel)).unwrap();
    for _ in 0..times {
        assert_eq!(fs::read(m.m(rel)).unwrap(), want, "{rel}");
    }
}

fn report(m: &TestMount, name: &str) -> std::io::Result<String> {
    fs::read_to_string(m.m(&format!(".kplug/probes/{name}")))
}

fn probes(m: &TestMount) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(m.m(".kplug/probes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The rows of one ranking of the hot-files report: `(columns..., file)`.
fn ranking<'a>(text: &'a str, title: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .skip_while(|l| !(l.starts_with("# ") && l.ends_with(title)))
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').collect())
        .collect()
}

#[test]
fn hot_files_ranks_the_file_read_most_and_goes_with_its_plugin() {
    let m = mount();
    assert!(probes(&m).is_empty());
    drop_plugin(&m, "hot-files.wasm", &exported_policy("hot-files")).unwrap();
    assert_eq!(probes(&m), ["hot-files"]);
    read(&m, "c", 1);
    read(&m, "b", 2);
    read(&m, "dir/a", 3);
    let text = report(&m, "hot-files").unwrap();
    let by_bytes = ranking(&text, "by bytes read");
    assert_eq!(by_bytes.len(), 3, "{text}");
    // rank bytes reads misses file
    assert_eq!(by_bytes[0][4], "dir/a", "{text}");
    assert_eq!(by_bytes[0][1], (3 * MIB).to_string(), "{text}");
    assert_eq!(by_bytes[1][4], "b", "{text}");
    assert_eq!(by_bytes[1][1], (MIB / 2).to_string(), "{text}");
    assert_eq!(by_bytes[2][4], "c", "{text}");
    // dir/a's 16 blocks missed once (read-ahead may turn demand misses into joins, both
    // count); then they hit: at least 16 misses, fewer than three readings' worth.
    let by_misses = ranking(&text, "by cache misses");
    assert_eq!(by_misses[0][4], "dir/a", "{text}");
    let misses: u64 = by_misses[0][1].parse().unwrap();
    assert!((1..=16).contains(&misses), "{text}");
    // The plugin's status is active; rm removes the report.
    let st = status(&m);
    assert_eq!(plugin(&st, "hot-files")["state"], "active", "{st}");
    fs::remove_file(m.m(".kplug/plugins/hot-files.wasm")).unwrap();
    assert!(probes(&m).is_empty());
    assert!(report(&m, "hot-files").is_err());
}

#[test]
fn a_probe_takes_parameters_and_the_cli_shows_its_report() {
    let m = mount();
    fs::write(m.m(".kplug/plugins/hot-files.params"), "k=1\n").unwrap();
    drop_plugin(&m, "hot-files.wasm", &exported_policy("hot-files")).unwrap();
    read(&m, "b", 1);
    read(&m, "dir/a", 1);
    let out = kplugfs_tests::kplugfs(&["stats", m.mnt.to_str().unwrap(), "--probe", "hot-files"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let by_bytes = ranking(&text, "by bytes read");
    assert_eq!(by_bytes.len(), 1, "{text}");
    assert_eq!(by_bytes[0][4], "dir/a", "{text}");
    let out = kplugfs_tests::kplugfs(&["stats", m.mnt.to_str().unwrap(), "--probe", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no probe nope"), "{err}");
}

/// A probe module in WAT with the given bodies of its batch and report hooks.
fn wat_probe(events: &str, report: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) i32.const 0x10005)
             (func (export "kplug_probe_buf") (result i32) i32.const 0)
             (func (export "kplug_probe_events") (param i32) (result i32) {events})
             (func (export "kplug_probe_report") (result i64) {report}))"#
    ))
    .expect("probe module")
}

/// An honest report: the 5 bytes "hello" at address 16384.
const HELLO: &str = "i32.const 16384 i32.const 0x6c6c6568 i32.store \
                     i32.const 16388 i32.const 0x6f i32.store8 \
                     i64.const 0x0000400000000005";

#[test]
fn hostile_probes_are_disabled_and_the_mount_and_other_probes_go_on() {
    let m = mount();
    drop_plugin(&m, "hot-files.wasm", &exported_policy("hot-files")).unwrap();
    drop_plugin(&m, "honest.wasm", &wat_probe("i32.const 0", HELLO)).unwrap();
    assert_eq!(report(&m, "honest").unwrap(), "hello");
    // (file, events hook, report hook, a word of the status error)
    let cases = [
        ("trap", "unreachable", HELLO, "unreachable"),
        ("spin", "(loop (br 0)) i32.const 0", HELLO, "deadline"),
        ("nonzero", "i32.const 7", HELLO, "returned 7"),
        (
            "past",
            "i32.const 0",
            "i64.const 0x0000f00000010000",
            "outside the plugin's memory",
        ),
        ("garbage", "i32.const 0", "i64.const 0x7fffffff", "at most"),
        (
            "hang",
            "i32.const 0",
            "(loop (br 0)) i64.const 0",
            "deadline",
        ),
    ];
    for (name, events, rep, _) in cases {
        drop_plugin(&m, &format!("{name}.wasm"), &wat_probe(events, rep)).unwrap();
    }
    read(&m, "dir/a", 2);
    read(&m, "b", 1);
    for (name, _, _, why) in cases {
        let err = report(&m, name).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{name}: {err}");
        let st = status(&m);
        let p = plugin(&st, name);
        assert_eq!(p["state"], "failed", "{name}: {p}");
        let error = p["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{name}: {error}");
        // Still listed (its file is there), and still failing with the same reason.
        assert!(probes(&m).contains(&name.to_string()));
        assert_eq!(
            report(&m, name).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
    }
    // The mount served every byte right, and the honest probes saw everything.
    read(&m, "c", 1);
    assert_eq!(report(&m, "honest").unwrap(), "hello");
    let text = report(&m, "hot-files").unwrap();
    let by_bytes = ranking(&text, "by bytes read");
    assert_eq!(by_bytes[0][4], "dir/a", "{text}");
    assert_eq!(by_bytes[0][1], (2 * MIB).to_string(), "{text}");
    assert_eq!(by_bytes.len(), 3, "{text}");
    let st = status(&m);
    assert_eq!(plugin(&st, "hot-files")["state"], "active");
    assert_eq!(plugin(&st, "honest")["state"], "active");
}

#[test]
fn a_module_both_probe_and_policy_is_refused() {
    let m = mount();
    let both = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) i32.const 0x10005)
             (func (export "kplug_probe_buf") (result i32) i32.const 0)
             (func (export "kplug_probe_events") (param i32) (result i32) i32.const 0)
             (func (export "kplug_probe_report") (result i64) i64.const 0)
             (func (export "kplug_admit") (param i64 i64 i64) (result i32) i32.const 1))"#,
    )
    .unwrap();
    let err = drop_plugin(&m, "both.wasm", &both).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let st = status(&m);
    let error = plugin(&st, "both")["error"].as_str().unwrap().to_string();
    assert!(error.contains("a probe"), "{error}");
    // A buffer outside memory is refused at load.
    let bad_buf = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) i32.const 0x10005)
             (func (export "kplug_probe_buf") (result i32) i32.const 60000)
             (func (export "kplug_probe_events") (param i32) (result i32) i32.const 0)
             (func (export "kplug_probe_report") (result i64) i64.const 0))"#,
    )
    .unwrap();
    assert!(drop_plugin(&m, "badbuf.wasm", &bad_buf).is_err());
    assert!(probes(&m).is_empty());
}
