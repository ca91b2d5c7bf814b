//! LIRS eviction written with `kplug-sdk`, following libCacheSim's `LIRS.c`
//! (Jiang & Zhang, SIGMETRICS '02).
//!
//! Blocks are LIR (low inter-reference recency, the bulk of the cache) or HIR.
//! Stack **S** orders recently seen blocks (LIR, resident HIR and non-resident
//! HIR ids) by recency; its bottom is always LIR (stack pruning). List **Q**
//! holds the resident HIR blocks, the eviction candidates, 1 % of the cache
//! (at least one). **NH** orders the non-resident HIR ids still in S, so S
//! can be bounded at twice the cache size.
//!
//! - Hit on LIR: to the top of S, prune.
//! - Hit on a resident HIR in S: it becomes LIR (leaves Q); S's bottom LIR
//!   becomes HIR (to Q), prune.
//! - Hit on a resident HIR only in Q: to the top of S and Q, still HIR (as
//!   libCacheSim does, this also demotes S's bottom LIR when the LIR set is
//!   full, which can evict a block on a hit).
//! - Miss on a non-resident HIR in S: it becomes LIR; S's bottom LIR becomes
//!   HIR, Q's front is evicted if Q is full.
//! - Other miss: LIR while the LIR set has room, else resident HIR (Q's front
//!   is evicted first if Q is full).
//!
//! libCacheSim evicts inside these transitions (in `can_insert` before the
//! insertion, and on the hits above), not only when the cache is full. ABI 1.4
//! lets the host follow exactly: `evict` gets the missed block before room is
//! made (libCacheSim's `find` + `can_insert`) and names every block the
//! transition evicted, as many as there are, and a hit names the blocks it
//! evicted too (`HIT_BATCH = 1`, so they leave before the next request). The
//! host then holds what libCacheSim holds, below capacity when libCacheSim is.
//! A hit on a LIR block evicts nothing, nor makes any block LIR or HIR: the
//! LIR blocks are marked (ABI 1.13, the `LIR` flag mirrored in `Nodes`'
//! marks), and the host holds hits on them until the next call, so on a
//! trace of mostly hits nearly every hit costs no call of its own.
//! The state keeps the host's view (`host`) beside libCacheSim's, so that a
//! disagreement (a 1-block cache, whose LIR set has size 0) is repaired by
//! replaying libCacheSim's view rather than by a wrong answer.
//!
//! By handle (ABI 1.8): every id the policy knows has one entry in one slab
//! (`nodes.rs`), threaded through each list it is in (S, Q, NH, the host's
//! blocks, the pending ones) by links of its own; its index is the handle the
//! host keeps, so a hit touches no hash table, and a miss looks its id up once.
//!
//! Parameters:
//! - `hirs-ratio=0.01`: Q's share of the cache, `max(1, floor(capacity x r))`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod nodes;

use kplug_sdk::{HandleEviction, Plugin, Rejected, Victims, export_plugin};
use nodes::Nodes;

/// The lists, numbered as in `Nodes`.
/// Stack S, front = top (most recent).
const S: usize = 0;
/// Resident HIR blocks, front = most recent; evict from the back.
const Q: usize = 1;
/// Non-resident HIR ids in S, front = most recent.
const NH: usize = 2;
/// Blocks resident in the host, most recently inserted first.
const HOST: usize = 3;
/// Blocks libCacheSim evicted, still resident in the host.
const PENDING: usize = 4;

/// An entry's flags: its state in S (libCacheSim's LIR and resident bits), set while
/// `STATE` is (which S's members always have; a 1-block cache can leave it on an id S
/// lost, as libCacheSim's own state does).
const STATE: u8 = 4;
const LIR: u8 = 1;
const RESIDENT: u8 = 2;

/// LIRS.
pub struct Lirs {
    nodes: Nodes<5, LIR>,
    hirs_ratio: f64,
    capacity: u64,
    lirs_limit: u64,
    hirs_limit: u64,
    lirs_count: u64,
    /// The key whose miss `evict` already processed.
    prepared: Option<u64>,
}

