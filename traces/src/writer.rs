//! [`TraceWriter`]: writing requests as txt, lirs, csv, oracle or kplug.
//!
//! Used by `kplugfs trace record` (kplug) and `kplugfs trace convert` (all). Conversion is often
//! lossy, and each writer says what it keeps; anything it *cannot* express is an error naming
//! the request, never a silent truncation:
//!
//! - txt / lirs: `id` per line (`\n`). Everything else is dropped.
//! - csv: `1,<seconds>,<28|2a>,<size>,<lbn>` with header. lbn = offset / 512 when the request
//!   has an offset (which must then be 512-aligned), else `id`; time is written in whole seconds
//!   (floor), as libCacheSim's csv reader parses an integer. Reading back gives id = lbn.
//! - oracle: time in whole seconds (must fit u32), id, size (1..=u32::MAX: libCacheSim skips
//!   size 0, so writing one would lose a request), next access from `next_access` or -1. Use
//!   [`fill_next_access`] first if the consumer needs Belady's next-access field.
//! - kplug: requests with an offset are written as (file = `stream`, offset), others as
//!   (file = `id`, offset 0); length must fit u32; time, op and flags are kept exactly.
//!
//! Output is buffered; call [`TraceWriter::finish`] to flush and see write errors (dropping
//! the writer flushes too but cannot report failure).

use std::{
    collections::HashMap,
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use crate::{
    Format, Op, Request, SECTOR_BYTES, TraceError,
    kplug::{encode, header},
};

/// A streaming trace writer for the formats with [`Format::has_writer`].
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    format: Format,
    file: PathBuf,
    count: u64,
}

impl TraceWriter<File> {
    /// Creates (truncates) `path` and writes `format`'s header, if it has one.
    pub fn create(path: impl AsRef<Path>, format: Format) -> Result<Self, TraceError> {
        let path = path.as_ref();
        if !format.has_writer() {
            return Err(no_writer(format));
        }
        let f = File::create(path).map_err(|e| TraceError::Io {
            file: path.to_path_buf(),
            source: e,
        })?;
        TraceWriter::new(f, path, format)
    }
}

fn no_writer(format: Format) -> TraceError {
    TraceError::Usage(format!(
        "no writer for `{format}`; writers exist for txt, lirs, csv, oracle and kplug"
    ))
}

impl<W: Write> TraceWriter<W> {
    /// Writes `format` to `out`; `name` is used in error messages.
    pub fn new(out: W, name: impl Into<PathBuf>, format: Format) -> Result<Self, TraceError> {
        Self::with_block_size(out, name, format, 0)
    }

    /// Like [`TraceWriter::new`]; a kplug trace also records the block size of the cache
    /// it was recorded from (`block_size` bytes; 0: unknown), so a replay splits by it.
    pub fn with_block_size(
        out: W,
        name: impl Into<PathBuf>,
        format: Format,
        block_size: u32,
    ) -> Result<Self, TraceError> {
        if !format.has_writer() {
            return Err(no_writer(format));
        }
        let mut w = TraceWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            format,
            file: name.into(),
            count: 0,
        };
        match format {
            Format::Csv => w.put(b"version,time,op,size,lbn\n")?,
            Format::Kplug => w.put(&header(block_size))?,
            _ => {}
        }
        Ok(w)
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Requests written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        self.out.write_all(bytes).map_err(|e| TraceError::Io {
            file: self.file.clone(),
            source: e,
        })
    }

    fn unwritable(&self, reason: impl Into<String>) -> TraceError {
        TraceError::Unwritable {
            file: self.file.clone(),
            index: self.count + 1,
            format: self.format,
            reason: reason.into(),
        }
    }

    /// Appends one request.
    pub fn write(&mut self, req: &Request) -> Result<(), TraceError> {
        match self.format {
            Format::Txt | Format::Lirs => {
                let line = format!("{}\n", req.id);
                self.put(line.as_bytes())?;
            }
            Format::Csv => {
                let lbn = match req.offset {
                    Some(off) if !off.is_multiple_of(SECTOR_BYTES) => {
                        return Err(self.unwritable(format!(
                            "offset {off} is not a multiple of 512 (csv addresses are sectors)"
                        )));
                    }
                    Some(off) => off / SECTOR_BYTES,
                    None => req.id,
                };
                let op = match req.op {
                    Op::Read => "28",
                    Op::Write => "2a",
                };
                let line = format!("1,{},{op},{},{lbn}\n", req.time / 1_000_000_000, req.size);
                self.put(line.as_bytes())?;
            }
            Format::Oracle => {
                let secs = req.time / 1_000_000_000;
                let Ok(secs) = u32::try_from(secs) else {
                    return Err(self.unwritable(format!(
                        "time {secs} s does not fit oracleGeneral's u32 seconds"
                    )));
                };
                let size = match u32::try_from(req.size) {
                    Ok(0) => {
                        return Err(
                            self.unwritable("size 0: oracleGeneral readers skip size-0 records")
                        );
                    }
                    Ok(s) => s,
                    Err(_) => {
                        return Err(self.unwritable(format!(
                            "size {} does not fit oracleGeneral's u32",
                            req.size
                        )));
                    }
                };
                let next = match req.next_access {
                    None => -1,
                    Some(n) => match i64::try_from(n) {
                        Ok(n) if n > 0 && n != i64::MAX => n,
                        _ => {
                            return Err(self.unwritable(format!(
                                "next access {n} is not a valid 1-based request number"
                            )));
                        }
                    },
                };
                let mut rec = [0u8; 24];
                rec[0..4].copy_from_slice(&secs.to_le_bytes());
                rec[4..12].copy_from_slice(&req.id.to_le_bytes());
                rec[12..16].copy_from_slice(&size.to_le_bytes());
                rec[16..24].copy_from_slice(&next.to_le_bytes());
                self.put(&rec)?;
            }
            Format::Kplug => {
                let Ok(len) = u32::try_from(req.size) else {
                    return Err(self
                        .unwritable(format!("size {} does not fit kplug's u32 length", req.size)));
                };
                let (file, offset) = match req.offset {
                    Some(off) => (req.stream, off),
                    None => (req.id, 0),
                };
                let rec = encode(req.time, file, offset, len, req.op, req.flags);
                self.put(&rec)?;
            }
            Format::Auto | Format::Vscsi | Format::Msr | Format::Systor => {
                return Err(no_writer(self.format));
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Writes every request of `requests`, stopping at the first read or write error. Returns
    /// the number written by this call.
    pub fn write_all<I>(&mut self, requests: I) -> Result<u64, TraceError>
    where
        I: IntoIterator<Item = Result<Request, TraceError>>,
    {
        let start = self.count;
        for r in requests {
            self.write(&r?)?;
        }
        Ok(self.count - start)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> Result<W, TraceError> {
        let file = self.file;
        self.out.into_inner().map_err(|e| TraceError::Io {
            file,
            source: e.into_error(),
        })
    }
}

/// Sets each request's `next_access` to the 1-based number of the next request with the same
/// id (`None` if there is none), as oracleGeneral stores it. Needs the whole trace in memory.
pub fn fill_next_access(requests: &mut [Request]) {
    let mut next: HashMap<u64, u64> = HashMap::with_capacity(requests.len() / 2);
    for (i, r) in requests.iter_mut().enumerate().rev() {
        r.next_access = next.insert(r.id, i as u64 + 1);
    }
}
