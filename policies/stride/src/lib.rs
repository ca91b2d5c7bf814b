//! Prefetch: constant-stride detection per file.
//!
//! The policy remembers each file's last block and last stride (difference
//! between consecutive accessed blocks, forward or backward, non-zero). When
//! the same stride has been seen `confirm` times in a row it prefetches the
//! next `degree` blocks along it (`block + stride`, `block + 2 stride`, ...,
//! within the file). A stride of 1 is plain sequential readahead of a fixed
//! depth; a stride of 8 follows, e.g., a column scan over 8-block records.
//! Random accesses never repeat a stride and prefetch nothing.
//!
//! Parameters:
//! - `confirm=2`: repeated strides needed before prefetching;
//! - `degree=4`: blocks prefetched ahead along the stride (at most 64);
//! - `max-files=4096`: files tracked at once (the table is reset past it).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    IntMap, Plugin, Prefetch, PrefetchOut, PrefetchRequest, Rejected, export_plugin, narrow,
};

#[derive(Clone, Copy)]
struct State {
    last: u64,
    stride: i64,
    seen: u32,
}

/// Stride prefetcher.
pub struct Stride {
    files: IntMap<State>,
    confirm: u32,
    degree: u64,
    max_files: usize,
}

impl Default for Stride {
    fn default() -> Self {
        Stride {
            files: IntMap::new(),
            confirm: 2,
            degree: 4,
            max_files: 4096,
        }
    }
}

impl Plugin for Stride {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "confirm" if v >= 1 => self.confirm = narrow::<u32>(v)?,
            "degree" if (1..=64).contains(&v) => self.degree = v,
            "max-files" if v >= 1 => self.max_files = v as usize,
            _ => return Err(Rejected),
        }
        Ok(())
    }
}

impl Prefetch for Stride {
    fn prefetch(&mut self, req: PrefetchRequest, out: &mut PrefetchOut<'_>) {
        let prev = self.files.get(req.file).copied();
        let st = match prev {
            Some(p) => {
                let stride = req.block.wrapping_sub(p.last) as i64;
                if stride != 0 && stride == p.stride {
                    State {
                        last: req.block,
                        stride,
                        seen: p.seen.saturating_add(1),
                    }
                } else {
                    State {
                        last: req.block,
                        stride,
                        seen: 1,
                    }
                }
            }
            None => State {
                last: req.block,
                stride: 0,
                seen: 0,
            },
        };
        if st.stride != 0 && st.seen >= self.confirm {
            if st.stride == 1 {
                let start = req.block + 1;
                let end = (start + self.degree).min(req.file_blocks);
                if end > start {
                    out.push(start, end - start);
                }
            } else {
                let mut b = req.block as i64;
                for _ in 0..self.degree {
                    b += st.stride;
                    if b < 0 || b as u64 >= req.file_blocks {
                        break;
                    }
                    out.push(b as u64, 1);
                }
            }
        }
        if self.files.len() >= self.max_files && prev.is_none() {
            self.files.clear();
        }
        self.files.insert(req.file, st);
    }
}

export_plugin!(Stride, prefetch);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::MAX_PREFETCH_RANGES;

    fn ask(s: &mut Stride, block: u64) -> std::vec::Vec<(u64, u64)> {
        let mut buf = [0u64; 2 * MAX_PREFETCH_RANGES];
        let mut out = PrefetchOut::new(&mut buf);
        let req = PrefetchRequest {
            file: 3,
            block,
            file_blocks: 100,
            hit: false,
        };
        s.prefetch(req, &mut out);
        (0..out.len()).filter_map(|i| out.get(i)).collect()
    }

    #[test]
    fn confirms_then_follows_the_stride() {
        let mut s = Stride::default();
        assert!(ask(&mut s, 10).is_empty());
        assert!(ask(&mut s, 18).is_empty());
        assert_eq!(ask(&mut s, 26), vec![(34, 1), (42, 1), (50, 1), (58, 1)]);
        assert!(ask(&mut s, 3).is_empty());
        assert!(ask(&mut s, 2).is_empty());
        assert_eq!(ask(&mut s, 1), vec![(0, 1)]);
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = Stride::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("confirm", "3").unwrap().confirm, 3);
        assert_eq!(set("degree", "8").unwrap().degree, 8);
        assert_eq!(set("max-files", "16").unwrap().max_files, 16);
        for (key, bad) in [
            ("confirm", "0"),
            ("confirm", "4294967296"),
            ("degree", "0"),
            ("degree", "65"),
            ("max-files", "0"),
            ("max_files", "16"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
