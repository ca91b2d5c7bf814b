//! SIEVE eviction written with `kplug-sdk`, libCacheSim's `Sieve`.
//!
//! A FIFO queue (new blocks at the head) with one visited bit per block, set
//! by a hit. The hand starts at the tail and moves toward the head: a visited
//! block has its bit cleared and is skipped (it stays in place); the first
//! unvisited block is evicted and the hand stays at its neighbour toward the
//! head. Past the head the hand wraps to the tail. Parameters: none.
//!
//! The queue is a doubly linked list in a slab (the SDK's `KeyList` has no
//! cursor), indexed by an `IntMap`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;
use kplug_sdk::{Eviction, IntMap, Plugin, export_plugin};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    key: u64,
    /// Toward the head (newer).
    prev: u32,
    /// Toward the tail (older).
    next: u32,
    visited: bool,
}

/// SIEVE.
pub struct Sieve {
    index: IntMap<u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    /// The hand: next block to examine, or NIL = start at the tail.
    hand: u32,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            index: IntMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            hand: NIL,
        }
    }
}

impl Sieve {
    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.free.push(i);
    }
}

impl Plugin for Sieve {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        let c = capacity.min(1 << 20) as usize;
        self.index.reserve(c);
        self.nodes.reserve(c);
        Ok(())
    }
}

impl Eviction for Sieve {
    fn insert(&mut self, key: u64) {
        if self.index.contains_key(key) {
            return;
        }
        let node = Node {
            key,
            prev: NIL,
            next: self.head,
            visited: false,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.index.insert(key, i);
    }

    fn access(&mut self, key: u64) {
        if let Some(&i) = self.index.get(key) {
            self.nodes[i as usize].visited = true;
        }
    }

    fn remove(&mut self, key: u64) {
        if let Some(i) = self.index.remove(key) {
            if self.hand == i {
                self.hand = self.nodes[i as usize].prev;
            }
            self.unlink(i);
        }
    }

    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        if self.tail == NIL {
            return None;
        }
        let mut i = if self.hand == NIL {
            self.tail
        } else {
            self.hand
        };
        while self.nodes[i as usize].visited {
            self.nodes[i as usize].visited = false;
            let p = self.nodes[i as usize].prev;
            i = if p == NIL { self.tail } else { p };
        }
        let key = self.nodes[i as usize].key;
        self.hand = self.nodes[i as usize].prev;
        self.index.remove(key);
        self.unlink(i);
        Some(key)
    }
}

export_plugin!(Sieve, eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_keeps_its_place() {
        let mut s = Sieve::default();
        for k in 1..=4 {
            s.insert(k); // queue head..tail: 4 3 2 1
        }
        s.access(1);
        s.access(3);
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
