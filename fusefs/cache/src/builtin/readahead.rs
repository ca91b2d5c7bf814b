//! Native readahead, after Linux's `mm/readahead.c` in spirit.
//!
//! Per file it remembers the last block accessed, the current window and how
//! far ahead it has already asked (`ahead_end`). An access to block 0 of a file
//! it does not know, or to `last + 1`, continues a sequential stream: the
//! window starts at `initial_window` and doubles on each further sequential
//! access up to `max_window`. Like Linux's asynchronous readahead (its
//! `PG_readahead` marker), the policy asks again only once less than half a
//! window of asked-for blocks remains ahead of the reader, and then for the
//! whole part of `[block + 1, block + 1 + window)` not asked for yet: a long
//! stream costs one range of at least half a window per half window read,
//! never one block per access. The block cache fetches a range of consecutive
//! blocks of a remote store with one request (`Source::preferred_read`), so the
//! range size is the request size there: a block per access made a 1 GiB scan
//! of S3 8,000 GETs of 128 KiB instead of ~250 of 4 MiB (3x slower at 0 ms).
//! Any other access is random: the window resets and nothing is prefetched
//! (Linux also reads a small window around random misses; with a block cache
//! the demand read already brings the block, and a random reader gains nothing
//! from more).
//!
//! The per-file table is bounded: past `max_files` entries it is cleared, which
//! only makes streams restart with the initial window.

use super::NativePrefetch;
use kplug_abi::BlockRange;
use kplug_engine::hash::FastMap;

/// Tunables of the built-in readahead, in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadaheadConfig {
    /// Window of the first sequential access (default 4 blocks).
    pub initial_window: u64,
    /// Largest window (default 64 blocks; 8 MiB with 128 KiB blocks, in line
    /// with a fast disk's readahead).
    pub max_window: u64,
    /// Files tracked at once before the table is reset (default 4096).
    pub max_files: usize,
}

impl Default for ReadaheadConfig {
    fn default() -> Self {
        ReadaheadConfig {
            initial_window: 4,
            max_window: 64,
            max_files: 4096,
        }
    }
}

#[derive(Clone, Copy)]
struct Stream {
    last: u64,
    window: u64,
    ahead_end: u64,
}

/// Sequential readahead with a doubling window.
pub(crate) struct Readahead {
    config: ReadaheadConfig,
    files: FastMap<u64, Stream>,
}

impl Readahead {
    pub(crate) fn new(config: ReadaheadConfig) -> Self {
        Readahead {
            config,
            files: FastMap::default(),
        }
    }
}

impl NativePrefetch for Readahead {
    fn plan(
        &mut self,
        file: u64,
        block: u64,
        file_blocks: u64,
        _hit: bool,
        out: &mut Vec<BlockRange>,
    ) {
        let c = self.config;
        if self.files.len() >= c.max_files && !self.files.contains_key(&file) {
            self.files.clear();
        }
        let prev = self.files.get(&file).copied();
        let sequential = match prev {
            Some(s) => block == s.last.wrapping_add(1),
            None => block == 0,
        };
        let mut s = match prev {
            Some(s) if sequential => Stream {
                last: block,
                window: (s.window * 2).clamp(c.initial_window.max(1), c.max_window.max(1)),
                ahead_end: s.ahead_end,
            },
            _ => Stream {
                last: block,
                window: c.initial_window.max(1),
                ahead_end: block + 1,
            },
        };
        // Half a window or more still asked for ahead: nothing new yet.
        let ahead = s.ahead_end.saturating_sub(block + 1);
        if sequential && ahead < s.window.div_ceil(2) {
            let start = s.ahead_end.max(block + 1);
            let end = (block + 1 + s.window).min(file_blocks);
            if start < end {
                out.push(BlockRange {
                    start,
                    len: end - start,
                });
                s.ahead_end = end;
            }
        }
        self.files.insert(file, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(r: &mut Readahead, file: u64, block: u64, len: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        r.plan(file, block, len, false, &mut out);
        out.into_iter().map(|r| (r.start, r.len)).collect()
    }

    #[test]
    fn window_doubles_while_sequential_and_resets_on_random() {
        let mut r = Readahead::new(ReadaheadConfig {
            initial_window: 2,
            max_window: 8,
            max_files: 16,
        });
        assert_eq!(plan(&mut r, 1, 0, 100), vec![(1, 2)]); // window 2: [1,3)
        assert_eq!(plan(&mut r, 1, 1, 100), vec![(3, 3)]); // window 4: [2,6), 1..3 asked
        assert_eq!(plan(&mut r, 1, 2, 100), vec![(6, 5)]); // window 8: [3,11)
        // Capped at 8; 7, 6, 5, 4 blocks still asked for ahead: nothing until fewer than 4.
        for b in 3..7 {
            assert_eq!(plan(&mut r, 1, b, 100), vec![], "block {b}");
        }
        assert_eq!(plan(&mut r, 1, 7, 100), vec![(11, 5)]); // 3 ahead: [8,16)
        assert_eq!(plan(&mut r, 1, 8, 100), vec![]);
        assert_eq!(plan(&mut r, 1, 50, 100), vec![]); // random: reset, nothing
        assert_eq!(plan(&mut r, 1, 51, 100), vec![(52, 4)]); // window 4 again
        // Clamped to the end of the file.
        assert_eq!(plan(&mut r, 2, 0, 2), vec![(1, 1)]);
        assert_eq!(plan(&mut r, 2, 1, 2), vec![]);
        // A first access in the middle of a file is random.
        assert_eq!(plan(&mut r, 3, 7, 100), vec![]);
    }

    #[test]
    fn file_table_is_bounded() {
        let mut r = Readahead::new(ReadaheadConfig {
            initial_window: 1,
            max_window: 4,
            max_files: 4,
        });
        for f in 0..100 {
            plan(&mut r, f, 0, 10);
        }
        assert!(r.files.len() <= 4);
    }
}
