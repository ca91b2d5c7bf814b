//! The block cache's own code (`fusefs/daemon/src/data/blockcache.rs`: pending-fetch deduplication,
//! per-file generations, reads waiting for writes in progress, the prefetch queue and its
//! threads) under shuttle's schedulers, which choose the order of every lock, condvar and
//! thread step at random (`check_random`) or by priority change points (`check_pct`).
//!
//! Each scenario runs a fresh cache over a real file whose blocks are stamped with a
//! version: every byte of block `b` at version `v` is `b * 16 + v`. The properties:
//!
//! - a read never returns a mixed or foreign block, nor a version older than the one
//!   committed before the read began (a write through the mount counts from the moment
//!   `write_begin` returned, a change behind the mount once `invalidate_file` returned);
//! - after all threads are done, every block read through the cache is the file's content;
//! - no interleaving deadlocks (shuttle fails a run where every thread is blocked), and
//!   dropping the cache stops its prefetch threads.
//!
//! `KPLUGFS_SOAK=1` runs 20 times as many schedules.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kplug_cache::CoreConfig;
use kplugfs_shuttle::data::blockcache::{BlockCache, BlockCacheConfig};
use kplugfs_shuttle::data::{Backend, DataCache, FileRef, FileSource, Source};

const BS: u64 = 4096;
const BLOCKS: u64 = 4;
const INO: u64 = 7;

fn schedules(n: usize) -> usize {
    if std::env::var("KPLUGFS_SOAK").is_ok_and(|v| v == "1") {
        n * 20
    } else {
        n
    }
}

fn stamp(block: u64, version: u64) -> u8 {
    (block * 16 + version) as u8
}

/// A scratch file of `BLOCKS` blocks at version 0, and the committed version of each block.
struct Fixture {
    _dir: tempfile::TempDir,
    file: std::fs::File,
    source: Arc<dyn Source>,
    committed: Vec<AtomicU64>,
}

