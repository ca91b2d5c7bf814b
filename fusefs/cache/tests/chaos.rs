//! A plugin answering at random: whatever an eviction plugin answers (by handle, ABI
//! 1.8-1.10; batched by key, 1.4 and 1.9; one event a call, 1.0), the host keeps its own
//! invariants. `CacheCore` never holds more blocks than its capacity,
//! every resident block holds the value inserted for it, a block just missed is resident,
//! the counters add up, and a plugin either serves or has failed with one fault naming its
//! hook, after which the built-in serves; nothing panics.
//!
//! The plugin (`tests/fixtures/chaos/`, WAT: one module per hook set, its settings
//! parameters) is mostly honest, so that runs get far: a FIFO over a ring of the keys it was
//! given, learning the misses the host took ahead of a call from the blocks it named. Its
//! answers come from a xorshift generator seeded by the case, and at a rate the case picks it
//! departs from the contract: more victims than needed, fewer, a key not resident, the
//! incoming key, a key twice, a random handle, blocks named ahead that are not its next
//! victims or not resident, counts past the declared or the buffer, a seed that takes none or
//! too many, a trap, memory grown past the cap. Some departures are legal (a handle is the
//! plugin's to choose; a named block is any resident block; memory grown a page at a time,
//! under the host's view of the key buffer) and must never fault; the rest must fault, never
//! hurt the host. Fixed hostile fixtures with exact faults are in
//! `hostile.rs`; this finds what no one wrote a fixture for.
//!
//! The same module may serve admission and prefetch too (`roles.wat`), installed for any of
//! the three roles: it refuses blocks (legal) and asks to prefetch nothing, the next blocks,
//! the whole file many times over or ranges anywhere in it (legal: the host clamps and
//! filters), or departs (an answer not 0 or 1; a count past 64 or below 0; a range empty,
//! past the file or overflowing; a trap). A refused block is not resident, a plan lies
//! inside the file and the budget with each block once, never the one accessed nor one
//! resident, and a fault in any hook takes every role the plugin served.
//!
//! A governor answering at random (`governor.wat`) drives chaos candidates of every role: it
//! checks the host's answers to its calls itself and traps apart (a division by zero) on a
//! wrong one.

mod common;

use std::collections::HashMap;

use common::*;
use kplug_abi::{Role, RoleSet, block_key};
use kplug_cache::{BuiltinEviction, CacheCore, CoreConfig, Insert, Prepared, ScopedCache};
use kplug_engine::{CompiledPlugin, LoadError, Plugin, PluginState, StatusHandle};
use proptest::prelude::*;

/// Which set of eviction hooks the chaos plugin exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    ByHandle,
    ByKey,
    PerEvent,
}

/// The chaos plugin's WAT (`tests/fixtures/chaos/`, which the mount's test drops too) with
/// hook set `set`, `kplug_evict_seed` if `seed_export`, and the admission and prefetch hooks
/// of `roles.wat` if `roles`.
fn chaos_wat(set: Set, seed_export: bool, roles: bool) -> String {
    let hooks = match set {
        Set::ByHandle => include_str!("fixtures/chaos/by-handle.wat"),
        Set::ByKey => include_str!("fixtures/chaos/by-key.wat"),
        Set::PerEvent => include_str!("fixtures/chaos/per-event.wat"),
    };
    let seed = if seed_export {
        include_str!("fixtures/chaos/seed.wat")
    } else {
        ""
    };
    let roles = if roles {
        include_str!("fixtures/chaos/roles.wat")
    } else {
        ""
    };
    with_prelude(include_str!("fixtures/chaos/chaos.wat"))
        .replace("{SET}", hooks)
        .replace("{SEED_EXPORT}", seed)
        .replace("{ROLES}", roles)
}

/// A chaos fixture with the functions they all share (`prelude.wat`) where it marks them.
fn with_prelude(text: &str) -> String {
    text.replace("{PRELUDE}", include_str!("fixtures/chaos/prelude.wat"))
}

/// The roles a chaos plugin is installed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Roles {
    Eviction,
    Admission,
    Prefetch,
    /// Admission and prefetch.
    Data,
    /// All three: a fault in any hook takes all three from it.
    All,
}

impl Roles {
    fn set(self) -> RoleSet {
        RoleSet::of(match self {
            Roles::Eviction => &[Role::Eviction],
            Roles::Admission => &[Role::Admission],
            Roles::Prefetch => &[Role::Prefetch],
            Roles::Data => &[Role::Admission, Role::Prefetch],
            Roles::All => &[Role::Eviction, Role::Admission, Role::Prefetch],
        })
    }

    /// Whether the module must export the admission and prefetch hooks.
    fn data(self) -> bool {
        self != Roles::Eviction
    }
}

/// Whether `e` is one line naming a hook of the chaos plugin.
fn names_a_hook(e: &str) -> bool {
    ["kplug_evict_", "kplug_admit: ", "kplug_prefetch: "]
        .iter()
        .any(|h| e.starts_with(h))
        && !e.contains('\n')
}

/// The chaos plugin for one case.
#[derive(Clone, Copy, Debug)]
struct Chaos {
    set: Set,
    seed: u64,
    batch: u32,
    ahead: u32,
    /// Its `kplug_evict_hints` and `kplug_evict_lookahead` (by handle: ABI 1.11, likely
    /// victims, any keys; 1.12, the coming requests, any offsets answered).
    hints: u32,
    /// By handle: its hit marks (ABI 1.13: any handles marked, the header at times naming
    /// part of the table, more than the memory or anything), its handles mostly its slots.
    marks: bool,
    /// A departure from the contract once in `rate` of its chances.
    rate: u32,
    seed_export: bool,
    roles: Roles,
}

