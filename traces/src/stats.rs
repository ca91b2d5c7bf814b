//! A one-pass summary of a trace: [`TraceStats`] accumulates, [`TraceInfo`] is the result.
//!
//! Everything is streaming except the two sets a summary cannot avoid: the distinct ids (for
//! `unique_ids` and `unique_bytes`, memory ∝ unique ids) and the last end offset per stream
//! (for sequentiality, memory ∝ streams). Ids are hashed with a multiplicative hash rather
//! than SipHash: they come from a trace file, not an adversary, and this halves the cost.
//!
//! Definitions (what `kplugfs trace info` prints):
//! - `unique_bytes`: the sum over distinct ids of the size first seen for each, the working set
//!   libCacheSim's byte mode uses (2,029,769,728 for cloudPhysicsIO).
//! - `size_histogram`: power-of-two buckets `[2^k, 2^(k+1) - 1]`, plus `[0, 0]`; empty buckets
//!   are omitted.
//! - `sequentiality`: among requests with a byte offset, the fraction whose offset equals the
//!   end (offset + size) of the previous request *of the same stream*; the first request of a
//!   stream is not sequential. `None` when no request has an offset.
//! - times are in ns (see [`crate::Request::time`]); `duration_ns` = max − min (SYSTOR'17
//!   timestamps are not monotonic).

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasherDefault, Hasher},
};

use serde::{Deserialize, Serialize};

use crate::{Op, Request, TraceError};

/// A fast hasher for `u64` keys (Fibonacci multiplicative hashing).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

/// One non-empty size-histogram bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeBucket {
    /// Smallest size in the bucket (0 or a power of two), bytes.
    pub min: u64,
    /// Largest size in the bucket, bytes.
    pub max: u64,
    /// Requests in the bucket.
    pub count: u64,
}

/// The summary of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceInfo {
    /// Requests.
    pub requests: u64,
    /// Distinct ids.
    pub unique_ids: u64,
    /// Read requests.
    pub reads: u64,
    /// Write requests.
    pub writes: u64,
    /// Sum of request sizes, bytes (saturating).
    pub bytes: u64,
    /// Sum of read sizes, bytes.
    pub read_bytes: u64,
    /// Sum of write sizes, bytes.
    pub write_bytes: u64,
    /// Sum over distinct ids of the first-seen size, bytes.
    pub unique_bytes: u64,
    /// Request sizes in power-of-two buckets.
    pub size_histogram: Vec<SizeBucket>,
    /// Requests that continue the previous request of their stream.
    pub sequential_requests: u64,
    /// `sequential_requests` / requests with an offset.
    pub sequentiality: Option<f64>,
    /// Distinct streams among requests with an offset.
    pub streams: u64,
    /// Requests flagged as hits (kplug traces).
    pub hits: u64,
    /// Requests flagged as prefetches (kplug traces).
    pub prefetches: u64,
    /// Smallest time, ns.
    pub min_time_ns: Option<u64>,
    /// Largest time, ns.
    pub max_time_ns: Option<u64>,
    /// `max_time_ns - min_time_ns`.
    pub duration_ns: u64,
}

/// Accumulates a [`TraceInfo`] one request at a time.
#[derive(Debug, Clone)]
pub struct TraceStats {
    requests: u64,
    reads: u64,
    writes: u64,
    read_bytes: u64,
    write_bytes: u64,
    unique_bytes: u64,
    ids: HashSet<u64, IdBuild>,
    histogram: [u64; 65],
    with_offset: u64,
    sequential: u64,
    stream_end: HashMap<u64, u64, IdBuild>,
    hits: u64,
    prefetches: u64,
    min_time: Option<u64>,
    max_time: Option<u64>,
}

impl Default for TraceStats {
    fn default() -> Self {
        TraceStats {
            requests: 0,
            reads: 0,
            writes: 0,
            read_bytes: 0,
            write_bytes: 0,
            unique_bytes: 0,
            ids: HashSet::default(),
            histogram: [0; 65],
            with_offset: 0,
            sequential: 0,
            stream_end: HashMap::default(),
            hits: 0,
            prefetches: 0,
            min_time: None,
            max_time: None,
        }
    }
}

impl TraceStats {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one request.
    pub fn add(&mut self, r: &Request) {
        self.requests += 1;
        match r.op {
            Op::Read => {
                self.reads += 1;
                self.read_bytes = self.read_bytes.saturating_add(r.size);
            }
            Op::Write => {
                self.writes += 1;
                self.write_bytes = self.write_bytes.saturating_add(r.size);
            }
        }
        if self.ids.insert(r.id) {
            self.unique_bytes = self.unique_bytes.saturating_add(r.size);
        }
        let bucket = if r.size == 0 {
            0
        } else {
            64 - r.size.leading_zeros() as usize
        };
        self.histogram[bucket] += 1;
        if let Some(off) = r.offset {
            self.with_offset += 1;
            let end = off.saturating_add(r.size);
            if let Some(prev) = self.stream_end.insert(r.stream, end)
                && prev == off
            {
                self.sequential += 1;
            }
        }
        self.hits += u64::from(r.flags.is_hit());
        self.prefetches += u64::from(r.flags.is_prefetch());
        self.min_time = Some(self.min_time.map_or(r.time, |t| t.min(r.time)));
        self.max_time = Some(self.max_time.map_or(r.time, |t| t.max(r.time)));
    }

    /// The summary so far.
    pub fn finish(&self) -> TraceInfo {
        let size_histogram = self
            .histogram
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(k, &count)| {
                let (min, max) = match k {
                    0 => (0, 0),
                    64 => (1 << 63, u64::MAX),
                    k => (1u64 << (k - 1), (1u64 << k) - 1),
                };
                SizeBucket { min, max, count }
            })
            .collect();
        TraceInfo {
            requests: self.requests,
            unique_ids: self.ids.len() as u64,
            reads: self.reads,
            writes: self.writes,
            bytes: self.read_bytes.saturating_add(self.write_bytes),
            read_bytes: self.read_bytes,
            write_bytes: self.write_bytes,
            unique_bytes: self.unique_bytes,
            size_histogram,
            sequential_requests: self.sequential,
            sequentiality: (self.with_offset > 0)
                .then(|| self.sequential as f64 / self.with_offset as f64),
            streams: self.stream_end.len() as u64,
            hits: self.hits,
            prefetches: self.prefetches,
            min_time_ns: self.min_time,
            max_time_ns: self.max_time,
            duration_ns: match (self.min_time, self.max_time) {
                (Some(a), Some(b)) => b - a,
                _ => 0,
            },
        }
    }
}

impl TraceInfo {
    /// Summarises a whole request stream, stopping at its first error.
    pub fn from_requests<I>(requests: I) -> Result<TraceInfo, TraceError>
    where
        I: IntoIterator<Item = Result<Request, TraceError>>,
    {
        let mut s = TraceStats::new();
        for r in requests {
            s.add(&r?);
        }
        Ok(s.finish())
    }
}
