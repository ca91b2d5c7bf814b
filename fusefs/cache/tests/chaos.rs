//! A plugin answering at random: whatever an eviction plugin answers (by handle, ABI
//! 1.8-1.10; batched by key, 1.4 and 1.9; one event a call, 1.0), the host keeps its own
//! invariants. `CacheCore` never holds more blocks than its capacity,
//! every resident block holds the value inserted for it, a block just missed is resident,
//! the counters add up, and a plugin either serves or has failed with one fault naming its
//! hook, after which the built-in serves; nothing panics.
//!
//! The plugin (`CHAOS`, WAT: one module per hook set, its settings parameters) is mostly honest, so that runs get far: a
//! FIFO over a ring of the keys it was given, learning the misses the host took ahead of
//! a call from the blocks it named. Its answers come from a xorshift generator seeded by the
//! case, and at a rate the case picks it departs from the contract: more victims than needed,
//! fewer, a key not resident, the incoming key, a key twice, a random handle, blocks named
//! ahead that are not its next victims or not resident, counts past the declared or the
//! buffer, a seed that takes none or too many, a trap. Some departures are legal (a handle
//! is the plugin's to choose; a named block is any resident block) and must never fault;
//! the rest must fault, never hurt the host. Fixed hostile fixtures with exact faults are in
//! `hostile.rs`; this finds what no one wrote a fixture for.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::*;
use kplug_abi::{Role, RoleSet, block_key};
use kplug_cache::{BuiltinEviction, CacheCore, CoreConfig, Insert, ScopedCache};
use kplug_engine::{CompiledPlugin, LoadError, Plugin, PluginState, StatusHandle};
use proptest::prelude::*;

