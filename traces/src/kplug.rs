//! The kplug trace format: what `kplugfs trace record` writes.
//!
//! A recorded trace must keep what the other formats cannot: which file, where in it, whether
//! the cache hit and whether the prefetcher (not an application) asked. It must also be as cheap
//! to read as oracleGeneral, so it uses fixed-size little-endian records decoded in place.
//!
//! ```text
//! header, 16 bytes
//!   0  [u8; 8]  magic "KPLUGTRC"
//!   8  u16      version = 1
//!  10  u16      record length in bytes = 32 (lets a later version append fields; a v1
//!               reader refuses any other length rather than guess)
//!  12  u32      block size of the recording mount's cache, bytes (0: unknown); a
//!               replay splits requests into blocks of this size by default
//! record, 32 bytes
//!   0  u64      time, ns (the recorder's clock; CLOCK_MONOTONIC in kplugfs)
//!   8  u64      file id (the inode number in kplugfs)
//!  16  u64      byte offset within the file
//!  24  u32      length in bytes
//!  28  u8       op: 0 read, 1 write
//!  29  u8       flags: bit 0 hit, bit 1 prefetch; other bits 0
//!  30  u16      reserved, 0
//! ```
//!
//! Reading gives id = stream = file id, offset = Some(offset), size = length. Reserved fields
//! and undefined flag bits must be zero: a reader rejects them, so they can be given meaning
//! later without old readers misreading new files.

use std::{io::Read, path::PathBuf};

use crate::{
    Flags, Location, Op, Request, TraceError,
    input::Input,
    readers::{Source, io_err, next_record, parse_err},
};

/// The first 8 bytes of every kplug trace.
pub const KPLUG_MAGIC: [u8; 8] = *b"KPLUGTRC";
/// The format version this crate reads and writes.
pub const KPLUG_VERSION: u16 = 1;
/// Header length in bytes.
pub const KPLUG_HEADER_LEN: usize = 16;
/// Record length in bytes.
pub const KPLUG_RECORD_LEN: usize = 32;

/// The header bytes of a version-1 file recorded with blocks of `block_size` bytes (0:
/// unknown).
pub(crate) fn header(block_size: u32) -> [u8; KPLUG_HEADER_LEN] {
    let mut h = [0u8; KPLUG_HEADER_LEN];
    h[..8].copy_from_slice(&KPLUG_MAGIC);
    h[8..10].copy_from_slice(&KPLUG_VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&(KPLUG_RECORD_LEN as u16).to_le_bytes());
    h[12..16].copy_from_slice(&block_size.to_le_bytes());
    h
}

/// Encodes one record.
pub(crate) fn encode(
    time: u64,
    file: u64,
    offset: u64,
    len: u32,
    op: Op,
    flags: Flags,
) -> [u8; KPLUG_RECORD_LEN] {
    let mut r = [0u8; KPLUG_RECORD_LEN];
    r[0..8].copy_from_slice(&time.to_le_bytes());
    r[8..16].copy_from_slice(&file.to_le_bytes());
    r[16..24].copy_from_slice(&offset.to_le_bytes());
    r[24..28].copy_from_slice(&len.to_le_bytes());
    r[28] = match op {
        Op::Read => 0,
        Op::Write => 1,
    };
    r[29] = flags.bits();
    r
}

pub(crate) struct KplugReader<R> {
    src: Source<R>,
    record: u64,
    /// The block size of the header, when known.
    pub(crate) block_size: Option<u64>,
}

impl<R: Read> KplugReader<R> {
    pub(crate) fn new(mut input: Input<R>, file: PathBuf) -> Result<Self, TraceError> {
        let h = input.fill(KPLUG_HEADER_LEN).map_err(|e| io_err(&file, e))?;
        let bad = |reason: String| Err(parse_err(&file, Location::Header, reason));
        if h.len() < KPLUG_HEADER_LEN {
            return bad(format!(
                "truncated header: {} of {KPLUG_HEADER_LEN} bytes",
                h.len()
            ));
        }
        if h[..8] != KPLUG_MAGIC {
            return bad("bad magic: not a kplug trace (expected \"KPLUGTRC\")".to_owned());
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        let rec_len = u16::from_le_bytes([h[10], h[11]]);
        if version != KPLUG_VERSION {
            return bad(format!(
                "unsupported version {version}; this reader knows version {KPLUG_VERSION}"
            ));
        }
        if usize::from(rec_len) != KPLUG_RECORD_LEN {
            return bad(format!(
                "record length {rec_len}; version 1 records are {KPLUG_RECORD_LEN} bytes"
            ));
        }
        let block_size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        input.consume(KPLUG_HEADER_LEN);
        Ok(KplugReader {
            src: Source::new(input, file),
            record: 0,
            block_size: (block_size != 0).then_some(u64::from(block_size)),
        })
    }

    #[inline]
    fn read(&mut self) -> Result<Option<Request>, TraceError> {
        self.record += 1;
        let at = self.src.input.position();
        let Some(r) =
            next_record::<_, KPLUG_RECORD_LEN>(&mut self.src.input, &self.src.file, self.record)?
        else {
            return Ok(None);
        };
        let [
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            t6,
            t7,
            f0,
            f1,
            f2,
            f3,
            f4,
            f5,
            f6,
            f7,
            o0,
            o1,
            o2,
            o3,
            o4,
            o5,
            o6,
            o7,
            l0,
            l1,
            l2,
            l3,
            op,
            flags,
            z0,
            z1,
        ] = *r;
        let loc = Location::Record {
            index: self.record,
            byte: at,
        };
        let op = match op {
            0 => Op::Read,
            1 => Op::Write,
            n => {
                return Err(parse_err(
                    &self.src.file,
                    loc,
                    format!("op byte is {n}; expected 0 (read) or 1 (write)"),
                ));
            }
        };
        let Some(flags) = Flags::from_bits(flags) else {
            return Err(parse_err(
                &self.src.file,
                loc,
                format!(
                    "flags byte {flags:#04x} sets undefined bits (only 0x01 hit and 0x02 prefetch exist)"
                ),
            ));
        };
        if [z0, z1] != [0, 0] {
            return Err(parse_err(
                &self.src.file,
                loc,
                "reserved record bytes 30..32 are not zero",
            ));
        }
        let file = u64::from_le_bytes([f0, f1, f2, f3, f4, f5, f6, f7]);
        let req = Request {
            time: u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
            id: file,
            offset: Some(u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7])),
            size: u64::from(u32::from_le_bytes([l0, l1, l2, l3])),
            op,
            stream: file,
            flags,
            next_access: None,
        };
        self.src.input.consume(KPLUG_RECORD_LEN);
        Ok(Some(req))
    }
}

impl<R: Read> Iterator for KplugReader<R> {
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
