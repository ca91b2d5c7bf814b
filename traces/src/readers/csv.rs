//! libCacheSim's block csv: header `version,time,op,size,lbn`, then one request per line.
//!
//! `time` is seconds (a fraction is accepted and kept to the nanosecond), `op` the SCSI opcode in
//! hex (`28` read, `2a` write; the 6/12/16-byte variants are accepted too), `size` bytes, `lbn`
//! decimal 512-byte sectors. id = lbn (libCacheSim's object id), offset = lbn × 512, stream 0.
//! The `version` column must be a number and is otherwise ignored.

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Request, SECTOR_BYTES, TraceError,
    input::Input,
    num,
    readers::{Source, next_line, parse_err, vscsi::scsi_op},
};

pub(crate) const HEADER: &[u8] = b"version,time,op,size,lbn";

pub(crate) struct CsvReader<R> {
    src: Source<R>,
    line: u64,
}

impl<R: Read> CsvReader<R> {
    pub(crate) fn new(mut input: Input<R>, file: PathBuf) -> Result<Self, TraceError> {
        match next_line(&mut input, &file, 1)? {
            Some(h) if num::trim(h) == HEADER => {}
            Some(h) => {
                return Err(parse_err(
                    &file,
                    Location::Line(1),
                    format!(
                        "expected the header `version,time,op,size,lbn`, found `{}`",
                        num::show(h)
                    ),
                ));
            }
            None => {
                return Err(parse_err(
                    &file,
                    Location::Header,
                    "empty file: missing the header `version,time,op,size,lbn`",
                ));
            }
        }
        Ok(CsvReader {
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
    let [version, time, op, size, lbn] = num::fields::<5>(line)?;
    num::parse_u64(version, "version")?;
    let time = num::parse_seconds_ns(time, "time")?;
    let op = parse_hex_op(op)?;
    let size = num::parse_u64(size, "size")?;
    let lbn = num::parse_u64(lbn, "lbn")?;
    let offset = lbn
        .checked_mul(SECTOR_BYTES)
        .ok_or_else(|| format!("lbn {lbn} × 512 overflows a 64-bit byte offset"))?;
    Ok(Request {
        time,
        id: lbn,
        offset: Some(offset),
        size,
        op,
        stream: 0,
        flags: Flags::NONE,
        next_access: None,
    })
}

fn parse_hex_op(field: &[u8]) -> Result<crate::Op, String> {
    let t = num::trim(field);
    let t = t
        .strip_prefix(b"0x")
        .or_else(|| t.strip_prefix(b"0X"))
        .unwrap_or(t);
    let code = (!t.is_empty() && t.len() <= 4)
        .then(|| std::str::from_utf8(t).ok())
        .flatten()
        .and_then(|s| u16::from_str_radix(s, 16).ok());
    match code.and_then(scsi_op) {
        Some(op) => Ok(op),
        None => Err(format!(
            "op: expected a SCSI opcode in hex (28 read, 2a write), found `{}`",
            num::show(field)
        )),
    }
}

impl<R: Read> Iterator for CsvReader<R> {
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
