//! The WebAssembly engine of kplugfs: compiles and validates plugin modules against the ABI
//! (`kplug-abi`), runs each instance in its own wasmtime store under a memory cap and
//! per-call deadlines, provides the host imports, and classifies every failure.
//!
//! ```text
//! PluginEngine::new(cfg) --compile(name, bytes)--> CompiledPlugin --instantiate(params, cap)--> Plugin
//! plugin.evict_insert / admit / prefetch / tick ...   (typed hooks; Err(HookFault) on a fault)
//! plugin.status()                                     (StatusHandle, shared with whoever shows it)
//! ```
//!
//! Files, bottom up: `limiter` (memory and table caps), `figures` (the introspection figures
//! and file facts the imports read), `globs` (path patterns plugins register), `state` (a
//! store's data and the deadline policy), `budget` (what slow calls may cost per second),
//! `text` (plugin and wasmtime text made one printable line), `imports` (the host functions),
//! `engine` (wasmtime config, epoch ticker, compile + validate), `modcache` (compiled modules
//! by content hash, in memory and on disk), `pools` (compile threads at their caller's
//! priority), `instance` (the load sequence and the hooks), `transform` (a data-path plugin's streams, ABI 1.6), `registry` (compiled plugins by name), `names` (plugin file names and parameter text),
//! `status`, `error`.
//! The cache core that decides when hooks are called, and what to do with a fault, is
//! `kplug-cache`.

#![warn(missing_docs)]

mod budget;
mod engine;
mod error;
pub mod figures;
mod globs;
pub mod hash;
mod imports;
mod instance;
mod keybuf;
mod limiter;
pub mod modcache;
pub mod names;
pub mod nice;
mod pools;
mod registry;
mod state;
mod status;
pub mod text;
mod transform;

pub use engine::{
    CodeTier, CompiledPlugin, EngineConfig, EvictionAbi, OptimizerStats, PluginEngine,
};
pub use error::{Fault, LoadError};
pub use figures::Figures;
pub use instance::{HookFault, Plugin, ProbeFilter};
pub use modcache::Source as ModuleSource;
pub use registry::{PluginRegistry, parse_params};
pub use status::{PluginState, PluginStatus, StatusHandle, StatusSnapshot};
pub use transform::{StreamError, StreamFigures, TransformError, Transformer};
