//! A fast hasher for the integer keys of the cache's maps.
//!
//! std's SipHash is DoS-resistant but costs ~15 ns per u64; the keys here are
//! block numbers the host builds itself (or trace ids in the simulator), so a
//! folded 64x64->128 multiply (as in wyhash/foldhash) mixes well enough for the
//! SwissTable, which uses both the top 7 bits and the low bits of the hash.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Folded-multiply hasher for integer keys.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let m = (self.0 as u128).wrapping_mul(K as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(K).rotate_left(29);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// Hasher for block keys (a file's blocks, a trace's ids), whose neighbours are read
/// together: keys `4j..4j+3` take four neighbouring buckets of a SwissTable (one or two
/// cache lines) at a place Fibonacci hashing of `j` picks, so a run of blocks costs a
/// quarter of the cache misses.
/// For `u64` and `u32` keys (other writes hash as [`FastHasher`] does).
#[derive(Default, Clone, Copy)]
pub struct BlockHasher(u64);

impl Hasher for BlockHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Fibonacci hashing of the group: the high bits of the low word of `j * K` spread
        // consecutive groups evenly (a folded multiply's low bits do not), so they become
        // the low bits SwissTable indexes by (`swap_bytes`, one instruction); the high word
        // of the product goes into the top 7 bits, SwissTable's tag, which would otherwise
        // be the low word's low bits (all zero for `j` a multiple of 256).
        let m = ((self.0 >> 2) as u128).wrapping_mul(K as u128);
        let h = (m as u64).swap_bytes() ^ (((m >> 64) as u64) << 57);
        (h & !3) | (self.0 & 3)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = FastHasher(self.0);
        h.write(bytes);
        self.0 = h.0;
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.0 = x as u64;
    }
}

/// A `HashMap` keyed by blocks, with [`BlockHasher`].
pub type BlockMap<K, V> = HashMap<K, V, BuildHasherDefault<BlockHasher>>;
/// A `HashSet` of blocks, with [`BlockHasher`].
pub type BlockSet<K> = HashSet<K, BuildHasherDefault<BlockHasher>>;

/// Grows `map` ahead of an insertion so that it stays at most half full. [`BlockHasher`]
/// fills buckets four neighbours at a time, so a fuller SwissTable has more 16-bucket windows
/// with no empty bucket, where a removal must leave a tombstone; under churn (a cache: one
/// insertion and one removal per miss) tombstones pile up until the table rehashes. Measured
/// on `CacheCore` with random keys (`cargo bench -p kplug-cache --bench hook_call -- core/`):
/// the native LRU took 44 ns a request with its map left to grow as it would, 34 ns before
/// the grouping (`FastHasher`).
#[inline]
pub fn keep_sparse<K: Eq + std::hash::Hash, V>(map: &mut BlockMap<K, V>) {
    if let Some(n) = sparse_reserve(map.len(), map.capacity(), 1) {
        map.reserve(n);
    }
}

/// [`keep_sparse`] for a [`BlockSet`], ahead of up to `additional` insertions.
#[inline]
pub fn keep_sparse_set<K: Eq + std::hash::Hash>(set: &mut BlockSet<K>, additional: usize) {
    if let Some(n) = sparse_reserve(set.len(), set.capacity(), additional) {
        set.reserve(n);
    }
}

/// What to `reserve` so that a table of `len` entries with room for `capacity` is at most
/// half full after `additional` more; `None` when it already is.
#[inline]
fn sparse_reserve(len: usize, capacity: usize, additional: usize) -> Option<usize> {
    ((len + additional) * 2 > capacity).then_some(len + 2 * additional)
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn block_hash(k: u64) -> u64 {
        BuildHasherDefault::<BlockHasher>::default().hash_one(k)
    }

    #[test]
    fn neighbouring_blocks_take_neighbouring_buckets() {
        for j in [0u64, 1, 77, 1 << 40, u64::MAX >> 2] {
            let base = block_hash(4 * j);
            for i in 0..4 {
                assert_eq!(block_hash(4 * j + i), base + i);
            }
        }
        // u32 keys (a file's block numbers) hash as the same u64.
        let b = BuildHasherDefault::<BlockHasher>::default();
        assert_eq!(b.hash_one(12345u32), b.hash_one(12345u64));
    }

    #[test]
    fn block_groups_spread_over_buckets_and_tags() {
        // Consecutive blocks, blocks of many files (`file << 32 | block`) and keys 4 KiB
        // apart: over 2^14 bucket groups no group takes more than twice its share, and the
        // SwissTable tag (top 7 bits) takes every value.
        let shapes: [fn(u64) -> u64; 3] =
            [|k| k, |k| ((k % 1024) << 32) | (k / 1024), |k| k * 4096];
        for (s, shape) in shapes.iter().enumerate() {
            let n = 1u64 << 20;
            let mut groups = vec![0u32; 1 << 14];
            let mut tags = [false; 128];
            for k in 0..n {
                let h = block_hash(shape(k));
                groups[((h >> 2) & ((1 << 14) - 1)) as usize] += 1;
                tags[(h >> 57) as usize] = true;
            }
            let share = (n >> 14) as u32;
            let max = *groups.iter().max().unwrap();
            assert!(
                max <= 2 * share,
                "shape {s}: {max} keys in a group, share {share}"
            );
            assert!(tags.iter().all(|&t| t), "shape {s}: a tag never used");
        }
        let mut m: BlockMap<u64, u64> = BlockMap::default();
        for k in 0..10_000u64 {
            keep_sparse(&mut m);
            m.insert(k * 3, k);
            assert!(
                m.len() * 2 <= m.capacity(),
                "{} in {}",
                m.len(),
                m.capacity()
            );
        }
        assert!((0..10_000u64).all(|k| m.get(&(k * 3)) == Some(&k)));
        // A set made room for a run of insertions at once.
        let mut set: BlockSet<u64> = BlockSet::default();
        for run in 0..100u64 {
            keep_sparse_set(&mut set, 64);
            set.extend(run * 64..run * 64 + 64);
            assert!(
                set.len() * 2 <= set.capacity(),
                "{} in {}",
                set.len(),
                set.capacity()
            );
        }
    }
}
