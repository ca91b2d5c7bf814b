//! Loading a trace for the simulator: ids only, in request order, read once (streaming,
//! through `kplug_traces`), split into blocks when asked, and by default for a trace that
//! says its block size (`kplugfs trace record` writes the mount's): a recorded trace replays
//! the blocks the mount cached, not one object per file.
//!
//! The distinct ids are counted only when asked (a size given as a fraction, the table's
//! header): on a trace of sparse ids that is a hash-set insert per request, which on
//! cache2k's `orm-busy` (5 M requests over 76,349 ids) was a fifth of a whole FIFO run, and
//! `kplugfs sim --cache-objects N --json` never needs it (docs/benchmarks.md §10).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, bail};
use kplug_engine::hash::FastSet;
use kplug_traces::Format;

use crate::Progress;

/// A loaded trace: the id sequence, and its unique count once asked for.
#[derive(Debug)]
pub struct Trace {
    /// Ids in request order.
    pub ids: Vec<u64>,
    /// The block size requests were split by (`--split-blocks`, or the trace's own).
    pub block_size: Option<u64>,
    unique: OnceLock<u64>,
}

impl Trace {
    /// The trace of `ids` (in request order), split by `block_size` if any.
    pub fn new(ids: Vec<u64>, block_size: Option<u64>) -> Trace {
        Trace {
            ids,
            block_size,
            unique: OnceLock::new(),
        }
    }

    /// The number of distinct ids, counted at the first call (one pass over the ids).
    pub fn unique(&self) -> u64 {
        *self.unique.get_or_init(|| count_unique(&self.ids))
    }
}

/// The number of distinct ids. Dense ids (the largest below 16 times their count: block
/// numbers, numbered objects) are counted in a bitmap, at most 2 bytes a request and one pass;
/// others in a hash set with the folded-multiply hasher of the cache's maps. The hash set
/// alone took 220 ms for 4.2 M requests over 1 M ids (a 1 KiB split of cloudPhysicsIO), a
/// fifth of the whole replay; the bitmap takes a few ms. (SipHash was slower still.)
fn count_unique(ids: &[u64]) -> u64 {
    let max = ids.iter().copied().max().unwrap_or(0);
    if max / 16 <= ids.len() as u64 {
        let mut bits = vec![0u64; (max / 64 + 1) as usize];
        let mut n = 0;
        for &id in ids {
            let (word, bit) = (&mut bits[(id / 64) as usize], 1u64 << (id % 64));
            n += u64::from(*word & bit == 0);
            *word |= bit;
        }
        n
    } else {
        ids.iter().copied().collect::<FastSet<u64>>().len() as u64
    }
}

/// Read a trace into memory (ids only), splitting into blocks when asked.
pub fn load_trace(
    path: &Path,
    format: Format,
    split: Option<u64>,
    progress: &dyn Progress,
) -> Result<Trace> {
    // A trace recorded from a mount also holds the blocks its prefetcher fetched: the
    // simulated policies decide their own prefetching, so only demand accesses replay.
    let mut reader = kplug_traces::open(path, format)?;
    let split = split.or(reader.block_size());
    if split.is_none() {
        // Unsplit, a request's id is its key: read in batches, between which progress shows.
        // An oracleGeneral file says its length in records (24 bytes each; fewer than that
        // if compressed, and the vector grows): reserved at once, it is not copied as it grows.
        let mut ids = Vec::new();
        if reader.format() == Format::Oracle
            && let Ok(meta) = std::fs::metadata(path)
        {
            ids.reserve((meta.len() / 24).min(1 << 32) as usize);
        }
        while reader.demand_ids(&mut ids, 1 << 16)? > 0 {
            progress.set_position(ids.len() as u64);
        }
        return trace_of(path, ids, None);
    }
    let Some(b) = split.filter(|&b| b > 0) else {
        bail!("--split-blocks must be a positive size in bytes (e.g. --split-blocks 4096)");
    };
    let reader = reader.filter(|r| !matches!(r, Ok(req) if req.flags.is_prefetch()));
    let mut ids = Vec::new();
    for r in kplug_traces::split_blocks(reader, b) {
        let r = r?;
        // Blocks of different streams (files of a recorded mount, disks, LUNs) are different
        // objects: key = (stream << 32) | block, as the mount keys its blocks. Stream 0 (every
        // single-address-space trace) keeps the plain block number, as libCacheSim does.
        ids.push(if r.stream != 0 {
            (r.stream << 32) | (r.id & 0xffff_ffff)
        } else {
            r.id
        });
        if ids.len() % (1 << 16) == 0 {
            progress.set_position(ids.len() as u64);
        }
    }
    trace_of(path, ids, split)
}

/// The trace of `ids` read from `path`; an error if there are none.
fn trace_of(path: &Path, ids: Vec<u64>, block_size: Option<u64>) -> Result<Trace> {
    if ids.is_empty() {
        bail!(
            "{}: the trace has no demand requests to replay (a recorded trace holds what was \
             read or written through the mount between `kplugfs trace record` and `kplugfs \
             trace stop`: read some files in between)",
            path.display()
        );
    }
    Ok(Trace::new(ids, block_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of counting (the bitmap for dense ids, the hash set for sparse ones) agree
    /// with a sort, on the edges of the bitmap's range too.
    #[test]
    fn unique_ids_are_counted_dense_or_sparse() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for (len, range) in [
            (1, 1),
            (10, 1),
            (1000, 64),
            (1000, 16_000),
            (1000, 16_017),
            (5000, 1 << 40),
            (5000, u64::MAX),
        ] {
            let ids: Vec<u64> = (0..len).map(|_| next() % range).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(
                count_unique(&ids),
                sorted.len() as u64,
                "{len} ids below {range}"
            );
        }
        assert_eq!(count_unique(&[u64::MAX, 0, u64::MAX]), 2);
        assert_eq!(count_unique(&[]), 0);
    }
}
