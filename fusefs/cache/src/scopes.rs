//! Scopes: one cache shared by several sets of policies, each serving its own blocks
//! (cache_ext's per-cgroup policies; Alluxio's nested quotas).
//!
//! A [`ScopedCache`] holds one [`CacheCore`] per scope in numbered slots; slot 0 is the root
//! scope (everything no other scope claims) and always exists. The embedder decides which
//! scope a request belongs to (the mount: the innermost scope whose directory holds the
//! file; the simulator: a key range) and passes its slot. Each core keeps its own policies,
//! counters and resident blocks, so a plugin sees only its scope's blocks and a fault in one
//! scope falls back to the built-in in that scope alone.
//!
//! **Ownership.** A block is resident in at most one core. A lookup in scope S that misses
//! in S's core but finds the block in another (a file renamed across scopes keeps its old
//! blocks until they leave) is served, and counted, by the holder; an insertion of a block
//! another scope holds is `AlreadyResident`. So the cores' counts add up to the cache's.
//!
//! **Arbitration.** Each scope has a *share*, the blocks it is guaranteed; the root's is what
//! the others leave. Shares never add up to more than the capacity. While the cache has room
//! any scope may grow into it (borrowing). When it is full and scope S admits a block, the
//! scope furthest over its share (`resident - share`, the largest; S itself on a tie) gives
//! up one block, chosen by its own eviction policy ([`CacheCore`]'s `shed`): a scope under
//! its share takes back what others borrowed, a scope over it makes room from its own
//! blocks, and scopes without shares split the cache evenly under pressure. The root scope
//! has no share: the space no share reserves is common ground, split evenly under pressure
//! among all scopes beyond their shares. A scope whose turn it would be while holding nothing
//! (every scope at its share, the shares reserving the whole cache) is refused. Shares
//! can be changed at any time ([`ScopedCache::set_share`]): that is the knob an operator or a
//! governor turns; space moves as blocks are admitted, never by a sweep.
//!
//! **Removal.** [`ScopedCache::remove_scope`] hands the scope's blocks to another scope
//! (the enclosing one), least recently used first, as insertions into its eviction policy.
//!
//! With only the root scope every call goes straight to its core: scopes cost nothing
//! until one is created.

use std::sync::Arc;

use kplug_abi::BlockRange;

use crate::cache::{CacheCore, CacheStats, CoreConfig, CoreEvent, Insert};

/// The slot of a scope in a [`ScopedCache`]; 0 is the root scope.
pub type ScopeId = usize;

/// The root scope's slot.
pub const ROOT_SCOPE: ScopeId = 0;

/// Why a scope could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// No such slot, or the root's.
    #[error("no scope slot {0}")]
    NoSlot(ScopeId),
    /// The slot holds a scope already.
    #[error("scope slot {0} is taken")]
    Taken(ScopeId),
    /// The slot holds no scope.
    #[error("no scope in slot {0}")]
    Empty(ScopeId),
    /// The shares would add up to more than the cache.
    #[error("shares would add up to {total} blocks, more than the cache's {capacity}")]
    Oversubscribed {
        /// The sum asked for.
        total: u64,
        /// The capacity.
        capacity: u64,
    },
}

struct Scope<V> {
    core: CacheCore<V>,
    share: u64,
}

/// A cache of `capacity` blocks divided among scopes. See the module docs.
pub struct ScopedCache<V> {
    capacity: u64,
    config: CoreConfig,
    slots: Vec<Option<Scope<V>>>,
    /// Scopes besides the root.
    live: usize,
    /// The sum of the shares of the scopes besides the root.
    reserved: u64,
    /// The counters of the scopes removed: totals never go back.
    retired: CacheStats,
}

impl<V> std::fmt::Debug for ScopedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedCache")
            .field("capacity", &self.capacity)
            .field("scopes", &(self.live + 1))
            .field("resident", &self.len())
            .finish()
    }
}

impl<V> ScopedCache<V> {
    /// A cache of `capacity` blocks with the root scope only and room for `max_scopes`
    /// more; every scope's core starts with `config`'s built-ins.
    pub fn new(capacity: u64, config: CoreConfig, max_scopes: usize) -> Self {
        let root = CacheCore::new(capacity, config.clone());
        Self::from_root(capacity, config, root, max_scopes)
    }

