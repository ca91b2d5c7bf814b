//! CacheCore behaviour that does not need a plugin, plus installs: values,
//! counters, invalidation by file, prefetch planning and in-flight tracking,
//! install errors.

mod common;

use std::sync::Arc;

use common::*;
use kplug_abi::{Role, RoleSet, block_key};
use kplug_cache::{
    BlockRange, BuiltinPrefetch, CacheCore, CoreConfig, Insert, InstallError, ReadaheadConfig,
};
use kplug_engine::{Fault, PluginState};

fn core(cap: u64) -> CacheCore<Arc<[u8]>> {
    CacheCore::new(cap, CoreConfig::default())
}

fn data(b: u8) -> Arc<[u8]> {
    Arc::from(vec![b; 4])
}

#[test]
fn get_insert_remove_and_counters() {
    let mut c = core(2);
    assert!(c.get(1).is_none());
    assert_eq!(c.insert(1, data(1)), Insert::Inserted);
    assert_eq!(c.insert(1, data(9)), Insert::AlreadyResident);
    assert_eq!(c.get(1).unwrap()[0], 1);
    c.insert(2, data(2));
    c.get(1);
    c.insert(3, data(3)); // evicts 2 (LRU)
    assert!(!c.contains(2) && c.contains(1) && c.contains(3));
    assert_eq!(c.remove(1).unwrap()[0], 1);
    assert!(c.remove(1).is_none());
    let s = *c.stats();
    assert_eq!(
        (s.hits, s.misses, s.insertions, s.evictions, s.invalidations),
        (2, 1, 3, 1, 1)
    );
    assert!((s.miss_ratio() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(c.peek(3).unwrap()[0], 3);
    assert_eq!(c.stats().hits, 2, "peek does not count");
}

#[test]
fn zero_capacity_caches_nothing() {
    let mut c = core(0);
    assert_eq!(c.insert(1, data(1)), Insert::Refused);
    assert!(c.is_empty());
}

#[test]
fn remove_file_drops_only_that_files_tail() {
    for index_files in [true, false] {
        let mut c: CacheCore<()> = CacheCore::new(
            100,
            CoreConfig {
                index_files,
                ..CoreConfig::default()
            },
        );
        for f in 1..=2 {
            for b in 0..10 {
                c.insert(block_key(f, b), ());
            }
        }
        assert_eq!(c.remove_file(1, 4), 6);
        assert_eq!(c.remove_file(1, 4), 0);
        for b in 0..10 {
            assert_eq!(c.contains(block_key(1, b)), b < 4);
            assert!(c.contains(block_key(2, b)));
        }
        assert_eq!(c.remove_file(2, 0), 10);
        assert_eq!(c.len(), 4);
        assert_eq!(c.stats().invalidations, 16);
        // The eviction policy forgot them: filling evicts only file 1's blocks.
        for b in 0..100 {
            c.insert(block_key(3, b), ());
        }
        assert_eq!(c.len(), 100);
        assert_eq!(c.stats().evictions, 4);
    }
}

#[test]
fn prefetch_plan_filters_resident_in_flight_and_demand_blocks() {
    let mut c: CacheCore<()> = CacheCore::new(
        100,
        CoreConfig {
            prefetch: BuiltinPrefetch::Readahead(ReadaheadConfig {
                initial_window: 8,
                max_window: 8,
                max_files: 8,
            }),
            ..CoreConfig::default()
        },
    );
    c.insert(block_key(1, 3), ());
    let plan = c.prefetch_plan(1, 0, 100, false);
    // Readahead asks [1, 9); 3 is resident.
    assert_eq!(
        plan,
        vec![
            BlockRange { start: 1, len: 2 },
            BlockRange { start: 4, len: 5 }
        ]
    );
    assert_eq!(c.stats().prefetch_planned, 7);
    // Data comes back for 1 and 2; 4 fails and is cancelled.
    assert_eq!(c.insert_prefetched(block_key(1, 1), ()), Insert::Inserted);
    assert_eq!(
        c.insert_prefetched(block_key(1, 1), ()),
        Insert::Stale,
        "no longer in flight"
    );
    c.cancel_prefetch(1, BlockRange { start: 4, len: 1 });
    assert_eq!(c.insert_prefetched(block_key(1, 4), ()), Insert::Stale);
    // Truncation while 5..9 are in flight: their late data is stale.
    c.remove_file(1, 5);
    assert_eq!(c.insert_prefetched(block_key(1, 6), ()), Insert::Stale);
    assert_eq!(c.insert_prefetched(block_key(1, 2), ()), Insert::Inserted);
    // Used vs wasted.
    assert!(c.get(block_key(1, 1)).is_some());
    c.remove(block_key(1, 2));
    let s = c.stats();
    assert_eq!(
        (s.prefetch_inserted, s.prefetch_used, s.prefetch_wasted),
        (2, 1, 1)
    );
}

#[test]
fn prefetch_none_and_readahead_streams() {
    let mut c: CacheCore<()> = CacheCore::new(1000, CoreConfig::default());
    let mut planned = Vec::new();
    for b in 0..20u32 {
        planned.extend(c.prefetch_plan(5, b, 1000, false));
        for r in planned.drain(..) {
            for x in r.start..r.start + r.len {
                assert_eq!(
                    c.insert_prefetched(block_key(5, x as u32), ()),
                    Insert::Inserted
                );
            }
        }
    }
    // Sequential stream: the window grew to 64 (at block 4: [5, 69) asked) and stays between
    // half a window and a window ahead, asking again once less than half is left.
    assert!(c.contains(block_key(5, 68)));
    assert!(!c.contains(block_key(5, 69)));
    for b in 20..37u32 {
        assert!(c.prefetch_plan(5, b, 1000, false).is_empty(), "block {b}");
    }
    assert_eq!(
        c.prefetch_plan(5, 37, 1000, false),
        vec![BlockRange { start: 69, len: 33 }]
    );
    c.set_prefetch(BuiltinPrefetch::None);
    assert_eq!(c.policy(Role::Prefetch).name, "none");
    assert!(c.prefetch_plan(6, 0, 1000, false).is_empty());
}

#[test]
fn install_errors() {
    let mut c: CacheCore<()> = CacheCore::new(8, CoreConfig::default());
    let p = load(&fill(ADMIT_TEMPLATE, &[("{BODY}", "(i32.const 1)")]), 8);
    let e = c
        .install_plugin(p, RoleSet::of(&[Role::Eviction]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin `fixture` does not implement the eviction role"
    );
    let p = load(&fifo(&[]), 4);
    assert_eq!(
        c.install_plugin(p, RoleSet::of(&[Role::Eviction]))
            .unwrap_err(),
        InstallError::CapacityMismatch {
            plugin: 4,
            cache: 8
        }
    );
    let p = load(&fifo(&[]), 8);
    assert_eq!(
        c.install_plugin(p, RoleSet::EMPTY).unwrap_err(),
        InstallError::NoRoles
    );
}

#[test]
fn install_fault_during_replay_keeps_the_previous_policy() {
    let mut c: CacheCore<()> = CacheCore::new(8, CoreConfig::default());
    for k in 0..5 {
        c.request(k, || ());
    }
    let p = load(
        &fifo(&[(
            "{INSERT}",
            "(if (i64.eq (local.get $k) (i64.const 3)) (then unreachable))",
        )]),
        8,
    );
    let status = p.status();
    let e = c
        .install_plugin(p, RoleSet::of(&[Role::Eviction]))
        .unwrap_err();
    assert_eq!(
        e,
        InstallError::Fault(kplug_engine::HookFault {
            hook: "kplug_evict_insert",
            fault: Fault::Trap("wasm `unreachable` instruction executed".into()),
        })
    );
    assert_eq!(status.state(), PluginState::Failed);
    assert_eq!(c.policy(Role::Eviction).name, "lru");
    for k in 10..18 {
        c.request(k, || ());
    }
    assert_eq!(c.resident_keys(), (10..18).collect::<Vec<_>>());
}

#[test]
fn replacing_a_multi_role_plugin_keeps_it_while_any_role_uses_it() {
    let extra = r#"(func (export "kplug_admit") (param i64 i64 i64) (result i32) (i32.const 1))"#;
    let mut c: CacheCore<()> = CacheCore::new(8, CoreConfig::default());
    let p = load(&fifo(&[("{EXTRA}", extra)]), 8);
    let status = p.status();
    c.install_plugin(p, RoleSet::of(&[Role::Eviction, Role::Admission]))
        .unwrap();
    c.set_eviction(kplug_cache::BuiltinEviction::Lru);
    assert_eq!(
        status.state(),
        PluginState::Active,
        "still serves admission"
    );
    assert_eq!(c.policy(Role::Admission).name, "fixture");
    c.request(1, || ());
    let calls = status.calls();
    c.request(2, || ());
    assert_eq!(status.calls(), calls + 1, "one admission call per miss");
    c.set_admission(kplug_cache::BuiltinAdmission::AdmitAll);
    assert_eq!(status.state(), PluginState::Disabled);
}

#[test]
fn a_replaced_instance_is_dropped_where_the_caller_says() {
    let mut c: CacheCore<()> = CacheCore::new(8, CoreConfig::default());
    let ev = RoleSet::of(&[Role::Eviction]);
    let first = load(&fifo(&[]), 8);
    let status = first.status();
    c.install_plugin(first, ev).unwrap();
    let held = Arc::strong_count(&status);
    assert!(held > 1, "the instance holds its status");
    // Replaced under `deferring_drops`: out of service at once, dropped with `Retired`.
    let second = load(&fifo(&[]), 8);
    let second_status = second.status();
    let ((), retired) = c.deferring_drops(|c| c.install_plugin(second, ev).unwrap());
    assert_eq!(status.state(), PluginState::Disabled);
    assert!(!retired.is_empty());
    assert_eq!(Arc::strong_count(&status), held, "kept by `Retired`");
    let calls = status.calls();
    for k in 0..20 {
        c.request(k, || ());
    }
    assert_eq!(status.calls(), calls, "never called once out of service");
    assert!(second_status.calls() > 0);
    drop(retired);
    assert_eq!(Arc::strong_count(&status), 1, "dropped with `Retired`");
    // Otherwise dropped where it is taken out of service, as before.
    c.install_plugin(load(&fifo(&[]), 8), ev).unwrap();
    assert_eq!(second_status.state(), PluginState::Disabled);
    assert_eq!(Arc::strong_count(&second_status), 1);
    let (_, nothing) = c.deferring_drops(|c| c.request(100, || ()));
    assert!(nothing.is_empty());
}

#[test]
fn registry_tracks_instances_by_name() {
    let mut r = kplug_engine::PluginRegistry::new(engine().clone());
    r.add("lru-wat", wat_lru_wasm()).unwrap();
    assert_eq!(r.names().collect::<Vec<_>>(), vec!["lru-wat"]);
    let p = r.instantiate("lru-wat", &[], 16).unwrap();
    assert!(matches!(
        r.instantiate("nope", &[], 16),
        Err(kplug_engine::LoadError::UnknownPlugin(_))
    ));
    let mut c: CacheCore<()> = CacheCore::new(16, CoreConfig::default());
    c.install_plugin(p, RoleSet::of(&[Role::Eviction])).unwrap();
    for k in 0..40 {
        c.request(k % 20, || ());
    }
    let s = r.statuses();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name, "lru-wat");
    assert_eq!(s[0].state, PluginState::Active);
    assert!(s[0].calls >= 40);
    let json = serde_json::to_value(&s[0]).unwrap();
    assert_eq!(json["state"], "active");
    assert_eq!(json["roles"], serde_json::json!(["eviction"]));
    assert_eq!(json["error"], serde_json::Value::Null);
    for field in ["name", "loaded_at", "calls", "faults"] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
    assert!(r.get("lru-wat").unwrap().roles().contains(Role::Eviction));
}

#[test]
fn time_in_hooks_is_sampled_one_call_in_16() {
    let mut c: CacheCore<()> = CacheCore::new(8, CoreConfig::default());
    let p = load(&fifo(&[]), 8);
    let status = p.status();
    c.install_plugin(p, RoleSet::of(&[Role::Eviction])).unwrap();
    // Installing replays the (empty) cache: no call yet.
    assert_eq!((status.calls(), status.time_ns()), (0, 0));
    let mut k = 0;
    // Before the 16th call nothing is timed; the 16th adds 16 times its duration.
    while status.calls() < 16 {
        assert_eq!(status.time_ns(), 0, "{} calls", status.calls());
        c.request(k, || ());
        k += 1;
    }
    let t = status.time_ns();
    assert!(t > 0 && t.is_multiple_of(16), "{t}");
    for k in 100..400 {
        c.request(k, || ());
    }
    assert!(status.time_ns() > t);
}