impl Default for Lirs {
    fn default() -> Self {
        Lirs {
            nodes: Nodes::default(),
            hirs_ratio: 0.01,
            capacity: 0,
            lirs_limit: 0,
            hirs_limit: 1,
            lirs_count: 0,
            prepared: None,
        }
    }
}

impl Lirs {
    fn hirs_count(&self) -> u64 {
        self.nodes.len(Q) as u64
    }

    /// The entry's state in S, `STATE | LIR | RESIDENT` bits, if it has one.
    fn state(&self, h: u32) -> Option<u8> {
        let f = self.nodes.flags(h);
        (f & STATE != 0).then_some(f)
    }

    /// Whether libCacheSim considers the entry's block cached.
    fn model_resident(&self, h: u32) -> bool {
        match self.state(h) {
            Some(f) => f & (LIR | RESIDENT) != 0,
            None => self.nodes.contains(Q, h),
        }
    }

    /// To the top of S with state `bits` (LIR, RESIDENT).
    fn s_push(&mut self, h: u32, bits: u8) {
        if !self.nodes.push_front(S, h) {
            self.nodes.move_to_front(S, h);
        }
        self.nodes.set_flags(h, STATE | bits);
    }

    fn s_remove(&mut self, h: u32) {
        self.nodes.remove(S, h);
        self.nodes.set_flags(h, 0);
    }

    fn evicted(&mut self, h: u32) {
        if self.nodes.contains(HOST, h) {
            self.nodes.push_front(PENDING, h);
        }
    }

    // `prune`, `limit_stack` and `hand_over` run on nearly every request and nearly always
    // find nothing to do: each tests that inline and calls its loop only when there is work
    // (as calls, their frames cost 40-75 instructions a request on cache2k's `orm-busy`).

    /// Pops S's bottom while it is not LIR.
    #[inline]
    fn prune(&mut self) {
        if self.nodes.len(S) > 1
            && let Some(h) = self.nodes.back(S)
            && self.nodes.flags(h) & LIR == 0
        {
            self.prune_hir();
        }
    }

    #[inline(never)]
    fn prune_hir(&mut self) {
        while self.nodes.len(S) > 1 {
            let Some(h) = self.nodes.back(S) else { break };
            let f = self.state(h).expect("S entries have a state");
            if f & LIR != 0 {
                break;
            }
            if f & RESIDENT == 0 {
                self.nodes.remove(NH, h);
            }
            self.s_remove(h);
        }
    }

    /// Q's front (LRU end) leaves the cache.
    fn evict_hir(&mut self) {
        let Some(h) = self.nodes.pop_back(Q) else {
            return;
        };
        if let Some(f) = self.state(h) {
            self.nodes.set_flags(h, f & !RESIDENT);
            self.nodes.push_front(NH, h);
        }
        self.evicted(h);
    }

    /// S's bottom LIR becomes a resident HIR in Q; false if S is empty (with a
    /// LIR set of size 0, i.e. a 1-block cache, the callers' loops stop here
    /// instead of spinning).
    fn evict_lir(&mut self) -> bool {
        let Some(h) = self.nodes.pop_back(S) else {
            return false;
        };
        self.nodes.set_flags(h, 0);
        self.lirs_count = self.lirs_count.saturating_sub(1);
        while self.hirs_count() + 1 > self.hirs_limit {
            self.evict_hir();
        }
        self.nodes.push_front(Q, h);
        self.prune();
        true
    }

    /// libCacheSim's find on a block it has resident (a hit).
    fn model_hit(&mut self, h: u32) {
        let in_s = self.nodes.move_to_front(S, h);
        let in_q = self.nodes.move_to_front(Q, h);
        if in_s {
            let f = self.state(h).expect("S entries have a state");
            if f & LIR != 0 {
                self.prune();
            } else {
                // Resident HIR in S: becomes LIR.
                if in_q {
                    self.nodes.remove(Q, h);
                }
                while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
                self.nodes.set_flags(h, STATE | LIR | RESIDENT);
                self.lirs_count += 1;
            }
        } else if in_q {
            while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
            self.s_push(h, RESIDENT);
        }
    }

