//! Installing a plugin without holding up the cache, and taking out of service what a
//! plugin put there.
//!
//! A new eviction policy must be told every resident block before it can name a victim: a
//! replay of `kplug_evict_insert`, one hook call per block, or up to 128 blocks a call to a
//! plugin exporting `kplug_evict_seed` (ABI 1.9: under half the replay's time).
//! [`Prepared::new`] runs that replay from a snapshot of the resident keys, with no lock held
//! around the core (the mount's cache mutex), so no reader waits for thousands of hook calls;
//! [`CacheCore::install_prepared`] then tells the plugin about the few blocks that came or
//! went since the snapshot and switches the roles. A snapshot taken for that
//! ([`CacheCore::snapshot_for_install`], sorted by [`Prepared::from_snapshot`] once the lock
//! is released) makes the core log what comes and goes (`cache/changes.rs`), so the install
//! reads what changed instead of walking the resident set; without it (or once the log was
//! dropped) the install walks it. A plugin by handle's handles reach the blocks' entries when
//! next needed (`cache/handles.rs`). What is still proportional to the resident set under
//! the lock is the snapshot's copy (docs/plugin-abi.md §6 has the figures).
//! [`CacheCore::install_plugin`] does both at once, for the simulator and the tests, where
//! nobody waits.
//!
//! What a swap takes out of service is dropped after the lock is released when the caller
//! asks ([`CacheCore::deferring_drops`]): dropping an instance unmaps its linear memory
//! (17 us for the SDK LRU on its own: `cargo bench -p kplug-cache --bench hook_call --
//! instance/`, more while other threads of the process run), time the readers waiting on the
//! lock need not spend.
//!
//! [`CacheCore::retire`] is the inverse for an operator's removal: the plugin, a governor of
//! that status with its shadows, and every candidate instance the governor put in service go,
//! and each role they served returns to the configured built-in. Nothing a removed plugin
//! chose keeps serving.

use std::any::Any;
use std::sync::Arc;

use kplug_abi::{Role, RoleSet};
use kplug_engine::hash::{BlockMap, BlockSet};
use kplug_engine::{Plugin, StatusHandle};

use crate::cache::{CacheCore, Mark, ResidentSnapshot, lru_order};
use crate::error::InstallError;
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::{EvictionRole, not_resident};
use crate::roles::prefetch::PrefetchRole;

/// A plugin made ready to serve its roles, outside the cache's lock: for eviction, already
/// told the resident blocks of a snapshot. Install it with [`CacheCore::install_prepared`].
pub struct Prepared {
    plugin: Plugin,
    roles: RoleSet,
    /// The keys the replay told the plugin (eviction only), with the handle each got (ABI 1.8;
    /// 0 for other plugins).
    seeded: BlockMap<u64, u32>,
    /// Keys of the snapshot the plugin named as victims while it was told them: resident
    /// still, to be told again at the install.
    retold: Vec<u64>,
    /// Where the core's log of changes stood at the snapshot (`None`: the install walks the
    /// resident set).
    mark: Option<Mark>,
}

/// Plugin instances (and a governor with its shadows) taken out of service by calls made
/// under [`CacheCore::deferring_drops`]: dropping this drops them, wherever the caller
/// chooses (after releasing the cache's lock).
#[derive(Default)]
pub struct Retired(Vec<Box<dyn Any + Send>>);

impl Retired {
    /// Nothing was taken out of service.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many things were taken out of service (plugin instances, a governor, tables).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Retired({} taken out of service)", self.0.len())
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("plugin", &self.plugin)
            .field("roles", &self.roles)
            .field("seeded", &self.seeded.len())
            .finish()
    }
}

impl Prepared {
    /// Check that `plugin` implements `roles` and, for eviction, tell it `resident` (the
    /// cache's resident keys, least recently used first). A fault marks the plugin failed.
    pub fn new(plugin: Plugin, roles: RoleSet, resident: &[u64]) -> Result<Self, InstallError> {
        Self::seed(plugin, roles, resident, &mut |_, _| {})
    }

