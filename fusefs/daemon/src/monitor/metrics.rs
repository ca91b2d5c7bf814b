//! The monitoring plane's primitives: counters and latency histograms cheap enough to stay on
//! for every request, and the FUSE per-operation table built from them.
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
//! **Timing** uses `Instant::now()` (vDSO `clock_gettime`, about 20 ns each); an [`OpGuard`]
//! reads it twice per request. `fusefs/benches/metrics.rs` measures all of this against an
//! uninstrumented baseline; docs/METRICS.md has the figures and every metric name.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}

/// Latency percentiles in microseconds (`latency_us` objects of `.kplug/stats`); fields in
/// alphabetical order, as the document's keys (see `schema.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
}

macro_rules! fuse_ops {
    ($($variant:ident => $name:literal,)*) => {
        /// A FUSE operation, as counted in `.kplug/stats` (`fuse.<name>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum FuseOp {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl FuseOp {
            /// Every operation, in declaration order.
            pub const ALL: &[FuseOp] = &[$(FuseOp::$variant,)*];

            /// The name used in logs and in `.kplug/stats`.
            pub fn name(self) -> &'static str {
                match self {
                    $(FuseOp::$variant => $name,)*
                }
            }
        }
    };
}

fuse_ops! {
    Lookup => "lookup",
    Forget => "forget",
    Getattr => "getattr",
    Setattr => "setattr",
    Readlink => "readlink",
    Mknod => "mknod",
    Mkdir => "mkdir",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Symlink => "symlink",
    Rename => "rename",
    Link => "link",
    Open => "open",
    Read => "read",
    Write => "write",
    Flush => "flush",
    Release => "release",
    Fsync => "fsync",
    Opendir => "opendir",
    Readdir => "readdir",
    Readdirplus => "readdirplus",
    Releasedir => "releasedir",
    Fsyncdir => "fsyncdir",
    Statfs => "statfs",
    Setxattr => "setxattr",
    Getxattr => "getxattr",
    Listxattr => "listxattr",
    Removexattr => "removexattr",
    Access => "access",
    Create => "create",
    Fallocate => "fallocate",
    Lseek => "lseek",
    CopyFileRange => "copy_file_range",
}

/// Counters of one FUSE operation.
#[derive(Debug, Default)]
pub struct OpMetrics {
    /// Latency of every request, from the callback's entry to its reply (the count is the
    /// number of requests).
    pub latency: Histogram,
    /// Requests answered with an error.
    pub errors: Counter,
    /// Data bytes moved (read: bytes returned; write: bytes written; others: 0).
    pub bytes: Counter,
}

/// Per-operation FUSE metrics of a mount.
#[derive(Debug)]
pub struct FuseMetrics {
    ops: Box<[OpMetrics]>,
}

impl Default for FuseMetrics {
    fn default() -> Self {
        Self {
            ops: FuseOp::ALL.iter().map(|_| OpMetrics::default()).collect(),
        }
    }
}

impl FuseMetrics {
    /// The counters of `op`.
    #[inline]
    pub fn op(&self, op: FuseOp) -> &OpMetrics {
        &self.ops[op as usize]
    }

    /// Start timing a request of `op`; the guard records it when dropped.
    #[inline]
    pub fn start(&self, op: FuseOp) -> OpGuard<'_> {
        OpGuard {
            m: self.op(op),
            op,
            start: Instant::now(),
            failed: false,
        }
    }

    /// A snapshot of every operation seen at least once: `(name, requests, errors, bytes,
    /// latency)`.
    pub fn snapshot(&self) -> Vec<OpSnapshot> {
        FuseOp::ALL
            .iter()
            .map(|&op| {
                let m = self.op(op);
                let latency = m.latency.snapshot();
                OpSnapshot {
                    op,
                    count: latency.count(),
                    errors: m.errors.get(),
                    bytes: m.bytes.get(),
                    latency,
                }
            })
            .filter(|s| s.count > 0)
            .collect()
    }
}

/// One operation's counters at one point in time.
#[derive(Debug, Clone)]
pub struct OpSnapshot {
    /// The operation.
    pub op: FuseOp,
    /// Requests.
    pub count: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Data bytes moved.
    pub bytes: u64,
    /// Latencies in ns.
    pub latency: HistogramSnapshot,
}

/// Times one FUSE request: created at the callback's entry, records the latency (and the
/// error, if [`OpGuard::fail`] was called) when dropped, after the reply.
#[derive(Debug)]
#[must_use = "the request is recorded when the guard drops"]
pub struct OpGuard<'a> {
    m: &'a OpMetrics,
    op: FuseOp,
    start: Instant,
    failed: bool,
}

impl OpGuard<'_> {
    /// The operation timed.
    pub fn op(&self) -> FuseOp {
        self.op
    }

    /// The request failed.
    #[inline]
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// Count `n` data bytes moved by this request.
    #[inline]
    pub fn bytes(&self, n: u64) {
        self.m.bytes.add(n);
    }
}

impl Drop for OpGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.m.latency.record_duration(self.start.elapsed());
        if self.failed {
            self.m.errors.inc();
        }
    }
}

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

    #[test]
    fn op_guard_records_latency_errors_and_bytes() {
        let m = FuseMetrics::default();
        {
            let g = m.start(FuseOp::Read);
            g.bytes(4096);
            std::thread::sleep(Duration::from_millis(2));
        }
        {
            let mut g = m.start(FuseOp::Read);
            g.fail();
        }
        let _ = m.start(FuseOp::Lookup);
        let snap = m.snapshot();
        let names: Vec<_> = snap.iter().map(|s| s.op.name()).collect();
        assert_eq!(names, ["lookup", "read"]);
        let read = &snap[1];
        assert_eq!((read.count, read.errors, read.bytes), (2, 1, 4096));
        assert!(read.latency.max >= 2_000_000, "{:?}", read.latency.max);
    }

    #[test]
    fn op_names_are_unique() {
        let mut names: Vec<_> = FuseOp::ALL.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FuseOp::ALL.len());
    }
}
