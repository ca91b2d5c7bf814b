//! The core's map from block key to entry: linear probing over one array of `(key, entry)`
//! slots, kept at most a quarter full, with backward-shift deletion (no tombstones), hashed
//! by [`BlockHasher`] (a file's neighbouring blocks take neighbouring slots).
//!
//! Why not `std`'s SwissTable: at a large cache nearly every miss finds its block's slot,
//! and the victim's, outside the CPU's caches. A SwissTable reads a control byte first and
//! then, in another array, the slot it points to (two dependent cache misses to remove a
//! victim), and the address of neither is known before the lookup. Here a key's slot is one
//! computed address: a lookup or removal reads one line (two when its probe run crosses
//! one), and [`prefetch`](BlockTable::prefetch) asks for it ahead of time, which the
//! simulator does for the requests it is about to replay and the core does for the next
//! victim a plugin named ahead. On a trace split into 1 KiB blocks (a million ids, a cache
//! of 106,607 blocks) that made the replay 15-30 % faster with ARC and LRU; on a small
//! cache that stays in the CPU's caches the SwissTable's one-instruction probe of 16
//! buckets wins: `CacheCore` with the native LRU on 4,096 blocks is about 13 % slower than
//! with it (docs/benchmarks.md §3, §10).
//!
//! The quarter is that trade: at half full the small cache was 45 % slower (longer probe
//! runs, [`BlockHasher`] filling slots four at a time), and at a quarter the table takes
//! what the SwissTable did: both had 524,288 slots for those 106,607 blocks (the SwissTable,
//! kept at most half full by `keep_sparse`, doubled as tombstones ate its room).
//!
//! Deletion moves each later slot of the probe run back into the hole when its home slot
//! allows it, so a lookup that fails stops at the first empty slot as in a table that never
//! deleted. Iteration order is the slots' order: arbitrary, as a `HashMap`'s.

use std::hash::{BuildHasher, BuildHasherDefault};

use kplug_engine::hash::BlockHasher;

/// A map from block key to `V` (see the module docs).
pub(in crate::cache) struct BlockTable<V> {
    /// `None`: empty. A power of two long (or empty before the first insertion).
    slots: Vec<Option<(u64, V)>>,
    len: usize,
}

