//! The guest SDK end to end: a plugin built with `kplug-sdk` using every role
//! and parameters, loaded by the host; and the SDK's ABI names match the
//! host's.

mod common;

use common::*;
use kplug_host::{
    BlockRange, CacheCore, CoreConfig, Insert, LoadError, PluginState, Role, RoleSet, abi,
    block_key,
};

#[test]
fn sdk_and_host_agree_on_names_and_version() {
    assert_eq!(kplug_sdk::ABI_VERSION, abi::ABI_VERSION);
    assert_eq!(
        kplug_sdk::MAX_PREFETCH_RANGES as u32,
        abi::MAX_PREFETCH_RANGES
    );
    assert_eq!(kplug_sdk::MAX_PARAM_BYTES, abi::MAX_PARAM_BYTES);
    let host = |r: Role| r.exports().iter().map(|(n, _, _)| *n).collect::<Vec<_>>();
    assert_eq!(kplug_sdk::names::EVICTION.to_vec(), host(Role::Eviction));
    assert_eq!(kplug_sdk::names::ADMISSION.to_vec(), host(Role::Admission));
    assert_eq!(kplug_sdk::names::PREFETCH.to_vec(), host(Role::Prefetch));
    assert_eq!(
        kplug_sdk::names::ALWAYS.to_vec(),
        vec![
            abi::EXPORT_ABI_VERSION,
            abi::EXPORT_ALLOC,
            abi::EXPORT_SET_PARAM,
            abi::EXPORT_INIT
        ]
    );
    assert_eq!(
        kplug_sdk::names::IMPORTS.to_vec(),
        vec![
            abi::IMPORT_LOG,
            abi::IMPORT_CAPACITY,
            abi::IMPORT_RESIDENT,
            abi::IMPORT_HIT_RATIO,
            abi::IMPORT_PRESSURE,
            abi::IMPORT_SEQUENTIALITY,
            abi::IMPORT_BACKEND_LATENCY,
            abi::IMPORT_NOW,
            abi::IMPORT_ADD_CANDIDATE,
            abi::IMPORT_CANDIDATE_HITS,
            abi::IMPORT_CANDIDATE_REQUESTS,
            abi::IMPORT_CANDIDATE_DIVERGENCE,
            abi::IMPORT_ACTIVE,
            abi::IMPORT_ACTIVATE,
        ]
    );
}

#[test]
fn sdk_plugin_serves_all_roles_with_params() {
    let c = sdk_roles();
    assert_eq!(
        c.roles(),
        RoleSet::of(&[Role::Eviction, Role::Admission, Role::Prefetch])
    );
    assert!(c.accepts_params());
    let p = c
        .instantiate(&[("window", "2"), ("admit_every", "2")], 4)
        .unwrap();
    let status = p.status();
    let all = RoleSet::of(&[Role::Eviction, Role::Admission, Role::Prefetch]);
    let mut core: CacheCore<()> = CacheCore::new(4, CoreConfig::default());
    core.install_plugin(p, all).unwrap();
    for r in Role::ALL {
        assert_eq!(core.policy(r).name, "sdk-roles");
    }
    // Admission: odd keys refused.
    assert_eq!(core.insert(3, ()), Insert::Refused);
    for k in [0, 2, 4, 6, 8] {
        assert_eq!(core.insert(k, ()), Insert::Inserted);
    }
    // Eviction: LRU, so 0 went first.
    assert_eq!(core.resident_keys(), vec![2, 4, 6, 8]);
    // Prefetch: window 2 after the block, clamped to the file.
    assert_eq!(
        core.prefetch_plan(0, 10, 100, true),
        vec![BlockRange { start: 11, len: 2 }]
    );
    assert_eq!(
        core.prefetch_plan(0, 98, 100, true),
        vec![BlockRange { start: 99, len: 1 }]
    );
    assert!(core.prefetch_plan(0, 99, 100, true).is_empty());
    assert_eq!(
        core.insert_prefetched(block_key(0, 12), ()),
        Insert::Inserted
    );
    assert_eq!(status.state(), PluginState::Active);
    assert_eq!(core.stats().faults, 0);
}

#[test]
fn sdk_plugin_rejects_unknown_and_bad_params() {
    let e = sdk_roles().instantiate(&[("bogus", "1")], 4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter `bogus`: rejected by the plugin (value `1`, code 1)"
    );
    let e = sdk_roles()
        .instantiate(&[("window", "many")], 4)
        .unwrap_err();
    assert!(
        matches!(e, LoadError::Param { ref key, .. } if key == "window"),
        "{e}"
    );
    let long = "9".repeat(300);
    let e = sdk_roles()
        .instantiate(&[("window", &long)], 4)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter `window`: value is longer than 256 bytes"
    );
}
