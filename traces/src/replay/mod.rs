//! Replaying a trace against real files: mapping its requests onto a few scratch files
//! ([`Plan`], `plan.rs`) and the byte pattern those files hold ([`fill_pattern`],
//! `pattern.rs`). `kplugfs trace replay` runs the plan against a mount; the real-mount tests
//! read what it maps.
//!
//! ## How a trace maps onto files
//!
//! A trace addresses disks (or LUNs, or files) that do not exist where it is replayed:
//!
//! 1. Each request is cut at `block_size` boundaries of its stream's address space: block
//!    `(stream, offset / B)`. Requests without a byte offset (txt, lirs, oracle object traces)
//!    read their object as one whole block `(stream, id)`.
//! 2. Blocks get *slots* in order of first access: slot 0 for the first block the trace
//!    touches, 1 for the next new one, and so on. Reuse is thus kept exactly (the same block
//!    always lands on the same slot) while the multi-terabyte, mostly empty address spaces of
//!    real block traces shrink to their working set; blocks first touched in sequence get
//!    consecutive slots, so sequential runs stay sequential.
//! 3. At most `max_size / B` slots exist: beyond that, slot numbers wrap (`slot mod max`), so
//!    distinct blocks may share a slot ([`Plan::wrapped`]).
//! 4. Slots fill the files in order, `ceil(slots / files)` per file: slot `s` is at byte
//!    `(s mod per_file) * B` of file `s / per_file`. A request becomes one read per run of
//!    contiguous slots (normally exactly one).
//!
//! The files hold a pattern that is a function of (file, offset) alone, so every read is
//! verified without keeping a copy, and trace *writes* write the very bytes the pattern
//! already has there.

mod pattern;
mod plan;

pub use pattern::fill_pattern;
pub use plan::{Job, Plan, PlanError, Seg};
