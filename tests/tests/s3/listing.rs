//! Listings: a directory of 10,000 objects (and three sub-directories, and a file of the
//! same name as one of them, which the directory shadows) lists completely and correctly
//! through the mount: names through plain `readdir` (an `ls -f`-style pass that stats
//! nothing, and `ls -f` itself), names and sizes through `readdirplus` (a pass that stats
//! each entry as it goes, which makes the kernel ask for readdirplus); the FUSE counters
//! show both requests were used. The objects are written by 16 threads of a store client.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kplugfs_tests::s3::{S3Mount, TestBucket, client, pattern};

const N: usize = 10_000;

fn name(i: usize) -> String {
    format!("f{i:05}")
}

fn size(i: usize) -> usize {
    i % 53
}

#[test]
fn ten_thousand_entries_list_completely() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("listing");
    let store = client(&b, "big/");
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= N {
                        break;
                    }
                    store
                        .put(&name(i), pattern(i as u64, size(i)).into())
                        .unwrap_or_else(|e| panic!("put {}: {e}", name(i)));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for d in ["sub0", "sub1", "sub2"] {
        b.put(&format!("big/{d}/x"), b"x");
    }
    // An object named like a directory: the directory shadows it.
    b.put("big/sub1", b"shadowed");
    let mut want: BTreeMap<String, Option<u64>> =
        (0..N).map(|i| (name(i), Some(size(i) as u64))).collect();
    for d in ["sub0", "sub1", "sub2"] {
        want.insert(d.to_string(), None);
    }

    let m = S3Mount::new(&b, &[]);
    let dir = m.m("big");

    // Pass 1, plain readdir: only names and d_type (nothing is stat'ed).
    let mut got: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        assert!(t.is_dir() || t.is_file(), "{e:?}: {t:?}");
        let prev = got.insert(
            e.file_name().into_string().unwrap(),
            t.is_file().then_some(0),
        );
        assert!(prev.is_none(), "{:?} listed twice", e.file_name());
    }
    let names = |m: &BTreeMap<String, Option<u64>>| -> Vec<(String, bool)> {
        m.iter().map(|(k, v)| (k.clone(), v.is_none())).collect()
    };
    assert_eq!(got.len(), want.len(), "readdir count");
    assert!(names(&got) == names(&want), "readdir names differ");

    // `ls -f`: unsorted, every entry, `.` and `..` included.
    let out = Command::new("ls").arg("-f").arg(&dir).output().unwrap();
    assert!(out.status.success());
    let mut ls: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    ls.sort();
    let mut expect: Vec<String> = want.keys().cloned().collect();
    expect.extend([".".to_string(), "..".to_string()]);
    expect.sort();
    assert_eq!(ls.len(), expect.len(), "ls -f count");
    assert!(ls == expect, "ls -f names differ");

    // Pass 2, readdirplus: stat every entry while listing, so the kernel keeps asking for
    // readdirplus; sizes must be the objects'.
    let before = m.stats()["fuse"]["readdirplus"]["count"]
        .as_u64()
        .unwrap_or(0);
    let mut got: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        got.insert(
            e.file_name().into_string().unwrap(),
            md.is_file().then_some(md.len()),
        );
    }
    assert_eq!(got.len(), want.len(), "readdirplus count");
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "entries differ, e.g. {wrong:?}");

    let fuse = &m.stats()["fuse"];
    assert!(
        fuse["readdir"]["count"].as_u64().unwrap_or(0) > 0,
        "plain readdir never used: {fuse}"
    );
    assert!(
        fuse["readdirplus"]["count"].as_u64().unwrap_or(0) > before + 1,
        "readdirplus not used for the whole second pass: {fuse}"
    );
    assert_eq!(fuse["readdir"]["errors"], 0);
    assert_eq!(fuse["readdirplus"]["errors"], 0);
    // The shadowed object is not a second entry; the directory of its name lists.
    assert_eq!(
        fs::read_dir(m.m("big/sub1")).unwrap().count(),
        1,
        "big/sub1 holds x"
    );
}
