//! Probe plugins (ABI 1.5) in a live mount: a probe dropped into `.kplug/plugins/` appears as
//! `.kplug/probes/NAME` and reports on the workload it watched; removing the plugin removes
//! the file; hostile probes (a trap or a loop in the batch hook, a report past its memory, a
//! garbage length, a report that never returns) are disabled with a clear status while the
//! mount keeps serving correct bytes and the other probes keep reporting.
#![cfg(feature = "mount-tests")]

use std::fs;

use kplugfs_tests::{
    TestMount, drop_plugin, exported_policy, pattern, plugin, status, with_custom_section,
};

const MIB: usize = 1 << 20;

/// The probes' mounts: an 8 MiB block cache of 64 KiB blocks, no kernel cache (every read
/// reaches the daemon).
const MOUNT_OPTS: [&str; 5] = [
    "--cache-size",
    "8MiB",
    "--block-size",
    "64KiB",
    "--no-kernel-cache",
];

/// A mount whose reads all reach the daemon: `dir/a` (1 MiB), `b` (256 KiB), `c` (64 KiB).
fn mount() -> TestMount {
    TestMount::with_backing(&MOUNT_OPTS, |b| {
        fs::create_dir(b.join("dir")).unwrap();
        fs::write(b.join("dir/a"), pattern(MIB, 1)).unwrap();
        fs::write(b.join("b"), pattern(MIB / 4, 2)).unwrap();
        fs::write(b.join("c"), pattern(MIB / 16, 3)).unwrap();
    })
}

