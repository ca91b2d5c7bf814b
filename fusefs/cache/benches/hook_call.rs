//! Cost of a plugin hook call vs the native built-in, and CacheCore
//! throughput. Run: `cargo bench -p kplug-cache --bench hook_call`.
//!
//! - `hook/*`: one access + victim + insert cycle (3 hook calls in ABI 1.0) on an
//!   LRU holding 4096 keys; criterion's elements/s counts those three events. The SDK
//!   LRU serves the handle hooks of ABI 1.8: one `kplug_evict_handle_miss` per cycle, which
//!   also carries the queued hit.
//! - `core/*`: `CacheCore<()>::request` on a skewed random stream over 64 Ki
//!   keys with a 4096-block cache; elements/s is requests/s.
//! - `instance/*`: a new instance of the SDK LRU for a 128-block cache (what a hot swap of
//!   a module seen before instantiates), dropping one, and both (`cycle`).
//! - `swap/*`: what a hot swap of the SDK LRU into a `CacheCore` of 65,536 resident blocks
//!   makes readers wait for: the snapshot's copy plus the install, both under the mount's
//!   lock (the replay into the new instance between them is not timed), from a snapshot
//!   taken for the install (`logged`: the install reads the log of what changed) or not
//!   (`walked`: it walks the resident set); 100 misses come between the two. And what the
//!   swap's `close()` waits for outside the lock: `replay_*`, telling a fresh instance the
//!   65,536 blocks with one call each or 128 a call (ABI 1.9, `kplug_evict_seed`);
//!   `prepare_65536`, the whole preparation (`Prepared::from_snapshot`: the snapshot's sort,
//!   the replay, the host's map of the handles).
//! - `compile/*`: compiling the SDK LRU as a hot swap of a module never seen does, with the
//!   baseline compiler (Winch: the mount's first load) and the optimizing one (Cranelift:
//!   the code that replaces it, and every load with `--plugin-code optimized`); each
//!   iteration compiles bytes the engine has not seen (a custom section of its own).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kplug_abi::{Role, RoleSet};
use kplug_cache::__bench::NativeLru;
use kplug_cache::{CacheCore, CoreConfig};
use kplug_engine::{CompiledPlugin, EngineConfig, Plugin, PluginEngine};

const N: u64 = 4096;

/// The SDK LRU's module, built from `policies/lru`.
fn sdk_lru_wasm() -> Vec<u8> {
    let root = manifest_dir().join("../../policies");
    let target = std::env::temp_dir().join("kplugfs-policy-target");
    let sdk = kplug_catalog::build_policy(&root.join("lru"), &target).expect("build policies/lru");
    std::fs::read(sdk).unwrap()
}

fn plugins() -> (PluginEngine, CompiledPlugin, CompiledPlugin) {
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let sdk = engine.compile("lru", &sdk_lru_wasm()).unwrap();
    let wat = manifest_dir().join("../../policies/lru-wat/lru.wat");
    let wat = wat::parse_file(wat).unwrap();
    let wat = engine.compile("lru-wat", &wat).unwrap();
    (engine, sdk, wat)
}

