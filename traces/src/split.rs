//! Expanding requests into the fixed-size blocks a block cache sees.
//!
//! The rule is the reference one (shared/reference/README.md): a request at byte offset `off`
//! of `size` bytes touches blocks `floor(off / B) ..= floor((off + size - 1) / B)`, reads and
//! writes alike, in order. With `off = lbn × 512` (vscsi, csv, and oracle with
//! `oracle_sector_bytes = 512`) this is exactly libCacheSim's `cloudPhysicsIO-4KiB-blocks`
//! trace. Each block access is a copy of the request with `id` = the block number, `offset` =
//! its first byte and `size` = `B`; `stream` is kept, so for multi-stream traces (kplug files,
//! msr disks, systor LUNs) a block is identified by `(stream, id)`.
//!
//! Size-0 requests touch no byte and produce no block access; they are counted in
//! [`SplitBlocks::empty_requests`] rather than dropped silently. Requests without a byte offset
//! (txt, lirs, plain oracle) cannot be split and are an error, as are a zero block size and a
//! request whose last byte lies past 2^64.

use crate::{Request, TraceError};

/// The iterator returned by [`split_blocks`] / [`TraceIterExt::split_blocks`].
pub struct SplitBlocks<I> {
    inner: I,
    block: u64,
    /// The request being expanded, the next block and the last block.
    current: Option<(Request, u64, u64)>,
    index: u64,
    empty: u64,
    done: bool,
}

/// Wraps `requests` so that each request becomes the `block_bytes`-sized block accesses it
/// touches.
pub fn split_blocks<I>(requests: I, block_bytes: u64) -> SplitBlocks<I>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    SplitBlocks {
        inner: requests,
        block: block_bytes,
        current: None,
        index: 0,
        empty: 0,
        done: false,
    }
}

impl<I> SplitBlocks<I> {
    /// Size-0 requests seen so far (they produce no block access).
    pub fn empty_requests(&self) -> u64 {
        self.empty
    }

    /// Requests taken from the inner iterator so far.
    pub fn requests(&self) -> u64 {
        self.index
    }
}

impl<I> Iterator for SplitBlocks<I>
where
    I: Iterator<Item = Result<Request, TraceError>>,
{
    type Item = Result<Request, TraceError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((req, next, last)) = &mut self.current {
                let b = *next;
                let out = Request {
                    id: b,
                    offset: Some(b * self.block),
                    size: self.block,
                    ..*req
                };
                if b == *last {
                    self.current = None;
                } else {
                    *next += 1;
                }
                return Some(Ok(out));
            }
            if self.done {
                return None;
            }
            let req = match self.inner.next()? {
                Ok(r) => r,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.index += 1;
            match req.block_range(self.block) {
                Ok(Some((first, last))) => self.current = Some((req, first, last)),
                Ok(None) => self.empty += 1,
                Err(reason) => {
                    self.done = true;
                    return Some(Err(TraceError::Split {
                        index: self.index,
                        reason: reason.to_owned(),
                    }));
                }
            }
        }
    }
}

/// Adapters on any iterator of trace requests.
pub trait TraceIterExt: Iterator<Item = Result<Request, TraceError>> + Sized {
    /// Expands each request into the `block_bytes`-sized blocks it touches; see [`split_blocks`].
    fn split_blocks(self, block_bytes: u64) -> SplitBlocks<Self> {
        split_blocks(self, block_bytes)
    }
}

impl<I: Iterator<Item = Result<Request, TraceError>>> TraceIterExt for I {}
