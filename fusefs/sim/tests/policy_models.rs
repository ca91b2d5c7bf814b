//! Differential tests: every eviction plugin, run as WebAssembly through `kplug_cache::CacheCore`
//! (what `kplugfs sim` and the mount do), against the same policy source compiled natively (the
//! policy crates are rlibs too) and driven by a plain Rust loop written here: look up; on a hit
//! tell the policy and evict what it names; on a miss ask it to make the room the insertion
//! needs (it learns the missed key first, as libCacheSim's `to_evict(cache, req)`), evict what it
//! names, insert. Both must give the same hit/miss sequence on random streams (proptest) and on
//! trace-derived streams.
//!
//! The native loop is deliberately independent of `CacheCore`: a disagreement points either at
//! the host (hook order, victim validation, fault fallback) or at the guest ABI shims.

use std::collections::HashMap;
use std::sync::OnceLock;

use kplug_cache::{BuiltinPrefetch, CacheCore, CoreConfig};
use kplug_engine::{CompiledPlugin, EngineConfig, PluginEngine};
use kplug_sdk::{HandleEviction, Plugin, Victims};
use proptest::prelude::*;

/// The eviction plugins under test.
const POLICIES: &[&str] = &[
    "lru", "fifo", "clock", "sieve", "arc", "twoq", "lirs", "s3fifo", "wtinylfu",
];

/// A natively compiled policy, as the plain driver sees it: the SDK's trait, called as the
/// generated exports call it.
trait Native {
    fn init(&mut self, capacity: u64);
    /// A miss with `need` blocks to lose first: `evict` then `insert`; the victims into `out`;
    /// the handle of `key` (a policy by handle, ABI 1.8; 0 for the others).
    fn miss(&mut self, key: u64, need: usize, out: &mut Vec<u64>) -> u32;
    /// A hit on `key` of handle `handle`; the victims it names (W-TinyLFU, LIRS) into `out`.
    fn hit(&mut self, key: u64, handle: u32, out: &mut Vec<u64>);
}

/// A policy by handle ([`HandleEviction`]).
struct ByHandle<T>(T);

