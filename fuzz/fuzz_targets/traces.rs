//! Every trace reader on arbitrary bytes (each format named, and detection): a reader
//! yields requests or one error and then stops; it never panics, never loops, and splitting
//! its requests into blocks terminates.
#![no_main]

use std::io::Cursor;

use kplug_traces::{Format, TraceIterExt, TraceReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in Format::ALL {
        let Ok(reader) = TraceReader::new(Cursor::new(data), "fuzz.trace", format) else {
            continue;
        };
        // Each request is at most one record of the input: the count is bounded by its size.
        let mut n = 0usize;
        let mut errors = 0usize;
        for r in reader.take(data.len() + 1) {
            match r {
                Ok(_) => n += 1,
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1, "{format:?}: a reader went on after an error");
        assert!(
            n <= data.len(),
            "{format:?}: {n} requests from {} bytes",
            data.len()
        );
        if let Ok(reader) = TraceReader::new(Cursor::new(data), "fuzz.trace", format) {
            // Blocks of 4 KiB, at most 65 536 per input: bounded work.
            for b in reader.split_blocks(4096).take(1 << 16) {
                let _ = b;
            }
        }
    }
});
