//! Why installing a plugin into a cache failed: the cache keeps its previous policies.

use kplug_abi::Role;
use kplug_engine::HookFault;

/// Installing a plugin into a [`crate::CacheCore`] failed; the cache keeps its
/// previous policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The plugin does not implement a requested role.
    #[error("plugin `{plugin}` does not implement the {role} role")]
    MissingRole {
        /// The plugin's name.
        plugin: String,
        /// The role asked for.
        role: Role,
    },
    /// No role was requested.
    #[error("no role requested")]
    NoRoles,
    /// The plugin was initialised for another capacity.
    #[error("plugin was initialised for {plugin} blocks, the cache holds {cache}")]
    CapacityMismatch {
        /// Capacity given to `kplug_init`.
        plugin: u64,
        /// Capacity of the cache.
        cache: u64,
    },
    /// The plugin faulted while being told the resident blocks (in the hook named); it is
    /// marked failed and the cache keeps its previous policies.
    #[error("plugin faulted while replaying resident blocks: {0}")]
    Fault(HookFault),
    /// `install_governor` was given a plugin without `kplug_tick`.
    #[error("plugin `{0}` is not a governor (no kplug_tick export)")]
    NotGovernor(String),
    /// A governor's candidate could not be resolved, loaded or installed.
    #[error("candidate `{spec}`: {reason}")]
    Candidate {
        /// The spec the governor registered.
        spec: String,
        /// Why it was refused.
        reason: String,
    },
}