/// The chaos plugin's WAT. Memory: the key buffer at 0 (2 KiB; the seed's handles from 1024),
/// the ring's keys at 4096 (1024 slots), their live flags at 16384, the blocks named ahead at
/// 20480 (64 keys), parameter strings from 24576. Its parameters (decimal): `seed`, `batch`
/// (its hit batch), `ahead` (its `kplug_evict_ahead`), `rate` (a departure once in `rate` of
/// its chances); so one compiled module serves every case. `{SEED_EXPORT}`: its
/// `kplug_evict_seed`, or nothing.
const CHAOS: &str = r#"
(module
  (memory (export "memory") 1)
  (global $s (mut i64) (i64.const 1))
  (global $batch (mut i32) (i32.const 4))
  (global $ahead (mut i32) (i32.const 0))
  (global $rate (mut i64) (i64.const 4))
  (global $bump (mut i32) (i32.const 24576))
  (global $head (mut i32) (i32.const 0))
  (global $tail (mut i32) (i32.const 0))
  ;; Blocks named ahead by the last answer, and how many of them the host has taken.
  (global $named (mut i32) (i32.const 0))
  (global $taken (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const 0x1000a))
  (func (export "kplug_alloc") (param $len i32) (result i32) (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.add (local.get $len) (i32.const 8))))
    (local.get $p))
  (func $decimal (param $p i32) (param $len i32) (result i64) (local $v i64) (local $i i32)
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
        (i64.extend_i32_u (i32.sub (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 48)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $v))
  ;; Parameters by their first letter: seed, batch, ahead, rate.
  (func (export "kplug_set_param") (param $kp i32) (param $kl i32) (param $vp i32) (param $vl i32) (result i32)
    (local $v i64) (local $c i32)
    (local.set $v (call $decimal (local.get $vp) (local.get $vl)))
    (local.set $c (i32.load8_u (local.get $kp)))
    (if (i32.eq (local.get $c) (i32.const 115))
      (then (global.set $s (select (local.get $v) (i64.const 1) (i64.ne (local.get $v) (i64.const 0))))))
    (if (i32.eq (local.get $c) (i32.const 98)) (then (global.set $batch (i32.wrap_i64 (local.get $v)))))
    (if (i32.eq (local.get $c) (i32.const 97)) (then (global.set $ahead (i32.wrap_i64 (local.get $v)))))
    (if (i32.eq (local.get $c) (i32.const 114)) (then (global.set $rate (local.get $v))))
    (i32.const 0))
  (func $rnd (result i64)
    (global.set $s (i64.xor (global.get $s) (i64.shl (global.get $s) (i64.const 13))))
    (global.set $s (i64.xor (global.get $s) (i64.shr_u (global.get $s) (i64.const 7))))
    (global.set $s (i64.xor (global.get $s) (i64.shl (global.get $s) (i64.const 17))))
    (global.get $s))
  ;; True once in `n` (n >= 1).
  (func $once_in (param $n i64) (result i32)
    (i64.eqz (i64.rem_u (call $rnd) (local.get $n))))
  ;; A departure from the contract: once in `rate`.
  (func $odd (result i32) (call $once_in (global.get $rate)))
  (func $at (param $i i32) (result i32)
    (i32.and (local.get $i) (i32.const 1023)))
  (func $key (param $i i32) (result i64)
    (i64.load (i32.add (i32.const 4096) (i32.shl (call $at (local.get $i)) (i32.const 3)))))
  (func $live (param $i i32) (result i32)
    (i32.load8_u (i32.add (i32.const 16384) (call $at (local.get $i)))))
  (func $set_live (param $i i32) (param $v i32)
    (i32.store8 (i32.add (i32.const 16384) (call $at (local.get $i))) (local.get $v)))
  ;; A key of the test's key space (files 0..3, blocks 0..24): resident or not.
  (func $any_key (result i64) (local $r i64)
    (local.set $r (call $rnd))
    (i64.or
      (i64.shl (i64.rem_u (local.get $r) (i64.const 3)) (i64.const 32))
      (i64.rem_u (i64.shr_u (local.get $r) (i64.const 8)) (i64.const 24))))
  ;; Starts tracking `k` at the ring's tail; its slot.
  (func $track (param $k i64) (result i32) (local $slot i32)
    (if (i32.ge_u (i32.sub (global.get $tail) (global.get $head)) (i32.const 1023))
      (then (global.set $head (i32.sub (global.get $tail) (i32.const 1023)))))
    (local.set $slot (call $at (global.get $tail)))
    (i64.store (i32.add (i32.const 4096) (i32.shl (local.get $slot) (i32.const 3))) (local.get $k))
    (call $set_live (local.get $slot) (i32.const 1))
    (global.set $tail (i32.add (global.get $tail) (i32.const 1)))
    (local.get $slot))
  ;; Stops tracking `k` (its oldest live slot), if tracked.
  (func $untrack (param $k i64) (local $i i32)
    (local.set $i (global.get $head))
    (block $end (loop $scan
      (br_if $end (i32.ge_u (local.get $i) (global.get $tail)))
      (if (i32.and (call $live (local.get $i)) (i64.eq (call $key (local.get $i)) (local.get $k)))
        (then (call $set_live (local.get $i) (i32.const 0)) (br $end)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan))))
  ;; The oldest tracked key, no longer tracked (FIFO's victim; $found set); a random key if
  ;; none ($found clear).
  (global $found (mut i32) (i32.const 0))
  (func $pop (result i64) (local $i i32)
    (global.set $found (i32.const 1))
    (block $none (loop $skip
      (br_if $none (i32.ge_u (global.get $head) (global.get $tail)))
      (local.set $i (global.get $head))
      (global.set $head (i32.add (global.get $head) (i32.const 1)))
      (br_if $skip (i32.eqz (call $live (local.get $i))))
      (call $set_live (local.get $i) (i32.const 0))
      (return (call $key (local.get $i)))))
    (global.set $found (i32.const 0))
    (call $any_key))
  ;; The handle of a block entering at `slot`: the slot, or any value (the plugin's choice).
  (func $handle (param $slot i32) (result i64)
    (if (result i64) (call $once_in (i64.const 3))
      (then (i64.and (call $rnd) (i64.const 0xffffffff)))
      (else (i64.extend_i32_u (i32.or (i32.const 0x5a5a0000) (local.get $slot))))))
  ;; Takes the `n` entries of the buffer: hits (ignored) and misses the host took ahead
  ;; (1.10: the next block named was evicted and the key after the entry entered).
  (func $take (param $n i32) (local $i i32) (local $e i64)
    (block $end (loop $l
      (br_if $end (i32.ge_s (local.get $i) (local.get $n)))
      (local.set $e (i64.load (i32.shl (local.get $i) (i32.const 3))))
      (if (i64.lt_s (local.get $e) (i64.const 0))
        (then
          (if (i32.lt_u (global.get $taken) (global.get $named))
            (then
              (call $untrack (i64.load (i32.add (i32.const 20480)
                (i32.shl (global.get $taken) (i32.const 3)))))
              (global.set $taken (i32.add (global.get $taken) (i32.const 1))))
            ;; More misses than named: the host's error, told apart from a departure.
            (else (drop (i32.div_u (i32.const 1) (i32.const 0)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (drop (call $track (i64.load (i32.shl (local.get $i) (i32.const 3)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  ;; Writes up to `n` victims from the buffer's entry 0, honest unless odd; past the first
  ;; `need`, only while it tracks blocks. How many it wrote.
  (func $victims (param $n i32) (param $need i32) (param $k i64) (result i32)
    (local $i i32) (local $v i64)
    (block $end (loop $l
      (br_if $end (i32.ge_s (local.get $i) (local.get $n)))
      (local.set $v (call $pop))
      (br_if $end (i32.and (i32.ge_s (local.get $i) (local.get $need))
        (i32.eqz (global.get $found))))
      (if (call $odd) (then
        (local.set $v (if (result i64) (call $once_in (i64.const 3))
          (then (local.get $k))
          (else (if (result i64) (i32.and (i32.gt_s (local.get $i) (i32.const 0)) (call $once_in (i64.const 2)))
            (then (i64.load (i32.const 0)))
            (else (call $any_key))))))))
      (i64.store (i32.shl (local.get $i) (i32.const 3)) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $i))
  {SET}
)"#;

/// The chaos plugin's hooks by handle (1.8; 1.10 with `ahead` > 0; 1.9 with `{SEED_EXPORT}`).
const BY_HANDLE: &str = r#"
  (func (export "kplug_evict_buf") (result i32) (i32.const 0))
  (func (export "kplug_evict_hit_batch") (result i32) (global.get $batch))
  (func (export "kplug_evict_ahead") (result i32) (global.get $ahead))
  {SEED_EXPORT}
  (func (export "kplug_evict_handle_hits") (param $n i32) (result i32)
    (call $take (local.get $n))
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable))
    ;; Victims while taking hits: none, or one, or (odd) past the buffer.
    (if (call $once_in (i64.const 4)) (then
      (return (select (i32.const 300)
        (call $victims (i32.const 1) (i32.const 0) (i64.const -1))
        (i32.and (call $odd) (call $once_in (i64.const 8)))))))
    (i32.const 0))
  (func (export "kplug_evict_handle_miss") (param $hits i32) (param $k i64) (param $need i32) (result i64)
    (local $n i32) (local $a i32) (local $i i32) (local $j i32) (local $h i64) (local $v i64)
    (call $take (local.get $hits))
    (global.set $named (i32.const 0))
    (global.set $taken (i32.const 0))
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable))
    ;; Victims: as many as needed, or one or two more; odd: one fewer.
    (local.set $n (local.get $need))
    (if (call $once_in (i64.const 6))
      (then (local.set $n (i32.add (local.get $n) (i32.wrap_i64 (i64.add (i64.const 1)
        (i64.rem_u (call $rnd) (i64.const 2))))))))
    (if (i32.and (i32.gt_s (local.get $need) (i32.const 0)) (call $odd))
      (then (local.set $n (i32.sub (local.get $need) (i32.const 1)))))
    (local.set $n (call $victims (local.get $n) (local.get $need) (local.get $k)))
    (local.set $h (call $handle (call $track (local.get $k))))
    ;; Named ahead (only after a miss that made room): the next tracked blocks in order, or
    ;; (odd) any key of the key space.
    (if (i32.and (i32.gt_s (local.get $need) (i32.const 0)) (i32.gt_s (global.get $ahead) (i32.const 0)))
      (then
        (local.set $a (i32.wrap_i64 (i64.rem_u (call $rnd)
          (i64.extend_i32_u (i32.add (global.get $ahead) (i32.const 1))))))
        (local.set $i (global.get $head))
        (block $end (loop $l
          (br_if $end (i32.ge_s (local.get $j) (local.get $a)))
          (br_if $end (i32.ge_s (i32.add (local.get $n) (local.get $j)) (i32.const 256)))
          (if (call $odd)
            (then (local.set $v (call $any_key)))
            (else
              (block $found (loop $skip
                (br_if $end (i32.ge_u (local.get $i) (global.get $tail)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $found (call $live (i32.sub (local.get $i) (i32.const 1))))
                (br $skip)))
              (local.set $v (call $key (i32.sub (local.get $i) (i32.const 1))))))
          (i64.store (i32.shl (i32.add (local.get $n) (local.get $j)) (i32.const 3)) (local.get $v))
          (i64.store (i32.add (i32.const 20480) (i32.shl (local.get $j) (i32.const 3))) (local.get $v))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $a (local.get $j))
        (global.set $named (local.get $a))
        ;; Odd: more named than declared.
        (if (i32.and (call $odd) (call $once_in (i64.const 4)))
          (then (local.set $a (i32.add (global.get $ahead) (i32.const 1)))))))
    ;; Odd: more victims than the buffer holds.
    (if (i32.and (call $odd) (call $once_in (i64.const 8)))
      (then (local.set $n (i32.const 257))))
    (i64.or (i64.shl (local.get $h) (i64.const 32))
      (i64.extend_i32_u (i32.or (i32.shl (local.get $a) (i32.const 16)) (local.get $n)))))
  (func (export "kplug_evict_handle_remove") (param $k i64) (param $h i32)
    (call $untrack (local.get $k)))
"#;

/// The chaos plugin's batched hooks by key (1.4; 1.9 with `{SEED_EXPORT}`). Its
/// `kplug_evict_ahead`, beside this set, is ignored: it may answer any count.
const BY_KEY: &str = r#"
  (func (export "kplug_evict_buf") (result i32) (i32.const 0))
  (func (export "kplug_evict_hit_batch") (result i32) (global.get $batch))
  (func (export "kplug_evict_ahead") (result i32) (i32.wrap_i64 (call $rnd)))
  {SEED_EXPORT}
  (func (export "kplug_evict_hits") (param $n i32) (result i32)
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable))
    (if (call $once_in (i64.const 4)) (then
      (return (select (i32.const 300)
        (call $victims (i32.const 1) (i32.const 0) (i64.const -1))
        (i32.and (call $odd) (call $once_in (i64.const 8)))))))
    (i32.const 0))
  (func (export "kplug_evict_miss") (param $k i64) (param $need i32) (result i32)
    (local $n i32)
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable))
    (local.set $n (local.get $need))
    (if (call $once_in (i64.const 6))
      (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
    (if (i32.and (i32.gt_s (local.get $need) (i32.const 0)) (call $odd))
      (then (local.set $n (i32.sub (local.get $need) (i32.const 1)))))
    (local.set $n (call $victims (local.get $n) (local.get $need) (local.get $k)))
    (drop (call $track (local.get $k)))
    (select (i32.const 257) (local.get $n) (i32.and (call $odd) (call $once_in (i64.const 8)))))
  (func (export "kplug_evict_remove") (param $k i64)
    (call $untrack (local.get $k)))
"#;

/// The chaos plugin's hooks one event a call (1.0): `kplug_evict_victim` answers its oldest
/// block, or (odd) another key or a trap.
const PER_EVENT: &str = r#"
  (func (export "kplug_evict_insert") (param $k i64)
    (drop (call $track (local.get $k))))
  (func (export "kplug_evict_access") (param $k i64)
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable)))
  (func (export "kplug_evict_remove") (param $k i64)
    (call $untrack (local.get $k)))
  (func (export "kplug_evict_victim") (result i64) (local $v i64)
    (if (i32.and (call $odd) (call $once_in (i64.const 8))) (then unreachable))
    (local.set $v (call $pop))
    (if (result i64) (call $odd)
      (then (select (i64.const -1) (call $any_key) (call $once_in (i64.const 4))))
      (else (local.get $v))))
"#;

/// Which set of eviction hooks the chaos plugin exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    ByHandle,
    ByKey,
    PerEvent,
}

/// `kplug_evict_seed` (1.9) for [`CHAOS`]: takes the keys (odd: fewer, none, or more than it
/// was given), gives each its handle, and names no victim (odd: one).
const SEED_EXPORT: &str = r#"
  (func (export "kplug_evict_seed") (param $n i32) (result i64)
    (local $t i32) (local $i i32) (local $v i32)
    (local.set $t (local.get $n))
    (if (call $once_in (i64.const 3))
      (then (local.set $t (i32.add (i32.const 1)
        (i32.wrap_i64 (i64.rem_u (call $rnd) (i64.extend_i32_u (local.get $n))))))))
    (if (call $odd) (then (local.set $t (select (i32.const 0) (i32.add (local.get $n) (i32.const 1))
      (call $once_in (i64.const 2))))))
    (block $end (loop $l
      (br_if $end (i32.ge_s (local.get $i) (select (local.get $t) (local.get $n) (i32.le_s (local.get $t) (local.get $n)))))
      (i32.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))
        (i32.wrap_i64 (call $handle (call $track (i64.load (i32.shl (local.get $i) (i32.const 3)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (if (call $odd) (then
      (local.set $v (call $victims (i32.const 1) (i32.const 1) (i64.const -1)))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $t)) (i64.const 32)) (i64.extend_i32_u (local.get $v))))
"#;

/// The chaos plugin for one case.
#[derive(Clone, Copy, Debug)]
struct Chaos {
    set: Set,
    seed: u64,
    batch: u32,
    ahead: u32,
    /// A departure from the contract once in `rate` of its chances.
    rate: u32,
    seed_export: bool,
}

impl Chaos {
    /// A new instance for a cache of `capacity` blocks (the module compiled once per tier).
    fn instantiate(&self, capacity: u64) -> Result<Plugin, LoadError> {
        let (seed, batch, ahead, rate) = (
            self.seed.to_string(),
            self.batch.to_string(),
            self.ahead.to_string(),
            self.rate.to_string(),
        );
        module(self.set, self.seed_export).instantiate(
            &[
                ("seed", &seed),
                ("batch", &batch),
                ("ahead", &ahead),
                ("rate", &rate),
            ],
            capacity,
        )
    }
}

/// The chaos module with hook set `set`, with or without `kplug_evict_seed` (batched sets
/// only), in the code [`compile`] gives.
fn module(set: Set, seed_export: bool) -> CompiledPlugin {
    type Key = (bool, Set, bool);
    static MODULES: Mutex<Vec<(Key, CompiledPlugin)>> = Mutex::new(Vec::new());
    let seed_export = seed_export && set != Set::PerEvent;
    let which = (baseline(), set, seed_export);
    let mut modules = MODULES.lock().unwrap();
    if let Some((_, m)) = modules.iter().find(|(w, _)| *w == which) {
        return m.clone();
    }
    let hooks = match set {
        Set::ByHandle => BY_HANDLE,
        Set::ByKey => BY_KEY,
        Set::PerEvent => PER_EVENT,
    };
    let seed = if seed_export { SEED_EXPORT } else { "" };
    let m = compile(&CHAOS.replace("{SET}", hooks).replace("{SEED_EXPORT}", seed));
    modules.push((which, m.clone()));
    m
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
        prop::sample::select(vec![4u32, 30, 1000]),
        any::<bool>(),
    )
        .prop_map(|(set, seed, batch, ahead, rate, seed_export)| Chaos {
            set,
            seed,
            batch,
            ahead,
            rate,
            seed_export,
        })
}

#[derive(Clone, Debug)]
enum Op {
    /// `request` of block `block` of file `file`.
    Request { file: u32, block: u32 },
    /// `get`, then (on a miss) a `request` of another block, then `insert` (a mount's path:
    /// the block read from the backend meanwhile).
    GetInsert { file: u32, block: u32, other: u32 },
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
        4 => (0u32..3, 0u32..24, 0u32..24)
            .prop_map(|(file, block, other)| Op::GetInsert { file, block, other }),
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
        let before = self.core.policy(Role::Eviction).name;
        match self
            .core
            .install_plugin(plugin, RoleSet::of(&[Role::Eviction]))
        {
            Ok(()) => self.plugins.push(status),
            // The replay of the resident blocks into it faulted: refused (a fault of the
            // core's), and the policy serving before serves on.
            Err(e) => {
                self.plugins.push(status);
                let e = e.to_string();
                prop_assert!(
                    e.starts_with("plugin faulted while replaying resident blocks: ")
                        && !e.contains('\n'),
                    "install refused: {}",
                    e
                );
                prop_assert_eq!(self.core.policy(Role::Eviction).name, before);
            }
        }
        Ok(())
    }

    fn value(&mut self, key: u64) -> u64 {
        self.next_value += 1;
        self.values.insert(key, self.next_value);
        self.next_value
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Request { file, block } => {
                let key = block_key(file, block);
                let was = self.core.contains(key);
                let v = self.next_value + 1;
                let hit = self.core.request(key, || v);
                self.lookups += 1;
                prop_assert_eq!(hit, was);
                // A miss enters; a hit may leave at once (a plugin may name any resident
                // block while taking hits, the one just hit included).
                if !hit {
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
                    let resident = self.core.contains(key);
                    let v = self.next_value + 1;
                    match self.core.insert(key, v) {
                        Insert::Inserted => {
                            prop_assert!(!resident);
                            self.value(key);
                        }
                        Insert::AlreadyResident => prop_assert!(resident),
                        r => prop_assert!(false, "insert of {key:#x}: {r:?}"),
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

    /// The host's invariants, whatever the plugin answered.
    fn check(&self) -> Result<(), TestCaseError> {
        let keys = self.core.resident_keys();
        prop_assert!(keys.len() as u64 <= self.core.capacity());
        prop_assert_eq!(keys.len(), self.core.len());
        for k in keys {
            prop_assert_eq!(self.core.peek(k), self.values.get(&k), "block {:#x}", k);
        }
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
                prop_assert!(
                    e.starts_with("kplug_evict_") && !e.contains('\n'),
                    "fault: {}",
                    e
                );
            }
        }
        Ok(())
    }
}

fn run(capacity: u64, first: &Chaos, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut run = Run {
        core: CacheCore::new(capacity, CoreConfig::default()),
        values: HashMap::new(),
        next_value: 0,
        plugins: Vec::new(),
        lookups: 0,
    };
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
/// serves every case without a fault, taking misses ahead when it names blocks.
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
            rate: u32::MAX,
            seed_export: i % 2 == 0,
        };
        let plugin = chaos.instantiate(6).unwrap();
        let status = plugin.status();
        let mut core: CacheCore<u64> = CacheCore::new(6, CoreConfig::default());
        core.install_plugin(plugin, RoleSet::of(&[Role::Eviction]))
            .unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64 ^ i as u64;
        let mut misses = 0;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = block_key((x % 3) as u32, ((x >> 8) % 24) as u32);
            if !core.request(key, || key ^ 0x5a) {
                misses += 1;
                assert!(core.contains(key));
            }
            assert!(core.peek(key).is_none_or(|v| *v == key ^ 0x5a));
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
        assert_eq!(core.stats().faults, 0);
        if set == Set::ByHandle && ahead > 0 && batch >= 3 {
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
    let oldest_on_hits = |take: &str| {
        format!(
            r#"
    (local $i i32)
    {take}
    (loop $skip
      (local.set $i (i32.and (global.get $head) (i32.const 1023)))
      (global.set $head (i32.add (global.get $head) (i32.const 1)))
      (br_if $skip (i32.eqz (i32.load8_u (i32.add (i32.const 16384) (local.get $i))))))
    (i32.store8 (i32.add (i32.const 16384) (local.get $i)) (i32.const 0))
    (i64.store (i32.const 0) (i64.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))))
    (return (i32.const 1))"#
        )
    };
    // By handle (1.8), whose removal traps on a handle it no longer tracks, and by key (1.4).
    for text in [
        handle_fifo(&[("{HITS}", &oldest_on_hits("(call $hits (local.get $n))"))]),
        batched_fifo(&[("{HITS}", &oldest_on_hits(""))]),
    ] {
        let plugin = compile(&text).instantiate(&[], 4).unwrap();
        let status = plugin.status();
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
        let s = core.stats();
        assert_eq!(
            (s.faults, s.evictions, s.invalidations),
            (0, 1, 0),
            "{:?}",
            status.error()
        );
        // With no hit waiting, an invalidation is told as before.
        assert_eq!(core.remove(1), Some(1));
        assert!(!core.request(5, || 5));
        assert_eq!(core.resident_keys(), vec![3, 2, 5]);
        let s = core.stats();
        assert_eq!(
            (s.faults, s.evictions, s.invalidations),
            (0, 1, 1),
            "{:?}",
            status.error()
        );
        // A truncation the same: the hit on 2 first, whose call names 3, then 2 and 5.
        assert!(core.request(2, || 2));
        assert_eq!(core.remove_file(0, 0), 2);
        assert_eq!(core.len(), 0);
        let s = core.stats();
        assert_eq!(
            (s.faults, s.evictions, s.invalidations),
            (0, 2, 3),
            "{:?}",
            status.error()
        );
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
        let _ = core.install_plugin(plugin, RoleSet::of(&[Role::Eviction]));
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
                prop_assert!(
                    e.starts_with("kplug_evict_") && !e.contains('\n'),
                    "fault: {}",
                    e
                );
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
