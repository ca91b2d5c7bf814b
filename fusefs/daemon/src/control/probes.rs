//! `.kplug/probes/`: one read-only file per probe plugin loaded (ABI 1.5), named as its
//! plugin file without `.wasm`; reading `NAME` returns what the probe's report hook writes.
//!
//! The listing is the mount's probe bus (`monitor/probes.rs`) at the moment it is read: a
//! probe dropped into `plugins/` appears here once loaded, and goes when its plugin file is
//! removed. Like `status`, a file's bytes are rendered at `open()` (the queued events
//! delivered first, then `kplug_probe_report`) and served with direct I/O, so a reader sees one
//! consistent report however it reads it. A probe that faulted (now or before) fails the
//! `open()` with EIO; `.kplug/status` says why.
//!
//! Inode numbers are given per name at the first lookup and kept for the mount's life, so a
//! probe reloaded under the same name keeps its inode.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use super::node::{Handles, Owner, entry, slice};
use crate::error::Result;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, Tree, TreeIds, list_dir,
    list_dir_plus,
};
use crate::fs_err;
use crate::monitor::probes::ProbeBus;

/// The `probes/` directory.
pub struct ProbesDir {
    ids: TreeIds,
    owner: Owner,
    started: SystemTime,
    bus: Arc<ProbeBus>,
    /// Inode of each name seen.
    inos: Mutex<BTreeMap<String, u64>>,
    /// Open reports (`Some`) and listings (`None`).
    open: Handles<Option<Vec<u8>>>,
}

impl ProbesDir {
    /// `probes/` over the mount's `bus`.
    pub fn new(ids: TreeIds, owner: Owner, bus: Arc<ProbeBus>) -> Self {
        Self {
            ids,
            owner,
            started: SystemTime::now(),
            bus,
            inos: Mutex::new(BTreeMap::new()),
            open: Handles::new(ids),
        }
    }

    fn ino_of(&self, name: &str) -> u64 {
        let mut inos = self.inos.lock();
        let next = inos.len() as u64 + 2;
        *inos
            .entry(name.to_string())
            .or_insert_with(|| self.ids.ino(next))
    }

    /// The name of a loaded probe with inode `ino`.
    fn name_of(&self, ino: u64) -> Option<String> {
        let names = self.bus.names();
        let inos = self.inos.lock();
        inos.iter()
            .find(|(n, i)| **i == ino && names.contains(n))
            .map(|(n, _)| n.clone())
    }

    fn file_attr(&self, ino: u64) -> Attr {
        self.owner
            .attr(ino, FileKind::File, 0o444, 0, SystemTime::now())
    }

    fn listing(&self) -> Vec<(u64, String)> {
        self.bus
            .names()
            .into_iter()
            .map(|n| (self.ino_of(&n), n))
            .collect()
    }
}

impl Tree for ProbesDir {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        if parent != self.ids.root() {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        if name == "." || name == ".." {
            return Ok(entry(self.getattr(parent, None)?));
        }
        let name = name.to_string_lossy();
        if !self.bus.names().iter().any(|n| *n == name) {
            return Err(fs_err!(libc::ENOENT, "no probe {name}"));
        }
        Ok(entry(self.file_attr(self.ino_of(&name))))
    }

    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        if ino == self.ids.root() {
            return Ok(self.owner.attr(ino, FileKind::Dir, 0o555, 0, self.started));
        }
        self.name_of(ino)
            .map(|_| self.file_attr(ino))
            .ok_or_else(|| fs_err!(libc::ENOENT, "probe gone"))
    }

    fn open(&self, ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        if ino == self.ids.root() {
            return Err(fs_err!(libc::EISDIR, "a directory"));
        }
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(fs_err!(libc::EACCES, ".kplug/probes is read-only"));
        }
        let name = self
            .name_of(ino)
            .ok_or_else(|| fs_err!(libc::ENOENT, "probe gone"))?;
        let report = self
            .bus
            .report(&name)
            .map_err(|e| fs_err!(libc::EIO, "{e}"))?;
        Ok(Opened::direct(self.open.insert(Some(report))))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open.with(fh, |h| match h {
            Some(d) => Ok(slice(d, offset, size)),
            None => Err(fs_err!(libc::EISDIR, "a directory")),
        })
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }

    fn opendir(&self, ino: u64) -> Result<u64> {
        if ino != self.ids.root() {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        Ok(self.open.insert(None))
    }

    fn readdir(&self, ino: u64, _fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        let listing = self.listing();
        let entries = listing
            .iter()
            .map(|(i, n)| (*i, FileKind::File, OsStr::new(n.as_str())));
        list_dir(sink, offset, ino, ino, entries);
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
        let listing = self.listing();
        list_dir_plus(
            sink,
            offset,
            &dot,
            listing.iter(),
            |(_, n)| OsStr::new(n.as_str()),
            |(i, _)| Ok(Some(entry(self.file_attr(*i)))),
            |_| {},
        )?;
        Ok(())
    }

    fn releasedir(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_monitor_knows_where_virtual_inodes_start() {
        assert_eq!(
            crate::monitor::metrics::VIRTUAL_BASE,
            crate::fs::VIRTUAL_BASE
        );
    }
}
