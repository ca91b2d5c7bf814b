//! Scopes (`.kplug/scopes/NAME/`) in a live mount: a subtree's share of the cache held
//! against a scan beside it, its own plugins and the ones it inherits, nesting and renames,
//! a faulting plugin in one scope, a hot swap in one scope while another is read, and
//! `rmdir` handing the blocks back.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kplugfs_tests::{
    TestMount, drop_plugin_at, drop_plugin_in, exported_policy, fixtures, pattern,
};
use serde_json::Value;

const KIB: usize = 1 << 10;

/// 16 blocks of 64 KiB, no readahead (what is resident is what was read), no kernel cache
/// (every read reaches the daemon).
const OPTS: [&str; 7] = [
    "--readahead",
    "0",
    "--cache-size",
    "1MiB",
    "--block-size",
    "64KiB",
    "--no-kernel-cache",
];

fn mount() -> TestMount {
    TestMount::with_backing(&OPTS, |b| {
        for d in ["hot", "scan", "other", "s/in"] {
            fs::create_dir_all(b.join(d)).unwrap();
        }
        fs::write(b.join("hot/a"), pattern(512 * KIB, 1)).unwrap();
        fs::write(b.join("scan/b"), pattern(2048 * KIB, 2)).unwrap();
        fs::write(b.join("s/f"), pattern(256 * KIB, 3)).unwrap();
        fs::write(b.join("s/in/g"), pattern(512 * KIB, 4)).unwrap();
    })
}

fn read(m: &TestMount, rel: &str) {
    assert!(
        fs::read(m.m(rel)).unwrap() == fs::read(m.b(rel)).unwrap(),
        "{rel}: wrong bytes"
    );
}

fn stats(m: &TestMount) -> Value {
    serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap()
}

fn status(m: &TestMount) -> Value {
    serde_json::from_slice(&fs::read(m.m(".kplug/status")).unwrap()).unwrap()
}

