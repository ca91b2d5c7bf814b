//! kplugfs: a FUSE passthrough filesystem whose cache policies are WebAssembly plugins.
//!
//! The crate is split the way mountpoint-s3 splits its own: [`fs`] is the filesystem core
//! with plain Rust methods (tests drive it without FUSE), [`fuse`] is the thin fuser adapter,
//! [`data`] is the data path every read goes through, and [`mount`] holds the command-line
//! side of mounting. See docs/architecture.md for the whole picture.

pub mod blockcache;
pub mod coherence;
pub mod control;
pub mod data;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod history;
pub mod inode;
pub mod metrics;
pub mod mount;
pub mod policies;
pub mod recorder;
pub mod sim;
pub mod stats_cmd;
pub mod sync;
pub mod sys;
pub mod trace_cmd;

pub use error::{FsError, Result};
pub use fs::KplugFs;
