//! Scopes (`.kplug/scopes/`) on an object-store mount: a prefix of the bucket keeps its share
//! of the cache against a scan of the rest, with its own eviction plugin, and `rmdir` hands
//! its blocks to the root scope. The same rules as a directory mount (tests/tests/scopes.rs);
//! a file's scope comes from its object's key.

use std::fs;

use kplugfs_tests::s3::{S3Mount, TestBucket, pattern};
use kplugfs_tests::{drop_plugin_in, exported_policy};

fn stats(m: &S3Mount) -> serde_json::Value {
    m.stats()
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_prefix_keeps_its_share_of_the_cache_with_its_own_plugin() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("scopes");
    let hot = pattern(21, 512 << 10);
    let scan = pattern(22, 2 << 20);
    b.put("data/hot.bin", &hot);
    b.put("scan/big.bin", &scan);
    // 16 blocks of 64 KiB; what is resident is what was read.
    let m = S3Mount::new(
        &b,
        &[
            "--no-kernel-cache",
            "--block-size",
            "64KiB",
            "--cache-size",
            "1MiB",
            "--readahead",
            "0",
        ],
    );
    fs::create_dir(m.m(".kplug/scopes/data")).unwrap();
    fs::write(m.m(".kplug/scopes/data/path"), "data\n").unwrap();
    fs::write(m.m(".kplug/scopes/data/share"), "0.5\n").unwrap();
    drop_plugin_in(
        &m.m(".kplug/scopes/data/plugins"),
        "fifo.wasm",
        &exported_policy("fifo"),
    )
    .unwrap();
    assert!(fs::read(m.m("data/hot.bin")).unwrap() == hot);
    for _ in 0..2 {
        assert!(fs::read(m.m("scan/big.bin")).unwrap() == scan);
    }
    let s = stats(&m);
    let data = &s["scopes"]["data"];
    assert_eq!(n(&data["resident_blocks"]), 8, "{s}");
    assert_eq!(n(&data["share_blocks"]), 8, "{s}");
    assert_eq!(data["active"]["eviction"], "fifo", "{s}");
    assert_eq!(n(&s["scopes"]["/"]["resident_blocks"]), 8, "{s}");
    let gets = m.requests("get");
    assert!(fs::read(m.m("data/hot.bin")).unwrap() == hot);
    assert_eq!(
        m.requests("get"),
        gets,
        "the prefix's blocks were all in the cache"
    );
    let s = stats(&m);
    assert_eq!(n(&s["scopes"]["data"]["hits"]), n(&data["hits"]) + 8, "{s}");
    fs::remove_dir(m.m(".kplug/scopes/data")).unwrap();
    let s = stats(&m);
    assert!(s.get("scopes").is_none(), "{s}");
    assert_eq!(n(&s["cache"]["resident_blocks"]), 16, "{s}");
}
