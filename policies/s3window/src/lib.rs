//! Prefetch: a read window like mountpoint-s3's (its backpressure read window: initial
//! 1 MiB + 128 KiB, multiplied by 2 each time it is extended), per file.
//!
//! A stream starts at any access that does not continue one (the first access to a file,
//! a backward seek, a forward seek past what was asked for): the policy asks at once for a
//! window of `initial-bytes` (the demand block included), so even a random reader fetches
//! the whole initial window, as mountpoint-s3 does. While the reader moves forward inside
//! what was asked for, whenever less than half of the current window remains ahead of it
//! the window doubles (up to `max-window` blocks) and the policy asks for the blocks
//! between the old end and `block + window`.
//!
//! The host caps any access's prefetch at its budget (64 blocks by default), so the window
//! stops growing in effect there, far below mountpoint-s3's 2 GiB maximum.
//!
//! Parameters:
//! - `block-size=131072`: the mount's block size in bytes (the ABI passes block numbers);
//! - `initial-bytes=1179648` (1 MiB + 128 KiB): first window, rounded up to whole blocks;
//! - `max-window=64` (blocks);
//! - `max-files=4096`: streams tracked at once (the table is reset past it).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    IntMap, Plugin, Prefetch, PrefetchOut, PrefetchRequest, Rejected, export_plugin, narrow,
};

#[derive(Clone, Copy)]
struct Stream {
    last: u64,
    /// Current window, blocks.
    window: u64,
    /// Blocks below this (exclusive) were asked for (or are the demand block).
    end: u64,
}

/// mountpoint-s3-like doubling read window.
pub struct S3Window {
    streams: IntMap<Stream>,
    block_size: u64,
    initial_bytes: u64,
    max: u64,
    max_files: usize,
    initial: u64,
}

impl Default for S3Window {
    fn default() -> Self {
        S3Window {
            streams: IntMap::new(),
            block_size: 128 << 10,
            initial_bytes: (1 << 20) + (128 << 10),
            max: 64,
            max_files: 4096,
            initial: 9,
        }
    }
}

impl Plugin for S3Window {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "block-size" if v >= 512 => self.block_size = v,
            "initial-bytes" if v >= 1 => self.initial_bytes = v,
            "max-window" if v >= 1 => self.max = v,
            "max-files" if v >= 1 => self.max_files = narrow(v)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        self.initial = self
            .initial_bytes
            .div_ceil(self.block_size)
            .clamp(1, self.max);
        Ok(())
    }
}

impl Prefetch for S3Window {
    fn prefetch(&mut self, req: PrefetchRequest, out: &mut PrefetchOut<'_>) {
        let b = req.block;
        let prev = self.streams.get(req.file).copied();
        let s = match prev {
            // Forward inside what was asked for: the stream goes on.
            Some(s) if b > s.last && b < s.end.max(s.last + 2) => {
                let mut s = Stream { last: b, ..s };
                if s.end.saturating_sub(b + 1) < s.window / 2 {
                    s.window = (s.window * 2).min(self.max);
                    let new_end = (b + s.window).min(req.file_blocks);
                    let start = s.end.max(b + 1);
                    if new_end > start {
                        out.push(start, new_end - start);
                    }
                    s.end = new_end.max(s.end);
                }
                s
            }
            // A new stream: ask for the whole initial window at once.
            _ => {
                let end = (b + self.initial).min(req.file_blocks);
                if end > b + 1 {
                    out.push(b + 1, end - b - 1);
                }
                Stream {
                    last: b,
                    window: self.initial,
                    end: end.max(b + 1),
                }
            }
        };
        if self.streams.len() >= self.max_files && prev.is_none() {
            self.streams.clear();
        }
        self.streams.insert(req.file, s);
    }
}

export_plugin!(S3Window, prefetch);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::MAX_PREFETCH_RANGES;

    fn ask(p: &mut S3Window, block: u64) -> Option<(u64, u64)> {
        let mut buf = [0u64; 2 * MAX_PREFETCH_RANGES];
        let mut out = PrefetchOut::new(&mut buf);
        let req = PrefetchRequest {
            file: 1,
            block,
            file_blocks: 1000,
            hit: false,
        };
        p.prefetch(req, &mut out);
        out.get(0)
    }

    #[test]
    fn initial_window_then_doubling() {
        let mut p = S3Window::default();
        p.init(100).unwrap();
        // 1 MiB + 128 KiB = 9 blocks of 128 KiB, demand block included.
        assert_eq!(ask(&mut p, 0), Some((1, 8)));
        // 8 blocks remain ahead of block 1 .. until fewer than 4.5: at block 5, 3 remain.
        for b in 1..5 {
            assert_eq!(ask(&mut p, b), None, "block {b}");
        }
        assert_eq!(ask(&mut p, 5), Some((9, 18 + 5 - 9))); // window 18: up to 5 + 18
        // A backward seek restarts with the initial window.
        assert_eq!(ask(&mut p, 2), Some((3, 8)));
        // A random far jump too.
        assert_eq!(ask(&mut p, 500), Some((501, 8)));
        // The window never passes the file's end.
        assert_eq!(ask(&mut p, 995), Some((996, 4)));
    }

    #[test]
    fn window_capped() {
        let mut p = S3Window::default();
        p.init(100).unwrap();
        let mut max_len = 0;
        for b in 0..900 {
            if let Some((_, len)) = ask(&mut p, b) {
                max_len = max_len.max(len);
            }
        }
        assert!(max_len <= 64);
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = S3Window::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("block-size", "4096").unwrap().block_size, 4096);
        assert_eq!(set("initial-bytes", "65536").unwrap().initial_bytes, 65536);
        assert_eq!(set("max-window", "32").unwrap().max, 32);
        assert_eq!(set("max-files", "16").unwrap().max_files, 16);
        for (key, bad) in [
            ("block-size", "511"),
            ("initial-bytes", "0"),
            ("max-window", "0"),
            ("max-files", "0"),
            ("block_size", "4096"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