impl Fixture {
    fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..BLOCKS)
            .flat_map(|b| vec![stamp(b, 0); BS as usize])
            .collect();
        std::fs::write(&path, data).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let fd = std::os::fd::OwnedFd::from(file.try_clone().unwrap());
        Arc::new(Self {
            _dir: dir,
            source: Arc::new(FileSource::new(Arc::new(fd))),
            file,
            committed: (0..BLOCKS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn file_ref(&self) -> FileRef<'_> {
        FileRef {
            ino: INO,
            source: &self.source,
        }
    }
}

fn cache(capacity_blocks: u64) -> Arc<BlockCache> {
    BlockCache::new(
        Arc::new(Backend::new(Duration::ZERO)),
        BlockCacheConfig {
            block_size: BS,
            capacity_bytes: capacity_blocks * BS,
            prefetch_threads: 2,
            // The built-in readahead: prefetch jobs run on the cache's own threads.
            core: CoreConfig::default(),
        },
        None,
    )
}

/// Read `[offset, offset + len)` and check it against the versions committed before.
fn read_and_check(c: &BlockCache, fx: &Fixture, offset: u64, len: u32) {
    let first = offset / BS;
    let last = (offset + len as u64 - 1) / BS;
    let floor: Vec<u64> = (first..=last)
        .map(|b| fx.committed[b as usize].load(Ordering::SeqCst))
        .collect();
    let data = c.read(fx.file_ref(), offset, len).unwrap();
    assert_eq!(data.len(), len as usize, "short read inside the file");
    for (i, byte) in data.iter().enumerate() {
        let pos = offset + i as u64;
        let b = pos / BS;
        let v = (*byte as u64).wrapping_sub(b * 16);
        assert!(
            v < 16,
            "byte {pos} is {byte}: not a version of block {b} (foreign or torn data)"
        );
        let min = floor[(b - first) as usize];
        assert!(
            v >= min,
            "byte {pos} is version {v} of block {b}, but version {min} was committed \
             before the read began (stale data)"
        );
    }
}

/// A write through the mount, as `KplugFs::write` does it: announce, write, finish.
///
/// The version counts as committed as soon as `write_begin` returns: by then the kernel
/// already holds the new bytes in its page cache, so a read the daemon starts after that
/// must not return older ones (it would put them back in the kernel's cache after the
/// write's reply). The cache guarantees it by making such reads wait for `write_end`.
fn write_block(c: &BlockCache, fx: &Fixture, b: u64, v: u64) {
    c.write_begin(INO, b * BS, BS);
    fx.committed[b as usize].store(v, Ordering::SeqCst);
    fx.file
        .write_all_at(&vec![stamp(b, v); BS as usize], b * BS)
        .unwrap();
    c.write_end(INO, b * BS, BS);
}

/// A change behind the mount, seen at the next open: write the backing file, then drop the
/// file's cached blocks.
fn change_behind(c: &BlockCache, fx: &Fixture, b: u64, v: u64) {
    fx.file
        .write_all_at(&vec![stamp(b, v); BS as usize], b * BS)
        .unwrap();
    c.invalidate_file(INO);
    fx.committed[b as usize].store(v, Ordering::SeqCst);
}

fn final_state_matches(c: &BlockCache, fx: &Fixture) {
    let through = c.read(fx.file_ref(), 0, (BLOCKS * BS) as u32).unwrap();
    let mut backing = vec![0; (BLOCKS * BS) as usize];
    fx.file.read_exact_at(&mut backing, 0).unwrap();
    assert!(through == backing, "cache and file differ at the end");
}

/// Two readers (sequential, so readahead prefetches) and one writer through the mount.
fn readers_and_a_writer() {
    let fx = Fixture::new();
    let c = cache(3);
    let writer = {
        let (c, fx) = (c.clone(), fx.clone());
        shuttle::thread::spawn(move || {
            write_block(&c, &fx, 1, 1);
            write_block(&c, &fx, 2, 1);
            write_block(&c, &fx, 1, 2);
        })
    };
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (c, fx) = (c.clone(), fx.clone());
            shuttle::thread::spawn(move || {
                for i in 0..BLOCKS {
                    let b = (i + r) % BLOCKS;
                    read_and_check(&c, &fx, b * BS, BS as u32);
                }
                // A read spanning blocks, not aligned.
                read_and_check(&c, &fx, BS / 2, (2 * BS) as u32);
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    final_state_matches(&c, &fx);
}

/// Readers of the same blocks join each other's fetches while the file changes behind the
/// mount and the cache (one block of room) evicts.
fn shared_fetches_and_changes_behind() {
    let fx = Fixture::new();
    let c = cache(1);
    let changer = {
        let (c, fx) = (c.clone(), fx.clone());
        shuttle::thread::spawn(move || {
            change_behind(&c, &fx, 0, 1);
            change_behind(&c, &fx, 3, 1);
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|r| {
            let (c, fx) = (c.clone(), fx.clone());
            shuttle::thread::spawn(move || {
                read_and_check(&c, &fx, 0, BS as u32);
                read_and_check(&c, &fx, (3 - r % 2) * BS, 100);
                read_and_check(&c, &fx, 0, 10);
            })
        })
        .collect();
    changer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    final_state_matches(&c, &fx);
}

#[test]
fn readers_and_a_writer_random_schedules() {
    shuttle::check_random(readers_and_a_writer, schedules(300));
}

#[test]
fn readers_and_a_writer_pct_schedules() {
    shuttle::check_pct(readers_and_a_writer, schedules(300), 3);
}

#[test]
fn shared_fetches_and_changes_behind_random_schedules() {
    shuttle::check_random(shared_fetches_and_changes_behind, schedules(300));
}

#[test]
fn shared_fetches_and_changes_behind_pct_schedules() {
    shuttle::check_pct(shared_fetches_and_changes_behind, schedules(300), 3);
}
