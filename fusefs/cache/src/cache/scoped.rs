//! What a [`ScopedCache`](crate::ScopedCache) needs of each scope's core beyond the plain
//! driver: inserting with room arbitrated across scopes, giving up blocks without a miss
//! (its own eviction policy picks them), and handing its blocks to another scope when the
//! scope is removed.

use std::sync::Arc;

use kplug_engine::figures::Figures;

use super::{CacheCore, Insert};

impl<V> CacheCore<V> {
    /// `insert` (or `insert_prefetched`) with the room decided by `room` (see
    /// `insert_from`).
    pub(crate) fn insert_with_room(
        &mut self,
        key: u64,
        value: V,
        prefetched: bool,
        room: &mut dyn FnMut(usize) -> u64,
    ) -> Insert {
        self.insert_from(key, value, prefetched, Some(room))
    }

    /// Sets the capacity the core's policies are sized for, and its capacity at rest (a
    /// [`ScopedCache`](crate::ScopedCache) decides each insertion's room itself).
    pub(crate) fn set_capacity(&mut self, capacity: u64) {
        self.capacity = capacity;
    }

    /// Mark this core as a scope of a cache of `whole` blocks (see `scoped_in`).
    pub(crate) fn serve_scope_of(&mut self, whole: u64) {
        self.scoped_in = Some(whole);
    }

    /// Forgets an in-flight prefetch of `key` (its block turned out to be resident in another
    /// scope).
    pub(crate) fn forget_in_flight(&mut self, key: u64) {
        self.in_flight.remove(&key);
    }

    /// Gives up `n` resident blocks (fewer if it holds fewer), chosen by this core's eviction
    /// policy as if a block were missing: a batched plugin is asked `kplug_evict_miss(phantom,
    /// n)` (1.4; 1.8: `kplug_evict_handle_miss`) for a key no block has, which it forgets at
    /// once (`kplug_evict_remove`; 1.8: `kplug_evict_handle_remove` with the phantom's
    /// handle); any other policy names victims one by one. Returns how many left.
    pub(crate) fn shed(&mut self, n: usize) -> usize {
        let before = self.map.len();
        let target = before.saturating_sub(n) as u64;
        if self.governor.is_none() {
            let phantom = self.phantom_key();
            let need = |resident: u64| (resident > target).then(|| resident - target);
            if let Some(handle) = self.batched_miss(phantom, need) {
                let resident = self.map.len() as u64;
                match self
                    .eviction
                    .remove(&mut self.plugins, phantom, handle, resident)
                {
                    Ok(()) => self.evict_returned(),
                    Err(f) => self.on_fault(f),
                }
            }
        }
        let target = target as usize;
        while self.map.len() > target {
            let victim = self.next_victim();
            self.evict(victim);
        }
        before - self.map.len()
    }

    /// A key that is not resident here, for [`shed`](Self::shed): the highest one free.
    fn phantom_key(&self) -> u64 {
        let mut k = u64::MAX;
        while self.map.contains_key(k) {
            k -= 1;
        }
        k
    }

    /// Makes a resident block of another scope resident here, without asking admission and
    /// without making room (the blocks move, their total does not change); the eviction
    /// policy learns it as an insertion.
    pub(crate) fn adopt(&mut self, key: u64, value: V, prefetched: bool) {
        if self.map.contains_key(key) {
            return;
        }
        self.put(key, value, prefetched, 0);
        self.tell_inserted(key);
        if self.governor.is_some() {
            self.inserted_for_governor(key);
        }
    }

    /// Empties the core for its scope's removal: its resident blocks, least recently used
    /// first (`(key, value, prefetched and unread)`); the plugins serving it are marked
    /// disabled for `reason` and dropped.
    pub(crate) fn take_resident(&mut self, reason: &str) -> Vec<(u64, V, bool)> {
        let mut v: Vec<(u64, u64, V, bool)> = self
            .map
            .drain()
            .map(|(k, e)| (e.last_access, k, e.value, e.prefetched))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        // Emptied without a log of it: a snapshot taken before installs by walking.
        self.changes = Default::default();
        if let Some(files) = &mut self.files {
            files.clear();
        }
        self.in_flight.clear();
        let old = self.slots();
        self.serve_builtin(self.config.eviction);
        self.admission = crate::roles::admission::AdmissionRole::Native(
            self.config.admission.build(),
            self.config.admission.name(),
        );
        self.prefetch = crate::roles::prefetch::PrefetchRole::Native(
            self.config.prefetch.build(),
            self.config.prefetch.name(),
        );
        self.release_unused(&old, reason);
        v.into_iter().map(|(_, k, val, p)| (k, val, p)).collect()
    }

    /// Use `figures` (another core's: the mount's) for what plugins read and what requests
    /// feed, so that every scope's plugins see the same backend latency and clock.
    pub(crate) fn use_figures(&mut self, figures: Arc<Figures>) {
        self.figures = figures;
    }
}
