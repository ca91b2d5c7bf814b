//! Cost of probes (ABI 1.5) on the request path: a FUSE request's `OpGuard` (what every
//! callback of `fuse.rs` runs) with no probe loaded, with a probe whose filter matches
//! nothing, with one probe matching every event, and with four; the delivery thread runs as in
//! a mount (every 5 ms, on another core). Then a flood: 2 million events as fast as one
//! thread can make them, to one matching probe whose batch hook is slow, and how many were
//! delivered and dropped (never waited for).
//!
//! Run: `cargo bench -p kplug-daemon --bench probes` (docs/benchmarks.md, "Probes").

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kplug_daemon::monitor::metrics::{FuseMetrics, FuseOp};
use kplug_daemon::monitor::probes::ProbeBus;
use kplug_engine::{EngineConfig, PluginEngine};

/// A probe taking the event kinds of `mask`, whose batch hook spins `spin` iterations.
fn probe(engine: &PluginEngine, mask: u32, spin: u32) -> kplug_engine::Plugin {
    let wat = format!(
        r#"(module
             (import "kplug" "probe_filter" (func $filter (param i32 i64) (result i32)))
             (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) i32.const 0x10005)
             (func (export "kplug_init") (param i64) (result i32)
               (drop (call $filter (i32.const {mask}) (i64.const -1))) i32.const 0)
             (func (export "kplug_probe_buf") (result i32) i32.const 0)
             (func (export "kplug_probe_events") (param i32) (result i32) (local $i i32)
               (local.set $i (i32.const {spin}))
               (block (loop
                 (br_if 1 (i32.eqz (local.get $i)))
                 (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                 (br 0)))
               i32.const 0)
             (func (export "kplug_probe_report") (result i64) i64.const 0))"#
    );
    let bytes = wat::parse_str(wat).expect("probe module");
    engine
        .compile("bench", &bytes)
        .expect("compile")
        .instantiate(&[], 0)
        .expect("instantiate")
}

/// One FUSE read request's instrumentation, as `fuse.rs` does it.
#[inline]
fn request(fuse: &FuseMetrics, i: u64) {
    let mut g = fuse.start(FuseOp::Read).by(1000, 42);
    g.at(black_box(7), black_box(i * 4096), 4096);
    g.bytes(4096);
}

fn cost(c: &mut Criterion) {
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let fuse_bit = 1 << 1;
    let backend_bit = 1 << 3;
    let mut g = c.benchmark_group("fuse_request");
    let cases: [(&str, &[u32]); 4] = [
        ("no_probe", &[]),
        ("one_probe_matching_nothing", &[backend_bit]),
        ("one_probe_matching", &[fuse_bit]),
        ("four_probes_matching", &[fuse_bit; 4]),
    ];
    for (name, masks) in cases {
        let fuse = FuseMetrics::default();
        let bus: &Arc<ProbeBus> = fuse.probes();
        for (i, &mask) in masks.iter().enumerate() {
            bus.add(&format!("p{i}"), probe(&engine, mask, 0));
        }
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                request(&fuse, i)
            })
        });
        let dropped: u64 = bus.counts().iter().map(|c| c.dropped).sum();
        eprintln!("{name}: {dropped} events dropped during the measurement");
    }
    g.finish();
}

fn flood(_c: &mut Criterion) {
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let fuse = FuseMetrics::default();
    // ~20 µs of spinning per batch of 256: a probe slower than the flood.
    fuse.probes().add("slow", probe(&engine, 1 << 1, 20_000));
    const N: u64 = 2_000_000;
    let t = std::time::Instant::now();
    for i in 0..N {
        request(&fuse, i);
    }
    let took = t.elapsed();
    std::thread::sleep(std::time::Duration::from_millis(200));
    fuse.probes().deliver_all();
    let c = &fuse.probes().counts()[0];
    eprintln!(
        "flood: {N} requests in {:.3} s ({:.0} ns each): {} delivered, {} dropped ({:.1} %), \
         {} queued",
        took.as_secs_f64(),
        took.as_nanos() as f64 / N as f64,
        c.delivered,
        c.dropped,
        c.dropped as f64 * 100.0 / N as f64,
        c.queued
    );
    assert_eq!(
        c.delivered + c.dropped + c.queued,
        N,
        "every event is counted"
    );
}

criterion_group!(benches, cost, flood);
criterion_main!(benches);
