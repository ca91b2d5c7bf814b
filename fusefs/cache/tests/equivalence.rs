//! The SDK-built LRU (policies/lru, built to .wasm with `build_policy`) and the
//! hand-written WAT LRU (policies/lru-wat) must give exactly the hit/miss
//! sequence of the native LRU, through `CacheCore`, on random request streams
//! with invalidations; and the native LRU must match a plain model. Hot swaps
//! between all three mid-stream must not change a single answer either: the
//! new policy is seeded in last-access order, so LRU order is preserved.

mod common;

use std::collections::VecDeque;

use common::*;
use kplug_abi::{Role, RoleSet, block_key};
use kplug_cache::{CacheCore, CoreConfig};
use kplug_engine::{CompiledPlugin, PluginState, StatusHandle};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Request block `block` of file `file`.
    Request { file: u32, block: u32 },
    /// Invalidate the `i % len`-th resident block (in LRU order).
    Remove(usize),
    /// Truncate `file` to `from` blocks.
    RemoveFile { file: u32, from: u32 },
    /// Swap the eviction policy of the swapping core (0 native, 1 SDK, 2 WAT).
    Swap(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u32..3, 0u32..24).prop_map(|(file, block)| Op::Request { file, block }),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (0u32..3, 0u32..24).prop_map(|(file, from)| Op::RemoveFile { file, from }),
        1 => (0u8..3).prop_map(Op::Swap),
    ]
}

fn wasm_core(compiled: &CompiledPlugin, capacity: u64) -> (CacheCore<()>, StatusHandle) {
    let p = compiled.instantiate(&[], capacity).unwrap();
    let status = p.status();
    (core_with(p, RoleSet::of(&[Role::Eviction])), status)
}

fn swap(core: &mut CacheCore<()>, which: u8) -> Option<StatusHandle> {
    let compiled = match which {
        0 => {
            core.set_eviction(kplug_cache::BuiltinEviction::Lru);
            return None;
        }
        1 => sdk_lru(),
        _ => wat_lru(),
    };
    let p = compiled.instantiate(&[], core.capacity()).unwrap();
    let status = p.status();
    core.install_plugin(p, RoleSet::of(&[Role::Eviction]))
        .unwrap();
    Some(status)
}

/// Plain LRU model: front = most recent.
struct Model {
    cap: usize,
    order: VecDeque<u64>,
}

impl Model {
    fn request(&mut self, key: u64) -> bool {
        if let Some(p) = self.order.iter().position(|k| *k == key) {
            self.order.remove(p);
            self.order.push_front(key);
            return true;
        }
        if self.order.len() == self.cap {
            self.order.pop_back();
        }
        self.order.push_front(key);
        false
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn wasm_lrus_match_native_lru(capacity in 1u64..20, ops in prop::collection::vec(op(), 1..400)) {
        let mut native: CacheCore<()> = CacheCore::new(capacity, CoreConfig::default());
        let (mut sdk, sdk_status) = wasm_core(sdk_lru(), capacity);
        let (mut watc, wat_status) = wasm_core(wat_lru(), capacity);
        let mut swapping: CacheCore<()> = CacheCore::new(capacity, CoreConfig::default());
        let mut swapped_in: Vec<StatusHandle> = Vec::new();
        let mut model = Model { cap: capacity as usize, order: VecDeque::new() };
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Request { file, block } => {
                    let key = block_key(file, block);
                    let want = native.request(key, || ());
                    prop_assert_eq!(model.request(key), want, "model, step {}", step);
                    prop_assert_eq!(sdk.request(key, || ()), want, "sdk, step {}", step);
                    prop_assert_eq!(watc.request(key, || ()), want, "wat, step {}", step);
                    prop_assert_eq!(swapping.request(key, || ()), want, "swapping, step {}", step);
                }
                Op::Remove(i) => {
                    let keys = native.resident_keys();
                    if !keys.is_empty() {
                        let key = keys[i % keys.len()];
                        model.order.retain(|k| *k != key);
                        for c in [&mut native, &mut sdk, &mut watc, &mut swapping] {
                            prop_assert!(c.remove(key).is_some());
                        }
                    }
                }
                Op::RemoveFile { file, from } => {
                    let n = native.remove_file(file, from);
                    model.order.retain(|k| !((k >> 32) as u32 == file && *k as u32 >= from));
                    for c in [&mut sdk, &mut watc, &mut swapping] {
                        prop_assert_eq!(c.remove_file(file, from), n);
                    }
                }
                Op::Swap(which) => swapped_in.extend(swap(&mut swapping, which)),
            }
            let keys = native.resident_keys();
            prop_assert_eq!(&keys, &model.order.iter().rev().copied().collect::<Vec<_>>());
            prop_assert_eq!(&sdk.resident_keys(), &keys);
            prop_assert_eq!(&watc.resident_keys(), &keys);
            prop_assert_eq!(&swapping.resident_keys(), &keys);
        }
        let errors: Vec<String> = [&sdk_status, &wat_status]
            .into_iter()
            .chain(&swapped_in)
            .filter_map(|s| s.error())
            .filter(|e| e != "replaced")
            .collect();
        prop_assert!(errors.is_empty(), "plugin errors: {:?}", errors);
        for c in [&sdk, &watc, &swapping] {
            prop_assert_eq!(c.stats(), native.stats());
        }
        prop_assert_eq!(sdk_status.state(), PluginState::Active);
        prop_assert_eq!(wat_status.state(), PluginState::Active);
        if native.stats().misses > 0 {
            prop_assert!(sdk_status.calls() > 0 && wat_status.calls() > 0);
        }
        // Every swapped-in plugin was active until replaced (never failed).
        for s in &swapped_in {
            prop_assert_ne!(s.state(), PluginState::Failed, "{:?}", s.error());
        }
        // After the last swap every resident block is evictable by the
        // current policy: fresh keys push all of them out without a fault.
        let before = swapping.resident_keys();
        for k in 0..capacity {
            swapping.request(block_key(99, k as u32), || ());
        }
        for k in before {
            prop_assert!(!swapping.contains(k));
        }
        prop_assert_eq!(swapping.stats().faults, 0);
    }
}

