//! Shared helpers of the integration tests: an engine with short deadlines,
//! WAT fixture templates, and the policy .wasm files built once per run.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use kplug_abi::RoleSet;
use kplug_cache::{CacheCore, CoreConfig};
use kplug_engine::{CompiledPlugin, EngineConfig, Plugin, PluginEngine};

/// One engine per test binary (one ticker thread); init deadline 50 ms so
/// load-time timeouts are quick to test. It has the baseline compiler too ([`on_both_tiers`]).
pub fn engine() -> &'static PluginEngine {
    static E: OnceLock<PluginEngine> = OnceLock::new();
    E.get_or_init(|| {
        PluginEngine::new(EngineConfig {
            init_deadline_ticks: 50,
            baseline_tier: true,
            ..EngineConfig::default()
        })
        .expect("engine")
    })
}

thread_local! {
    /// Whether [`compile`] on this thread uses the baseline compiler (Winch).
    static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with [`compile`] giving optimized code (Cranelift), then baseline code (Winch, a
/// mount's first load of a module it never saw): the sandbox must hold on both.
pub fn on_both_tiers(f: impl Fn()) {
    for baseline in [false, true] {
        BASELINE.with(|b| b.set(baseline));
        f();
    }
    BASELINE.with(|b| b.set(false));
}

/// Whether [`compile`] on this thread gives baseline code (within [`on_both_tiers`]).
pub fn baseline() -> bool {
    BASELINE.with(|b| b.get())
}

/// The next number of a xorshift generator (never 0 from a nonzero state).
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{text}"))
}

pub fn compile(text: &str) -> CompiledPlugin {
    if BASELINE.with(|b| b.get()) {
        let c = engine()
            .compile_baseline("fixture", &wat(text))
            .expect("fixture compiles");
        assert_eq!(c.tier(), kplug_engine::CodeTier::Baseline);
        return c;
    }
    engine()
        .compile("fixture", &wat(text))
        .expect("fixture compiles")
}

/// [`compile`], once per text and tier in the test binary: a fixture many cases share (the
/// chaos modules, whose settings are parameters) is parsed and compiled only the first time.
pub fn compile_once(text: &str) -> CompiledPlugin {
    static COMPILED: std::sync::Mutex<Vec<((bool, String), CompiledPlugin)>> =
        std::sync::Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap();
    if let Some((_, m)) = compiled
        .iter()
        .find(|((b, t), _)| *b == baseline() && t == text)
    {
        return m.clone();
    }
    let m = compile(text);
    compiled.push(((baseline(), text.to_string()), m.clone()));
    m
}

pub fn load(text: &str, capacity: u64) -> Plugin {
    compile(text)
        .instantiate(&[], capacity)
        .expect("fixture loads")
}

pub fn core_with(plugin: Plugin, roles: RoleSet) -> CacheCore<()> {
    let mut core = CacheCore::new(plugin.capacity(), CoreConfig::default());
    core.install_plugin(plugin, roles).expect("install");
    core
}

/// A FIFO eviction plugin in WAT with hook bodies that can be prefixed with
/// hostile code: `{INSERT}`, `{ACCESS}`, `{REMOVE}`, `{VICTIM}` are inserted
/// at the start of the hooks, `{VERSION}` is the ABI word, `{EXTRA}` extra
/// module fields. Ring of 1024 keys at 0, valid bytes at 8192.
pub const FIFO_TEMPLATE: &str = r#"
(module
  (memory (export "memory") 1)
  (global $head (mut i32) (i32.const 0))
  (global $tail (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const {VERSION}))
  (func (export "kplug_evict_insert") (param $k i64)
    {INSERT}
    (i64.store (i32.shl (i32.and (global.get $tail) (i32.const 1023)) (i32.const 3)) (local.get $k))
    (i32.store8 (i32.add (i32.const 8192) (i32.and (global.get $tail) (i32.const 1023))) (i32.const 1))
    (global.set $tail (i32.add (global.get $tail) (i32.const 1))))
  (func (export "kplug_evict_access") (param $k i64)
    {ACCESS})
  (func (export "kplug_evict_remove") (param $k i64)
    (local $i i32)
    {REMOVE}
    (local.set $i (global.get $head))
    (block $end (loop $scan
      (br_if $end (i32.ge_u (local.get $i) (global.get $tail)))
      (if (i32.and
            (i64.eq (i64.load (i32.shl (i32.and (local.get $i) (i32.const 1023)) (i32.const 3))) (local.get $k))
            (i32.load8_u (i32.add (i32.const 8192) (i32.and (local.get $i) (i32.const 1023)))))
        (then (i32.store8 (i32.add (i32.const 8192) (i32.and (local.get $i) (i32.const 1023))) (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan))))
  (func (export "kplug_evict_victim") (result i64)
    (local $i i32)
    {VICTIM}
    (loop $skip
      (local.set $i (i32.and (global.get $head) (i32.const 1023)))
      (global.set $head (i32.add (global.get $head) (i32.const 1)))
      (br_if $skip (i32.eqz (i32.load8_u (i32.add (i32.const 8192) (local.get $i))))))
    (i64.load (i32.shl (local.get $i) (i32.const 3))))
  {EXTRA}
)"#;

/// Fills a template: `parts` are (placeholder, replacement); unlisted
/// placeholders become empty, `{VERSION}` defaults to 0x10000.
pub fn fill(template: &str, parts: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in parts {
        s = s.replace(k, v);
    }
    s = s.replace("{VERSION}", "0x10000");
    for k in [
        "{INSERT}", "{ACCESS}", "{REMOVE}", "{VICTIM}", "{EXTRA}", "{BODY}",
    ] {
        s = s.replace(k, "");
    }
    s
}

pub fn fifo(parts: &[(&str, &str)]) -> String {
    fill(FIFO_TEMPLATE, parts)
}

/// A FIFO serving eviction through the batched hooks of ABI 1.4: key buffer at 0 (256
/// keys), ring of 1024 keys at 4096, valid bytes at 16384. `{MISS}` and `{HITS}` prefix
/// `kplug_evict_miss` ($k $need; locals $n $i) and `kplug_evict_hits` ($n), `{BUF}` and
/// `{BATCH}` are the buffer address and hit batch (default 0 and 4), `{EXTRA}` extra fields.
pub const BATCHED_FIFO_TEMPLATE: &str = r#"
(module
  (memory (export "memory") 1)
  (global $head (mut i32) (i32.const 0))
  (global $tail (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const 0x10004))
  (func (export "kplug_evict_buf") (result i32) (i32.const {BUF}))
  (func (export "kplug_evict_hit_batch") (result i32) (i32.const {BATCH}))
  (func (export "kplug_evict_hits") (param $n i32) (result i32)
    {HITS}
    (i32.const 0))
  (func (export "kplug_evict_miss") (param $k i64) (param $need i32) (result i32)
    (local $n i32) (local $i i32)
    {MISS}
    (block $done (loop $pop
      (br_if $done (i32.ge_s (local.get $n) (local.get $need)))
      (loop $skip
        (local.set $i (i32.and (global.get $head) (i32.const 1023)))
        (global.set $head (i32.add (global.get $head) (i32.const 1)))
        (br_if $skip (i32.eqz (i32.load8_u (i32.add (i32.const 16384) (local.get $i))))))
      (i64.store (i32.shl (local.get $n) (i32.const 3))
        (i64.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $pop)))
    (i64.store (i32.add (i32.const 4096) (i32.shl (i32.and (global.get $tail) (i32.const 1023)) (i32.const 3))) (local.get $k))
    (i32.store8 (i32.add (i32.const 16384) (i32.and (global.get $tail) (i32.const 1023))) (i32.const 1))
    (global.set $tail (i32.add (global.get $tail) (i32.const 1)))
    (local.get $n))
  (func (export "kplug_evict_remove") (param $k i64)
    (local $i i32)
    (local.set $i (global.get $head))
    (block $end (loop $scan
      (br_if $end (i32.ge_u (local.get $i) (global.get $tail)))
      (if (i32.and
            (i64.eq (i64.load (i32.add (i32.const 4096) (i32.shl (i32.and (local.get $i) (i32.const 1023)) (i32.const 3)))) (local.get $k))
            (i32.load8_u (i32.add (i32.const 16384) (i32.and (local.get $i) (i32.const 1023)))))
        (then (i32.store8 (i32.add (i32.const 16384) (i32.and (local.get $i) (i32.const 1023))) (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan))))
  {EXTRA}
)"#;

/// [`BATCHED_FIFO_TEMPLATE`] filled.
pub fn batched_fifo(parts: &[(&str, &str)]) -> String {
    fill_batched(BATCHED_FIFO_TEMPLATE, parts)
}

/// A batched template filled: `parts`, then `{BUF}` 0, `{BATCH}` 4, the rest empty.
fn fill_batched(template: &str, parts: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in parts {
        s = s.replace(k, v);
    }
    s = s
        .replace("{BUF}", "0")
        .replace("{BATCH}", "4")
        .replace("{AHEAD}", "(i64.const 0)");
    for k in ["{MISS}", "{HITS}", "{EXTRA}"] {
        s = s.replace(k, "");
    }
    s
}

/// A FIFO serving eviction by handle (ABI 1.8), laid out as [`BATCHED_FIFO_TEMPLATE`]. A
/// block's handle is `0x5a5a0000 | its ring slot`; every handle the host passes back (hits,
/// removal) is checked: one naming no tracked block, or (removal) another key's, traps. So
/// a run without faults shows the host kept and returned each block's handle. `{MISS}` and
/// `{HITS}` prefix `kplug_evict_handle_miss` ($hits $k $need, whose bits 16-23 count the
/// coming requests' keys of 1.12; locals $n $i $slot, after the hits were taken) and `kplug_evict_handle_hits` ($n); `{AHEAD}` (an i64 expression, default
/// 0) is or-ed into the miss's answer, after the block entered (1.10: `a << 16` for `a` blocks
/// named ahead, which it writes after the `$n` victims); `{BUF}`, `{BATCH}` and `{EXTRA}` as
/// there.
pub const HANDLE_FIFO_TEMPLATE: &str = r#"
(module
  (memory (export "memory") 1)
  (global $head (mut i32) (i32.const 0))
  (global $tail (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const 0x10008))
  (func (export "kplug_evict_buf") (result i32) (i32.const {BUF}))
  (func (export "kplug_evict_hit_batch") (result i32) (i32.const {BATCH}))
  (func $check (param $h i32)
    (if (i32.ne (i32.and (local.get $h) (i32.const 0xffff0000)) (i32.const 0x5a5a0000))
      (then unreachable))
    (if (i32.eqz (i32.load8_u (i32.add (i32.const 16384) (i32.and (local.get $h) (i32.const 1023)))))
      (then unreachable)))
  (func $hits (param $n i32) (local $i i32)
    (block $end (loop $l
      (br_if $end (i32.ge_s (local.get $i) (local.get $n)))
      (call $check (i32.wrap_i64 (i64.load (i32.add (i32.const {BUF}) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func (export "kplug_evict_handle_hits") (param $n i32) (result i32)
    {HITS}
    (call $hits (local.get $n))
    (i32.const 0))
  (func (export "kplug_evict_handle_miss") (param $hits i32) (param $k i64) (param $need i32) (result i64)
    (local $n i32) (local $i i32) (local $slot i32)
    (call $hits (i32.and (local.get $hits) (i32.const 0xffff)))
    {MISS}
    (block $done (loop $pop
      (br_if $done (i32.ge_s (local.get $n) (local.get $need)))
      (loop $skip
        (local.set $i (i32.and (global.get $head) (i32.const 1023)))
        (global.set $head (i32.add (global.get $head) (i32.const 1)))
        (br_if $skip (i32.eqz (i32.load8_u (i32.add (i32.const 16384) (local.get $i))))))
      (i32.store8 (i32.add (i32.const 16384) (local.get $i)) (i32.const 0))
      (i64.store (i32.add (i32.const {BUF}) (i32.shl (local.get $n) (i32.const 3)))
        (i64.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $pop)))
    (local.set $slot (i32.and (global.get $tail) (i32.const 1023)))
    (i64.store (i32.add (i32.const 4096) (i32.shl (local.get $slot) (i32.const 3))) (local.get $k))
    (i32.store8 (i32.add (i32.const 16384) (local.get $slot)) (i32.const 1))
    (global.set $tail (i32.add (global.get $tail) (i32.const 1)))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.or (i32.const 0x5a5a0000) (local.get $slot))) (i64.const 32))
      (i64.or (i64.extend_i32_u (local.get $n)) {AHEAD})))
  (func (export "kplug_evict_handle_remove") (param $k i64) (param $h i32)
    (call $check (local.get $h))
    (if (i64.ne (local.get $k)
          (i64.load (i32.add (i32.const 4096) (i32.shl (i32.and (local.get $h) (i32.const 1023)) (i32.const 3)))))
      (then unreachable))
    (i32.store8 (i32.add (i32.const 16384) (i32.and (local.get $h) (i32.const 1023))) (i32.const 0)))
  {EXTRA}
)"#;

/// A hits hook's code naming the oldest block of [`BATCHED_FIFO_TEMPLATE`] or
/// [`HANDLE_FIFO_TEMPLATE`] its victim (forgotten, written at the buffer at 0) and returning 1;
/// its local `$i` is declared at the hook's start.
pub const NAME_OLDEST_ON_HITS: &str = r#"
    (loop $skip
      (local.set $i (i32.and (global.get $head) (i32.const 1023)))
      (global.set $head (i32.add (global.get $head) (i32.const 1)))
      (br_if $skip (i32.eqz (i32.load8_u (i32.add (i32.const 16384) (local.get $i))))))
    (i32.store8 (i32.add (i32.const 16384) (local.get $i)) (i32.const 0))
    (i64.store (i32.const 0) (i64.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))))
    (return (i32.const 1))"#;

/// [`HANDLE_FIFO_TEMPLATE`] filled.
pub fn handle_fifo(parts: &[(&str, &str)]) -> String {
    fill_batched(HANDLE_FIFO_TEMPLATE, parts)
}

/// An admission-only plugin whose `kplug_admit` body is `{BODY}` (params
/// $key $file $block, result i32).
pub const ADMIT_TEMPLATE: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "kplug_abi_version") (result i32) (i32.const {VERSION}))
  (func (export "kplug_admit") (param $key i64) (param $file i64) (param $block i64) (result i32)
    {BODY})
  {EXTRA}
)"#;

/// A prefetch-only plugin whose output array is at 1024 and whose
/// `kplug_prefetch` body is `{BODY}` (params $file $block $len $hit, result
/// i32 = number of ranges).
pub const PREFETCH_TEMPLATE: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "kplug_abi_version") (result i32) (i32.const {VERSION}))
  (func (export "kplug_prefetch_buf") (result i32) (i32.const 1024))
  (func (export "kplug_prefetch") (param $file i64) (param $block i64) (param $len i64) (param $hit i32) (result i32)
    {BODY})
  {EXTRA}
)"#;

fn policies_dir() -> PathBuf {
    manifest_dir().join("../../policies")
}

/// Target dir of policy builds: never the caller's (cargo's lock would
/// deadlock).
fn policy_target_dir() -> PathBuf {
    std::env::var_os("KPLUG_POLICY_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kplugfs-policy-target"))
}

/// The SDK-built LRU, built with `kplug_catalog::build_policy`.
pub fn sdk_lru_wasm() -> &'static [u8] {
    static W: OnceLock<Vec<u8>> = OnceLock::new();
    W.get_or_init(|| {
        let path = kplug_catalog::build_policy(&policies_dir().join("lru"), &policy_target_dir())
            .unwrap_or_else(|e| panic!("building policies/lru: {e}"));
        std::fs::read(path).expect("read lru wasm")
    })
}

/// A policy of `policies/` (its directory's name), built once per test binary.
pub fn policy_wasm(name: &'static str) -> &'static [u8] {
    static W: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, &'static [u8]>>> =
        OnceLock::new();
    let mut built = W.get_or_init(Default::default).lock().unwrap();
    built.entry(name).or_insert_with(|| {
        let path = kplug_catalog::build_policy(&policies_dir().join(name), &policy_target_dir())
            .unwrap_or_else(|e| panic!("building policies/{name}: {e}"));
        Vec::leak(std::fs::read(path).expect("read policy wasm"))
    })
}

/// The hand-written WAT LRU.
pub fn wat_lru_wasm() -> &'static [u8] {
    static W: OnceLock<Vec<u8>> = OnceLock::new();
    W.get_or_init(|| {
        wat::parse_file(policies_dir().join("lru-wat/lru.wat")).expect("lru.wat parses")
    })
}

/// The SDK LRU compiled once per test binary (compiling is slow in debug builds).
pub fn sdk_lru() -> &'static CompiledPlugin {
    static C: OnceLock<CompiledPlugin> = OnceLock::new();
    C.get_or_init(|| {
        engine()
            .compile("lru", sdk_lru_wasm())
            .expect("sdk lru compiles")
    })
}

