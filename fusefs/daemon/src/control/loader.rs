//! Loading a plugin into the live cache, and taking it out again, in two steps so that no
//! reader waits on plugin code it does not need.
//!
//! [`Loader::prepare`] compiles and validates a module, instantiates it for the cache's
//! capacity with its parameters (`kplug_init`, up to the init deadline), and makes it ready to
//! serve: an eviction plugin is told the resident blocks of a snapshot, a governor's
//! candidates are resolved (among the plugin files in service and the policies the binary
//! carries), instantiated and their shadow caches seeded. None of that holds the cache's
//! lock: reads go on. [`Loader::install`] then switches the roles under the lock, in a moment
//! (the few blocks that came or went since the snapshot, and the switch itself), retiring what
//! the same file had put in service before: the roles the new instance does not take go back
//! to the built-ins, a governor it replaces goes with everything it chose. [`Loader::retire`]
//! is the operator's `rm`. Any failure leaves the policies that were serving in place.
//!
//! A loader serves one scope of the cache (`.kplug/scopes/NAME/plugins/`, see `scopes.rs`);
//! the mount's own `plugins/` is the root scope's, the only one that takes governors,
//! probes and transforms. [`Loader::install_inherited`] gives a scope its own instance of a
//! plugin an enclosing scope serves a role with.
//!
//! A transform (ABI 1.6) serves no cache role: its instance becomes the view
//! `.kplug/views/NAME/` (`views.rs`), installed and removed the same way, without the cache's
//! lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use kplug_abi::{Role, RoleSet};
use kplug_cache::{Prepared, PreparedGovernor, ROOT_SCOPE, ResidentSnapshot, ScopeId};
use kplug_engine::{CodeTier, CompiledPlugin, PluginEngine, StatusHandle};
use parking_lot::Mutex;

use super::priority::replay_pacer;
use super::views::{View, Views};
use crate::data::blockcache::BlockCache;
use crate::monitor::probes::ProbeBus;

/// Why a scope's `plugins/` refuses a module.
const SCOPE_ROLES: &str = "a scope's plugins/ takes eviction, admission and prefetch plugins; \
     load governors, probes and transforms in .kplug/plugins/";

/// Loads plugins into one scope of a mount's cache.
pub struct Loader {
    cache: Arc<BlockCache>,
    engine: PluginEngine,
    /// The views the transforms serve.
    views: Arc<Views>,
    /// The mount's probes: where a probe plugin (ABI 1.5) is put in service.
    probes: Arc<ProbeBus>,
    /// The module of each plugin file whose last load succeeded, by plugin name: what a
    /// governor's candidate of that name resolves to.
    modules: Mutex<BTreeMap<String, CompiledPlugin>>,
    /// The scope whose core this loader serves.
    scope: ScopeId,
}

/// A plugin made ready to serve by [`Loader::prepare`]; nothing of it serves yet.
pub struct Ready {
    name: String,
    compiled: CompiledPlugin,
    kind: ReadyKind,
}

enum ReadyKind {
    Plugin(Prepared),
    Governor(PreparedGovernor),
    Transform(kplug_engine::Transformer),
    /// A probe: it serves no role of the cache, only watches (`monitor/probes.rs`).
    Probe(kplug_engine::Plugin),
}

impl Ready {
    /// Which compiler made the instance's code.
    pub fn tier(&self) -> CodeTier {
        self.compiled.tier()
    }

    /// The instance's status.
    pub fn status(&self) -> StatusHandle {
        match &self.kind {
            ReadyKind::Plugin(p) => p.status(),
            ReadyKind::Governor(g) => g.status(),
            ReadyKind::Transform(t) => t.status(),
            ReadyKind::Probe(p) => p.status(),
        }
    }

    /// Whether baseline code of it is worth replacing by its optimized code later. Not for a
    /// probe: what it has counted lives in its instance, which a tier-up would start over
    /// (its events come in batches off the readers' path, where baseline code costs little).
    pub fn tiers_up(&self) -> bool {
        self.tier() == CodeTier::Baseline && !matches!(self.kind, ReadyKind::Probe(_))
    }
}

