//! SYSTOR'17 block traces (SNIA): CSV with header `Timestamp,Response,IOType,LUN,Offset,Size`.
//!
//! Timestamp in (fractional) Unix seconds, response time in seconds, `R`/`W`, LUN, byte offset,
//! byte size. id = offset in bytes (libCacheSim's object id for these traces, as for MSR);
//! offset = the same; stream = LUN; time = timestamp in ns (kept to the nanosecond). Note that
//! SYSTOR'17 timestamps are not monotonic; the reader keeps file order, as libCacheSim does.
//! The response column must be present and is not interpreted.

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Op, Request, TraceError,
    input::Input,
    num,
    readers::{Source, next_line, parse_err},
};

pub(crate) const HEADER: &[u8] = b"Timestamp,Response,IOType,LUN,Offset,Size";

pub(crate) struct SystorReader<R> {
    src: Source<R>,
    line: u64,
}

impl<R: Read> SystorReader<R> {
    pub(crate) fn new(mut input: Input<R>, file: PathBuf) -> Result<Self, TraceError> {
        match next_line(&mut input, &file, 1)? {
            Some(h) if num::trim(h).eq_ignore_ascii_case(HEADER) => {}
            Some(h) => {
                return Err(parse_err(
                    &file,
                    Location::Line(1),
                    format!(
                        "expected the header `Timestamp,Response,IOType,LUN,Offset,Size`, found `{}`",
                        num::show(h)
                    ),
                ));
            }
            None => {
                return Err(parse_err(
                    &file,
                    Location::Header,
                    "empty file: missing the header `Timestamp,Response,IOType,LUN,Offset,Size`",
                ));
            }
        }
        Ok(SystorReader {
            src: Source::new(input, file),
            line: 1,
        })
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
    let [ts, _response, kind, lun, offset, size] = num::fields::<6>(line)?;
    let time = num::parse_seconds_ns(ts, "timestamp")?;
    let op = match num::trim(kind) {
        b"R" | b"r" => Op::Read,
        b"W" | b"w" => Op::Write,
        _ => {
            return Err(format!(
                "IOType: expected `R` or `W`, found `{}`",
                num::show(kind)
            ));
        }
    };
    let stream = num::parse_u64(lun, "LUN")?;
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

impl<R: Read> Iterator for SystorReader<R> {
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
