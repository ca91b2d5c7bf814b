//! The kplugfs filesystem daemon: a passthrough over a backing store whose file data is
//! served by a block cache driven by WebAssembly policy plugins, with virtual trees under
//! `.kplug/` to manage them, a monitoring plane and its history.
//!
//! The crate is split the way mountpoint-s3 splits its own: [`fs`] is the filesystem core
//! (a router over the passthrough and the virtual trees, plain Rust methods that tests drive
//! without FUSE), [`fuse`] is the thin fuser adapter, [`data`] is the data path every read
//! goes through (the block cache), [`control`] holds the virtual trees of `.kplug/`,
//! [`monitor`] counts and records, and [`mount`] mounts and serves. The command line
//! (`kplugfs`, crate `fusefs/cli`) is a thin layer over this crate. See
//! docs/architecture.md for the whole picture.

pub mod control;
pub mod data;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod monitor;
pub mod mount;

pub use error::{FsError, Result};
pub use fs::KplugFs;
