//! Installing a plugin prepared from a snapshot (`Prepared`, `install_prepared`): from a
//! snapshot taken for the install (`snapshot_for_install`), the core logs what came and went
//! and the install reads that log; from any other, it walks the resident set. Both must
//! leave the plugin knowing exactly the resident blocks: checked by driving two cores the
//! same way, one each way, and comparing every decision after.

mod common;

use common::*;
use kplug_abi::{Role, RoleSet, block_key};
use kplug_cache::{CacheCore, CoreConfig, Prepared};
use kplug_engine::Plugin;
use proptest::prelude::*;

fn ev() -> RoleSet {
    RoleSet::of(&[Role::Eviction])
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Request(u32, u32),
    Remove(u32, u32),
    RemoveFile(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u32..3, 0u32..40).prop_map(|(f, b)| Op::Request(f, b)),
        1 => (0u32..3, 0u32..40).prop_map(|(f, b)| Op::Remove(f, b)),
        1 => (0u32..3, 0u32..40).prop_map(|(f, b)| Op::RemoveFile(f, b)),
    ]
}

fn apply(core: &mut CacheCore<()>, ops: &[Op]) {
    for op in ops {
        match *op {
            Op::Request(f, b) => {
                core.request(block_key(f, b), || ());
            }
            Op::Remove(f, b) => {
                core.remove(block_key(f, b));
            }
            Op::RemoveFile(f, b) => {
                core.remove_file(f, b);
            }
        }
    }
}

/// The plugins the install is checked with: the SDK LRU (by handle, ABI 1.8), a FIFO by
/// handle that checks every handle it is given back, a batched FIFO by key (ABI 1.4).
fn plugin(kind: usize, capacity: u64) -> Plugin {
    match kind {
        0 => sdk_lru().instantiate(&[], capacity).unwrap(),
        1 => load(&handle_fifo(&[]), capacity),
        _ => load(&batched_fifo(&[]), capacity),
    }
}

/// Two cores driven alike, one preparing from logged snapshots, one walking: `warm`, a
/// first preparation, `between`, maybe a second one and `more`, their installs (the second
/// first), then `after`; every decision after the installs and the counters must agree.
fn check_both_ways(
    kind: usize,
    capacity: u64,
    warm: &[Op],
    between: &[Op],
    second: Option<&[Op]>,
    after: &[Op],
) -> Result<(), TestCaseError> {
    let mut logged: CacheCore<()> = CacheCore::new(capacity, CoreConfig::default());
    let mut walked: CacheCore<()> = CacheCore::new(capacity, CoreConfig::default());
    for core in [&mut logged, &mut walked] {
        core.install_plugin(plugin(kind, capacity), ev()).unwrap();
        apply(core, warm);
    }
    let prepare = |logged: &mut CacheCore<()>, walked: &mut CacheCore<()>| {
        let snapshot = logged.snapshot_for_install();
        prop_assert!(logged.logs_changes());
        let l = Prepared::from_snapshot(plugin(kind, capacity), ev(), snapshot).unwrap();
        let keys = walked.resident_keys();
        let w = Prepared::new(plugin(kind, capacity), ev(), &keys).unwrap();
        Ok((l, w))
    };
    let (first_l, first_w) = prepare(&mut logged, &mut walked)?;
    apply(&mut logged, between);
    apply(&mut walked, between);
    if let Some(more) = second {
        let (l, w) = prepare(&mut logged, &mut walked)?;
        apply(&mut logged, more);
        apply(&mut walked, more);
        logged.install_prepared(l).unwrap();
        walked.install_prepared(w).unwrap();
    }
    logged.install_prepared(first_l).unwrap();
    walked.install_prepared(first_w).unwrap();
    prop_assert!(
        !logged.logs_changes(),
        "the log goes once every snapshot is installed"
    );
    prop_assert_eq!(logged.resident_keys(), walked.resident_keys());
    for (step, op) in after.iter().enumerate() {
        apply(&mut logged, std::slice::from_ref(op));
        apply(&mut walked, std::slice::from_ref(op));
        prop_assert_eq!(
            logged.resident_keys(),
            walked.resident_keys(),
            "after step {}",
            step
        );
    }
    prop_assert_eq!(logged.stats(), walked.stats());
    prop_assert_eq!(logged.stats().faults, 0);
    prop_assert_eq!(logged.policy(Role::Eviction).plugin.is_some(), true);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn an_install_from_a_logged_snapshot_decides_as_one_that_walks(
        kind in 0usize..3,
        capacity in 2u64..24,
        warm in prop::collection::vec(op(), 0..80),
        between in prop::collection::vec(op(), 0..120),
        second in prop::option::of(prop::collection::vec(op(), 0..40)),
        after in prop::collection::vec(op(), 0..120),
    ) {
        check_both_ways(kind, capacity, &warm, &between, second.as_deref(), &after)?;
    }
}

