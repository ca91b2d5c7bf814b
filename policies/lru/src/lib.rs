//! LRU eviction written with `kplug-sdk`: the list's front is the most
//! recently used block, the back is the victim. Parameters: none.

// no_std on wasm32; natively (unit tests, a native simulator) std links.
#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Eviction, KeyList, Plugin, export_plugin};

/// Least recently used.
#[derive(Default)]
pub struct Lru {
    order: KeyList,
}

impl Plugin for Lru {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        // Pre-size for the whole cache (bounded: a bogus capacity must not
        // make init allocate past the memory cap).
        self.order.reserve(capacity.min(1 << 20) as usize);
        Ok(())
    }
}

impl Eviction for Lru {
    fn insert(&mut self, key: u64) {
        self.order.push_front(key);
    }

    fn access(&mut self, key: u64) {
        self.order.move_to_front(key);
    }

    fn remove(&mut self, key: u64) {
        self.order.remove(key);
    }

    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        self.order.pop_back()
    }
}

export_plugin!(Lru, eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut l = Lru::default();
        l.init(8).unwrap();
        for k in 1..=4 {
            l.insert(k);
        }
        l.access(1);
        l.remove(2);
        assert_eq!(l.victim(0), Some(3));
        assert_eq!(l.victim(0), Some(4));
        assert_eq!(l.victim(0), Some(1));
        assert_eq!(l.victim(0), None);
    }
}