#[test]
fn plugin_swapped_in_evicts_blocks_inserted_before_it() {
    for compiled in [sdk_lru(), wat_lru()] {
        let mut core: CacheCore<()> = CacheCore::new(4, CoreConfig::default());
        for k in [1, 2, 3, 4] {
            core.request(k, || ());
        }
        core.request(2, || ()); // LRU order now 1, 3, 4, 2
        let p = compiled.instantiate(&[], 4).unwrap();
        let status = p.status();
        core.install_plugin(p, RoleSet::of(&[Role::Eviction]))
            .unwrap();
        assert!(core.policy(Role::Eviction).name.starts_with("lru"));
        assert!(core.policy(Role::Eviction).plugin.is_some());
        // The SDK's takes the replay in one batch (ABI 1.9); the WAT LRU one call a block.
        let calls_after_replay = status.calls();
        let replay_calls = if compiled.name() == "lru" { 1 } else { 4 };
        assert_eq!(calls_after_replay, replay_calls, "{}", compiled.name());
        core.request(5, || ());
        assert!(!core.contains(1));
        core.request(6, || ());
        assert!(!core.contains(3));
        core.request(4, || ());
        core.request(7, || ());
        assert!(!core.contains(2));
        // 5 inserted, 6 inserted, 4 touched, 7 inserted.
        assert_eq!(core.resident_keys(), vec![5, 6, 4, 7]);
        // Swap back to the built-in: the plugin is marked disabled, not failed.
        core.set_eviction(kplug_cache::BuiltinEviction::Lru);
        assert_eq!(status.state(), PluginState::Disabled);
        assert_eq!(status.error().as_deref(), Some("replaced"));
        assert!(core.policy(Role::Eviction).plugin.is_none());
        assert_eq!(core.stats().faults, 0);
    }
}

/// ABI 1.10: after a miss that made room the SDK LRU names the 32 blocks it would evict
/// next, and the core takes them at the next misses without a call while each is resident
/// and unhit. On a skewed stream with invalidations (hits on named blocks among them), every
/// answer is still the native LRU's, the plugin stays active (it traps on any miss it did not
/// name), and most misses cost no call.
#[test]
fn the_sdk_lru_takes_most_misses_without_a_call() {
    let capacity = 256;
    let mut native: CacheCore<()> = CacheCore::new(capacity, CoreConfig::default());
    let (mut sdk, status) = wasm_core(sdk_lru(), capacity);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut invalidated = 0;
    for i in 0..40_000u32 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        // Half the requests to 128 hot blocks, half to 4096: hits, misses, and hits on
        // blocks near the back of the list.
        let key = if s & 1 == 0 {
            s >> 1 & 127
        } else {
            s >> 1 & 4095
        };
        let key = block_key((key >> 10) as u32, key as u32 & 1023);
        let want = native.request(key, || ());
        assert_eq!(sdk.request(key, || ()), want, "request {i}");
        if i % 1000 == 999 {
            let keys = native.resident_keys();
            // Invalidate one of the blocks the LRU would evict next.
            let k = keys[(s % 8) as usize];
            assert!(native.remove(k).is_some() && sdk.remove(k).is_some());
            invalidated += 1;
        }
    }
    // Runs of 0 to 12 hits between misses: the hits and misses waiting reach every count up
    // to the batch, the misses' two entries included.
    for j in 0..3000u32 {
        for h in 0..j % 13 {
            let key = block_key(0, h);
            assert_eq!(sdk.request(key, || ()), native.request(key, || ()), "{j}");
        }
        let key = block_key(7, j);
        assert_eq!(sdk.request(key, || ()), native.request(key, || ()), "{j}");
    }
    assert_eq!(sdk.resident_keys(), native.resident_keys());
    assert_eq!(sdk.stats(), native.stats());
    assert_eq!(status.state(), PluginState::Active, "{:?}", status.error());
    let misses = native.stats().misses;
    assert!(invalidated > 0 && misses > 10_000, "{misses}");
    assert!(
        status.calls() < misses / 4,
        "{} calls for {misses} misses",
        status.calls()
    );
}