#[test]
fn a_log_that_outgrows_the_cache_is_dropped_and_the_install_walks() {
    // Twice the resident count (plus a little) is the bound: 100 misses on a 4-block cache
    // log 200 changes. The install then walks, and decides as the walk does.
    let churn: Vec<Op> = (0..100).map(|b| Op::Request(1, b)).collect();
    let warm: Vec<Op> = (0..4).map(|b| Op::Request(0, b)).collect();
    let after: Vec<Op> = (0..8).map(|b| Op::Request(2, b)).collect();
    for kind in 0..3 {
        check_both_ways(kind, 4, &warm, &churn, None, &after).unwrap();
    }
    let mut core: CacheCore<()> = CacheCore::new(4, CoreConfig::default());
    let _abandoned = core.snapshot_for_install();
    apply(&mut core, &churn);
    assert!(
        !core.logs_changes(),
        "a snapshot never installed stops the log at its bound"
    );
}

#[test]
fn a_block_named_while_the_plugin_was_told_it_is_told_again() {
    // The FIFO by handle names its oldest block as a victim when told block 3: during the
    // replay of the snapshot (0, 1, 2, 3) that is block 0, which the cache still holds, so the
    // install tells it again, last. Then the next misses evict 1, 2, 3 and 0, in that order:
    // a plugin not told 0 again would never name it.
    let names_one_at_3 = handle_fifo(&[(
        "{MISS}",
        "(if (i64.eq (local.get $k) (i64.const 3)) (then (local.set $need (i32.const 1))))",
    )]);
    for logged in [true, false] {
        let mut core: CacheCore<()> = CacheCore::new(4, CoreConfig::default());
        for k in 0..4 {
            core.request(k, || ());
        }
        let prepared = if logged {
            let snapshot = core.snapshot_for_install();
            Prepared::from_snapshot(load(&names_one_at_3, 4), ev(), snapshot).unwrap()
        } else {
            let keys = core.resident_keys();
            Prepared::new(load(&names_one_at_3, 4), ev(), &keys).unwrap()
        };
        assert!(
            core.request(1, || ()),
            "a hit meanwhile changes nothing resident"
        );
        core.install_prepared(prepared).unwrap();
        assert_eq!(
            core.resident_keys().len(),
            4,
            "nothing evicted by the install"
        );
        for (k, evicted) in [(20, 1), (21, 2), (22, 3), (23, 0)] {
            assert!(!core.request(k, || ()));
            assert!(
                !core.contains(evicted),
                "{k} evicts {evicted} (logged: {logged})"
            );
        }
        assert_eq!(core.stats().faults, 0);
        assert_eq!(core.policy(Role::Eviction).name, "fixture");
    }
}