impl<V> Default for BlockTable<V> {
    fn default() -> Self {
        BlockTable {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// The smallest table allocated.
const MIN_SLOTS: usize = 16;
/// The table grows once more than one slot in `SPARSE` would be occupied (see the module
/// docs).
const SPARSE: usize = 4;

impl<V> BlockTable<V> {
    #[inline]
    fn home(&self, key: u64) -> usize {
        let h = BuildHasherDefault::<BlockHasher>::default().hash_one(key);
        h as usize & (self.slots.len() - 1)
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        (i + 1) & (self.slots.len() - 1)
    }

    /// The slot holding `key`, for [`at`](Self::at) and [`remove_at`](Self::remove_at) until
    /// the table next changes.
    #[inline]
    pub(in crate::cache) fn find(&self, key: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(key);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, _)) if *k == key => return Some(i),
                Some(_) => i = self.next(i),
            }
        }
    }

    pub(in crate::cache) fn len(&self) -> usize {
        self.len
    }

    pub(in crate::cache) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(in crate::cache) fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    #[inline]
    pub(in crate::cache) fn get(&self, key: u64) -> Option<&V> {
        self.find(key).map(|i| self.at(i))
    }

    #[inline]
    pub(in crate::cache) fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let i = self.find(key)?;
        Some(&mut self.slots[i].as_mut().expect("an occupied slot").1)
    }

    /// Inserts `value` for `key`; the value it replaces, if any.
    #[inline]
    pub(in crate::cache) fn insert(&mut self, key: u64, value: V) -> Option<V> {
        if (self.len + 1) * SPARSE > self.slots.len() {
            self.grow();
        }
        let mut i = self.home(key);
        loop {
            match &mut self.slots[i] {
                slot @ None => {
                    *slot = Some((key, value));
                    self.len += 1;
                    return None;
                }
                Some((k, v)) if *k == key => return Some(std::mem::replace(v, value)),
                Some(_) => i = self.next(i),
            }
        }
    }

    /// The value in occupied slot `i` ([`find`](Self::find)).
    #[inline]
    pub(in crate::cache) fn at(&self, i: usize) -> &V {
        &self.slots[i].as_ref().expect("an occupied slot").1
    }

    /// Removes `key`; its value, if it was there.
    #[inline]
    pub(in crate::cache) fn remove(&mut self, key: u64) -> Option<V> {
        let i = self.find(key)?;
        Some(self.remove_at(i))
    }

    /// Empties occupied slot `hole` ([`find`](Self::find)), moving later slots of its probe
    /// run back (see the module docs); its value.
    pub(in crate::cache) fn remove_at(&mut self, mut hole: usize) -> V {
        let (_, value) = self.slots[hole].take().expect("an occupied slot");
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = self.next(j);
            let Some((k, _)) = &self.slots[j] else {
                return value;
            };
            // The entry at `j` may fill the hole unless its home lies cyclically in
            // (hole, j]: then a lookup starting there would never pass the hole.
            let home = self.home(*k);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
    }

    /// Doubles the slots (at least [`MIN_SLOTS`]) and places every entry again.
    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(n, || None);
        self.len = 0;
        for (k, v) in old.into_iter().flatten() {
            self.insert(k, v);
        }
    }

    /// Asks the CPU to bring `key`'s home slot into its caches (no effect on the table;
    /// nothing where the target has no prefetch instruction).
    #[inline]
    pub(in crate::cache) fn prefetch(&self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Option<(u64, V)> = &self.slots[self.home(key)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults nor changes memory; the address is in the table.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(slot.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    pub(in crate::cache) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (*k, v))
    }

    pub(in crate::cache) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut V)> {
        self.slots.iter_mut().flatten().map(|(k, v)| (*k, &mut *v))
    }

    pub(in crate::cache) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Takes every entry out, leaving the table empty with no slots, whether or not the
    /// iterator is used up.
    pub(in crate::cache) fn drain(&mut self) -> impl Iterator<Item = (u64, V)> + use<V> {
        self.len = 0;
        std::mem::take(&mut self.slots).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        /// `find`, `at`, then `remove_at` unless the value is the one given.
        RemoveUnless(u64, u32),
        Get(u64),
        Drain,
    }

    /// Keys that collide in runs: a file's neighbouring blocks, blocks of many files, ids
    /// near 0 and near `u64::MAX`.
    fn key() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..64,
            (0u64..8, 0u64..32).prop_map(|(f, b)| (f << 32) | b),
            (0u64..16).prop_map(|k| u64::MAX - k),
            (0u64..64).prop_map(|k| k * 4096),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            6 => key().prop_map(Op::Remove),
            2 => (key(), any::<u32>()).prop_map(|(k, v)| Op::RemoveUnless(k, v)),
            4 => key().prop_map(Op::Get),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Any sequence of operations gives what `HashMap` gives, the table stays at most a
        /// quarter full, and every entry is reachable from its home slot without crossing an empty one.
        #[test]
        fn behaves_as_a_hash_map(ops in prop::collection::vec(op(), 1..400)) {
            let mut t: BlockTable<u32> = BlockTable::default();
            let mut m: HashMap<u64, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(t.insert(k, v), m.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(t.remove(k), m.remove(&k)),
                    Op::RemoveUnless(k, v) => {
                        let want = match m.get(&k) {
                            None => Err(false),
                            Some(&x) if x == v => Err(true),
                            Some(_) => Ok(m.remove(&k).unwrap()),
                        };
                        let got = match t.find(k) {
                            None => Err(false),
                            Some(i) if *t.at(i) == v => Err(true),
                            Some(i) => Ok(t.remove_at(i)),
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Get(k) => {
                        prop_assert_eq!(t.get(k), m.get(&k));
                        prop_assert_eq!(t.contains_key(k), m.contains_key(&k));
                        if let Some(x) = t.get_mut(k) {
                            *x = x.wrapping_add(1);
                            let y = m.get_mut(&k).unwrap();
                            *y = y.wrapping_add(1);
                        }
                    }
                    Op::Drain if m.len() % 2 == 1 => {
                        // Dropped unread: the table is empty all the same.
                        let _ = t.drain().next();
                        m.clear();
                    }
                    Op::Drain => {
                        let mut got: Vec<_> = t.drain().collect();
                        let mut want: Vec<_> = m.drain().collect();
                        got.sort_unstable();
                        want.sort_unstable();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
                prop_assert!(t.len() * SPARSE <= t.slots.len() || t.slots.is_empty() && t.is_empty());
                let mut all: Vec<_> = t.iter().map(|(k, &v)| (k, v)).collect();
                let mut want: Vec<_> = m.iter().map(|(&k, &v)| (k, v)).collect();
                all.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(all, want);
                for (i, s) in t.slots.iter().enumerate() {
                    if let Some((k, _)) = s {
                        let mut j = t.home(*k);
                        while j != i {
                            prop_assert!(t.slots[j].is_some(), "{k} unreachable from its home");
                            j = t.next(j);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_run_of_neighbouring_blocks_takes_neighbouring_slots() {
        let mut t: BlockTable<()> = BlockTable::default();
        for k in 0..1024u64 {
            t.insert(k, ());
        }
        // Keys 4j..4j+3 hash to four consecutive slots, so each group costs one probe run.
        for j in 0..256u64 {
            let h = t.home(4 * j);
            assert!((1..4).all(|i| t.home(4 * j + i) == (h + i as usize) & (t.slots.len() - 1)));
        }
        t.prefetch(7);
        assert_eq!(t.len(), 1024);
        assert!((0..1024).all(|k| t.contains_key(k)));
    }
}