    /// libCacheSim's find + can_insert for a block it does not have (`h`, its entry if it
    /// has one).
    #[inline(always)]
    fn prepare_miss(&mut self, key: u64, h: Option<u32>) {
        let in_s = h.is_some_and(|h| {
            let in_s = self.nodes.move_to_front(S, h);
            self.nodes.move_to_front(Q, h);
            in_s
        });
        if let (true, Some(h)) = (in_s, h) {
            // A non-resident HIR in S.
            while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
            self.nodes.remove(NH, h);
        } else if self.lirs_count + 1 > self.lirs_limit && self.hirs_count() + 1 > self.hirs_limit {
            while self.hirs_count() + 1 > self.hirs_limit {
                self.evict_hir();
            }
        }
        self.prepared = Some(key);
    }

    /// libCacheSim's insert.
    #[inline(always)]
    fn insert_model(&mut self, h: u32) {
        if self.state(h).is_some() {
            // Non-resident HIR in S: becomes LIR (already on top of S).
            self.nodes.set_flags(h, STATE | LIR | RESIDENT);
            self.lirs_count += 1;
        } else if self.lirs_count < self.lirs_limit {
            self.s_push(h, LIR | RESIDENT);
            self.lirs_count += 1;
        } else {
            self.s_push(h, RESIDENT);
            self.nodes.push_front(Q, h);
        }
    }

    /// libCacheSim's limitStack, after every request.
    #[inline]
    fn limit_stack(&mut self) {
        if self.nodes.len(S) as u64 > 2 * self.capacity {
            self.limit_stack_now();
        }
    }

    #[inline(never)]
    fn limit_stack_now(&mut self) {
        while self.nodes.len(S) as u64 > 2 * self.capacity {
            let Some(h) = self.nodes.pop_back(NH) else {
                break;
            };
            self.s_remove(h);
        }
    }

    /// Drops the entry's block from libCacheSim's state (invalidation).
    fn forget(&mut self, h: u32) {
        match self.state(h) {
            Some(f) if f & LIR != 0 => {
                self.s_remove(h);
                self.lirs_count = self.lirs_count.saturating_sub(1);
                self.prune();
            }
            Some(f) => {
                if f & RESIDENT == 0 {
                    self.nodes.remove(NH, h);
                }
                self.s_remove(h);
                self.nodes.remove(Q, h);
            }
            None => {
                self.nodes.remove(Q, h);
            }
        }
    }

    /// Names the blocks libCacheSim evicted that the host still holds.
    /// (As many as one call can return; the rest at the next call.)
    #[inline]
    fn hand_over(&mut self, victims: &mut Victims<'_>) {
        if self.nodes.len(PENDING) > 0 {
            self.hand_over_pending(victims);
        }
    }

    #[inline(never)]
    fn hand_over_pending(&mut self, victims: &mut Victims<'_>) {
        while !victims.is_full()
            && let Some(h) = self.nodes.pop_back(PENDING)
        {
            if self.nodes.remove(HOST, h) {
                victims.push(self.nodes.key(h));
            }
        }
    }

    /// A miss in libCacheSim's view (host miss, or host hit on a block
    /// libCacheSim had evicted).
    #[inline(always)]
    fn miss(&mut self, h: u32) {
        let key = self.nodes.key(h);
        if self.prepared != Some(key) {
            self.prepare_miss(key, Some(h));
        }
        self.prepared = None;
        self.insert_model(h);
        self.limit_stack();
    }

