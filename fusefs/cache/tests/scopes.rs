//! Scopes (`ScopedCache`): the ownership and arbitration rules against a reference model,
//! with native LRUs and with a WASM LRU in a scope (its victims taken without a miss), and a
//! faulting plugin in one scope that leaves the others alone.

mod common;

use std::collections::VecDeque;

use kplug_abi::{Role, RoleSet};
use kplug_cache::{CoreConfig, Insert, ROOT_SCOPE, ScopedCache};
use proptest::prelude::*;

/// The rules of `kplug_cache::scopes`, written plainly: one LRU list per scope (front = least
/// recent), the furthest-over-share scope gives, ties to the requester.
#[derive(Debug, Clone)]
struct Model {
    capacity: u64,
    scopes: Vec<Option<(VecDeque<u64>, u64)>>,
}

impl Model {
    fn new(capacity: u64, slots: usize) -> Self {
        let mut scopes = vec![None; slots];
        scopes[0] = Some((VecDeque::new(), 0));
        Model { capacity, scopes }
    }

    fn reserved(&self) -> u64 {
        self.scopes.iter().skip(1).flatten().map(|s| s.1).sum()
    }

    fn share(&self, i: usize) -> u64 {
        self.scopes[i].as_ref().unwrap().1
    }

    fn total(&self) -> u64 {
        self.scopes.iter().flatten().map(|s| s.0.len() as u64).sum()
    }

    fn live(&self, s: usize) -> usize {
        if self.scopes.get(s).is_some_and(|x| x.is_some()) {
            s
        } else {
            0
        }
    }

    /// Returns whether it was a hit.
    fn request(&mut self, s: usize, key: u64) -> bool {
        let s = self.live(s);
        for x in self.scopes.iter_mut().flatten() {
            if let Some(p) = x.0.iter().position(|k| *k == key) {
                x.0.remove(p);
                x.0.push_back(key);
                return true;
            }
        }
        if self.capacity == 0 {
            return false;
        }
        if self.total() >= self.capacity {
            let excess = |m: &Model, i: usize| {
                m.scopes[i].as_ref().unwrap().0.len() as i128 - m.share(i) as i128
            };
            let mut giver = (excess(self, s), s);
            for i in 0..self.scopes.len() {
                if i != s && self.scopes[i].as_ref().is_some_and(|x| !x.0.is_empty()) {
                    let e = excess(self, i);
                    if e > giver.0 {
                        giver = (e, i);
                    }
                }
            }
            if giver.1 != s {
                self.scopes[giver.1].as_mut().unwrap().0.pop_front();
            }
            if self.total() >= self.capacity {
                let me = &mut self.scopes[s].as_mut().unwrap().0;
                if me.pop_front().is_none() {
                    return false;
                }
            }
        }
        self.scopes[s].as_mut().unwrap().0.push_back(key);
        false
    }

    fn remove(&mut self, key: u64) {
        for x in self.scopes.iter_mut().flatten() {
            x.0.retain(|k| *k != key);
        }
    }

    fn add(&mut self, i: usize, share: u64) -> bool {
        if i == 0 || self.scopes[i].is_some() || self.reserved() + share > self.capacity {
            return false;
        }
        self.scopes[i] = Some((VecDeque::new(), share));
        true
    }

    fn set_share(&mut self, i: usize, share: u64) -> bool {
        if i == 0 || self.scopes[i].is_none() {
            return false;
        }
        let old = self.scopes[i].as_ref().unwrap().1;
        if self.reserved() - old + share > self.capacity {
            return false;
        }
        self.scopes[i].as_mut().unwrap().1 = share;
        true
    }

    fn drop_scope(&mut self, i: usize, into: usize) -> bool {
        if i == 0 || self.scopes[i].is_none() {
            return false;
        }
        let (blocks, _) = self.scopes[i].take().unwrap();
        let into = self.live(into);
        self.scopes[into].as_mut().unwrap().0.extend(blocks);
        true
    }

