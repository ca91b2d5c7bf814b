//! Streaming readers and writers for block and object I/O traces.
//!
//! `kplugfs sim` replays traces through cache policies and must agree with libCacheSim to the
//! request, so this crate's first job is to turn every supported encoding into the *same*
//! sequence of [`Request`]s that libCacheSim would see, and to say exactly where that is not
//! possible (an error naming the file, the line or record, and the reason: nothing is dropped
//! silently; the two skips libCacheSim specifies — `*`/empty LIRS lines and size-0 oracleGeneral
//! records — are counted and reported by [`TraceReader::skipped`]).
//!
//! Design:
//! - **Streaming, constant memory.** Every reader pulls from a `Read` through one fixed 64 KiB
//!   buffer (`input.rs`); binary records are decoded in place from that buffer and text lines are
//!   slices of it, so no reader allocates per record. Lines longer than the buffer are an error
//!   rather than a reason to grow without bound.
//! - **One request type.** [`Request`] carries libCacheSim's object id (`id`), a byte address
//!   when the format has one (`offset`), the size in bytes, the op, a `stream` (disk, LUN or
//!   file: the unit within which offsets are contiguous) and, for kplugfs's own traces, hit and
//!   prefetch flags. Time is always nanoseconds (see [`Request::time`] for each format's epoch).
//! - **Ids follow libCacheSim**: block traces use the LBN (vscsi, csv: 512-byte sectors) or the
//!   byte offset (msr, systor) as the object id, because that is the column libCacheSim's readers
//!   take; the per-format table is in `docs/traces.md`.
//! - **Blocks are derived, not read.** [`TraceIterExt::split_blocks`] expands requests into the
//!   block accesses a block cache sees, with the reference rule
//!   `floor(off/B) ..= floor((off+size-1)/B)`.
//! - **Errors end the stream.** After the first `Err` an iterator returns `None`: a reader that
//!   lost sync with its input cannot say where the next valid record starts, and fusing
//!   guarantees termination on any input.
//!
//! On top of reading, the whole-file operations of `kplugfs trace`, so that tests drive them
//! without the binary: [`convert`] (summarise a file, convert it to another format) and
//! [`replay`] (map a trace onto scratch files and issue it against a directory), reporting
//! their progress through [`progress::Progress`].

#![warn(missing_docs)]

pub mod convert;
mod detect;
mod error;
mod format;
mod input;
mod kplug;
mod num;
pub mod progress;
mod reader;
mod readers;
pub mod replay;
mod split;
pub mod stats;
mod writer;

pub use error::{Location, TraceError};
pub use format::{Format, UnknownFormatName};
pub use input::zstd_compressed;
pub use kplug::{KPLUG_HEADER_LEN, KPLUG_MAGIC, KPLUG_RECORD_LEN, KPLUG_VERSION};
pub use reader::{ReadOptions, TraceReader, open, open_with};
pub use split::{SplitBlocks, TraceIterExt, split_blocks};
pub use stats::{TraceInfo, TraceStats};
pub use writer::{TraceWriter, fill_next_access};

use serde::{Deserialize, Serialize};

/// Convenience alias for results whose error is a [`TraceError`].
pub type Result<T, E = TraceError> = std::result::Result<T, E>;

/// The bytes in one LBN unit (a SCSI sector) for the vscsi and csv formats.
pub const SECTOR_BYTES: u64 = 512;

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A read (also used for formats without an op column: txt, lirs, oracle).
    Read,
    /// A write.
    Write,
}

/// Per-request flags recorded by kplugfs (`kplug` format); zero for every other format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(u8);

impl Flags {
    /// No flag: a demand request whose hit/miss outcome is a miss or unknown.
    pub const NONE: Flags = Flags(0);
    /// The cache served the request (bit 0).
    pub const HIT: Flags = Flags(1);
    /// The request was issued by the prefetcher, not by an application (bit 1).
    pub const PREFETCH: Flags = Flags(2);
    /// Every defined bit; the others must be zero on disk.
    pub const ALL: Flags = Flags(3);

    /// The raw bits as stored in a kplug record.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from raw bits, or `None` if an undefined bit is set.
    pub const fn from_bits(bits: u8) -> Option<Flags> {
        if bits & !Self::ALL.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the request was a cache hit.
    pub const fn is_hit(self) -> bool {
        self.contains(Self::HIT)
    }

    /// Whether the request was a prefetch.
    pub const fn is_prefetch(self) -> bool {
        self.contains(Self::PREFETCH)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// One trace request, normalised across formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Time in nanoseconds. Epochs: vscsi and kplug as recorded; csv, oracle and systor count
    /// from whatever the trace's seconds count from (Unix time for SYSTOR'17); msr from
    /// 1601-01-01 (Windows FILETIME × 100). txt and lirs have no time: 0.
    pub time: u64,
    /// libCacheSim's object id: the LBN (vscsi, csv), the byte offset (msr, systor), the object
    /// id (txt, lirs, oracle), the file id (kplug).
    pub id: u64,
    /// Byte address within `stream`, when the format has one (vscsi/csv: `lbn * 512`; msr,
    /// systor, kplug: the offset column). `None` for txt, lirs and oracle (unless
    /// [`ReadOptions::oracle_sector_bytes`] is set).
    pub offset: Option<u64>,
    /// Size in bytes. txt and lirs have none and use 1, as libCacheSim does.
    pub size: u64,
    /// Read or write.
    pub op: Op,
    /// The address space `offset` belongs to: the disk number (msr), LUN (systor), file id
    /// (kplug), 0 otherwise. Sequentiality is measured per stream.
    pub stream: u64,
    /// Hit and prefetch flags (kplug only).
    pub flags: Flags,
    /// oracleGeneral's next-access index (1-based request number of the next request to the
    /// same id), `None` when absent or "never" (-1 or `i64::MAX` on disk).
    pub next_access: Option<u64>,
}

impl Request {
    /// A read of `size` bytes of object `id` at time 0 with no address: the shape of a
    /// txt/oracle request. Handy for tests and for building requests field by field.
    pub const fn object(id: u64, size: u64) -> Request {
        Request {
            time: 0,
            id,
            offset: None,
            size,
            op: Op::Read,
            stream: 0,
            flags: Flags::NONE,
            next_access: None,
        }
    }

    /// The inclusive range of `block_bytes`-sized blocks this request touches, `Ok(None)` for a
    /// size-0 request, or the reason it cannot be split (no byte offset, zero block size, or an
    /// end past 2^64).
    pub fn block_range(&self, block_bytes: u64) -> Result<Option<(u64, u64)>, &'static str> {
        if block_bytes == 0 {
            return Err("block size must be positive");
        }
        let Some(off) = self.offset else {
            return Err(
                "the request has no byte offset (txt, lirs and oracle carry ids only; \
                        for oracle ids that are LBNs set oracle_sector_bytes)",
            );
        };
        if self.size == 0 {
            return Ok(None);
        }
        let Some(last_byte) = off.checked_add(self.size - 1) else {
            return Err("offset + size exceeds 2^64 bytes");
        };
        Ok(Some((off / block_bytes, last_byte / block_bytes)))
    }
}
