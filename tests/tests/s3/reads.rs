//! Reads: every byte of objects of many sizes (0 B, 1 B, block-1, block, block+1 of the
//! default 128 KiB block, a few MiB, and 100 MiB written as a multipart upload), read through
//! a prefix mount (`s3://BUCKET/data`) with a small block cache and no kernel page cache (so
//! every read reaches the daemon and policies evict), compared with what was uploaded: whole
//! and at odd offsets across block boundaries; through the built-ins, through every policy
//! `kplugfs policy list` reports (each dropped into `.kplug/plugins/`; none may fault), and
//! while plugins, hostile ones included, are swapped under concurrent readers. The 100 MiB
//! object is read twice: with the built-ins, and during the swaps.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use kplugfs_tests::s3::{S3Mount, TestBucket, client, pattern};
use kplugfs_tests::{Hostile, drop_plugin_at, exported_policy, policy_list};

const BLOCK: usize = 128 << 10;
const BIG: usize = 100 << 20;

/// Name (under the mount) and bytes of the objects, but the 100 MiB one.
fn objects() -> Vec<(String, Vec<u8>)> {
    [
        ("empty", 0),
        ("one", 1),
        ("block-1", BLOCK - 1),
        ("block", BLOCK),
        ("block+1", BLOCK + 1),
        ("sub/three-mib", (3 << 20) + 4321),
        ("sub/five-mib", (5 << 20) - 17),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, len))| (n.to_string(), pattern(i as u64 + 1, *len)))
    .collect()
}

pub(crate) fn first_diff(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    format!(
        "want {} bytes, got {}; first difference at {at}",
        want.len(),
        got.len()
    )
}

/// Read `want` through the mount: whole, then at odd offsets and lengths.
fn check_object(path: &Path, want: &[u8], label: &str) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{label}: read {}: {e}", path.display()));
    assert!(
        got == want,
        "{label}: {}: {}",
        path.display(),
        first_diff(want, &got)
    );
    let f = File::open(path).unwrap();
    let n = want.len();
    for (off, len) in [
        (0, 4097),
        (BLOCK.saturating_sub(3), 7),
        (2 * BLOCK + 5, BLOCK + 11),
        (n.saturating_sub(100), 300),
        (n + 10, 10),
    ] {
        let got = kplugfs_tests::read_at_full(&f, off as u64, len)
            .unwrap_or_else(|e| panic!("{label}: pread {} at {off}: {e}", path.display()));
        let want = &want[off.min(n)..(off + len).min(n)];
        assert!(
            got == want,
            "{label}: {} at {off}+{len}: {}",
            path.display(),
            first_diff(want, &got)
        );
    }
}

/// Read the big object in 1 MiB reads, comparing as it goes.
fn check_big(path: &Path, want: &[u8], label: &str) {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{label}: read big at {pos}: {e}"));
        if n == 0 {
            break;
        }
        assert!(
            pos + n <= want.len() && buf[..n] == want[pos..pos + n],
            "{label}: big at {pos}+{n}: {}",
            first_diff(&want[pos..(pos + n).min(want.len())], &buf[..n])
        );
        pos += n;
    }
    assert_eq!(pos, want.len(), "{label}: big read short");
}

