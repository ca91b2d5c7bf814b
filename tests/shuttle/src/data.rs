//! The daemon's data path, with the block cache compiled against shuttle's primitives.

pub use kplug_daemon::data::{
    Backend, DataCache, FileRef, FileSource, Passthrough, Source, scopes,
};

#[path = "../../../fusefs/daemon/src/data/blockcache.rs"]
pub mod blockcache;

pub mod sync;
