//! Plugins in a live mount, through `MOUNT/.kplug/`: loading, refusing, removing, the
//! owner-only rule, hostile plugins, and hot swaps under concurrent readers. Every read is
//! compared with the backing file: no plugin may ever cause a wrong byte.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant};

use kplugfs_tests::{
    Hostile, TestMount, active, drop_plugin, pattern, plugin, status, wat_lru, with_custom_section,
};

/// The SDK-built LRU policy, built once per test run.
fn lru_wasm() -> Vec<u8> {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let p = PATH.get_or_init(|| {
        let root = &kplugfs_tests::repo_root();
        let target = std::env::temp_dir().join("kplugfs-test-policies");
        kplug_catalog::build_policy(&root.join("policies/lru"), &target)
            .expect("build policies/lru")
    });
    fs::read(p).unwrap()
}

/// A mount with a small cache (so policies must evict) whose reads all reach the daemon.
fn small_cache_mount(files: usize, size: usize) -> TestMount {
    TestMount::with_backing(
        &[
            "--cache-size",
            "2MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
        |b| {
            for i in 0..files {
                fs::write(b.join(format!("f{i}")), pattern(size, i as u32)).unwrap();
            }
        },
    )
}

fn check_file(m: &TestMount, i: usize, size: usize) {
    assert_eq!(
        fs::read(m.m(&format!("f{i}"))).unwrap(),
        pattern(size, i as u32),
        "f{i}"
    );
}

#[test]
fn control_dir_lists_status_and_plugins_and_hides_backing_entry() {
    let m = TestMount::with_backing(&[], |b| {
        fs::create_dir(b.join(".kplug")).unwrap();
        fs::write(b.join(".kplug/mine"), b"user data").unwrap();
    });
    let mut names: Vec<_> = fs::read_dir(m.m(".kplug"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "metrics", "plugins", "probes", "scopes", "stats", "status", "trace", "views"
        ]
    );
    assert!(
        fs::read_dir(m.m(".kplug/plugins"))
            .unwrap()
            .next()
            .is_none()
    );
    let st = status(&m);
    assert_eq!(st["active"]["eviction"], "builtin:lru");
    assert_eq!(st["active"]["admission"], "builtin:admit-all");
    assert_eq!(st["active"]["prefetch"], "builtin:readahead");
    // The backing entry of that name is hidden, not touched, and cannot be reached.
    assert_eq!(fs::read(m.b(".kplug/mine")).unwrap(), b"user data");
    assert!(fs::read(m.m(".kplug/mine")).is_err());
    assert_eq!(
        fs::read_dir(m.m(""))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() == ".kplug")
            .count(),
        1
    );
    // The tree cannot be removed or renamed.
    assert!(fs::remove_dir(m.m(".kplug/plugins")).is_err());
    assert!(fs::rename(m.m(".kplug"), m.m("elsewhere")).is_err());
    assert!(fs::write(m.m(".kplug/status"), b"x").is_err());
}