fn hooks(c: &mut Criterion) {
    let (_engine, sdk, wat) = plugins();
    let mut g = c.benchmark_group("hook");
    g.throughput(Throughput::Elements(3));
    let mut lru = NativeLru::default();
    let mut last = 0;
    for k in 0..N {
        last = lru.insert(k);
    }
    let mut i = N;
    g.bench_function("native_lru_cycle", |b| {
        b.iter(|| {
            lru.access(black_box(i - 1), last);
            let v = lru.victim();
            last = lru.insert(i);
            i += 1;
            black_box(v)
        })
    });
    drop(g);
    // Transition cost alone: an access hook whose body is empty.
    let empty = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10000))
             (func (export "kplug_evict_insert") (param i64))
             (func (export "kplug_evict_access") (param i64))
             (func (export "kplug_evict_remove") (param i64))
             (func (export "kplug_evict_victim") (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let mut p = _engine
        .compile("empty", &empty)
        .unwrap()
        .instantiate(&[], N)
        .unwrap();
    c.benchmark_group("hook")
        .bench_function("wasm_empty_call", |b| {
            b.iter(|| p.evict_access(black_box(7), 0, 0).unwrap())
        });
    wasm_cycle_group(c, "wasm_sdk_lru_cycle", &sdk);
    wasm_cycle_group(c, "wasm_wat_lru_cycle", &wat);
}

fn wasm_cycle_group(c: &mut Criterion, name: &str, compiled: &CompiledPlugin) {
    let mut g = c.benchmark_group("hook");
    g.throughput(Throughput::Elements(3));
    let mut p: Plugin = compiled.instantiate(&[], N).unwrap();
    // The handle of the newest block (ABI 1.8 plugins; 0 for the others).
    let mut last = 0;
    for k in 0..N {
        last = p.evict_insert(k, 0).unwrap().unwrap_or(0);
    }
    let mut i = N;
    let mut victims = Vec::new();
    g.bench_function(name, |b| {
        b.iter(|| {
            p.evict_access(black_box(i - 1), last, 0).unwrap();
            let v = if p.evicts_batched() {
                // ABI 1.4 and 1.8: the hit waits in a batch; one call names the victim and
                // inserts (1.8: and takes the hit).
                last = p.evict_miss(i, 1, 0).unwrap().unwrap_or(0);
                p.take_victims(&mut victims);
                victims.drain(..).next_back().unwrap()
            } else {
                let v = p.evict_victim(0).unwrap();
                p.evict_insert(i, 0).unwrap();
                v
            };
            i += 1;
            black_box(v)
        })
    });
}

/// Zipf-like (alpha = 1) stream over 64 Ki keys: `65536^u - 1` for uniform u.
fn stream(len: usize) -> Vec<u64> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            65536f64.powf(u) as u64 - 1
        })
        .collect()
}

fn core(c: &mut Criterion) {
    let (_engine, sdk, _wat) = plugins();
    let keys = stream(100_000);
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(keys.len() as u64));
    for (name, plugin) in [
        ("requests_native_lru", None),
        ("requests_wasm_sdk_lru", Some(&sdk)),
    ] {
        let config = CoreConfig {
            index_files: false,
            ..CoreConfig::default()
        };
        let mut core: CacheCore<()> = CacheCore::new(N, config);
        if let Some(p) = plugin {
            core.install_plugin(
                p.instantiate(&[], N).unwrap(),
                RoleSet::of(&[Role::Eviction]),
            )
            .unwrap();
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut hits = 0u64;
                for &k in &keys {
                    hits += core.request(k, || ()) as u64;
                }
                black_box(hits)
            })
        });
        assert_eq!(core.stats().faults, 0);
        eprintln!("{name}: miss ratio {:.4}", core.stats().miss_ratio());
    }
    // The same stream with the per-file index on (the mount's configuration).
    let mut core: CacheCore<()> = CacheCore::new(N, CoreConfig::default());
    g.bench_function("requests_native_lru_file_index", |b| {
        b.iter(|| {
            let mut hits = 0u64;
            for &k in &keys {
                hits += core.request(k, || ()) as u64;
            }
            black_box(hits)
        })
    });
}

