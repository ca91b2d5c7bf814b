//! Host side of the kplugfs plugin ABI v1 (see `docs/plugin-abi.md`): the
//! wasmtime engine that loads and sandboxes policy plugins, the native
//! built-in policies, and the block-cache core shared by the FUSE mount and
//! the trace simulator.
//!
//! ```text
//! PluginEngine::new(cfg) --compile(name, bytes)--> CompiledPlugin --instantiate(params, cap)--> Plugin
//! CacheCore::new(cap, CoreConfig) --install_plugin(plugin, roles)--> plugin serves roles
//! core.get / insert / remove / remove_file / prefetch_plan     (faults -> built-ins take over)
//! plugin.status() / core.policy(role).plugin                   (StatusHandle -> StatusSnapshot JSON)
//! ```
//!
//! Files: `abi` (names, version, limits), `engine` (wasmtime config, epoch
//! ticker, compile + validate), `limiter` (memory cap), `instance` (store per
//! plugin, typed hooks, load sequence), `roles/` (role adapters with answer
//! validation), `builtin/` (native policies), `cache` (the core), `figures`
//! (introspection for plugins, ABI 1.1), `status`,
//! `registry`, `build` (policy crate -> .wasm), `error`.

#![warn(missing_docs)]

pub mod abi;
pub mod build;
pub mod builtin;
mod cache;
mod engine;
mod error;
pub mod figures;
mod hash;
mod instance;
mod limiter;
mod registry;
mod roles;
mod status;

pub use abi::{Role, RoleSet, block_key};
pub use builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch, ReadaheadConfig};
pub use cache::{
    ActivePolicy, BlockRange, CacheCore, CacheStats, CandidateInfo, CoreConfig, Insert,
};
pub use engine::{CompiledPlugin, EngineConfig, PluginEngine};
pub use error::{BuildError, Fault, InstallError, LoadError};
pub use figures::Figures;
pub use instance::Plugin;
pub use registry::{PluginRegistry, parse_params};
pub use status::{PluginState, PluginStatus, StatusHandle, StatusSnapshot};

/// Raw hook access for the `hook_call` bench (not a stable API).
#[doc(hidden)]
pub mod __bench {
    use crate::builtin::NativeEviction;
    use crate::{Fault, Plugin};

    /// The native LRU behind the `lru` built-in.
    #[derive(Default)]
    pub struct NativeLru(crate::builtin::Lru);

    impl NativeLru {
        /// `insert` hook.
        pub fn insert(&mut self, key: u64) {
            self.0.insert(key)
        }
        /// `access` hook.
        pub fn access(&mut self, key: u64) {
            self.0.access(key)
        }
        /// `victim` hook.
        pub fn victim(&mut self) -> Option<u64> {
            self.0.victim()
        }
    }

    /// `kplug_evict_insert` on a plugin.
    pub fn insert(p: &mut Plugin, key: u64) -> Result<(), Fault> {
        p.evict_insert(key, 0).map_err(|f| f.fault)
    }
    /// `kplug_evict_access` on a plugin.
    pub fn access(p: &mut Plugin, key: u64) -> Result<(), Fault> {
        p.evict_access(key, 0).map_err(|f| f.fault)
    }
    /// `kplug_evict_victim` on a plugin (unvalidated).
    pub fn victim(p: &mut Plugin) -> Result<u64, Fault> {
        p.evict_victim(0).map_err(|f| f.fault)
    }
}
