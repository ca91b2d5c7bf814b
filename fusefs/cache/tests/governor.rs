//! The governor role (ABI 1.1) driven through a `CacheCore`: candidates resolved by name,
//! shadows, switches that make the cache follow a shadow, weights, faults that drop the governor.

mod common;

use common::*;
use kplug_abi::Role;
use kplug_cache::{CacheCore, CoreConfig, InstallError, PreparedGovernor};
use kplug_engine::CompiledPlugin;

/// A governor registering `fifo` (0) and `lru` (1), serving 0 from the start and
/// switching to `{SWITCH}` at its first tick; `{TICK}` is extra tick code.
const GOVERNOR: &str = r#"
(module
  (import "kplug" "add_candidate" (func $add (param i32 i32 i32) (result i32)))
  (import "kplug" "activate" (func $act (param i32) (result i32)))
  (import "kplug" "candidate_requests" (func $req (param i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 100) "{FIRST}")
  (data (i32.const 200) "{SECOND}")
  (global $ticks (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const 0x10001))
  (func (export "kplug_init") (param i64) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const {FIRST_LEN})))
    (drop (call $add (i32.const 0) (i32.const 200) (i32.const {SECOND_LEN})))
    (drop (call $act (i32.const 0)))
    (i32.const 0))
  (func (export "kplug_tick") (param i64) (result i32)
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (if (i32.eq (global.get $ticks) (i32.const 1))
      (then (drop (call $act (i32.const 1)))))
    {TICK}
    (i32.const 0)))
"#;

fn governor(first: &str, second: &str, tick: &str) -> String {
    GOVERNOR
        .replace("{FIRST}", first)
        .replace("{SECOND}", second)
        .replace("{FIRST_LEN}", &first.len().to_string())
        .replace("{SECOND_LEN}", &second.len().to_string())
        .replace("{TICK}", tick)
}

fn resolve(name: &str) -> Result<CompiledPlugin, String> {
    match name {
        "lru" => Ok(wat_lru().clone()),
        "fifo" => Ok(compile(&fifo(&[]))),
        "handle-fifo" => Ok(compile(&handle_fifo(&[]))),
        "sdk-lru" => Ok(sdk_lru().clone()),
        _ => Err(format!("no policy {name}")),
    }
}

/// A skewed stream over 200 keys.
fn stream(n: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (200f64.powf(u) - 1.0) as u64
        })
        .collect()
}

/// A 16-block cache served by the WAT LRU alone: what a cache following `lru` must equal.
fn lru_reference() -> CacheCore<()> {
    let mut lru = CacheCore::new(16, CoreConfig::default());
    lru.install_plugin(
        wat_lru().instantiate(&[], 16).unwrap(),
        Role::Eviction.into(),
    )
    .unwrap();
    lru
}

/// Feed `stream(n)` to both caches; the governed one never exceeds its capacity.
fn run_beside(core: &mut CacheCore<()>, reference: &mut CacheCore<()>, n: usize) {
    for k in stream(n) {
        core.request(k, || ());
        reference.request(k, || ());
        assert!(core.len() <= 16);
    }
}

/// The resident keys, sorted.
fn blocks(core: &CacheCore<()>) -> Vec<u64> {
    let mut v = core.resident_keys();
    v.sort_unstable();
    v
}

#[test]
fn switching_between_identical_policies_changes_nothing() {
    // Both candidates are the same LRU: at the switch the shadow holds exactly the
    // resident blocks, so the cache must behave as one LRU all along.
    let mut reference = lru_reference();
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&governor("lru", "lru", ""), 16), &resolve, 100)
        .unwrap();
    for (i, k) in stream(3000).into_iter().enumerate() {
        assert_eq!(
            core.request(k, || ()),
            reference.request(k, || ()),
            "request {i} (key {k})"
        );
    }
    assert_eq!(core.stats().policy_switches, 2, "init, then the first tick");
    let c = core.candidates();
    assert!(c[1].active && !c[0].active);
    assert_eq!(c[0].requests, 3000);
    assert_eq!(core.stats().faults, 0);
}

