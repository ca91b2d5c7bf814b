//! The cache core of kplugfs, shared by the FUSE mount and the trace simulator: it owns the
//! bookkeeping (which blocks are resident, what is in flight, the counters) and asks a policy
//! for every decision, a WebAssembly plugin or a native built-in, validating each answer.
//!
//! ```text
//! CacheCore::new(cap, CoreConfig) --install_plugin(plugin, roles)--> plugin serves roles
//! core.get / insert / remove / remove_file / prefetch_plan     (faults -> built-ins take over)
//! core.install_governor(plugin, resolve, tick_every)           (candidates run as shadows)
//! core.snapshot_for_install() --Prepared::from_snapshot (no lock)--> core.install_prepared
//! Prepared::new / PreparedGovernor::new (no lock) --core.install_prepared*--> serves at once
//! core.retire(status, reason)                                   (what a plugin put in service goes)
//! core.policy(role).plugin                                      (StatusHandle of what serves)
//! ScopedCache::new(cap, config, n) --add_scope(id, share)--> one core per scope, one capacity
//! ```
//!
//! Files: `cache` (the core; `cache/governor.rs` and `cache/governor/`, the governor role and
//! its shadow caches), `roles/` (one adapter per role: a plugin slot or a built-in, with
//! answer validation), `scopes` (several cores sharing one capacity), `builtin/` (the native policies that are the defaults and the
//! fallbacks), `error`.
//! Plugins themselves are compiled and called by `kplug-engine`; the ABI is `kplug-abi`.

#![warn(missing_docs)]

pub mod builtin;
mod cache;
mod error;
mod roles;
pub mod scopes;

pub use builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch, ReadaheadConfig};
pub use cache::{
    ActivePolicy, CacheCore, CacheStats, CandidateInfo, CoreConfig, CoreEvent, Insert,
    MAX_CORE_EVENTS, Mark, Prepared, PreparedGovernor, ResidentSnapshot, Retired, SpareRequests,
    Spares,
};
pub use error::InstallError;
pub use kplug_abi::BlockRange;
pub use scopes::{ROOT_SCOPE, ScopeError, ScopeId, ScopedCache};

/// The native LRU for the `hook_call` bench (not a stable API).
#[doc(hidden)]
pub mod __bench {
    use crate::builtin::NativeEviction;

    /// The native LRU behind the `lru` built-in.
    #[derive(Default)]
    pub struct NativeLru(crate::builtin::Lru);

    impl NativeLru {
        /// `insert` hook: the block's handle.
        pub fn insert(&mut self, key: u64) -> u32 {
            self.0.insert(key)
        }
        /// `access` hook, with the handle `insert` gave `key`.
        pub fn access(&mut self, key: u64, handle: u32) {
            self.0.access(key, handle)
        }
        /// `victim` hook.
        pub fn victim(&mut self) -> Option<u64> {
            self.0.victim()
        }
    }
}
