//! Native LRU: a doubly linked list threaded through a slab of nodes, plus a
//! key -> node map. Every hook is O(1): one map operation and a few index
//! writes. Nodes are `u32` indices rather than pointers (no unsafe, half the
//! size), and freed nodes are reused so the slab never exceeds the largest
//! resident set. The head is the most recently used block, the tail the victim.

use super::NativeEviction;
use kplug_engine::hash::{BlockMap, keep_sparse};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    key: u64,
    prev: u32,
    next: u32,
}

/// Least-recently-used eviction order.
pub(crate) struct Lru {
    map: BlockMap<u64, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            map: BlockMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
}

impl Lru {
    #[inline]
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
    }

    #[inline]
    fn push_front(&mut self, i: u32) {
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = self.head;
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    /// Number of tracked blocks.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl NativeEviction for Lru {
    #[inline]
    fn insert(&mut self, key: u64) {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            return;
        }
        let node = Node {
            key,
            prev: NIL,
            next: NIL,
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
        keep_sparse(&mut self.map);
        self.map.insert(key, i);
        self.push_front(i);
    }

    #[inline]
    fn access(&mut self, key: u64) {
        if let Some(&i) = self.map.get(&key)
            && i != self.head
        {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn remove(&mut self, key: u64) {
        if let Some(i) = self.map.remove(&key) {
            self.unlink(i);
            self.release(i);
        }
    }

    #[inline]
    fn victim(&mut self) -> Option<u64> {
        let i = self.tail;
        if i == NIL {
            return None;
        }
        let key = self.nodes[i as usize].key;
        self.unlink(i);
        self.map.remove(&key);
        self.release(i);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut l = Lru::default();
        for k in 1..=4 {
            l.insert(k);
        }
        l.access(1);
        l.access(3);
        assert_eq!(l.victim(), Some(2));
        l.remove(4);
        assert_eq!(l.victim(), Some(1));
        l.insert(9);
        assert_eq!(l.victim(), Some(3));
        assert_eq!(l.victim(), Some(9));
        assert_eq!(l.victim(), None);
        assert_eq!(l.len(), 0);
        assert!(l.nodes.len() <= 4, "freed nodes are reused");
    }
}
