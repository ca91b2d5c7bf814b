//! MSR Cambridge block traces (SNIA): CSV without a header, 7 columns.
//!
//! `Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime`: Windows FILETIME (100 ns
//! ticks since 1601-01-01), host name, disk number, `Read`/`Write`, byte offset, byte size,
//! response time in 100 ns units. id = offset in bytes: libCacheSim's MSR setup reads the offset
//! column as the object id (so ids agree with its results); offset = that same byte offset;
//! stream = disk number; time = ticks × 100 ns. Hostname and response time are checked for
//! presence only (the column count) and not interpreted.

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Op, Request, TraceError,
    input::Input,
    num,
    readers::{Source, next_line, parse_err},
};

pub(crate) struct MsrReader<R> {
    src: Source<R>,
    line: u64,
}

impl<R: Read> MsrReader<R> {
    pub(crate) fn new(input: Input<R>, file: PathBuf) -> Self {
        MsrReader {
            src: Source::new(input, file),
            line: 0,
        }
    }

    fn read(&mut self) -> Result<Option<Request>, TraceError> {
        self.line += 1;
        let Some(line) = next_line(&mut self.src.input, &self.src.file, self.line)? else {
            return Ok(None);
        };
        parse_line(line)
            .map(Some)
            .map_err(|r| parse_err(&self.src.file, Location::Line(self.line), r))
    }
}

fn parse_line(line: &[u8]) -> Result<Request, String> {
    let [ts, _host, disk, kind, offset, size, _rt] = num::fields::<7>(line)?;
    let ticks = num::parse_u64(ts, "timestamp")?;
    let time = ticks
        .checked_mul(100)
        .ok_or_else(|| format!("timestamp {ticks} × 100 ns overflows 64 bits"))?;
    let stream = num::parse_u64(disk, "disk number")?;
    let op = match num::trim(kind) {
        k if k.eq_ignore_ascii_case(b"read") => Op::Read,
        k if k.eq_ignore_ascii_case(b"write") => Op::Write,
        _ => {
            return Err(format!(
                "type: expected `Read` or `Write`, found `{}`",
                num::show(kind)
            ));
        }
    };
    let offset = num::parse_u64(offset, "offset")?;
    let size = num::parse_u64(size, "size")?;
    Ok(Request {
        time,
        id: offset,
        offset: Some(offset),
        size,
        op,
        stream,
        flags: Flags::NONE,
        next_access: None,
    })
}

impl<R: Read> Iterator for MsrReader<R> {
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
