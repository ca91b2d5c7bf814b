//! ARC eviction written with `kplug-sdk`, following libCacheSim's `ARC.c`
//! (Megiddo & Modha, FAST '03; `p` and the adaptation step are floats).
//!
//! T1 (seen once) and T2 (seen again) are LRU lists of resident blocks; B1 and
//! B2 are their ghosts. A miss that finds the block in B1 grows the target
//! `p` for T1 by `max(|B2|/|B1|, 1)`, one found in B2 shrinks it by
//! `max(|B1|/|B2|, 1)`; the block then enters T2, any other miss enters T1. A
//! hit moves a block to the head of T2. REPLACE evicts T1's tail into B1 when
//! `|T1| > p` (or `|T1| == p` on a B2 hit, or T2 is empty), else T2's tail
//! into B2; a miss found in no list first trims B1 (when `|T1| + |B1| = c`;
//! with B1 empty it evicts T1's tail outright) or B2 (when all four hold
//! `2c`).
//!
//! Which case applies depends on the block being inserted, which libCacheSim
//! learns in `find` before making room. ABI 1.4 hands the missed key to
//! `evict` before any victim is chosen (on every miss, with room or not), which
//! is exactly libCacheSim's `find`-on-miss; so ARC serves eviction alone and
//! composes with any admission plugin (`arc+doorkeeper`).
//!
//! By handle (ABI 1.8): the four lists share one slab (`HandleLists`), so a
//! block keeps its handle from T1 to T2 and into its ghost list; the host's
//! handle finds a resident block with no lookup. One index from key to handle
//! holds every entry, resident or ghost, and is touched only when an id enters
//! or leaves ARC's directory (a new block; a ghost dropped): a miss looks its id
//! up once, and a block evicted into its ghost list costs no hash table at all.
//! A ghost hit parks its entry (list `PARKED`, out of B1 and B2 as libCacheSim
//! removes it in `find`) until the block is inserted into T2 with it.
//!
//! A ghost dropped from B1 or B2 leaves its list at once and the index in a batch of 16:
//! the batch's slots are read first, together, so the 16 cache misses overlap instead of
//! costing one each (wasm has no prefetch instruction; plain loads that do not depend on
//! each other wait for memory together), 3-5 % of the simulator's replay on a trace of a
//! million ids. Meanwhile a dropped ghost's entry is stale: its handle may already hold
//! another block, so a lookup takes an entry only if its handle still holds the key.
//!
//! ARC cannot name its victims ahead (ABI 1.10): whether the next one comes from T1 or T2
//! depends on the next missed key. It names both candidates, the backs of T1 and T2, as
//! likely victims (ABI 1.11), so that the host has read the entry of whichever it removes
//! (on a trace of a million ids that removal was 13 % of the simulator's replay, 3 % with
//! them).
//!
//! A miss's lookup of its id in the index finds the slot outside the CPU's caches at a
//! large cache, and a plain load ahead in wasm only moves the wait (it must complete to
//! retire). Told the coming requests (ABI 1.12, the simulator), ARC answers each one's
//! slot and the host prefetches it: that lookup 15 % of the replay -> 4 %. It asks for them
//! only when its index is larger than a core's cache (`IntMap::outgrows_core_cache`, 1 MiB:
//! from 16,385 blocks): below, the slots stay in the cache and passing a key per request
//! cost more than it saved (cache2k's `orm-busy` at 7,634 blocks, 88 % hits: the replay
//! 0.280 -> 0.259 s, 7 runs alternated; docs/plugin-abi.md §3).
//!
//! Parameters: none (libCacheSim's ARC has none).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{HandleEviction, HandleLists, IntMap, Plugin, Victims, export_plugin};

/// The lists, numbered as in `HandleLists`.
const T1: usize = 0;
const T2: usize = 1;
const B1: usize = 2;
const B2: usize = 3;
/// The entry of a ghost the current miss found, until its block is inserted.
const PARKED: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ghost {
    None,
    B1,
    B2,
}

/// Adaptive Replacement Cache.
#[derive(Default)]
pub struct Arc {
    /// T1, T2 (resident) and B1, B2 (ghosts), front = most recent; `PARKED`.
    lists: HandleLists<5>,
    /// The handle of every entry, by key.
    index: IntMap<u32>,
    p: f64,
    capacity: u64,
    /// The block of the current miss and where it was found, once `miss` ran.
    current: Option<(u64, Ghost)>,
    /// Ghosts dropped from their list whose index entries are not yet removed, by key,
    /// removed [`DROPPED_BATCH`] at a time (their slots read together first).
    dropped: [u64; DROPPED_BATCH],
    n_dropped: usize,
}

/// How many dropped ghosts' index entries are removed together.
const DROPPED_BATCH: usize = 16;

