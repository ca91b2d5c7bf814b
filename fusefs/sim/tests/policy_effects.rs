//! Effect tests for the admission and prefetch plugins, through `kplug_cache::CacheCore` (the
//! same driver as the mount and `kplugfs sim`): a one-pass scan does not flush the hot set under
//! `scanfilter` or `doorkeeper`; sequential streams hit once readahead's window has ramped up;
//! random streams cause no prefetch.

use kplug_abi::block_key;
use kplug_cache::{BuiltinPrefetch, CacheCore, CoreConfig};
use kplug_engine::{EngineConfig, PluginEngine};

/// A cache of `capacity` blocks running the plugins named in `spec` (`lru+doorkeeper`).
fn core(spec: &str, capacity: u64) -> CacheCore<()> {
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let mut core = CacheCore::new(
        capacity,
        CoreConfig {
            index_files: false,
            prefetch: BuiltinPrefetch::None,
            ..CoreConfig::default()
        },
    );
    for name in spec.split('+') {
        let (name, bytes) = kplug_catalog::load(name).unwrap();
        let plugin = engine
            .compile(&name, &bytes)
            .unwrap()
            .instantiate(&[], capacity)
            .unwrap();
        let roles = plugin.roles();
        core.install_plugin(plugin, roles).unwrap();
    }
    core
}

/// One request with prefetching, as `kplugfs sim` replays it; returns whether it hit.
fn request(core: &mut CacheCore<()>, file: u32, block: u32) -> bool {
    let hit = core.request(block_key(file, block), || ());
    for r in core.prefetch_plan(file, block, 1 << 20, hit) {
        for b in r.start..r.start + r.len {
            core.insert_prefetched(block_key(file, b as u32), ());
        }
    }
    hit
}

/// Hot set of 200 blocks (file 1) in a 256-block cache, then a one-pass sequential scan of
/// 5000 blocks (file 2) interleaved 4:1 with hot accesses, then the hot set again: the hit
/// ratio of that last pass.
fn hot_hit_ratio_after_scan(spec: &str) -> f64 {
    let mut c = core(spec, 256);
    for _ in 0..5 {
        for b in 0..200 {
            request(&mut c, 1, b);
        }
    }
    let mut hot = 0u32;
    for s in 0..5000u32 {
        request(&mut c, 2, s);
        if s % 4 == 3 {
            request(&mut c, 1, hot % 200);
            hot = hot.wrapping_mul(7).wrapping_add(13) % 200;
        }
    }
    let hits = (0..200).filter(|&b| request(&mut c, 1, b)).count();
    assert_eq!(c.stats().faults, 0);
    hits as f64 / 200.0
}

#[test]
fn scan_does_not_flush_the_hot_set_under_admission_filters() {
    let plain = hot_hit_ratio_after_scan("lru");
    let scan = hot_hit_ratio_after_scan("lru+scanfilter");
    let door = hot_hit_ratio_after_scan("lru+doorkeeper");
    assert!(
        plain < 0.5,
        "plain LRU should be flushed by the scan: {plain}"
    );
    assert!(
        scan > 0.9,
        "scanfilter: hot-set hit ratio {scan} (plain LRU {plain})"
    );
    assert!(
        door > 0.9,
        "doorkeeper: hot-set hit ratio {door} (plain LRU {plain})"
    );
}

#[test]
fn scanfilter_admits_a_rescanned_file_on_second_touch() {
    // A 100-block file read sequentially twice fits: the second pass is admitted.
    let mut c = core("lru+scanfilter", 256);
    for _ in 0..2 {
        for b in 0..100 {
            request(&mut c, 3, b);
        }
    }
    let hits = (0..100).filter(|&b| request(&mut c, 3, b)).count();
    assert_eq!(hits, 100);
}

#[test]
fn sequential_streams_hit_after_readahead_ramps() {
    let mut c = core("lru+readahead", 4096);
    let hits: Vec<bool> = (0..1000).map(|b| request(&mut c, 5, b)).collect();
    // The first access misses; from then on the window stays ahead of the reader.
    assert!(!hits[0]);
    assert!(
        hits[1..].iter().all(|&h| h),
        "a sequential reader missed after the ramp"
    );
    let s = c.stats();
    assert!(
        s.prefetch_inserted >= 999 && s.prefetch_used >= 999,
        "{s:?}"
    );
}

#[test]
fn stride_and_history_prefetch_their_patterns() {
    // A constant stride of 8 blocks: after two confirmations every access hits.
    let mut c = core("lru+stride", 4096);
    let hits = (0..200).filter(|&i| request(&mut c, 6, i * 8)).count();
    assert!(hits >= 195, "stride: {hits}/200 hits");
    // A fixed irregular pattern replayed: the second pass is prefetched by history.
    let pattern: Vec<u32> = (0..300u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % 100_000)
        .collect();
    let mut c = core("lru+history", 128);
    for &b in &pattern {
        request(&mut c, 7, b);
    }
    let hits = pattern.iter().filter(|&&b| request(&mut c, 7, b)).count();
    assert!(hits >= 290, "history: {hits}/300 hits on the replay");
}

#[test]
fn random_streams_trigger_no_prefetch() {
    // readahead and stride: nothing (a random access never continues a stream or repeats a
    // stride, bar coincidences); history: only where a random block happens to recur after
    // a block it followed before, under 1 % of the requests.
    for (spec, limit) in [
        ("lru+readahead", 5),
        ("lru+stride", 5),
        ("lru+history", 200),
    ] {
        let mut c = core(spec, 1024);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            request(&mut c, (x % 4) as u32, ((x >> 8) % 1_000_000) as u32);
        }
        let s = c.stats();
        assert!(
            s.prefetch_planned <= limit,
            "{spec}: {} blocks prefetched on a random stream",
            s.prefetch_planned
        );
    }
}