fn scope(m: &TestMount, name: &str) -> Value {
    stats(m)["scopes"][name].clone()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn set(m: &TestMount, scope: &str, file: &str, text: &str) -> std::io::Result<()> {
    fs::write(m.m(&format!(".kplug/scopes/{scope}/{file}")), text)
}

/// Load shipped policy `policy` into scope `scope`'s `plugins/`.
fn scope_policy(m: &TestMount, scope: &str, policy: &str) {
    let dir = m.mnt.join(format!(".kplug/scopes/{scope}/plugins"));
    drop_plugin_in(&dir, &format!("{policy}.wasm"), &exported_policy(policy)).unwrap();
}

fn make(m: &TestMount, name: &str, path: &str) {
    fs::create_dir(m.m(&format!(".kplug/scopes/{name}"))).unwrap();
    set(m, name, "path", &format!("{path}\n")).unwrap();
}

#[test]
fn a_scope_keeps_its_share_against_a_scan_beside_it() {
    let m = mount();
    make(&m, "hot", "hot");
    set(&m, "hot", "share", "50%\n").unwrap();
    assert_eq!(
        fs::read_to_string(m.m(".kplug/scopes/hot/path")).unwrap(),
        "hot\n"
    );
    assert_eq!(
        fs::read_to_string(m.m(".kplug/scopes/hot/share")).unwrap(),
        "50%\n"
    );
    let mut names: Vec<String> = fs::read_dir(m.m(".kplug/scopes/hot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["path", "plugins", "share"]);

    read(&m, "hot/a");
    let hot = scope(&m, "hot");
    assert_eq!(n(&hot["resident_blocks"]), 8, "{hot}");
    assert_eq!(n(&hot["share_blocks"]), 8, "{hot}");
    // A scan of twice the cache in the root scope takes the rest, never the hot blocks.
    read(&m, "scan/b");
    read(&m, "scan/b");
    let s = stats(&m);
    assert_eq!(n(&s["scopes"]["hot"]["resident_blocks"]), 8, "{s}");
    assert_eq!(n(&s["scopes"]["/"]["resident_blocks"]), 8, "{s}");
    assert_eq!(n(&s["cache"]["resident_blocks"]), 16, "{s}");
    let before = scope(&m, "hot");
    read(&m, "hot/a");
    let after = scope(&m, "hot");
    assert_eq!(n(&after["hits"]), n(&before["hits"]) + 8, "{after}");
    assert_eq!(n(&after["misses"]), n(&before["misses"]), "{after}");
    // Every request is counted in exactly one scope.
    let s = stats(&m);
    let (mut hits, mut misses) = (0, 0);
    for (_, sc) in s["scopes"].as_object().unwrap() {
        hits += n(&sc["hits"]);
        misses += n(&sc["misses"]);
    }
    assert_eq!(hits, n(&s["cache"]["hits"]));
    assert_eq!(misses, n(&s["cache"]["misses"]));
    let st = status(&m);
    assert_eq!(st["scopes"][0]["name"], "/");
    assert_eq!(st["scopes"][1]["name"], "hot");
    assert_eq!(st["scopes"][1]["path"], "hot");
    let metrics = fs::read_to_string(m.m(".kplug/metrics")).unwrap();
    assert!(
        metrics.contains("kplugfs_scope_resident_blocks{scope=\"hot\"} 8"),
        "{metrics}"
    );
    let shown = kplugfs_tests::kplugfs(&["stats", m.mnt.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("\nscopes\n") && shown.contains("/hot"),
        "{shown}"
    );

    // Bad input is refused with a clear error and changes nothing.
    for (file, text) in [
        ("share", "200%\n"),
        ("share", "half\n"),
        ("share", "2MiB\n"),
        ("path", "../x\n"),
    ] {
        let e = set(&m, "hot", file, text).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{file} {text}");
    }
    assert_eq!(n(&scope(&m, "hot")["share_blocks"]), 8);
    assert_eq!(scope(&m, "hot")["path"], "hot");
    let e = fs::create_dir(m.m(".kplug/scopes/hot")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(fs::write(m.m(".kplug/scopes/hot/extra"), "x").is_err());
    make(&m, "other", "other");
    let e = set(&m, "other", "path", "hot\n").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "two scopes, one path");
    for i in 0..7 {
        let r = fs::create_dir(m.m(&format!(".kplug/scopes/x{i}")));
        if i < 6 {
            r.unwrap();
        } else {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        }
    }
    for i in 0..6 {
        fs::remove_dir(m.m(&format!(".kplug/scopes/x{i}"))).unwrap();
    }
    fs::remove_dir(m.m(".kplug/scopes/other")).unwrap();
    // Two lines on one descriptor: each applied as it ends.
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.m(".kplug/scopes/hot/share"))
            .unwrap();
        f.write_all(b"25%\n").unwrap();
        assert_eq!(n(&scope(&m, "hot")["share_blocks"]), 4);
        f.write_all(b"50%\n").unwrap();
        assert_eq!(n(&scope(&m, "hot")["share_blocks"]), 8);
    }
    // A descriptor of a removed scope never reaches the scope created next in its slot.
    make(&m, "old", "old");
    let mut stale = fs::OpenOptions::new()
        .write(true)
        .open(m.m(".kplug/scopes/old/share"))
        .unwrap();
    fs::remove_dir(m.m(".kplug/scopes/old")).unwrap();
    make(&m, "new", "new");
    {
        use std::io::Write;
        let e = stale.write_all(b"25%\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
    assert_eq!(n(&scope(&m, "new")["share_blocks"]), 0);
    drop(stale);
    fs::remove_dir(m.m(".kplug/scopes/new")).unwrap();

    // rmdir: the scope's blocks go back to the root scope, and hot/ reads count there.
    fs::remove_dir(m.m(".kplug/scopes/hot")).unwrap();
    assert!(!m.m(".kplug/scopes/hot").exists());
    let s = stats(&m);
    assert!(s.get("scopes").is_none(), "no scope left: {s}");
    assert_eq!(n(&s["cache"]["resident_blocks"]), 16);
    let hits = n(&s["cache"]["hits"]);
    read(&m, "hot/a");
    assert_eq!(
        n(&stats(&m)["cache"]["hits"]),
        hits + 8,
        "the blocks stayed"
    );
}

#[test]
fn a_scope_serves_its_own_plugins_and_inherits_the_rest() {
    let m = mount();
    let scope_plugins = |s: &str| m.mnt.join(format!(".kplug/scopes/{s}/plugins"));
    let policies = |st: &Value, name: &str| -> (String, Vec<String>) {
        let sc = st["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("no scope {name}: {st}"));
        let inherited = sc["inherited"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        (
            sc["active"]["eviction"].as_str().unwrap().to_string(),
            inherited,
        )
    };
    drop_plugin_at(&m.mnt, "lru.wasm", &exported_policy("lru")).unwrap();
    make(&m, "s", "s");
    // The mount's lru, a copy of its own.
    assert_eq!(
        policies(&status(&m), "s"),
        ("lru".into(), vec!["eviction".into()])
    );
    // Its own fifo wins; the root keeps lru.
    scope_policy(&m, "s", "fifo");
    let st = status(&m);
    assert_eq!(policies(&st, "s"), ("fifo".into(), vec![]));
    assert_eq!(policies(&st, "/").0, "lru");
    let sc = st["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "s")
        .unwrap()
        .clone();
    assert_eq!(sc["plugins"][0]["file"], "fifo.wasm", "{sc}");
    assert_eq!(sc["plugins"][0]["state"], "active", "{sc}");
    // Nested: the innermost wins, and inherits from s.
    make(&m, "in", "s/in");
    assert_eq!(
        policies(&status(&m), "in"),
        ("fifo".into(), vec!["eviction".into()])
    );
    read(&m, "s/f");
    read(&m, "s/in/g");
    let s = stats(&m);
    assert_eq!(n(&s["scopes"]["s"]["resident_blocks"]), 4, "{s}");
    assert_eq!(n(&s["scopes"]["in"]["resident_blocks"]), 8, "{s}");
    // The root's own instance serves the root's files only.
    assert_eq!(n(&s["plugins"]["lru"]["calls"]), 0, "{s}");
    read(&m, "hot/a");
    assert!(n(&stats(&m)["plugins"]["lru"]["calls"]) > 0);
    // Removing s's own plugin brings the mount's back, in s and in what s encloses.
    fs::remove_file(scope_plugins("s").join("fifo.wasm")).unwrap();
    let st = status(&m);
    assert_eq!(policies(&st, "s"), ("lru".into(), vec!["eviction".into()]));
    assert_eq!(policies(&st, "in"), ("lru".into(), vec!["eviction".into()]));
    // A scope takes cache policies only: a probe is refused there.
    let e = drop_plugin_in(
        &scope_plugins("s"),
        "hot-files.wasm",
        &exported_policy("hot-files"),
    );
    assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    let st = status(&m);
    let sc = st["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "s")
        .unwrap()
        .clone();
    assert!(
        sc["plugins"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("governors, probes and transforms"),
        "{sc}"
    );
    // Removing the inner scope hands its blocks to s, its enclosing scope.
    let s = stats(&m);
    let (held_s, held_in) = (
        n(&s["scopes"]["s"]["resident_blocks"]),
        n(&s["scopes"]["in"]["resident_blocks"]),
    );
    assert!(held_in > 0, "{s}");
    fs::remove_dir(m.m(".kplug/scopes/in")).unwrap();
    assert_eq!(n(&scope(&m, "s")["resident_blocks"]), held_s + held_in);
}

#[test]
fn a_rename_across_scopes_moves_the_files_future_blocks() {
    let m = mount();
    make(&m, "s", "s");
    make(&m, "o", "other");
    // The first half of s/in/g is read in s.
    let f = fs::File::open(m.m("s/in/g")).unwrap();
    let head = kplugfs_tests::read_at_full(&f, 0, 256 * KIB).unwrap();
    assert!(head == pattern(512 * KIB, 4)[..256 * KIB]);
    drop(f);
    assert!(n(&scope(&m, "s")["resident_blocks"]) >= 4);
    let o_misses = n(&scope(&m, "o")["misses"]);
    fs::rename(m.m("s/in/g"), m.m("other/g")).unwrap();
    // Read whole under its new name: every block it fetches goes to the new scope (the
    // rename changed the file's ctime, so its old blocks were dropped at this open).
    assert!(fs::read(m.m("other/g")).unwrap() == pattern(512 * KIB, 4));
    let s = stats(&m);
    assert_eq!(n(&s["scopes"]["o"]["resident_blocks"]), 8, "{s}");
    assert!(n(&s["scopes"]["o"]["misses"]) >= o_misses + 8, "{s}");
    assert_eq!(n(&s["scopes"]["s"]["resident_blocks"]), 0, "{s}");
    // Moving a scope's path follows the files; one path per scope.
    set(&m, "s", "path", "other\n").unwrap_err();
    set(&m, "o", "path", "\n").unwrap();
    assert_eq!(scope(&m, "o")["path"], Value::Null);
    set(&m, "s", "path", "other\n").unwrap();
    let before = scope(&m, "o");
    // other/g's blocks stay in o, which still serves (and counts) them.
    assert!(fs::read(m.m("other/g")).unwrap() == pattern(512 * KIB, 4));
    assert_eq!(n(&scope(&m, "o")["hits"]), n(&before["hits"]) + 8);
    assert_eq!(n(&scope(&m, "s")["resident_blocks"]), 0);
}

#[test]
fn a_faulting_plugin_in_one_scope_leaves_the_others_alone() {
    let m = mount();
    make(&m, "bad", "s");
    make(&m, "good", "hot");
    scope_policy(&m, "good", "fifo");
    // Traps at its first insertion.
    let bad = fixtures::eviction_with("", "unreachable");
    drop_plugin_in(&m.mnt.join(".kplug/scopes/bad/plugins"), "trap.wasm", &bad).unwrap();
    read(&m, "s/f");
    read(&m, "hot/a");
    read(&m, "s/f");
    let s = stats(&m);
    assert!(n(&s["scopes"]["bad"]["faults"]) >= 1, "{s}");
    assert_eq!(
        s["scopes"]["bad"]["active"]["eviction"], "builtin:lru",
        "{s}"
    );
    assert_eq!(n(&s["scopes"]["good"]["faults"]), 0, "{s}");
    assert_eq!(s["scopes"]["good"]["active"]["eviction"], "fifo", "{s}");
    assert_eq!(n(&s["scopes"]["bad"]["resident_blocks"]), 4, "{s}");
    let st = status(&m);
    let bad = st["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "bad")
        .unwrap();
    assert_eq!(bad["plugins"][0]["state"], "failed", "{bad}");
}

#[test]
fn a_scope_plugin_swaps_while_another_scope_is_read() {
    let m = Arc::new(mount());
    make(&m, "a", "s");
    make(&m, "b", "scan");
    scope_policy(&m, "b", "lru");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || {
                let want = fs::read(m.b("scan/b")).unwrap();
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert!(fs::read(m.m("scan/b")).unwrap() == want, "wrong bytes");
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let dir = m.mnt.join(".kplug/scopes/a/plugins");
    let (lru, fifo) = (exported_policy("lru"), exported_policy("fifo"));
    for i in 0..10 {
        let (name, bytes) = if i % 2 == 0 {
            ("p.wasm", &lru)
        } else {
            ("p.wasm", &fifo)
        };
        drop_plugin_in(&dir, name, bytes).unwrap();
        read(&m, "s/f");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let s = stats(&m);
    assert_eq!(s["scopes"]["a"]["active"]["eviction"], "p", "{s}");
    assert_eq!(s["scopes"]["b"]["active"]["eviction"], "lru", "{s}");
    assert_eq!(n(&s["scopes"]["b"]["faults"]), 0, "{s}");
    assert!(n(&s["scopes"]["b"]["hits"]) + n(&s["scopes"]["b"]["misses"]) > 0);
}

/// `kplugfs mount` of `m`'s directories again, with its state directory.
fn remount(m: &TestMount) {
    let out = kplugfs_tests::kplugfs(&["umount", m.mnt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history = m.root.path().join("history2.db");
    let mut args = vec!["--history-db", history.to_str().unwrap()];
    args.extend_from_slice(&OPTS);
    let out = m.mount_again(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn scopes_are_kept_and_restored_at_the_next_mount() {
    let m = mount();
    make(&m, "hot", "hot");
    set(&m, "hot", "share", "25%\n").unwrap();
    scope_policy(&m, "hot", "fifo");
    make(&m, "gone", "scan");
    fs::remove_dir(m.m(".kplug/scopes/gone")).unwrap();
    remount(&m);
    let s = stats(&m);
    assert_eq!(s["scopes"]["hot"]["path"], "hot", "{s}");
    assert_eq!(s["scopes"]["hot"]["share"], "25%", "{s}");
    assert_eq!(n(&s["scopes"]["hot"]["share_blocks"]), 4, "{s}");
    assert_eq!(s["scopes"]["hot"]["active"]["eviction"], "fifo", "{s}");
    assert!(
        s["scopes"].get("gone").is_none(),
        "a removed scope is forgotten: {s}"
    );
    read(&m, "hot/a");
    assert_eq!(n(&scope(&m, "hot")["resident_blocks"]), 8);
    // Removed, it stays removed.
    fs::remove_dir(m.m(".kplug/scopes/hot")).unwrap();
    remount(&m);
    assert!(stats(&m).get("scopes").is_none());
    assert!(!m.m(".kplug/scopes/hot").exists());
}

/// Waits up to 10 s for `cond`.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_probe_tunes_a_scope_share_by_publishing_it() {
    let m = mount();
    make(&m, "hot", "hot");
    // A probe publishing `share.hot` = 0.5 after each batch of events it gets.
    let probe = kplugfs_tests::publishing_probe("share.hot", 0.5);
    drop_plugin_at(&m.mnt, "tuner.wasm", &probe).unwrap();
    read(&m, "hot/a");
    eventually("the published share applies", || {
        scope(&m, "hot")["share_blocks"].as_u64() == Some(8)
    });
    assert_eq!(
        fs::read_to_string(m.m(".kplug/scopes/hot/share")).unwrap(),
        "0.5000\n"
    );
    // An operator's write stands while the published value does not change.
    set(&m, "hot", "share", "25%\n").unwrap();
    read(&m, "hot/a");
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(n(&scope(&m, "hot")["share_blocks"]), 4);
}
