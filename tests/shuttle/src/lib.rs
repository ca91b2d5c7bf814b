//! The block cache's own code under shuttle.
//!
//! `fusefs/daemon/src/data/blockcache.rs` (and the prefetch queue beside it) is compiled a
//! second time here, as `data::blockcache`, with `data::sync` built on shuttle's mutex,
//! condition variable and threads instead of parking_lot's and std's: shuttle's schedulers
//! then choose the order of every lock, condvar and thread step of the cache's code. The
//! rest of what that file uses (`crate::error`, `crate::fs`, `crate::monitor`, the data-path
//! types) is the daemon crate's own, re-exported under the same paths. No feature of the
//! daemon crate is involved, so this crate builds and tests with the rest of the workspace.
//! The tests are in `tests/blockcache.rs`.

pub use kplug_daemon::{error, fs, fs_err, monitor};

pub mod data;