impl Loader {
    /// A loader over `cache` and the mount's `probes`, compiling with `engine`, serving
    /// transforms as `views`.
    pub fn new(
        cache: Arc<BlockCache>,
        probes: Arc<ProbeBus>,
        engine: PluginEngine,
        views: Arc<Views>,
    ) -> Self {
        Self {
            cache,
            engine,
            probes,
            views,
            modules: Mutex::new(BTreeMap::new()),
            scope: ROOT_SCOPE,
        }
    }

    /// A loader like this one for scope `scope` of the same cache.
    pub fn for_scope(&self, scope: ScopeId) -> Self {
        Self {
            cache: self.cache.clone(),
            engine: self.engine.clone(),
            probes: self.probes.clone(),
            views: self.views.clone(),
            modules: Mutex::new(BTreeMap::new()),
            scope,
        }
    }

    /// The scope it serves.
    pub fn scope(&self) -> ScopeId {
        self.scope
    }

    /// Run `f` on this loader's scope's core; an error if the scope was removed.
    fn with_core<R>(
        &self,
        f: impl FnOnce(&mut kplug_cache::CacheCore<crate::data::blockcache::Block>) -> R,
    ) -> Result<R, String> {
        let (r, retired) = self
            .cache
            .with_scope(self.scope, |core| core.deferring_drops(f))
            .ok_or_else(|| "its scope was removed".to_string())?;
        // Unmapped with the cache's lock released: readers do not wait for it.
        drop(retired);
        Ok(r)
    }

