//! Probes (ABI 1.5) on an object-store mount: the same plugins, the same events, with the
//! S3 server as the backend. `hot-files` names the object read most by its key, and
//! `bottleneck` sees the GETs of the blocks the reads missed, and `policy-audit` with a
//! subtree (ABI 1.7) sees the decisions on the objects under it only.

use std::fs;

use kplugfs_tests::s3::{S3Mount, TestBucket, pattern};
use kplugfs_tests::{drop_plugin_at, exported_policy};

#[test]
fn probes_report_on_an_object_store_mount() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("probes");
    let hot = pattern(11, 1 << 20);
    let cold = pattern(12, 256 << 10);
    b.put("data/hot.bin", &hot);
    b.put("cold.bin", &cold);
    let m = S3Mount::new(&b, &["--no-kernel-cache", "--block-size", "64KiB"]);
    for name in ["hot-files", "bottleneck"] {
        drop_plugin_at(&m.mnt, &format!("{name}.wasm"), &exported_policy(name)).unwrap();
    }
    // ABI 1.7: the policies' decisions, of the objects under data/ only.
    fs::write(m.m(".kplug/plugins/policy-audit.params"), "subtree=data\n").unwrap();
    let audit = exported_policy("policy-audit");
    drop_plugin_at(&m.mnt, "policy-audit.wasm", &audit).unwrap();
    for _ in 0..3 {
        assert!(fs::read(m.m("data/hot.bin")).unwrap() == hot);
    }
    assert!(fs::read(m.m("cold.bin")).unwrap() == cold);
    // A read's event is queued just after its reply: wait until the last one is in.
    let mut text = String::new();
    for _ in 0..500 {
        text = fs::read_to_string(m.m(".kplug/probes/hot-files")).unwrap();
        if text.lines().filter(|l| l.ends_with(".bin")).count() >= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // rank bytes reads misses file: the object's key under the mount is its path.
    let first: Vec<&str> = text.lines().nth(2).unwrap().split(' ').collect();
    assert_eq!(first[4], "data/hot.bin", "{text}");
    assert_eq!(first[1], (3 << 20).to_string(), "{text}");
    let second: Vec<&str> = text.lines().nth(3).unwrap().split(' ').collect();
    assert_eq!(second[4], "cold.bin", "{text}");
    let text = fs::read_to_string(m.m(".kplug/probes/bottleneck")).unwrap();
    // Every byte read came from GETs at first (demand or prefetch), none failed.
    let row = |key: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .split(' ')
            .map(str::to_string)
            .collect()
    };
    let (d, p) = (row("backend_demand"), row("backend_prefetch"));
    let got: u64 = d[4].parse::<u64>().unwrap() + p[4].parse::<u64>().unwrap();
    assert!(got >= (1 << 20) + (256 << 10), "{text}");
    assert_eq!(d[10], "0", "{text}");
    assert_eq!(p[8], "0", "{text}");
    assert!(row("verdict").len() > 1, "{text}");
    // The subtree probe saw data/hot.bin's blocks admitted (16 of them at least), and
    // nothing of cold.bin at the root.
    let text = fs::read_to_string(m.m(".kplug/probes/policy-audit")).unwrap();
    let admitted = |dir: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.split(' ').next() == Some(dir))
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
    };
    assert!(admitted("data").is_some_and(|n| n >= 16), "{text}");
    assert_eq!(admitted("/"), None, "{text}");
    assert_eq!(admitted("*"), admitted("data"), "{text}");
}
