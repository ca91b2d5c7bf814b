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
//! The state keeps the host's view (`host`) beside libCacheSim's, so that a
//! disagreement (a 1-block cache, whose LIR set has size 0) is repaired by
//! replaying libCacheSim's view rather than by a wrong answer.
//!
//! Parameters:
//! - `hirs-ratio=0.01`: Q's share of the cache, `max(1, floor(capacity x r))`.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Eviction, IntMap, KeyList, Plugin, Rejected, Victims, export_plugin};

#[derive(Clone, Copy)]
struct SEntry {
    lir: bool,
    resident: bool,
}

/// LIRS.
pub struct Lirs {
    /// Front = top (most recent).
    s: KeyList,
    s_state: IntMap<SEntry>,
    /// Resident HIR blocks, front = most recent; evict from the back.
    q: KeyList,
    /// Non-resident HIR ids in S, front = most recent.
    nh: KeyList,
    hirs_ratio: f64,
    capacity: u64,
    lirs_limit: u64,
    hirs_limit: u64,
    lirs_count: u64,
    /// Blocks libCacheSim evicted, still resident in the host.
    pending: KeyList,
    /// Blocks resident in the host, most recently inserted first.
    host: KeyList,
    /// The key whose miss `admit` already processed.
    prepared: Option<u64>,
}

impl Default for Lirs {
    fn default() -> Self {
        Lirs {
            s: KeyList::new(),
            s_state: IntMap::new(),
            q: KeyList::new(),
            nh: KeyList::new(),
            hirs_ratio: 0.01,
            capacity: 0,
            lirs_limit: 0,
            hirs_limit: 1,
            lirs_count: 0,
            pending: KeyList::new(),
            host: KeyList::new(),
            prepared: None,
        }
    }
}

impl Lirs {
    fn hirs_count(&self) -> u64 {
        self.q.len() as u64
    }

    /// Whether libCacheSim considers `key` cached.
    fn model_resident(&self, key: u64) -> bool {
        match self.s_state.get(key) {
            Some(e) => e.lir || e.resident,
            None => self.q.contains(key),
        }
    }

    fn s_push(&mut self, key: u64, lir: bool, resident: bool) {
        if !self.s.push_front(key) {
            self.s.move_to_front(key);
        }
        self.s_state.insert(key, SEntry { lir, resident });
    }

    fn s_remove(&mut self, key: u64) {
        self.s.remove(key);
        self.s_state.remove(key);
    }

    fn evicted(&mut self, key: u64) {
        if self.host.contains(key) {
            self.pending.push_front(key);
        }
    }

    /// Pops S's bottom while it is not LIR.
    fn prune(&mut self) {
        while self.s.len() > 1 {
            let Some(k) = self.s.back() else { break };
            let e = *self.s_state.get(k).expect("S entries have a state");
            if e.lir {
                break;
            }
            if !e.resident {
                self.nh.remove(k);
            }
            self.s_remove(k);
        }
    }

    /// Q's front (LRU end) leaves the cache.
    fn evict_hir(&mut self) {
        let Some(k) = self.q.pop_back() else { return };
        if let Some(e) = self.s_state.get_mut(k) {
            e.resident = false;
            self.nh.push_front(k);
        }
        self.evicted(k);
    }

    /// S's bottom LIR becomes a resident HIR in Q; false if S is empty (with a
    /// LIR set of size 0, i.e. a 1-block cache, the callers' loops stop here
    /// instead of spinning).
    fn evict_lir(&mut self) -> bool {
        let Some(k) = self.s.pop_back() else {
            return false;
        };
        self.s_state.remove(k);
        self.lirs_count = self.lirs_count.saturating_sub(1);
        while self.hirs_count() + 1 > self.hirs_limit {
            self.evict_hir();
        }
        self.q.push_front(k);
        self.prune();
        true
    }

    /// libCacheSim's find on a block it has resident (a hit).
    fn model_hit(&mut self, key: u64) {
        let in_s = self.s.move_to_front(key);
        let in_q = self.q.move_to_front(key);
        if in_s {
            let e = *self.s_state.get(key).expect("S entries have a state");
            if e.lir {
                self.prune();
            } else {
                // Resident HIR in S: becomes LIR.
                if in_q {
                    self.q.remove(key);
                }
                while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
                self.s_state.insert(
                    key,
                    SEntry {
                        lir: true,
                        resident: true,
                    },
                );
                self.lirs_count += 1;
            }
        } else if in_q {
            while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
            self.s_push(key, false, true);
        }
    }

    /// libCacheSim's find + can_insert for a block it does not have.
    fn prepare_miss(&mut self, key: u64) {
        let in_s = self.s.move_to_front(key);
        self.q.move_to_front(key);
        if in_s {
            // A non-resident HIR in S.
            while self.lirs_count + 1 > self.lirs_limit && self.evict_lir() {}
            self.nh.remove(key);
        } else if self.lirs_count + 1 > self.lirs_limit && self.hirs_count() + 1 > self.hirs_limit {
            while self.hirs_count() + 1 > self.hirs_limit {
                self.evict_hir();
            }
        }
        self.prepared = Some(key);
    }

