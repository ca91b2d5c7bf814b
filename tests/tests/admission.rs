//! Admission by file size and path (ABI 1.3) in a live mount: `pathfilter` and `maxsize`
//! keep the files they should out of the cache, follow renames and growth, and every byte
//! read is still right. Whether a file was cached is measured the way a user would: with
//! the kernel's page cache off, a second read of a cached file misses no block
//! (`.kplug/stats`), a second read of a refused one misses all of them.
#![cfg(feature = "mount-tests")]

use std::fs;

use kplugfs_tests::{TestMount, active, drop_plugin, exported_policy};

const BLOCK: usize = 64 << 10;

fn misses(m: &TestMount) -> u64 {
    let st: serde_json::Value =
        serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
    st["cache"]["misses"].as_u64().unwrap()
}

/// Read `rel` twice, checking its bytes; the blocks the second read missed.
fn second_read_misses(m: &TestMount, rel: &str, want: &[u8]) -> u64 {
    assert_eq!(fs::read(m.m(rel)).unwrap(), want, "{rel}");
    let before = misses(m);
    assert_eq!(fs::read(m.m(rel)).unwrap(), want, "{rel}");
    misses(m) - before
}

#[test]
fn pathfilter_and_maxsize_keep_out_what_they_name() {
    let files = [
        ("a.csv", 4 * BLOCK, 1),
        ("logs/old/x.log", 4 * BLOCK, 2),
        ("tmp/t.csv", 4 * BLOCK, 3),
        ("big.bin", 16 * BLOCK, 4),
        ("huge.bin", 24 * BLOCK, 7),
    ];
    let m = TestMount::with_backing(
        &[
            "--cache-size",
            "4MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
        |b| {
            for (rel, len, seed) in files {
                let p = b.join(rel);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, kplugfs_tests::pattern(len, seed)).unwrap();
            }
        },
    );
    let want = |rel: &str| {
        let (_, len, seed) = files.iter().find(|f| f.0 == rel).unwrap();
        kplugfs_tests::pattern(*len, *seed)
    };

    // Parameters first, then the module: it loads with them.
    drop_plugin(&m, "pathfilter.params", b"exclude=*.log\nexclude=tmp/**\n").unwrap();
    drop_plugin(&m, "pathfilter.wasm", &exported_policy("pathfilter")).unwrap();
    assert_eq!(active(&m, "admission"), "pathfilter");
    assert_eq!(second_read_misses(&m, "a.csv", &want("a.csv")), 0);
    assert_eq!(
        second_read_misses(&m, "logs/old/x.log", &want("logs/old/x.log")),
        4,
        "a name pattern matches at any depth"
    );
    assert_eq!(
        second_read_misses(&m, "tmp/t.csv", &want("tmp/t.csv")),
        4,
        "a path pattern matches from the root"
    );
    // Renamed out of the pattern, the file is cached from its next open.
    fs::rename(m.m("logs/old/x.log"), m.m("logs/old/x.csv")).unwrap();
    assert_eq!(
        second_read_misses(&m, "logs/old/x.csv", &want("logs/old/x.log")),
        0
    );
    // An include list: only what it names.
    drop_plugin(&m, "pathfilter.params", b"include=big.*\n").unwrap();
    assert_eq!(second_read_misses(&m, "big.bin", &want("big.bin")), 0);
    fs::write(m.m("c.csv"), kplugfs_tests::pattern(2 * BLOCK, 5)).unwrap();
    assert_eq!(
        second_read_misses(&m, "c.csv", &kplugfs_tests::pattern(2 * BLOCK, 5)),
        2
    );

    // maxsize takes the admission role; its default limit is a quarter of the 4 MiB cache.
    drop_plugin(&m, "maxsize.wasm", &exported_policy("maxsize")).unwrap();
    assert_eq!(active(&m, "admission"), "maxsize");
    assert_eq!(second_read_misses(&m, "huge.bin", &want("huge.bin")), 24);
    assert_eq!(
        second_read_misses(&m, "c.csv", &kplugfs_tests::pattern(2 * BLOCK, 5)),
        0
    );
    // A file that grows past the limit is refused from then on.
    fs::write(m.m("c.csv"), kplugfs_tests::pattern(20 * BLOCK, 6)).unwrap();
    assert_eq!(
        second_read_misses(&m, "c.csv", &kplugfs_tests::pattern(20 * BLOCK, 6)),
        20
    );
    // An explicit limit.
    drop_plugin(&m, "maxsize.params", b"bytes=4194304\n").unwrap();
    assert_eq!(second_read_misses(&m, "huge.bin", &want("huge.bin")), 0);
}