impl Arc {
    /// libCacheSim's `ARC_find` for a block that is not resident.
    #[inline(always)]
    fn miss(&mut self, key: u64) {
        // A ghost parked by a miss whose block never came is dropped, as `find` dropped it.
        if let Some(h) = self.lists.back(PARKED) {
            self.forget(h);
        }
        let (b1, b2) = (self.lists.len(B1) as f64, self.lists.len(B2) as f64);
        // An entry whose handle now names another key is a dropped ghost's, not yet removed.
        let found = self
            .index
            .get(key)
            .copied()
            .filter(|&h| self.lists.key(h) == Some(key));
        let ghost = match found.map(|h| (h, self.lists.list_of(h))) {
            Some((h, Some(B1))) => {
                let delta = (b2 / b1).max(1.0);
                self.p = (self.p + delta).min(self.capacity as f64);
                self.lists.move_to_front(PARKED, h);
                Ghost::B1
            }
            Some((h, Some(B2))) => {
                let delta = (b1 / b2).max(1.0);
                self.p = (self.p - delta).max(0.0);
                self.lists.move_to_front(PARKED, h);
                Ghost::B2
            }
            _ => Ghost::None,
        };
        self.current = Some((key, ghost));
    }

    /// Drops entry `h` from its list and the index.
    fn forget(&mut self, h: u32) -> Option<u64> {
        let k = self.lists.remove(h)?;
        self.unindex_stale(k);
        Some(k)
    }

    /// Removes `k`'s index entry if it is stale, its handle no longer holding `k` (a key
    /// that entered again keeps its live entry, perhaps the very handle its ghost had).
    fn unindex_stale(&mut self, k: u64) {
        let lists = &self.lists;
        self.index.remove_if(k, |&h| lists.key(h) != Some(k));
    }

    /// Forgets the oldest ghost of `list` (B1 or B2): out of its list now, out of the index
    /// with the next batch.
    #[inline(always)]
    fn drop_ghost(&mut self, list: usize) {
        let Some(h) = self.lists.back(list) else {
            return;
        };
        let Some(k) = self.lists.remove(h) else {
            return;
        };
        self.dropped[self.n_dropped] = k;
        self.n_dropped += 1;
        if self.n_dropped == DROPPED_BATCH {
            self.remove_dropped();
        }
    }

    /// Removes the index entries of the ghosts dropped so far that are still stale.
    fn remove_dropped(&mut self) {
        let dropped = self.dropped;
        let dropped = &dropped[..self.n_dropped];
        for &k in dropped {
            self.index.touch(k);
        }
        for &k in dropped {
            self.unindex_stale(k);
        }
        self.n_dropped = 0;
    }

    fn ghost(&self) -> Ghost {
        self.current.map_or(Ghost::None, |(_, g)| g)
    }

    /// REPLACE: evict T1's or T2's tail into its ghost.
    #[inline(always)]
    fn replace(&mut self) -> Option<u64> {
        let t1 = self.lists.len(T1) as f64;
        let from_t1 = (t1 > 0.0 && (t1 > self.p || (t1 == self.p && self.ghost() == Ghost::B2)))
            || self.lists.is_empty(T2);
        let (data, ghost) = if from_t1 { (T1, B1) } else { (T2, B2) };
        // The entry moves to its ghost list, keeping its slot and its place in the index.
        let h = self.lists.back(data)?;
        self.lists.move_to_front(ghost, h);
        self.lists.key(h)
    }
}

impl Plugin for Arc {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity;
        let c = capacity.min(1 << 20) as usize;
        self.lists.reserve(2 * c);
        self.index.reserve(2 * c);
        Ok(())
    }
}

impl HandleEviction for Arc {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        if self.current.map(|(k, _)| k) != Some(key) {
            self.miss(key);
        }
        self.current = None;
        // A ghost hit enters T2 with its parked entry; any other miss enters T1.
        match self.lists.back(PARKED) {
            Some(h) => {
                self.lists.move_to_front(T2, h);
                h
            }
            None => {
                let h = self.lists.push_front(T1, key);
                self.index.insert(key, h);
                h
            }
        }
    }

    fn access(&mut self, handle: u32) {
        if matches!(self.lists.list_of(handle), Some(T1 | T2)) {
            self.lists.move_to_front(T2, handle);
        }
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        if matches!(self.lists.list_of(handle), Some(T1 | T2)) {
            self.forget(handle);
        }
    }

    /// The next victim is the back of T1 or of T2, as the next missed key decides: both are
    /// named as likely (ABI 1.11), so that the host has the entry of either read when it
    /// comes to remove it.
    const HINTS: u32 = 2;

    fn likely_victims(&self, out: &mut [u64]) -> usize {
        self.lists.backs(&[T1, T2], out)
    }

    /// A miss looks its id up in the index, whose slot is outside the CPU's caches at a
    /// large cache: the coming requests' slots (ABI 1.12) are read ahead, so that a coming
    /// miss finds its slot there.
    const LOOKAHEAD: u32 = 8;

    /// Only while the index outgrows the core's cache (see the module docs).
    fn lookahead(&self) -> u32 {
        self.index.lookahead_count(Self::LOOKAHEAD)
    }

    fn coming(&mut self, keys: &mut [u64]) {
        self.index.homes(keys);
    }

    #[inline(always)]
    fn evict(&mut self, incoming: u64, need: usize, victims: &mut Victims<'_>) {
        self.miss(incoming);
        victims.fill(need, || self.victim(incoming));
    }

    #[inline(always)]
    fn victim(&mut self, incoming: u64) -> Option<u64> {
        if self.current.map(|(k, _)| k) != Some(incoming) {
            self.miss(incoming);
        }
        if self.ghost() != Ghost::None {
            return self.replace();
        }
        // Case IV of the paper: a miss in all four lists.
        let c = self.capacity as usize;
        let [t1, t2, b1, b2] = [T1, T2, B1, B2].map(|l| self.lists.len(l));
        if t1 + b1 + 1 > c {
            if b1 > 0 {
                self.drop_ghost(B1);
                self.replace()
            } else {
                let h = self.lists.back(T1)?;
                self.forget(h)
            }
        } else {
            if t1 + b1 + t2 + b2 >= 2 * c {
                self.drop_ghost(B2);
            }
            self.replace()
        }
    }
}