impl Chaos {
    /// A new instance for a cache of `capacity` blocks (the module compiled once per tier).
    fn instantiate(&self, capacity: u64) -> Result<Plugin, LoadError> {
        let (seed, batch, ahead, hints, rate) = (
            self.seed.to_string(),
            self.batch.to_string(),
            self.ahead.to_string(),
            self.hints.to_string(),
            self.rate.to_string(),
        );
        let marks = u32::from(self.marks).to_string();
        module(self.set, self.seed_export, self.roles.data()).instantiate(
            &[
                ("seed", &seed),
                ("batch", &batch),
                ("ahead", &ahead),
                ("hints", &hints),
                ("marks", &marks),
                ("rate", &rate),
            ],
            capacity,
        )
    }
}

/// The chaos module with hook set `set`, with or without `kplug_evict_seed` (batched sets
/// only) and the admission and prefetch hooks, compiled once per tier.
fn module(set: Set, seed_export: bool, roles: bool) -> CompiledPlugin {
    compile_once(&chaos_wat(set, seed_export && set != Set::PerEvent, roles))
}

fn chaos() -> impl Strategy<Value = Chaos> {
    (
        prop::sample::select(vec![
            Set::ByHandle,
            Set::ByHandle,
            Set::ByKey,
            Set::PerEvent,
        ]),
        any::<u64>(),
        prop::sample::select(vec![1u32, 2, 3, 4, 5, 8, 256]),
        prop::sample::select(vec![0u32, 1, 2, 3, 64]),
        (prop::sample::select(vec![0u32, 0, 2, 8]), any::<bool>()),
        prop::sample::select(vec![4u32, 30, 1000]),
        any::<bool>(),
        prop::sample::select(vec![
            Roles::Eviction,
            Roles::Eviction,
            Roles::Eviction,
            Roles::Admission,
            Roles::Prefetch,
            Roles::Data,
            Roles::All,
        ]),
    )
        .prop_map(
            |(set, seed, batch, ahead, (hints, marks), rate, seed_export, roles)| Chaos {
                set,
                seed,
                batch,
                ahead,
                hints,
                marks,
                rate,
                seed_export,
                roles,
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    /// `request` of block `block` of file `file`.
    Request { file: u32, block: u32 },
    /// `get`, then (on a miss) a `request` of another block, then `insert` (a mount's path:
    /// the block read from the backend meanwhile).
    GetInsert { file: u32, block: u32, other: u32 },
    /// A driver that knows the coming requests tells `block` of `file` as one (ABI 1.12).
    Tell { file: u32, block: u32 },
    /// The prefetch plan after an access to `block` of `file` (24 blocks long), its blocks
    /// inserted as prefetched (or, for every `cancel`-th range, cancelled).
    Prefetch { file: u32, block: u32, cancel: u8 },
    /// Invalidate the `i % len`-th resident block.
    Remove(usize),
    /// Truncate `file` to `from` blocks.
    RemoveFile { file: u32, from: u32 },
    /// The built-in LRU takes eviction over.
    Builtin,
    /// A new chaos plugin is installed (seeded with the resident blocks).
    Install(Chaos),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => (0u32..3, 0u32..24).prop_map(|(file, block)| Op::Request { file, block }),
        4 => (0u32..3, 0u32..24).prop_map(|(file, block)| Op::Tell { file, block }),
        4 => (0u32..3, 0u32..24, 0u32..24)
            .prop_map(|(file, block, other)| Op::GetInsert { file, block, other }),
        2 => (0u32..3, 0u32..24, 1u8..4)
            .prop_map(|(file, block, cancel)| Op::Prefetch { file, block, cancel }),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (0u32..3, 0u32..24).prop_map(|(file, from)| Op::RemoveFile { file, from }),
        1 => Just(Op::Builtin),
        1 => chaos().prop_map(Op::Install),
    ]
}

/// The case's state beside the core: the value last inserted for each key, the plugins
/// installed, the lookups made.
struct Run {
    core: CacheCore<u64>,
    values: HashMap<u64, u64>,
    next_value: u64,
    plugins: Vec<StatusHandle>,
    lookups: u64,
}

impl Run {
    /// An empty core of `capacity` blocks with the built-ins.
    fn new(capacity: u64) -> Run {
        Run {
            core: CacheCore::new(capacity, CoreConfig::default()),
            values: HashMap::new(),
            next_value: 0,
            plugins: Vec::new(),
            lookups: 0,
        }
    }

    fn install(&mut self, chaos: &Chaos) -> Result<(), TestCaseError> {
        let plugin = match chaos.instantiate(self.core.capacity()) {
            Ok(p) => p,
            // A seed of the resident blocks may be refused at load (a count out of range):
            // the core keeps the policy it had.
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with("kplug_evict_seed"), "load refused: {e}");
                return Ok(());
            }
        };
        let status = plugin.status();
        let before =
            [Role::Eviction, Role::Admission, Role::Prefetch].map(|r| self.core.policy(r).name);
        match self.core.install_plugin(plugin, chaos.roles.set()) {
            Ok(()) => self.plugins.push(status),
            // The replay of the resident blocks into it faulted: refused (a fault of the
            // core's), and the policies serving before serve on.
            Err(e) => {
                self.plugins.push(status);
                let e = e.to_string();
                prop_assert!(
                    e.starts_with("plugin faulted while replaying resident blocks: kplug_evict_")
                        && !e.contains('\n'),
                    "install refused: {}",
                    e
                );
                for (r, name) in [Role::Eviction, Role::Admission, Role::Prefetch]
                    .into_iter()
                    .zip(before)
                {
                    prop_assert_eq!(self.core.policy(r).name, name);
                }
            }
        }
        Ok(())
    }

    /// Whether the admission policy refused a block since `refusals` was read.
    fn refused(&self, refusals: u64) -> bool {
        self.core.stats().admission_refusals > refusals
    }

    fn value(&mut self, key: u64) -> u64 {
        self.next_value += 1;
        self.values.insert(key, self.next_value);
        self.next_value
    }

    /// Inserts a new value for `key` (fetched on demand, or prefetched) and checks the answer
    /// against whether it was resident.
    fn insert(&mut self, key: u64, prefetched: bool) -> Result<(), TestCaseError> {
        let resident = self.core.contains(key);
        let refusals = self.core.stats().admission_refusals;
        let v = self.next_value + 1;
        let r = if prefetched {
            self.core.insert_prefetched(key, v)
        } else {
            self.core.insert(key, v)
        };
        match r {
            Insert::Inserted => {
                prop_assert!(!resident);
                self.value(key);
            }
            Insert::AlreadyResident => prop_assert!(resident),
            // Refused by the admission policy (a capacity of 0 does not occur here).
            Insert::Refused => {
                prop_assert!(self.refused(refusals) && !self.core.contains(key))
            }
            // Not in flight any more (a block of its plan entered or left since).
            Insert::Stale => prop_assert!(prefetched, "{:#x}: {:?}", key, r),
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Tell { file, block } => self.core.prefetch_hint(block_key(file, block)),
            Op::Request { file, block } => {
                let key = block_key(file, block);
                let was = self.core.contains(key);
                let refusals = self.core.stats().admission_refusals;
                let v = self.next_value + 1;
                let hit = self.core.request(key, || v);
                self.lookups += 1;
                prop_assert_eq!(hit, was);
                // A miss enters unless refused; a hit may leave at once (a plugin may name
                // any resident block while taking hits, the one just hit included).
                if !hit && self.refused(refusals) {
                    prop_assert!(!self.core.contains(key), "{key:#x} refused yet resident");
                } else if !hit {
                    self.value(key);
                    prop_assert!(
                        self.core.contains(key),
                        "{key:#x} not resident after its miss"
                    );
                }
            }
            Op::GetInsert { file, block, other } => {
                let key = block_key(file, block);
                let was = self.core.contains(key);
                let got = self.core.get(key).copied();
                self.lookups += 1;
                prop_assert!(was || got.is_none());
                if let Some(v) = got {
                    prop_assert_eq!(Some(&v), self.values.get(&key));
                }
                if got.is_none() {
                    let other = block_key(file, other);
                    let v = self.next_value + 1;
                    if !self.core.request(other, || v) {
                        self.value(other);
                    }
                    self.lookups += 1;
                    self.insert(key, false)?;
                }
            }
            Op::Prefetch {
                file,
                block,
                cancel,
            } => {
                let hit = self.core.contains(block_key(file, block));
                let plan = self.core.prefetch_plan(file, block, 24, hit);
                // Whatever the policy asked: inside the file, within the budget, each block
                // once, neither the one accessed nor one resident.
                let mut planned = std::collections::HashSet::new();
                for r in &plan {
                    prop_assert!(r.len > 0 && r.start + r.len <= 24, "{:?}", plan);
                    for b in r.start..r.start + r.len {
                        let key = block_key(file, b as u32);
                        prop_assert!(b != block as u64 && !self.core.contains(key), "{:?}", plan);
                        prop_assert!(planned.insert(b), "block {} twice: {:?}", b, plan);
                    }
                }
                prop_assert!(planned.len() as u64 <= CoreConfig::default().prefetch_budget);
                for (i, r) in plan.iter().enumerate() {
                    if i % cancel as usize == cancel as usize - 1 {
                        self.core.cancel_prefetch(file, *r);
                        continue;
                    }
                    for b in r.start..r.start + r.len {
                        prop_assert!(b < 24, "a plan past the file: {:?}", plan);
                        self.insert(block_key(file, b as u32), true)?;
                    }
                }
            }
            Op::Remove(i) => {
                let keys = self.core.resident_keys();
                if !keys.is_empty() {
                    // Dropped, or evicted by the plugin taking the hits waiting first.
                    let key = keys[i % keys.len()];
                    let value = self.core.remove(key);
                    prop_assert!(value.is_none_or(|v| Some(&v) == self.values.get(&key)));
                    prop_assert!(!self.core.contains(key));
                }
            }
            Op::RemoveFile { file, from } => {
                let doomed = |core: &CacheCore<u64>| {
                    core.resident_keys()
                        .into_iter()
                        .filter(|k| (k >> 32) as u32 == file && *k as u32 >= from)
                        .count()
                };
                let before = doomed(&self.core);
                prop_assert!(self.core.remove_file(file, from) <= before);
                prop_assert_eq!(doomed(&self.core), 0);
            }
            Op::Builtin => self.core.set_eviction(BuiltinEviction::Lru),
            Op::Install(ref chaos) => self.install(chaos)?,
        }
        self.check()
    }

    /// The core within its capacity, every resident block holding its value, and no role
    /// served by a plugin that faulted.
    fn check_values(&self) -> Result<(), TestCaseError> {
        let keys = self.core.resident_keys();
        prop_assert!(keys.len() as u64 <= self.core.capacity());
        prop_assert_eq!(keys.len(), self.core.len());
        for k in keys {
            prop_assert_eq!(self.core.peek(k), self.values.get(&k), "block {:#x}", k);
        }
        // A fault took every role from its plugin.
        for r in [Role::Eviction, Role::Admission, Role::Prefetch] {
            if let Some(p) = self.core.policy(r).plugin {
                prop_assert_eq!(p.state(), PluginState::Active, "{:?}", r);
            }
        }
        Ok(())
    }

    /// The host's invariants, whatever the plugin answered.
    fn check(&self) -> Result<(), TestCaseError> {
        self.check_values()?;
        let s = self.core.stats();
        prop_assert_eq!(s.hits + s.misses, self.lookups);
        let failed = self
            .plugins
            .iter()
            .filter(|p| p.state() == PluginState::Failed)
            .count() as u64;
        prop_assert_eq!(s.faults, failed);
        for p in &self.plugins {
            if p.state() == PluginState::Failed {
                prop_assert_eq!(p.faults(), 1);
                let e = p.error().unwrap_or_default();
                prop_assert!(names_a_hook(&e), "fault: {}", e);
            }
        }
        Ok(())
    }
}

