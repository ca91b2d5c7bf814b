//! LIRS's entries: one slab whose entries can be in several of its `N` lists at
//! once (a resident HIR block sits in the stack S and the queue Q; a block the
//! host holds is in its host list and maybe its pending list too), each list
//! threaded through its own pair of links in every entry. An entry is named by
//! its index, the handle the host keeps for a resident block (ABI 1.8), so a
//! hit finds it in every list with no lookup; an index from key to entry
//! serves misses. An entry in no list and with no flag set is freed at the
//! next [`Nodes::collect`], which the policy calls at the end of each hook:
//! within one, a handle always names the same key.
//!
//! Whether an entry has any of the flag bits `MARK` is mirrored in a byte
//! table beside the slab, one byte a handle: the hit marks the host reads
//! (ABI 1.13), kept by the one place flags are set.

use alloc::vec::Vec;
use kplug_sdk::IntMap;

/// No entry (a list's end).
const NIL: u32 = u32::MAX;
/// `flags` of a free entry.
const FREE: u8 = 0x80;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

#[derive(Clone, Copy)]
struct Node<const N: usize> {
    key: u64,
    links: [Link; N],
    /// Bit `l` set while the entry is in list `l`.
    member: u8,
    /// The policy's bits (below 0x80).
    flags: u8,
}

/// `N` (at most 7) lists over one slab; an entry in any of them at once; byte `h` of
/// [`marks`](Nodes::marks) is 1 while entry `h` has a flag of `MARK`.
pub struct Nodes<const N: usize, const MARK: u8> {
    nodes: Vec<Node<N>>,
    marks: Vec<u8>,
    free: Vec<u32>,
    /// Entries that left their last list or lost their flags since the last `collect`.
    orphans: Vec<u32>,
    index: IntMap<u32>,
    heads: [u32; N],
    tails: [u32; N],
    lens: [u32; N],
}

impl<const N: usize, const MARK: u8> Default for Nodes<N, MARK> {
    fn default() -> Self {
        const { assert!(N <= 7 && MARK & FREE == 0) };
        Nodes {
            nodes: Vec::new(),
            marks: Vec::new(),
            free: Vec::new(),
            orphans: Vec::new(),
            index: IntMap::new(),
            heads: [NIL; N],
            tails: [NIL; N],
            lens: [0; N],
        }
    }
}

impl<const N: usize, const MARK: u8> Nodes<N, MARK> {
    pub fn reserve(&mut self, additional: usize) {
        self.nodes.reserve(additional);
        self.marks.reserve(additional);
        self.index.reserve(additional);
    }