    fn resident(&self, i: usize) -> Vec<u64> {
        let mut v: Vec<u64> = self.scopes[i]
            .as_ref()
            .map(|x| x.0.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }
}

#[derive(Debug, Clone)]
enum Op {
    Request { scope: usize, key: u64 },
    Remove(u64),
    Add { scope: usize, share: u64 },
    Share { scope: usize, share: u64 },
    Drop { scope: usize, into: usize },
}

const SLOTS: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0..SLOTS, 0u64..40).prop_map(|(scope, key)| Op::Request { scope, key }),
        2 => (0u64..40).prop_map(Op::Remove),
        2 => (1..SLOTS, 0u64..12).prop_map(|(scope, share)| Op::Add { scope, share }),
        1 => (1..SLOTS, 0u64..12).prop_map(|(scope, share)| Op::Share { scope, share }),
        1 => (1..SLOTS, 0..SLOTS).prop_map(|(scope, into)| Op::Drop { scope, into }),
    ]
}

/// Runs `ops` on `cache` and on the model, checking after each step that every scope holds
/// exactly the model's blocks, that no block is held twice, that the cache never exceeds its
/// capacity, that a scope at or under its share loses no block to another's insertion, and
/// that every request is counted exactly once.
fn check(
    cache: &mut ScopedCache<()>,
    capacity: u64,
    ops: &[Op],
    setup: impl Fn(&mut ScopedCache<()>, usize),
) {
    let mut model = Model::new(capacity, SLOTS);
    let mut requests = 0u64;
    for op in ops {
        let before: Vec<(usize, u64, u64)> = (0..SLOTS)
            .filter_map(|i| Some((i, cache.core(i)?.len() as u64, cache.share(i)?)))
            .collect();
        match op {
            Op::Request { scope, key } => {
                requests += 1;
                let hit = cache.request(*scope, *key, || ());
                assert_eq!(hit, model.request(*scope, *key), "{op:?}");
                if !hit {
                    let s = if cache.core(*scope).is_some() {
                        *scope
                    } else {
                        0
                    };
                    for (i, len, share) in &before {
                        let now = cache.core(*i).unwrap().len() as u64;
                        if *i != s && now < *len {
                            assert!(
                                len > share,
                                "scope {i} lost a block at {len} <= share {share}"
                            );
                        }
                    }
                }
            }
            Op::Remove(k) => {
                cache.remove(*k);
                model.remove(*k);
            }
            Op::Add { scope, share } => {
                let ok = cache.add_scope(*scope, *share).is_ok();
                assert_eq!(ok, model.add(*scope, *share));
                if ok {
                    setup(cache, *scope);
                }
            }
            Op::Share { scope, share } => {
                assert_eq!(
                    cache.set_share(*scope, *share).is_ok(),
                    model.set_share(*scope, *share)
                );
            }
            Op::Drop { scope, into } => {
                let ok = cache.remove_scope(*scope, *into, "test").is_ok();
                assert_eq!(ok, model.drop_scope(*scope, *into));
            }
        }
        let mut all = Vec::new();
        for i in 0..SLOTS {
            let mut got: Vec<u64> = cache.core(i).map(|c| c.resident_keys()).unwrap_or_default();
            got.sort_unstable();
            assert_eq!(got, model.resident(i), "scope {i} after {op:?}");
            all.extend(got);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a block is held by two scopes");
        assert_eq!(cache.len(), n);
        assert!(n as u64 <= capacity);
    }
    let s = cache.stats();
    // Removed scopes' requests stay counted.
    assert_eq!(s.hits + s.misses, requests);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scopes_follow_the_reference_model(capacity in 0u64..24, ops in prop::collection::vec(op(), 1..300)) {
        let mut cache = ScopedCache::new(capacity, CoreConfig::default(), SLOTS - 1);
        check(&mut cache, capacity, &ops, |_, _| {});
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same rules with a WASM LRU (batched, ABI 1.4) serving scope 1 whenever it exists:
    /// the blocks it gives up for another scope are the ones it names without a miss.
    #[test]
    fn a_wasm_policy_in_a_scope_gives_up_the_blocks_the_model_does(capacity in 1u64..16, ops in prop::collection::vec(op(), 1..200)) {
        let mut cache = ScopedCache::new(capacity, CoreConfig::default(), SLOTS - 1);
        check(&mut cache, capacity, &ops, |c, s| {
            if s == 1 {
                // Sized for what the scope can hold (`ScopedCache::reach`).
                let reach = c.core(1).unwrap().capacity();
                let p = common::sdk_lru().instantiate(&[], reach).unwrap();
                c.core_mut(1).unwrap().install_plugin(p, RoleSet::of(&[Role::Eviction])).unwrap();
            }
        });
    }
}

#[test]
fn a_scope_under_its_share_takes_back_what_another_borrowed() {
    let mut c = ScopedCache::new(10, CoreConfig::default(), 2);
    c.add_scope(1, 6).unwrap();
    c.add_scope(2, 0).unwrap();
    // Scope 2 borrows the whole cache while scope 1 is idle.
    for k in 0..10 {
        c.request(2, 100 + k, || ());
    }
    assert_eq!(c.core(2).unwrap().len(), 10);
    // Scope 1 takes back its six blocks, one per admission, from scope 2 alone.
    for k in 0..8 {
        c.request(1, k, || ());
    }
    assert_eq!(
        c.core(1).unwrap().len(),
        8,
        "over its share it still takes from the furthest over"
    );
    for k in 8..20 {
        c.request(1, k, || ());
    }
    // Past its share, scope 1 and scope 2 split what is left evenly... until scope 1 is
    // the furthest over: then it evicts its own.
    assert_eq!(c.len(), 10);
    assert!(c.core(1).unwrap().len() >= 6);
    assert_eq!(
        c.core(2).unwrap().stats().evictions as usize,
        10 - c.core(2).unwrap().len()
    );
    // A block resident in scope 2 is a hit for a request of scope 1, counted in scope 2.
    let k2 = c.core(2).unwrap().resident_keys()[0];
    let hits2 = c.core(2).unwrap().stats().hits;
    assert!(c.request(1, k2, || ()));
    assert_eq!(c.core(2).unwrap().stats().hits, hits2 + 1);
    assert_eq!(c.insert(1, k2, ()), Insert::AlreadyResident);
    // Removing scope 1 hands its blocks to the root.
    let n = c.core(1).unwrap().len();
    assert_eq!(c.remove_scope(1, ROOT_SCOPE, "gone").unwrap(), n);
    assert_eq!(c.root().len(), n);
    assert!(
        c.set_share(2, 11).is_err(),
        "shares past the capacity are refused"
    );
    // Each scope's policies are sized for what it can hold beside the others' shares.
    c.set_share(2, 3).unwrap();
    assert_eq!(c.reach(3), 10);
    assert_eq!(c.core(2).unwrap().capacity(), 10);
    c.add_scope(1, 3).unwrap();
    assert_eq!(c.core(2).unwrap().capacity(), 7);
    assert_eq!(c.root().capacity(), 4);
    // A plugin sized before the change still installs (up to the whole cache), not past it.
    let old = common::sdk_lru().instantiate(&[], 10).unwrap();
    c.core_mut(2)
        .unwrap()
        .install_plugin(old, RoleSet::of(&[Role::Eviction]))
        .unwrap();
    let big = common::sdk_lru().instantiate(&[], 11).unwrap();
    assert!(
        c.core_mut(2)
            .unwrap()
            .install_plugin(big, RoleSet::of(&[Role::Eviction]))
            .is_err()
    );
    // Totals never go back: a removed scope's counters stay in them.
    let before = c.stats();
    c.remove_scope(2, ROOT_SCOPE, "gone").unwrap();
    assert_eq!(c.stats().hits, before.hits);
    assert_eq!(c.stats().misses, before.misses);
}

/// A plugin by handle (ABI 1.8) in a scope: giving blocks up for another scope (a phantom
/// miss, then the phantom's removal by its handle) and taking a removed scope's blocks
/// (adoption) hand it back exactly the handles it gave; the fixture traps on any other.
#[test]
fn a_scope_plugin_by_handle_gets_its_handles_back_through_shed_and_adopt() {
    let mut c = ScopedCache::new(10, CoreConfig::default(), 2);
    c.add_scope(1, 6).unwrap();
    c.add_scope(2, 0).unwrap();
    let by_handle = common::compile(&common::handle_fifo(&[]));
    for scope in [2, ROOT_SCOPE] {
        let capacity = c.core(scope).unwrap().capacity();
        let p = by_handle.instantiate(&[], capacity).unwrap();
        c.core_mut(scope)
            .unwrap()
            .install_plugin(p, RoleSet::of(&[Role::Eviction]))
            .unwrap();
    }
    for k in 0..10 {
        c.request(2, 100 + k, || ());
    }
    // Scope 1 takes back its share: scope 2's plugin gives blocks up without a miss.
    for k in 0..8 {
        c.request(1, k, || ());
    }
    assert!(c.core(2).unwrap().len() < 10);
    for k in c.core(2).unwrap().resident_keys() {
        assert!(c.request(2, k, || ()));
    }
    assert_eq!(c.core(2).unwrap().stats().faults, 0);
    assert_eq!(c.core(2).unwrap().policy(Role::Eviction).name, "fixture");
    // Scope 2's blocks go to the root, whose plugin learns them with handles of its own.
    let moved = c.core(2).unwrap().resident_keys();
    c.remove_scope(2, ROOT_SCOPE, "gone").unwrap();
    for &k in &moved {
        assert!(c.request(ROOT_SCOPE, k, || ()), "block {k}");
    }
    assert!(c.remove(moved[0]).is_some());
    for k in 300..320 {
        c.request(ROOT_SCOPE, k, || ());
    }
    assert_eq!(c.root().stats().faults, 0);
    assert_eq!(c.root().policy(Role::Eviction).name, "fixture");
    assert!(c.len() <= 10);
}

#[test]
fn a_faulting_plugin_in_one_scope_leaves_the_others_serving() {
    let mut c = ScopedCache::new(8, CoreConfig::default(), 2);
    c.add_scope(1, 4).unwrap();
    c.add_scope(2, 4).unwrap();
    let bad = common::compile(&common::batched_fifo(&[(
        "{MISS}",
        "(if (i64.ge_u (local.get $k) (i64.const 1000)) (then unreachable))",
    )]))
    .instantiate(&[], c.core(1).unwrap().capacity())
    .unwrap();
    let bad_status = bad.status();
    c.core_mut(1)
        .unwrap()
        .install_plugin(bad, RoleSet::of(&[Role::Eviction]))
        .unwrap();
    let good = common::sdk_lru()
        .instantiate(&[], c.core(2).unwrap().capacity())
        .unwrap();
    let good_status = good.status();
    c.core_mut(2)
        .unwrap()
        .install_plugin(good, RoleSet::of(&[Role::Eviction]))
        .unwrap();
    for k in 0..6 {
        c.request(1, k, || ());
        c.request(2, 100 + k, || ());
    }
    // Key 1000 traps scope 1's plugin: the built-in takes over there, and the block is
    // still admitted.
    assert!(!c.request(1, 1000, || ()));
    assert!(c.core(1).unwrap().contains(1000));
    assert_eq!(c.core(1).unwrap().stats().faults, 1);
    assert!(c.core(1).unwrap().policy(Role::Eviction).plugin.is_none());
    assert_eq!(bad_status.state(), kplug_engine::PluginState::Failed);
    assert_eq!(c.core(2).unwrap().stats().faults, 0);
    let serving = c.core(2).unwrap().policy(Role::Eviction).plugin.unwrap();
    assert!(std::sync::Arc::ptr_eq(&serving, &good_status));
    for k in 0..20 {
        c.request(2, 200 + k, || ());
    }
    assert!(c.len() <= 8);
    assert!(c.core(1).unwrap().len() >= 4, "scope 1 keeps its share");
}