export_plugin!(Arc, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    /// The coming keys are asked for only once the index outgrows a core's cache (2
    /// entries a block, at most half full: from 16,385 blocks, 1 MiB of 16-byte slots).
    #[test]
    fn coming_keys_only_for_an_index_larger_than_a_core_cache() {
        for (capacity, lookahead) in [(4, 0), (7_634, 0), (16_384, 0), (16_385, 8), (106_607, 8)] {
            let mut a = Arc::default();
            a.init(capacity).unwrap();
            assert_eq!(a.lookahead(), lookahead, "{capacity} blocks");
        }
    }

    #[test]
    fn ghost_hit_goes_to_t2_and_moves_p() {
        let mut a = Arc::default();
        a.init(4).unwrap();
        let mut buf = [0u64; 256];
        let mut h = Vec::new();
        for k in 1..=4 {
            a.evict(k, 0, &mut Victims::new(&mut buf));
            h.push(a.insert(k));
        }
        a.access(h[0]); // T1 {4 3 2}, T2 {1}
        assert_eq!(a.victim(5), Some(2)); // T1's tail into B1
        a.insert(5);
        let mut v = Victims::new(&mut buf);
        a.evict(2, 1, &mut v); // B1 hit: p = 1, then T1's tail
        assert_eq!(a.p, 1.0);
        assert_eq!(v.iter().collect::<Vec<_>>(), [3]);
        let h2 = a.insert(2);
        assert_eq!(a.lists.list_of(h2), Some(T2));
        // 3 is a ghost in B1, found by key; 1 kept its handle from T1 to T2, and 2 the
        // handle of its ghost.
        assert_eq!(a.index.get(3).and_then(|&g| a.lists.list_of(g)), Some(B1));
        assert_eq!(a.lists.list_of(h[0]), Some(T2));
        assert_eq!(h2, h[1]);
    }

    /// Ghosts dropped leave the index a batch at a time: meanwhile their handles are given
    /// to new blocks (which may become ghosts in turn). Whatever the order, every entry of
    /// the four lists is found by its key, a key is a ghost hit only when its own entry is in
    /// B1 or B2, and the index holds at most a batch more than the lists.
    #[test]
    fn dropped_ghosts_are_never_found_through_a_reused_handle() {
        for capacity in [2u64, 3, 8, 32] {
            let mut a = Arc::default();
            a.init(capacity).unwrap();
            let mut buf = [0u64; 256];
            let (mut resident, mut handles) = (0u64, std::collections::HashMap::new());
            let mut s = 0x9e37_79b9_7f4a_7c15u64;
            let mut ghost_hits = 0;
            for _ in 0..20_000 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let key = s % (4 * capacity + 3);
                if let Some(&h) = handles.get(&key) {
                    a.access(h);
                } else {
                    let mut v = Victims::new(&mut buf);
                    a.evict(key, usize::from(resident == capacity), &mut v);
                    let gone: Vec<u64> = v.iter().collect();
                    let ghost = a.ghost();
                    // A ghost hit is the key's own entry.
                    let own = a
                        .index
                        .get(key)
                        .copied()
                        .filter(|&h| a.lists.key(h) == Some(key));
                    let in_ghosts = own.is_some_and(|h| a.lists.list_of(h) == Some(PARKED));
                    assert_eq!(ghost != Ghost::None, in_ghosts, "key {key}");
                    ghost_hits += u64::from(in_ghosts);
                    for k in gone {
                        assert!(handles.remove(&k).is_some());
                        resident -= 1;
                    }
                    handles.insert(key, a.insert(key));
                    resident += 1;
                }
                let mut listed = 0;
                for list in [T1, T2, B1, B2] {
                    let mut at = a.lists.front(list);
                    while let Some(h) = at {
                        let k = a.lists.key(h).unwrap();
                        assert_eq!(a.index.get(k), Some(&h), "{k} in list {list}");
                        listed += 1;
                        at = a.lists.toward_back(h);
                    }
                }
                assert!(a.index.len() <= listed + DROPPED_BATCH);
            }
            assert!(ghost_hits > 100, "{capacity}: {ghost_hits}");
        }
    }
}
