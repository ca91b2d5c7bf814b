//! Where the serving eviction policy's handles are kept (a plugin's on ABI 1.8, or the
//! native built-in's, `builtin/mod.rs`): in each block's entry, or, for an entry older than
//! the policy's install, in the table the install brought.
//!
//! A plugin by handle gives every block a handle when it is told the block, and gets it back
//! on each hit and removal. A hot swap tells the new plugin every resident block (outside
//! the lock), and the handles it gave must reach the blocks' entries. Writing them all at
//! the install took 10 ms under the lock at a million resident blocks; instead the install
//! keeps the table and starts a new generation, and an entry of an older generation takes
//! its handle from the table the first time it is needed (a hit, a removal). The table goes
//! with the next install. The generation is 16 bits, kept in the entry's padding; when it
//! wraps, that install writes every entry as before, so an entry never meets its own
//! generation again with a handle of another plugin.

use kplug_engine::hash::BlockMap;

use super::Entry;
use super::table::BlockTable;

/// The serving eviction policy's handles of entries older than its install (see the module
/// docs).
#[derive(Default)]
pub(in crate::cache) struct Handles {
    /// The generation of the serving policy's install: an entry of another takes its handle
    /// from `table`.
    generation: u16,
    /// The handle the serving policy gave each block resident at its install.
    table: Option<BlockMap<u64, u32>>,
}

impl Handles {
    /// The generation an entry written now belongs to.
    #[inline]
    pub(in crate::cache) fn generation(&self) -> u16 {
        self.generation
    }

    /// The handle of `key` whose entry is `e`, as the serving policy gave it.
    #[inline]
    pub(in crate::cache) fn of<V>(&self, key: u64, e: &Entry<V>) -> u32 {
        if e.generation == self.generation {
            e.handle
        } else {
            self.in_table(key)
        }
    }

    /// [`of`](Self::of), writing it into the entry for the next time.
    #[inline]
    pub(in crate::cache) fn refresh<V>(&self, key: u64, e: &mut Entry<V>) -> u32 {
        if e.generation != self.generation {
            e.handle = self.in_table(key);
            e.generation = self.generation;
        }
        e.handle
    }

    /// Writes `handle` into `e`, as the serving policy gave it.
    #[inline]
    pub(in crate::cache) fn set<V>(&self, e: &mut Entry<V>, handle: u32) {
        e.handle = handle;
        e.generation = self.generation;
    }

    /// Writes every entry's handle, `handle(key)`, as the serving policy gave it.
    pub(in crate::cache) fn set_all<V>(
        &self,
        map: &mut BlockTable<Entry<V>>,
        handle: impl Fn(u64) -> u32,
    ) {
        for (k, e) in map.iter_mut() {
            self.set(e, handle(k));
        }
    }

    #[cold]
    fn in_table(&self, key: u64) -> u32 {
        self.table
            .as_ref()
            .and_then(|t| t.get(&key).copied())
            .unwrap_or(0)
    }

    /// A policy by handle (a plugin on ABI 1.8, the native built-in) now serves: `table`
    /// holds the handle it gave each resident block. Returns the previous table, for the
    /// caller to drop where it likes.
    pub(in crate::cache) fn install<V>(
        &mut self,
        table: BlockMap<u64, u32>,
        map: &mut BlockTable<Entry<V>>,
    ) -> Option<BlockMap<u64, u32>> {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: an entry untouched for 65,536 installs could carry this generation.
            self.set_all(map, |k| table.get(&k).copied().unwrap_or(0));
        }
        self.table.replace(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(handle: u32, generation: u16) -> Entry<()> {
        Entry {
            value: (),
            last_access: 0,
            prefetched: false,
            handle,
            generation,
        }
    }

    #[test]
    fn older_entries_take_their_handle_from_the_install() {
        let mut h = Handles::default();
        let mut map: BlockTable<Entry<()>> = BlockTable::default();
        map.insert(1, entry(11, 0));
        map.insert(2, entry(12, 0));
        let table: BlockMap<u64, u32> = [(1, 21), (2, 22)].into_iter().collect();
        assert!(h.install(table, &mut map).is_none());
        assert_eq!(h.of(1, map.get(1).unwrap()), 21);
        assert_eq!(map.get(1).unwrap().handle, 11, "not written until needed");
        let e = map.get_mut(2).unwrap();
        assert_eq!(h.refresh(2, e), 22);
        assert_eq!((e.handle, e.generation), (22, 1));
        // Written now: its own.
        map.insert(3, entry(33, h.generation()));
        assert_eq!(h.of(3, map.get(3).unwrap()), 33);
    }

    #[test]
    fn a_wrapped_generation_writes_every_entry() {
        let mut h = Handles {
            generation: u16::MAX,
            table: None,
        };
        let mut map: BlockTable<Entry<()>> = BlockTable::default();
        // Written 65,535 installs ago, never touched since: generation 0.
        map.insert(1, entry(7, 0));
        let table: BlockMap<u64, u32> = [(1, 41)].into_iter().collect();
        h.install(table, &mut map);
        assert_eq!(h.generation(), 0);
        let e = map.get(1).unwrap();
        assert_eq!((e.handle, e.generation), (41, 0));
        assert_eq!(h.of(1, e), 41);
    }
}