fn clear_plugins(m: &S3Mount) {
    for e in fs::read_dir(m.m(".kplug/plugins")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
}

fn status(m: &S3Mount) -> serde_json::Value {
    serde_json::from_slice(&fs::read(m.m(".kplug/status")).unwrap()).unwrap()
}

#[test]
fn every_byte_of_every_size_through_every_policy_and_hot_swaps() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("reads");
    let objs = objects();
    for (name, data) in &objs {
        b.put(&format!("data/{name}"), data);
    }
    let big = Arc::new(pattern(100, BIG));
    let store = client(&b, "");
    let mut up = kplug_store::Upload::new(store, "data/big".into()).unwrap();
    for chunk in big.chunks(1 << 20) {
        up.write(chunk).unwrap();
    }
    up.finish().unwrap();

    let m = S3Mount::source(
        &format!("s3://{}/data", b.name),
        &b.server,
        &["--cache-size", "4MiB", "--no-kernel-cache"],
    );
    let mut names: Vec<String> = fs::read_dir(m.m(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".kplug", "big", "block", "block+1", "block-1", "empty", "one", "sub"
        ]
    );
    assert_eq!(fs::metadata(m.m("big")).unwrap().len(), BIG as u64);

    // The built-ins, the big object included.
    for (name, want) in &objs {
        check_object(&m.m(name), want, "built-ins");
    }
    check_big(&m.m("big"), &big, "built-ins");

    // Every policy of the binary, alone.
    let policies = policy_list();
    assert!(policies.len() > 5, "{policies:?}");
    let modules: Vec<(String, Vec<String>, Vec<u8>)> = policies
        .into_iter()
        .map(|(n, roles)| {
            let wasm = exported_policy(&n);
            (n, roles, wasm)
        })
        .collect();
    for (name, roles, wasm) in &modules {
        clear_plugins(&m);
        drop_plugin_at(&m.mnt, &format!("{name}.wasm"), wasm)
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
        for (obj, want) in &objs {
            check_object(&m.m(obj), want, name);
        }
        let st = status(&m);
        assert_eq!(st["cache"]["faults"], 0, "{name} faulted: {st}");
        // A probe (ABI 1.5) serves no role: it reports through `.kplug/probes`.
        for role in roles.iter().filter(|r| *r != "probe") {
            assert_eq!(st["active"][role.as_str()], name.as_str(), "{name}: {st}");
        }
        if roles.iter().any(|r| r == "probe") {
            assert!(m.m(&format!(".kplug/probes/{name}")).exists(), "{name}");
        }
        let p = st["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in {st}"));
        assert_eq!(p["state"], "active", "{name}: {p}");
        assert_eq!(p["faults"], 0, "{name}: {p}");
    }
    let st = status(&m);
    assert!(
        st["cache"]["evictions"].as_u64().unwrap() > 0,
        "a 4 MiB cache must have evicted: {st}"
    );

    // Hot swaps under concurrent readers: two threads re-read the small objects, one reads
    // the big object once; meanwhile plugins are swapped in, hostile ones dropped, removed.
    clear_plugins(&m);
    let module = |n: &str| {
        modules
            .iter()
            .find(|(name, _, _)| name == n)
            .map(|(_, _, w)| w.clone())
            .unwrap_or_else(|| panic!("no policy {n}"))
    };
    let mut swaps: Vec<(String, Vec<u8>)> = [
        "lru",
        "fifo",
        "arc",
        "s3fifo",
        "readahead",
        "s3window",
        "doorkeeper",
        "sieve",
    ]
    .iter()
    .map(|n| (format!("{n}.wasm"), module(n)))
    .collect();
    for h in Hostile::ALL {
        swaps.push((h.file_name().to_string(), h.wasm()));
    }
    let done = Arc::new(AtomicBool::new(false));
    let objs = Arc::new(objs);
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (done, objs, mnt) = (done.clone(), objs.clone(), m.mnt.clone());
            thread::spawn(move || {
                let mut rounds = 0;
                while !done.load(Ordering::Relaxed) || rounds == 0 {
                    for (i, (obj, want)) in objs.iter().enumerate() {
                        if (i + r) % 2 == 0 {
                            check_object(&mnt.join(obj), want, &format!("reader {r}"));
                        }
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let big_reader = {
        let (big, mnt) = (big.clone(), m.mnt.clone());
        thread::spawn(move || check_big(&mnt.join("big"), &big, "big during swaps"))
    };
    let mut swapped = 0;
    while !big_reader.is_finished() || swapped < swaps.len() {
        let (file, wasm) = &swaps[swapped % swaps.len()];
        drop_plugin_at(&m.mnt, file, wasm).unwrap_or_else(|e| panic!("swap {file}: {e}"));
        swapped += 1;
        if swapped % 4 == 0 {
            clear_plugins(&m);
        }
    }
    let big_result = big_reader.join();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let rounds = r.join().expect("a reader saw a wrong byte");
        assert!(rounds > 0);
    }
    big_result.expect("the big object read wrong during swaps");
    // Still serving right after all that, with the built-ins.
    clear_plugins(&m);
    for (obj, want) in objs.iter() {
        check_object(&m.m(obj), want, "after the swaps");
    }
}
