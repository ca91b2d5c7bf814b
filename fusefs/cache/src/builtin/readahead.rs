//! Native readahead, after Linux's `mm/readahead.c` in spirit.
//!
//! Per file it remembers the stream's frontier (`last`: the furthest block
//! accessed), the current window and how far ahead it has already asked
//! (`ahead_end`). An access to block 0 of a file it does not know starts a
//! stream; an access near the stream continues it: at most `slack` blocks
//! behind the frontier, and at most `slack` past what was asked for, where
//! `slack` is the larger of the window and an eighth of `max_window` (so it
//! scales with the window, like mountpoint-s3's tolerated seeks). The slack is
//! what keeps a stream alive through the FUSE worker threads: the kernel's
//! readahead sends several reads at once, and the threads reach the cache in
//! any order, so "exactly `last + 1`" reset a 1 GiB scan to the initial window
//! again and again (it read at half mountpoint-s3's rate at 20 ms of RTT).
//! Each access that moves the frontier doubles the window, up to
//! `max_window`. Like Linux's asynchronous readahead (its `PG_readahead`
//! marker), the policy asks again only once less than half a window of
//! asked-for blocks remains ahead of the frontier, and then for the whole part
//! of `[frontier + 1, frontier + 1 + window)` not asked for yet: a long stream
//! costs one range of at least half a window per half window read, never one
//! block per access. The block cache fetches a range of consecutive blocks of
//! a remote store with one request (`Source::preferred_read`), so the range
//! size is the request size there: a block per access made a 1 GiB scan of S3
//! 8,000 GETs of 128 KiB instead of ~250 of 4 MiB (3x slower at 0 ms).
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
    /// with a fast disk's readahead); 0 turns readahead off. The first window is never
    /// larger.
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
        if c.max_window == 0 {
            return;
        }
        let max = c.max_window;
        let initial = c.initial_window.clamp(1, max);
        let prev = self.files.get(&file).copied();
        // Whether the access continues the stream, and whether it moves its frontier.
        let (continues, advances) = match prev {
            Some(s) => {
                let slack = s.window.max(max / 8);
                let near = block.saturating_add(slack) >= s.last
                    && block <= s.ahead_end.saturating_add(slack);
                (near, near && block > s.last)
            }
            None => (block == 0, block == 0),
        };
        let mut s = match prev {
            Some(s) if continues => Stream {
                last: s.last.max(block),
                window: if advances {
                    (s.window * 2).clamp(initial, max)
                } else {
                    s.window
                },
                ahead_end: s.ahead_end.max(block + 1),
            },
            _ => Stream {
                last: block,
                window: initial,
                ahead_end: block + 1,
            },
        };
        // Half a window or more still asked for ahead of the frontier: nothing new yet.
        let ahead = s.ahead_end.saturating_sub(s.last + 1);
        if advances && ahead < s.window.div_ceil(2) {
            let start = s.ahead_end.max(s.last + 1);
            let end = (s.last + 1 + s.window).min(file_blocks);
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
    fn a_largest_window_under_the_first_caps_it_and_zero_turns_readahead_off() {
        for max in [1, 2, 3] {
            let mut r = Readahead::new(ReadaheadConfig {
                max_window: max,
                ..ReadaheadConfig::default()
            });
            assert_eq!(plan(&mut r, 1, 0, 100), [(1, max)], "max {max}");
            for b in 1..20 {
                for (_, len) in plan(&mut r, 1, b, 100) {
                    assert!(len <= max);
                }
            }
        }
        let mut r = Readahead::new(ReadaheadConfig {
            max_window: 0,
            ..ReadaheadConfig::default()
        });
        for b in 0..20 {
            assert!(plan(&mut r, 1, b, 100).is_empty());
        }
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

    /// The blocks of `0..n` in the order a multi-threaded FUSE server may see them: each
    /// group of `group` blocks (the kernel's readahead sends them at once) reversed.
    fn reordered(n: u64, group: u64) -> Vec<u64> {
        (0..n.div_ceil(group))
            .flat_map(|g| (g * group..((g + 1) * group).min(n)).rev())
            .collect()
    }

    #[test]
    fn reordered_stream_keeps_its_window_and_asks_each_block_once() {
        let (n, max) = (4000, 64);
        let mut r = Readahead::new(ReadaheadConfig {
            initial_window: 4,
            max_window: max,
            max_files: 16,
        });
        let mut asked = Vec::new();
        // Groups of 8 arrive reversed: 7, 6, ..., 0, 15, ... The first access is not block 0
        // of the file, so the stream starts at the group's first block seen as random...
        for (i, b) in reordered(n, 8).into_iter().enumerate() {
            let p = plan(&mut r, 1, b, n);
            if i < 8 {
                continue; // ... and picks up from block 8 on.
            }
            let s = r.files[&1];
            assert!(
                s.ahead_end > s.last,
                "block {b}: the stream fell behind the reader"
            );
            asked.extend(p);
        }
        // One stream all along: never reset to the initial window once grown, every block
        // from where it picked up asked exactly once, in order, in ranges that grow to half
        // the largest window.
        let first = asked[0].0;
        assert!(first <= 16, "picked up late: {asked:?}");
        let mut next = first;
        for &(start, len) in &asked {
            assert_eq!(start, next, "a gap or an overlap: {asked:?}");
            next = start + len;
        }
        assert_eq!(next, n);
        assert_eq!(r.files[&1].window, max);
        let big = asked.iter().filter(|&&(_, len)| len >= max / 2).count();
        assert!(
            big >= asked.len() - 6,
            "the window did not stay grown: {asked:?}"
        );
    }

    #[test]
    fn seeks_beyond_the_slack_restart_and_random_reads_ask_nothing() {
        let mut r = Readahead::new(ReadaheadConfig {
            initial_window: 4,
            max_window: 64,
            max_files: 16,
        });
        for b in 0..100 {
            plan(&mut r, 1, b, 10_000);
        }
        assert_eq!(r.files[&1].window, 64);
        // Back by more than the window: a new stream, nothing asked.
        assert_eq!(plan(&mut r, 1, 99 - 65, 10_000), vec![]);
        assert_eq!(r.files[&1].window, 4);
        // Grown again, then forward past what was asked by more than the window.
        for b in 35..100 {
            plan(&mut r, 1, b, 10_000);
        }
        let s = r.files[&1];
        assert_eq!(plan(&mut r, 1, s.ahead_end + 65, 10_000), vec![]);
        assert_eq!(r.files[&1].window, 4);
        // Random reads over a large file: far apart, nothing is ever asked.
        let mut x = 12345u64;
        for _ in 0..1000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = (x >> 33) % 1_000_000;
            let p = plan(&mut r, 2, b, 1_000_000);
            let s = r.files[&2];
            assert!(p.is_empty() || s.window > 4, "block {b}: {p:?}");
        }
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