/// The WAT LRU compiled once per test binary.
pub fn wat_lru() -> &'static CompiledPlugin {
    static C: OnceLock<CompiledPlugin> = OnceLock::new();
    C.get_or_init(|| {
        engine()
            .compile("lru-wat", wat_lru_wasm())
            .expect("wat lru compiles")
    })
}

/// The bytes of the SDK fixture `tests/fixtures/NAME`, built once per test binary.
pub fn fixture_wasm(name: &'static str) -> &'static [u8] {
    static W: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, &'static [u8]>>> =
        OnceLock::new();
    let mut built = W.get_or_init(Default::default).lock().unwrap();
    built.entry(name).or_insert_with(|| {
        let dir = manifest_dir().join("tests/fixtures").join(name);
        let path = kplug_catalog::build_policy(&dir, &policy_target_dir())
            .unwrap_or_else(|e| panic!("building the {name} fixture: {e}"));
        Vec::leak(std::fs::read(path).expect("read fixture wasm"))
    })
}

/// The SDK fixture using every role (tests/fixtures/sdk-roles), compiled once.
pub fn sdk_roles() -> &'static CompiledPlugin {
    static C: OnceLock<CompiledPlugin> = OnceLock::new();
    C.get_or_init(|| {
        engine()
            .compile("sdk-roles", fixture_wasm("sdk-roles"))
            .expect("fixture compiles")
    })
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// A governor (ABI 1.2) over candidates `names.0` (0) and `names.1` (1) that sets weights with
/// `$w` (`set_weight`) or `$set` (both at once); `tick` is the body of `kplug_tick`, with a
/// `$ticks` counter.
pub fn weighing_governor(names: (&str, &str), tick: &str) -> String {
    let (a, b) = names;
    let (a_len, b_len) = (a.len(), b.len());
    format!(
        r#"(module
  (import "kplug" "add_candidate" (func $add (param i32 i32 i32) (result i32)))
  (import "kplug" "set_weight" (func $w (param i32 f64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "{a}")
  (data (i32.const 200) "{b}")
  (global $ticks (mut i32) (i32.const 0))
  (func (export "kplug_abi_version") (result i32) (i32.const 0x10002))
  (func (export "kplug_init") (param i64) (result i32)
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const {a_len})))
    (drop (call $add (i32.const 0) (i32.const 200) (i32.const {b_len})))
    (i32.const 0))
  (func $set (param f64 f64)
    (drop (call $w (i32.const 0) (local.get 0)))
    (drop (call $w (i32.const 1) (local.get 1))))
  (func (export "kplug_tick") (param i64) (result i32)
{tick}"#
    )
}

/// The tick of a [`weighing_governor`] whose weights cycle through every shape on its ticks:
/// (0, 1), (1, 0), (1, 1), (0, 0) (nobody: the built-in serves), (0.5, 2).
pub const CYCLING: &str = r#"
    (global.set $ticks (i32.rem_u (i32.add (global.get $ticks) (i32.const 1)) (i32.const 5)))
    (block (block (block (block (block
      (br_table 0 1 2 3 4 (global.get $ticks)))
      (call $set (f64.const 0) (f64.const 1)) (return (i32.const 0)))
      (call $set (f64.const 1) (f64.const 0)) (return (i32.const 0)))
      (call $set (f64.const 1) (f64.const 1)) (return (i32.const 0)))
      (call $set (f64.const 0) (f64.const 0)) (return (i32.const 0)))
    (call $set (f64.const 0.5) (f64.const 2))
    (i32.const 0)))
"#;