#[test]
fn a_discarded_preparation_does_not_keep_the_log() {
    let mut core: CacheCore<()> = CacheCore::new(4, CoreConfig::default());
    for k in 0..4 {
        core.request(k, || ());
    }
    let snapshot = core.snapshot_for_install();
    let prepared = Prepared::from_snapshot(plugin(0, 4), ev(), snapshot).unwrap();
    let status = prepared.status();
    core.request(9, || ());
    assert!(core.logs_changes());
    let (_, retired) = core.deferring_drops(|c| c.discard_prepared(prepared));
    assert!(!core.logs_changes());
    assert!(
        !retired.is_empty(),
        "the instance goes with what the caller drops"
    );
    assert!(
        core.policy(Role::Eviction).plugin.is_none(),
        "the built-in serves still"
    );
    drop(retired);
    assert_eq!(std::sync::Arc::strong_count(&status), 1);
}

/// Tells `plugin` the blocks `keys` as a load's replay does, in batches (ABI 1.9) or with one
/// call each: the handles they got and the victims named meanwhile.
fn seed(plugin: &mut Plugin, keys: &[u64], batches: bool) -> (Vec<u32>, Vec<u64>) {
    let (mut handles, mut victims) = (Vec::new(), Vec::new());
    let mut n = 0;
    while n < keys.len() {
        n += if batches {
            plugin
                .evict_seed(&keys[n..], n as u64, &mut handles)
                .unwrap()
        } else {
            let h = plugin.evict_insert(keys[n], n as u64 + 1).unwrap();
            handles.push(h.unwrap_or(0));
            1
        };
        plugin.take_victims(&mut victims);
    }
    (handles, victims)
}

/// Seeding in batches tells a policy exactly what one call per block tells it: the same
/// handles, the same victims named meanwhile (W-TinyLFU and LIRS name some when told more
/// blocks than they hold), and the same decisions after, on every shipped policy.
#[test]
fn seeding_in_batches_tells_a_policy_what_one_call_per_block_tells_it() {
    let capacity = 200;
    // More keys than the capacity (as a load never tells: a policy must still agree with
    // itself), in more batches than one.
    let keys: Vec<u64> = (0..450u64).map(|i| (i * 7919) % 1000).collect();
    let shipped = [
        "lru", "fifo", "clock", "sieve", "arc", "twoq", "lirs", "s3fifo", "wtinylfu",
    ]
    .map(|name| (name, engine().compile(name, policy_wasm(name)).unwrap()));
    // And an SDK policy by key (ABI 1.4's set, whose seed has no handles).
    let by_key = ("sdk-roles", sdk_roles().clone());
    for (name, compiled) in shipped.into_iter().chain([by_key]) {
        let mut a = compiled.instantiate(&[], capacity).unwrap();
        let mut b = compiled.instantiate(&[], capacity).unwrap();
        assert!(a.seeds_in_batches(), "{name}");
        let seeded = seed(&mut a, &keys, true);
        // LIRS names victims when told more blocks than it holds: the seed's victims, and
        // its stopping while its room for them is half taken, are exercised.
        assert_eq!(name == "lirs", !seeded.1.is_empty(), "{name}");
        assert_eq!(seeded, seed(&mut b, &keys, false), "{name}");
        // Then the same misses and hits: the same victims and handles.
        let mut resident: std::collections::HashMap<u64, u32> =
            keys.iter().copied().zip(seeded.0.iter().copied()).collect();
        for v in &seeded.1 {
            resident.remove(v);
        }
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        for i in 0..3000u64 {
            let k = (i * 2_654_435_761) % 600;
            let n = resident.len() as u64;
            if let Some(&h) = resident.get(&k) {
                a.evict_access(k, h, n).unwrap();
                b.evict_access(k, h, n).unwrap();
            } else {
                let need = u32::from(resident.len() as u64 >= capacity);
                let ha = a.evict_miss(k, need, n).unwrap();
                assert_eq!(ha, b.evict_miss(k, need, n).unwrap(), "{name} miss {k}");
                resident.insert(k, ha.unwrap_or(0));
            }
            a.take_victims(&mut va);
            b.take_victims(&mut vb);
            assert_eq!(va, vb, "{name} request {i}");
            for v in va.drain(..) {
                assert!(
                    resident.remove(&v).is_some(),
                    "{name}: victim {v} not resident"
                );
            }
            vb.clear();
        }
    }
}
