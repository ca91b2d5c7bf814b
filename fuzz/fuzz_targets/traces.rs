//! Every trace reader on arbitrary bytes (each format named, and detection), compressed with
//! zstd or not: a reader yields requests or one error and then stops; it never panics, never
//! loops, and splitting its requests into blocks terminates.
#![no_main]

use std::io::{Cursor, Read};

use kplug_traces::{Format, TraceIterExt, TraceReader, zstd_compressed};
use libfuzzer_sys::fuzz_target;

/// The most plain bytes a compressed input is decompressed to here.
const PLAIN_CAP: u64 = 1 << 20;

/// How many bytes the readers parse from `data`: itself, or for a zstd-compressed input
/// (which the readers decompress) its plain bytes, when they decode whole within
/// [`PLAIN_CAP`] (`None` otherwise: no bound but the cap on the requests taken).
fn plain_len(data: &[u8]) -> Option<usize> {
    if !zstd_compressed(data) {
        return Some(data.len());
    }
    let mut plain = Vec::new();
    let whole = zstd::stream::read::Decoder::new(data)
        .and_then(|d| d.take(PLAIN_CAP + 1).read_to_end(&mut plain))
        .is_ok();
    (whole && plain.len() as u64 <= PLAIN_CAP).then_some(plain.len())
}

fuzz_target!(|data: &[u8]| {
    let plain = plain_len(data);
    for format in Format::ALL {
        let Ok(reader) = TraceReader::new(Cursor::new(data), "fuzz.trace", format) else {
            continue;
        };
        // Each request is at most one record of the (plain) input: the count is bounded by
        // its size.
        let bound = plain.unwrap_or(PLAIN_CAP as usize);
        let mut n = 0usize;
        let mut errors = 0usize;
        for r in reader.take(bound + 1) {
            match r {
                Ok(_) => n += 1,
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1, "{format:?}: a reader went on after an error");
        if let Some(len) = plain {
            assert!(n <= len, "{format:?}: {n} requests from {len} bytes");
        }
        if let Ok(reader) = TraceReader::new(Cursor::new(data), "fuzz.trace", format) {
            // Blocks of 4 KiB, at most 65 536 per input: bounded work.
            for b in reader.split_blocks(4096).take(1 << 16) {
                let _ = b;
            }
        }
    }
});