#[test]
fn load_swap_and_remove_a_plugin() {
    let m = small_cache_mount(4, 1 << 20);
    check_file(&m, 0, 1 << 20);
    drop_plugin(&m, "lru.wasm", &lru_wasm()).expect("close of a valid plugin succeeds");
    assert_eq!(active(&m, "eviction"), "lru");
    for i in 0..4 {
        check_file(&m, i, 1 << 20);
    }
    let st = status(&m);
    let p = plugin(&st, "lru");
    assert_eq!(p["state"], "active");
    assert_eq!(p["roles"], serde_json::json!(["eviction"]));
    assert!(p["calls"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["faults"], 0);
    assert!(p["error"].is_null());
    assert!(p["loaded_at"].as_u64().unwrap() > 1_600_000_000_000);
    // The WAT plugin (no SDK) replaces it.
    drop_plugin(&m, "wat-lru.wasm", &wat_lru()).unwrap();
    assert_eq!(active(&m, "eviction"), "wat-lru");
    assert_eq!(plugin(&status(&m), "lru")["state"], "disabled");
    for i in 0..4 {
        check_file(&m, i, 1 << 20);
    }
    // rm returns its roles to the built-ins.
    fs::remove_file(m.m(".kplug/plugins/wat-lru.wasm")).unwrap();
    assert_eq!(active(&m, "eviction"), "builtin:lru");
    check_file(&m, 2, 1 << 20);
}

/// The C SDK's LRU (`policies/c/lru.c`, built by clang) serves a mount: it evicts (the host
/// validates every victim it proposes: one not resident would fault it), reads stay correct,
/// and it never faults. Skipped loudly without clang and lld unless `KPLUGFS_C_REQUIRED=1`.
#[test]
fn the_c_lru_serves_a_mount() {
    let root = kplugfs_tests::repo_root();
    let out = std::env::temp_dir().join(format!("kplugfs-test-lru-c-{}.wasm", std::process::id()));
    match kplug_catalog::build_c_policy(
        &root.join("policies/c/lru.c"),
        &root.join("plugin-sdk/c"),
        &out,
    ) {
        Ok(_) => {}
        Err(e)
            if e.toolchain_missing()
                && std::env::var_os("KPLUGFS_C_REQUIRED").is_none_or(|v| v != "1") =>
        {
            eprintln!("SKIPPED: the C lru needs clang and lld (scripts/setup.sh): {e}");
            return;
        }
        Err(e) => panic!("building policies/c/lru.c: {e}"),
    }
    let wasm = fs::read(&out).unwrap();
    let _ = fs::remove_file(&out);
    // 4 files of 1 MiB through a 2 MiB cache of 64 KiB blocks: every pass evicts.
    let m = small_cache_mount(4, 1 << 20);
    drop_plugin(&m, "lru-c.wasm", &wasm).expect("close of the C plugin succeeds");
    assert_eq!(active(&m, "eviction"), "lru-c");
    let before = status(&m)["cache"]["evictions"].as_u64().unwrap();
    for _ in 0..2 {
        for i in 0..4 {
            check_file(&m, i, 1 << 20);
        }
    }
    let st = status(&m);
    let p = plugin(&st, "lru-c");
    assert_eq!(p["state"], "active", "{p}");
    assert_eq!(p["faults"], 0, "{p}");
    assert_eq!(st["cache"]["faults"], 0);
    let evicted = st["cache"]["evictions"].as_u64().unwrap() - before;
    assert!(evicted >= 64, "8 MiB read through 2 MiB evicts: {evicted}");
}

#[test]
fn invalid_plugins_are_refused_at_close_and_change_nothing() {
    let m = small_cache_mount(2, 1 << 20);
    drop_plugin(&m, "lru.wasm", &lru_wasm()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage.wasm", b"this is not wasm at all".to_vec(), "not a WebAssembly binary"),
        (
            "abi9.wasm",
            wat::parse_str(
                r#"(module (memory (export "memory") 1) (func (export "kplug_abi_version") (result i32) i32.const 0x90000)
                   (func (export "kplug_evict_insert") (param i64)) (func (export "kplug_evict_access") (param i64))
                   (func (export "kplug_evict_remove") (param i64)) (func (export "kplug_evict_victim") (result i64) i64.const 0))"#,
            )
            .unwrap(),
            "ABI version",
        ),
        (
            "wasi.wasm",
            wat::parse_str(
                r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                   (memory (export "memory") 1) (func (export "kplug_abi_version") (result i32) i32.const 0x10000))"#,
            )
            .unwrap(),
            "wasi_snapshot_preview1.fd_write",
        ),
        (
            "half.wasm",
            wat::parse_str(
                r#"(module (memory (export "memory") 1) (func (export "kplug_abi_version") (result i32) i32.const 0x10000)
                   (func (export "kplug_evict_insert") (param i64)))"#,
            )
            .unwrap(),
            "missing export",
        ),
    ];
    for (name, bytes, why) in cases {
        let err = drop_plugin(&m, name, &bytes).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{name}: {err}");
        let st = status(&m);
        let p = plugin(&st, name.trim_end_matches(".wasm"));
        assert_eq!(p["state"], "failed", "{p}");
        assert!(p["error"].as_str().unwrap().contains(why), "{name}: {p}");
        assert_eq!(
            st["active"]["eviction"], "lru",
            "a refused plugin must not replace the active one"
        );
        check_file(&m, 1, 1 << 20);
    }
    // `cp` reports the failure too.
    let garbage = m.root.path().join("garbage.bin");
    fs::write(&garbage, b"\0asm garbage").unwrap();
    let out = Command::new("cp")
        .arg(&garbage)
        .arg(m.m(".kplug/plugins/cp.wasm"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid argument"));
}

#[test]
fn only_the_mount_owner_may_write_plugins() {
    let m = TestMount::new(&[]);
    fs::set_permissions(
        m.root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let lru = m.root.path().join("lru.wasm");
    fs::write(&lru, lru_wasm()).unwrap();
    fs::set_permissions(&lru, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = kplugfs_tests::as_nobody(&format!(
        "cp {} {}",
        lru.display(),
        m.m(".kplug/plugins/lru.wasm").display()
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert_eq!(active(&m, "eviction"), "builtin:lru");
    // Everyone may read the status.
    let out = kplugfs_tests::as_nobody(&format!("cat {}", m.m(".kplug/status").display()));
    assert!(out.status.success());
}

/// A plugin that faults while serving: the built-in takes over and every byte stays right.
#[test]
fn hostile_plugins_are_disabled_and_reads_stay_correct() {
    let m = small_cache_mount(3, 1 << 20);
    for kind in Hostile::ALL {
        let (name, why) = (kind.file_name(), kind.reason());
        drop_plugin(&m, name, &kind.wasm()).unwrap();
        // 3 MiB through a 2 MiB cache: evictions must happen, so the bad hook runs.
        for i in 0..3 {
            check_file(&m, i, 1 << 20);
        }
        let st = status(&m);
        let p = plugin(&st, name.trim_end_matches(".wasm"));
        assert_eq!(p["state"], "failed", "{name}: {p}");
        assert_eq!(p["faults"], 1, "{p}");
        assert!(
            p["error"].as_str().unwrap().to_lowercase().contains(why),
            "{name}: {p}"
        );
        assert_eq!(st["active"]["eviction"], "builtin:lru");
    }
}

#[test]
fn hundred_swaps_under_concurrent_readers_never_fail_a_read() {
    const FILES: usize = 4;
    const SIZE: usize = 768 << 10;
    let m = Arc::new(small_cache_mount(FILES, SIZE));
    let want: Vec<Vec<u8>> = (0..FILES).map(|i| pattern(SIZE, i as u32)).collect();
    let want = Arc::new(want);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (m, want, stop, reads) = (m.clone(), want.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut x = 0x9E3779B97F4A7C15u64 ^ t;
                while !stop.load(Ordering::Relaxed) {
                    kplugfs_tests::xorshift(&mut x);
                    let i = (x % FILES as u64) as usize;
                    let off = (x >> 8) % SIZE as u64;
                    let len = ((x >> 32) % (200 << 10)) as usize + 1;
                    let mut f = fs::File::open(m.m(&format!("f{i}"))).expect("open");
                    f.seek(SeekFrom::Start(off)).unwrap();
                    let mut buf = vec![0u8; len];
                    let mut got = 0;
                    while got < len {
                        let n = f.read(&mut buf[got..]).expect("read never fails");
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    let end = (off as usize + len).min(SIZE);
                    assert_eq!(&buf[..got], &want[i][off as usize..end], "f{i} at {off}");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let plugins = [("lru.wasm", lru_wasm()), ("wat-lru.wasm", wat_lru())];
    for k in 0..120 {
        let (name, bytes) = &plugins[k % 2];
        drop_plugin(&m, name, bytes).expect("swap");
        if k % 10 == 9 {
            fs::remove_file(m.m(&format!(".kplug/plugins/{name}"))).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join()
            .expect("reader thread: a read failed or returned wrong bytes");
    }
    assert!(reads.load(Ordering::Relaxed) > 50, "readers made progress");
    let st = status(&m);
    assert_eq!(st["cache"]["faults"], 0, "{st}");
}

/// Chaos plugins dropped again and again into a mount, each hook set with new parameters (its
/// seed, hit batch, blocks named ahead, rate of departures) or new parameters for the one
/// serving, some removed, half of them serving admission and prefetch too (blocks refused,
/// prefetches of anything in the file, of the whole file 64 times over, or past its end),
/// the chaos governor over them (any activation and weight each tick, its mount's ticker and
/// spares), whose status tells the truth at every step,
/// under 2 verifying readers and a writer that rewrites ranges of its own file and reads all
/// of it back (invalidations while hits wait, and while prefetches are in flight): every byte
/// read is right, every plugin is active, failed with one line naming its hook, or out of
/// service, and the mount serves every file whole at the end.
#[test]
fn chaos_plugins_never_change_a_byte() {
    const FILES: usize = 3;
    const SIZE: usize = 768 << 10;
    let m = small_cache_mount(FILES, SIZE);
    let want = (0..FILES).map(|i| pattern(SIZE, i as u32)).collect();
    let path = m.m("w");
    let writer = move |stop: &AtomicBool| {
        use std::io::Write;
        let mut model = pattern(SIZE, 7);
        fs::write(&path, &model).unwrap();
        let (mut x, mut writes) = (0x9E37_79B9_7F4A_7C15u64, 0);
        while !stop.load(Ordering::Relaxed) {
            kplugfs_tests::xorshift(&mut x);
            let off = ((x >> 8) % SIZE as u64) as usize;
            let len = (((x >> 32) % (100 << 10)) as usize + 1).min(SIZE - off);
            model[off..off + len].fill(x as u8);
            let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.seek(SeekFrom::Start(off as u64)).unwrap();
            f.write_all(&model[off..off + len]).unwrap();
            drop(f);
            assert!(
                fs::read(&path).unwrap() == model,
                "w after a write at {off}"
            );
            writes += 1;
        }
        writes
    };
    let (reads, writes) = kplugfs_tests::chaos::run_chaos(&m.mnt, want, 60, 0x5_DEEC_E66D, writer);
    assert!(reads > 20 && writes > 5, "{reads} reads, {writes} writes");
    kplugfs_tests::chaos::check_chaos_status(&status(&m));
    for i in 0..FILES {
        check_file(&m, i, SIZE);
    }
}

#[test]
fn params_files_are_checked_and_reload_the_plugin() {
    let m = small_cache_mount(1, 1 << 20);
    drop_plugin(&m, "lru.wasm", &lru_wasm()).unwrap();
    // Not key=value: refused at close.
    let err = drop_plugin(&m, "lru.params", b"just words").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    // Well-formed, but the LRU takes no parameters: the reload is refused and the running
    // instance stays.
    let err = drop_plugin(&m, "lru.params", b"window=3").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(active(&m, "eviction"), "lru");
    assert_eq!(plugin(&status(&m), "lru")["state"], "active");
    check_file(&m, 0, 1 << 20);
    // An empty parameter file is accepted and reloads the plugin.
    drop_plugin(&m, "lru.params", b"# no parameters\n").unwrap();
    assert_eq!(active(&m, "eviction"), "lru");
    check_file(&m, 0, 1 << 20);
}

/// Polls `status` until plugin `name`'s `code` is `code`; reads every file meanwhile.
fn wait_for_code(m: &TestMount, name: &str, code: &str, files: usize, size: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for i in 0..files {
            check_file(m, i, size);
        }
        let st = status(m);
        if plugin(&st, name)["code"] == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never ran {code} code: {}",
            plugin(&st, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A module the mount never compiled serves at once from baseline code (Winch) and is
/// swapped to optimized code (Cranelift) in the background, reads staying correct; its
/// `swap_latency_us` stays what the baseline code measured; the same bytes again load
/// optimized at once (the compiled-module cache); `--plugin-code optimized` waits for the
/// optimized code instead.
#[test]
fn a_module_never_compiled_serves_from_baseline_code_then_optimized() {
    let m = small_cache_mount(4, 1 << 20);
    let bytes = with_custom_section(
        &lru_wasm(),
        &format!("tiers {} {:?}", std::process::id(), Instant::now()),
    );
    drop_plugin(&m, "lru.wasm", &bytes).unwrap();
    let p = plugin(&status(&m), "lru").clone();
    assert_eq!(p["code"], "baseline", "{p}");
    assert_eq!(p["state"], "active", "{p}");
    check_file(&m, 0, 1 << 20);
    let latency = plugin(&status(&m), "lru")["swap_latency_us"].clone();
    assert!(latency.is_u64(), "the baseline code decided: {latency}");
    wait_for_code(&m, "lru", "optimized", 4, 1 << 20);
    let st = status(&m);
    let p = plugin(&st, "lru");
    assert_eq!(p["state"], "active", "{p}");
    assert_eq!(p["faults"], 0, "{p}");
    assert_eq!(p["swap_latency_us"], latency, "{p}");
    assert_eq!(active(&m, "eviction"), "lru");
    check_file(&m, 3, 1 << 20);
    assert!(plugin(&status(&m), "lru")["calls"].as_u64().unwrap() > 0);
    // The same bytes under another name: optimized code from the cache, no tier-up.
    drop_plugin(&m, "again.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "again")["code"], "optimized");
    drop(m);

    let m = TestMount::with_backing(&["--plugin-code", "optimized"], |b| {
        fs::write(b.join("f0"), pattern(1 << 20, 0)).unwrap();
    });
    let fresh = with_custom_section(&lru_wasm(), &format!("optimized {:?}", Instant::now()));
    drop_plugin(&m, "lru.wasm", &fresh).unwrap();
    assert_eq!(plugin(&status(&m), "lru")["code"], "optimized");
    check_file(&m, 0, 1 << 20);
}

/// New parameters are never undone by the tier-up made for the old ones. An admission plugin
/// whose `kplug_init` takes 1 s is loaded with `v=1` (admit everything) and at once reloaded
/// with `v=2` (refuse everything), on baseline code again (Cranelift has not finished): the
/// first tier-up, ready within that second, reads `v=1` while the reload prepares, and used
/// to install it over the reload (same bytes, same generation, baseline code: its check
/// passed). Once optimized code serves and the tier-ups have settled, blocks are refused.
#[test]
fn a_tier_up_never_undoes_new_parameters() {
    let m = small_cache_mount(1, 1 << 20);
    let pad = "i32.const 1 i32.add ".repeat(1_000);
    let text = format!(
        r#"(module
             (import "kplug" "now_ns" (func $now (result i64)))
             (memory (export "memory") 1)
             (global $answer (mut i32) (i32.const 1))
             (func (export "kplug_abi_version") (result i32) i32.const 0x10001)
             (func (export "kplug_alloc") (param i32) (result i32) i32.const 1024)
             ;; v=1 admits, v=2 refuses.
             (func (export "kplug_set_param") (param i32 i32 i32 i32) (result i32)
               (global.set $answer (i32.eq (i32.load8_u (local.get 2)) (i32.const 49)))
               i32.const 0)
             (func (export "kplug_init") (param i64) (result i32) (local $t i64)
               (local.set $t (call $now))
               (loop $l (br_if $l (i64.lt_u (i64.sub (call $now) (local.get $t))
                 (i64.const 1000000000))))
               i32.const 0)
             (func (export "kplug_admit") (param i64 i64 i64) (result i32) global.get $answer)
             (func $pad (param i32) (result i32) local.get 0 {pad}))"#
    );
    let bytes = with_custom_section(
        &wat::parse_str(&text).unwrap(),
        &format!("{:?}", Instant::now()),
    );
    drop_plugin(&m, "slow.params", b"v=1").unwrap();
    drop_plugin(&m, "slow.wasm", &bytes).unwrap();
    drop_plugin(&m, "slow.params", b"v=2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while plugin(&status(&m), "slow")["code"] != "optimized" {
        assert!(Instant::now() < deadline, "never optimized: {}", status(&m));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Any tier-up still in flight settles (each takes the second of its kplug_init).
    std::thread::sleep(Duration::from_millis(2500));
    let misses = || status(&m)["cache"]["misses"].as_u64().unwrap();
    check_file(&m, 0, 1 << 20);
    let before = misses();
    check_file(&m, 0, 1 << 20);
    assert_eq!(misses() - before, 16, "blocks admitted: {}", status(&m));
}

/// A baseline instance that faults stays failed: its optimized code, ready later, does not
/// bring it back; the built-in keeps serving and every read is right.
#[test]
fn a_tier_up_never_undoes_a_fault() {
    let m = small_cache_mount(4, 1 << 20);
    // Hostile::Trap with a large function no hook calls: Cranelift takes far longer on it
    // than the reads below take to reach the victim hook, so the fault hits baseline code.
    let pad = "i32.const 1 i32.add ".repeat(4_000);
    let text = format!(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) i32.const 0x10000)
             (func (export "kplug_evict_insert") (param i64))
             (func (export "kplug_evict_access") (param i64))
             (func (export "kplug_evict_remove") (param i64))
             (func (export "kplug_evict_victim") (result i64) unreachable)
             (func $pad (param i32) (result i32) local.get 0 {pad}))"#
    );
    let bytes = with_custom_section(
        &wat::parse_str(&text).unwrap(),
        &format!("{:?}", Instant::now()),
    );
    drop_plugin(&m, "trap.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "trap")["code"], "baseline");
    for i in 0..4 {
        check_file(&m, i, 1 << 20); // fills the cache past its capacity: the victim hook traps
    }
    let failed = |m: &TestMount| {
        let st = status(m);
        let p = plugin(&st, "trap").clone();
        assert_eq!(p["state"], "failed", "{p}");
        assert!(p["error"].as_str().unwrap().contains("trap"), "{p}");
        assert_eq!(active(m, "eviction"), "builtin:lru");
        p
    };
    failed(&m);
    // The optimizer has taken the request up (and its load has run): nothing changed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let tier_ups = loop {
        let t = status(&m)["tier_ups"].clone();
        if t["dropped"].as_u64().unwrap() + t["optimized"].as_u64().unwrap() >= 1 {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the optimizer never took the job: {t}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Dropped if the fault came first; else compiled, and its load refused at install.
    assert_eq!(tier_ups["requested"], 1, "{tier_ups}");
    assert_eq!(tier_ups["failed"], 0, "{tier_ups}");
    for i in 0..4 {
        check_file(&m, i, 1 << 20);
    }
    assert_eq!(failed(&m)["code"], "baseline");
}

/// A module never compiled (unique to this call) that Cranelift takes long to optimize and
/// Winch compiles at once: the WAT LRU with the functions `extra` and a large function no
/// hook calls.
fn slow_wat_lru(extra: &str, tag: &str) -> Vec<u8> {
    let lru =
        fs::read_to_string(kplugfs_tests::repo_root().join("policies/lru-wat/lru.wat")).unwrap();
    let end = lru.rfind(')').unwrap();
    let pad = "i32.const 1 i32.add ".repeat(4_000);
    let text = format!(
        "{}\n{extra}\n(func $pad (param i32) (result i32) local.get 0 {pad}))",
        &lru[..end]
    );
    with_custom_section(
        &wat::parse_str(&text).unwrap(),
        &format!("{tag} {:?}", Instant::now()),
    )
}

/// A tier-up takes only the roles its baseline instance still serves: a file copied in
/// meanwhile keeps the roles it took. Plugin `both` (the WAT LRU with an admission hook that
/// admits everything, and a large function no hook calls so that Cranelift takes long) serves
/// eviction and admission from baseline code; the SDK LRU, copied in next, takes eviction;
/// `both`'s optimized code then serves admission only.
#[test]
fn a_tier_up_leaves_the_roles_another_file_took() {
    let m = small_cache_mount(4, 1 << 20);
    let bytes = slow_wat_lru(
        r#"(func (export "kplug_admit") (param i64 i64 i64) (result i32) i32.const 1)"#,
        "roles",
    );
    drop_plugin(&m, "both.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "both")["code"], "baseline");
    assert_eq!(active(&m, "eviction"), "both");
    assert_eq!(active(&m, "admission"), "both");
    drop_plugin(&m, "lru.wasm", &lru_wasm()).unwrap();
    assert_eq!(active(&m, "eviction"), "lru");
    wait_for_code(&m, "both", "optimized", 4, 1 << 20);
    let st = status(&m);
    assert_eq!(plugin(&st, "both")["state"], "active", "{st}");
    assert_eq!(plugin(&st, "lru")["state"], "active", "{st}");
    assert_eq!(active(&m, "eviction"), "lru");
    assert_eq!(active(&m, "admission"), "both");
    for i in 0..4 {
        check_file(&m, i, 1 << 20);
    }
}

/// A newer copy of a plugin file that is refused leaves the instance serving as it was, and
/// that instance still tiers up: from the bytes it was loaded from, not the file's refused ones.
#[test]
fn a_refused_newer_copy_does_not_stop_the_tier_up() {
    let m = small_cache_mount(4, 1 << 20);
    // Slow to optimize: the refused copy comes before the optimized code.
    let bytes = slow_wat_lru("", "refused");
    drop_plugin(&m, "lru.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "lru")["code"], "baseline");
    assert!(drop_plugin(&m, "lru.wasm", b"not a module").is_err());
    let p = plugin(&status(&m), "lru").clone();
    assert_eq!(p["state"], "active", "{p}");
    wait_for_code(&m, "lru", "optimized", 4, 1 << 20);
    let p = plugin(&status(&m), "lru").clone();
    assert_eq!(p["state"], "active", "{p}");
    assert_eq!(active(&m, "eviction"), "lru");
    for i in 0..4 {
        check_file(&m, i, 1 << 20);
    }
}
