//! The block-cache bookkeeping core, shared by the FUSE mount and the trace
//! simulator (libCacheSim / cache_ext style: the host owns the bookkeeping,
//! policies own only their ordering).
//!
//! `CacheCore<V>` owns the block map (key -> value + metadata), the optional
//! per-file index, the set of blocks with a prefetch in flight, the counters,
//! and the three role adapters. It does no I/O and takes `&mut self`: the
//! mount wraps it in a mutex and reads the backend outside the lock; the
//! simulator drives it directly with `V = ()`.
//!
//! Request flow (libCacheSim's driver): `get` (hit -> `eviction.access`) ->
//! on a miss the caller fetches and calls `insert`: admission -> while full:
//! `eviction.victim`, validated resident, evicted -> map insert ->
//! `eviction.insert` (a batched 1.4 plugin: one `kplug_evict_miss(key, need)`
//! before the map insert, after the hits waiting were delivered; the victims
//! it names, on a miss or a hit, are checked resident and evicted at once; a
//! 1.10 plugin by handle that named its next victims ahead: the next named one,
//! if resident and unhit since, is evicted with no call, `miss_ahead`).
//! Invalidation (`remove`, `remove_file`) calls
//! `eviction.remove`. `prefetch_plan` asks the prefetch role, validates,
//! clamps the total to `prefetch_budget` blocks, drops blocks resident or in
//! flight (and the demand block) and marks the rest in flight; their data
//! comes back through `insert_prefetched`, which refuses blocks no longer in
//! flight (invalidated meanwhile), so a late read never resurrects stale data.
//!
//! Faults: a hook error comes back from an adapter as `(slot, fault)`. The
//! core marks that plugin failed in its shared status, drops it, gives each
//! role it served to the configured built-in (eviction seeded with the
//! resident blocks by replaying `insert` in last-access order) and finishes
//! the operation with the built-in, so a fault never surfaces to the request.
//! Hot swap (`set_*`, `install_plugin`) uses the same seeding; the replaced
//! plugin is marked disabled and dropped. A plugin can be made ready outside the
//! embedder's lock ([`Prepared`], `cache/install.rs`) and installed in a moment.
//!
//! Cost: a hit is one map lookup plus the policy's hook (the native LRU, like a
//! plugin by handle, finds its node through the handle kept in the entry); with the
//! native LRU a request costs tens of ns. The per-file index adds a set insert/remove per
//! insertion/eviction and can be turned off where nothing is invalidated by
//! file (then `remove_file` scans the map).

use std::sync::Arc;

use serde::Serialize;

use crate::builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch};
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::{EvictionRole, not_resident};
use crate::roles::prefetch::PrefetchRole;
use crate::roles::{PluginSlots, SlotFault};
pub use changes::Mark;
use governor::Governor;
pub use governor::{CandidateInfo, PreparedGovernor, SpareRequests, Spares};
pub use install::{Prepared, Retired};
use kplug_abi::{BlockRange, Role, block_key, key_block, key_file};
use kplug_engine::Plugin;
use kplug_engine::StatusHandle;
use kplug_engine::figures::{Figures, Windows};
use kplug_engine::hash::{BlockMap, BlockSet, FastMap, keep_sparse_set};

mod changes;
mod governor;
mod handles;
mod install;
mod scoped;
mod table;

use table::BlockTable;

/// Configuration of a [`CacheCore`].
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Most blocks one `prefetch_plan` may request (default 64): bounds the
    /// I/O a prefetch policy can trigger per access.
    pub prefetch_budget: u64,
    /// Keep a per-file index so `remove_file` is O(blocks of that file)
    /// (default true; the simulator may turn it off for speed).
    pub index_files: bool,
    /// Initial eviction policy, and the fallback when a plugin faults.
    pub eviction: BuiltinEviction,
    /// Initial admission policy, and the fallback.
    pub admission: BuiltinAdmission,
    /// Initial prefetch policy, and the fallback.
    pub prefetch: BuiltinPrefetch,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            prefetch_budget: 64,
            index_files: true,
            eviction: BuiltinEviction::default(),
            admission: BuiltinAdmission::default(),
            prefetch: BuiltinPrefetch::default(),
        }
    }
}

/// Counters of a [`CacheCore`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// `get`/`request` found the block.
    pub hits: u64,
    /// `get`/`request` did not.
    pub misses: u64,
    /// Blocks inserted (demand and prefetch).
    pub insertions: u64,
    /// Blocks evicted to make room.
    pub evictions: u64,
    /// Inserts refused by the admission policy.
    pub admission_refusals: u64,
    /// Blocks dropped by `remove`/`remove_file`.
    pub invalidations: u64,
    /// Blocks handed out by `prefetch_plan`.
    pub prefetch_planned: u64,
    /// Prefetched blocks inserted.
    pub prefetch_inserted: u64,
    /// Prefetched blocks hit before leaving the cache.
    pub prefetch_used: u64,
    /// Prefetched blocks that left the cache unused.
    pub prefetch_wasted: u64,
    /// Plugin faults handled.
    pub faults: u64,
    /// Times a governor switched the policy serving a role.
    pub policy_switches: u64,
}

impl std::ops::AddAssign<&CacheStats> for CacheStats {
    fn add_assign(&mut self, o: &CacheStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.insertions += o.insertions;
        self.evictions += o.evictions;
        self.admission_refusals += o.admission_refusals;
        self.invalidations += o.invalidations;
        self.prefetch_planned += o.prefetch_planned;
        self.prefetch_inserted += o.prefetch_inserted;
        self.prefetch_used += o.prefetch_used;
        self.prefetch_wasted += o.prefetch_wasted;
        self.faults += o.faults;
        self.policy_switches += o.policy_switches;
    }
}

impl CacheStats {
    /// misses / (hits + misses); 0 when there was no request.
    pub fn miss_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.misses as f64 / total as f64
        }
    }
}

