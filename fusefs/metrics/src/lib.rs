//! The monitoring plane's primitives: counters and latency histograms cheap enough to stay on
//! for every request (the daemon's FUSE table and the object store's request table are built
//! from them).
//!
//! **Why sharded.** A FUSE mount serves requests on `--threads` workers (8 by default) and two
//! prefetch threads. One `AtomicU64` bumped by all of them bounces its cache line between
//! cores on every request: a locked add on a line another core just wrote costs 40-100 ns,
//! more than the rest of a cache hit. So every [`Counter`] and [`Histogram`] is split into
//! [`SHARDS`] cache-line-padded shards; a thread always writes the shard picked by its own
//! index (handed out once per thread, round robin), so on a 2-core machine two threads never
//! share a line and an update is an uncontended `lock xadd` (a few ns). Reads add the shards
//! up; they happen only when someone `cat`s `.kplug/stats` or the history thread samples, so
//! making them slower is the right trade. Updates are `Relaxed`: a snapshot taken while
//! requests run may be a few increments behind, never wrong afterwards.
//!
//! **Histograms** count latencies (in ns) in log2 buckets: bucket `i` holds values in
//! `[2^(i-1), 2^i)`, bucket 0 holds 0. [`BUCKETS`] buckets cover up to 2^39 ns (about nine
//! minutes); longer values land in the last one. Recording is one bucket increment, one add
//! to the sum and a max check, all in the thread's shard. Percentiles are derived at read
//! time: the bucket holding the rank is found and the value interpolated linearly inside it,
//! then clamped to the maximum seen, so an estimate is within the bucket's 2x range of the
//! true value (and exact for the maximum).
//!
//! **Timing** uses `Instant::now()` (vDSO `clock_gettime`, about 20 ns each); the daemon's
//! `OpGuard` reads it twice per request. `fusefs/daemon/benches/metrics.rs` measures all of
//! this against an uninstrumented baseline; docs/METRICS.md has the figures and every metric
//! name.

#![warn(missing_docs)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Shards per counter: a power of two at least the number of threads that update at once
/// (8 FUSE workers + 2 prefetch threads by default), so threads rarely share a shard.
pub const SHARDS: usize = 16;

/// Log2 latency buckets: up to 2^39 ns (~550 s); longer values go in the last bucket.
pub const BUCKETS: usize = 40;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, handed out round robin the first time it records anything.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The shard index of the calling thread.
#[inline]
fn shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        s.set(v);
        v
    })
}

/// A value on its own cache line (128 bytes: adjacent-line prefetch pairs lines on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A monotonic counter, sharded per thread. See the module docs.
#[derive(Debug)]
pub struct Counter {
    shards: Box<[Padded<AtomicU64>]>,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }
}

impl Counter {
    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.shards[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The sum over all shards.
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |a, s| a.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

#[derive(Debug)]
#[repr(align(128))]
struct HistShard {
    sum: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for HistShard {
    fn default() -> Self {
        Self {
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A latency histogram with log2 buckets, sharded per thread. See the module docs.
#[derive(Debug)]
pub struct Histogram {
    shards: Box<[HistShard]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HistShard::default()).collect(),
        }
    }
}

/// The bucket of value `v`: 0 for 0, else `floor(log2 v) + 1`, capped at the last bucket.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    ((u64::BITS - v.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The smallest value of bucket `i`.
fn bucket_low(i: usize) -> u64 {
    if i == 0 { 0 } else { 1 << (i - 1) }
}

impl Histogram {
    /// Record one value (nanoseconds for latencies).
    #[inline]
    pub fn record(&self, v: u64) {
        let s = &self.shards[shard()];
        s.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        s.sum.fetch_add(v, Ordering::Relaxed);
        if v > s.max.load(Ordering::Relaxed) {
            s.max.fetch_max(v, Ordering::Relaxed);
        }
    }

    /// Record a duration in nanoseconds.
    #[inline]
    pub fn record_duration(&self, d: Duration) {
        self.record(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// Add up the shards.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot {
            buckets: [0; BUCKETS],
            sum: 0,
            max: 0,
        };
        for s in self.shards.iter() {
            for (o, b) in out.buckets.iter_mut().zip(&s.buckets) {
                *o += b.load(Ordering::Relaxed);
            }
            out.sum = out.sum.wrapping_add(s.sum.load(Ordering::Relaxed));
            out.max = out.max.max(s.max.load(Ordering::Relaxed));
        }
        out
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Values per log2 bucket.
    pub buckets: [u64; BUCKETS],
    /// Sum of the values.
    pub sum: u64,
    /// Largest value.
    pub max: u64,
}

impl HistogramSnapshot {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Mean value (0 when empty).
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count()).unwrap_or(0)
    }

    /// Estimated `q`-quantile (`q` in [0, 1]): the bucket holding rank `ceil(q * count)`,
    /// interpolated linearly inside the bucket, clamped to the maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut before = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if before + n >= rank {
                let low = bucket_low(i);
                let high = if i == 0 { 0 } else { low * 2 - 1 };
                let frac = (rank - before) as f64 / n as f64;
                let v = low as f64 + (high - low) as f64 * frac;
                return (v.round() as u64).clamp(low, self.max.max(low));
            }
            before += n;
        }
        self.max
    }

    /// Percentiles in microseconds, for JSON.
    pub fn latency_us(&self) -> LatencyUs {
        LatencyUs {
            p50: self.quantile(0.50) / 1000,
            p90: self.quantile(0.90) / 1000,
            p99: self.quantile(0.99) / 1000,
            max: self.max / 1000,
            mean: self.mean() / 1000,
            histogram: Some(*self),
        }
    }
}

