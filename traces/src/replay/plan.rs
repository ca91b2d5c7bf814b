//! [`Plan`]: a trace's requests mapped onto a few scratch files (the mapping is described in
//! [the module documentation](super)).
//!
//! Design: one pass over the trace. Blocks get slots in a hash map in first-touch order while
//! the requests are stored as runs of slots; only once the number of slots is known are the
//! slots resolved to (file, offset), since that decides the files' size. The segments of all
//! jobs share one vector; a [`Job`] is a range of it.

use std::collections::HashMap;
use std::io::Read;

use crate::{Format, Op, TraceError, TraceReader};

/// Why a trace could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No scratch file asked for.
    #[error("--files must be at least 1")]
    NoFiles,
    /// A block size of 0.
    #[error("--block-size must be positive")]
    BlockSize,
    /// A request that cannot be mapped (1-based number, why).
    #[error("request {0}: {1}")]
    Request(u64, String),
    /// A request mapped to more than 2^32 pieces.
    #[error("request too large")]
    TooLarge,
    /// The trace did not read.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// One contiguous piece of a mapped request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    /// Scratch file index.
    pub file: u32,
    /// Byte offset in that file.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// A mapped request: its op and the range of its segments in [`Plan::segs`].
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Read or write.
    pub op: Op,
    first: usize,
    count: u32,
}

/// A trace mapped onto scratch files (see the module documentation).
#[derive(Debug)]
pub struct Plan {
    /// Requests in trace order (size-0 requests are left out).
    pub jobs: Vec<Job>,
    /// Their segments.
    pub segs: Vec<Seg>,
    /// The block size of the mapping.
    pub block_size: u64,
    /// Distinct blocks the trace touches.
    pub unique_blocks: u64,
    /// Slots used (≤ the cap).
    pub slots: u64,
    /// Whether blocks had to share slots (working set above the cap).
    pub wrapped: bool,
    /// Scratch files.
    pub files: u32,
    /// Bytes per scratch file.
    pub file_size: u64,
    /// Requests of size 0 (nothing to issue).
    pub empty: u64,
    /// The trace's format.
    pub format: Format,
}

impl Plan {
    /// The segments of `job`.
    pub fn segs(&self, job: &Job) -> &[Seg] {
        &self.segs[job.first..job.first + job.count as usize]
    }