    /// A cache of `capacity` blocks whose root scope is `root`, with room for `max_scopes`
    /// more scopes, each starting with `config`'s built-ins.
    fn from_root(
        capacity: u64,
        config: CoreConfig,
        mut root: CacheCore<V>,
        max_scopes: usize,
    ) -> Self {
        // A plugin sized for its scope is accepted (see `CacheCore::fits`).
        root.serve_scope_of(capacity);
        let mut slots = Vec::with_capacity(max_scopes + 1);
        slots.push(Some(Scope {
            core: root,
            share: 0,
        }));
        slots.resize_with(max_scopes + 1, || None);
        ScopedCache {
            capacity,
            config,
            slots,
            live: 0,
            reserved: 0,
            retired: CacheStats::default(),
        }
    }

    /// Capacity in blocks.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Slots, the root's included.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Resident blocks, all scopes.
    pub fn len(&self) -> usize {
        self.cores().map(|(_, c)| c.len()).sum()
    }

    /// Whether no block is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root scope's core.
    pub fn root(&self) -> &CacheCore<V> {
        &self.slots[ROOT_SCOPE].as_ref().expect("root scope").core
    }

    /// The root scope's core, mutable.
    pub fn root_mut(&mut self) -> &mut CacheCore<V> {
        &mut self.slots[ROOT_SCOPE].as_mut().expect("root scope").core
    }

    /// Scope `id`'s core, if it exists.
    pub fn core(&self, id: ScopeId) -> Option<&CacheCore<V>> {
        self.slots.get(id)?.as_ref().map(|s| &s.core)
    }

    /// Scope `id`'s core, mutable.
    pub fn core_mut(&mut self, id: ScopeId) -> Option<&mut CacheCore<V>> {
        self.slots.get_mut(id)?.as_mut().map(|s| &mut s.core)
    }