#[test]
fn a_switch_follows_the_shadow_and_keeps_the_cache_consistent() {
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&governor("fifo", "lru", ""), 16), &resolve, 500)
        .unwrap();
    let mut lru = lru_reference();
    run_beside(&mut core, &mut lru, 5000);
    assert_eq!(core.stats().faults, 0);
    assert_eq!(core.stats().policy_switches, 2);
    // After the switch the cache follows the LRU shadow: it evicts what the shadow does not
    // hold first, and once caught up it holds what a pure LRU holds.
    assert_eq!(blocks(&core), blocks(&lru));
    // The FIFO candidate kept running as a shadow after it stopped serving.
    let c = core.candidates();
    assert_eq!(c[0].requests, 5000);
    assert!(c[0].hits > 0 && c[1].hits > 0);
}

#[test]
fn a_faulting_governor_is_dropped_and_the_cache_keeps_serving() {
    let text = governor(
        "fifo",
        "lru",
        "(if (i32.eq (global.get $ticks) (i32.const 2)) (then unreachable))",
    );
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&text, 16), &resolve, 100)
        .unwrap();
    for k in stream(1000) {
        core.request(k, || ());
    }
    assert_eq!(core.stats().faults, 1);
    assert!(core.governor_name().is_none());
    assert!(core.candidates().is_empty());
    // The LRU it switched to at the first tick still serves.
    assert_eq!(core.policy(Role::Eviction).name, "lru-wat");
    assert!(core.len() <= 16);
}

#[test]
fn a_candidate_by_handle_taking_over_knows_the_blocks_by_their_shadow_handles() {
    // The governor faults at its second tick, after switching to the FIFO by handle (ABI
    // 1.8), whose instance then serves the cache: it knows each block by the handle it gave
    // it in its shadow, and traps on any other. The SDK LRU likewise, which also named
    // blocks ahead in its shadow (ABI 1.10): the cache taking it over drops them (it could
    // not tell whether they were hit since) and names afresh; the LRU traps on any miss it
    // did not name.
    for (candidate, name) in [("handle-fifo", "fixture"), ("sdk-lru", "lru")] {
        let text = governor(
            "lru",
            candidate,
            "(if (i32.eq (global.get $ticks) (i32.const 2)) (then unreachable))",
        );
        let mut core = CacheCore::new(16, CoreConfig::default());
        core.install_governor(load(&text, 16), &resolve, 100)
            .unwrap();
        let keys = stream(3000);
        for k in &keys[..1000] {
            core.request(*k, || ());
        }
        assert_eq!(core.stats().faults, 1);
        assert!(core.governor_name().is_none());
        assert_eq!(core.policy(Role::Eviction).name, name);
        for k in &keys[1000..] {
            core.request(*k, || ());
            if k % 7 == 0 {
                core.remove(*k);
            }
        }
        assert_eq!(core.stats().faults, 1, "{candidate} faulted");
        assert_eq!(core.policy(Role::Eviction).name, name);
    }
}

#[test]
fn unknown_or_wrong_candidates_are_refused_at_install() {
    let mut core: CacheCore<()> = CacheCore::new(16, CoreConfig::default());
    let e = core
        .install_governor(load(&governor("fifo", "nope", ""), 16), &resolve, 100)
        .unwrap_err();
    assert!(
        matches!(&e, InstallError::Candidate { spec, .. } if spec == "nope"),
        "{e}"
    );
    assert!(core.governor_name().is_none());
    let e = core
        .install_plugin(load(&fifo(&[]), 16), Role::Eviction.into())
        .and_then(|_| core.install_governor(load(&fifo(&[]), 16), &resolve, 1))
        .unwrap_err();
    assert!(matches!(e, InstallError::NotGovernor(_)), "{e}");
}

#[test]
fn a_plugin_dropped_over_the_governor_is_not_taken_for_a_candidate() {
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&governor("fifo", "lru", ""), 16), &resolve, 100)
        .unwrap();
    let keys = stream(1000);
    for k in &keys[..50] {
        core.request(*k, || ());
    }
    // The operator drops an eviction plugin: no candidate serves any more.
    core.install_plugin(load(&fifo(&[]), 16), Role::Eviction.into())
        .unwrap();
    assert!(core.candidates().iter().all(|c| !c.active));
    // The governor's first tick activates `lru`: the operator's plugin gives way and is not
    // turned into the shadow of `fifo` (which no longer has one).
    for k in &keys[50..] {
        core.request(*k, || ());
        assert!(core.len() <= 16);
    }
    assert_eq!(core.stats().faults, 0);
    assert!(core.candidates()[1].active);
    assert_eq!(core.policy(Role::Eviction).name, "lru-wat");
}

