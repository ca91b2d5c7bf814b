//! Prefetch: Linux-like readahead, per file.
//!
//! An access to block 0 of a file not being followed, or to `last + 1` of the
//! file's stream, is sequential: the window starts at `initial-window` blocks
//! and doubles on every further sequential access up to `max-window`; the
//! policy asks for the part of `[block + 1, block + 1 + window)` it has not
//! asked for before (so a stream costs one request per block, not per
//! window). Any other access is random: the stream restarts there with no
//! window and nothing is prefetched, so random workloads cause no prefetch
//! traffic. Parameters:
//! - `initial-window=4`, `max-window=64` (blocks);
//! - `max-files=4096`: streams tracked at once (the table is reset past it).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    IntMap, Plugin, Prefetch, PrefetchOut, PrefetchRequest, Rejected, export_plugin, narrow,
};

#[derive(Clone, Copy)]
struct Stream {
    last: u64,
    /// 0 = not sequential yet.
    window: u64,
    /// Blocks up to here (exclusive) were already asked for.
    asked: u64,
}

/// Linux-like readahead.
pub struct Readahead {
    streams: IntMap<Stream>,
    initial: u64,
    max: u64,
    max_files: usize,
}

impl Default for Readahead {
    fn default() -> Self {
        Readahead {
            streams: IntMap::new(),
            initial: 4,
            max: 64,
            max_files: 4096,
        }
    }
}

impl Plugin for Readahead {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "initial-window" if v >= 1 => self.initial = v,
            "max-window" if v >= 1 => self.max = v,
            "max-files" if v >= 1 => self.max_files = narrow(v)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        if self.initial > self.max {
            return Err(22);
        }
        Ok(())
    }
}

impl Prefetch for Readahead {
    fn prefetch(&mut self, req: PrefetchRequest, out: &mut PrefetchOut<'_>) {
        let prev = self.streams.get(req.file).copied();
        let sequential = match prev {
            Some(s) => req.block == s.last.wrapping_add(1),
            None => req.block == 0,
        };
        let s = if sequential {
            let window = match prev {
                Some(s) if s.window > 0 => (s.window * 2).min(self.max),
                _ => self.initial,
            };
            let asked = prev.map_or(0, |s| s.asked).max(req.block + 1);
            let end = (req.block + 1 + window).min(req.file_blocks);
            if end > asked {
                out.push(asked, end - asked);
            }
            Stream {
                last: req.block,
                window,
                asked: end.max(asked),
            }
        } else {
            Stream {
                last: req.block,
                window: 0,
                asked: 0,
            }
        };
        if self.streams.len() >= self.max_files && prev.is_none() {
            self.streams.clear();
        }
        self.streams.insert(req.file, s);
    }
}

export_plugin!(Readahead, prefetch);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::MAX_PREFETCH_RANGES;

    fn ask(r: &mut Readahead, block: u64) -> Option<(u64, u64)> {
        let mut buf = [0u64; 2 * MAX_PREFETCH_RANGES];
        let mut out = PrefetchOut::new(&mut buf);
        let req = PrefetchRequest {
            file: 1,
            block,
            file_blocks: 1000,
            hit: false,
        };
        r.prefetch(req, &mut out);
        out.get(0)
    }

    #[test]
    fn window_ramps_and_resets() {
        let mut r = Readahead::default();
        assert_eq!(ask(&mut r, 0), Some((1, 4)));
        assert_eq!(ask(&mut r, 1), Some((5, 5))); // window 8: [2, 10)
        assert_eq!(ask(&mut r, 2), Some((10, 9))); // window 16: [3, 19)
        assert_eq!(ask(&mut r, 500), None);
        assert_eq!(ask(&mut r, 501), Some((502, 4)));
        assert_eq!(ask(&mut r, 998), None);
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = Readahead::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("initial-window", "2").unwrap().initial, 2);
        assert_eq!(set("max-window", "32").unwrap().max, 32);
        assert_eq!(set("max-files", "16").unwrap().max_files, 16);
        for (key, bad) in [
            ("initial-window", "0"),
            ("max-window", "0"),
            ("max-files", "0"),
            ("max-window", "x"),
            ("window", "4"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
        // A first window larger than the largest is refused at init.
        let mut r = set("initial-window", "128").unwrap();
        assert_eq!(r.init(100), Err(22));
    }
}
