//! Transform: the decompressed contents of a gzip file (RFC 1952; several members one after
//! another are decompressed one after another, as `zcat` does), inflated by `miniz_oxide`
//! (`no_std`) in a streaming state of ~40 KiB. Each call produces at most [`BURST`] bytes and
//! asks to be called again for more, so a decompression bomb costs the plugin no memory: the
//! host's output cap stops it. A file that is not gzip, or ends inside a member, is refused
//! (the view's open fails with EIO). The trailer's length is checked; its CRC-32 is not.
//!
//! No parameters.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use kplug_sdk::{Output, Plugin, Transform, Unconsumed, export_transform};
use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// Most output bytes one call produces before asking to be called again (the size of the
/// host's output buffer).
pub const BURST: usize = kplug_sdk::abi::TRANSFORM_OUT_BYTES;

/// Error codes.
const NOT_GZIP: i32 = -2;
const TRUNCATED: i32 = -3;
const CORRUPT: i32 = -4;

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// Reading a member's header.
    Header,
    /// Inflating its data.
    Data,
    /// Reading its 8-byte trailer.
    Trailer,
}

/// The gunzip transform.
pub struct Gunzip {
    state: Box<InflateState>,
    phase: Phase,
    /// Input not consumed yet.
    input: Unconsumed,
    /// Bytes of the current member, mod 2^32 (checked against the trailer).
    member_len: u32,
    window: Vec<u8>,
    /// A member was completed (an empty file is not gzip).
    any: bool,
}

impl Default for Gunzip {
    fn default() -> Self {
        Gunzip {
            state: InflateState::new_boxed(DataFormat::Raw),
            phase: Phase::Header,
            input: Unconsumed::default(),
            member_len: 0,
            window: vec![0; 32 << 10],
            any: false,
        }
    }
}

/// The length of the gzip header at the start of `b`: `Ok(None)` if more bytes are needed.
fn header_len(b: &[u8]) -> Result<Option<usize>, i32> {
    if b.len() < 10 {
        return if b.len() >= 2 && b[..2] != [0x1f, 0x8b] {
            Err(NOT_GZIP)
        } else {
            Ok(None)
        };
    }
    if b[..3] != [0x1f, 0x8b, 8] {
        return Err(NOT_GZIP);
    }
    let flags = b[3];
    let mut at = 10;
    if flags & 4 != 0 {
        let Some(x) = b.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let Some(end) = b.get(at..).and_then(|r| r.iter().position(|&c| c == 0)) else {
                return Ok(None);
            };
            at += end + 1;
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    Ok((at <= b.len()).then_some(at))
}

impl Plugin for Gunzip {}

impl Transform for Gunzip {
    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.state.reset(DataFormat::Raw);
        self.phase = Phase::Header;
        self.input.clear();
        self.member_len = 0;
        self.any = false;
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        self.input.feed(input);
        let mut produced = 0;
        loop {
            let rest = self.input.rest();
            match self.phase {
                Phase::Header => {
                    if rest.is_empty() && self.any {
                        break;
                    }
                    match header_len(rest)? {
                        Some(n) => {
                            self.input.consume(n);
                            self.phase = Phase::Data;
                            self.member_len = 0;
                            self.state.reset(DataFormat::Raw);
                        }
                        None => break,
                    }
                }
                Phase::Data => {
                    if produced >= BURST {
                        return Ok(true);
                    }
                    let r = inflate(&mut self.state, rest, &mut self.window, MZFlush::None);
                    self.input.consume(r.bytes_consumed);
                    out.push(&self.window[..r.bytes_written]);
                    produced += r.bytes_written;
                    self.member_len = self.member_len.wrapping_add(r.bytes_written as u32);
                    match r.status {
                        Ok(MZStatus::StreamEnd) => self.phase = Phase::Trailer,
                        Ok(_) if r.bytes_consumed + r.bytes_written > 0 => {}
                        Ok(_) | Err(MZError::Buf) => break,
                        Err(_) => return Err(CORRUPT),
                    }
                }
                Phase::Trailer => {
                    if rest.len() < 8 {
                        break;
                    }
                    let isize = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    if isize != self.member_len {
                        return Err(CORRUPT);
                    }
                    self.input.consume(8);
                    self.any = true;
                    self.phase = Phase::Header;
                }
            }
        }
        if last && !(self.phase == Phase::Header && self.any && self.input.rest().is_empty()) {
            return Err(if self.any || self.phase != Phase::Header {
                TRUNCATED
            } else {
                NOT_GZIP
            });
        }
        Ok(false)
    }
}

export_transform!(Gunzip);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::transform::run_native;

    /// A gzip member of `data` (header without options, raw deflate, length trailer; the CRC
    /// is not checked by the transform, so zero here).
    fn member(data: &[u8]) -> Vec<u8> {
        let mut m = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        m.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        m.extend([0, 0, 0, 0]);
        m.extend((data.len() as u32).to_le_bytes());
        m
    }

    #[test]
    fn inflates_members_across_chunks_and_refuses_bad_input() {
        let a: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8 + b'a').collect();
        let b = b"second member\n".to_vec();
        let mut gz = member(&a);
        gz.extend(member(&b));
        let want: Vec<u8> = a.iter().chain(&b).copied().collect();
        for chunk in [1, 10, 4096, 65536] {
            assert_eq!(
                run_native(&mut Gunzip::default(), &gz, chunk).unwrap(),
                want,
                "chunk {chunk}"
            );
        }
        // A highly compressible member comes out in bursts ("call again"), whole.
        let zeros = vec![0u8; 5 << 20];
        assert_eq!(
            run_native(&mut Gunzip::default(), &member(&zeros), 65536).unwrap(),
            zeros
        );
        assert_eq!(
            run_native(&mut Gunzip::default(), b"plain text", 64),
            Err(NOT_GZIP)
        );
        assert_eq!(run_native(&mut Gunzip::default(), b"", 64), Err(NOT_GZIP));
        assert_eq!(
            run_native(&mut Gunzip::default(), &gz[..gz.len() - 3], 64),
            Err(TRUNCATED)
        );
    }
}
