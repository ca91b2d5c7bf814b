//! Objects changed behind the mount's back (written or deleted on the server), with a 500 ms
//! `--attr-timeout`, with and without the kernel page cache:
//!
//! - replaced: once the timeout has passed, a new open reads exactly the new bytes, never the
//!   old ones nor a mix, also while a descriptor opened before the replace is still held;
//!   that descriptor reads the old bytes or fails with EIO, never a mix. Readers holding
//!   descriptors of successive versions read concurrently while the object is replaced
//!   again and again: every read is its version's bytes or EIO;
//! - deleted: once the timeout has passed, stat and open fail with ENOENT and the listing
//!   no longer shows it, also while a descriptor opened before is held (which reads the old
//!   bytes or fails with EIO, also where nothing was cached), never old bytes through a new
//!   open.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use kplugfs_tests::s3::{S3Mount, TestBucket, listing, pattern};

use crate::reads::first_diff;

/// Longer than the mount's 500 ms attribute timeout.
const PAST_TIMEOUT: Duration = Duration::from_millis(800);

const MOUNTS: [&[&str]; 2] = [
    &["--attr-timeout", "500ms", "--cache-size", "8MiB"],
    &[
        "--attr-timeout",
        "500ms",
        "--cache-size",
        "8MiB",
        "--no-kernel-cache",
    ],
];

fn version(v: u64) -> Vec<u8> {
    // Each version a different size, so a length from the wrong version shows too.
    pattern(1000 + v, (1 << 20) + 4096 * v as usize + 77 * v as usize)
}

/// Read `len` bytes at `off` through `f`: its version's bytes, or EIO.
fn old_or_eio(f: &File, off: usize, len: usize, want: &[u8], what: &str) -> bool {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    loop {
        match f.read_at(&mut buf[got..], (off + got) as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got == len {
                    break;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return false,
            Err(e) => panic!("{what}: read at {}: {e} (want its bytes or EIO)", off + got),
        }
    }
    let want = &want[off.min(want.len())..(off + len).min(want.len())];
    assert!(
        &buf[..got] == want,
        "{what}: read at {off}+{len}: {}",
        first_diff(want, &buf[..got])
    );
    true
}

#[test]
fn replaced_objects_read_new_bytes_after_the_timeout_and_held_ones_never_mix() {
    kplugfs_tests::require_s3!();
    for (k, opts) in MOUNTS.iter().enumerate() {
        let b = TestBucket::new("replace");
        let (v1, v2) = (version(1), version(2));
        b.put("d/obj", &v1);
        b.put("d/keep", b"keep");
        let m = S3Mount::new(&b, opts);
        let path = m.m("d/obj");
        let what = format!("mount {k}");
        let held = File::open(&path).unwrap();
        assert!(old_or_eio(&held, 0, 300 << 10, &v1, &what));
        b.put("d/obj", &v2);
        // Within the timeout the old version may still be served, but only whole.
        let early = fs::read(&path).unwrap();
        assert!(
            early == v1 || early == v2,
            "{what}: a mix within the timeout"
        );
        thread::sleep(PAST_TIMEOUT);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            v2.len() as u64,
            "{what}: size after the timeout"
        );
        let got = fs::read(&path).unwrap();
        assert!(
            got == v2,
            "{what}: a new open after the timeout: {}",
            first_diff(&v2, &got)
        );
        // The held descriptor: old bytes or EIO, at the start, past what it read, at the end.
        for (off, len) in [(300 << 10, 500 << 10), (0, 4096), (v1.len() - 1000, 5000)] {
            old_or_eio(&held, off, len, &v1, &format!("{what}: held descriptor"));
        }
        drop(held);
        assert!(fs::read(&path).unwrap() == v2, "{what}: reopen");
    }
}

/// Like [`old_or_eio`], but the kernel may end the read early: the size of an inode is one
/// for all its descriptors, and a shorter version read through one of them makes it shrink
/// (a short FUSE read is taken for the end of the file). A short read is still its
/// version's bytes.
fn prefix_or_eio(f: &File, off: usize, len: usize, want: &[u8], r: usize) -> bool {
    let mut buf = vec![0u8; len];
    match f.read_at(&mut buf, off as u64) {
        Ok(n) => {
            let want = &want[off.min(want.len())..(off + len).min(want.len())];
            assert!(
                n <= want.len() && buf[..n] == want[..n],
                "reader {r}: read at {off}+{len}: {}",
                first_diff(&want[..n.min(want.len())], &buf[..n])
            );
            true
        }
        Err(e) if e.raw_os_error() == Some(libc::EIO) => false,
        Err(e) => panic!("reader {r}: read at {off}: {e} (want its bytes or EIO)"),
    }
}

