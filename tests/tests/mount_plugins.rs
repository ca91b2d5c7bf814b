//! Policies chosen at mount time and kept across mounts, through real mounts:
//! `--plugin PATH.wasm[:params]`, `--policy NAME[:params]`, the same as `-o` mount options,
//! failures reported (or fatal with `--strict-plugins`), and the state directory that keeps
//! what was dropped into `.kplug/plugins/` for the next mount of the same mount point.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::path::Path;

use kplugfs_tests::{
    TestMount, active, drop_plugin, is_kplugfs_mount, kplugfs, plugin, status, wat_lru,
};

/// `kplugfs mount` of `m`'s directories again, with `extra`; returns stderr.
fn remount(m: &TestMount, extra: &[&str]) -> String {
    let history = m.root.path().join("history2.db");
    let mut args = vec![
        "mount",
        m.backing.to_str().unwrap(),
        m.mnt.to_str().unwrap(),
        "--history-db",
        history.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = kplugfs(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mount failed: {stderr}");
    assert!(is_kplugfs_mount(&m.mnt));
    stderr
}

fn umount(m: &TestMount) {
    let out = kplugfs(&["umount", m.mnt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn scratch_wasm(name: &str, bytes: &[u8]) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir_in("/var/tmp").unwrap();
    let p = d.path().join(name);
    fs::write(&p, bytes).unwrap();
    (d, p.to_str().unwrap().to_string())
}

#[test]
fn plugin_and_policy_flags_load_before_the_mount_appears() {
    let (_d, lru) = scratch_wasm("mylru.wasm", &wat_lru());
    let m = TestMount::new(&[
        "--no-keep-plugins",
        "--plugin",
        &lru,
        "--policy",
        "maxsize:bytes=65536",
    ]);
    let st = status(&m);
    assert_eq!(active(&m, "eviction"), "mylru", "{st}");
    assert_eq!(active(&m, "admission"), "maxsize", "{st}");
    assert_eq!(
        fs::read_to_string(m.m(".kplug/plugins/maxsize.params")).unwrap(),
        "bytes=65536\n"
    );
    assert_eq!(
        listing(&m.m(".kplug/plugins")),
        ["maxsize.params", "maxsize.wasm", "mylru.wasm"]
    );
    // The plugins serve reads like dropped ones.
    fs::write(m.b("f"), vec![7u8; 300_000]).unwrap();
    assert_eq!(fs::read(m.m("f")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(plugin(&status(&m), "mylru")["state"], "active");
}

#[test]
fn mount_options_name_the_same_flags() {
    let (_d, lru) = scratch_wasm("olru.wasm", &wat_lru());
    let opts = format!(
        "nosuid,nodev,noauto,x-systemd.automount,ro,no_keep_plugins,cache_size=8MiB,plugin={lru},policy=pathfilter:exclude=*.log"
    );
    let m = TestMount::new(&["-o", &opts]);
    assert_eq!(active(&m, "eviction"), "olru");
    assert_eq!(active(&m, "admission"), "pathfilter");
    assert_eq!(
        fs::read_to_string(m.m(".kplug/plugins/pathfilter.params")).unwrap(),
        "exclude=*.log\n"
    );
    // `ro` mounted read-only.
    let e = fs::write(m.m("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    // cache_size=8MiB: 64 blocks of the default 128 KiB.
    let stats: serde_json::Value =
        serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
    assert_eq!(stats["cache"]["capacity_blocks"], 64, "{stats}");

    // An unknown option is refused, naming it, and nothing is mounted.
    let out = kplugfs(&[
        "mount",
        m.backing.to_str().unwrap(),
        m.root.path().to_str().unwrap(),
        "-o",
        "bogus_option=1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bogus-option"), "{err}");
}

#[test]
fn a_plugin_failing_at_mount_is_reported_and_strict_refuses_to_mount() {
    let (_d, garbage) = scratch_wasm("broken.wasm", b"not a module");
    let m = TestMount::new(&["--no-keep-plugins"]);
    umount(&m);
    let stderr = remount(
        &m,
        &["--no-keep-plugins", "--plugin", &garbage, "--policy", "lru"],
    );
    assert!(
        stderr.contains("warning") && stderr.contains("broken.wasm"),
        "{stderr}"
    );
    let st = status(&m);
    assert_eq!(plugin(&st, "broken")["state"], "failed", "{st}");
    assert_eq!(active(&m, "eviction"), "lru");
    umount(&m);

    let missing = m.root.path().join("missing.wasm");
    for bad in [garbage.as_str(), missing.to_str().unwrap()] {
        let out = kplugfs(&[
            "mount",
            m.backing.to_str().unwrap(),
            m.mnt.to_str().unwrap(),
            "--history-period",
            "0s",
            "--no-keep-plugins",
            "--strict-plugins",
            "--plugin",
            bad,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "strict mount of {bad} succeeded");
        assert!(
            err.contains("--strict-plugins") && err.contains(".wasm"),
            "{err}"
        );
        assert!(!is_kplugfs_mount(&m.mnt), "strict failure left a mount");
    }
    // A bad spec is a usage error before anything happens.
    let out = kplugfs(&["mount", "/", "/mnt", "--policy", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no policy named"));
}

#[test]
fn dropped_plugins_are_kept_and_loaded_at_the_next_mount() {
    let m = TestMount::new(&[]);
    let state = m.root.path().join("state");
    let state_arg = state.to_str().unwrap();
    umount(&m);
    remount(&m, &["--state-dir", state_arg]);
    fs::write(m.m(".kplug/plugins/maxsize.params"), "bytes=4096\n").unwrap();
    let out = kplugfs(&[
        "policy",
        "export",
        "maxsize",
        m.m(".kplug/plugins").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    drop_plugin(&m, "watlru.wasm", &wat_lru()).unwrap();
    // A refused drop is not kept.
    drop_plugin(&m, "junk.wasm", b"junk").unwrap_err();
    let kept = state.join("plugins");
    assert_eq!(
        listing(&kept),
        ["maxsize.params", "maxsize.wasm", "watlru.wasm"]
    );
    assert_eq!(fs::read(kept.join("watlru.wasm")).unwrap(), wat_lru());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
        0o700
    );
    umount(&m);

    remount(&m, &["--state-dir", state_arg]);
    assert_eq!(active(&m, "eviction"), "watlru");
    assert_eq!(active(&m, "admission"), "maxsize");
    assert_eq!(
        fs::read_to_string(m.m(".kplug/plugins/maxsize.params")).unwrap(),
        "bytes=4096\n"
    );
    // rm forgets it for the next mount too; a new parameter file replaces the kept one.
    fs::remove_file(m.m(".kplug/plugins/watlru.wasm")).unwrap();
    fs::write(m.m(".kplug/plugins/maxsize.params"), "bytes=8192\n").unwrap();
    assert_eq!(listing(&kept), ["maxsize.params", "maxsize.wasm"]);
    assert_eq!(
        fs::read_to_string(kept.join("maxsize.params")).unwrap(),
        "bytes=8192\n"
    );
    umount(&m);

    // --no-keep-plugins neither loads nor writes the kept files.
    remount(&m, &["--state-dir", state_arg, "--no-keep-plugins"]);
    assert_eq!(active(&m, "admission"), "builtin:admit-all");
    drop_plugin(&m, "watlru.wasm", &wat_lru()).unwrap();
    assert_eq!(listing(&kept), ["maxsize.params", "maxsize.wasm"]);
    umount(&m);

    // The command line wins over a kept file of the same name.
    remount(
        &m,
        &["--state-dir", state_arg, "--policy", "maxsize:bytes=1024"],
    );
    assert_eq!(
        fs::read_to_string(m.m(".kplug/plugins/maxsize.params")).unwrap(),
        "bytes=1024\n"
    );
    assert_eq!(plugin(&status(&m), "maxsize")["state"], "active");
}

#[test]
fn the_default_state_dir_is_per_mount_point() {
    // TestMount keeps its state in its scratch directory; this mount uses the default.
    let m = TestMount::new(&["--no-keep-plugins"]);
    umount(&m);
    remount(&m, &[]);
    drop_plugin(&m, "watlru.wasm", &wat_lru()).unwrap();
    let name = m.mnt.to_str().unwrap().replace('/', "_");
    let dir = Path::new("/var/lib/kplugfs/mounts").join(name);
    let kept = dir.join("plugins/watlru.wasm");
    let found = kept.exists();
    umount(&m);
    remount(&m, &[]);
    let eviction = active(&m, "eviction");
    umount(&m);
    let _ = fs::remove_dir_all(&dir);
    assert!(found, "{} not written", kept.display());
    assert_eq!(eviction, "watlru");
}
