//! Cost of the monitoring plane's per-request instrumentation, next to an uninstrumented
//! baseline in the same run: counters (one shared atomic vs. the sharded `Counter`), a
//! histogram record, and the FUSE `OpGuard` (two clock reads + a histogram record) around a
//! small piece of work; single-threaded and contended on 2 threads (this machine's cores).
//!
//! Run: `cargo bench -p kplugfs --bench metrics` (docs/METRICS.md has the figures).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kplug_daemon::monitor::metrics::{Counter, FuseMetrics, FuseOp, Histogram};

/// Stand-in for a request's own work: a few dozen ns of arithmetic the compiler cannot drop.
#[inline(never)]
fn work(x: u64) -> u64 {
    let mut h = x;
    for i in 0..16u64 {
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(13) ^ i;
    }
    h
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_thread");
    let shared = AtomicU64::new(0);
    let counter = Counter::default();
    let hist = Histogram::default();
    let fuse = FuseMetrics::default();
    g.bench_function("baseline_work", |b| {
        let mut x = 1u64;
        b.iter(|| {
            x = work(black_box(x));
            x
        })
    });
    g.bench_function("shared_atomic_add", |b| {
        b.iter(|| shared.fetch_add(black_box(1), Ordering::Relaxed))
    });
    g.bench_function("sharded_counter_add", |b| {
        b.iter(|| counter.add(black_box(1)))
    });
    g.bench_function("histogram_record", |b| {
        let mut v = 1u64;
        b.iter(|| {
            v = v.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            hist.record(black_box(v >> 40));
        })
    });
    g.bench_function("op_guard_alone", |b| {
        b.iter(|| drop(fuse.start(black_box(FuseOp::Read))))
    });
    g.bench_function("work_with_op_guard", |b| {
        let mut x = 1u64;
        b.iter(|| {
            let _g = fuse.start(FuseOp::Read);
            x = work(black_box(x));
            x
        })
    });
    g.finish();
}

/// Run `op` `iters` times on each of 2 threads at once; the time of the slower thread.
fn two_threads<F>(iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let op = op.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    op(i);
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    g.bench_function("baseline_work", |b| {
        b.iter_custom(|n| {
            two_threads(n, |i| {
                black_box(work(black_box(i)));
            })
        })
    });
    let shared = Arc::new(AtomicU64::new(0));
    g.bench_function("shared_atomic_add", |b| {
        let s = shared.clone();
        b.iter_custom(move |n| {
            let s = s.clone();
            two_threads(n, move |_| {
                s.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    let counter = Arc::new(Counter::default());
    g.bench_function("sharded_counter_add", |b| {
        let c = counter.clone();
        b.iter_custom(move |n| {
            let c = c.clone();
            two_threads(n, move |_| c.add(1))
        })
    });
    let hist = Arc::new(Histogram::default());
    g.bench_function("histogram_record", |b| {
        let h = hist.clone();
        b.iter_custom(move |n| {
            let h = h.clone();
            two_threads(n, move |i| h.record(black_box(i * 977)))
        })
    });
    let fuse = Arc::new(FuseMetrics::default());
    g.bench_function("work_with_op_guard", |b| {
        let f = fuse.clone();
        b.iter_custom(move |n| {
            let f = f.clone();
            two_threads(n, move |i| {
                let _g = f.start(FuseOp::Read);
                black_box(work(black_box(i)));
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single, contended
}
criterion_main!(benches);