/// What `insert` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// The block is now resident.
    Inserted,
    /// Not admitted (admission policy refused, or capacity 0).
    Refused,
    /// The key was already resident; the value was dropped.
    AlreadyResident,
    /// `insert_prefetched` of a block not in flight (invalidated meanwhile).
    Stale,
}

/// Which policy serves a role.
#[derive(Clone, Debug)]
pub struct ActivePolicy {
    /// Built-in name (`lru`, `admit-all`, `readahead`, `none`) or plugin name.
    pub name: String,
    /// The plugin's status, when a plugin serves the role.
    pub plugin: Option<StatusHandle>,
}

struct Entry<V> {
    value: V,
    last_access: u64,
    prefetched: bool,
    /// The handle the eviction policy gave the block (a plugin on ABI 1.8 or the native
    /// built-in; 0 for other plugins), if `generation` is the serving policy's
    /// (`cache/handles.rs`).
    handle: u32,
    generation: u16,
}

/// The block cache's bookkeeping and policy driver. See the module docs.
pub struct CacheCore<V> {
    capacity: u64,
    config: CoreConfig,
    map: BlockTable<Entry<V>>,
    files: Option<FastMap<u32, BlockSet<u32>>>,
    in_flight: BlockSet<u64>,
    seq: u64,
    stats: CacheStats,
    plugins: PluginSlots,
    eviction: EvictionRole,
    admission: AdmissionRole,
    prefetch: PrefetchRole,
    scratch: Vec<BlockRange>,
    native_repairs: u32,
    figures: Arc<Figures>,
    windows: Windows,
    governor: Option<Box<Governor>>,
    /// Keys this core evicted since the governor last looked (shadow caches only).
    evicted_log: Option<Vec<u64>>,
    /// Scratch for the victims a batched (ABI 1.4) eviction plugin returns.
    victims: Vec<u64>,
    /// The policies' decisions not yet taken by the embedder (`None`: not kept).
    events: Option<Vec<CoreEvent>>,
    /// The capacity of the [`ScopedCache`](crate::ScopedCache) this core serves a scope of,
    /// if it does: its own capacity is then what its policies are sized for, which changes
    /// with the shares, and a plugin sized for anything up to the whole cache is accepted.
    scoped_in: Option<u64>,
    /// Where what is taken out of service goes while [`CacheCore::deferring_drops`] runs
    /// (`None`: dropped at once).
    retired: Option<Retired>,
    /// The keys that came and left since a snapshot a swap will install from.
    changes: changes::Changes,
    /// The serving eviction policy's handles of entries older than its install.
    handles: handles::Handles,
    /// `seq` when the eviction plugin last answered a miss that made room: the blocks it
    /// named ahead then (ABI 1.10) are taken only if not accessed since.
    ahead_stamp: u64,
}

/// The resident keys of a [`CacheCore`] with their last access, unsorted
/// ([`CacheCore::resident_snapshot`], [`CacheCore::snapshot_for_install`]).
#[derive(Debug)]
pub struct ResidentSnapshot {
    /// (last access, key) of each resident block.
    entries: Vec<(u64, u64)>,
    /// Where the core's log of changes stood (a snapshot for an install).
    mark: Option<Mark>,
}

impl ResidentSnapshot {
    /// The keys, least recently used first, as [`CacheCore::resident_keys`] gives them.
    pub fn keys(self) -> Vec<u64> {
        lru_order(self.entries)
    }

    /// An empty snapshot with room for `n` blocks whose memory is already written, to be
    /// filled under a lock by [`CacheCore::snapshot_for_install_into`]: the copy then writes
    /// into pages the kernel has mapped (at a million resident blocks, 16 MiB mapped
    /// afresh under the lock doubled the copy's 6-7 ms).
    pub fn with_room(n: usize) -> Self {
        let mut entries = Vec::with_capacity(n);
        entries.resize(n, (0, 0));
        entries.clear();
        ResidentSnapshot {
            entries,
            mark: None,
        }
    }

    /// How many blocks it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where the core's log of changes stood when this snapshot was taken, if it was taken
    /// for an install ([`CacheCore::snapshot_for_install`]).
    pub fn mark(&self) -> Option<Mark> {
        self.mark
    }
}

/// The keys of `entries` ((last access, key)), least recently used first.
fn lru_order(mut entries: Vec<(u64, u64)>) -> Vec<u64> {
    // A radix sort on the stamp (a few passes over the entries: 4-5x a comparison sort at a
    // million blocks), then the blocks of one stamp (a prefetch's) by key, as sorting the
    // pairs would.
    let oldest = entries.iter().map(|&(stamp, _)| stamp).min().unwrap_or(0);
    radsort::sort_by_key(&mut entries, |&(stamp, _)| stamp - oldest);
    for same in entries.chunk_by_mut(|a, b| a.0 == b.0) {
        if same.len() > 1 {
            same.sort_unstable();
        }
    }
    entries.into_iter().map(|(_, k)| k).collect()
}

/// Most decisions [`CacheCore`] keeps for its embedder between two
/// [`CacheCore::drain_events`]; more are not kept (an embedder drains after each call).
pub const MAX_CORE_EVENTS: usize = 4096;

/// A decision of the core's policies, kept for an embedder that asked
/// ([`CacheCore::log_events`]): what the mount's probes see as policy events (ABI 1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreEvent {
    /// A fetched block admitted by the admission policy (`prefetched`: a prefetch read it).
    Admitted {
        /// The block.
        key: u64,
        /// Whether a prefetch brought it.
        prefetched: bool,
    },
    /// A fetched block the admission policy refused.
    Refused {
        /// The block.
        key: u64,
        /// Whether a prefetch brought it.
        prefetched: bool,
    },
    /// A block evicted to make room (`wasted`: a prefetch brought it and it was never read).
    Evicted {
        /// The block.
        key: u64,
        /// Prefetched and never read.
        wasted: bool,
    },
    /// The first read of a block a prefetch brought in.
    PrefetchUsed {
        /// The block.
        key: u64,
    },
}