/// What a hot swap of a module seen before costs in CPU, outside the hooks: a new instance
/// of the SDK LRU (instantiate, check, `kplug_init` for a 128-block cache, as the hotswap
/// bench's mount has), dropping one (its linear memory unmapped), and both.
fn instance(c: &mut Criterion) {
    let (_engine, sdk, _wat) = plugins();
    let mut g = c.benchmark_group("instance");
    g.bench_function("instantiate_sdk_lru", |b| {
        b.iter_with_large_drop(|| sdk.instantiate(&[], 128).unwrap())
    });
    g.bench_function("cycle_sdk_lru", |b| {
        b.iter(|| drop(sdk.instantiate(&[], 128).unwrap()))
    });
    g.bench_function("drop_sdk_lru", |b| {
        b.iter_batched(
            || sdk.instantiate(&[], 128).unwrap(),
            drop,
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The time under the lock of a swap of the SDK LRU into a core of 65,536 resident blocks
/// (see the module docs), with 100 misses between snapshot and install.
fn swap(c: &mut Criterion) {
    use std::time::{Duration, Instant};
    const RESIDENT: u64 = 65_536;
    let (_engine, sdk, _wat) = plugins();
    let mut g = c.benchmark_group("swap");
    g.sample_size(10);
    for logged in [true, false] {
        let mut core: CacheCore<()> = CacheCore::new(RESIDENT, CoreConfig::default());
        let mut next = 0u64;
        let mut miss = |core: &mut CacheCore<()>| {
            next += 1;
            core.request(next.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20, || ());
        };
        while (core.len() as u64) < RESIDENT {
            miss(&mut core);
        }
        let name = if logged {
            "locked_65536_logged"
        } else {
            "locked_65536_walked"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut locked = Duration::ZERO;
                for _ in 0..iters {
                    let room = kplug_cache::ResidentSnapshot::with_room(RESIDENT as usize + 4096);
                    let t = Instant::now();
                    let snapshot = if logged {
                        core.snapshot_for_install_into(room)
                    } else {
                        core.resident_snapshot()
                    };
                    locked += t.elapsed();
                    let plugin = sdk.instantiate(&[], RESIDENT).unwrap();
                    let prepared = kplug_cache::Prepared::from_snapshot(
                        plugin,
                        RoleSet::of(&[Role::Eviction]),
                        snapshot,
                    )
                    .unwrap();
                    for _ in 0..100 {
                        miss(&mut core);
                    }
                    let t = Instant::now();
                    let (done, retired) = core.deferring_drops(|c| c.install_prepared(prepared));
                    locked += t.elapsed();
                    done.unwrap();
                    drop(retired);
                }
                locked
            })
        });
    }
    // What a swap's close() waits for outside the lock: telling the new instance every
    // resident block, with one call each or 128 a call (ABI 1.9's `kplug_evict_seed`), and the
    // whole preparation (the snapshot's sort, the replay, the host's map of handles).
    let keys: Vec<u64> = (0..RESIDENT)
        .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20)
        .collect();
    for batched in [false, true] {
        let name = if batched {
            "replay_65536_batched"
        } else {
            "replay_65536_one_call_each"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut handles = Vec::new();
                for _ in 0..iters {
                    let mut plugin = sdk.instantiate(&[], RESIDENT).unwrap();
                    assert!(plugin.seeds_in_batches());
                    let t = Instant::now();
                    let mut n = 0;
                    while n < keys.len() {
                        n += if batched {
                            plugin
                                .evict_seed(&keys[n..], n as u64, &mut handles)
                                .unwrap()
                        } else {
                            black_box(plugin.evict_insert(keys[n], n as u64).unwrap());
                            1
                        };
                        handles.clear();
                    }
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    let mut core: CacheCore<()> = CacheCore::new(RESIDENT, CoreConfig::default());
    for &k in &keys {
        core.request(k, || ());
    }
    g.bench_function("prepare_65536", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let snapshot = core.snapshot_for_install();
                let plugin = sdk.instantiate(&[], RESIDENT).unwrap();
                let t = Instant::now();
                let prepared = kplug_cache::Prepared::from_snapshot(
                    plugin,
                    RoleSet::of(&[Role::Eviction]),
                    snapshot,
                )
                .unwrap();
                spent += t.elapsed();
                core.discard_prepared(prepared);
            }
            spent
        })
    });
}

/// Compiling a module never seen, with either compiler (see the module docs).
fn compile(c: &mut Criterion) {
    let lru = sdk_lru_wasm();
    let engine = PluginEngine::new(EngineConfig {
        baseline_tier: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    let mut n = 0u64;
    let mut fresh = || {
        n += 1;
        kplug_engine::modcache::with_custom_section(&lru, &n.to_string())
    };
    g.bench_function("baseline_sdk_lru", |b| {
        b.iter_batched(
            &mut fresh,
            |bytes| engine.compile_baseline("lru", &bytes).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("optimized_sdk_lru", |b| {
        b.iter_batched(
            &mut fresh,
            |bytes| engine.compile("lru", &bytes).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, hooks, core, instance, swap, compile);
criterion_main!(benches);

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