/// A mount like [`mount`] whose every backend read sleeps 20 ms, its backing filled by `fill`.
fn slow_mount(fill: impl FnOnce(&std::path::Path)) -> TestMount {
    let mut opts = MOUNT_OPTS.to_vec();
    opts.extend(["--backend-latency", "20ms"]);
    TestMount::with_backing(&opts, fill)
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

/// The report of `name` once `done` says it covers the workload: a FUSE request's event is
/// queued just after its reply (its latency includes the reply), so the report read right
/// after the last read may come microseconds before that read's event (at most 10 s).
fn report_when(m: &TestMount, name: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = report(m, name).unwrap();
        if done(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The total of column `col` of ranking `title` of a hot-files report.
fn total(text: &str, title: &str, col: usize) -> u64 {
    ranking(text, title)
        .iter()
        .map(|r| r[col].parse::<u64>().unwrap())
        .sum()
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

/// A probe served from baseline code keeps it: what it has counted lives in its instance,
/// which a tier-up would start over. It serves, counts everything, and no tier-up is asked.
#[test]
fn a_probe_keeps_its_baseline_code_and_what_it_counted() {
    use std::time::Instant;
    let m = mount();
    let bytes = with_custom_section(
        &exported_policy("hot-files"),
        &format!("probe tiers {:?}", Instant::now()),
    );
    drop_plugin(&m, "hot-files.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "hot-files")["code"], "baseline");
    read(&m, "b", 2);
    read(&m, "c", 1);
    let all = (MIB / 2 + MIB / 16) as u64;
    let text = report_when(&m, "hot-files", |t| total(t, "by bytes read", 1) == all);
    assert_eq!(total(&text, "by bytes read", 1), all, "{text}");
    assert_eq!(ranking(&text, "by bytes read")[0][4], "b", "{text}");
    let st = status(&m);
    assert_eq!(plugin(&st, "hot-files")["state"], "active", "{st}");
    assert_eq!(plugin(&st, "hot-files")["code"], "baseline", "{st}");
    assert_eq!(st["tier_ups"]["requested"], 0, "{st}");
    assert_eq!(probes(&m), ["hot-files"]);
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
    let all = (3 * MIB + MIB / 2 + MIB / 16) as u64;
    let text = report_when(&m, "hot-files", |t| total(t, "by bytes read", 1) == all);
    let by_bytes = ranking(&text, "by bytes read");
    assert_eq!(by_bytes.len(), 3, "{text}");
    // rank bytes reads misses file
    assert_eq!(by_bytes[0][4], "dir/a", "{text}");
    assert_eq!(by_bytes[0][1], (3 * MIB).to_string(), "{text}");
    assert_eq!(by_bytes[1][4], "b", "{text}");
    assert_eq!(by_bytes[1][1], (MIB / 2).to_string(), "{text}");
    assert_eq!(by_bytes[2][4], "c", "{text}");
    // Each file's first block missed (the cache was cold); how many more did depends on how
    // far ahead the prefetcher got. A file's misses are the same in both rankings, and no
    // file missed more blocks than its reads asked for.
    let by_misses = ranking(&text, "by cache misses");
    assert_eq!(by_misses.len(), 3, "{text}");
    for row in &by_bytes {
        let m = by_misses.iter().find(|r| r[4] == row[4]).expect("in both");
        assert_eq!(m[1], row[3], "{text}");
        let misses: u64 = m[1].parse().unwrap();
        let blocks_read = row[1].parse::<u64>().unwrap().div_ceil(64 << 10);
        assert!((1..=blocks_read).contains(&misses), "{text}");
    }
    // `.kplug/stats` counts what it was given: every event delivered, none dropped.
    let stats: serde_json::Value =
        serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
    let counts = &stats["probes"]["hot-files"];
    assert!(counts["delivered"].as_u64().unwrap() > 16, "{counts}");
    assert_eq!(counts["dropped"], 0, "{counts}");
    // The plugin's status is active; rm removes the report.
    let st = status(&m);
    assert_eq!(plugin(&st, "hot-files")["state"], "active", "{st}");
    assert_eq!(plugin(&st, "hot-files")["probe"], true, "{st}");
    assert_eq!(stats["plugins"]["hot-files"]["probe"], true);
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
    report_when(&m, "hot-files", |t| {
        ranking(t, "by bytes read")
            .first()
            .is_some_and(|r| r[1] == MIB.to_string())
    });
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

/// `kplugfs stats MOUNT --probe NAME --watch` redraws the report every interval, showing what
/// was read meanwhile, and ends with an error naming the probe once it is removed.
#[test]
fn stats_watch_redraws_a_probe_report_until_the_probe_goes() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let m = mount();
    drop_plugin(&m, "hot-files.wasm", &exported_policy("hot-files")).unwrap();
    read(&m, "c", 1);
    let mut child = Command::new(kplugfs_tests::kplugfs_bin())
        .args(["stats", m.mnt.to_str().unwrap(), "--probe", "hot-files"])
        .args(["--watch", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    read(&m, "dir/a", 1);
    // Once the report shows dir/a, a redraw after it has surely happened.
    report_when(&m, "hot-files", |t| t.contains("dir/a"));
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_file(m.m(".kplug/plugins/hot-files.wasm")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("--watch did not end when its probe was removed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let redraws: Vec<&str> = text.split("\x1b[2J\x1b[H").skip(1).collect();
    assert!(redraws.len() >= 5, "{} redraws: {text}", redraws.len());
    assert!(
        redraws[0].contains(".kplug/probes/hot-files (every 100ms"),
        "{text}"
    );
    assert!(
        redraws[0].contains(" c\n") && !redraws[0].contains("dir/a"),
        "{text}"
    );
    assert!(redraws.last().unwrap().contains("dir/a"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no probe hot-files"), "{err}");
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
    let all = (2 * MIB + MIB / 4 + MIB / 16) as u64;
    let text = report_when(&m, "hot-files", |t| total(t, "by bytes read", 1) == all);
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

/// The rows of a space-separated report whose first column is `key`.
fn rows<'a>(text: &'a str, key: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|c| c[0] == key)
        .collect()
}

#[test]
fn latency_by_dir_shows_the_slow_directory() {
    // Every backend read sleeps 20 ms: a read that misses waits at least that long.
    let m = slow_mount(|b| {
        fs::create_dir(b.join("slow")).unwrap();
        fs::create_dir(b.join("fast")).unwrap();
        fs::write(b.join("slow/x"), pattern(MIB / 2, 4)).unwrap();
        fs::write(b.join("fast/y"), pattern(MIB / 4, 5)).unwrap();
        fs::write(b.join("top"), pattern(4096, 6)).unwrap();
    });
    read(&m, "fast/y", 1);
    drop_plugin(
        &m,
        "latency-by-dir.wasm",
        &exported_policy("latency-by-dir"),
    )
    .unwrap();
    read(&m, "fast/y", 3);
    read(&m, "slow/x", 1);
    read(&m, "top", 1);
    let text = report_when(&m, "latency-by-dir", |t| {
        rows(t, "/").first().is_some_and(|r| r[2] == "4096")
    });
    // dir reads bytes mean_us p50_us p99_us max_us
    let slow = &rows(&text, "slow")[0];
    let fast = &rows(&text, "fast")[0];
    let top = &rows(&text, "/")[0];
    assert_eq!(slow[2], (MIB / 2).to_string(), "{text}");
    assert_eq!(fast[2], (3 * MIB / 4).to_string(), "{text}");
    assert_eq!(top[2], "4096", "{text}");
    // The cold directory waited on the backend: its slowest read took at least 20 ms, and
    // its histogram has a line at or above [16384,32768) µs.
    let max_us: u64 = slow[6].parse().unwrap();
    assert!(max_us >= 20_000, "{text}");
    assert!(
        rows(&text, "slow").iter().skip(1).any(|r| {
            let lo: u64 = r[1]
                .trim_start_matches('[')
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            lo >= 16_384
        }),
        "{text}"
    );
    // Every file was named: nothing under "?".
    assert!(rows(&text, "?").is_empty(), "{text}");
}

#[test]
fn seq_by_process_tells_the_scanner_from_the_random_reader() {
    let m = mount();
    drop_plugin(
        &m,
        "seq-by-process.wasm",
        &exported_policy("seq-by-process"),
    )
    .unwrap();
    let file = m.m("dir/a");
    let scanner = std::process::Command::new("cat")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(scanner.success());
    // A random reader: 4 KiB at 32 scattered offsets, from a process of its own.
    let script = "import os,sys\n\
                  f=os.open(sys.argv[1],os.O_RDONLY)\n\
                  for i in range(32):\n    os.pread(f,4096,((i*37)%256)*4096)\n\
                  print(os.getpid())";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let random_pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let text = report_when(&m, "seq-by-process", |t| {
        t.lines()
            .skip(2)
            .any(|l| l.split(' ').nth(2) == Some(&MIB.to_string()))
            && !rows(t, &random_pid).is_empty()
    });
    // pid reads bytes sequential_pct files
    // (The kernel may read a little more than each 4 KiB around it.)
    let random = &rows(&text, &random_pid)[0];
    let random_pct: u64 = random[3].parse().unwrap();
    assert!(random_pct <= 25, "{text}");
    // The scanner read the whole file, sequentially.
    let scanners: Vec<_> = text
        .lines()
        .skip(2)
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|c| c[0] != random_pid)
        .collect();
    assert_eq!(scanners.len(), 1, "{text}");
    assert_eq!(scanners[0][2], MIB.to_string(), "{text}");
    assert_eq!(scanners[0][3], "100", "{text}");
}

#[test]
fn bottleneck_blames_the_backend_latency() {
    let m = slow_mount(|b| fs::write(b.join("cold"), pattern(MIB / 2, 7)).unwrap());
    drop_plugin(&m, "bottleneck.wasm", &exported_policy("bottleneck")).unwrap();
    read(&m, "cold", 1);
    let text = report(&m, "bottleneck").unwrap();
    let verdict = text.lines().find(|l| l.starts_with("verdict ")).unwrap();
    assert!(verdict.starts_with("verdict backend-latency:"), "{text}");
    // 8 blocks came from the backend, on demand or prefetched, each after a 20 ms sleep.
    let demand = &rows(&text, "backend_demand")[0];
    let prefetch = &rows(&text, "backend_prefetch")[0];
    let bytes: u64 = demand[4].parse::<u64>().unwrap() + prefetch[4].parse::<u64>().unwrap();
    assert!(bytes >= (MIB / 2) as u64, "{text}");
    let min_us: u64 = demand[8].parse().unwrap();
    assert!(min_us >= 20_000, "{text}");
}

/// Whether prefetch candidate `spec` of the governor serves, per the status.
fn candidate_active(m: &TestMount, spec: &str) -> bool {
    let st = status(m);
    st["active"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["spec"] == spec && c["active"] == true)
}

/// Wait (at most 10 s: governors tick every 100 ms) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_governor_adapts_to_a_figure_a_probe_publishes() {
    let m = mount();
    // scanboost reads the sequentiality from the probe's figure `const/seq`; no latency
    // threshold. The mount-wide sequentiality stays 0: nothing is read sequentially.
    fs::write(
        m.m(".kplug/plugins/scanboost.params"),
        "figure=const/seq\nlatency-us=0\n",
    )
    .unwrap();
    drop_plugin(&m, "scanboost.wasm", &exported_policy("scanboost")).unwrap();
    let modest = "readahead:initial-window=1;max-window=1";
    eventually("modest serves", || candidate_active(&m, modest));
    // A probe publishing `seq` = 1 after each batch of events it gets.
    let probe = kplugfs_tests::publishing_probe("seq", 1.0);
    drop_plugin(&m, "const.wasm", &probe).unwrap();
    read(&m, "c", 1);
    eventually("the probe's figure boosts prefetch", || {
        candidate_active(&m, "s3window")
    });
    // The probe goes, and its figure with it: back to the mount-wide figure (0).
    fs::remove_file(m.m(".kplug/plugins/const.wasm")).unwrap();
    eventually("backs off without the figure", || {
        candidate_active(&m, modest)
    });
    read(&m, "dir/a", 1);
}

/// The numbers of `dir`'s row (`*`: the total) of a policy-audit report: admitted refused
/// evicted wasted prefetched used accuracy_pct.
fn audit_row(text: &str, dir: &str) -> Option<Vec<u64>> {
    rows(text, dir)
        .first()
        .map(|r| r[1..].iter().map(|n| n.parse().unwrap()).collect())
}

/// ABI 1.7: the policies' decisions reach a probe (admissions, evictions, prefetches issued
/// and used) and agree with the cache's own counters, and a probe's subtree filter keeps the
/// events of the other directories out.
#[test]
fn policy_events_match_the_cache_counters_and_a_subtree_keeps_its_own() {
    // 16 blocks of cache, 64 blocks of files: evictions, and readahead on the scans.
    let m = TestMount::with_backing(
        &[
            "--cache-size",
            "1MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
        |b| {
            for dir in ["logs", "data"] {
                fs::create_dir(b.join(dir)).unwrap();
                fs::write(b.join(dir).join("f"), pattern(2 * MIB, dir.len() as u32)).unwrap();
            }
        },
    );
    let audit = exported_policy("policy-audit");
    drop_plugin(&m, "policy-audit.wasm", &audit).unwrap();
    fs::write(m.m(".kplug/plugins/audit-logs.params"), "subtree=/logs/\n").unwrap();
    drop_plugin(&m, "audit-logs.wasm", &audit).unwrap();
    // A subtree the host refuses fails the load with a clear status.
    fs::write(m.m(".kplug/plugins/audit-bad.params"), "subtree=logs/..\n").unwrap();
    assert!(drop_plugin(&m, "audit-bad.wasm", &audit).is_err());
    let st = status(&m);
    assert_eq!(plugin(&st, "audit-bad")["state"], "failed", "{st}");
    assert_eq!(probes(&m), ["audit-logs", "policy-audit"]);
    read(&m, "logs/f", 1);
    read(&m, "data/f", 2);
    // Prefetches end after the reads: wait until the probe's totals and the cache's counters
    // agree (every decision delivered, none dropped).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (text, stats) = loop {
        let text = report(&m, "policy-audit").unwrap();
        let stats: serde_json::Value =
            serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
        let c = &stats["cache"];
        let p = &stats["prefetch"];
        let want = [
            c["insertions"].as_u64().unwrap(),
            c["admission_refusals"].as_u64().unwrap(),
            c["evictions"].as_u64().unwrap(),
            p["wasted_blocks"].as_u64().unwrap(),
        ];
        let total = audit_row(&text, "*").unwrap();
        if total[..4] == want[..] && total[5] == p["used_blocks"].as_u64().unwrap()
            || std::time::Instant::now() > deadline
        {
            break (text, stats);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let total = audit_row(&text, "*").unwrap();
    let (c, p) = (&stats["cache"], &stats["prefetch"]);
    assert_eq!(
        total[0],
        c["insertions"].as_u64().unwrap(),
        "{text}\n{stats}"
    );
    assert_eq!(
        total[2],
        c["evictions"].as_u64().unwrap(),
        "{text}\n{stats}"
    );
    assert_eq!(
        total[3],
        p["wasted_blocks"].as_u64().unwrap(),
        "{text}\n{stats}"
    );
    assert_eq!(
        total[5],
        p["used_blocks"].as_u64().unwrap(),
        "{text}\n{stats}"
    );
    // 64 blocks of distinct data read (96 with the second pass) through 16 blocks of cache.
    assert!(total[0] >= 64 && total[2] >= 48, "{text}");
    // The scans were read ahead, and the readahead was used.
    let logs = audit_row(&text, "logs").expect("logs row");
    let data = audit_row(&text, "data").expect("data row");
    assert!(logs[4] > 0 && logs[5] > 0, "{text}");
    assert!(data[0] > logs[0], "data was read twice: {text}");
    assert!(total[5] <= total[4], "{text}");
    // The subtree probe saw exactly the logs row, nothing of data/.
    let sub = report(&m, "audit-logs").unwrap();
    assert!(audit_row(&sub, "data").is_none(), "{sub}");
    assert_eq!(audit_row(&sub, "logs"), Some(logs.clone()), "{sub}\n{text}");
    assert_eq!(audit_row(&sub, "*"), Some(logs), "{sub}");
    let counts = &stats["probes"]["policy-audit"];
    assert_eq!(counts["dropped"], 0, "{counts}");
}
