//! Loading a plugin into the live cache, and taking it out again.
//!
//! [`Loader::load`] compiles, validates and instantiates a module for the cache's capacity
//! with its parameters, then installs it for every role it implements, atomically between
//! two requests (the cache core's lock); a governor is installed as the cache's governor,
//! its candidates resolved among the plugins dropped into the mount and the policies the
//! binary carries. The previous plugin of the same file gives back the roles the new one
//! does not take. [`Loader::unload`] returns a plugin's roles to the built-ins. Any failure
//! leaves the policies that were serving in place.

use std::collections::BTreeMap;
use std::sync::Arc;

use kplug_abi::{Role, RoleSet};
use kplug_cache::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch, CacheCore};
use kplug_engine::{CompiledPlugin, PluginEngine, PluginRegistry, StatusHandle};
use parking_lot::Mutex;

use crate::data::blockcache::{Block, BlockCache};

/// Loads plugins into one mount's cache.
pub struct Loader {
    cache: Arc<BlockCache>,
    registry: Mutex<PluginRegistry>,
}

impl Loader {
    /// A loader over `cache`, compiling with `engine`.
    pub fn new(cache: Arc<BlockCache>, engine: PluginEngine) -> Self {
        Self {
            cache,
            registry: Mutex::new(PluginRegistry::new(engine)),
        }
    }

    /// The cache plugins are loaded into.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Load `bytes` as plugin `name` with `params`, replacing `previous` (the instance the same
    /// file loaded before, if any). Returns the new instance's status.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        params: &[(String, String)],
        previous: Option<&StatusHandle>,
    ) -> Result<StatusHandle, String> {
        let capacity = self.cache.with_core(|c| c.capacity());
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let plugin = {
            let mut reg = self.registry.lock();
            reg.add(name, bytes).map_err(|e| e.to_string())?;
            reg.instantiate(name, &params, capacity)
                .map_err(|e| e.to_string())?
        };
        let roles = plugin.roles();
        let status = plugin.status();
        if plugin.is_governor() {
            // Candidates are policies of the binary or other plugins dropped here.
            let (engine, loaded): (PluginEngine, BTreeMap<String, CompiledPlugin>) = {
                let reg = self.registry.lock();
                let loaded = reg
                    .names()
                    .filter_map(|n| reg.get(n).map(|c| (n.to_string(), c.clone())))
                    .collect();
                (reg.engine().clone(), loaded)
            };
            let resolve = |n: &str| -> Result<CompiledPlugin, String> {
                if let Some(c) = loaded.get(n) {
                    return Ok(c.clone());
                }
                let e = kplug_catalog::find(n)
                    .ok_or_else(|| format!("no policy named {n} in this binary or in plugins/"))?;
                engine.compile(n, e.wasm).map_err(|e| e.to_string())
            };
            self.cache
                .with_core(|core| core.install_governor(plugin, &resolve, 0))
                .map_err(|e| e.to_string())?;
            self.cache.start_governor_ticker();
            return Ok(status);
        }
        self.cache.with_core(|core| {
            core.install_plugin(plugin, roles)
                .map_err(|e| e.to_string())?;
            if let Some(prev) = previous {
                return_roles(core, prev, roles);
            }
            Ok(status)
        })
    }

    /// Take plugin `name` (instance `status`) out of service: a governor stops governing,
    /// every role it serves goes back to the built-ins.
    pub fn unload(&self, name: &str, status: &StatusHandle) {
        self.cache.with_core(|core| {
            if core.governor_name() == Some(name) {
                core.remove_governor();
            }
            return_roles(core, status, RoleSet::default())
        });
    }
}

/// Give every role `status`'s plugin still serves, except those in `keep`, to the built-ins.
fn return_roles(core: &mut CacheCore<Block>, status: &StatusHandle, keep: RoleSet) {
    for role in Role::ALL {
        if keep.contains(role) {
            continue;
        }
        let serves = core
            .policy(role)
            .plugin
            .is_some_and(|p| Arc::ptr_eq(&p, status));
        if serves {
            match role {
                Role::Eviction => core.set_eviction(BuiltinEviction::default()),
                Role::Admission => core.set_admission(BuiltinAdmission::default()),
                Role::Prefetch => core.set_prefetch(BuiltinPrefetch::default()),
            }
        }
    }
}