    /// The entry of `key`, if it has one.
    #[inline]
    pub fn find(&self, key: u64) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// The entry of `key`, made (in no list, freed at the next `collect` unless put in one)
    /// if it has none.
    pub fn entry(&mut self, key: u64) -> u32 {
        if let Some(h) = self.find(key) {
            return h;
        }
        let node = Node {
            key,
            links: [UNLINKED; N],
            member: 0,
            flags: 0,
        };
        let h = match self.free.pop() {
            // A free entry's flags were 0 when it was freed, and so is its mark.
            Some(h) => {
                self.nodes[h as usize] = node;
                h
            }
            None => {
                self.nodes.push(node);
                self.marks.push(0);
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(key, h);
        self.orphans.push(h);
        h
    }

    /// Frees the entries left in no list and with no flag set (their handles may then
    /// name other keys). Inlined to a test of the orphans: the policy calls it at the end of
    /// every hook (twice a hit), and nearly always there is none, where the call alone (its
    /// frame sized for the index's removal) was 55 instructions, 122 a request on cache2k's
    /// `orm-busy` (`scripts/bench/instructions.sh`).
    #[inline]
    pub fn collect(&mut self) {
        if !self.orphans.is_empty() {
            self.free_orphans();
        }
    }

    #[inline(never)]
    fn free_orphans(&mut self) {
        while let Some(h) = self.orphans.pop() {
            let n = &mut self.nodes[h as usize];
            if n.member == 0 && n.flags == 0 {
                n.flags = FREE;
                let key = n.key;
                self.index.remove(key);
                self.free.push(h);
            }
        }
    }

    #[inline]
    pub fn key(&self, h: u32) -> u64 {
        self.nodes[h as usize].key
    }

    #[inline]
    pub fn flags(&self, h: u32) -> u8 {
        self.nodes[h as usize].flags
    }

    #[inline]
    pub fn set_flags(&mut self, h: u32, flags: u8) {
        debug_assert!(flags & FREE == 0);
        let n = &mut self.nodes[h as usize];
        n.flags = flags;
        if flags == 0 && n.member == 0 {
            self.orphans.push(h);
        }
        self.marks[h as usize] = (flags & MARK != 0) as u8;
    }

    /// The hit marks: byte `h` is 1 while entry `h` has a flag of `MARK`.
    #[inline]
    pub fn marks(&self) -> &[u8] {
        &self.marks
    }

    /// Whether `h` names an entry (any handle, even one never given) in `list`.
    #[inline]
    pub fn contains(&self, list: usize, h: u32) -> bool {
        self.nodes
            .get(h as usize)
            .is_some_and(|n| n.member & (1 << list) != 0)
    }

    #[inline]
    pub fn len(&self, list: usize) -> usize {
        self.lens[list] as usize
    }

    #[inline]
    pub fn back(&self, list: usize) -> Option<u32> {
        (self.tails[list] != NIL).then_some(self.tails[list])
    }

    /// Adds `h` at the front of `list`; false (no change) if it is there already.
    #[inline]
    pub fn push_front(&mut self, list: usize, h: u32) -> bool {
        if self.contains(list, h) {
            return false;
        }
        let old = self.heads[list];
        let n = &mut self.nodes[h as usize];
        n.links[list] = Link {
            prev: NIL,
            next: old,
        };
        n.member |= 1 << list;
        match old {
            NIL => self.tails[list] = h,
            o => self.nodes[o as usize].links[list].prev = h,
        }
        self.heads[list] = h;
        self.lens[list] += 1;
        true
    }

    /// Takes `h` out of `list`; false if it was not there.
    #[inline]
    pub fn remove(&mut self, list: usize, h: u32) -> bool {
        if !self.contains(list, h) {
            return false;
        }
        let n = &mut self.nodes[h as usize];
        let Link { prev, next } = n.links[list];
        n.member &= !(1 << list);
        if n.member == 0 && n.flags == 0 {
            self.orphans.push(h);
        }
        match prev {
            NIL => self.heads[list] = next,
            p => self.nodes[p as usize].links[list].next = next,
        }
        match next {
            NIL => self.tails[list] = prev,
            x => self.nodes[x as usize].links[list].prev = prev,
        }
        self.lens[list] -= 1;
        true
    }

    /// Moves `h` to the front of `list`; false (no change) if it is not there.
    #[inline]
    pub fn move_to_front(&mut self, list: usize, h: u32) -> bool {
        if !self.contains(list, h) {
            return false;
        }
        if self.heads[list] != h {
            self.remove(list, h);
            self.push_front(list, h);
        }
        true
    }

    /// Takes the entry at the back of `list` out of it.
    #[inline]
    pub fn pop_back(&mut self, list: usize) -> Option<u32> {
        let h = self.back(list)?;
        self.remove(list, h);
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// Random operations on two lists against two `VecDeque` models; entries are freed
    /// once in neither and their keys found again only while they have an entry.
    #[test]
    fn lists_match_a_model() {
        let mut nodes = Nodes::<2, 1>::default();
        let mut model = [VecDeque::new(), VecDeque::new()];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 64;
            let list = (x >> 8) as usize % 2;
            let h = nodes.entry(key);
            assert_eq!(nodes.key(h), key);
            match (x >> 16) % 4 {
                0 => {
                    let added = nodes.push_front(list, h);
                    assert_eq!(added, !model[list].contains(&key));
                    if added {
                        model[list].push_front(key);
                    }
                }
                1 => {
                    let pos = model[list].iter().position(|&k| k == key);
                    assert_eq!(nodes.move_to_front(list, h), pos.is_some());
                    if let Some(p) = pos {
                        model[list].remove(p);
                        model[list].push_front(key);
                    }
                }
                2 => {
                    let pos = model[list].iter().position(|&k| k == key);
                    assert_eq!(nodes.remove(list, h), pos.is_some());
                    if let Some(p) = pos {
                        model[list].remove(p);
                    }
                }
                _ => {
                    let back = nodes.pop_back(list).map(|h| nodes.key(h));
                    assert_eq!(back, model[list].pop_back());
                }
            }
            nodes.collect();
            for (l, m) in model.iter().enumerate() {
                assert_eq!(nodes.len(l), m.len());
                let mut walk = Vec::new();
                let mut at = nodes.heads[l];
                while at != NIL {
                    walk.push(nodes.key(at));
                    at = nodes.nodes[at as usize].links[l].next;
                }
                assert!(walk.iter().eq(m.iter()));
            }
            for k in 0..64 {
                let listed = model.iter().any(|m| m.contains(&k));
                assert_eq!(nodes.find(k).is_some(), listed, "key {k}");
            }
        }
    }
}
