//! FIFO eviction written with `kplug-sdk`, libCacheSim's `FIFO`: blocks leave
//! in insertion order; hits change nothing. By handle (ABI 1.8): a block's handle is
//! its entry in the queue. Parameters: none.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{HandleEviction, HandleList, Plugin, export_plugin};

/// First in, first out. The list's front is the newest insertion.
#[derive(Default)]
pub struct Fifo {
    queue: HandleList,
}

impl Plugin for Fifo {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.queue.reserve(capacity.min(1 << 20) as usize);
        Ok(())
    }
}

impl HandleEviction for Fifo {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        self.queue.push_front(key)
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        self.queue.remove(handle);
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        self.queue.pop_back()
    }

    // As LRU's (ABI 1.10): the back of the queue, whose order nothing but a pop changes.
    const AHEAD: u32 = 32;

    fn name_ahead(&self, out: &mut [u64]) -> usize {
        self.queue.keys_from_back(out)
    }

    // As LRU's: the back's entry becomes the incoming block at the front.
    #[inline(always)]
    fn took_ahead(&mut self, handle: u32, incoming: u64) -> bool {
        self.queue.replace_back(handle, incoming)
    }
}

export_plugin!(Fifo, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_in_insertion_order_and_ignores_hits() {
        let mut f = Fifo::default();
        let h: Vec<u32> = (1..=4).map(|k| f.insert(k)).collect();
        f.access(h[0]);
        f.remove(2, h[1]);
        assert_eq!(f.victim(0), Some(1));
        assert_eq!(f.victim(0), Some(3));
        assert_eq!(f.victim(0), Some(4));
        assert_eq!(f.victim(0), None);
    }

    #[test]
    fn a_miss_taken_ahead_renames_the_oldest_as_the_newest() {
        let mut f = Fifo::default();
        let h: Vec<u32> = (1..=3).map(|k| f.insert(k)).collect();
        // Only the oldest block may be taken; it becomes the newest, keeping its handle.
        assert!(!f.took_ahead(h[1], 9));
        assert!(f.took_ahead(h[0], 9));
        assert_eq!(f.queue.front(), Some(h[0]));
        assert_eq!(f.victim(0), Some(2));
        assert_eq!(f.victim(0), Some(3));
        assert_eq!(f.victim(0), Some(9));
    }
}
