//! Replaying a trace against real files (`kplugfs trace replay`): its requests are issued
//! against a directory, normally a kplugfs mount, every byte read is verified, and the
//! summary gives throughput, latency percentiles and the block cache's hit ratio.
//!
//! The files: `plan.rs` maps a trace onto scratch files ([`Plan`]), `pattern.rs` is the bytes
//! they hold ([`fill_pattern`]), `scratch.rs` makes and removes them, `worker.rs` issues the
//! requests, `summary.rs` is what a replay reports and `run.rs` is the whole replay
//! ([`replay`]). The real-mount tests (`tests/tests/trace_reads.rs`) use the mapping alone.
//!
//! ## How a trace maps onto files
//!
//! A trace addresses disks (or LUNs, or files) that do not exist where it is replayed. The
//! replay builds a *scratch* directory `DIR/.kplugfs-replay/` ([`SCRATCH_DIR`]) of `--files`
//! files and maps the trace into it:
//!
//! 1. Each request is cut at `--block-size` boundaries of its stream's address space: block
//!    `(stream, offset / B)`. Requests without a byte offset (txt, lirs, oracle object traces)
//!    read their object as one whole block `(stream, id)`.
//! 2. Blocks get *slots* in order of first access: slot 0 for the first block the trace
//!    touches, 1 for the next new one, and so on. Reuse is thus kept exactly (the same block
//!    always lands on the same slot) while the multi-terabyte, mostly empty address spaces of
//!    real block traces shrink to their working set; blocks first touched in sequence get
//!    consecutive slots, so sequential runs stay sequential.
//! 3. At most `--max-size / B` slots exist: beyond that, slot numbers wrap (`slot mod max`),
//!    so distinct blocks may share a slot ([`Plan::wrapped`]; the summary says when that
//!    happened).
//! 4. Slots fill the files in order, `ceil(slots / files)` per file: slot `s` is at byte
//!    `(s mod per_file) * B` of file `s / per_file`. A request becomes one read per run of
//!    contiguous slots (normally exactly one).
//!
//! The files are filled with a pattern that is a function of (file, offset) alone, so every
//! read is verified without keeping a copy, and trace *writes* write the very bytes the
//! pattern already has there: they exercise the write path (and the cache's invalidation)
//! without changing what later reads must return. Only the scratch files are ever written.
//!
//! ## How the requests run
//!
//! Requests run as fast as the directory answers (trace timestamps are not honoured), in
//! trace order with one thread; with `--threads N` workers take the next request in trace
//! order. By default the kernel page cache is kept out of the way: the scratch files are
//! opened with `posix_fadvise(RANDOM)` (no kernel readahead) and the pages a request touched
//! are dropped after it (`posix_fadvise(DONTNEED)`), so every request reaches the daemon's
//! block cache as the trace issued it, and prefetching is left to the mount's prefetch policy
//! (`--keep-page-cache`, [`ReplayOptions::drop_page_cache`] off, turns both off: the kernel
//! then answers what it has cached).
//!
//! The hit ratio is the change of the block cache's hits and misses over the replay
//! ([`CacheDelta`]). This crate does not read a mount: the caller gives [`replay`] a probe
//! returning the [`CacheFigures`] (`kplugfs` reads `cache.hits`/`cache.misses` of
//! `MOUNT/.kplug/status`: block accesses of the daemon, prefetch-served reads included); on a
//! directory without them (a plain directory, or a mount with `--cache-size 0`) it is n/a.

mod pattern;
mod plan;
mod run;
mod scratch;
mod summary;
mod worker;

pub use pattern::fill_pattern;
pub use plan::{Job, Plan, PlanError, Seg};
pub use run::{DEFAULT_BLOCK_SIZE, ReplayError, ReplayOptions, replay};
pub use scratch::{
    MANIFEST, SCRATCH_DIR, ScratchError, prepare_scratch, remove_scratch, scratch_file,
};
pub use summary::{CacheDelta, CacheFigures, Latency, ReplaySummary, ScratchInfo};
pub use worker::RequestError;