fn with_victims(out: &mut Vec<u64>, f: impl FnOnce(&mut Victims<'_>)) {
    let mut buf = [0u64; kplug_sdk::abi::EVICT_BUF_KEYS];
    let mut v = Victims::new(&mut buf);
    f(&mut v);
    out.extend(v.iter());
}

impl<T: HandleEviction + Plugin> Native for ByHandle<T> {
    fn init(&mut self, capacity: u64) {
        Plugin::init(&mut self.0, capacity).unwrap();
    }
    fn miss(&mut self, key: u64, need: usize, out: &mut Vec<u64>) -> u32 {
        with_victims(out, |v| HandleEviction::evict(&mut self.0, key, need, v));
        HandleEviction::insert(&mut self.0, key)
    }
    fn hit(&mut self, _key: u64, handle: u32, out: &mut Vec<u64>) {
        with_victims(out, |v| HandleEviction::hit(&mut self.0, handle, v));
    }
}

fn native_policy(name: &str) -> Box<dyn Native> {
    match name {
        "lru" => Box::new(ByHandle(kplug_policy_lru::Lru::default())),
        "fifo" => Box::new(ByHandle(kplug_policy_fifo::Fifo::default())),
        "clock" => Box::new(ByHandle(kplug_policy_clock::Clock::default())),
        "sieve" => Box::new(ByHandle(kplug_policy_sieve::Sieve::default())),
        "arc" => Box::new(ByHandle(kplug_policy_arc::Arc::default())),
        "twoq" => Box::new(ByHandle(kplug_policy_twoq::TwoQ::default())),
        "lirs" => Box::new(ByHandle(kplug_policy_lirs::Lirs::default())),
        "s3fifo" => Box::new(ByHandle(kplug_policy_s3fifo::S3Fifo::default())),
        "wtinylfu" => Box::new(ByHandle(kplug_policy_wtinylfu::WTinyLfu::default())),
        other => panic!("no native model for {other}"),
    }
}

/// The plain driver: libCacheSim's get (find; on a miss, evict what the policy names, insert).
/// It keeps each resident block's handle, as the host does.
fn native_hits(name: &str, capacity: u64, ids: &[u64]) -> Vec<bool> {
    let mut p = native_policy(name);
    p.init(capacity);
    let mut resident: HashMap<u64, u32> = HashMap::new();
    let mut victims = Vec::new();
    ids.iter()
        .map(|&k| {
            let hit = resident.contains_key(&k);
            let mut handle = 0;
            if let Some(&h) = resident.get(&k) {
                p.hit(k, h, &mut victims);
            } else {
                let need = (resident.len() as u64 + 1).saturating_sub(capacity) as usize;
                handle = p.miss(k, need, &mut victims);
                assert!(
                    victims.len() >= need,
                    "{name}: {} victims, {need} needed",
                    victims.len()
                );
            }
            for v in victims.drain(..) {
                assert!(
                    resident.remove(&v).is_some(),
                    "{name}: native victim {v} is not resident"
                );
            }
            if !hit {
                resident.insert(k, handle);
            }
            hit
        })
        .collect()
}

fn compiled() -> &'static HashMap<&'static str, CompiledPlugin> {
    static C: OnceLock<HashMap<&'static str, CompiledPlugin>> = OnceLock::new();
    C.get_or_init(|| {
        let engine = PluginEngine::new(EngineConfig {
            hook_deadline_ticks: kplug_sim::SIM_HOOK_DEADLINE_TICKS,
            slow_budget: std::time::Duration::ZERO,
            ..EngineConfig::default()
        })
        .unwrap();
        POLICIES
            .iter()
            .map(|&n| {
                let (name, bytes) = kplug_catalog::load(n).unwrap();
                (n, engine.compile(&name, &bytes).unwrap())
            })
            .collect()
    })
}

/// The WebAssembly plugin through the host's cache core.
fn wasm_hits(name: &str, capacity: u64, ids: &[u64]) -> Vec<bool> {
    let plugin = compiled()[name].instantiate(&[], capacity).unwrap();
    let roles = plugin.roles();
    let mut core: CacheCore<()> = CacheCore::new(
        capacity,
        CoreConfig {
            index_files: false,
            prefetch: BuiltinPrefetch::None,
            ..CoreConfig::default()
        },
    );
    core.install_plugin(plugin, roles).unwrap();
    let hits = ids.iter().map(|&k| core.request(k, || ())).collect();
    assert_eq!(core.stats().faults, 0, "{name} faulted");
    hits
}

fn assert_same(name: &str, capacity: u64, ids: &[u64]) {
    let w = wasm_hits(name, capacity, ids);
    let n = native_hits(name, capacity, ids);
    if let Some(i) = (0..ids.len()).find(|&i| w[i] != n[i]) {
        panic!(
            "{name} @ {capacity}: request {i} (id {}): wasm {} native {}",
            ids[i],
            if w[i] { "hit" } else { "miss" },
            if n[i] { "hit" } else { "miss" }
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random streams over a small id space (many hits, ghosts, reuse) at small capacities.
    #[test]
    fn wasm_and_native_agree_on_random_streams(
        capacity in 1u64..48,
        ids in prop::collection::vec(0u64..160, 1..1000),
    ) {
        for name in POLICIES {
            assert_same(name, capacity, &ids);
        }
    }

    /// Skewed streams: a hot set mixed with a long tail, keys spread over files.
    #[test]
    fn wasm_and_native_agree_on_skewed_streams(
        capacity in 8u64..128,
        raw in prop::collection::vec((0u8..4, 0u64..64, 0u64..5000), 1..1000),
    ) {
        let ids: Vec<u64> = raw
            .iter()
            .map(|&(f, hot, cold)| if cold % 3 == 0 { (1 << 32) | cold } else { ((f as u64) << 32) | hot })
            .collect();
        for name in POLICIES {
            assert_same(name, capacity, &ids);
        }
    }
}

/// Each policy through the host's cache core, as a mount drives it: requests, and blocks
/// invalidated (a write) and files truncated between them. An honest policy never faults
/// and serves to the end. The hits waiting in a batch are delivered before an invalidated
/// block leaves the core: LIRS and W-TinyLFU name victims on hits, and one they named among
/// the blocks about to be invalidated was once counted against them as not resident.
fn serves_through_invalidations(name: &str, capacity: u64, ops: &[(u8, u64)]) {
    let plugin = compiled()[name].instantiate(&[], capacity).unwrap();
    let status = plugin.status();
    let roles = plugin.roles();
    let mut core: CacheCore<u64> = CacheCore::new(capacity, CoreConfig::default());
    core.install_plugin(plugin, roles).unwrap();
    for &(op, k) in ops {
        let key = ((k % 3) << 32) | (k / 3);
        match op {
            0 => {
                // A resident block, most often (a write to a block read before).
                let keys = core.resident_keys();
                core.remove(
                    keys.get(k as usize % keys.len().max(1))
                        .copied()
                        .unwrap_or(key),
                );
            }
            1 => {
                core.remove_file((k % 3) as u32, (k / 3) as u32);
            }
            _ => {
                core.request(key, || key);
                assert_eq!(core.peek(key).copied().unwrap_or(key), key);
            }
        }
        assert!(core.len() as u64 <= capacity);
    }
    assert_eq!(
        core.stats().faults,
        0,
        "{name} @ {capacity}: {:?}",
        status.error()
    );
    assert_eq!(status.state(), kplug_engine::PluginState::Active);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn policies_serve_through_invalidations(
        capacity in 1u64..40,
        ops in prop::collection::vec(
            (prop_oneof![3 => Just(0u8), 1 => Just(1u8), 24 => Just(2u8)], 0u64..150),
            1..1500,
        ),
    ) {
        for name in POLICIES {
            serves_through_invalidations(name, capacity, &ops);
        }
    }
}

fn trace_prefix(
    file: &str,
    format: kplug_traces::Format,
    split: Option<u64>,
    n: usize,
) -> Vec<u64> {
    let path = manifest_dir().join("../../traces/data").join(file);
    let t = kplug_sim::load_trace(&path, format, split, &()).unwrap();
    t.ids.into_iter().take(n).collect()
}

#[test]
fn wasm_and_native_agree_on_trace_streams() {
    use kplug_traces::Format;
    let sprite = trace_prefix("sprite.trace", Format::Lirs, None, 60_000);
    let cloud = trace_prefix("cloudPhysicsIO.vscsi", Format::Vscsi, None, 60_000);
    let blocks = trace_prefix("cloudPhysicsIO.vscsi", Format::Vscsi, Some(4096), 60_000);
    for name in POLICIES {
        for cap in [70, 707] {
            assert_same(name, cap, &sprite);
        }
        assert_same(name, 489, &cloud);
        assert_same(name, 2692, &blocks);
    }
}

/// A multiplicative hasher for the native driver's resident set (what the host's map uses in
/// spirit): std's SipHash would make the native side look slower than it is.
#[derive(Default)]
struct MulHasher(u64);

impl std::hash::Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Requests per second of the native driver; also returns the misses.
fn native_throughput(name: &str, capacity: u64, ids: &[u64]) -> (f64, u64) {
    let mut p = native_policy(name);
    p.init(capacity);
    let mut resident: HashMap<u64, u32, std::hash::BuildHasherDefault<MulHasher>> =
        HashMap::with_capacity_and_hasher(capacity as usize, Default::default());
    let t = std::time::Instant::now();
    let mut misses = 0;
    let mut victims = Vec::new();
    for &k in ids {
        if let Some(&h) = resident.get(&k) {
            p.hit(k, h, &mut victims);
        } else {
            misses += 1;
            let need = (resident.len() as u64 + 1).saturating_sub(capacity) as usize;
            let h = p.miss(k, need, &mut victims);
            resident.insert(k, h);
        }
        for v in victims.drain(..) {
            resident.remove(&v);
        }
    }
    (ids.len() as f64 / t.elapsed().as_secs_f64(), misses)
}

/// Throughput table for docs/policies.md (release build only; prints markdown):
/// `cargo test --release -p kplugfs --test policy_models -- --ignored --nocapture throughput`
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn throughput_wasm_vs_native() {
    use kplug_traces::Format;
    let data = manifest_dir().join("../../traces/data");
    let traces = [
        ("cloudPhysicsIO", None),
        ("cloudPhysicsIO-4KiB-blocks", Some(4096)),
    ];
    println!("| trace | policy | requests | cache | WASM req/s | native req/s | misses equal |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for (label, split) in traces {
        let args = kplug_sim::SimConfig {
            trace: data.join("cloudPhysicsIO.vscsi"),
            format: Format::Vscsi,
            policies: POLICIES.iter().map(|s| s.to_string()).collect(),
            fractions: vec![0.1],
            objects: vec![],
            split_blocks: split,
            params: vec![],
            jobs: 1,
            tick_every: None,
            scopes: Vec::new(),
        };
        let bar = ();
        let t = kplug_sim::load_trace(&args.trace, args.format, split, &bar).unwrap();
        // Concatenate the 4 KiB split 3x: 3.4 M requests.
        let ids: Vec<u64> = if split.is_some() {
            t.ids
                .iter()
                .cycle()
                .take(t.ids.len() * 3)
                .copied()
                .collect()
        } else {
            t.ids.clone()
        };
        let trace = kplug_sim::Trace::new(ids, t.block_size);
        let wasm = kplug_sim::run(&args, &trace, &bar).unwrap();
        for r in &wasm {
            let (native, misses) = native_throughput(&r.policy, r.cache_objects, &trace.ids);
            println!(
                "| {label}{} | {} | {} | {} | {:.2} M | {:.2} M | {} |",
                if split.is_some() { " x3" } else { "" },
                r.policy,
                trace.ids.len(),
                r.cache_objects,
                r.requests_per_sec / 1e6,
                native / 1e6,
                if misses == r.misses { "yes" } else { "NO" }
            );
        }
    }
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
