//! Concurrent readers and writers on shared files through a real mount (root, /dev/fuse).
//!
//! A file is a row of fixed-size blocks. Every 8-byte word of a block is stamped with
//! `(block index, version, word index)`, so any word read back says exactly where it belongs
//! and which write put it there. Writer threads overwrite runs of whole blocks with the next
//! version; reader threads read ranges (whole blocks or word-aligned slices) three ways: a
//! descriptor held for the whole test (kernel page cache), the same descriptor after
//! `POSIX_FADV_DONTNEED` (so the read reaches the daemon and its data cache), and a fresh
//! open per read.
//!
//! Each block has a seqlock: a writer (writers of one block are serialised by its mutex)
//! makes the sequence odd before its `pwrite` and even again after it returned. A reader
//! samples the sequence of every block it reads before and after the read:
//!
//! - no write overlapped (same even value): every word must be the committed version
//!   exactly, so stale data (a cache filled before a write and kept after it) is caught;
//! - a write overlapped: Linux gives no atomicity between a buffered read and a write of the
//!   same page, so a block may mix two versions, but every word must still belong to this
//!   block and word slot and carry a version between the one committed before the read and
//!   the newest one started during it: never garbage, zeros, another block's data or an older
//!   version than was committed when the read began.
//!
//! At the end the file through the mount, the backing file and the expected final versions
//! must all be equal. Iteration counts are fixed (no timing); `KPLUGFS_SOAK=1` multiplies
//! them. Blocks of 4096 bytes line up with pages; blocks of 1000 bytes straddle them, so
//! writes of neighbouring blocks share pages.
#![cfg(feature = "mount-tests")]

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kplugfs_tests::TestMount;

/// One block's writer lock and seqlock.
struct Block {
    /// Serialises writers of this block; holds nothing, the version lives in `seq`.
    writer: Mutex<()>,
    /// Even: stable, `seq / 2 + 1` is the committed version. Odd: a write is in flight.
    seq: AtomicU64,
}

fn version_of(seq: u64) -> u64 {
    seq / 2 + 1
}

fn word(block: u64, version: u64, idx: u64) -> u64 {
    (block << 48) | ((version & 0xffff_ffff) << 16) | (idx & 0xffff)
}

fn decode(w: u64) -> (u64, u64, u64) {
    (w >> 48, (w >> 16) & 0xffff_ffff, w & 0xffff)
}

fn block_bytes(block: u64, version: u64, size: usize) -> Vec<u8> {
    (0..size as u64 / 8)
        .flat_map(|i| word(block, version, i).to_le_bytes())
        .collect()
}

/// Deterministic per-thread pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % n
    }
}

struct Shape {
    block: usize,
    blocks: u64,
    readers: usize,
    writers: usize,
    reads: usize,
    writes: usize,
}

fn scale() -> usize {
    if std::env::var("KPLUGFS_SOAK").is_ok_and(|v| v == "1") {
        20
    } else {
        1
    }
}

fn writer(path: &Path, shape: &Shape, blocks: &[Block], seed: u64) {
    let held = OpenOptions::new().write(true).open(path).unwrap();
    let mut rng = Rng(seed);
    let bs = shape.block as u64;
    for i in 0..shape.writes {
        let first = rng.below(shape.blocks);
        let run = (1 + rng.below(4)).min(shape.blocks - first);
        let range = first as usize..(first + run) as usize;
        // Ascending lock order: no deadlock between writers.
        let _guards: Vec<_> = blocks[range.clone()]
            .iter()
            .map(|b| b.writer.lock().unwrap())
            .collect();
        let mut buf = Vec::with_capacity(run as usize * shape.block);
        for (b, blk) in range.clone().zip(&blocks[range.clone()]) {
            let s = blk.seq.load(Ordering::Relaxed);
            blk.seq.store(s + 1, Ordering::SeqCst);
            buf.extend(block_bytes(b as u64, version_of(s + 2), shape.block));
        }
        if i % 5 == 4 {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            f.write_all_at(&buf, first * bs).unwrap();
        } else {
            held.write_all_at(&buf, first * bs).unwrap();
        }
        for blk in &blocks[range] {
            blk.seq.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn pread_full(f: &File, buf: &mut [u8], offset: u64) {
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], offset + got as u64).unwrap();
        assert_ne!(
            n,
            0,
            "short read at {} in a file that never shrinks",
            offset + got as u64
        );
        got += n;
    }
}

