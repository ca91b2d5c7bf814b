//! FIFO eviction written with `kplug-sdk`, libCacheSim's `FIFO`: blocks leave
//! in insertion order; hits change nothing. Parameters: none.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Eviction, KeyList, Plugin, export_plugin};

/// First in, first out. The list's front is the newest insertion.
#[derive(Default)]
pub struct Fifo {
    queue: KeyList,
}

impl Plugin for Fifo {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.queue.reserve(capacity.min(1 << 20) as usize);
        Ok(())
    }
}

impl Eviction for Fifo {
    fn insert(&mut self, key: u64) {
        self.queue.push_front(key);
    }

    fn remove(&mut self, key: u64) {
        self.queue.remove(key);
    }

    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        self.queue.pop_back()
    }
}

export_plugin!(Fifo, eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_in_insertion_order_and_ignores_hits() {
        let mut f = Fifo::default();
        for k in 1..=4 {
            f.insert(k);
        }
        f.access(1);
        f.remove(2);
        assert_eq!(f.victim(0), Some(1));
        assert_eq!(f.victim(0), Some(3));
        assert_eq!(f.victim(0), Some(4));
        assert_eq!(f.victim(0), None);
    }
}