/// Latency percentiles in microseconds (`latency_us` objects of `.kplug/stats`); fields in
/// alphabetical order, as the document's keys (see `schema.rs`). Equality compares what the
/// JSON carries (the percentiles), not the histogram.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LatencyUs {
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// The histogram the percentiles were read from (ns, log2 buckets), which
    /// `.kplug/metrics` exposes as a Prometheus histogram. Not in the JSON documents (a
    /// history row would grow tenfold), so `None` once parsed back.
    #[serde(skip)]
    pub histogram: Option<HistogramSnapshot>,
}

impl PartialEq for LatencyUs {
    fn eq(&self, o: &Self) -> bool {
        (self.max, self.mean, self.p50, self.p90, self.p99) == (o.max, o.mean, o.p50, o.p90, o.p99)
    }
}

impl Eq for LatencyUs {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sharded_counter_sums_every_thread() {
        let c = Arc::new(Counter::default());
        let threads: Vec<_> = (0..2 * SHARDS)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                    }
                    c.add(t as u64);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let extra: u64 = (0..2 * SHARDS as u64).sum();
        assert_eq!(c.get(), 2 * SHARDS as u64 * 1000 + extra);
    }

    #[test]
    fn threads_get_distinct_shards_round_robin() {
        let mine = shard();
        let other = std::thread::spawn(shard).join().unwrap();
        assert!(mine < SHARDS && other < SHARDS);
        // The same thread always uses the same shard.
        assert_eq!(shard(), mine);
    }

    #[test]
    fn buckets_are_log2() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_counts_sum_and_max_across_threads() {
        let h = Arc::new(Histogram::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in 0..100 {
                        h.record(t * 1000 + v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 400);
        let want: u64 = (0..4u64)
            .flat_map(|t| (0..100).map(move |v| t * 1000 + v))
            .sum();
        assert_eq!(s.sum, want);
        assert_eq!(s.max, 3099);
        assert_eq!(s.mean(), want / 400);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let s = h.snapshot();
        // 1..=1000: bucket [256, 512) holds 256..=511 (ranks 256..=511): rank 500 sits at
        // 245/256 of it, 256 + 255 * 245 / 256 = 500.04.
        assert_eq!(s.quantile(0.5), 500);
        // Rank 900 is the 389th of the 489 values in [512, 1024).
        assert_eq!(
            s.quantile(0.9),
            512 + (511.0 * 389.0 / 489.0_f64).round() as u64
        );
        // Rank 990 interpolates past the maximum: clamped to it.
        assert_eq!(s.quantile(0.99), 1000);
        assert_eq!(s.quantile(1.0), 1000);
        assert_eq!(s.quantile(0.0), 1);
        for (q, truth) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let est = s.quantile(q) as f64;
            assert!(est >= truth / 2.0 && est <= truth * 2.0, "{q}: {est}");
        }
    }

    #[test]
    fn percentiles_of_a_bimodal_distribution() {
        // 90 fast requests of 1 µs, 10 slow ones of 1 ms: p50 and p90 are fast, p99 slow.
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(1_000);
        }
        for _ in 0..10 {
            h.record(1_000_000);
        }
        let s = h.snapshot();
        assert_eq!(bucket_of(s.quantile(0.5)), bucket_of(1_000));
        assert_eq!(bucket_of(s.quantile(0.9)), bucket_of(1_000));
        assert_eq!(bucket_of(s.quantile(0.99)), bucket_of(1_000_000));
        assert_eq!(s.quantile(1.0), 1_000_000); // clamped to the maximum
        let us = s.latency_us();
        assert_eq!(us.max, 1000);
        assert!(us.p50 <= 1 && us.p99 >= 524, "{us:?}");
        assert_eq!(us.mean, (90 * 1_000 + 10 * 1_000_000) / 100 / 1000);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let s = Histogram::default().snapshot();
        assert_eq!(s.count(), 0);
        assert_eq!(s.quantile(0.5), 0);
        assert_eq!(s.mean(), 0);
    }
}
