//! Plugins written for the lifecycle and stall tests and benches, in WebAssembly text: slow
//! variants of the hand-written LRU (`policies/lru-wat/lru.wat`), admission plugins with a
//! fixed answer, governors with given candidates, and modules that are wrong in one precise
//! way. Slowness is wall time measured with the `now_ns` import (real time in a mount, also
//! during `kplug_init`), so "a 3 ms hook" means what it says on an idle machine.

use crate::repo_root;

/// The `kplug.now_ns` import and a `$spin` function that returns after `$ns` ns.
const SPIN: &str = r#"
  (import "kplug" "now_ns" (func $now (result i64)))
  (func $spin (param $ns i64) (local $t i64)
    (local.set $t (call $now))
    (loop $l (br_if $l (i64.lt_u (i64.sub (call $now) (local.get $t)) (local.get $ns)))))"#;

/// The WAT LRU whose `kplug_init` spins `init_us` µs and whose every eviction hook spins
/// `hook_us` µs (0: not at all).
pub fn slow_lru(init_us: u64, hook_us: u64) -> Vec<u8> {
    let src = std::fs::read_to_string(repo_root().join("policies/lru-wat/lru.wat"))
        .expect("policies/lru-wat/lru.wat");
    let imports_end = src.find("  (memory").expect("lru.wat declares its memory");
    let mut out = String::new();
    out.push_str(&src[..imports_end]);
    // Imports first, then the spin function (after the memory is fine).
    out.push_str(&SPIN[..SPIN.find("  (func").unwrap()]);
    out.push_str(&src[imports_end..src.rfind(')').unwrap()]);
    out.push_str(&SPIN[SPIN.find("  (func").unwrap()..]);
    out.push_str("\n)\n");
    let mut text = out.replace("(i32.const 0x10000))", "(i32.const 0x10001))");
    for (export, us) in [
        ("kplug_init", init_us),
        ("kplug_evict_insert", hook_us),
        ("kplug_evict_access", hook_us),
        ("kplug_evict_remove", hook_us),
        ("kplug_evict_victim", hook_us),
    ] {
        if us == 0 {
            continue;
        }
        // After the function's `(local ...)` line: locals come first.
        let at = text
            .find(&format!("(func (export \"{export}\")"))
            .unwrap_or_else(|| panic!("{export} in lru.wat"));
        let line_end = at + text[at..].find('\n').unwrap() + 1;
        let locals_end = line_end + text[line_end..].find('\n').unwrap() + 1;
        text.insert_str(
            locals_end,
            &format!("    (call $spin (i64.const {}))\n", us * 1000),
        );
    }
    wat::parse_str(&text).expect("slow lru")
}

/// An admission plugin answering `answer` to every `kplug_admit` (anything but 0 or 1 is a
/// fault), its `kplug_init` spinning `init_us` µs.
pub fn admission(answer: i32, init_us: u64) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {}
             (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10001))
             (func (export "kplug_init") (param i64) (result i32)
               (call $spin (i64.const {})) (i32.const 0))
             (func (export "kplug_admit") (param i64 i64 i64) (result i32) (i32.const {answer})))"#,
        SPIN,
        init_us * 1000
    ))
    .expect("admission fixture")
}

/// A governor registering `candidates` (role number, spec) in `kplug_init`, then running
/// `init` there and `tick` in `kplug_tick` (WAT instructions; `$add`, `$act` and `$active`
/// are the imports `add_candidate`, `activate` and `active`); `extra` is more module fields
/// (exports of another role, say).
pub fn governor(candidates: &[(i32, &str)], init: &str, tick: &str, extra: &str) -> Vec<u8> {
    let mut data = String::new();
    let mut adds = String::new();
    let mut off = 1024;
    for (role, spec) in candidates {
        data.push_str(&format!("(data (i32.const {off}) \"{spec}\")\n"));
        adds.push_str(&format!(
            "(drop (call $add (i32.const {role}) (i32.const {off}) (i32.const {})))\n",
            spec.len()
        ));
        off += spec.len() + 16;
    }
    wat::parse_str(format!(
        r#"(module
             (import "kplug" "add_candidate" (func $add (param i32 i32 i32) (result i32)))
             (import "kplug" "activate" (func $act (param i32) (result i32)))
             (import "kplug" "active" (func $active (param i32) (result i32)))
             (memory (export "memory") 1)
             {data}
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10001))
             (func (export "kplug_init") (param i64) (result i32)
               {adds} {init} (i32.const 0))
             (func (export "kplug_tick") (param i64) (result i32) {tick} (i32.const 0))
             {extra})"#
    ))
    .expect("governor fixture")
}

/// The exports of an eviction role with empty bodies (for a module that should not have them).
pub const EVICTION_EXPORTS: &str = r#"
  (func (export "kplug_evict_insert") (param i64))
  (func (export "kplug_evict_access") (param i64))
  (func (export "kplug_evict_remove") (param i64))
  (func (export "kplug_evict_victim") (result i64) (i64.const -1))"#;

/// An eviction module (it loads) whose hooks run `body` in `kplug_evict_insert` first: a
/// log message, a trap in an import...
pub fn eviction_with(imports: &str, insert_body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {imports}
             (memory (export "memory") 1)
             (data (i32.const 64) "first line\n2099-01-01T00:00:00Z ERROR kplugfs: forged\u{{1b}}[31m")
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10001))
             (func (export "kplug_evict_insert") (param i64) {insert_body})
             (func (export "kplug_evict_access") (param i64))
             (func (export "kplug_evict_remove") (param i64))
             (func (export "kplug_evict_victim") (result i64) (i64.const -1)))"#
    ))
    .expect("eviction fixture")
}