#[test]
fn readers_of_successive_versions_never_mix() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("versions");
    let versions: Arc<Vec<Vec<u8>>> = Arc::new((0..5).map(version).collect());
    b.put("obj", &versions[0]);
    let m = S3Mount::new(&b, MOUNTS[1]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (stop, versions, path) = (stop.clone(), versions.clone(), m.m("obj"));
            thread::spawn(move || {
                let mut reads = 0u64;
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    // Open, find which version this descriptor reads from its first page,
                    // then keep reading ranges of it while the object changes.
                    let f = File::open(&path).unwrap();
                    let mut head = vec![0u8; 4096];
                    match f.read_exact_at(&mut head, 0) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EIO) => continue,
                        Err(e) => panic!("reader {r}: first page: {e}"),
                    }
                    let Some(v) = versions.iter().position(|v| v[..4096] == head[..]) else {
                        panic!("reader {r}: the first page is no version's");
                    };
                    seen.insert(v);
                    for i in 0..8 {
                        let off = (i * 131_101 + r * 4099) % versions[v].len();
                        reads += 1;
                        if !prefix_or_eio(&f, off, 200_000, &versions[v], r) {
                            break;
                        }
                    }
                }
                (reads, seen)
            })
        })
        .collect();
    for (i, v) in versions.iter().enumerate().skip(1) {
        thread::sleep(Duration::from_millis(300));
        b.put("obj", v);
        thread::sleep(PAST_TIMEOUT);
        let got = fs::read(m.m("obj")).unwrap();
        assert!(got == *v, "v{i} after the timeout: {}", first_diff(v, &got));
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (reads, seen) = r.join().expect("a reader saw a mix");
        assert!(reads > 0, "a reader never read");
        assert!(seen.len() >= 2, "a reader saw only versions {seen:?}");
    }
}

#[test]
fn deleted_objects_are_enoent_after_the_timeout() {
    kplugfs_tests::require_s3!();
    for (k, opts) in MOUNTS.iter().enumerate() {
        let b = TestBucket::new("delete");
        // Larger than the mount's 8 MiB cache: its end is never read before the delete.
        let v1 = pattern(2000, 16 << 20);
        b.put("d/held", &v1);
        b.put("d/plain", b"plain bytes");
        b.put("d/keep", b"keep");
        let m = S3Mount::new(&b, opts);
        let what = format!("mount {k}");
        let held = File::open(m.m("d/held")).unwrap();
        assert!(old_or_eio(&held, 0, 100 << 10, &v1, &what));
        assert_eq!(fs::read(m.m("d/plain")).unwrap(), b"plain bytes");
        b.delete("d/held");
        b.delete("d/plain");
        thread::sleep(PAST_TIMEOUT);
        for name in ["d/plain", "d/held"] {
            let e = fs::metadata(m.m(name)).map(|m| m.len());
            assert_eq!(
                e.map_err(|e| e.raw_os_error()),
                Err(Some(libc::ENOENT)),
                "{what}: stat of deleted {name}"
            );
            let e = fs::read(m.m(name));
            assert_eq!(
                e.map_err(|e| e.raw_os_error()),
                Err(Some(libc::ENOENT)),
                "{what}: open of deleted {name}"
            );
        }
        assert_eq!(
            listing(&m.m("d")),
            vec![("keep".to_string(), false, 4)],
            "{what}"
        );
        // The descriptor opened before: old bytes or EIO (read(2) has no ENOENT), also
        // where nothing was cached.
        for (off, len) in [(100 << 10, 300 << 10), (0, 10), (12 << 20, 200 << 10)] {
            old_or_eio(&held, off, len, &v1, &format!("{what}: held descriptor"));
        }
        drop(held);
        assert!(fs::metadata(m.m("d/held")).is_err());
    }
}
