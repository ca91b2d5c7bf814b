//! The `.kplug` directory itself: a fixed listing whose entries are the roots of the other
//! virtual trees (`status`, `stats`, `trace`, `plugins/`), each served by its own tree.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use super::node::{Handles, Owner, entry};
use crate::error::Result;
use crate::fs::{
    Attr, DirPlusSink, DirSink, Entry, FileKind, Tree, TreeIds, list_dir, list_dir_plus,
};
use crate::fs_err;

/// One entry of `.kplug`: a name and the tree whose root it is.
pub struct Child {
    /// Its name in `.kplug`.
    pub name: &'static str,
    /// The tree serving it.
    pub tree: Arc<dyn Tree>,
    /// The tree's root inode.
    pub root: u64,
}

/// The `.kplug` directory.
pub struct ControlRoot {
    ids: TreeIds,
    owner: Owner,
    started: SystemTime,
    /// Sorted by name.
    children: Vec<Child>,
    dirs: Handles<()>,
}

impl ControlRoot {
    /// `.kplug` listing `children`.
    pub fn new(ids: TreeIds, owner: Owner, mut children: Vec<Child>) -> Self {
        children.sort_by_key(|c| c.name);
        Self {
            ids,
            owner,
            started: SystemTime::now(),
            children,
            dirs: Handles::new(ids),
        }
    }

    fn check(&self, ino: u64) -> Result<()> {
        if ino == self.ids.root() {
            Ok(())
        } else {
            Err(fs_err!(libc::ENOENT, "no such .kplug node"))
        }
    }

    fn child_entry(&self, c: &Child) -> Result<Entry> {
        Ok(entry(c.tree.getattr(c.root, None)?))
    }
}

impl Tree for ControlRoot {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        self.check(parent)?;
        if name == "." || name == ".." {
            return Ok(entry(self.getattr(parent, None)?));
        }
        match self.children.iter().find(|c| c.name == name) {
            Some(c) => self.child_entry(c),
            None => Err(fs_err!(
                libc::ENOENT,
                "no {} in .kplug",
                name.to_string_lossy()
            )),
        }
    }

    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        self.check(ino)?;
        Ok(self.owner.attr(ino, FileKind::Dir, 0o555, 0, self.started))
    }

    fn opendir(&self, ino: u64) -> Result<u64> {
        self.check(ino)?;
        Ok(self.dirs.insert(()))
    }

    fn readdir(&self, ino: u64, _fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        self.check(ino)?;
        let mut listing = Vec::new();
        for c in &self.children {
            let kind = c.tree.getattr(c.root, None)?.kind;
            listing.push((c.root, kind, OsStr::new(c.name)));
        }
        list_dir(sink, offset, ino, ino, listing.into_iter());
        Ok(())
    }

    fn readdirplus(
        &self,
        ino: u64,
        _fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let dot = entry(self.getattr(ino, None)?);
        list_dir_plus(
            sink,
            offset,
            &dot,
            self.children.iter(),
            |c| OsStr::new(c.name),
            |c| Ok(self.child_entry(c).ok()),
            |_| {},
        )?;
        Ok(())
    }

    fn releasedir(&self, fh: u64) -> Result<()> {
        self.dirs.remove(fh).map(drop)
    }
}