    /// [`Prepared::new`], calling `progress` with the blocks told so far and their total
    /// after every [`PROGRESS_EVERY`](Self::PROGRESS_EVERY) of them.
    fn seed(
        mut plugin: Plugin,
        roles: RoleSet,
        resident: &[u64],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, InstallError> {
        if roles.is_empty() {
            return Err(InstallError::NoRoles);
        }
        if let Some(role) = roles.iter().find(|r| !plugin.roles().contains(*r)) {
            return Err(InstallError::MissingRole {
                plugin: plugin.name().to_string(),
                role,
            });
        }
        let mut seeded = BlockMap::default();
        let mut retold = Vec::new();
        if roles.contains(Role::Eviction) {
            // A batched (1.4) plugin may name victims while it is told the blocks: it has
            // forgotten them, so they are not seeded (the install tells them again, and
            // evicts what it names then).
            let mut victims = Vec::new();
            let mut handles = Vec::new();
            let batches = plugin.seeds_in_batches();
            if batches {
                // Sized once: 10-20 % of a batched replay's time at 262,144 blocks and more.
                // Not for one call a block, where the map growing as it fills measured faster
                // (135 against 170-210 ns a block at 262,144).
                seeded.reserve(resident.len());
            }
            let mut n = 0;
            while n < resident.len() {
                // 1.9: up to `EVICT_SEED_KEYS` blocks a call; else one call each.
                let told = if batches {
                    plugin.evict_seed(&resident[n..], n as u64, &mut handles)
                } else {
                    let k = resident[n];
                    let h = plugin.evict_insert(k, n as u64 + 1);
                    h.map(|h| handles.push(h.unwrap_or(0))).map(|()| 1)
                };
                let told = told.and_then(|taken| {
                    let keys = &resident[n..n + taken];
                    seeded.extend(keys.iter().copied().zip(handles.drain(..)));
                    let hook = plugin.take_victims(&mut victims);
                    for v in victims.drain(..) {
                        if seeded.remove(&v).is_none() {
                            return Err(not_resident(hook, v));
                        }
                        retold.push(v);
                    }
                    Ok(taken)
                });
                match told {
                    Ok(taken) => {
                        let before = n;
                        n += taken;
                        if n / Self::PROGRESS_EVERY > before / Self::PROGRESS_EVERY
                            && n < resident.len()
                        {
                            progress(n, resident.len());
                        }
                    }
                    Err(fault) => {
                        plugin.mark_failed(&fault);
                        return Err(InstallError::Fault(fault));
                    }
                }
            }
        }
        Ok(Prepared {
            plugin,
            roles,
            seeded,
            retold,
            mark: None,
        })
    }

    /// [`Prepared::new`] from a snapshot of the cache it will be installed in: from one taken
    /// with [`CacheCore::snapshot_for_install`], the install costs what changed since, not
    /// what is resident.
    pub fn from_snapshot(
        plugin: Plugin,
        roles: RoleSet,
        snapshot: ResidentSnapshot,
    ) -> Result<Self, InstallError> {
        Self::from_snapshot_with(plugin, roles, snapshot, &mut |_, _| {})
    }

    /// How many blocks the replay tells between two calls of its `progress`.
    pub const PROGRESS_EVERY: usize = 1024;

    /// [`Prepared::from_snapshot`], calling `progress(told, total)` before the snapshot is
    /// sorted (`told` 0) and after every [`PROGRESS_EVERY`](Self::PROGRESS_EVERY) blocks told:
    /// the sort and the replay grow with the cache (the mount gives a swap's raised priority
    /// back when they run long).
    pub fn from_snapshot_with(
        plugin: Plugin,
        roles: RoleSet,
        snapshot: ResidentSnapshot,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, InstallError> {
        let mark = snapshot.mark();
        if roles.contains(Role::Eviction) {
            progress(0, snapshot.len());
        }
        let mut prepared = Self::seed(plugin, roles, &snapshot.keys(), progress)?;
        prepared.mark = mark;
        Ok(prepared)
    }

    /// The status of the plugin.
    pub fn status(&self) -> StatusHandle {
        self.plugin.status()
    }

    /// The roles it will serve.
    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// Serve only those of its roles that are in `roles` (a tier-up takes only what the
    /// baseline instance still serves); whether any is left.
    pub fn keep_roles(&mut self, roles: RoleSet) -> bool {
        self.roles = self
            .roles
            .iter()
            .filter(|r| roles.contains(*r))
            .fold(RoleSet::EMPTY, RoleSet::with);
        !self.roles.is_empty()
    }
}

impl<V> CacheCore<V> {
    /// Makes `plugin` serve `roles` (one instance shared by them). For eviction the plugin is
    /// first told every resident block (`insert` in last-access order) so it can evict blocks
    /// inserted before it. Plugins no longer serving any role are dropped and marked
    /// disabled. On a fault during the replay the previous policies keep serving and the
    /// fault is returned.
    pub fn install_plugin(&mut self, plugin: Plugin, roles: RoleSet) -> Result<(), InstallError> {
        let snapshot = self.snapshot_for_install();
        let mark = snapshot.mark();
        let prepared = Prepared::from_snapshot(plugin, roles, snapshot).inspect_err(|e| {
            mark.inspect(|&m| self.changes.done(m));
            if matches!(e, InstallError::Fault(_)) {
                self.stats.faults += 1;
            }
        })?;
        self.install_prepared(prepared)
    }

    /// Installs a [`Prepared`] plugin: for eviction, it is told the blocks that left the
    /// cache since its snapshot (`remove`) and those that came (`insert`, least recently used
    /// first), then it serves its roles. On a fault the previous policies keep serving.
    pub fn install_prepared(&mut self, prepared: Prepared) -> Result<(), InstallError> {
        let Prepared {
            mut plugin,
            roles,
            seeded,
            retold,
            mark,
        } = prepared;
        // What came or left since the snapshot, if the core logged it (then the log has one
        // reader fewer, whatever happens below).
        let changed: Option<Vec<u64>> = mark.and_then(|m| {
            let keys = self
                .changes
                .since(m)
                .map(|k| k.iter().chain(&retold).copied().collect());
            self.changes.done(m);
            keys
        });
        if !self.fits(plugin.capacity()) {
            return Err(InstallError::CapacityMismatch {
                plugin: plugin.capacity(),
                cache: self.capacity,
            });
        }
        let mut victims = Vec::new();
        if roles.contains(Role::Eviction) {
            let resident = self.map.len() as u64;
            let (gone, came) = match changed {
                Some(keys) => self.changes_since(&seeded, &keys),
                None => self.changes_by_walk(&seeded),
            };
            let mut handles = seeded;
            let told = gone
                .iter()
                .try_for_each(|&(k, h)| plugin.evict_remove(k, h, resident))
                .and_then(|()| {
                    came.iter().try_for_each(|&k| {
                        let h = plugin.evict_insert(k, resident)?;
                        handles.insert(k, h.unwrap_or(0));
                        Ok(())
                    })
                })
                .and_then(|()| {
                    // What a batched plugin named meanwhile leaves the cache.
                    let hook = plugin.take_victims(&mut victims);
                    match victims.iter().find(|v| !self.map.contains_key(**v)) {
                        Some(&v) => Err(not_resident(hook, v)),
                        None => Ok(()),
                    }
                });
            if let Err(fault) = told {
                self.stats.faults += 1;
                plugin.mark_failed(&fault);
                // The previous eviction policy keeps serving, untouched.
                return Err(InstallError::Fault(fault));
            }
            // The blocks' entries take their new handles when next needed (`cache/handles.rs`);
            // freeing a table of every resident block is for after the lock.
            let old = if plugin.evicts_by_handle() {
                self.handles.install(handles, &mut self.map)
            } else {
                Some(handles)
            };
            if let Some(old) = old {
                self.bury(old);
            }
        }
        plugin.attach_figures(self.figures.clone());
        for &v in &victims {
            self.evict(v);
        }
        self.governor_loses(roles);
        let old = self.slots();
        plugin.mark_installed();
        let slot = self.plugins.add(plugin);
        if roles.contains(Role::Eviction) {
            // A built-in's tables (a list of every resident block) go after the lock too.
            if let EvictionRole::Native(native, _) =
                std::mem::replace(&mut self.eviction, EvictionRole::Plugin(slot))
            {
                self.bury(native);
            }
        }
        if roles.contains(Role::Admission) {
            self.admission = AdmissionRole::Plugin(slot);
        }
        if roles.contains(Role::Prefetch) {
            self.prefetch = PrefetchRole::Plugin(slot);
        }
        self.release_unused(&old, "replaced");
        Ok(())
    }

    /// Drops `prepared` without installing it (a tier-up that came after its plugin left):
    /// the log of changes no longer waits for it, and its instance goes with what
    /// [`deferring_drops`](Self::deferring_drops) hands back.
    pub fn discard_prepared(&mut self, prepared: Prepared) {
        if let Some(m) = prepared.mark {
            self.changes.done(m);
        }
        self.bury(prepared);
    }

    /// The blocks `seeded` (what a plugin was told) has and the cache no longer holds (with
    /// their handles), and those the cache holds that it has not (least recently used first),
    /// among `keys` (the log of changes since the snapshot, and the keys told again).
    fn changes_since(
        &self,
        seeded: &BlockMap<u64, u32>,
        keys: &[u64],
    ) -> (Vec<(u64, u32)>, Vec<u64>) {
        let mut seen = BlockSet::default();
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        for &k in keys {
            if !seen.insert(k) {
                continue;
            }
            match (seeded.get(&k), self.map.get(k)) {
                (Some(&h), None) => gone.push((k, h)),
                (None, Some(e)) => came.push((e.last_access, k)),
                _ => {}
            }
        }
        (gone, lru_order(came))
    }

    /// [`changes_since`](Self::changes_since) by walking `seeded` and the resident set.
    fn changes_by_walk(&self, seeded: &BlockMap<u64, u32>) -> (Vec<(u64, u32)>, Vec<u64>) {
        let gone = seeded
            .iter()
            .filter(|(k, _)| !self.map.contains_key(**k))
            .map(|(&k, &h)| (k, h))
            .collect();
        // The newcomers, least recently used first: sorting only them, not every resident
        // key, while the readers wait.
        let came = self
            .resident_entries()
            .filter(|(_, k)| !seeded.contains_key(k))
            .collect();
        (gone, lru_order(came))
    }

    /// Runs `f`, keeping every plugin instance and governor it takes out of service (a swap's
    /// previous instance, a retired governor) instead of dropping them: the caller drops the
    /// returned [`Retired`] after releasing whatever lock it holds around the core.
    pub fn deferring_drops<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> (R, Retired) {
        let outer = self.retired.replace(Retired::default());
        let r = f(self);
        let mut dead = std::mem::replace(&mut self.retired, outer).unwrap_or_default();
        if let Some(outer) = self.retired.as_mut() {
            // Nested: the outermost caller drops them all.
            outer.0.append(&mut dead.0);
        }
        (r, dead)
    }

    /// Sets `what` (a plugin instance, a governor) aside for [`CacheCore::deferring_drops`]'s
    /// caller, or drops it now.
    pub(in crate::cache) fn bury(&mut self, what: impl Any + Send) {
        if let Some(r) = self.retired.as_mut() {
            r.0.push(Box::new(what));
        }
    }

    /// The roles the plugin instance whose status is `h` serves itself (not as a governor's
    /// candidate).
    pub fn roles_served_by(&self, h: &StatusHandle) -> RoleSet {
        let serves = |slot: Option<usize>| {
            slot.is_some_and(|s| Arc::ptr_eq(&self.plugins.peek(s).status(), h))
        };
        let [e, a, p] = self.slots().map(serves);
        [
            (e, Role::Eviction),
            (a, Role::Admission),
            (p, Role::Prefetch),
        ]
        .into_iter()
        .filter_map(|(served, role)| served.then_some(role))
        .fold(RoleSet::EMPTY, RoleSet::with)
    }

    /// Takes out of service everything the plugin whose status is `h` put there, for
    /// `reason` (`removed`, say): a governor of that status is dropped with its shadows and
    /// spares (the candidate it followed does *not* take over, unlike a governor that
    /// faults), and every role served by that plugin or by a candidate instance of it goes
    /// back to the configured built-in. The instance is marked disabled unless it failed.
    /// Returns whether a policy serving the cache changed.
    pub fn retire(&mut self, h: &StatusHandle, reason: &str) -> bool {
        let mut changed = false;
        if self.governor_status().is_some_and(|g| Arc::ptr_eq(&g, h)) {
            // While it voted, the built-in tracking the resident set was evicting: it stays.
            self.drop_governor(reason);
            changed = true;
        }
        let old = self.slots();
        let owned = |slot: Option<usize>| {
            slot.is_some_and(|s| self.plugins.peek(s).status().is_or_owned_by(h))
        };
        let [e, a, p] = old.map(owned);
        if e {
            self.serve_builtin(self.config.eviction);
        }
        if a {
            self.admission =
                AdmissionRole::Native(self.config.admission.build(), self.config.admission.name());
        }
        if p {
            self.prefetch =
                PrefetchRole::Native(self.config.prefetch.build(), self.config.prefetch.name());
        }
        self.release_unused(&old, reason);
        h.set_disabled(reason);
        changed || e || a || p
    }
}