/// The tick of a governor that gives `lru` (1) weight 1 and `fifo` (0) weight 0 with `set_weight`
/// (ABI 1.2) at its first tick, and traps if a bad weight is not refused.
const WEIGHING: &str = r#"
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (if (i32.ne (call $w (i32.const 7) (f64.const 1)) (i32.const -1)) (then unreachable))
    (if (i32.ne (call $w (i32.const 0) (f64.const -1)) (i32.const -1)) (then unreachable))
    (if (i32.ne (call $w (i32.const 0) (f64.div (f64.const 0) (f64.const 0))) (i32.const -1))
      (then unreachable))
    (if (i32.eq (global.get $ticks) (i32.const 1))
      (then (call $set (f64.const 0) (f64.const 1))))
    (i32.const 0)))
"#;

#[test]
fn weights_make_the_cache_the_heaviest_candidate() {
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(
        load(&weighing_governor(("fifo", "lru"), WEIGHING), 16),
        &resolve,
        100,
    )
    .unwrap();
    let mut lru = lru_reference();
    run_beside(&mut core, &mut lru, 5000);
    assert_eq!(core.stats().faults, 0, "a bad weight was not refused");
    assert_eq!(core.stats().policy_switches, 1);
    assert!(core.candidates()[1].active);
    assert_eq!(core.policy(Role::Eviction).name, "lru-wat");
    // Once caught up, the cache holds what the LRU shadow holds, and the candidates'
    // counts are those of the fixed policies.
    assert_eq!(blocks(&core), blocks(&lru));
    assert_eq!(core.candidates()[1].hits, lru.stats().hits);
}

#[test]
fn removing_the_governor_installs_the_candidate_it_followed() {
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&governor("fifo", "lru", ""), 16), &resolve, 100)
        .unwrap();
    for k in stream(2000) {
        core.request(k, || ());
    }
    // Under `deferring_drops` (the daemon's control plane), nothing the size of the resident
    // set is dropped inside: the governor with its shadows, the followed shadow's cache, the
    // table of its blocks and the built-in that tracked the resident set all come back.
    let (removed, retired) = core.deferring_drops(|c| c.remove_governor());
    assert!(removed.is_some());
    assert_eq!(retired.len(), 4, "{retired:?}");
    assert_eq!(core.policy(Role::Eviction).name, "lru-wat");
    // The LRU now serves the cache directly and tracks exactly the resident set: its
    // victims are always resident (a fault would show).
    for k in stream(3000) {
        core.request(k ^ 0x55, || ());
        assert!(core.len() <= 16);
    }
    assert_eq!(core.stats().faults, 0);
}