fn run(capacity: u64, first: &Chaos, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut run = Run::new(capacity);
    run.install(first)?;
    for op in ops {
        run.step(op)?;
    }
    // Whatever serves now makes room: the cache takes as many new blocks as it holds.
    for b in 0..capacity as u32 {
        run.step(&Op::Request { file: 7, block: b })?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn the_host_keeps_its_invariants_whatever_a_plugin_answers(
        capacity in 1u64..12,
        first in chaos(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(capacity, &first, &ops)?;
    }
}

/// The same on Winch's baseline code (a mount's first load of a module it never saw), fewer
/// cases.
#[test]
fn the_host_keeps_its_invariants_on_baseline_code() {
    on_both_tiers(|| {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        });
        runner
            .run(
                &(1u64..12, chaos(), prop::collection::vec(op(), 1..300)),
                |(capacity, first, ops)| run(capacity, &first, &ops),
            )
            .unwrap();
    });
}

/// The honest part of the plugin is honest: at a rate of departures no run reaches, it
/// serves every case without a fault, taking misses ahead when it names blocks; serving
/// admission and prefetch too, it refuses blocks and asks for prefetches, never a fault.
#[test]
fn the_chaos_plugin_without_departures_never_faults() {
    let cases = [(1, 0), (4, 0), (4, 1), (8, 3), (256, 64), (3, 64)];
    let sets = [Set::ByHandle, Set::ByKey, Set::PerEvent];
    for (i, (set, (batch, ahead))) in sets
        .into_iter()
        .flat_map(|s| cases.into_iter().map(move |c| (s, c)))
        .enumerate()
    {
        let chaos = Chaos {
            set,
            seed: 0x9e37_79b9 + i as u64,
            batch,
            ahead,
            hints: [0, 2, 8][i % 3],
            marks: i % 4 < 2,
            rate: u32::MAX,
            seed_export: i % 2 == 0,
            roles: [Roles::Eviction, Roles::All, Roles::Eviction][i % 3],
        };
        let plugin = chaos.instantiate(6).unwrap();
        let status = plugin.status();
        let mut core: CacheCore<u64> = CacheCore::new(6, CoreConfig::default());
        core.install_plugin(plugin, chaos.roles.set()).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64 ^ i as u64;
        let mut misses = 0;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (file, block) = ((x % 3) as u32, ((x >> 8) % 24) as u32);
            let key = block_key(file, block);
            let refusals = core.stats().admission_refusals;
            let hit = core.request(key, || key ^ 0x5a);
            if !hit {
                misses += 1;
                assert_eq!(
                    core.contains(key),
                    core.stats().admission_refusals == refusals
                );
            }
            assert!(core.peek(key).is_none_or(|v| *v == key ^ 0x5a));
            for r in core.prefetch_plan(file, block, 24, hit) {
                for b in r.start..r.start + r.len {
                    let key = block_key(file, b as u32);
                    core.insert_prefetched(key, key ^ 0x5a);
                }
            }
            if x.is_multiple_of(97) {
                core.remove(key);
            }
        }
        assert_eq!(
            status.state(),
            PluginState::Active,
            "{chaos:?}: {:?}",
            status.error()
        );
        let s = core.stats();
        assert_eq!(s.faults, 0);
        if chaos.roles == Roles::All {
            assert!(
                s.admission_refusals > 0 && s.prefetch_planned > 0,
                "{chaos:?}: {s:?}"
            );
        } else if set == Set::ByHandle && ahead > 0 && batch >= 3 {
            assert!(
                status.calls() < misses,
                "{chaos:?}: {} calls, {misses} misses",
                status.calls()
            );
        }
    }
}