    /// libCacheSim's insert.
    fn insert_model(&mut self, key: u64) {
        if self.s_state.get(key).is_some() {
            // Non-resident HIR in S: becomes LIR (already on top of S).
            self.s_state.insert(
                key,
                SEntry {
                    lir: true,
                    resident: true,
                },
            );
            self.lirs_count += 1;
        } else if self.lirs_count < self.lirs_limit {
            self.s_push(key, true, true);
            self.lirs_count += 1;
        } else {
            self.s_push(key, false, true);
            self.q.push_front(key);
        }
    }

    /// libCacheSim's limitStack, after every request.
    fn limit_stack(&mut self) {
        while self.s.len() as u64 > 2 * self.capacity {
            let Some(k) = self.nh.pop_back() else { break };
            self.s_remove(k);
        }
    }

    /// Drops `key` from libCacheSim's state (invalidation).
    fn forget(&mut self, key: u64) {
        match self.s_state.get(key).copied() {
            Some(e) if e.lir => {
                self.s_remove(key);
                self.lirs_count = self.lirs_count.saturating_sub(1);
                self.prune();
            }
            Some(e) => {
                if !e.resident {
                    self.nh.remove(key);
                }
                self.s_remove(key);
                self.q.remove(key);
            }
            None => {
                self.q.remove(key);
            }
        }
    }

    /// Names the blocks libCacheSim evicted that the host still holds.
    /// (As many as one call can return; the rest at the next call.)
    fn hand_over(&mut self, victims: &mut Victims<'_>) {
        while !victims.is_full()
            && let Some(k) = self.pending.pop_back()
        {
            if self.host.remove(k) {
                victims.push(k);
            }
        }
    }

    /// A miss in libCacheSim's view (host miss, or host hit on a block
    /// libCacheSim had evicted).
    fn miss(&mut self, key: u64) {
        if self.prepared != Some(key) {
            self.prepare_miss(key);
        }
        self.prepared = None;
        self.insert_model(key);
        self.limit_stack();
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
        let c = capacity.min(1 << 20) as usize;
        self.s.reserve(2 * c);
        self.s_state.reserve(2 * c);
        self.host.reserve(c);
        Ok(())
    }
}

impl Eviction for Lirs {
    const HIT_BATCH: u32 = 1;

    fn evict(&mut self, incoming: u64, need: usize, victims: &mut Victims<'_>) {
        if !self.model_resident(incoming) {
            self.prepare_miss(incoming);
        }
        self.hand_over(victims);
        victims.fill(need, || self.victim(incoming));
    }

    fn hit(&mut self, key: u64, victims: &mut Victims<'_>) {
        self.access(key);
        self.hand_over(victims);
    }

    fn insert(&mut self, key: u64) {
        self.host.push_front(key);
        self.pending.remove(key);
        if self.model_resident(key) {
            // libCacheSim still has it: a hit there.
            self.prepared = None;
            self.model_hit(key);
            self.limit_stack();
        } else {
            self.miss(key);
        }
    }

    fn access(&mut self, key: u64) {
        if self.pending.remove(key) || !self.model_resident(key) {
            self.miss(key);
        } else {
            self.model_hit(key);
            self.limit_stack();
        }
    }

    fn remove(&mut self, key: u64) {
        self.host.remove(key);
        if !self.pending.remove(key) {
            self.forget(key);
        }
    }

    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        loop {
            while let Some(k) = self.pending.pop_back() {
                if self.host.remove(k) {
                    return Some(k);
                }
            }
            // The host is full but libCacheSim thinks there is room: make
            // room as a miss in no list would.
            if self.q.is_empty() && !self.evict_lir() {
                break;
            }
            self.evict_hir();
        }
        // Degenerate states (a 1-block cache, whose LIR set has size 0, can
        // leave libCacheSim's lists without the blocks the host holds): the
        // oldest host block goes.
        let k = self.host.pop_back()?;
        self.forget(k);
        Some(k)
    }
}

export_plugin!(Lirs, eviction);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// One request as the host makes it: a hit, or a miss that evicts what LIRS names (at
    /// least one block when the cache is full). Returns whether it hit.
    fn request(l: &mut Lirs, resident: &mut HashSet<u64>, k: u64) -> bool {
        let mut buf = [0u64; 256];
        let mut v = Victims::new(&mut buf);
        let hit = resident.contains(&k);
        if hit {
            l.hit(k, &mut v);
        } else {
            let need = (resident.len() + 1).saturating_sub(l.capacity as usize);
            l.evict(k, need, &mut v);
            assert!(v.len() >= need, "{} victims, {need} needed", v.len());
            l.insert(k);
        }
        for victim in v.iter() {
            assert!(resident.remove(&victim), "victim {victim} not resident");
        }
        if !hit {
            resident.insert(k);
        }
        hit
    }

    #[test]
    fn one_block_cache_does_not_spin() {
        // LIR set of size 0: a hit on the resident HIR block must not loop.
        let mut l = Lirs::default();
        l.init(1).unwrap();
        let mut resident = HashSet::new();
        for k in [111, 111, 111, 5] {
            request(&mut l, &mut resident, k);
        }
        assert_eq!(resident, HashSet::from([5]));
        // The shrunk differential case: 111 111 147 111 133 in one block.
        let mut l = Lirs::default();
        l.init(1).unwrap();
        let mut resident = HashSet::new();
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
        let mut resident = HashSet::new();
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