    /// A hit in the host on its block `h`: a hit or a miss in libCacheSim's view.
    fn request(&mut self, h: u32) {
        if self.nodes.remove(PENDING, h) || !self.model_resident(h) {
            self.miss(h);
        } else {
            self.model_hit(h);
            self.limit_stack();
        }
    }
}

impl Plugin for Lirs {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match (key, value.parse::<f64>()) {
            ("hirs-ratio", Ok(r)) if r > 0.0 && r < 1.0 => {
                self.hirs_ratio = r;
                Ok(())
            }
            _ => Err(Rejected),
        }
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity;
        self.hirs_limit = ((self.hirs_ratio * capacity as f64) as u64).max(1);
        self.lirs_limit = capacity.saturating_sub(self.hirs_limit);
        self.nodes.reserve(2 * capacity.min(1 << 20) as usize);
        Ok(())
    }
}

impl HandleEviction for Lirs {
    const HIT_BATCH: u32 = 1;
    const HIT_MARKS: bool = true;

    /// The LIR blocks: a hit on one moves it to S's top and prunes S's bottom of HIR
    /// entries, which evicts nothing and makes no block LIR or HIR. None while blocks
    /// libCacheSim evicted wait to be handed over (more than one call's answer holds): any
    /// hit hands them over.
    fn hit_marks(&self) -> &[u8] {
        if self.nodes.len(PENDING) > 0 {
            return &[];
        }
        self.nodes.marks()
    }

    #[inline(always)]
    fn evict(&mut self, incoming: u64, need: usize, victims: &mut Victims<'_>) {
        let h = self.nodes.find(incoming);
        if !h.is_some_and(|h| self.model_resident(h)) {
            self.prepare_miss(incoming, h);
        }
        self.hand_over(victims);
        victims.fill(need, || self.victim(incoming));
        self.nodes.collect();
    }

    fn hit(&mut self, handle: u32, victims: &mut Victims<'_>) {
        self.access(handle);
        self.hand_over(victims);
        self.nodes.collect();
    }

    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        let h = self.nodes.entry(key);
        self.nodes.push_front(HOST, h);
        self.nodes.remove(PENDING, h);
        if self.model_resident(h) {
            // libCacheSim still has it: a hit there.
            self.prepared = None;
            self.model_hit(h);
            self.limit_stack();
        } else {
            self.miss(h);
        }
        self.nodes.collect();
        h
    }

    fn access(&mut self, handle: u32) {
        // A handle the host never got from us is ignored (the host checks what we answer).
        if self.nodes.contains(HOST, handle) {
            self.request(handle);
            self.nodes.collect();
        }
    }

    fn remove(&mut self, key: u64, handle: u32) {
        let h = match self.nodes.contains(HOST, handle) && self.nodes.key(handle) == key {
            true => handle,
            false => match self.nodes.find(key) {
                Some(h) => h,
                None => return,
            },
        };
        self.nodes.remove(HOST, h);
        if !self.nodes.remove(PENDING, h) {
            self.forget(h);
        }
        self.nodes.collect();
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        loop {
            while let Some(h) = self.nodes.pop_back(PENDING) {
                if self.nodes.remove(HOST, h) {
                    return Some(self.nodes.key(h));
                }
            }
            // The host is full but libCacheSim thinks there is room: make
            // room as a miss in no list would.
            if self.nodes.len(Q) == 0 && !self.evict_lir() {
                break;
            }
            self.evict_hir();
        }
        // Degenerate states (a 1-block cache, whose LIR set has size 0, can
        // leave libCacheSim's lists without the blocks the host holds): the
        // oldest host block goes.
        let h = self.nodes.pop_back(HOST)?;
        self.forget(h);
        Some(self.nodes.key(h))
    }
}

