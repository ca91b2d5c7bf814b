//! Loading a trace for the simulator: ids only, in request order, read once (streaming,
//! through `kplug_traces`), split into blocks when asked, and by default for a trace that
//! says its block size (`kplugfs trace record` writes the mount's): a recorded trace replays
//! the blocks the mount cached, not one object per file.

use std::path::Path;

use anyhow::{Result, bail};
use kplug_engine::hash::FastSet;
use kplug_traces::Format;

use crate::Progress;

/// A loaded trace: the id sequence and its unique count.
#[derive(Debug)]
pub struct Trace {
    /// Ids in request order.
    pub ids: Vec<u64>,
    /// Distinct ids.
    pub unique: u64,
    /// The block size requests were split by (`--split-blocks`, or the trace's own).
    pub block_size: Option<u64>,
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
    let reader = kplug_traces::open(path, format)?;
    let split = split.or(reader.block_size());
    let reader = reader.filter(|r| !matches!(r, Ok(req) if req.flags.is_prefetch()));
    let splitting = split.is_some();
    let mut ids = Vec::new();
    let mut push = |r: Result<kplug_traces::Request, kplug_traces::TraceError>| -> Result<()> {
        let r = r?;
        // Blocks of different streams (files of a recorded mount, disks, LUNs) are different
        // objects: key = (stream << 32) | block, as the mount keys its blocks. Stream 0 (every
        // single-address-space trace) keeps the plain block number, as libCacheSim does.
        let id = if splitting && r.stream != 0 {
            (r.stream << 32) | (r.id & 0xffff_ffff)
        } else {
            r.id
        };
        ids.push(id);
        if ids.len() % (1 << 16) == 0 {
            progress.set_position(ids.len() as u64);
        }
        Ok(())
    };
    match split {
        Some(b) => {
            if b == 0 {
                bail!("--split-blocks must be a positive size in bytes (e.g. --split-blocks 4096)");
            }
            for r in kplug_traces::split_blocks(reader, b) {
                push(r)?;
            }
        }
        None => {
            for r in reader {
                push(r)?;
            }
        }
    }
    if ids.is_empty() {
        bail!(
            "{}: the trace has no demand requests to replay (a recorded trace holds what was \
             read or written through the mount between `kplugfs trace record` and `kplugfs \
             trace stop`: read some files in between)",
            path.display()
        );
    }
    // The folded-multiply hasher of the cache's maps: SipHash made this count a third of
    // the start-up of a replay of millions of requests.
    let unique = ids.iter().copied().collect::<FastSet<u64>>().len() as u64;
    Ok(Trace {
        ids,
        unique,
        block_size: split,
    })
}
