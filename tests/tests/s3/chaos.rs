//! Chaos plugins over an object-store mount (`kplugfs_tests::chaos`): eviction, admission and
//! prefetch plugins that depart from the ABI at random, a governor over them that activates
//! and weighs at random, a probe that asks paths and publishes figures at random, and a
//! transform whose views of the objects must read as the objects or EIO, dropped again and
//! again while two readers verify random ranges of objects and a writer replaces an
//! object of changing length through the mount (`O_TRUNC`: a whole new object at each close)
//! and reads it back. Prefetches of anything in an object (the whole of it many times over,
//! or past its end) are in flight while the object is replaced: every byte read is right, and
//! `.kplug/status` tells the truth at every step.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};

use kplugfs_tests::chaos::{check_chaos_status, run_chaos};
use kplugfs_tests::s3::{S3Mount, TestBucket, pattern};
use kplugfs_tests::xorshift;

#[test]
fn chaos_plugins_never_change_a_byte_of_an_object() {
    kplugfs_tests::require_s3!();
    const FILES: usize = 3;
    const SIZE: usize = 768 << 10;
    let b = TestBucket::new("chaos");
    let want: Vec<Vec<u8>> = (0..FILES).map(|i| pattern(i as u64 + 1, SIZE)).collect();
    for (i, data) in want.iter().enumerate() {
        b.put(&format!("f{i}"), data);
    }
    let m = S3Mount::new(
        &b,
        &[
            "--cache-size",
            "2MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
    );
    let path = m.m("w");
    let writer = move |stop: &AtomicBool| {
        let (mut x, mut writes) = (0x9E37_79B9_7F4A_7C15u64, 0);
        while !stop.load(Ordering::Relaxed) {
            xorshift(&mut x);
            // A length that ends inside a block or on its boundary, and moves.
            let len = SIZE - (x % (200 << 10)) as usize;
            let model = pattern(x, len);
            fs::write(&path, &model).expect("replace w");
            let got = fs::read(&path).expect("read w back");
            assert!(got == model, "w after its replacement by {len} bytes");
            writes += 1;
        }
        writes
    };
    let (reads, writes) = run_chaos(&m.mnt, want.clone(), 40, 0x51_DEEC_E66D, writer);
    assert!(reads > 10 && writes > 2, "{reads} reads, {writes} writes");
    let text = fs::read(m.m(".kplug/status")).unwrap();
    check_chaos_status(&serde_json::from_slice(&text).unwrap());
    for (i, data) in want.iter().enumerate() {
        assert!(
            fs::read(m.m(&format!("f{i}"))).unwrap() == *data,
            "f{i} whole"
        );
    }
}