    /// Maps the trace `reader` reads (its first `limit` requests) onto at most `files` files
    /// of slots of `block_size` bytes, at most `max_size` bytes in all.
    pub fn build<R: Read>(
        mut reader: TraceReader<R>,
        limit: Option<u64>,
        files: u32,
        block_size: u64,
        max_size: u64,
    ) -> Result<Plan, PlanError> {
        if files == 0 {
            return Err(PlanError::NoFiles);
        }
        if block_size == 0 {
            return Err(PlanError::BlockSize);
        }
        let max_slots = (max_size / block_size).max(1);
        let format = reader.format();
        let mut slot_of: HashMap<(u64, u64), u64> = HashMap::new();
        let mut wrapped = false;
        let mut jobs = Vec::new();
        // Segments in raw slot form (slot, start within slot, len), resolved to files below
        // once the number of slots is known.
        let mut raw: Vec<(u64, u64, u64)> = Vec::new();
        let mut empty = 0;
        let mut slot = |key: (u64, u64), wrapped: &mut bool| {
            let next = slot_of.len() as u64;
            *slot_of.entry(key).or_insert_with(|| {
                if next >= max_slots {
                    *wrapped = true;
                }
                next % max_slots
            })
        };
        for (i, r) in reader.by_ref().enumerate() {
            let n = i as u64 + 1; // 1-based request number
            if limit.is_some_and(|l| n > l) {
                break;
            }
            let r = r?;
            if r.size == 0 {
                empty += 1;
                continue;
            }
            let first = raw.len();
            match r.offset {
                None => {
                    let s = slot((r.stream, r.id), &mut wrapped);
                    raw.push((s, 0, block_size));
                }
                Some(off) => {
                    let (b0, b1) = r
                        .block_range(block_size)
                        .map_err(|why| PlanError::Request(n, why.to_string()))?
                        .expect("size > 0");
                    for b in b0..=b1 {
                        let start = if b == b0 { off % block_size } else { 0 };
                        let end = if b == b1 {
                            (off + r.size - 1) % block_size + 1
                        } else {
                            block_size
                        };
                        let s = slot((r.stream, b), &mut wrapped);
                        // One piece per run of adjacent slots: extend the previous piece
                        // when this block's slot continues it.
                        if raw.len() > first
                            && let Some(last) = raw.last_mut()
                            && last.0 * block_size + last.1 + last.2 == s * block_size + start
                        {
                            last.2 += end - start;
                            continue;
                        }
                        raw.push((s, start, end - start));
                    }
                }
            }
            jobs.push((r.op, first, raw.len() - first));
        }
        let unique_blocks = slot_of.len() as u64;
        let slots = unique_blocks.min(max_slots).max(1);
        let per_file = slots.div_ceil(u64::from(files));
        let files = slots.div_ceil(per_file) as u32;
        let file_size = per_file * block_size;
        // Resolve slots to (file, offset); a merged run may cross a file end: split it there.
        let mut segs = Vec::with_capacity(raw.len());
        let mut out_jobs = Vec::with_capacity(jobs.len());
        for (op, first, count) in jobs {
            let start_len = segs.len();
            for &(s, start, len) in &raw[first..first + count] {
                let mut pos = s * block_size + start; // byte address in the slot space
                let mut left = len;
                while left > 0 {
                    let file = pos / file_size;
                    let offset = pos % file_size;
                    let take = left.min(file_size - offset);
                    segs.push(Seg {
                        file: file as u32,
                        offset,
                        len: take,
                    });
                    pos += take;
                    left -= take;
                }
            }
            out_jobs.push(Job {
                op,
                first: start_len,
                count: u32::try_from(segs.len() - start_len).map_err(|_| PlanError::TooLarge)?,
            });
        }
        Ok(Plan {
            jobs: out_jobs,
            segs,
            block_size,
            unique_blocks,
            slots,
            wrapped,
            files,
            file_size,
            empty,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flags, Request, TraceWriter};

    fn req(stream: u64, offset: u64, size: u64) -> Request {
        Request {
            time: 0,
            id: offset,
            offset: Some(offset),
            size,
            op: Op::Read,
            stream,
            flags: Flags::NONE,
            next_access: None,
        }
    }

    fn plan_of(reqs: &[Request], files: u32, block: u64, max: u64) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.kplug");
        let mut w = TraceWriter::create(&path, Format::Kplug).unwrap();
        for r in reqs {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        let reader = crate::open(&path, Format::Auto).unwrap();
        Plan::build(reader, None, files, block, max).unwrap()
    }

    #[test]
    fn blocks_get_slots_in_first_touch_order_and_reuse_them() {
        // Far-apart offsets on two streams collapse onto consecutive slots.
        let p = plan_of(
            &[
                req(7, 1 << 40, 4096),
                req(7, (1 << 40) + 4096, 8192), // continues: next slot, one segment
                req(9, 1 << 40, 100),           // another stream: a new block
                req(7, 1 << 40, 10),            // reuse of the first block
            ],
            1,
            4096,
            1 << 30,
        );
        assert_eq!(p.unique_blocks, 4);
        assert!(!p.wrapped);
        let segs: Vec<Vec<Seg>> = p.jobs.iter().map(|j| p.segs(j).to_vec()).collect();
        let s = |file, offset, len| Seg { file, offset, len };
        assert_eq!(segs[0], [s(0, 0, 4096)]);
        assert_eq!(segs[1], [s(0, 4096, 8192)]);
        assert_eq!(segs[2], [s(0, 3 * 4096, 100)]);
        assert_eq!(segs[3], [s(0, 0, 10)]);
        assert_eq!(p.file_size, 4 * 4096);
    }

    #[test]
    fn unaligned_requests_keep_their_offset_within_the_block_and_split_at_files() {
        // 4 blocks over 2 files of 2 slots; a request over blocks 1..=2 crosses the file end.
        let p = plan_of(
            &[req(0, 0, 4 * 1024), req(0, 4096 + 1000, 4096)],
            2,
            1024,
            1 << 20,
        );
        // Blocks 0..=3, then 4..=8 (bytes 5096..9192): 9 slots, 5 per file.
        assert_eq!(p.unique_blocks, 9);
        assert_eq!((p.files, p.file_size), (2, 5 * 1024));
        let segs: Vec<Vec<Seg>> = p.jobs.iter().map(|j| p.segs(j).to_vec()).collect();
        let s = |file, offset, len| Seg { file, offset, len };
        assert_eq!(segs[0], [s(0, 0, 4096)]);
        // Slot 4 is the last of file 0: the request continues at the start of file 1.
        assert_eq!(segs[1], [s(0, 4096 + 1000, 24), s(1, 0, 4072)]);
    }

    #[test]
    fn the_cap_wraps_slots() {
        let reqs: Vec<Request> = (0..10).map(|i| req(0, i * 8192 * 3, 100)).collect();
        let p = plan_of(&reqs, 4, 8192, 4 * 8192);
        assert!(p.wrapped);
        assert_eq!(p.unique_blocks, 10);
        assert_eq!(p.slots, 4);
        assert_eq!(u64::from(p.files) * p.file_size, 4 * 8192);
        for j in &p.jobs {
            for s in p.segs(j) {
                assert!(s.offset + s.len <= p.file_size);
            }
        }
    }
}