impl<V> std::fmt::Debug for CacheCore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCore")
            .field("capacity", &self.capacity)
            .field("resident", &self.map.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<V> CacheCore<V> {
    /// An empty cache of `capacity` blocks with the configured built-ins.
    pub fn new(capacity: u64, config: CoreConfig) -> Self {
        CacheCore {
            capacity,
            map: BlockTable::default(),
            files: config.index_files.then(FastMap::default),
            in_flight: BlockSet::default(),
            seq: 0,
            stats: CacheStats::default(),
            plugins: PluginSlots::default(),
            eviction: EvictionRole::Native(config.eviction.build(), config.eviction.name()),
            admission: AdmissionRole::Native(config.admission.build(), config.admission.name()),
            prefetch: PrefetchRole::Native(config.prefetch.build(), config.prefetch.name()),
            config,
            scratch: Vec::new(),
            native_repairs: 0,
            figures: Arc::default(),
            windows: Windows::default(),
            governor: None,
            evicted_log: None,
            victims: Vec::new(),
            events: None,
            scoped_in: None,
            retired: None,
            changes: Default::default(),
            handles: Default::default(),
            ahead_stamp: 0,
        }
    }

    /// Whether a plugin instantiated for `capacity` blocks fits this core: its capacity
    /// (sized for the scope, see `scoped_in`, anything up to the whole cache).
    pub(crate) fn fits(&self, capacity: u64) -> bool {
        match self.scoped_in {
            Some(whole) => (1..=whole.max(1)).contains(&capacity),
            None => capacity == self.capacity,
        }
    }

    /// Keep the policies' decisions ([`CoreEvent`]) for [`drain_events`](Self::drain_events)
    /// (`false`: stop, and forget those kept). Off by default: the simulator never pays.
    pub fn log_events(&mut self, on: bool) {
        match (on, &self.events) {
            (true, None) => self.events = Some(Vec::new()),
            (false, Some(_)) => self.events = None,
            _ => {}
        }
    }

    /// Whether decisions are kept ([`log_events`](Self::log_events)).
    pub fn logs_events(&self) -> bool {
        self.events.is_some()
    }

    /// Hand the decisions kept since the last call to `f`, oldest first.
    pub fn drain_events(&mut self, mut f: impl FnMut(CoreEvent)) {
        if let Some(log) = &mut self.events {
            log.drain(..).for_each(&mut f);
        }
    }

    #[inline]
    fn note(&mut self, e: CoreEvent) {
        if let Some(log) = &mut self.events
            && log.len() < MAX_CORE_EVENTS
        {
            log.push(e);
        }
    }

    /// The live figures plugins read through the introspection imports (ABI 1.1); the
    /// mount feeds the backend latency, the simulator sets a logical clock.
    pub fn figures(&self) -> &Arc<Figures> {
        &self.figures
    }

    /// Capacity in blocks.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Resident blocks.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no block is resident.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` is resident (no counters, no policy call).
    pub fn contains(&self, key: u64) -> bool {
        self.map.contains_key(key)
    }

    /// The value of a resident block, without counting or telling the policy.
    pub fn peek(&self, key: u64) -> Option<&V> {
        self.map.get(key).map(|e| &e.value)
    }

    /// Counters so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Resident keys, least recently used (by this core's clock) first.
    pub fn resident_keys(&self) -> Vec<u64> {
        self.resident_snapshot().keys()
    }

    /// The resident keys with their last access, copied in one pass and not yet sorted: for a
    /// caller holding a lock around the core, which sorts them ([`ResidentSnapshot::keys`])
    /// once it is released (at a million resident blocks the sort is most of the 47 ms
    /// [`resident_keys`](Self::resident_keys) takes).
    pub fn resident_snapshot(&self) -> ResidentSnapshot {
        ResidentSnapshot {
            entries: self.resident_entries().collect(),
            mark: None,
        }
    }

    /// (last access, key) of every resident block, in the map's order.
    fn resident_entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(k, e)| (e.last_access, k))
    }

    /// [`resident_snapshot`](Self::resident_snapshot) for a plugin to be prepared from
    /// ([`Prepared::from_snapshot`]) and installed later: the core logs the blocks that come
    /// and go from now on, so that the install tells the plugin those without walking the
    /// resident set (`cache/changes.rs`; a snapshot never installed stops the log once it
    /// holds twice the resident count).
    pub fn snapshot_for_install(&mut self) -> ResidentSnapshot {
        self.snapshot_for_install_into(ResidentSnapshot::with_room(0))
    }

    /// [`snapshot_for_install`](Self::snapshot_for_install) into `room`
    /// ([`ResidentSnapshot::with_room`], made before taking the lock around the core).
    pub fn snapshot_for_install_into(&mut self, room: ResidentSnapshot) -> ResidentSnapshot {
        let mut entries = room.entries;
        entries.clear();
        entries.extend(self.resident_entries());
        ResidentSnapshot {
            entries,
            mark: Some(self.changes.watch(self.change_limit() as usize)),
        }
    }

    /// Whether the core logs the blocks that come and go: a snapshot for an install is
    /// outstanding ([`snapshot_for_install`](Self::snapshot_for_install)), and its log has
    /// not reached its bound (for tests and diagnostics).
    pub fn logs_changes(&self) -> bool {
        self.changes.logging()
    }

    /// Records in the log of changes (if a snapshot waits) that `key` came or left.
    #[inline]
    fn log_change(&mut self, key: u64) {
        self.changes.note(key, self.change_limit());
    }

    /// The most keys the log of changes holds: twice the resident count (reading more costs
    /// more than the walk it replaces).
    fn change_limit(&self) -> u64 {
        2 * self.map.len() as u64 + 16
    }

    /// Which policy serves `role` now.
    pub fn policy(&self, role: Role) -> ActivePolicy {
        if role == Role::Eviction
            && let Some(p) = self.followed_policy()
        {
            return p;
        }
        let slot = match (role, &self.eviction, &self.admission, &self.prefetch) {
            (Role::Eviction, EvictionRole::Native(_, n), _, _)
            | (Role::Admission, _, AdmissionRole::Native(_, n), _)
            | (Role::Prefetch, _, _, PrefetchRole::Native(_, n)) => {
                return ActivePolicy {
                    name: n.to_string(),
                    plugin: None,
                };
            }
            (Role::Eviction, EvictionRole::Plugin(s), _, _)
            | (Role::Admission, _, AdmissionRole::Plugin(s), _)
            | (Role::Prefetch, _, _, PrefetchRole::Plugin(s)) => *s,
        };
        let p = self.plugins.peek(slot);
        ActivePolicy {
            name: p.name().to_string(),
            plugin: Some(p.status()),
        }
    }

    /// Looks a block up: a hit counts, tells the eviction policy and returns
    /// the value; a miss counts and returns `None`.
    pub fn get(&mut self, key: u64) -> Option<&V> {
        if self.touch(key) {
            self.map.get(key).map(|e| &e.value)
        } else {
            None
        }
    }

    /// Asks the CPU to bring the map's slot for `key` into its caches, for a driver that knows
    /// which blocks it will request next (the simulator, a few requests ahead): at a large
    /// cache nearly every miss finds its slot outside the caches, and a slot read ahead
    /// overlaps with the requests before it. Tell each coming request once, in order: an
    /// eviction plugin that asked for them (ABI 1.12, `kplug_evict_lookahead`) is told the
    /// newest with its next miss, to read its own entries ahead. Changes nothing else; costs
    /// a hash and an address (and, to such a plugin, keeping the key).
    #[inline]
    pub fn prefetch_hint(&mut self, key: u64) {
        self.map.prefetch(key);
        if let EvictionRole::Plugin(slot) = self.eviction {
            self.plugins.get(slot).tell_coming(key);
        }
    }

    /// [`prefetch_hint`](Self::prefetch_hint) without telling the eviction plugin: the
    /// map's slot only, for a driver that found [`wants_coming`](Self::wants_coming) false
    /// (the plugin's slot looked up for nothing was about 25 instructions a request).
    #[inline]
    pub fn prefetch_slot(&self, key: u64) {
        self.map.prefetch(key);
    }

    /// Whether the serving eviction plugin asked for the coming requests (ABI 1.12,
    /// `kplug_evict_lookahead`): while it did not, [`prefetch_slot`](Self::prefetch_slot)
    /// does all that [`prefetch_hint`](Self::prefetch_hint) does. The keys are advice: a
    /// driver that asks once in a while (the simulator, once a chunk of the trace) and
    /// misses a few after a change of policy changes no decision's validity.
    pub fn wants_coming(&self) -> bool {
        matches!(self.eviction, EvictionRole::Plugin(slot) if self.plugins.peek(slot).wants_coming())
    }

    /// Simulator driver: `get`, and on a miss `insert(key, make())`.
    /// Returns whether it was a hit.
    pub fn request(&mut self, key: u64, make: impl FnOnce() -> V) -> bool {
        if self.touch(key) {
            return true;
        }
        self.insert(key, make());
        false
    }

    /// Looks `key` up and counts it: a hit tells the eviction policy (which may evict the
    /// block while taking it: still a hit); a miss counts. Whether it was a hit.
    #[inline]
    pub(crate) fn touch(&mut self, key: u64) -> bool {
        let Some(e) = self.map.get_mut(key) else {
            self.stats.misses += 1;
            self.figures.note_request(&mut self.windows, key, false);
            if self.governor.is_some() {
                self.observe_for_governor(key, false);
            }
            return false;
        };
        self.figures.note_request(&mut self.windows, key, true);
        self.seq += 1;
        e.last_access = self.seq;
        let handle = self.handles.refresh(key, e);
        if e.prefetched {
            e.prefetched = false;
            self.stats.prefetch_used += 1;
            self.note(CoreEvent::PrefetchUsed { key });
        }
        self.stats.hits += 1;
        let resident = self.map.len() as u64;
        // Only a call into the plugin can name victims: a hit that only joined the queue
        // looks no further (the plugin's slot once a hit, not twice).
        match self
            .eviction
            .access(&mut self.plugins, key, handle, resident)
        {
            Ok(true) => self.evict_returned(),
            Ok(false) => {}
            Err(f) => self.on_fault(f),
        }
        if self.governor.is_some() {
            self.observe_for_governor(key, true);
        }
        true
    }

    /// Inserts a block fetched on demand (after a miss).
    pub fn insert(&mut self, key: u64, value: V) -> Insert {
        self.insert_from(key, value, false, None)
    }

    /// Inserts a block read by a prefetch that `prefetch_plan` handed out.
    /// Returns [`Insert::Stale`] if the block is no longer in flight (it was
    /// invalidated, or the read was cancelled).
    pub fn insert_prefetched(&mut self, key: u64, value: V) -> Insert {
        self.insert_from(key, value, true, None)
    }

    /// Forgets that a planned prefetch of `range` of `file` is in flight
    /// (its read failed or was dropped).
    pub fn cancel_prefetch(&mut self, file: u32, range: BlockRange) {
        for b in range.start..range.start.saturating_add(range.len).min(1 << 32) {
            self.in_flight.remove(&block_key(file, b as u32));
        }
    }

    /// `insert` (`prefetched` false) or `insert_prefetched`, with the room decided by `room`:
    /// for a scope of a [`ScopedCache`](crate::ScopedCache), called once the block is
    /// admitted, with the resident count, it makes room in the other scopes if it must and
    /// returns this core's capacity for this insertion (its count: it evicts one of its own;
    /// 0 with nothing resident: the block is refused).
    fn insert_from(
        &mut self,
        key: u64,
        value: V,
        prefetched: bool,
        room: Option<&mut dyn FnMut(usize) -> u64>,
    ) -> Insert {
        // Nothing in flight (the simulator without a prefetch policy): no probe.
        let was_in_flight = !self.in_flight.is_empty() && self.in_flight.remove(&key);
        if !was_in_flight && prefetched {
            return Insert::Stale;
        }
        if self.map.contains_key(key) {
            return Insert::AlreadyResident;
        }
        if self.capacity == 0 {
            return Insert::Refused;
        }
        let resident = self.map.len() as u64;
        let (file, block) = (key_file(key) as u64, key_block(key) as u64);
        let admitted = loop {
            match self
                .admission
                .admit(&mut self.plugins, key, file, block, resident)
            {
                Ok(a) => break a,
                Err(f) => self.on_fault(f),
            }
        };
        if !admitted {
            self.stats.admission_refusals += 1;
            self.note(CoreEvent::Refused { key, prefetched });
            return Insert::Refused;
        }
        let saved = self.capacity;
        if let Some(room) = room {
            self.capacity = room(self.map.len());
            if self.capacity == 0 {
                self.capacity = saved;
                self.stats.admission_refusals += 1;
                self.note(CoreEvent::Refused { key, prefetched });
                return Insert::Refused;
            }
        }
        self.note(CoreEvent::Admitted { key, prefetched });
        if prefetched && self.governor.is_some() {
            self.prefetch_for_governor(key);
        }
        let evicting = self.map.len() as u64 >= self.capacity;
        // A batched (1.4) plugin learns the missed key with the room to make, in one call,
        // and tracks the key from then on; the loop below then has nothing left to do (or,
        // after a fault, leaves it to the built-in).
        let tracked = self.evict_for_miss(key);
        while self.map.len() as u64 >= self.capacity {
            let victim = self.next_victim();
            self.evict(victim);
        }
        self.figures.note_insert(&mut self.windows, evicting);
        self.put(key, value, prefetched, tracked.unwrap_or(0));
        self.stats.insertions += 1;
        if prefetched {
            self.stats.prefetch_inserted += 1;
        }
        if tracked.is_none() {
            self.tell_inserted(key);
        }
        if self.governor.is_some() {
            self.inserted_for_governor(key);
        }
        self.capacity = saved;
        Insert::Inserted
    }

    /// Tells the eviction policy that resident `key` came, and keeps the handle a 1.8 plugin
    /// gives it.
    fn tell_inserted(&mut self, key: u64) {
        let resident = self.map.len() as u64;
        match self.eviction.insert(&mut self.plugins, key, resident) {
            Ok(handle) => {
                if let Some(h) = handle
                    && let Some(e) = self.map.get_mut(key)
                {
                    self.handles.set(e, h);
                }
                self.evict_returned()
            }
            Err(f) => self.on_fault(f),
        }
    }

    /// The handle the eviction plugin gave resident `key` (0 if none, or not resident).
    pub(in crate::cache) fn handle_of(&self, key: u64) -> u32 {
        self.map.get(key).map_or(0, |e| self.handles.of(key, e))
    }

    /// Makes `key` resident, the most recently used, in the map and the file index.
    fn put(&mut self, key: u64, value: V, prefetched: bool, handle: u32) {
        self.seq += 1;
        self.log_change(key);
        self.map.insert(
            key,
            Entry {
                value,
                last_access: self.seq,
                prefetched,
                handle,
                generation: self.handles.generation(),
            },
        );
        if let Some(files) = &mut self.files {
            let blocks = files.entry(key_file(key)).or_default();
            keep_sparse_set(blocks, 1);
            blocks.insert(key_block(key));
        }
    }

    fn next_victim(&mut self) -> u64 {
        if self.governor.is_some()
            && let Some(k) = self.vote_victim()
        {
            // The built-in tracking the resident set forgets it as it would its own victim.
            let resident = self.map.len() as u64;
            let handle = self.handle_of(k);
            match self.eviction.remove(&mut self.plugins, k, handle, resident) {
                Ok(()) => self.evict_returned(),
                Err(f) => self.on_fault(f),
            }
            return k;
        }
        loop {
            let resident = self.map.len() as u64;
            let map = &self.map;
            match self
                .eviction
                .victim(&mut self.plugins, resident, |k| map.contains_key(k))
            {
                Ok(Some(k)) => {
                    self.native_repairs = 0;
                    return k;
                }
                Ok(None) => {
                    // A built-in out of sync with the map is a host bug; rebuild
                    // it from the map once, and refuse to loop forever.
                    self.native_repairs += 1;
                    assert!(
                        self.native_repairs < 2,
                        "built-in eviction policy has no valid victim among {resident} resident blocks"
                    );
                    tracing::error!(
                        "built-in eviction policy out of sync with the cache; rebuilding it"
                    );
                    self.serve_builtin(self.config.eviction);
                }
                Err(f) => self.on_fault(f),
            }
        }
    }

    /// For a batched (ABI 1.4 or 1.8) eviction plugin: the miss of `key` with the room its
    /// insertion needs, and its victims evicted. Returns `Some(handle)` (0 but for 1.8) if the
    /// plugin now tracks `key` (`None` for any other policy, or after a fault).
    fn evict_for_miss(&mut self, key: u64) -> Option<u32> {
        let capacity = self.capacity;
        self.batched_miss(key, |resident| {
            Some((resident + 1).saturating_sub(capacity))
        })
    }

    /// The miss of `key` to a batched eviction plugin, the hits waiting delivered first (1.4:
    /// in their own call, their victims evicted before `need` is asked; 1.8: with the miss,
    /// their victims counting towards `need`) and every victim evicted; `need` is asked with
    /// the blocks resident then (`None`: no call). Returns `Some(handle)` (0 but for 1.8) if
    /// the plugin was asked and still serves (`None` for any other policy, or after a fault).
    pub(super) fn batched_miss(
        &mut self,
        key: u64,
        need_for: impl Fn(u64) -> Option<u64>,
    ) -> Option<u32> {
        let EvictionRole::Plugin(slot) = self.eviction else {
            return None;
        };
        let plugin = self.plugins.peek(slot);
        if !plugin.evicts_batched() {
            return None;
        }
        // The hits waiting go first (1.4): what they evict is room the miss need not make.
        if !plugin.evicts_by_handle() && !self.deliver_hits(slot) {
            return None;
        }
        let mut resident = self.map.len() as u64;
        let mut need = need_for(resident)?;
        if need == 1 {
            if let Some(handle) = self.miss_ahead(slot, key) {
                return Some(handle);
            }
            if !matches!(self.eviction, EvictionRole::Plugin(s) if s == slot) {
                return None;
            }
            // Hits delivered on the way may have evicted blocks: room the miss need not make.
            if self.map.len() as u64 != resident {
                resident = self.map.len() as u64;
                need = need_for(resident)?;
            }
        }
        match self
            .plugins
            .get(slot)
            .evict_miss(key, need.min(u32::MAX as u64) as u32, resident)
        {
            Ok(handle) => {
                // Blocks it named ahead are good while none has a hit after this.
                self.ahead_stamp = self.seq;
                self.evict_returned();
                let serving = matches!(self.eviction, EvictionRole::Plugin(s) if s == slot);
                if serving {
                    // The entries of its likely next victims (1.11) are read meanwhile.
                    for &k in self.plugins.peek(slot).hints() {
                        self.map.prefetch(k);
                    }
                }
                serving.then_some(handle.unwrap_or(0))
            }
            Err(fault) => {
                self.on_fault(SlotFault { slot, fault });
                None
            }
        }
    }

    /// Delivers the hits waiting for the batched eviction plugin in `slot` and evicts the
    /// victims it names; whether it still serves eviction (false after a fault, the built-in
    /// then serves).
    fn deliver_hits(&mut self, slot: usize) -> bool {
        let resident = self.map.len() as u64;
        match self.plugins.get(slot).flush_hits(resident) {
            Ok(()) => self.evict_returned(),
            Err(fault) => self.on_fault(SlotFault { slot, fault }),
        }
        matches!(self.eviction, EvictionRole::Plugin(s) if s == slot)
    }

    /// The miss of `key`, needing one block of room, taken without a call when the plugin in
    /// `slot` named its next victim ahead (ABI 1.10): that block is evicted if it is resident
    /// and had no hit since the answer that named it (its last access is not after
    /// `ahead_stamp`), and `key` takes its handle. `None` (nothing done) otherwise: the
    /// caller calls the plugin, which names afresh.
    ///
    /// If the hits waiting leave no room for the miss, a named block that passes is taken
    /// after they are delivered (a flush keeps what was named; the plugin may fault, and no
    /// longer serves), unless their delivery evicted blocks: the caller then asks the room
    /// again (a call with the hits would have counted them towards it).
    #[inline]
    fn miss_ahead(&mut self, slot: usize, key: u64) -> Option<u32> {
        let plugin = self.plugins.peek(slot);
        let victim = plugin.next_ahead()?;
        if !plugin.ahead_room() {
            // Checked first: a block that fails leaves the hits to ride with the call.
            let fresh = |e: &Entry<V>| e.last_access <= self.ahead_stamp;
            let resident = self.map.len();
            if !self.map.get(victim).is_some_and(fresh)
                || !self.deliver_hits(slot)
                || self.map.len() != resident
            {
                return None;
            }
        }
        // One lookup to check the block and evict it.
        let at = self.map.find(victim)?;
        let e = self.map.at(at);
        if e.last_access > self.ahead_stamp {
            return None;
        }
        let handle = self.handles.of(victim, e);
        if !self.plugins.get(slot).take_ahead(key, handle) {
            return None;
        }
        let prefetched = self.map.remove_at(at).prefetched;
        self.evicted(victim, prefetched);
        // The next miss most likely takes the next block named: its slot is read meanwhile.
        if let Some(next) = self.plugins.peek(slot).next_ahead() {
            self.map.prefetch(next);
        }
        Some(handle)
    }

    /// Evicts the victims the batched (ABI 1.4) eviction plugin returned from its last
    /// calls, each checked resident (which also refuses one named twice); one that is not
    /// is an `InvalidAnswer` fault, and the built-in takes over from the blocks left.
    /// The check runs after every hit and miss, so it is kept inline and the eviction out of
    /// line: a plugin's victims come back only on a miss or a full batch of hits.
    #[inline]
    fn evict_returned(&mut self) {
        let EvictionRole::Plugin(slot) = self.eviction else {
            return;
        };
        if self.plugins.peek(slot).has_victims() {
            self.evict_plugin_victims(slot);
        }
    }

    #[inline(never)]
    fn evict_plugin_victims(&mut self, slot: usize) {
        let mut victims = std::mem::take(&mut self.victims);
        let hook = self.plugins.get(slot).take_victims(&mut victims);
        let mut bad = None;
        if victims.len() > 1 {
            // Their slots are read together rather than one after another.
            for &k in &victims {
                self.map.prefetch(k);
            }
        }
        for &k in &victims {
            if !self.evict_if_resident(k) {
                bad = Some(k);
                break;
            }
        }
        victims.clear();
        self.victims = victims;
        if let Some(k) = bad {
            self.on_fault(SlotFault {
                slot,
                fault: not_resident(hook, k),
            });
        }
    }

    fn evict(&mut self, key: u64) {
        if !self.evict_if_resident(key) {
            if let Some(log) = &mut self.evicted_log {
                log.push(key);
            }
            if self.governor.is_some() {
                self.dropped_for_governor(key);
            }
        }
    }

    /// Evicts `key` if it is resident, with one lookup of the map (a plugin's victims are
    /// checked and evicted at once); false, and nothing done, if it is not.
    fn evict_if_resident(&mut self, key: u64) -> bool {
        let Some(e) = self.map.remove(key) else {
            return false;
        };
        self.evicted(key, e.prefetched);
        true
    }

    /// The bookkeeping of resident `key`'s eviction, its entry already out of the map.
    fn evicted(&mut self, key: u64, prefetched: bool) {
        self.log_change(key);
        if let Some(log) = &mut self.evicted_log {
            log.push(key);
        }
        if self.governor.is_some() {
            self.dropped_for_governor(key);
        }
        self.unindex(key);
        self.stats.evictions += 1;
        if prefetched {
            self.stats.prefetch_wasted += 1;
        }
        self.note(CoreEvent::Evicted {
            key,
            wasted: prefetched,
        });
    }

    fn unindex(&mut self, key: u64) {
        if let Some(files) = &mut self.files
            && let Some(set) = files.get_mut(&key_file(key))
        {
            set.remove(&key_block(key));
            if set.is_empty() {
                files.remove(&key_file(key));
            }
        }
    }

    /// Drops a resident block (invalidation) and tells the eviction policy.
    /// Also forgets an in-flight prefetch of it. `None` if it was not resident, or if a
    /// batched eviction plugin evicted it while taking the hits that waited (its value is
    /// gone either way).
    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.in_flight.remove(&key);
        if self.governor.is_some() {
            // The shadows drop it too, whether the cache holds it or not.
            self.invalidate_in_shadows(|s| {
                s.remove(key);
            });
        }
        // The plugin may evict it while taking the hits waiting (then it is not told this).
        if self.hits_waiting() && self.map.contains_key(key) {
            self.deliver_waiting_hits();
        }
        let e = self.map.remove(key)?;
        self.log_change(key);
        self.unindex(key);
        self.after_remove(key, e.prefetched, self.handles.of(key, &e));
        Some(e.value)
    }

    /// Delivers the hits waiting for a batched eviction plugin before the host drops blocks
    /// itself (an invalidation). The plugin takes them as having come before the drop, and
    /// a victim it names meanwhile may be any block it was told of, the ones about to be
    /// dropped included: checked while they are still resident, such a victim is evicted,
    /// where checked after the drop it was an honest plugin's `InvalidAnswer` fault.
    fn deliver_waiting_hits(&mut self) {
        if let EvictionRole::Plugin(slot) = self.eviction {
            self.deliver_hits(slot);
        }
    }

    /// Whether hits wait for a batched eviction plugin (an invalidation with none waiting
    /// looks its block up once).
    fn hits_waiting(&self) -> bool {
        matches!(self.eviction, EvictionRole::Plugin(slot) if self.plugins.peek(slot).hits_waiting())
    }

    fn after_remove(&mut self, key: u64, prefetched: bool, handle: u32) {
        if self.governor.is_some() {
            self.dropped_for_governor(key);
        }
        self.stats.invalidations += 1;
        if prefetched {
            self.stats.prefetch_wasted += 1;
        }
        let resident = self.map.len() as u64;
        match self
            .eviction
            .remove(&mut self.plugins, key, handle, resident)
        {
            Ok(()) => self.evict_returned(),
            Err(f) => self.on_fault(f),
        }
    }

    /// Drops every resident block of `file` with index >= `from_block`
    /// (truncate: `from_block` = new length in blocks; unlink: 0), and
    /// forgets their in-flight prefetches. O(blocks of the file) with the
    /// file index, O(cache size) without. Returns the number dropped.
    pub fn remove_file(&mut self, file: u32, from_block: u32) -> usize {
        self.in_flight
            .retain(|k| !(key_file(*k) == file && key_block(*k) >= from_block));
        if self.governor.is_some() {
            // Shadows keep no file index: a scan of each (truncate and unlink only).
            self.invalidate_in_shadows(|s| {
                s.remove_file(file, from_block);
            });
        }
        self.deliver_waiting_hits();
        let doomed: Vec<u32> = match &mut self.files {
            Some(files) => {
                let Some(set) = files.get_mut(&file) else {
                    return 0;
                };
                let doomed: Vec<u32> = set.iter().copied().filter(|b| *b >= from_block).collect();
                for b in &doomed {
                    set.remove(b);
                }
                if set.is_empty() {
                    files.remove(&file);
                }
                doomed
            }
            None => self
                .map
                .keys()
                .filter(|&k| key_file(k) == file && key_block(k) >= from_block)
                .map(key_block)
                .collect(),
        };
        for b in &doomed {
            let key = block_key(file, *b);
            if let Some(e) = self.map.remove(key) {
                self.log_change(key);
                self.after_remove(key, e.prefetched, self.handles.of(key, &e));
            }
        }
        doomed.len()
    }

    /// Ranges of `file` to read ahead after an access to `block` (the file
    /// is `file_blocks` long): the policy's validated ranges, clamped to the
    /// prefetch budget, with resident and in-flight blocks and `block` itself
    /// removed; the returned blocks are now in flight (see
    /// [`insert_prefetched`](Self::insert_prefetched),
    /// [`cancel_prefetch`](Self::cancel_prefetch)).
    pub fn prefetch_plan(
        &mut self,
        file: u32,
        block: u32,
        file_blocks: u64,
        hit: bool,
    ) -> Vec<BlockRange> {
        let mut raw = std::mem::take(&mut self.scratch);
        loop {
            raw.clear();
            let resident = self.map.len() as u64;
            match self.prefetch.plan(
                &mut self.plugins,
                file as u64,
                block as u64,
                file_blocks,
                hit,
                resident,
                &mut raw,
            ) {
                Ok(()) => break,
                Err(f) => self.on_fault(f),
            }
        }
        let mut out = Vec::new();
        let mut budget = self.config.prefetch_budget;
        for r in &raw {
            if budget == 0 {
                break;
            }
            let end = r.start.saturating_add(r.len.min(budget)).min(1 << 32);
            budget -= r.len.min(budget);
            let mut run: Option<BlockRange> = None;
            keep_sparse_set(&mut self.in_flight, end.saturating_sub(r.start) as usize);
            for b in r.start..end {
                let key = block_key(file, b as u32);
                let wanted =
                    b != block as u64 && !self.map.contains_key(key) && self.in_flight.insert(key);
                match (&mut run, wanted) {
                    (Some(run), true) => run.len += 1,
                    (None, true) => run = Some(BlockRange { start: b, len: 1 }),
                    (Some(_), false) => out.extend(run.take()),
                    (None, false) => {}
                }
            }
            out.extend(run);
        }
        self.stats.prefetch_planned += out.iter().map(|r| r.len).sum::<u64>();
        self.scratch = raw;
        out
    }

    /// Serves eviction with built-in `b`, seeded with the resident blocks (least recently
    /// used first). The handles it gives them are written into their entries at once, under
    /// a new generation (`cache/handles.rs`): the seeding visits every block anyway, and no
    /// table of them outlives it.
    fn serve_builtin(&mut self, b: BuiltinEviction) {
        let mut p = b.build();
        let keys = self.resident_keys();
        if let Some(old) = self.handles.install(BlockMap::default(), &mut self.map) {
            self.bury(old);
        }
        for k in keys {
            let h = p.insert(k);
            if let Some(e) = self.map.get_mut(k) {
                self.handles.set(e, h);
            }
        }
        self.eviction = EvictionRole::Native(p, b.name());
    }

    fn on_fault(&mut self, f: SlotFault) {
        self.stats.faults += 1;
        let Some(plugin) = self.plugins.take(f.slot) else {
            return;
        };
        tracing::warn!(plugin = plugin.name(), "plugin disabled: {}", f.fault);
        plugin.mark_failed(&f.fault);
        let served = self.slots().map(|s| s == Some(f.slot));
        self.candidate_faulted(served, &f.fault);
        if matches!(self.eviction, EvictionRole::Plugin(s) if s == f.slot) {
            self.serve_builtin(self.config.eviction);
            if let Some(g) = self.governor.as_mut() {
                g.eviction_lost();
            }
        }
        if matches!(self.admission, AdmissionRole::Plugin(s) if s == f.slot) {
            self.admission =
                AdmissionRole::Native(self.config.admission.build(), self.config.admission.name());
        }
        if matches!(self.prefetch, PrefetchRole::Plugin(s) if s == f.slot) {
            self.prefetch =
                PrefetchRole::Native(self.config.prefetch.build(), self.config.prefetch.name());
        }
    }

    /// Drops plugins no role points at any more, marking them disabled for `reason`.
    fn release_unused(&mut self, old: &[Option<usize>], reason: &str) {
        for slot in old.iter().flatten() {
            let used = matches!(self.eviction, EvictionRole::Plugin(s) if s == *slot)
                || matches!(self.admission, AdmissionRole::Plugin(s) if s == *slot)
                || matches!(self.prefetch, PrefetchRole::Plugin(s) if s == *slot);
            if !used && let Some(p) = self.plugins.take(*slot) {
                p.mark_disabled(reason);
                self.bury(p);
            }
        }
    }

    fn slots(&self) -> [Option<usize>; 3] {
        [
            match self.eviction {
                EvictionRole::Plugin(s) => Some(s),
                _ => None,
            },
            match self.admission {
                AdmissionRole::Plugin(s) => Some(s),
                _ => None,
            },
            match self.prefetch {
                PrefetchRole::Plugin(s) => Some(s),
                _ => None,
            },
        ]
    }

    /// Takes the eviction plugin out of a cache whose plugin is to serve another (a
    /// governor's shadow): the plugin, once it has taken the hits waiting (so that what it
    /// holds is this cache's resident set), and the resident blocks, least recently used
    /// first, each with the handle the plugin gave it (ABI 1.8; unused for a plugin not by
    /// handle). `None` if a built-in serves eviction, the plugin also serves prefetch, or it
    /// faulted taking the hits. Nothing is seeded in the plugin's place (its role points at
    /// an empty slot: any later request panics): the cache is only to be dropped, by a
    /// caller that defers it past the lock, as it holds a table of the resident blocks.
    pub(crate) fn take_eviction_plugin(&mut self) -> Option<(Plugin, Vec<(u64, u32)>)> {
        let EvictionRole::Plugin(slot) = self.eviction else {
            return None;
        };
        if matches!(self.prefetch, PrefetchRole::Plugin(s) if s == slot) {
            return None;
        }
        if !self.deliver_hits(slot) {
            return None;
        }
        let blocks = (self.resident_keys().into_iter())
            .map(|k| (k, self.handle_of(k)))
            .collect();
        self.plugins.take(slot).map(|p| (p, blocks))
    }

    /// Switches eviction to a built-in, seeded with the resident blocks.
    pub fn set_eviction(&mut self, policy: BuiltinEviction) {
        self.governor_loses(Role::Eviction.into());
        let old = self.slots();
        self.serve_builtin(policy);
        self.release_unused(&old, "replaced");
    }

    /// Switches admission to a built-in.
    pub fn set_admission(&mut self, policy: BuiltinAdmission) {
        self.governor_loses(Role::Admission.into());
        let old = self.slots();
        self.admission = AdmissionRole::Native(policy.build(), policy.name());
        self.release_unused(&old, "replaced");
    }

    /// Switches prefetch to a built-in.
    pub fn set_prefetch(&mut self, policy: BuiltinPrefetch) {
        self.governor_loses(Role::Prefetch.into());
        let old = self.slots();
        self.prefetch = PrefetchRole::Native(policy.build(), policy.name());
        self.release_unused(&old, "replaced");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The radix sort with its ties put right is the sort of the pairs, whatever the
        /// stamps' range (a cache up for long has large ones) and however many share one.
        #[test]
        fn lru_order_is_the_order_of_the_pairs(
            base in prop_oneof![Just(0u64), Just(u64::MAX / 2), any::<u64>().prop_map(|b| b >> 8)],
            raw in prop::collection::vec((0u64..300, any::<u64>()), 0..600),
        ) {
            let entries: Vec<(u64, u64)> = raw.iter().map(|&(s, k)| (base + s, k)).collect();
            let mut pairs = entries.clone();
            pairs.sort_unstable();
            let want: Vec<u64> = pairs.into_iter().map(|(_, k)| k).collect();
            prop_assert_eq!(super::lru_order(entries), want);
        }
    }
}