/// Returns how many words were checked exactly (no write overlapped) and how many were
/// read while their block was being written.
fn reader(path: &Path, shape: &Shape, blocks: &[Block], seed: u64) -> (u64, u64) {
    let (mut exact, mut overlapped) = (0, 0);
    let held = File::open(path).unwrap();
    let mut rng = Rng(seed);
    let bs = shape.block as u64;
    let words_per_block = bs / 8;
    let total_words = shape.blocks * words_per_block;
    for i in 0..shape.reads {
        // Whole blocks half the time, otherwise any word-aligned slice.
        let (start, words) = if rng.below(2) == 0 {
            let b = rng.below(shape.blocks);
            let n = (1 + rng.below(8)).min(shape.blocks - b);
            (b * words_per_block, n * words_per_block)
        } else {
            let s = rng.below(total_words);
            (s, (1 + rng.below(3 * words_per_block)).min(total_words - s))
        };
        let (b0, b1) = (
            start / words_per_block,
            (start + words - 1) / words_per_block,
        );
        let before: Vec<u64> = (b0..=b1)
            .map(|b| blocks[b as usize].seq.load(Ordering::SeqCst))
            .collect();
        let mut buf = vec![0u8; words as usize * 8];
        let how = i % 3;
        match how {
            0 => pread_full(&held, &mut buf, start * 8),
            1 => {
                // SAFETY: plain advice on a descriptor we own.
                let r = unsafe {
                    libc::posix_fadvise(held.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                };
                assert_eq!(r, 0, "fadvise");
                pread_full(&held, &mut buf, start * 8);
            }
            _ => pread_full(&File::open(path).unwrap(), &mut buf, start * 8),
        }
        let after: Vec<u64> = (b0..=b1)
            .map(|b| blocks[b as usize].seq.load(Ordering::SeqCst))
            .collect();
        for (k, chunk) in buf.chunks_exact(8).enumerate() {
            let pos = start + k as u64;
            let (block, slot) = (pos / words_per_block, pos % words_per_block);
            let (s1, s2) = (before[(block - b0) as usize], after[(block - b0) as usize]);
            let w = u64::from_le_bytes(chunk.try_into().unwrap());
            let (got_block, got_version, got_slot) = decode(w);
            let ctx = || {
                format!(
                    "reader {seed} read #{i} (mode {how}) at byte {}: word {w:#x} = \
                     (block {got_block}, version {got_version}, slot {got_slot}), expected \
                     block {block} slot {slot}, seq before {s1} after {s2}",
                    pos * 8
                )
            };
            assert_eq!((got_block, got_slot), (block, slot), "{}", ctx());
            if s1 == s2 && s1 % 2 == 0 {
                assert_eq!(got_version, version_of(s1), "stale or torn: {}", ctx());
                exact += 1;
            } else {
                overlapped += 1;
                let newest = version_of(s2 + s2 % 2);
                assert!(
                    (version_of(s1 - s1 % 2)..=newest).contains(&got_version),
                    "version out of range: {}",
                    ctx()
                );
            }
        }
    }
    (exact, overlapped)
}

fn run(shape: Shape) {
    let bs = shape.block;
    let n = shape.blocks;
    let m = TestMount::with_backing(&[], |b| {
        let data: Vec<u8> = (0..n).flat_map(|i| block_bytes(i, 1, bs)).collect();
        fs::write(b.join("shared"), data).unwrap();
    });
    let path = m.m("shared");
    let blocks: Arc<Vec<Block>> = Arc::new(
        (0..n)
            .map(|_| Block {
                writer: Mutex::new(()),
                seq: AtomicU64::new(0),
            })
            .collect(),
    );
    let shape = Arc::new(shape);
    let (exact, overlapped) = std::thread::scope(|s| {
        for t in 0..shape.writers {
            let (path, shape, blocks) = (&path, &shape, &blocks);
            s.spawn(move || writer(path, shape, blocks, 0x9e37_79b9 + t as u64));
        }
        let readers: Vec<_> = (0..shape.readers)
            .map(|t| {
                let (path, shape, blocks) = (&path, &shape, &blocks);
                s.spawn(move || reader(path, shape, blocks, 0x51ed_2701 + t as u64))
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    eprintln!("words checked exactly: {exact}, read during a write of their block: {overlapped}");
    // The exact check is the one that catches stale data: it must have run.
    assert!(exact > 0, "no read ran without an overlapping write");
    let want: Vec<u8> = (0..n)
        .flat_map(|i| {
            let seq = blocks[i as usize].seq.load(Ordering::SeqCst);
            block_bytes(i, version_of(seq), bs)
        })
        .collect();
    assert!(blocks.iter().any(|b| b.seq.load(Ordering::SeqCst) > 0));
    let through = fs::read(&path).unwrap();
    let backing = fs::read(m.b("shared")).unwrap();
    assert_eq!(backing.len(), want.len());
    assert!(
        backing == want,
        "backing file differs from the final versions"
    );
    assert!(
        through == backing,
        "file through the mount differs from the backing file"
    );
}

#[test]
fn readers_see_whole_current_page_sized_blocks() {
    let k = scale();
    run(Shape {
        block: 4096,
        blocks: 64,
        readers: 3,
        writers: 2,
        reads: 3000 * k,
        writes: 1500 * k,
    });
}

#[test]
fn readers_see_whole_current_blocks_straddling_pages() {
    let k = scale();
    run(Shape {
        block: 1000,
        blocks: 200,
        readers: 3,
        writers: 2,
        reads: 3000 * k,
        writes: 1500 * k,
    });
}
