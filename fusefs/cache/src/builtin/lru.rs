//! Native LRU: a doubly linked list threaded through a slab of nodes. Every hook is O(1)
//! and looks nothing up: a node's index is the block's handle (`NativeEviction`), which
//! the core keeps in the block's entry and passes back on each hit and removal, so the list
//! needs no key -> node map of its own (one hash table probed a request, the core's, not
//! two: on a cache far larger than the CPU's caches each probe is a cache miss;
//! docs/benchmarks.md §10). Nodes are `u32` indices rather than pointers (no unsafe, half
//! the size), and freed nodes are reused so the slab never exceeds the largest resident
//! set. The head is the most recently used block, the tail the victim. A handle that is
//! not `key`'s live node is ignored (see `NativeEviction`).

use super::NativeEviction;

const NIL: u32 = u32::MAX;
/// `prev` of a freed node: no live node has it (a live node's `prev` is a node or [`NIL`]).
const FREED: u32 = u32::MAX - 1;

#[derive(Clone, Copy)]
struct Node {
    key: u64,
    prev: u32,
    next: u32,
}

/// Least-recently-used eviction order.
pub(crate) struct Lru {
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }
}

impl Lru {
    /// Whether `handle` is the live node of `key`.
    #[inline]
    fn holds(&self, key: u64, handle: u32) -> bool {
        self.nodes
            .get(handle as usize)
            .is_some_and(|n| n.key == key && n.prev != FREED)
    }

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

    /// Unlinks live node `i` and frees it.
    fn release(&mut self, i: u32) {
        self.unlink(i);
        self.nodes[i as usize].prev = FREED;
        self.free.push(i);
    }

    /// Number of tracked blocks.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

impl NativeEviction for Lru {
    #[inline]
    fn insert(&mut self, key: u64) -> u32 {
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
        self.push_front(i);
        i
    }

    #[inline]
    fn access(&mut self, key: u64, handle: u32) {
        if handle != self.head && self.holds(key, handle) {
            self.unlink(handle);
            self.push_front(handle);
        }
    }

    fn remove(&mut self, key: u64, handle: u32) {
        if self.holds(key, handle) {
            self.release(handle);
        }
    }

    #[inline]
    fn victim(&mut self) -> Option<u64> {
        let i = self.tail;
        if i == NIL {
            return None;
        }
        let key = self.nodes[i as usize].key;
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
        let h: Vec<u32> = (1..=4).map(|k| l.insert(k)).collect();
        l.access(1, h[0]);
        l.access(3, h[2]);
        assert_eq!(l.victim(), Some(2));
        l.remove(4, h[3]);
        assert_eq!(l.victim(), Some(1));
        l.insert(9);
        assert_eq!(l.victim(), Some(3));
        assert_eq!(l.victim(), Some(9));
        assert_eq!(l.victim(), None);
        assert_eq!(l.len(), 0);
        assert!(l.nodes.len() <= 4, "freed nodes are reused");
    }

    #[test]
    fn a_handle_not_of_the_key_changes_nothing() {
        let mut l = Lru::default();
        let a = l.insert(1);
        let b = l.insert(2);
        // Another key's handle, one out of range, a freed node's: ignored.
        l.access(1, b);
        l.access(1, 99);
        l.remove(2, a);
        assert_eq!(l.victim(), Some(1));
        l.access(1, a);
        l.remove(1, a);
        assert_eq!(l.len(), 1);
        assert_eq!(l.victim(), Some(2));
        assert_eq!(l.victim(), None);
    }
}
