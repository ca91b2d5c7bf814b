//! What came into and left the resident set since a snapshot, so that installing a plugin
//! prepared from that snapshot costs what changed, not what is resident.
//!
//! A swap seeds the new eviction policy from a snapshot taken under the embedder's lock
//! ([`CacheCore::snapshot_for_install`](crate::CacheCore::snapshot_for_install)) and, at the
//! install, tells it the blocks that came or went since. Finding those by walking the whole
//! resident set took 20-24 ms under the lock at a million resident blocks; the core instead
//! logs the key of every insertion and removal while a snapshot may still be installed, and
//! the install reads the log from the snapshot's [`Mark`].
//!
//! The log is bounded, so a preparation that is abandoned (it faulted, its file was removed)
//! costs nothing for long: once it holds more keys than twice the resident count (beyond that,
//! reading it costs more than the walk it replaces) it is dropped, and so is it once every
//! snapshot taken was installed. A mark of a dropped log is stale ([`Changes::since`] says
//! so) and that install walks the resident set as before. Every log has a number no other
//! log of any core had, so a mark never reads another log than its own.

use std::sync::atomic::{AtomicU64, Ordering};

/// The number of the next log started, in any core.
static NEXT_LOG: AtomicU64 = AtomicU64::new(1);

/// Where a snapshot stands in the log of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    log: u64,
    at: usize,
}

/// The log of resident-set changes of one core (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Changes {
    log: Option<Log>,
}

#[derive(Debug)]
struct Log {
    /// Its number ([`NEXT_LOG`]): marks of another log are stale.
    number: u64,
    /// Keys inserted or removed, in order, since the oldest mark of this log.
    keys: Vec<u64>,
    /// Marks handed out and not yet [`Changes::done`] with.
    waiting: usize,
}

impl Changes {
    /// Starts logging (if not already) and returns where the log stands now. A new log takes
    /// room for `room` keys at once (its bound: the memory is not touched until used, and a
    /// reader's insertion never copies a long log to grow it).
    pub(crate) fn watch(&mut self, room: usize) -> Mark {
        let log = self.log.get_or_insert_with(|| Log {
            number: NEXT_LOG.fetch_add(1, Ordering::Relaxed),
            keys: Vec::with_capacity(room),
            waiting: 0,
        });
        log.waiting += 1;
        Mark {
            log: log.number,
            at: log.keys.len(),
        }
    }

    /// Records that `key` came or left, if anyone waits; drops the log once it holds more
    /// than `limit` keys.
    #[inline]
    pub(crate) fn note(&mut self, key: u64, limit: u64) {
        if let Some(log) = &mut self.log {
            if log.keys.len() as u64 >= limit {
                self.log = None;
            } else {
                log.keys.push(key);
            }
        }
    }

    /// The keys that came or left since `mark`, in order (a key may appear several times),
    /// or `None` if the log was dropped since (the caller must find them another way).
    pub(crate) fn since(&self, mark: Mark) -> Option<&[u64]> {
        match &self.log {
            Some(log) if log.number == mark.log => log.keys.get(mark.at..),
            _ => None,
        }
    }

    /// The install of the snapshot taken at `mark` is over (installed or refused): once no
    /// snapshot waits, the log goes.
    pub(crate) fn done(&mut self, mark: Mark) {
        if let Some(log) = &mut self.log
            && log.number == mark.log
        {
            log.waiting -= 1;
            if log.waiting == 0 {
                self.log = None;
            }
        }
    }

    /// Whether changes are being logged now.
    pub(in crate::cache) fn logging(&self) -> bool {
        self.log.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_logged_until_someone_watches_and_after_everyone_is_done() {
        let mut c = Changes::default();
        c.note(1, 100);
        assert!(!c.logging());
        let a = c.watch(8);
        c.note(2, 100);
        let b = c.watch(8);
        c.note(3, 100);
        assert_eq!(c.since(a), Some(&[2, 3][..]));
        assert_eq!(c.since(b), Some(&[3][..]));
        c.done(b);
        assert_eq!(c.since(a), Some(&[2, 3][..]), "a still waits");
        c.done(a);
        assert!(!c.logging());
        assert_eq!(c.since(a), None, "stale once dropped");
        c.note(4, 100);
        let d = c.watch(8);
        assert_eq!(c.since(d), Some(&[][..]));
        assert_eq!(c.since(a), None, "a new log is not the old one's");
    }

    #[test]
    fn an_abandoned_watch_costs_a_bounded_log() {
        let mut c = Changes::default();
        let forgotten = c.watch(8);
        for k in 0..10 {
            c.note(k, 4);
        }
        assert!(!c.logging(), "dropped at the limit");
        assert_eq!(c.since(forgotten), None);
        // A stale mark's done does not end a later watch.
        let live = c.watch(8);
        c.done(forgotten);
        c.note(7, 4);
        assert_eq!(c.since(live), Some(&[7][..]));
    }

    #[test]
    fn a_mark_reads_only_its_own_log() {
        let (mut a, mut b) = (Changes::default(), Changes::default());
        let of_a = a.watch(8);
        b.watch(8);
        b.note(5, 100);
        assert_eq!(b.since(of_a), None, "another core's log");
        b.done(of_a);
        assert!(b.logging(), "another core's mark ends nothing");
        assert_eq!(a.since(of_a), Some(&[][..]));
    }
}
