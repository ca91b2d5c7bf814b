//! The filesystem core: the mount's namespace as [`Tree`]s behind one router, with plain
//! Rust types only (the FUSE adapter, `fuse.rs`, converts to and from fuser's).
//!
//! ```text
//! KplugFs (router.rs) ── inode / handle number ──▶ the passthrough (local/: a backing dir)
//!                     └─────────────────────────▶ a virtual tree of .kplug/ (crate::control)
//! ```
//!
//! Files: `types.rs` (attributes, entries, callers, replies), `tree.rs` (the [`Tree`] trait,
//! the numbering of virtual trees, directory-listing helpers), `router.rs` ([`KplugFs`]),
//! `local/` (the passthrough), `inode.rs` (its inode table), `sys.rs` (its system calls),
//! `coherence.rs` (keeping the kernel's page cache coherent with write-through writes).

pub mod coherence;
pub mod inode;
mod local;
mod object;
mod router;
pub mod sys;
mod tree;
mod types;

pub use local::{LocalFs, OpenFile};
pub use object::{ObjectConfig, ObjectFs};
pub use router::KplugFs;
pub use tree::{
    CONTROL_DIR, Tree, TreeIds, VIRTUAL_BASE, VIRTUAL_FH, list_dir, list_dir_plus, managed,
};
pub use types::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, FsConfig, Opened, SetAttr, SetTime,
    StatFs, Written, XattrReply,
};