/// Found by the runs above: the core dropped an invalidated block from its map before
/// delivering the hits that waited, so a plugin naming that block while taking them (a
/// victim it had every reason to think resident: here its oldest, as LIRS's or SLRU's
/// demotions on hits may) was faulted for naming a block not resident. The hits go first
/// now: the block leaves as their victim, and the plugin is not told of its invalidation.
#[test]
fn a_block_invalidated_while_hits_wait_may_be_their_victim() {
    let oldest_on_hits =
        |take: &str| format!("\n    (local $i i32)\n    {take}\n{NAME_OLDEST_ON_HITS}");
    // By handle (1.8), whose removal traps on a handle it no longer tracks, and by key (1.4).
    for text in [
        handle_fifo(&[("{HITS}", &oldest_on_hits("(call $hits (local.get $n))"))]),
        batched_fifo(&[("{HITS}", &oldest_on_hits(""))]),
    ] {
        let plugin = compile(&text).instantiate(&[], 4).unwrap();
        let status = plugin.status();
        // Faults, evictions, invalidations.
        let counts = |core: &CacheCore<u64>, want: (u64, u64, u64)| {
            let s = core.stats();
            let got = (s.faults, s.evictions, s.invalidations);
            assert_eq!(got, want, "{:?}", status.error());
        };
        let mut core: CacheCore<u64> = CacheCore::new(4, CoreConfig::default());
        core.install_plugin(plugin, RoleSet::of(&[Role::Eviction]))
            .unwrap();
        for k in 0..4 {
            assert!(!core.request(k, || k));
        }
        assert!(core.request(2, || 2)); // waits (a batch of 4)
        // 0, the oldest, is invalidated: the plugin takes the hit first and names 0.
        assert_eq!(core.remove(0), None);
        assert_eq!(core.resident_keys(), vec![1, 3, 2]);
        counts(&core, (0, 1, 0));
        // With no hit waiting, an invalidation is told as before.
        assert_eq!(core.remove(1), Some(1));
        assert!(!core.request(5, || 5));
        assert_eq!(core.resident_keys(), vec![3, 2, 5]);
        counts(&core, (0, 1, 1));
        // A truncation the same: the hit on 2 first, whose call names 3, then 2 and 5.
        assert!(core.request(2, || 2));
        assert_eq!(core.remove_file(0, 0), 2);
        assert_eq!(core.len(), 0);
        counts(&core, (0, 2, 3));
        assert_eq!(status.state(), PluginState::Active);
    }
}