#[derive(Debug, Clone)]
enum Op {
    Request(u64),
    Invalidate(u64),
    InvalidateFile(u32),
    Tick,
    OperatorPlugin,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (0u64..48).prop_map(|k| Op::Request(k | ((k % 3) << 32))),
        1 => (0u64..48).prop_map(|k| Op::Invalidate(k | ((k % 3) << 32))),
        1 => (0u32..3).prop_map(Op::InvalidateFile),
        2 => Just(Op::Tick),
        1 => Just(Op::OperatorPlugin),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever the weights do (follow one, vote between two, nobody), with invalidations,
    /// operator plugins dropped over the governor and its removal at the end: the cache
    /// stays within capacity, every resident block sits in its holders' bucket, no fault,
    /// and afterwards the followed policy serves a consistent cache.
    #[test]
    fn the_vote_bookkeeping_survives_any_sequence(ops in proptest::collection::vec(op(), 1..400)) {
        let mut core = CacheCore::new(8, CoreConfig::default());
        core.install_governor(load(&weighing_governor(("fifo", "lru"), CYCLING), 8), &resolve, 0).unwrap();
        let hits = |core: &CacheCore<()>| core.candidates().iter().map(|c| c.hits).collect::<Vec<_>>();
        let mut operator = false;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Request(k) => {
                    core.request(*k, || ());
                }
                Op::Invalidate(k) => {
                    // Resident or not, no shadow keeps it: asking for it again hits nowhere.
                    core.remove(*k);
                    let before = hits(&core);
                    core.request(*k, || ());
                    proptest::prop_assert_eq!(hits(&core), before, "a shadow kept {:#x}", k);
                }
                Op::InvalidateFile(f) => {
                    core.remove_file(*f, 0);
                }
                Op::Tick => {
                    core.governor_tick();
                    // This governor only sets weights: after the operator's drop they are
                    // ignored, and the operator's policy keeps serving.
                    if operator {
                        proptest::prop_assert!(core.candidates().iter().all(|c| !c.active));
                    }
                }
                // The vote never resumes after it: only in the last quarter of a sequence.
                Op::OperatorPlugin if i < ops.len() * 3 / 4 => {}
                Op::OperatorPlugin => {
                    core.install_plugin(load(&fifo(&[]), 8), Role::Eviction.into()).unwrap();
                    operator = true;
                }
            }
            if let Err(e) = core.check_governor_invariants() {
                panic!("after {op:?}: {e}");
            }
        }
        proptest::prop_assert_eq!(core.stats().faults, 0);
        core.remove_governor();
        for k in 0..200u64 {
            core.request(k % 40, || ());
            proptest::prop_assert!(core.len() <= 8);
        }
        proptest::prop_assert_eq!(core.stats().faults, 0);
    }
}

#[test]
fn of_two_activations_for_one_role_in_a_call_the_last_counts() {
    // Each tick asks for `lru` (1) then `fifo` (0): `fifo`, serving since init, stays, and
    // the `lru` asked for in passing is no switch.
    let text = governor("fifo", "lru", "(drop (call $act (i32.const 0)))");
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&text, 16), &resolve, 100)
        .unwrap();
    for k in stream(500) {
        core.request(k, || ());
    }
    assert!(core.candidates()[0].active);
    assert_eq!(core.stats().policy_switches, 1, "init only");
    assert_eq!(core.stats().faults, 0);
}

/// A mount replaces a governor with another instance of its module when its optimized code
/// is ready (a tier-up): a candidate that faulted stays out, as a fault is never undone by a
/// tier-up. A new copy of the governor starts afresh.
#[test]
fn another_instance_of_the_serving_governor_keeps_its_candidates_faults() {
    let text = governor("bad", "lru", "");
    let resolve_bad = |name: &str| match name {
        "bad" => Ok(compile(&fifo(&[("{VICTIM}", "unreachable")]))),
        n => resolve(n),
    };
    let mut core = CacheCore::new(16, CoreConfig::default());
    core.install_governor(load(&text, 16), &resolve_bad, 0)
        .unwrap();
    for k in stream(300) {
        core.request(k, || ());
    }
    let faulted = core.candidates()[0].error.clone();
    assert!(
        faulted
            .as_deref()
            .is_some_and(|e| e.contains("unreachable")),
        "{:?}",
        core.candidates()
    );
    let faults = core.stats().faults;
    let again = |core: &CacheCore<()>| {
        PreparedGovernor::new(load(&text, 16), &resolve_bad, 16, &core.resident_keys()).unwrap()
    };
    core.replace_governor_instance(again(&core), 0).unwrap();
    let c = core.candidates();
    assert_eq!(c[0].error, faulted, "{c:?}");
    assert!(!c[0].active, "its init asked for it, refused: {c:?}");
    for k in stream(300) {
        core.request(k, || ());
    }
    assert_eq!(core.candidates()[0].error, faulted);
    assert_eq!(core.stats().faults, faults, "its shadow runs the built-in");
    // A new copy of the governor: every candidate gets its chance again.
    core.install_prepared_governor(again(&core), 0).unwrap();
    let c = core.candidates();
    assert!(c[0].error.is_none() && c[0].active, "{c:?}");
}
