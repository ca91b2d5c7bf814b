//! A user's plugin swap runs ahead of the readers, but only for the part of it whose cost does
//! not grow with the cache.
//!
//! [`SwapPriority::raise`] puts the thread loading a plugin at nice [`SwapPriority::NICE`]
//! while a user's swap is prepared and installed, its own nice again when dropped. Without it
//! the thread (a few milliseconds of baseline compiling for a module never seen, a few hundred
//! microseconds for one seen before: hash, instantiate, `kplug_init`, replay) waits behind the
//! threads serving reads for whole scheduler slices. Under the hot-swap bench's 2 verifying
//! readers on 2 CPUs (`tests/benches/hotswap.rs`, `SWAPS=300`, 10 runs each, binaries
//! alternated), close() to first decision for a module never seen: p99 9.3-15.9 ms against
//! 12.5-35.0 ms, at or below 20 ms in 10 of 10 runs against 5 of 10; seen before, p99 at or
//! below 1 ms in 6 of 10 runs against 3 of 10; the readers read as much.
//!
//! The replay of the resident blocks into a new eviction policy grows with the cache (sorting
//! the snapshot, a hook call per block: tens of milliseconds at a few hundred thousand
//! blocks), and at nice -10 on 2 CPUs it took the readers' CPU for all of it: on a cache of
//! 262,144 resident blocks, the slowest read during seen-before swaps was 13.7-16.1 ms with
//! the replay raised and 8.0-9.7 ms without (`docs/benchmarks.md` §5). So a replay runs at
//! the raised priority only while it is expected to take at most [`SwapPriority::REPLAY`]
//! (the cost per block the last replays measured, times its blocks) and has not run longer
//! ([`replay_pacer`]): a swap on a cache it can be quick on goes first, a long one runs as
//! the readers do.
//!
//! A compile's parallel work runs on threads at the priority of the thread that asked for it
//! (`kplug_engine`'s compile pools), so a swap's compile is raised with it and the tier-up's
//! optimizing compile stays below the readers.
//!
//! Needs `CAP_SYS_NICE` (root); without it nothing changes. The state is the thread's own
//! (`kplug_engine::nice`), as the priority is; a thread spawned while a swap is raised (the
//! tier-up finisher, a governor's ticker, the probes' delivery) starts at its spawner's own
//! nice (`nice::start_at`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kplug_engine::nice;

/// What a replay cost per block, as the last one measured (an `f64`'s bits, in ns; 0: none
/// measured yet).
static NS_PER_BLOCK: AtomicU64 = AtomicU64::new(0);

/// This thread at nice [`NICE`](Self::NICE) until dropped or, in a replay, until
/// [`replay_pacer`] lowers it (see the module docs).
pub(super) struct SwapPriority {
    _raised: nice::Raised,
}

impl SwapPriority {
    pub(super) const NICE: i32 = -10;

    /// How long a replay of the resident blocks runs at the raised priority: the seen-before
    /// swap's target (issue 19), which a longer replay misses anyway.
    pub(super) const REPLAY: Duration = Duration::from_millis(1);

    /// Raises this thread's priority, if it is below the swap's and may be raised.
    pub(super) fn raise() -> Option<SwapPriority> {
        nice::raise(Self::NICE).map(|_raised| SwapPriority { _raised })
    }
}

/// For the replay of the resident blocks into a new eviction policy, called as it goes with
/// the blocks told and their total (`Prepared::from_snapshot_with`, first with none told):
/// the thread gets its own nice back once the replay has run for [`SwapPriority::REPLAY`],
/// or at once if its blocks times the cost per block measured so far come to more. Does
/// nothing to a thread not raised. With `measures`, it measures that cost between two of its
/// calls (the first interval, with the snapshot's sort, left out: a sort is not a cost per
/// block); a replay that is not one block after another (a governor's, with its candidates
/// compiled between its shadows) does not measure.
pub(super) fn replay_pacer(measures: bool) -> impl FnMut(usize, usize) {
    let start = Instant::now();
    let mut last: Option<(Instant, usize)> = None;
    move |told, total| {
        let now = Instant::now();
        if measures
            && let Some((then, before)) = last
            && told > before
        {
            let per_block = (now - then).as_nanos() as f64 / (told - before) as f64;
            NS_PER_BLOCK.store(per_block.to_bits(), Ordering::Relaxed);
        }
        if told > 0 {
            last = Some((now, told));
        }
        let per_block = f64::from_bits(NS_PER_BLOCK.load(Ordering::Relaxed));
        let expected = Duration::from_nanos((per_block * total as f64) as u64);
        if now - start > SwapPriority::REPLAY || expected > SwapPriority::REPLAY {
            nice::lower();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SwapPriority, replay_pacer};
    use kplug_engine::nice;

    fn current() -> i32 {
        nice::get().unwrap()
    }

    /// The swap runs at nice -10 while the guard lives (as root, which may raise a priority),
    /// and the thread gets its own nice back after; a thread already above is left alone.
    #[test]
    fn a_swap_goes_first_and_gives_the_priority_back() {
        std::thread::spawn(|| {
            let before = current();
            let guard = SwapPriority::raise();
            if guard.is_some() {
                assert_eq!(current(), SwapPriority::NICE);
                assert!(
                    SwapPriority::raise().is_none(),
                    "already at the swap's nice"
                );
            } else {
                assert!(
                    nix::unistd::geteuid().as_raw() != 0 || before <= SwapPriority::NICE,
                    "root could not raise the priority"
                );
                assert_eq!(current(), before);
            }
            drop(guard);
            assert_eq!(current(), before);
        })
        .join()
        .unwrap();
    }

    /// A replay keeps the raised priority while short, gives it back once it has run for a
    /// millisecond, and from then on a replay expected to run longer (its blocks times the
    /// cost per block measured) gives it back before it starts; the guard's drop after that
    /// changes nothing. (One test: the measured cost is the process's.)
    #[test]
    fn a_long_replay_gives_the_priority_back() {
        std::thread::spawn(|| {
            let before = current();
            let Some(guard) = SwapPriority::raise() else {
                assert!(
                    nix::unistd::geteuid().as_raw() != 0,
                    "root could not raise it"
                );
                return; // not root: nothing raised, nothing to give back
            };
            let mut pace = replay_pacer(true);
            pace(0, 2048);
            pace(1024, 2048);
            assert_eq!(current(), SwapPriority::NICE, "a short replay stays ahead");
            std::thread::sleep(SwapPriority::REPLAY * 2);
            pace(2048, 2048);
            assert_eq!(current(), before, "a long one runs as the readers do");
            drop(guard);
            assert_eq!(current(), before);

            // Measured between the last two calls: about 2 us a block. A replay of
            // 100,000 blocks is expected to take 200 ms and runs as the readers do from its
            // start; one of 100 blocks goes first.
            let guard = SwapPriority::raise().unwrap();
            replay_pacer(true)(0, 100);
            assert_eq!(current(), SwapPriority::NICE);
            replay_pacer(true)(0, 100_000);
            assert_eq!(current(), before);
            drop(guard);

            // A thread not raised: the pacer leaves it alone.
            let mut pace = replay_pacer(true);
            std::thread::sleep(SwapPriority::REPLAY * 2);
            pace(1024, 1024);
            assert_eq!(current(), before);
        })
        .join()
        .unwrap();
    }
}