export_plugin!(Lirs, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// One request as the host makes it: a hit (with the block's handle), or a miss that
    /// evicts what LIRS names (at least one block when the cache is full). `resident` maps
    /// the host's blocks to their handles. Returns whether it hit.
    fn request(l: &mut Lirs, resident: &mut HashMap<u64, u32>, k: u64) -> bool {
        let mut buf = [0u64; 256];
        let mut v = Victims::new(&mut buf);
        let hit = resident.get(&k).copied();
        match hit {
            Some(h) => l.hit(h, &mut v),
            None => {
                let need = (resident.len() + 1).saturating_sub(l.capacity as usize);
                l.evict(k, need, &mut v);
                assert!(v.len() >= need, "{} victims, {need} needed", v.len());
            }
        }
        for victim in v.iter() {
            assert!(
                resident.remove(&victim).is_some(),
                "victim {victim} not resident"
            );
        }
        if hit.is_none() {
            resident.insert(k, l.insert(k));
        }
        hit.is_some()
    }

    fn keys(resident: &HashMap<u64, u32>) -> HashSet<u64> {
        resident.keys().copied().collect()
    }

    /// ABI 1.13: a hit on a marked handle names no victim and unmarks no handle, on a
    /// skewed stream through a cache of 100 blocks; and nothing is marked while blocks wait
    /// to be handed over.
    #[test]
    fn hits_on_marked_blocks_evict_nothing_and_unmark_nothing() {
        let mut l = Lirs::default();
        l.init(100).unwrap();
        let mut resident = HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut marked_hits, mut hits) = (0, 0);
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = if x & 1 == 0 {
                x >> 1 & 63
            } else {
                x >> 1 & 1023
            };
            let Some(&h) = resident.get(&k) else {
                request(&mut l, &mut resident, k);
                continue;
            };
            hits += 1;
            let before = l.hit_marks().to_vec();
            if before.get(h as usize).is_some_and(|m| *m != 0) {
                let mut buf = [0u64; 256];
                let mut v = Victims::new(&mut buf);
                l.hit(h, &mut v);
                assert_eq!(v.len(), 0, "a marked hit named victims");
                let after = l.hit_marks();
                assert!(before.iter().zip(after).all(|(b, a)| *b == 0 || *a != 0));
                marked_hits += 1;
            } else {
                request(&mut l, &mut resident, k);
            }
        }
        assert!(
            marked_hits * 2 > hits,
            "{marked_hits} of {hits} hits marked"
        );
        let h = *resident.values().next().unwrap();
        l.nodes.push_front(PENDING, h);
        assert!(l.hit_marks().is_empty());
    }

    #[test]
    fn one_block_cache_does_not_spin() {
        // LIR set of size 0: a hit on the resident HIR block must not loop.
        let mut l = Lirs::default();
        l.init(1).unwrap();
        let mut resident = HashMap::new();
        for k in [111, 111, 111, 5] {
            request(&mut l, &mut resident, k);
        }
        assert_eq!(keys(&resident), HashSet::from([5]));
        // The shrunk differential case: 111 111 147 111 133 in one block.
        let mut l = Lirs::default();
        l.init(1).unwrap();
        let mut resident = HashMap::new();
        for k in [111u64, 111, 147, 111, 133] {
            request(&mut l, &mut resident, k);
            assert!(resident.len() <= 1);
        }
    }

    #[test]
    fn loop_larger_than_cache_keeps_lir_set() {
        // A loop over 12 blocks in a cache of 10: LRU misses every time, LIRS
        // keeps its LIR blocks and hits on them.
        let mut l = Lirs::default();
        l.init(10).unwrap();
        let mut resident = HashMap::new();
        let mut hits = 0;
        for round in 0..20 {
            for k in 0..12u64 {
                if request(&mut l, &mut resident, k) && round > 0 {
                    hits += 1;
                }
                assert!(resident.len() <= 10);
            }
        }
        assert!(hits > 19 * 12 / 2, "{hits}");
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = Lirs::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("hirs-ratio", "0.05").unwrap().hirs_ratio, 0.05);
        for (key, bad) in [
            ("hirs-ratio", "0"),
            ("hirs-ratio", "1"),
            ("hirs-ratio", "x"),
            ("hirs_ratio", "0.05"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
