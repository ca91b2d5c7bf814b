//! What a replay reports: [`ReplaySummary`] and its parts, serialized as `kplugfs trace
//! replay --json` prints them (the text form is the CLI's).
//!
//! Design: plain data with public fields, in the order the JSON object has always had; the
//! two figures derived from raw measurements are computed here and tested on their own:
//! latency percentiles by the nearest-rank rule ([`Latency::from_sorted`]) and the block
//! cache's change over the replay ([`CacheDelta::between`]) from the figures the caller read
//! before and after (this crate does not know where a mount publishes them).

use std::path::PathBuf;

use serde::Serialize;

use crate::Format;

/// Latency percentiles, µs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest request.
    pub max_us: f64,
}

impl Latency {
    /// The percentiles of `sorted_ns` (ascending, ns) by nearest rank: the value below which
    /// at least that fraction of the requests fall. `None` for no requests.
    pub fn from_sorted(sorted_ns: &[u64]) -> Option<Latency> {
        let last = *sorted_ns.last()?;
        let pct = |p: f64| {
            let i = ((p * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len()) - 1;
            sorted_ns[i] as f64 / 1000.0
        };
        Some(Latency {
            p50_us: pct(0.50),
            p90_us: pct(0.90),
            p99_us: pct(0.99),
            max_us: last as f64 / 1000.0,
        })
    }
}

/// A block cache's figures at one moment, as the caller of [`replay`](super::replay) reads
/// them (`kplugfs` from `MOUNT/.kplug/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheFigures {
    /// Block lookups answered from the cache so far.
    pub hits: u64,
    /// Block lookups that had to fetch so far.
    pub misses: u64,
    /// The cache's block size, bytes (the replay's default mapping granularity).
    pub block_size: u64,
}

/// The block cache's counters over the replay.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CacheDelta {
    /// Block hits during the replay.
    pub hits: u64,
    /// Block misses during the replay.
    pub misses: u64,
    /// hits / (hits + misses), `None` without accesses.
    pub hit_ratio: Option<f64>,
}

impl CacheDelta {
    /// The change from `before` to `after`; `None` unless both were read. A counter that went
    /// down (a remount in between) counts as no change.
    pub fn between(before: Option<CacheFigures>, after: Option<CacheFigures>) -> Option<Self> {
        let (before, after) = (before?, after?);
        let hits = after.hits.saturating_sub(before.hits);
        let misses = after.misses.saturating_sub(before.misses);
        Some(CacheDelta {
            hits,
            misses,
            hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        })
    }
}

/// The scratch layout.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScratchInfo {
    /// The scratch directory.
    pub dir: PathBuf,
    /// Files.
    pub files: u32,
    /// Bytes per file.
    pub file_size: u64,
    /// Mapping block size.
    pub block_size: u64,
    /// Distinct blocks of the trace.
    pub unique_blocks: u64,
    /// Slots (blocks of scratch space).
    pub slots: u64,
    /// Whether blocks shared slots (working set above `--max-size`).
    pub wrapped: bool,
    /// Whether existing scratch files were reused.
    pub reused: bool,
}

/// What `kplugfs trace replay` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    /// The trace file.
    pub trace: PathBuf,
    /// Its format.
    pub format: Format,
    /// The replay directory.
    pub mount: PathBuf,
    /// Requests issued.
    pub requests: u64,
    /// Reads issued.
    pub reads: u64,
    /// Writes issued.
    pub writes: u64,
    /// Trace writes left out (`--skip-writes`).
    pub skipped_writes: u64,
    /// Size-0 requests (nothing to issue).
    pub empty_requests: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall time of the replay (file creation excluded), s.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// MiB (read + written) per second.
    pub mib_per_sec: f64,
    /// Per-request latency.
    pub latency: Option<Latency>,
    /// Block cache counters, `None` when the directory has no `.kplug/status`.
    pub cache: Option<CacheDelta>,
    /// Reads whose bytes were checked (all of them).
    pub verified_reads: u64,
    /// Reads that returned wrong bytes (or too few).
    pub mismatches: u64,
    /// The first wrong read.
    pub first_mismatch: Option<String>,
    /// Worker threads.
    pub threads: usize,
    /// The scratch layout.
    pub scratch: ScratchInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(Latency::from_sorted(&[]), None);
        let one = Latency::from_sorted(&[1500]).unwrap();
        assert_eq!((one.p50_us, one.p99_us, one.max_us), (1.5, 1.5, 1.5));
        let ns: Vec<u64> = (1..=200).map(|i| i * 1000).collect();
        let l = Latency::from_sorted(&ns).unwrap();
        assert_eq!(
            l,
            Latency {
                p50_us: 100.0,
                p90_us: 180.0,
                p99_us: 198.0,
                max_us: 200.0
            }
        );
    }

    #[test]
    fn cache_delta_needs_both_readings() {
        let at = |hits, misses| CacheFigures {
            hits,
            misses,
            block_size: 4096,
        };
        assert_eq!(CacheDelta::between(None, Some(at(1, 1))), None);
        assert_eq!(CacheDelta::between(Some(at(1, 1)), None), None);
        let d = CacheDelta::between(Some(at(10, 5)), Some(at(40, 15))).unwrap();
        assert_eq!((d.hits, d.misses, d.hit_ratio), (30, 10, Some(0.75)));
        let idle = CacheDelta::between(Some(at(10, 5)), Some(at(10, 5))).unwrap();
        assert_eq!(idle.hit_ratio, None);
        let remounted = CacheDelta::between(Some(at(10, 5)), Some(at(2, 1))).unwrap();
        assert_eq!((remounted.hits, remounted.misses), (0, 0));
    }
}
