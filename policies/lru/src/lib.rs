//! LRU eviction written with `kplug-sdk`, by handle (ABI 1.8): the list's front is the most
//! recently used block, the back is the victim. Each resident block's handle is its entry in
//! the list, so a hit is a move, with no lookup. Parameters: none.

// no_std on wasm32; natively (unit tests, a native simulator) std links.
#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{HandleEviction, HandleList, Plugin, export_plugin};

/// Least recently used.
#[derive(Default)]
pub struct Lru {
    order: HandleList,
}

impl Plugin for Lru {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        // Pre-size for the whole cache (bounded: a bogus capacity must not
        // make init allocate past the memory cap).
        self.order.reserve(capacity.min(1 << 20) as usize);
        Ok(())
    }
}

impl HandleEviction for Lru {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        self.order.push_front(key)
    }

    // Inline into the export's loop over the hits, beside the misses taken ahead (left to
    // LLVM, the loop's body became a function called at every hit: 296 -> 356 instructions
    // a request on `orm-busy`).
    #[inline(always)]
    fn access(&mut self, handle: u32) {
        self.order.move_to_front(handle);
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        self.order.remove(handle);
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        self.order.pop_back()
    }

    // The back of the list is what `victim` answers next until a hit moves one of those
    // blocks (which the host sees), and a block entering after a pop takes the popped
    // handle: the host evicts these at the next misses without a call (ABI 1.10).
    const AHEAD: u32 = 32;

    fn name_ahead(&self, out: &mut [u64]) -> usize {
        self.order.keys_from_back(out)
    }

    // A miss taken ahead evicts the back and inserts at the front: the back's entry moved
    // and renamed, its handle kept, with no trip through the free list.
    #[inline(always)]
    fn took_ahead(&mut self, handle: u32, incoming: u64) -> bool {
        self.order.replace_back(handle, incoming)
    }
}

export_plugin!(Lru, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut l = Lru::default();
        l.init(8).unwrap();
        let h: Vec<u32> = (1..=4).map(|k| l.insert(k)).collect();
        l.access(h[0]);
        l.remove(2, h[1]);
        assert_eq!(l.victim(0), Some(3));
        assert_eq!(l.victim(0), Some(4));
        assert_eq!(l.victim(0), Some(1));
        assert_eq!(l.victim(0), None);
    }

    #[test]
    fn a_miss_taken_ahead_is_a_victim_then_an_insertion() {
        // Two copies; one takes each miss in one step, the other by victim then insert.
        let (mut a, mut b) = (Lru::default(), Lru::default());
        let mut handles = Vec::new();
        for k in 1..=5 {
            assert_eq!(a.insert(k), b.insert(k));
            handles.push(a.order.back().unwrap());
        }
        a.access(handles[0]);
        b.access(handles[0]);
        for k in 10..20 {
            let back = a.order.back().unwrap();
            let front = a.order.front().unwrap();
            // Not the back: refused, nothing changed.
            if front != back {
                assert!(!a.took_ahead(front, k));
            }
            assert!(a.took_ahead(back, k));
            assert!(b.victim(k).is_some());
            assert_eq!(b.insert(k), back);
            if k % 3 == 0 {
                a.access(back);
                b.access(back);
            }
        }
        let drain = |p: &mut Lru| std::iter::from_fn(|| p.victim(0)).collect::<Vec<_>>();
        assert_eq!(drain(&mut a), drain(&mut b));
    }
}
