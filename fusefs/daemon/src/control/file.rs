//! A read-only virtual file whose contents are rendered at each `open()` (`.kplug/status`,
//! `.kplug/stats`): a reader sees one consistent snapshot however it reads it. Served with
//! direct I/O, so the kernel never cuts a read at a stale size or answers from its cache.

use std::time::SystemTime;

use super::node::{Handles, Owner, slice};
use crate::error::Result;
use crate::fs::{Attr, Caller, FileKind, Opened, Tree, TreeIds};
use crate::fs_err;

/// Renders the file's contents.
pub type Render = Box<dyn Fn() -> String + Send + Sync>;

/// A rendered file; its tree has one node, the root.
pub struct RenderedFile {
    ids: TreeIds,
    owner: Owner,
    name: &'static str,
    render: Render,
    open: Handles<Vec<u8>>,
}

impl RenderedFile {
    /// `.kplug/NAME`, rendered by `render`.
    pub fn new(ids: TreeIds, owner: Owner, name: &'static str, render: Render) -> Self {
        Self {
            ids,
            owner,
            name,
            render,
            open: Handles::new(ids),
        }
    }
}

impl Tree for RenderedFile {
    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        if ino != self.ids.root() {
            return Err(fs_err!(libc::ENOENT, "no such node"));
        }
        Ok(self
            .owner
            .attr(ino, FileKind::File, 0o444, 0, SystemTime::now()))
    }

    fn open(&self, _ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(fs_err!(libc::EACCES, ".kplug/{} is read-only", self.name));
        }
        Ok(Opened::direct(
            self.open.insert((self.render)().into_bytes()),
        ))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open.with(fh, |d| Ok(slice(d, offset, size)))
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}
