//! Transform: the decompressed contents of a zstd file (RFC 8878; several frames one after
//! another are decompressed one after another, as `zstdcat` does), decoded by `ruzstd`
//! (`no_std`). The host pushes the file in chunks; the transform decodes a block only once
//! the whole block is in its input (a block is at most 128 KiB), one block at a time, and
//! each call produces at most [`BURST`] bytes and asks to be called again for more, so a
//! decompression bomb costs the plugin no memory beyond the frame's window: the host's output
//! cap stops it. Frames whose window is over [`MAX_WINDOW`] (16 MiB: every level up to 19;
//! `--ultra` and `--long` need more) are refused, as are skippable frames, dictionaries, a
//! file that is not zstd, and one that ends inside a frame (the view's open fails with EIO).
//! Checksums are read, not verified.
//!
//! No parameters.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use kplug_sdk::{Output, Plugin, Transform, Unconsumed, export_transform};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

/// Most output bytes one call produces before asking to be called again (the size of the
/// host's output buffer).
pub const BURST: usize = kplug_sdk::abi::TRANSFORM_OUT_BYTES;
/// Largest window a frame may ask for (the plugin's memory holds it).
pub const MAX_WINDOW: u64 = 16 << 20;
/// A frame header is at most 18 bytes (magic included).
const MAX_FRAME_HEADER: usize = 18;

/// Error codes.
const NOT_ZSTD: i32 = -2;
const TRUNCATED: i32 = -3;
const CORRUPT: i32 = -4;

/// The zstd transform.
pub struct Zstd {
    dec: FrameDecoder,
    /// Inside a frame (its header read).
    in_frame: bool,
    /// Input not consumed yet.
    input: Unconsumed,
    window: Vec<u8>,
    /// A frame was completed (an empty file is not zstd).
    any: bool,
}

impl Default for Zstd {
    fn default() -> Self {
        let mut dec = FrameDecoder::new();
        dec.set_max_window_size(MAX_WINDOW);
        Zstd {
            dec,
            in_frame: false,
            input: Unconsumed::default(),
            window: vec![0; BURST],
            any: false,
        }
    }
}

/// The bytes the block starting at `b` needs (header, content, and the frame's checksum
/// after a last block, which may be there), or `None` when its header is not all there.
fn block_len(b: &[u8]) -> Option<(usize, bool)> {
    let h = b.get(..3)?;
    let h = u32::from_le_bytes([h[0], h[1], h[2], 0]);
    let last = h & 1 != 0;
    let size = (h >> 3) as usize;
    // Type 1 (RLE): one byte repeated `size` times.
    let content = if (h >> 1) & 3 == 1 { 1 } else { size };
    Some((3 + content, last))
}

impl Plugin for Zstd {}

impl Transform for Zstd {
    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.in_frame = false;
        self.input.clear();
        self.any = false;
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        self.input.feed(input);
        let mut produced = 0;
        loop {
            // What the decoder holds beyond its window (all of it once the frame ended).
            if self.in_frame && self.dec.can_collect() > 0 {
                if produced >= BURST {
                    return Ok(true);
                }
                let n = self.dec.read(&mut self.window).map_err(|_| CORRUPT)?;
                out.push(&self.window[..n]);
                produced += n;
                continue;
            }
            let rest = self.input.rest();
            if !self.in_frame {
                if rest.is_empty() || (rest.len() < MAX_FRAME_HEADER && !last) {
                    break;
                }
                let mut src = rest;
                if self.dec.reset(&mut src).is_err() {
                    return Err(if rest.len() < MAX_FRAME_HEADER {
                        TRUNCATED
                    } else if self.any || rest.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                        CORRUPT
                    } else {
                        NOT_ZSTD
                    });
                }
                let used = rest.len() - src.len();
                self.input.consume(used);
                self.in_frame = true;
                continue;
            }
            if self.dec.is_finished() {
                self.in_frame = false;
                self.any = true;
                continue;
            }
            // The next block, once it is whole (with the checksum that may follow a last one).
            let Some((need, last_block)) = block_len(rest) else {
                break;
            };
            let have = rest.len();
            if have < need || (last_block && have < need + 4 && !last) {
                break;
            }
            let mut src = rest;
            self.dec
                .decode_blocks(&mut src, BlockDecodingStrategy::UptoBlocks(1))
                .map_err(|_| CORRUPT)?;
            let used = rest.len() - src.len();
            self.input.consume(used);
        }
        if last && (self.in_frame || !self.any || !self.input.rest().is_empty()) {
            return Err(if self.any || self.in_frame {
                TRUNCATED
            } else {
                NOT_ZSTD
            });
        }
        Ok(false)
    }
}

export_transform!(Zstd);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::transform::run_native;
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};

    fn zstd(data: &[u8]) -> Vec<u8> {
        compress_to_vec(data, CompressionLevel::Fastest)
    }

    #[test]
    fn decodes_frames_across_chunks_and_refuses_bad_input() {
        let a: Vec<u8> = (0..700_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 29) as u8 + b'a')
            .collect();
        let b = b"second frame\n".repeat(1000);
        let mut file = zstd(&a);
        file.extend(zstd(&b));
        let mut want = a.clone();
        want.extend_from_slice(&b);
        for chunk in [1, 7, 4096, 65536, 1 << 20] {
            let got = run_native(&mut Zstd::default(), &file, chunk).unwrap();
            assert!(got == want, "chunk {chunk}: {} bytes", got.len());
        }
        let got = run_native(&mut Zstd::default(), &zstd(b""), 3).unwrap();
        assert!(got.is_empty());
        assert_eq!(
            run_native(&mut Zstd::default(), b"plain text, not zstd", 5),
            Err(NOT_ZSTD)
        );
        assert_eq!(run_native(&mut Zstd::default(), b"", 5), Err(NOT_ZSTD));
        assert_eq!(
            run_native(&mut Zstd::default(), &file[..file.len() / 2], 4096),
            Err(TRUNCATED)
        );
        let mut bad = zstd(&a);
        let mid = bad.len() / 2;
        bad[mid..mid + 64].fill(0xff);
        assert!(run_native(&mut Zstd::default(), &bad, 4096).is_err());
    }

    #[test]
    fn a_bomb_comes_out_in_bursts() {
        // 64 MiB of one byte: RLE blocks of a few bytes each.
        let big = vec![b'z'; 64 << 20];
        let file = zstd(&big);
        assert!(file.len() < 64 << 10, "{}", file.len());
        let mut z = Zstd::default();
        let mut o = Output::default();
        z.begin(None).unwrap();
        let more = z.chunk(&file, true, &mut o).unwrap();
        assert!(more, "asks to be called again");
        assert!(o.pending() <= BURST + (128 << 10), "{}", o.pending());
    }
}
