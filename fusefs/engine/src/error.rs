//! Error types: why a plugin was refused at load ([`LoadError`]) and why a running plugin
//! was disabled ([`Fault`]).
//!
//! The split follows the two moments a plugin can go wrong. At load nothing is
//! running yet, so the caller gets an error and keeps whatever policy it had.
//! At run time the cache is mid-operation: a fault is never returned to the
//! request path, the core records it in the plugin's status, swaps in the
//! built-in for every role of that plugin and completes the operation. Messages
//! name the export, import or parameter at fault so an operator can act on them.

use kplug_abi::Role;

/// A plugin failed while running. The plugin is disabled (all its roles) at
/// once and the built-in policies take over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The plugin trapped (unreachable, out-of-bounds access, stack overflow...).
    #[error("trap: {0}")]
    Trap(String),
    /// The call ran past its epoch deadline.
    #[error("timeout: the call ran past its deadline")]
    Timeout,
    /// The plugin tried to grow its memory (or a table) past the cap.
    #[error("memory limit: the plugin tried to grow its memory past the cap")]
    MemoryLimit,
    /// The call returned an answer the host cannot accept.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    /// The plugin's slow calls (still running at the first epoch tick after they began) used
    /// more CPU within one second than its budget (`budget.rs`).
    #[error(
        "too slow: its calls ran {} ms of CPU past their first millisecond within one second, over the budget of {} ms",
        ms(*.used_us),
        ms(*.budget_us)
    )]
    TooSlow {
        /// CPU charged in the window, µs.
        used_us: u64,
        /// The budget per second, µs.
        budget_us: u64,
    },
}

/// µs as ms with one decimal.
fn ms(us: u64) -> String {
    format!("{}.{}", us / 1000, us % 1000 / 100)
}

/// A plugin was refused at load (compile, validation, instantiation, version
/// check, parameters or init). Nothing of it stays alive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The module is larger than the size limit.
    #[error("module is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the module.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a WebAssembly binary module.
    #[error("not a WebAssembly binary module (bad magic or version header)")]
    NotWasm,
    /// The module failed validation or compilation.
    #[error("invalid module: {0}")]
    Invalid(String),
    /// `kplug_abi_version` returned a version this host does not accept.
    #[error("unsupported ABI version {major}.{minor} (this host supports 1.0..=1.{host_minor})")]
    AbiVersion {
        /// Major version the plugin reported.
        major: u32,
        /// Minor version the plugin reported.
        minor: u32,
        /// Highest minor version this host accepts.
        host_minor: u32,
    },
    /// A required export is missing (`role` is `None` for `memory`/`kplug_abi_version`).
    #[error("missing export `{name}`{}", role_note(*.role))]
    MissingExport {
        /// The export's name.
        name: &'static str,
        /// The role whose export set is incomplete.
        role: Option<Role>,
    },
    /// An export has the wrong kind or signature.
    #[error("export `{name}` has type {found}, expected {expected}")]
    MistypedExport {
        /// The export's name.
        name: String,
        /// What the ABI requires, e.g. `func(i64)`.
        expected: String,
        /// What the module has.
        found: String,
    },
    /// The module imports something the host does not provide (WASI, say).
    #[error(
        "unknown import `{module}.{name}`: plugins may import only {}",
        importable()
    )]
    UnknownImport {
        /// Module of the import.
        module: String,
        /// Name of the import.
        name: String,
    },
    /// A known import is declared with the wrong type.
    #[error("import `{module}.{name}` has type {found}, expected {expected}")]
    MistypedImport {
        /// Module of the import.
        module: String,
        /// Name of the import.
        name: String,
        /// What the ABI defines.
        expected: String,
        /// What the module declares.
        found: String,
    },
    /// A governor that also exports a role's hooks: a governor picks the policies that serve
    /// the roles, it serves none itself.
    #[error(
        "a governor (it exports kplug_tick) may not serve a cache role, and this module exports the {0} role's hooks"
    )]
    GovernorWithRoles(String),
    /// A transform (ABI 1.6) that also exports a cache role's hooks or `kplug_tick`.
    #[error(
        "a transform (it exports kplug_transform_*) serves a view and may not serve a cache role or be a governor"
    )]
    TransformWithRoles,
    /// A probe (ABI 1.5) that also exports a cache role's or a governor's hooks.
    #[error(
        "a probe (it exports kplug_probe_*) may not serve a cache role or be a governor, and this module exports {0}"
    )]
    ProbeWithRoles(String),
    /// The module implements no role at all.
    #[error(
        "the module implements no role (no eviction, admission, prefetch, governor, probe or transform exports)"
    )]
    NoRoles,
    /// The module's memory is unusable (initial size over the cap, 64-bit, shared...).
    #[error("memory: {0}")]
    Memory(String),
    /// A parameter was rejected (by the host's checks or by `kplug_set_param`).
    #[error("parameter `{key}`: {reason}")]
    Param {
        /// The parameter's key.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `kplug_init` returned a non-zero code.
    #[error("kplug_init({capacity}) failed with code {code}")]
    Init {
        /// Capacity passed to init.
        capacity: u64,
        /// The code returned.
        code: i32,
    },
    /// A load-time call faulted (trap, timeout, memory limit, invalid answer).
    #[error("{hook} faulted during load: {fault}")]
    Fault {
        /// The export that was called.
        hook: &'static str,
        /// What went wrong.
        fault: Fault,
    },
    /// Instantiation failed for another reason.
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// No plugin of that name in the registry.
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
}

/// Every import of the ABI, as the unknown-import error lists them.
fn importable() -> String {
    let all: Vec<String> = kplug_abi::imports::ALL
        .iter()
        .map(|f| format!("{}.{}", kplug_abi::imports::MODULE, f.name))
        .collect();
    all.join(", ")
}

fn role_note(role: Option<Role>) -> String {
    match role {
        Some(r) => format!(" (the {r} role needs all of its exports)"),
        None => String::new(),
    }
}
