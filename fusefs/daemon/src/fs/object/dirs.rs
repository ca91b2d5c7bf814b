//! Listings of an object-store mount: one level of the bucket under the directory's prefix
//! (every page, with the delimiter), directories first shadowing objects of the same name,
//! plus the directories made (or kept) here and the files being written here that the store
//! does not show yet. The listing is taken at `opendir` and again at each rewind (a read from
//! offset 0 after the first), so offsets stay valid while the bucket changes; the first read
//! uses the listing `opendir` took (listing again would cost a second round of LIST requests
//! per `ls`).

use std::collections::BTreeMap;

use super::*;
use crate::fs::tree::{list_dir, list_dir_plus};

/// A directory's entries: name, inode, kind, sorted by name.
type Listing = Arc<Vec<(String, u64, NodeKind)>>;

/// An open directory: its entries as of the last rewind.
#[derive(Debug)]
pub struct OpenDir {
    ino: u64,
    /// The entries, and whether they are `opendir`'s listing, not read from offset 0 yet.
    entries: Mutex<(Listing, bool)>,
}

impl ObjectFs {
    /// The entries of `ino` now, recorded in the inode table.
    fn snapshot(&self, ino: u64) -> Result<Vec<(String, u64, NodeKind)>> {
        let key = self.key(ino)?;
        let listing = self.store.list(&key)?;
        let mut nodes = self.nodes.lock();
        let mut out: BTreeMap<String, (u64, NodeKind)> = BTreeMap::new();
        for (name, info) in listing.files {
            let i = nodes.upsert_object(ino, &name, &info);
            out.insert(name, (i, NodeKind::File));
        }
        // A name that is both an object and a prefix is the directory.
        for name in listing.dirs {
            let i = nodes.upsert(ino, &name, NodeKind::Dir, |n| n.local = false);
            out.insert(name, (i, NodeKind::Dir));
        }
        for name in nodes.local_dirs(ino) {
            if let Some(n) = nodes.child(ino, &name) {
                out.entry(name).or_insert((n.ino, NodeKind::Dir));
            }
        }
        // Files being written here (visible to the store only once their upload ends).
        for (name, i) in nodes.writing_files(ino) {
            out.entry(name).or_insert((i, NodeKind::File));
        }
        Ok(out.into_iter().map(|(n, (i, k))| (n, i, k)).collect())
    }

    /// Open directory `ino` for listing.
    pub(super) fn opendir(&self, ino: u64) -> Result<u64> {
        if self.node(ino)?.kind != NodeKind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "opendir of a non-directory"));
        }
        let entries = self.snapshot(ino)?;
        let fh = self
            .next_fh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dirs.lock().insert(
            fh,
            Arc::new(OpenDir {
                ino,
                entries: Mutex::new((Arc::new(entries), true)),
            }),
        );
        Ok(fh)
    }

    fn entries(&self, fh: u64, offset: u64) -> Result<(u64, Listing)> {
        let d = self
            .dirs
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown dir handle {fh}"))?;
        let mut g = d.entries.lock();
        let fresh = std::mem::replace(&mut g.1, false);
        if offset == 0 && !fresh {
            g.0 = Arc::new(self.snapshot(d.ino)?);
        }
        Ok((d.ino, g.0.clone()))
    }

    /// List a directory from `offset`.
    pub(super) fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> Result<()> {
        let (dino, entries) = self.entries(fh, offset)?;
        debug_assert_eq!(dino, ino);
        let parent = self.node(ino)?.parent;
        let listing = entries.iter().map(|(name, i, k)| {
            let kind = match k {
                NodeKind::Dir => FileKind::Dir,
                NodeKind::File => FileKind::File,
            };
            (*i, kind, OsStr::new(name.as_str()))
        });
        list_dir(sink, offset, ino, parent, listing);
        Ok(())
    }

    /// List a directory with attributes; every entry but `.` and `..` counts as a lookup.
    pub(super) fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let (_, entries) = self.entries(fh, offset)?;
        let dot = Entry {
            attr: self.attr_of(&self.node(ino)?),
            ttl: Duration::ZERO,
        };
        list_dir_plus(
            sink,
            offset,
            &dot,
            entries.iter(),
            |(name, _, _)| OsStr::new(name.as_str()),
            |(_, i, _)| {
                let mut nodes = self.nodes.lock();
                let Some(n) = nodes.get(*i) else {
                    return Ok(None);
                };
                let e = self.entry_of(n);
                nodes.reference(*i);
                Ok(Some(e))
            },
            // Not taken by the kernel: the entry's lookup is undone, its node kept (it is in
            // the listing, and the next call returns it).
            |e| self.nodes.lock().unreference(e.attr.ino),
        )?;
        Ok(())
    }
}