    /// Every scope's core with its slot, the root first.
    pub fn cores(&self) -> impl Iterator<Item = (ScopeId, &CacheCore<V>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, &s.core)))
    }

    /// Every scope's core, mutable.
    pub fn cores_mut(&mut self) -> impl Iterator<Item = (ScopeId, &mut CacheCore<V>)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|s| (i, &mut s.core)))
    }

    /// The blocks scope `id` is guaranteed (the root: none, see the module docs).
    pub fn share(&self, id: ScopeId) -> Option<u64> {
        self.slots.get(id)?.as_ref().map(|s| s.share)
    }

    /// The counters of all scopes added up, removed ones included.
    pub fn stats(&self) -> CacheStats {
        let mut total = self.retired;
        for (_, c) in self.cores() {
            total += c.stats();
        }
        total
    }

    /// A cache of `capacity` blocks whose root scope is `root`, with room for `max_scopes`
    /// more: the simulator builds each scope's core with its policies first, sized for
    /// [`reach`](Self::reach).
    pub fn with_root(capacity: u64, root: CacheCore<V>, max_scopes: usize) -> Self {
        Self::from_root(capacity, CoreConfig::default(), root, max_scopes)
    }

    /// Creates scope `id` guaranteed `share` blocks, served by `core` (empty, of the cache's
    /// capacity, its policies installed).
    pub fn add_scope_with(
        &mut self,
        id: ScopeId,
        share: u64,
        mut core: CacheCore<V>,
    ) -> Result<(), ScopeError> {
        assert!(core.is_empty(), "a new core");
        if id == ROOT_SCOPE || id >= self.slots.len() {
            return Err(ScopeError::NoSlot(id));
        }
        if self.slots[id].is_some() {
            return Err(ScopeError::Taken(id));
        }
        self.check_shares(self.reserved + share)?;
        core.use_figures(self.root().figures().clone());
        core.serve_scope_of(self.capacity);
        if self.root().logs_events() {
            core.log_events(true);
        }
        self.slots[id] = Some(Scope { core, share });
        self.reserved += share;
        self.live += 1;
        self.resize();
        Ok(())
    }

    /// The blocks a scope guaranteed `share` can hold while every other scope holds its
    /// share: the cache less the others' shares (at least 1 block). What its policies are sized
    /// for (`kplug_init`'s capacity): a plugin sized for the whole cache in a scope holding
    /// a part of it keeps proportions (LIRS's resident HIR blocks, S3-FIFO's small queue)
    /// of a cache it does not have.
    pub fn reach(&self, share: u64) -> u64 {
        reach(self.capacity, self.reserved, share)
    }

    /// Sizes every core for its reach (after a share changed).
    fn resize(&mut self) {
        let (capacity, reserved) = (self.capacity, self.reserved);
        for s in self.slots.iter_mut().flatten() {
            s.core.set_capacity(reach(capacity, reserved, s.share));
        }
    }

    /// Creates scope `id` guaranteed `share` blocks, with no block and the built-ins.
    pub fn add_scope(&mut self, id: ScopeId, share: u64) -> Result<(), ScopeError> {
        let core = CacheCore::new(self.capacity, self.config.clone());
        self.add_scope_with(id, share, core)
    }

    /// Changes scope `id`'s share. Blocks are not moved now: a scope under its new share
    /// takes back space as it admits blocks.
    pub fn set_share(&mut self, id: ScopeId, share: u64) -> Result<(), ScopeError> {
        if id == ROOT_SCOPE {
            return Err(ScopeError::NoSlot(id));
        }
        let old = self.share(id).ok_or(ScopeError::Empty(id))?;
        self.check_shares(self.reserved - old + share)?;
        self.slots[id].as_mut().expect("checked").share = share;
        self.reserved = self.reserved - old + share;
        self.resize();
        Ok(())
    }

    fn check_shares(&self, total: u64) -> Result<(), ScopeError> {
        if total > self.capacity {
            return Err(ScopeError::Oversubscribed {
                total,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Removes scope `id`, handing its resident blocks to scope `into` (the root if `into`
    /// does not exist); the plugins serving it are dropped, marked disabled for `reason`.
    /// Returns the blocks handed over.
    pub fn remove_scope(
        &mut self,
        id: ScopeId,
        into: ScopeId,
        reason: &str,
    ) -> Result<usize, ScopeError> {
        if id == ROOT_SCOPE || id >= self.slots.len() {
            return Err(ScopeError::NoSlot(id));
        }
        let mut scope = self.slots[id].take().ok_or(ScopeError::Empty(id))?;
        self.reserved -= scope.share;
        self.live -= 1;
        self.resize();
        self.retired += scope.core.stats();
        let blocks = scope.core.take_resident(reason);
        let n = blocks.len();
        let into = if self.core(into).is_some() {
            into
        } else {
            ROOT_SCOPE
        };
        let heir = self.core_mut(into).expect("exists");
        for (k, v, prefetched) in blocks {
            heir.adopt(k, v, prefetched);
        }
        Ok(n)
    }

    /// The scope holding `key`, if any.
    pub fn holder(&self, key: u64) -> Option<ScopeId> {
        self.cores().find(|(_, c)| c.contains(key)).map(|(i, _)| i)
    }

    /// Whether `key` is resident in any scope.
    pub fn contains(&self, key: u64) -> bool {
        self.cores().any(|(_, c)| c.contains(key))
    }

    /// The slot a request of scope `s` goes to: `s` if it exists, else the root.
    #[inline]
    fn live_slot(&self, s: ScopeId) -> ScopeId {
        if self.slots.get(s).is_some_and(|x| x.is_some()) {
            s
        } else {
            ROOT_SCOPE
        }
    }

    /// Looks `key` up for scope `s`: a hit in `s` or in the scope holding it (counted there);
    /// a miss is counted in `s`.
    pub fn get(&mut self, s: ScopeId, key: u64) -> Option<&V> {
        let s = self.at(s, key);
        self.core_mut(s).expect("live").get(key)
    }

    /// The core a request of scope `s` for `key` is counted in: the holder if another scope
    /// holds it.
    #[inline]
    fn at(&self, s: ScopeId, key: u64) -> ScopeId {
        if self.live == 0 {
            return ROOT_SCOPE;
        }
        let s = self.live_slot(s);
        if self.core(s).expect("live").contains(key) {
            return s;
        }
        self.holder(key).unwrap_or(s)
    }

    /// Simulator driver: a lookup, and on a miss `insert(s, key, make())`. Returns whether it
    /// was a hit (as [`CacheCore::request`]: a hit whose block the eviction policy evicted
    /// while taking it is a hit, counted and answered so, not inserted again).
    pub fn request(&mut self, s: ScopeId, key: u64, make: impl FnOnce() -> V) -> bool {
        if self.live == 0 {
            return self.root_mut().request(key, make);
        }
        let at = self.at(s, key);
        if self.core_mut(at).expect("live").touch(key) {
            return true;
        }
        self.insert(s, key, make());
        false
    }

    /// Inserts a block of scope `s` fetched on demand.
    pub fn insert(&mut self, s: ScopeId, key: u64, value: V) -> Insert {
        self.insert_in(s, key, value, false)
    }

    /// Inserts a block that scope `s`'s `prefetch_plan` handed out.
    pub fn insert_prefetched(&mut self, s: ScopeId, key: u64, value: V) -> Insert {
        self.insert_in(s, key, value, true)
    }

    fn insert_in(&mut self, s: ScopeId, key: u64, value: V, prefetched: bool) -> Insert {
        if self.live == 0 {
            let core = self.root_mut();
            return if prefetched {
                core.insert_prefetched(key, value)
            } else {
                core.insert(key, value)
            };
        }
        let s = self.live_slot(s);
        if let Some(h) = self.holder(key)
            && h != s
        {
            let core = self.core_mut(s).expect("live");
            core.forget_in_flight(key);
            return Insert::AlreadyResident;
        }
        let mut me = self.slots[s].take().expect("live");
        let capacity = self.capacity;
        let my_share = me.share;
        let slots = &mut self.slots;
        let mut room =
            |my_len: usize| -> u64 { make_room(slots, capacity, s, my_len as u64, my_share) };
        let r = me.core.insert_with_room(key, value, prefetched, &mut room);
        self.slots[s] = Some(me);
        r
    }

    /// Forgets the in-flight prefetch of `range` of `file` planned by scope `s`.
    pub fn cancel_prefetch(&mut self, s: ScopeId, file: u32, range: BlockRange) {
        if let Some(c) = self.core_mut(s) {
            c.cancel_prefetch(file, range);
        }
    }

    /// Scope `s`'s prefetch plan (see [`CacheCore::prefetch_plan`]); blocks resident in
    /// other scopes may be in it (their insertion is refused as `AlreadyResident`).
    pub fn prefetch_plan(
        &mut self,
        s: ScopeId,
        file: u32,
        block: u32,
        file_blocks: u64,
        hit: bool,
    ) -> Vec<BlockRange> {
        let s = self.live_slot(s);
        self.core_mut(s)
            .expect("live")
            .prefetch_plan(file, block, file_blocks, hit)
    }

    /// Drops a resident block (invalidation), whichever scope holds it, and any in-flight
    /// prefetch of it.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        let mut out = None;
        for (_, c) in self.cores_mut() {
            if let Some(v) = c.remove(key) {
                out = Some(v);
            }
        }
        out
    }

    /// Drops the blocks of `file` from `from_block` on in every scope; the number dropped.
    pub fn remove_file(&mut self, file: u32, from_block: u32) -> usize {
        self.cores_mut()
            .map(|(_, c)| c.remove_file(file, from_block))
            .sum()
    }

    /// Keep the policies' decisions in every scope (see [`CacheCore::log_events`]).
    pub fn log_events(&mut self, on: bool) {
        // Scopes are created in the root's state: all change together.
        if self.root().logs_events() == on {
            return;
        }
        for (_, c) in self.cores_mut() {
            c.log_events(on);
        }
    }

    /// Hand every scope's kept decisions to `f`, scope by scope.
    pub fn drain_events(&mut self, mut f: impl FnMut(CoreEvent)) {
        for (_, c) in self.cores_mut() {
            c.drain_events(&mut f);
        }
    }

    /// The figures every scope's plugins read (the root's, shared).
    pub fn figures(&self) -> &Arc<kplug_engine::figures::Figures> {
        self.root().figures()
    }
}

/// [`ScopedCache::reach`]: the cache less the other scopes' shares, at least 1 block (none
/// in a cache of none).
fn reach(capacity: u64, reserved: u64, share: u64) -> u64 {
    (capacity - (reserved - share.min(reserved))).clamp(capacity.min(1), capacity)
}

/// Room for one block of scope `s` (taken out of `slots`, holding `my_len` blocks,
/// guaranteed `my_share`): if the cache is full and another scope is further over its share
/// than `s`, that scope sheds one block. Returns `s`'s capacity for this insertion.
fn make_room<V>(
    slots: &mut [Option<Scope<V>>],
    capacity: u64,
    s: ScopeId,
    my_len: u64,
    my_share: u64,
) -> u64 {
    let others = |slots: &[Option<Scope<V>>]| -> u64 {
        slots
            .iter()
            .flatten()
            .map(|x| x.core.len() as u64)
            .sum::<u64>()
    };
    let total = my_len + others(slots);
    if total < capacity {
        return my_len + (capacity - total);
    }
    let excess = |len: u64, share: u64| len as i128 - share as i128;
    let mut giver = (excess(my_len, my_share), s);
    for (i, x) in slots.iter().enumerate() {
        if let Some(x) = x
            && !x.core.is_empty()
        {
            let e = excess(x.core.len() as u64, x.share);
            if e > giver.0 {
                giver = (e, i);
            }
        }
    }
    if giver.1 != s
        && let Some(x) = slots[giver.1].as_mut()
    {
        x.core.shed(1);
        let total = my_len + others(slots);
        if total < capacity {
            return my_len + (capacity - total);
        }
    }
    my_len
}