/// An operation on a cache of scopes.
#[derive(Clone, Debug)]
enum ScopeOp {
    Request {
        scope: usize,
        key: u64,
    },
    Remove(u64),
    RemoveFile {
        file: u32,
        from: u32,
    },
    /// Scope `scope` created with `share`, its eviction the chaos plugin (or the built-in).
    Add {
        scope: usize,
        share: u64,
        chaos: Option<Chaos>,
    },
    Share {
        scope: usize,
        share: u64,
    },
    Drop {
        scope: usize,
        into: usize,
    },
    /// A new chaos plugin serves scope `scope`'s eviction.
    Install {
        scope: usize,
        chaos: Chaos,
    },
}

const SLOTS: usize = 3;

fn scope_op() -> impl Strategy<Value = ScopeOp> {
    prop_oneof![
        20 => (0..SLOTS, 0u32..3, 0u32..16)
            .prop_map(|(scope, f, b)| ScopeOp::Request { scope, key: block_key(f, b) }),
        2 => (0u32..3, 0u32..16).prop_map(|(f, b)| ScopeOp::Remove(block_key(f, b))),
        1 => (0u32..3, 0u32..16).prop_map(|(file, from)| ScopeOp::RemoveFile { file, from }),
        2 => (1..SLOTS, 0u64..8, prop::option::of(chaos()))
            .prop_map(|(scope, share, chaos)| ScopeOp::Add { scope, share, chaos }),
        1 => (1..SLOTS, 0u64..8).prop_map(|(scope, share)| ScopeOp::Share { scope, share }),
        1 => (1..SLOTS, 0..SLOTS).prop_map(|(scope, into)| ScopeOp::Drop { scope, into }),
        2 => (0..SLOTS, chaos()).prop_map(|(scope, chaos)| ScopeOp::Install { scope, chaos }),
    ]
}

