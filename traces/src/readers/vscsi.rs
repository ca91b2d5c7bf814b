//! VMware vscsi binary traces, v1 and v2 (little-endian, packed, no header).
//!
//! v1 (32 B): `u32 sn, u32 len, u32 nSG, u16 cmd, u16 ver, u64 lbn, u64 ts`.
//! v2 (40 B): `u16 cmd, u16 ver, u32 sn, u32 len, u32 nSG, u64 lbn, u64 ts, u64 rt`.
//! The version is found as libCacheSim does: read the first two records as v2 and accept if both
//! have `ver >> 8 == 2`, else as v1 with `ver >> 8 == 1` (with fewer than two records, the ones
//! present must agree). id = lbn (512-byte sectors), offset = lbn × 512, size = len bytes,
//! time = ts µs × 1000, stream 0. Unlike libCacheSim, which ignores `cmd`, we map the SCSI
//! READ/WRITE(6/10/12/16) opcodes to the op and reject any other command (libCacheSim would
//! count it as a request; a trace with such records needs filtering first, and we say so
//! rather than guess), and a trailing partial record is an error (libCacheSim drops it).

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Op, Request, SECTOR_BYTES, TraceError,
    input::Input,
    readers::{Source, next_record, parse_err},
};

/// The two record layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

const V1_LEN: usize = 32;
const V2_LEN: usize = 40;

/// The SCSI opcode's direction: READ(6/10/12/16) or WRITE(6/10/12/16).
pub(crate) fn scsi_op(code: u16) -> Option<Op> {
    match code {
        0x08 | 0x28 | 0xa8 | 0x88 => Some(Op::Read),
        0x0a | 0x2a | 0xaa | 0x8a => Some(Op::Write),
        _ => None,
    }
}

#[inline]
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[inline]
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// libCacheSim's version probe on the first bytes of a file.
pub(crate) fn probe_version(head: &[u8]) -> Option<Version> {
    let all = |len: usize, ver_at: usize, want: u16| {
        let n = (head.len() / len).min(2);
        n > 0 && (0..n).all(|i| le16(head, i * len + ver_at) >> 8 == want)
    };
    if all(V2_LEN, 2, 2) {
        Some(Version::V2)
    } else if all(V1_LEN, 14, 1) {
        Some(Version::V1)
    } else {
        None
    }
}

pub(crate) struct VscsiReader<R> {
    src: Source<R>,
    version: Version,
    record: u64,
}

impl<R: Read> VscsiReader<R> {
    pub(crate) fn new(mut input: Input<R>, file: PathBuf) -> Result<Self, TraceError> {
        let head = input
            .fill(2 * V2_LEN)
            .map_err(|e| super::io_err(&file, e))?;
        let version = match probe_version(head) {
            Some(v) => v,
            None if head.is_empty() => Version::V1,
            None if head.len() < V1_LEN => {
                return Err(parse_err(
                    &file,
                    Location::Record { index: 1, byte: 0 },
                    format!(
                        "truncated record: the file is {} bytes, shorter than one vscsi record",
                        head.len()
                    ),
                ));
            }
            None => {
                return Err(parse_err(
                    &file,
                    Location::Header,
                    "not a vscsi trace: the version field of the first records is neither \
                     1 (v1, 32-byte records) nor 2 (v2, 40-byte records)",
                ));
            }
        };
        Ok(VscsiReader {
            src: Source::new(input, file),
            version,
            record: 0,
        })
    }

    /// The vscsi version found.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    #[inline]
    fn read(&mut self) -> Result<Option<Request>, TraceError> {
        self.record += 1;
        let at = self.src.input.position();
        let (cmd, len, lbn, ts) = match self.version {
            Version::V1 => {
                let Some(r) =
                    next_record::<_, V1_LEN>(&mut self.src.input, &self.src.file, self.record)?
                else {
                    return Ok(None);
                };
                (le16(r, 12), le32(r, 4), le64(r, 16), le64(r, 24))
            }
            Version::V2 => {
                let Some(r) =
                    next_record::<_, V2_LEN>(&mut self.src.input, &self.src.file, self.record)?
                else {
                    return Ok(None);
                };
                (le16(r, 0), le32(r, 8), le64(r, 16), le64(r, 24))
            }
        };
        let loc = Location::Record {
            index: self.record,
            byte: at,
        };
        let Some(op) = scsi_op(cmd) else {
            return Err(parse_err(
                &self.src.file,
                loc,
                format!("SCSI command {cmd:#04x} is neither a READ nor a WRITE"),
            ));
        };
        let Some(offset) = lbn.checked_mul(SECTOR_BYTES) else {
            return Err(parse_err(
                &self.src.file,
                loc,
                format!("lbn {lbn} × 512 overflows a 64-bit byte offset"),
            ));
        };
        let Some(time) = ts.checked_mul(1000) else {
            return Err(parse_err(
                &self.src.file,
                loc,
                format!("timestamp {ts} µs overflows 64-bit nanoseconds"),
            ));
        };
        self.src.input.consume(match self.version {
            Version::V1 => V1_LEN,
            Version::V2 => V2_LEN,
        });
        Ok(Some(Request {
            time,
            id: lbn,
            offset: Some(offset),
            size: u64::from(len),
            op,
            stream: 0,
            flags: Flags::NONE,
            next_access: None,
        }))
    }
}

impl<R: Read> Iterator for VscsiReader<R> {
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
