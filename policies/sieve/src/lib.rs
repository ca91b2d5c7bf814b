//! SIEVE eviction written with `kplug-sdk`, libCacheSim's `Sieve`.
//!
//! A FIFO queue (new blocks at the head) with one visited bit per block, set
//! by a hit. The hand starts at the tail and moves toward the head: a visited
//! block has its bit cleared and is skipped (it stays in place); the first
//! unvisited block is evicted and the hand stays at its neighbour toward the
//! head. Past the head the hand wraps to the tail. Parameters: none.
//!
//! By handle (ABI 1.8): the queue is the SDK's `HandleList` (front = head), a
//! block's handle its entry, whose tag is its visited bit; the hand is a handle
//! walked with `toward_front`. No lookup by key is ever needed.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{HandleEviction, HandleList, Plugin, export_plugin, write_keys};

/// SIEVE.
#[derive(Default)]
pub struct Sieve {
    /// The queue; an entry's tag is its visited bit.
    queue: HandleList,
    /// The hand: next block to examine, or `None` = start at the tail.
    hand: Option<u32>,
}

impl Plugin for Sieve {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        let c = capacity.min(1 << 20) as usize;
        self.queue.reserve(c);
        Ok(())
    }
}

impl HandleEviction for Sieve {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        self.queue.push_front(key)
    }

    fn access(&mut self, handle: u32) {
        if let Some(visited) = self.queue.tag_mut(handle) {
            *visited = 1;
        }
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        if self.queue.contains(handle) {
            if self.hand == Some(handle) {
                self.hand = self.queue.toward_front(handle);
            }
            self.queue.remove(handle);
        }
    }

    /// The block at the hand is the next victim unless a hit visited it (ABI 1.11).
    const HINTS: u32 = 1;

    fn likely_victims(&self, out: &mut [u64]) -> usize {
        write_keys(
            out,
            self.hand
                .or_else(|| self.queue.back())
                .and_then(|h| self.queue.key(h)),
        )
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        let tail = self.queue.back()?;
        let mut i = self.hand.unwrap_or(tail);
        while let Some(visited) = self.queue.tag_mut(i)
            && *visited != 0
        {
            *visited = 0;
            i = self.queue.toward_front(i).unwrap_or(tail);
        }
        self.hand = self.queue.toward_front(i);
        self.queue.remove(i)
    }
}

export_plugin!(Sieve, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_keeps_its_place() {
        let mut s = Sieve::default();
        // queue head..tail: 4 3 2 1
        let h: Vec<u32> = (1..=4).map(|k| s.insert(k)).collect();
        s.access(h[0]);
        s.access(h[2]);
        // hand: 1 (visited, clear) -> 2 evicted, hand at 3.
        assert_eq!(s.victim(0), Some(2));
        s.insert(5);
        // hand at 3 (visited, clear) -> 4 evicted; 1 (now unvisited) stays
        // behind the hand until it wraps.
        assert_eq!(s.victim(0), Some(4));
        assert_eq!(s.victim(0), Some(5));
        assert_eq!(s.victim(0), Some(1));
        assert_eq!(s.victim(0), Some(3));
        assert_eq!(s.victim(0), None);
    }
}