/// Chaos plugins serving scopes of one cache: whatever they answer, no block is held by two
/// scopes, the scopes together never hold more than the cache, every resident block holds
/// its value, and every request is counted once; a scope's shed (a plugin asked to give up
/// blocks for another scope's insertion, with a key no block has) included.
fn run_scopes(capacity: u64, ops: &[ScopeOp]) -> Result<(), TestCaseError> {
    let mut cache: ScopedCache<u64> = ScopedCache::new(capacity, CoreConfig::default(), SLOTS);
    let (mut values, mut next, mut lookups) = (HashMap::new(), 0u64, 0u64);
    let mut plugins: Vec<StatusHandle> = Vec::new();
    let install = |cache: &mut ScopedCache<u64>,
                   plugins: &mut Vec<StatusHandle>,
                   scope: usize,
                   chaos: &Chaos| {
        let reach = cache.reach(cache.share(scope).unwrap_or(0));
        let Ok(plugin) = chaos.instantiate(reach) else {
            return;
        };
        plugins.push(plugin.status());
        let core = cache.core_mut(scope).expect("a scope");
        // Refused when the replay of the scope's blocks faults: the policy before serves.
        let _ = core.install_plugin(plugin, chaos.roles.set());
    };
    for op in ops {
        match *op {
            ScopeOp::Request { scope, key } => {
                let scope = if cache.core(scope).is_some() {
                    scope
                } else {
                    0
                };
                let was = cache.contains(key);
                next += 1;
                let v = next;
                let hit = cache.request(scope, key, || v);
                lookups += 1;
                prop_assert_eq!(hit, was);
                if !hit && cache.contains(key) {
                    values.insert(key, v);
                }
            }
            ScopeOp::Remove(key) => {
                cache.remove(key);
                prop_assert!(!cache.contains(key));
            }
            ScopeOp::RemoveFile { file, from } => {
                cache.remove_file(file, from);
                for (_, c) in cache.cores() {
                    prop_assert!(
                        c.resident_keys()
                            .iter()
                            .all(|k| (k >> 32) as u32 != file || (*k as u32) < from)
                    );
                }
            }
            ScopeOp::Add {
                scope,
                share,
                ref chaos,
            } => {
                if cache.add_scope(scope, share).is_ok()
                    && let Some(chaos) = chaos
                {
                    install(&mut cache, &mut plugins, scope, chaos);
                }
            }
            ScopeOp::Share { scope, share } => {
                let _ = cache.set_share(scope, share);
            }
            ScopeOp::Drop { scope, into } => {
                let _ = cache.remove_scope(scope, into, "dropped");
            }
            ScopeOp::Install { scope, ref chaos } => {
                if cache.core(scope).is_some() {
                    install(&mut cache, &mut plugins, scope, chaos);
                }
            }
        }
        let mut total = 0;
        let mut seen = std::collections::HashSet::new();
        for (_, c) in cache.cores() {
            for k in c.resident_keys() {
                prop_assert!(seen.insert(k), "block {:#x} held twice", k);
                prop_assert_eq!(c.peek(k), values.get(&k), "block {:#x}", k);
            }
            total += c.len() as u64;
        }
        prop_assert!(
            total <= capacity,
            "{} blocks in a cache of {}",
            total,
            capacity
        );
        let s = cache.stats();
        prop_assert_eq!(s.hits + s.misses, lookups);
        for p in &plugins {
            if p.state() == PluginState::Failed {
                let e = p.error().unwrap_or_default();
                prop_assert!(names_a_hook(&e), "fault: {}", e);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn scopes_keep_their_invariants_whatever_their_plugins_answer(
        capacity in 1u64..16,
        ops in prop::collection::vec(scope_op(), 1..300),
    ) {
        run_scopes(capacity, &ops)?;
    }
}

/// [`chaos_wat`] whose settings are its defaults (a governor's candidates get no parameters).
fn chaos_with_defaults(chaos: &Chaos) -> String {
    let wat = chaos_wat(chaos.set, chaos.seed_export, chaos.roles.data());
    let defaults = [
        (
            "(global $s (mut i64) (i64.const 1))",
            format!(
                "(global $s (mut i64) (i64.const {}))",
                chaos.seed.max(1) as i64
            ),
        ),
        (
            "(global $batch (mut i32) (i32.const 4))",
            format!("(global $batch (mut i32) (i32.const {}))", chaos.batch),
        ),
        (
            "(global $ahead (mut i32) (i32.const 0))",
            format!("(global $ahead (mut i32) (i32.const {}))", chaos.ahead),
        ),
        (
            "(global $hints (mut i32) (i32.const 0))",
            format!("(global $hints (mut i32) (i32.const {}))", chaos.hints),
        ),
        (
            "(global $marks (mut i32) (i32.const 0))",
            format!(
                "(global $marks (mut i32) (i32.const {}))",
                u32::from(chaos.marks)
            ),
        ),
        (
            "(global $rate (mut i64) (i64.const 4))",
            format!("(global $rate (mut i64) (i64.const {}))", chaos.rate),
        ),
    ];
    defaults.iter().fold(wat, |wat, (old, new)| {
        assert!(wat.contains(old), "chaos.wat declares {old}");
        wat.replace(old, new)
    })
}

/// A request or an invalidation, for the properties below.
#[derive(Clone, Debug)]
enum CoreOp {
    Request { file: u32, block: u32 },
    Remove { file: u32, block: u32 },
    RemoveFile { file: u32, from: u32 },
}

fn core_op() -> impl Strategy<Value = CoreOp> {
    prop_oneof![
        16 => (0u32..3, 0u32..16).prop_map(|(file, block)| CoreOp::Request { file, block }),
        2 => (0u32..3, 0u32..16).prop_map(|(file, block)| CoreOp::Remove { file, block }),
        1 => (0u32..3, 0u32..16).prop_map(|(file, from)| CoreOp::RemoveFile { file, from }),
    ]
}

impl CoreOp {
    /// Applies it; a block entering gets the next of `next`, kept in `values`.
    fn apply(&self, core: &mut CacheCore<u64>, values: &mut HashMap<u64, u64>, next: &mut u64) {
        match *self {
            CoreOp::Request { file, block } => {
                let key = block_key(file, block);
                *next += 1;
                let v = *next;
                if !core.request(key, || v) && core.contains(key) {
                    values.insert(key, v);
                }
            }
            CoreOp::Remove { file, block } => {
                core.remove(block_key(file, block));
            }
            CoreOp::RemoveFile { file, from } => {
                core.remove_file(file, from);
            }
        }
    }
}

#[derive(Clone, Debug)]
enum GovernorOp {
    Core(CoreOp),
    Tick,
    /// A chaos plugin dropped over the governor (an operator's choice: the governor no longer
    /// decides eviction).
    Operator(Chaos),
}

fn governor_op() -> impl Strategy<Value = GovernorOp> {
    prop_oneof![
        19 => core_op().prop_map(GovernorOp::Core),
        3 => Just(GovernorOp::Tick),
        1 => chaos().prop_map(GovernorOp::Operator),
    ]
}

/// Chaos plugins as a governor's candidates (shadows, then the cache following one, voting
/// between two, or nobody), with invalidations and an operator's plugin dropped over it,
/// and the governor removed at the end: the host's governor bookkeeping holds after every
/// step (`check_governor_invariants`: the cache within capacity, every resident block in its
/// holders' buckets), every resident block holds its value.
fn run_governor(a: &Chaos, b: &Chaos, ops: &[GovernorOp]) -> Result<(), TestCaseError> {
    const CAPACITY: u64 = 8;
    let (a, b) = (
        compile(&chaos_with_defaults(a)),
        compile(&chaos_with_defaults(b)),
    );
    let resolve = |name: &str| match name {
        "a" => Ok(a.clone()),
        "b" => Ok(b.clone()),
        _ => Err(format!("no candidate {name}")),
    };
    let mut core: CacheCore<u64> = CacheCore::new(CAPACITY, CoreConfig::default());
    core.install_governor(
        compile(&weighing_governor(("a", "b"), CYCLING))
            .instantiate(&[], CAPACITY)
            .unwrap(),
        &resolve,
        0,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut values = HashMap::new();
    let mut next = 0u64;
    for op in ops {
        match *op {
            GovernorOp::Core(ref op) => op.apply(&mut core, &mut values, &mut next),
            GovernorOp::Tick => core.governor_tick(),
            GovernorOp::Operator(ref chaos) => {
                if let Ok(p) = chaos.instantiate(CAPACITY) {
                    let _ = core.install_plugin(p, chaos.roles.set());
                }
            }
        }
        if let Err(e) = core.check_governor_invariants() {
            prop_assert!(false, "after {:?}: {}", op, e);
        }
        for k in core.resident_keys() {
            prop_assert_eq!(core.peek(k), values.get(&k), "block {:#x}", k);
        }
    }
    core.remove_governor();
    for b in 0..3 * CAPACITY as u32 {
        let key = block_key(9, b);
        core.request(key, || 0);
        prop_assert!(core.len() as u64 <= CAPACITY);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn a_governor_over_chaos_candidates_keeps_its_bookkeeping(
        a in chaos(),
        b in chaos(),
        ops in prop::collection::vec(governor_op(), 1..300),
    ) {
        run_governor(&a, &b, &ops)?;
    }
}

/// The chaos governor (`tests/fixtures/chaos/governor.wat`), compiled once per tier.
fn chaos_governor() -> CompiledPlugin {
    compile_once(&with_prelude(include_str!("fixtures/chaos/governor.wat")))
}

#[derive(Clone, Debug)]
enum ChaosGovernorOp {
    Core(CoreOp),
    /// The prefetch plan after an access to `block` of `file` (16 blocks long), inserted.
    Prefetch {
        file: u32,
        block: u32,
    },
    Tick,
    /// The spares the governor's admission and prefetch candidates lack, made (outside the
    /// lock, in a mount) and handed back.
    Spares,
    /// A chaos plugin dropped over the governor for the roles it picks.
    Operator(Chaos),
}

fn chaos_governor_op() -> impl Strategy<Value = ChaosGovernorOp> {
    prop_oneof![
        16 => core_op().prop_map(ChaosGovernorOp::Core),
        2 => (0u32..3, 0u32..16).prop_map(|(file, block)| ChaosGovernorOp::Prefetch { file, block }),
        4 => Just(ChaosGovernorOp::Tick),
        2 => Just(ChaosGovernorOp::Spares),
        1 => chaos().prop_map(ChaosGovernorOp::Operator),
    ]
}

/// A governor answering at random over chaos candidates for every role (two for eviction,
/// one each for admission and prefetch), with requests, prefetches, invalidations, spares
/// made and handed back, and an operator's plugin dropped over it: the host answers the
/// governor's calls as the ABI says (the governor checks what it can and traps on a wrong
/// answer), its bookkeeping holds, every resident block holds its value, no role is served
/// by a plugin that faulted, and every fault is one line.
fn run_chaos_governor(
    seed: u64,
    rate: u32,
    candidates: &[Chaos; 4],
    ops: &[ChaosGovernorOp],
) -> Result<(), TestCaseError> {
    const CAPACITY: u64 = 8;
    // Candidate i is `ci` (the chaos module of its set; admission and prefetch hooks for
    // the last two) with its parameters in its spec.
    let data = |i: usize| i >= 2 || candidates[i].roles.data();
    let specs: [String; 4] = std::array::from_fn(|i| {
        let c = &candidates[i];
        format!(
            "c{i}:seed={};batch={};ahead={};hints={};rate={}",
            c.seed, c.batch, c.ahead, c.hints, c.rate
        )
    });
    let resolve = |name: &str| {
        let i = match name {
            "c0" => 0,
            "c1" => 1,
            "c2" => 2,
            "c3" => 3,
            _ => return Err(format!("no candidate {name}")),
        };
        let c = &candidates[i];
        Ok(module(c.set, c.seed_export, data(i)))
    };
    let (seed, rate) = (seed.to_string(), rate.to_string());
    let params = [
        ("e0", specs[0].as_str()),
        ("e1", &specs[1]),
        ("a", &specs[2]),
        ("p", &specs[3]),
        ("seed", &seed),
        ("rate", &rate),
    ];
    let mut run = Run::new(CAPACITY);
    run.core
        .install_governor(
            chaos_governor().instantiate(&params, CAPACITY).unwrap(),
            &resolve,
            0,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let governor = run.core.governor_status().expect("a governor");
    for op in ops {
        match *op {
            ChaosGovernorOp::Core(ref op) => {
                run.lookups += matches!(op, CoreOp::Request { .. }) as u64;
                op.apply(&mut run.core, &mut run.values, &mut run.next_value);
            }
            ChaosGovernorOp::Prefetch { file, block } => {
                let hit = run.core.contains(block_key(file, block));
                for r in run.core.prefetch_plan(file, block, 16, hit) {
                    prop_assert!(r.start + r.len <= 16);
                    for b in r.start..r.start + r.len {
                        run.insert(block_key(file, b as u32), true)?;
                    }
                }
            }
            ChaosGovernorOp::Tick => run.core.governor_tick(),
            ChaosGovernorOp::Spares => {
                let wanted = run.core.spare_requests();
                if !wanted.is_empty() {
                    run.core.give_spares(wanted.make());
                }
            }
            ChaosGovernorOp::Operator(ref chaos) => run.install(chaos)?,
        }
        if let Err(e) = run.core.check_governor_invariants() {
            prop_assert!(false, "after {:?}: {}", op, e);
        }
        run.check_values()?;
        if governor.state() == PluginState::Failed {
            let e = governor.error().unwrap_or_default();
            prop_assert!(
                e.starts_with("kplug_tick: ") && !e.contains("divide by zero") && !e.contains('\n'),
                "governor: {}",
                e
            );
        }
        for c in run.core.candidates() {
            if let Some(e) = c.error {
                prop_assert!(
                    !e.contains("divide by zero") && !e.contains('\n'),
                    "{}: {}",
                    c.spec,
                    e
                );
            }
        }
    }
    run.core.remove_governor();
    for block in 0..3 * CAPACITY as u32 {
        let op = CoreOp::Request { file: 9, block };
        op.apply(&mut run.core, &mut run.values, &mut run.next_value);
        run.check_values()?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn a_governor_answering_at_random_over_chaos_candidates_of_every_role(
        seed in any::<u64>(),
        rate in prop::sample::select(vec![3u32, 20, 1000]),
        candidates in [chaos(), chaos(), chaos(), chaos()],
        ops in prop::collection::vec(chaos_governor_op(), 1..300),
    ) {
        run_chaos_governor(seed, rate, &candidates, &ops)?;
    }
}

#[derive(Clone, Debug)]
enum SplitOp {
    Core(CoreOp),
    /// A snapshot taken for an install and a chaos plugin prepared from it (as a mount's swap
    /// does, outside the cache's lock).
    Prepare(Chaos),
    /// The oldest (or newest) preparation waiting is installed.
    Install {
        newest: bool,
    },
}

fn split_op() -> impl Strategy<Value = SplitOp> {
    prop_oneof![
        19 => core_op().prop_map(SplitOp::Core),
        2 => chaos().prop_map(SplitOp::Prepare),
        2 => any::<bool>().prop_map(|newest| SplitOp::Install { newest }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Chaos plugins prepared from snapshots and installed later, in any order, with the
    /// cache changing between (the install tells each what came and went since its
    /// snapshot): a refused preparation or install leaves the policy serving before, and the
    /// core's invariants hold after every step.
    #[test]
    fn installs_prepared_from_snapshots_keep_the_invariants(
        capacity in 1u64..12,
        ops in prop::collection::vec(split_op(), 1..300),
    ) {
        let mut run = Run::new(capacity);
        let mut waiting = std::collections::VecDeque::new();
        for op in &ops {
            match *op {
                SplitOp::Core(ref op) => {
                    run.lookups += matches!(op, CoreOp::Request { .. }) as u64;
                    op.apply(&mut run.core, &mut run.values, &mut run.next_value);
                }
                SplitOp::Prepare(ref chaos) => {
                    let Ok(plugin) = chaos.instantiate(capacity) else { continue };
                    let status = plugin.status();
                    let snapshot = run.core.snapshot_for_install();
                    match Prepared::from_snapshot(plugin, chaos.roles.set(), snapshot) {
                        Ok(p) => waiting.push_back((p, status)),
                        Err(e) => {
                            let e = e.to_string();
                            prop_assert!(
                                e.starts_with("plugin faulted while replaying resident blocks: kplug_evict_"),
                                "{}", e
                            );
                        }
                    }
                }
                SplitOp::Install { newest } => {
                    let next = if newest { waiting.pop_back() } else { waiting.pop_front() };
                    if let Some((p, status)) = next {
                        let before = run.core.policy(Role::Eviction).name;
                        match run.core.install_prepared(p) {
                            Ok(()) => run.plugins.push(status),
                            Err(e) => {
                                // A fault telling it what changed since: counted, the policy
                                // before serves on.
                                run.plugins.push(status);
                                prop_assert!(e.to_string().contains("kplug_evict_"), "{}", e);
                                prop_assert_eq!(run.core.policy(Role::Eviction).name, before);
                            }
                        }
                    }
                }
            }
            run.check()?;
        }
    }
}
