//! The plugin loader on arbitrary modules: compile and validate, then instantiate with a
//! capacity and call the hooks of each role it serves. Anything may be refused, nothing may
//! panic, every error is one line, and what a hook answers is bounded.
//!
//! Random bytes rarely get past the wasm parser, so the first input byte picks a mode (its
//! second bit picks the compiler: Cranelift, or Winch's baseline code a mount loads first):
//! even, the rest of the input is the module as is (the parser and the validator); odd, the
//! rest drives `wasm-smith` to build a valid module that may import every host function of
//! the ABI (from `kplug_abi::imports::ALL`, so new imports are fuzzed the day they are added)
//! and exports the lifecycle functions plus a random subset of the roles' exports, with
//! random bodies: this reaches instantiation, `kplug_init`, the hooks, the imports and the
//! host's validation of every answer.
#![no_main]

use std::fmt::Write;
use std::sync::OnceLock;

use kplug_abi::{Func, Role, exports, imports};
use kplug_engine::{EngineConfig, PluginEngine};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static PluginEngine {
    static E: OnceLock<PluginEngine> = OnceLock::new();
    E.get_or_init(|| {
        PluginEngine::new(EngineConfig {
            // Small limits: a run explores more modules per second.
            memory_limit: 1 << 20,
            init_deadline_ticks: 20,
            // Nothing on disk: a run compiles millions of modules.
            module_cache: None,
            baseline_tier: true,
            ..EngineConfig::default()
        })
        .expect("engine")
    })
}

fn wat_type(c: char) -> &'static str {
    match c {
        'I' => "i32",
        'L' => "i64",
        'F' => "f64",
        _ => unreachable!("kplug-abi signature letter {c}"),
    }
}

fn wat_sig(f: &Func) -> String {
    let mut s = String::new();
    for c in f.sig.params.chars() {
        write!(s, " (param {})", wat_type(c)).unwrap();
    }
    for c in f.sig.results.chars() {
        write!(s, " (result {})", wat_type(c)).unwrap();
    }
    s
}

/// A module that imports every host function: what wasm-smith may import.
fn available_imports() -> &'static [u8] {
    static M: OnceLock<Vec<u8>> = OnceLock::new();
    M.get_or_init(|| {
        let mut w = String::from("(module\n");
        for f in imports::ALL {
            writeln!(
                w,
                "(import \"{}\" \"{}\" (func{}))",
                imports::MODULE,
                f.name,
                wat_sig(f)
            )
            .unwrap();
        }
        w.push(')');
        wat::parse_str(&w).expect("imports module")
    })
}

/// A module exporting the lifecycle functions and the exports of the roles in `mask`.
fn exports_module(mask: u8) -> Vec<u8> {
    let mut funcs: Vec<&Func> = vec![&exports::ABI_VERSION];
    funcs.extend(exports::LIFECYCLE);
    let roles: [&[Func]; 6] = [
        exports::EVICTION,
        exports::ADMISSION,
        exports::PREFETCH_ROLE,
        exports::GOVERNOR,
        exports::EVICTION_BATCHED,
        exports::EVICTION_HANDLES,
    ];
    for (i, r) in roles.iter().enumerate() {
        if mask & (1 << i) != 0 {
            // The eviction sets share exports (`kplug_evict_remove`, the key buffer's): export
            // each once.
            for f in r.iter() {
                if !funcs.contains(&f) {
                    funcs.push(f);
                }
            }
        }
    }
    let mut w = format!("(module (memory (export \"{}\") 1 16)\n", exports::MEMORY);
    for f in funcs {
        writeln!(
            w,
            "(func (export \"{}\"){} unreachable)",
            f.name,
            wat_sig(f)
        )
        .unwrap();
    }
    w.push(')');
    wat::parse_str(&w).expect("exports module")
}

fn smith(u: &mut Unstructured<'_>) -> Option<Vec<u8>> {
    let mask: u8 = u.arbitrary().ok()?;
    let mut cfg: wasm_smith::Config = u.arbitrary().ok()?;
    cfg.available_imports = Some(available_imports().to_vec());
    cfg.exports = Some(exports_module(mask));
    cfg.max_memories = 1;
    cfg.max_memory32_bytes = 1 << 20;
    cfg.memory64_enabled = false;
    cfg.threads_enabled = false;
    cfg.exceptions_enabled = false;
    cfg.gc_enabled = false;
    cfg.min_funcs = 0;
    cfg.max_funcs = 16;
    cfg.max_instructions = 200;
    let m = wasm_smith::Module::new(cfg, u).ok()?;
    Some(m.to_bytes())
}

fn one_line(e: impl std::fmt::Display) {
    let s = e.to_string();
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "error of more than one line: {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        match smith(&mut Unstructured::new(rest)) {
            Some(b) => b,
            None => return,
        }
    };
    // The second bit picks the compiler: Cranelift, or Winch (a mount's first load).
    let compiled = match mode & 2 {
        0 => engine().compile("fuzz", &bytes),
        _ => engine().compile_baseline("fuzz", &bytes),
    };
    let compiled = match compiled {
        Ok(c) => c,
        Err(e) => return one_line(e),
    };
    let mut p = match compiled.instantiate(&[("k", "v")], 64) {
        Ok(p) => p,
        Err(e) => return one_line(e),
    };
    let roles = p.roles();
    // A few calls of every hook; the first fault ends the run, as it disables the plugin.
    for key in 0..4u64 {
        let r = (|| {
            if roles.contains(Role::Eviction) && p.evicts_batched() {
                let mut victims = Vec::new();
                let h = p.evict_insert(key, key)?.unwrap_or(0);
                p.evict_access(key, h, key + 1)?;
                p.flush_hits(key + 1)?;
                p.evict_access(key, h, key + 1)?;
                p.evict_miss(key + 100, 1, key + 1)?;
                p.evict_remove(key, h, key)?;
                p.take_victims(&mut victims);
                assert!(victims.len() <= 3 * kplug_abi::EVICT_BUF_KEYS);
            } else if roles.contains(Role::Eviction) {
                p.evict_insert(key, key)?;
                p.evict_access(key, 0, key + 1)?;
                let _ = p.evict_victim(key + 1)?;
                p.evict_remove(key, 0, key)?;
            }
            if roles.contains(Role::Admission) {
                let _ = p.admit(key, key >> 1, key & 1, key)?;
            }
            if roles.contains(Role::Prefetch) {
                let (n, out) = p.prefetch(1, key, 16, key & 1 == 0, key)?;
                assert!(
                    out.len() <= kplug_abi::MAX_PREFETCH_RANGES * kplug_abi::PREFETCH_RANGE_BYTES
                );
                assert!(out.len() <= n.max(0) as usize * kplug_abi::PREFETCH_RANGE_BYTES);
            }
            Ok::<(), kplug_engine::HookFault>(())
        })();
        if let Err(f) = r {
            return one_line(f);
        }
    }
});
