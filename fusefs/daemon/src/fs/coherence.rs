//! Keeping the kernel's page cache coherent with write-through writes.
//!
//! Without `writeback_cache`, the kernel copies a `write(2)` into the file's page-cache pages,
//! marks every page it filled completely up to date, **unlocks those pages**, and only then
//! sends FUSE_WRITE to the daemon. In that window a page holding the new bytes is clean and
//! unlocked: `POSIX_FADV_DONTNEED`, an open without `keep_cache`, or memory reclaim may drop
//! it, and a read that follows sends FUSE_READ, which can reach the daemon before the
//! FUSE_WRITE does and return the old bytes from the backing file. The kernel caches them, the
//! write then lands in the backing file only, and every later read through the page cache
//! sees the old data, after `write(2)` returned. (`tests/tests/concurrency.rs` caught this.)
//!
//! The daemon cannot see the kernel's copy, but it sees the race's other half: a read of the
//! same pages that started shortly before the write arrived. [`ReadLog`] remembers the page
//! ranges of recent reads of one inode; when a write ends, [`ReadLog::overlaps_since`] says
//! whether such a read may have filled the kernel's cache with bytes older than the write,
//! and only then does the FUSE adapter drop those pages (FUSE_NOTIFY_INVAL_INODE) before it
//! replies. A workload that never reads what it is writing pays nothing.
//!
//! The log is small and bounded: it keeps the last [`ReadLog::SLOTS`] reads, and a read that
//! falls off the end while still recent makes every overlapping check answer yes until it
//! ages out (conservative: a needless invalidation costs a re-read, a missed one costs data).

use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long before a write's arrival a read still counts as racing it. The real window is
/// the time between the kernel's copy and FUSE_WRITE reaching a daemon thread: microseconds,
/// unless a thread is descheduled; a second covers any scheduling hiccup.
pub const RACE_WINDOW: Duration = Duration::from_secs(1);

/// Nanoseconds since a process-wide epoch: a cheap monotonic clock for the log.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    start: u64,
    end: u64,
    at_ns: u64,
}

#[derive(Debug, Default)]
struct Ring {
    entries: [Entry; ReadLog::SLOTS],
    next: usize,
    /// Start time of the newest read pushed out of the ring.
    lost_ns: u64,
}

/// Recent reads of one inode's data (byte ranges and start times).
#[derive(Debug, Default)]
pub struct ReadLog {
    ring: Mutex<Ring>,
}

impl ReadLog {
    /// Reads remembered per inode.
    pub const SLOTS: usize = 16;

    /// A read of `range` starts now.
    pub fn record(&self, range: Range<u64>) {
        self.record_at(range, now_ns());
    }

    /// A read of `range` started at `at_ns` (on the [`now_ns`] clock).
    pub fn record_at(&self, range: Range<u64>, at_ns: u64) {
        if range.is_empty() {
            return;
        }
        let mut r = self.ring.lock();
        let i = r.next;
        let old = r.entries[i];
        if old.end > old.start {
            r.lost_ns = r.lost_ns.max(old.at_ns);
        }
        r.entries[i] = Entry {
            start: range.start,
            end: range.end,
            at_ns,
        };
        r.next = (i + 1) % Self::SLOTS;
    }

    /// Did a read overlapping `range` start at or after `since_ns`? (Or may one have, because
    /// the log lost a read that recent.)
    pub fn overlaps_since(&self, range: Range<u64>, since_ns: u64) -> bool {
        if range.is_empty() {
            return false;
        }
        let r = self.ring.lock();
        if r.lost_ns >= since_ns && r.lost_ns != 0 {
            return true;
        }
        r.entries.iter().any(|e| {
            e.end > e.start && e.at_ns >= since_ns && e.start < range.end && range.start < e.end
        })
    }
}

/// The page-aligned part of `range` (whole pages only) and the partial pages at its edges.
/// The kernel keeps a partially written page that was not already cached locked until the
/// write's reply, so only whole pages may be invalidated before replying.
pub fn split_pages(range: Range<u64>, page: u64) -> (Range<u64>, Vec<Range<u64>>) {
    let whole_start = range.start.div_ceil(page) * page;
    let whole_end = range.end / page * page;
    let mut edges = Vec::new();
    if whole_start >= whole_end {
        // No whole page: at most the one or two pages the range touches.
        let first = range.start / page * page;
        let last_end = range.end.div_ceil(page) * page;
        if range.start < range.end {
            edges.push(first..last_end);
        }
        return (0..0, edges);
    }
    if range.start < whole_start {
        edges.push(whole_start - page..whole_start);
    }
    if whole_end < range.end {
        edges.push(whole_end..whole_end + page);
    }
    (whole_start..whole_end, edges)
}

/// The system page size.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 { n as u64 } else { 4096 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recent_overlapping_reads_count() {
        let log = ReadLog::default();
        log.record_at(0..4096, 100);
        log.record_at(8192..12288, 200);
        assert!(log.overlaps_since(0..10, 100));
        assert!(!log.overlaps_since(0..10, 101), "too old");
        assert!(!log.overlaps_since(4096..8192, 0), "no overlap");
        assert!(log.overlaps_since(4000..9000, 150));
        assert!(!log.overlaps_since(0..0, 0), "empty write");
    }

    #[test]
    fn a_lost_recent_read_makes_the_log_conservative() {
        let log = ReadLog::default();
        log.record_at(0..10, 500);
        for i in 0..ReadLog::SLOTS as u64 {
            log.record_at(1_000_000 + i..1_000_001 + i, 600 + i);
        }
        // The read of 0..10 fell off the ring: any check since before it says yes.
        assert!(log.overlaps_since(0..10, 400));
        assert!(log.overlaps_since(50..60, 500));
        // After it ages out, only what the ring holds counts.
        assert!(!log.overlaps_since(50..60, 501));
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn pages_split_into_whole_and_edges() {
        assert_eq!(split_pages(0..8192, 4096), (0..8192, vec![]));
        assert_eq!(
            split_pages(100..8292, 4096),
            (4096..8192, vec![0..4096, 8192..12288])
        );
        assert_eq!(split_pages(100..200, 4096), (0..0, vec![0..4096]));
        assert_eq!(split_pages(4000..4200, 4096), (0..0, vec![0..8192]));
        assert_eq!(split_pages(4096..5000, 4096), (0..0, vec![4096..8192]));
        assert_eq!(split_pages(4096..12288, 4096), (4096..12288, vec![]));
        assert_eq!(split_pages(5..5, 4096), (0..0, vec![]));
    }
}
