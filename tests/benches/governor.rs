//! What a governor costs on the read path, in process and without FUSE: 4 KiB reads served by
//! the block cache under the LRU plugin alone, then under the `adaptive` governor (whose five
//! candidates each run a shadow cache fed every demand request, under the cache's lock).
//!
//! Two shapes: warm hits (every block resident, one block touched per read) and a miss
//! stream (a file four times the cache, read at random, zero backend latency, so the figure
//! is the bookkeeping and not the disk). Same process, same file, one after the other.
//!
//! Run: `cargo bench -p kplugfs-tests --bench governor` (criterion).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kplug_abi::Role;
use kplug_daemon::data::blockcache::{BlockCache, BlockCacheConfig};
use kplug_daemon::data::{Backend, DataCache, FileRef, FileSource, Source};
use kplug_engine::{EngineConfig, PluginEngine};
use std::os::fd::OwnedFd;

const CACHE: u64 = 4 << 20;
const READ: u32 = 4096;

fn cache_with(policy: &str, engine: &PluginEngine) -> Arc<BlockCache> {
    let cache = BlockCache::new(
        Arc::new(Backend::new(Duration::ZERO)),
        BlockCacheConfig {
            capacity_bytes: CACHE,
            ..Default::default()
        },
        None,
    );
    let blocks = cache.with_core(|core| core.capacity());
    let wasm = kplug_catalog::find(policy).expect("built-in policy").wasm;
    let plugin = engine
        .compile(policy, wasm)
        .unwrap()
        .instantiate(&[], blocks)
        .unwrap();
    cache.with_core(|core| {
        if plugin.is_governor() {
            let resolve = |n: &str| {
                let e = kplug_catalog::find(n).ok_or_else(|| format!("no policy {n}"))?;
                engine.compile(n, e.wasm).map_err(|e| e.to_string())
            };
            core.install_governor(plugin, &resolve, 0).unwrap();
        } else {
            core.install_plugin(plugin, Role::Eviction.into()).unwrap();
        }
    });
    cache
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; 4 * CACHE as usize]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let source: Arc<dyn Source> = Arc::new(FileSource::new(Arc::new(OwnedFd::from(file))));
    let f = || FileRef {
        ino: 2,
        source: &source,
    };
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let mut g = c.benchmark_group("governor");
    for policy in ["lru", "adaptive"] {
        let cache = cache_with(policy, &engine);
        cache.read(f(), 0, CACHE as u32).unwrap();
        let mut off = 0u64;
        g.bench_function(format!("warm 4KiB read, {policy}"), |b| {
            b.iter(|| {
                off = (off + READ as u64 * 7) % (CACHE - READ as u64);
                cache.read(f(), off, READ).unwrap()
            })
        });
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        g.bench_function(
            format!("random 4KiB read over 4x the cache, {policy}"),
            |b| {
                b.iter(|| {
                    kplugfs_tests::xorshift(&mut x);
                    let off = (x % (4 * CACHE / READ as u64 - 1)) * READ as u64;
                    cache.read(f(), off, READ).unwrap()
                })
            },
        );
        let s = cache.with_core(|core| *core.stats());
        println!(
            "{policy}: {} hits, {} misses, {} policy switches",
            s.hits, s.misses, s.policy_switches
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