    /// `bytes` compiled as plugin `name` (optimized code with `optimized`, else the first
    /// code ready), with `params` as the engine takes them.
    #[allow(clippy::type_complexity)]
    fn compile<'p>(
        &self,
        name: &str,
        bytes: &[u8],
        params: &'p [(String, String)],
        optimized: bool,
    ) -> Result<(CompiledPlugin, Vec<(&'p str, &'p str)>), String> {
        // Someone waits on a first load: a module never compiled may come as baseline code,
        // which the plugins directory swaps for optimized code when it is ready. A tier-up
        // waits for nobody, and must not install baseline code again (the optimized module
        // may have left the compiled-module cache meanwhile: compiled once more, then).
        let compiled = match optimized {
            true => self.engine.compile(name, bytes),
            false => self.engine.compile_first(name, bytes),
        }
        .map_err(|e| e.to_string())?;
        let params = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok((compiled, params))
    }

    /// Give this loader's scope its own instance of `name` (`bytes`, `params`) for `role`
    /// only: what a scope inherits from the scope enclosing it. Returns the instance's status.
    pub fn install_inherited(
        &self,
        name: &str,
        bytes: &[u8],
        params: &[(String, String)],
        role: Role,
    ) -> Result<StatusHandle, String> {
        let (compiled, params) = self.compile(name, bytes, params, false)?;
        let (capacity, resident) = self.with_core(|c| (c.capacity(), c.len()))?;
        let plugin = compiled
            .instantiate(&params, capacity)
            .map_err(|e| e.to_string())?;
        let prepared = self.prepare_in_core(plugin, RoleSet::of(&[role]), resident)?;
        let status = prepared.status();
        self.with_core(|core| core.install_prepared(prepared).map_err(|e| e.to_string()))??;
        Ok(status)
    }

    /// `plugin` made ready to serve `roles` in this loader's cache of about `resident`
    /// blocks: told a snapshot taken for the install (into room made before the lock), the
    /// replay paced ([`replay_pacer`]).
    fn prepare_in_core(
        &self,
        plugin: kplug_engine::Plugin,
        roles: RoleSet,
        resident: usize,
    ) -> Result<Prepared, String> {
        let room = snapshot_room(resident);
        let snapshot = self.with_core(|c| c.snapshot_for_install_into(room))?;
        Prepared::from_snapshot_with(plugin, roles, snapshot, &mut replay_pacer(true))
            .map_err(|e| e.to_string())
    }

    /// Drop `ready` unused, for `reason` (a newer copy of its file was written meanwhile): a
    /// plugin prepared from a snapshot is discarded in the cache, whose log of changes then
    /// no longer waits for it.
    pub fn discard(&self, ready: Ready, reason: &str) {
        ready.status().set_disabled(reason);
        if let ReadyKind::Plugin(p) = ready.kind {
            // Its scope may be gone: then so is the log.
            let _ = self.with_core(|core| core.discard_prepared(p));
        }
    }

    /// The engine plugins are compiled by.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The cache plugins are loaded into.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Compile `bytes` as plugin `name` (to optimized code only with `optimized`: a
    /// tier-up), instantiate it with `params` and make it ready to serve, without holding
    /// the cache's lock but for two short copies (the capacity, the resident keys).
    pub fn prepare(
        &self,
        name: &str,
        bytes: &[u8],
        params: &[(String, String)],
        optimized: bool,
    ) -> Result<Ready, String> {
        let (compiled, params) = self.compile(name, bytes, params, optimized)?;
        if compiled.is_transform() && self.scope != ROOT_SCOPE {
            return Err(SCOPE_ROLES.into());
        }
        if compiled.is_transform() {
            let t = compiled
                .instantiate_transform(&params)
                .map_err(|e| e.to_string())?;
            return Ok(Ready {
                name: name.to_string(),
                compiled,
                kind: ReadyKind::Transform(t),
            });
        }
        let (capacity, resident) = self.with_core(|c| (c.capacity(), c.len()))?;
        let plugin = compiled
            .instantiate(&params, capacity)
            .map_err(|e| e.to_string())?;
        if self.scope != ROOT_SCOPE && (plugin.is_probe() || plugin.is_governor()) {
            plugin.status().set_disabled(SCOPE_ROLES);
            return Err(SCOPE_ROLES.into());
        }
        let kind = if plugin.is_probe() {
            // Its published figures go where the cache's plugins read them.
            let mut plugin = plugin;
            plugin.attach_figures(self.cache.with_core(|c| c.figures().clone()));
            ReadyKind::Probe(plugin)
        } else if plugin.is_governor() {
            let resident = self.cache.with_core(|c| c.resident_snapshot()).keys();
            // Candidates are other plugin files in service, or policies of the binary.
            let modules = self.modules.lock().clone();
            let resolve = |n: &str| -> Result<CompiledPlugin, String> {
                if let Some(c) = modules.get(n) {
                    return Ok(c.clone());
                }
                let e = kplug_catalog::find(n)
                    .ok_or_else(|| format!("no policy named {n} in this binary or in plugins/"))?;
                self.engine.compile(n, e.wasm).map_err(|e| e.to_string())
            };
            ReadyKind::Governor(
                PreparedGovernor::new_with(
                    plugin,
                    &resolve,
                    capacity,
                    &resident,
                    &mut replay_pacer(false),
                )
                .map_err(|e| e.to_string())?,
            )
        } else {
            let roles = plugin.roles();
            ReadyKind::Plugin(self.prepare_in_core(plugin, roles, resident)?)
        };
        Ok(Ready {
            name: name.to_string(),
            compiled,
            kind,
        })
    }

    /// Put `ready` in service, in place of `previous` (the instance its file loaded before,
    /// if any), under the cache's lock. Returns the new instance's status.
    pub fn install(
        &self,
        ready: Ready,
        previous: Option<&StatusHandle>,
    ) -> Result<StatusHandle, String> {
        let status = ready.status();
        let Ready {
            name,
            compiled,
            kind,
        } = ready;
        let governor = matches!(kind, ReadyKind::Governor(_));
        let transform = matches!(kind, ReadyKind::Transform(_));
        let replaced = format!("replaced by a new copy of {name}");
        if let Some(prev) = previous
            && self.probes.remove(prev)
        {
            prev.set_disabled(&replaced);
        }
        let kind = match kind {
            ReadyKind::Transform(t) => {
                self.views.insert(View::new(&name, t));
                None
            }
            other => {
                // The file's view (if it was a transform) goes with its previous instance.
                self.views.remove(&name, None);
                Some(other)
            }
        };
        self.with_core(|core| {
            match kind {
                // A governor replaces the one installed (if any) with all it chose.
                Some(ReadyKind::Governor(g)) => core
                    .install_prepared_governor(g, 0)
                    .map_err(|e| e.to_string())?,
                Some(ReadyKind::Plugin(p)) => {
                    core.install_prepared(p).map_err(|e| e.to_string())?
                }
                Some(ReadyKind::Probe(p)) => self.probes.add(&name, p),
                Some(ReadyKind::Transform(_)) | None => {}
            };
            // What the file's previous instance still serves (the roles the new one did
            // not take, a governor's choices) goes back to the built-ins.
            if let Some(prev) = previous {
                core.retire(prev, &replaced);
            }
            Ok::<_, String>(())
        })??;
        if governor {
            self.cache.start_governor_ticker();
        }
        if !transform {
            self.modules.lock().insert(name, compiled);
        }
        Ok(status)
    }

    /// [`Loader::install`] of the same module's optimized code in place of its baseline
    /// instance `previous`, only if `previous` still serves at the moment of the swap, checked
    /// under the lock its faults are raised under (the cache's for cache roles, the view's
    /// own for a transform, which keeps its outputs and counters): a fault is never undone by
    /// a tier-up. It takes only what `previous` still serves: roles another file took since
    /// stay with it. Probes do not tier up ([`Ready::tiers_up`]).
    pub fn install_tier_up(
        &self,
        ready: Ready,
        previous: &StatusHandle,
    ) -> Result<StatusHandle, String> {
        const GONE: &str = "its baseline instance no longer serves";
        const REPLACED: &str = "replaced by its optimized code";
        let status = ready.status();
        let refuse = || {
            status.set_disabled(GONE);
            Err(GONE.to_string())
        };
        let Ready {
            name,
            compiled,
            kind,
        } = ready;
        /// What is swapped under the cache's lock.
        enum InCore {
            Governor(PreparedGovernor),
            Plugin(Prepared),
        }
        // A view swaps under its own lock, the rest under the cache's.
        let in_core = match kind {
            // Never asked for ([`Ready::tiers_up`]).
            ReadyKind::Probe(_) => return refuse(),
            ReadyKind::Transform(t) => {
                if !self.views.replace_if_serving(View::new(&name, t), previous) {
                    return refuse();
                }
                previous.set_disabled(REPLACED);
                return Ok(status);
            }
            ReadyKind::Governor(g) => Some(InCore::Governor(g)),
            ReadyKind::Plugin(p) => Some(InCore::Plugin(p)),
        };
        if let Some(in_core) = in_core {
            let installed = self.with_core(|core| {
                if previous.state() != kplug_engine::PluginState::Active {
                    if let InCore::Plugin(plugin) = in_core {
                        core.discard_prepared(plugin);
                    }
                    return Ok(false);
                }
                match in_core {
                    // Its candidates' faults stand.
                    InCore::Governor(governor) => core
                        .replace_governor_instance(governor, 0)
                        .map_err(|e| e.to_string())?,
                    InCore::Plugin(mut plugin) => {
                        if !plugin.keep_roles(core.roles_served_by(previous)) {
                            core.discard_prepared(plugin);
                            return Ok(false);
                        }
                        core.install_prepared(plugin).map_err(|e| e.to_string())?
                    }
                }
                core.retire(previous, REPLACED);
                Ok::<_, String>(true)
            })??;
            if !installed {
                return refuse();
            }
        }
        self.modules.lock().insert(name, compiled);
        Ok(status)
    }

    /// Take plugin `name` (instance `status`) out of service: everything it put in service
    /// (its roles; a governor, its shadows and the candidates it installed) goes back to the
    /// built-ins, and no governor loaded later resolves a candidate to it.
    pub fn retire(&self, name: &str, status: &StatusHandle) {
        self.views.remove(name, Some(status));
        if self.probes.remove(status) {
            status.set_disabled("removed");
        }
        let _ = self.with_core(|core| core.retire(status, "removed"));
        self.modules.lock().remove(name);
    }
}

/// Room for the snapshot of `resident` blocks and those a swap's first moments add, its
/// memory written before the cache's lock is taken ([`ResidentSnapshot::with_room`]).
fn snapshot_room(resident: usize) -> ResidentSnapshot {
    ResidentSnapshot::with_room(resident + resident / 16 + 64)
}
