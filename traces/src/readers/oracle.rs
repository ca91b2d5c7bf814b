//! libCacheSim oracleGeneral binary traces (little-endian, packed, no header, 24 B records).
//!
//! `u32 time (s), u64 obj_id, u32 obj_size (bytes), i64 next_access` where next_access is the
//! 1-based number of the next request to the same id, or -1 / `i64::MAX` for "never" (other
//! negative values and 0 are errors). Records with size 0 are skipped, as libCacheSim's reader
//! does by default; they are counted in `skipped` and still count in record numbers.
//!
//! id = obj_id; offset = `None`: an oracleGeneral id is an object name, not an address. When
//! the ids are known to be LBNs (as in `cloudPhysicsIO.oracleGeneral.bin`),
//! `ReadOptions::oracle_sector_bytes = Some(512)` sets offset = id × 512 so that block
//! splitting works exactly as for vscsi/csv. time = seconds × 10^9, op read, stream 0.

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Op, Request, TraceError,
    input::Input,
    readers::{Source, next_record, parse_err},
};

/// Bytes per record.
pub(crate) const RECORD_LEN: usize = 24;

pub(crate) struct OracleReader<R> {
    src: Source<R>,
    record: u64,
    sector_bytes: Option<u64>,
    pub(crate) skipped: u64,
}

impl<R: Read> OracleReader<R> {
    pub(crate) fn new(input: Input<R>, file: PathBuf, sector_bytes: Option<u64>) -> Self {
        OracleReader {
            src: Source::new(input, file),
            record: 0,
            sector_bytes,
            skipped: 0,
        }
    }

    /// Appends the ids of up to `max` requests to `out`: the requests iterating would yield,
    /// with the same skips and errors (the records already buffered through
    /// [`take_buffered`](Self::take_buffered), which builds no `Request`; the rest through the
    /// same `read`, inlined into this loop). The number appended; 0 at the end.
    pub(crate) fn ids(&mut self, out: &mut Vec<u64>, max: usize) -> Result<usize, TraceError> {
        let mut n = 0;
        while n < max && !self.src.done {
            // The records already buffered whole first, then one through `read`, which fills
            // the buffer again (or meets the file's end, a cut record, a bad field).
            if self.sector_bytes.is_none() {
                n += self.take_buffered(out, max - n);
                if n == max {
                    break;
                }
            }
            let r = self.read();
            match self.src.fuse(r) {
                Some(Ok(r)) => {
                    out.push(r.id);
                    n += 1;
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(n)
    }

    /// The ids of the whole records already buffered (no read), up to `room` of them, in a
    /// loop that builds no `Request` and reports nothing: what `read` gives for each, size-0
    /// records skipped, stopping before a record whose next-access field `read` rejects, for
    /// `read` to report. The number appended. (`kplugfs sim` on cache2k's `orm-busy`, 5 M
    /// records: the whole process's time outside the replay 63 -> 54 ms, docs/benchmarks.md
    /// §10.)
    #[inline]
    fn take_buffered(&mut self, out: &mut Vec<u64>, room: usize) -> usize {
        let Ok(buf) = self.src.input.fill(0) else {
            return 0;
        };
        let (mut records, mut pushed, mut skipped) = (0, 0, 0);
        for r in buf.as_chunks::<RECORD_LEN>().0 {
            if pushed == room {
                break;
            }
            let (_, id, size, next) = fields(r);
            if size == 0 {
                skipped += 1;
            } else {
                if next_access(next).is_none() {
                    break;
                }
                out.push(id);
                pushed += 1;
            }
            records += 1;
        }
        self.src.input.consume(records * RECORD_LEN);
        self.record += records as u64;
        self.skipped += skipped;
        pushed
    }

    #[inline(always)]
    fn read(&mut self) -> Result<Option<Request>, TraceError> {
        loop {
            self.record += 1;
            let at = self.src.input.position();
            let Some(r) =
                next_record::<_, RECORD_LEN>(&mut self.src.input, &self.src.file, self.record)?
            else {
                return Ok(None);
            };
            let (time, id, size, next) = fields(r);
            self.src.input.consume(RECORD_LEN);
            if size == 0 {
                self.skipped += 1;
                continue;
            }
            let loc = Location::Record {
                index: self.record,
                byte: at,
            };
            let Some(next_access) = next_access(next) else {
                return Err(parse_err(
                    &self.src.file,
                    loc,
                    format!(
                        "next-access field is {next}; expected -1, i64::MAX or a 1-based request number"
                    ),
                ));
            };
            let offset = match self.sector_bytes {
                None => None,
                Some(s) => Some(id.checked_mul(s).ok_or_else(|| {
                    parse_err(
                        &self.src.file,
                        loc,
                        format!("id {id} × {s}-byte sectors overflows a 64-bit byte offset"),
                    )
                })?),
            };
            return Ok(Some(Request {
                time: u64::from(time) * 1_000_000_000,
                id,
                offset,
                size: u64::from(size),
                op: Op::Read,
                stream: 0,
                flags: Flags::NONE,
                next_access,
            }));
        }
    }
}

/// A record's fields: time (s), id, size (bytes), next access.
#[inline(always)]
fn fields(r: &[u8; RECORD_LEN]) -> (u32, u64, u32, i64) {
    let [
        t0,
        t1,
        t2,
        t3,
        i0,
        i1,
        i2,
        i3,
        i4,
        i5,
        i6,
        i7,
        s0,
        s1,
        s2,
        s3,
        rest @ ..,
    ] = *r;
    (
        u32::from_le_bytes([t0, t1, t2, t3]),
        u64::from_le_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
        u32::from_le_bytes([s0, s1, s2, s3]),
        i64::from_le_bytes(rest),
    )
}

/// The next-access field: `Some(None)` for never (-1, `i64::MAX`), `Some(Some(n))` for
/// request `n`, `None` for a value the format does not allow.
#[inline(always)]
fn next_access(next: i64) -> Option<Option<u64>> {
    match next {
        -1 | i64::MAX => Some(None),
        n if n > 0 => Some(Some(n as u64)),
        _ => None,
    }
}

impl<R: Read> Iterator for OracleReader<R> {
    type Item = Result<Request, TraceError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.src.done {
            return None;
        }
        let r = self.read();
        self.src.fuse(r)
    }
}
