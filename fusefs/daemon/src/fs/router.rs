//! The router: every request goes to the [`Tree`] its inode or handle number belongs to,
//! chosen here and nowhere else.
//!
//! The passthrough owns the inode numbers below [`VIRTUAL_BASE`](super::VIRTUAL_BASE) and the
//! handles without [`VIRTUAL_FH`](super::VIRTUAL_FH); virtual tree `k` owns the numbers
//! [`TreeIds::new(k)`](TreeIds) hands out. A virtual tree is attached to the mount's root
//! under a *junction* name (`.kplug`): looking the name up in the root gives the tree's root,
//! the root's listing ends with it, an entry of that name in the backing root is hidden, and
//! no namespace change may create, remove or rename it. Adding a virtual directory is one
//! [`KplugFs::add_tree`] call (and, under `.kplug`, an entry in its listing): no operation
//! of the passthrough has a branch for it.
//!
//! Operations between two objects (rename, link, copy_file_range) stay within one tree:
//! across trees they fail as an operation on a `.kplug` entry does.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::inode::ROOT_INO;
use super::tree::{CONTROL_DIR, Tree, TreeIds, managed};
use super::types::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, StatFs, Written,
    XattrReply,
};
use crate::error::Result;
use crate::fs_err;
use crate::monitor::metrics::FuseMetrics;

/// Offset of a junction entry in the root's listing: past every passthrough entry's.
const JUNCTION_OFFSET: u64 = 1 << 62;

/// The mount's namespace: the passthrough and the virtual trees, one router.
pub struct KplugFs {
    main: Arc<dyn Tree>,
    /// Virtual tree `k` at index `k - 1`.
    trees: Vec<Arc<dyn Tree>>,
    /// Names in the root that lead to a virtual tree's root inode.
    junctions: Vec<(OsString, u64)>,
    attr_ttl: Duration,
    /// Requests per FUSE operation, filled by the adapter, shown in `.kplug/stats`.
    fuse_metrics: Arc<FuseMetrics>,
}

impl std::fmt::Debug for KplugFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KplugFs")
            .field("virtual_trees", &self.trees.len())
            .field("junctions", &self.junctions)
            .finish_non_exhaustive()
    }
}

impl KplugFs {
    /// A mount serving `main` (the passthrough), whose attributes the kernel caches for
    /// `attr_ttl`.
    pub fn new(main: Arc<dyn Tree>, attr_ttl: Duration) -> Self {
        let fuse_metrics: Arc<FuseMetrics> = Arc::default();
        // A probe's subtree filter names the data tree's inodes by their paths.
        let tree = Arc::downgrade(&main);
        fuse_metrics
            .probes()
            .set_resolver(Box::new(move |ino| tree.upgrade()?.path_of(ino)));
        Self {
            main,
            trees: Vec::new(),
            junctions: Vec::new(),
            attr_ttl,
            fuse_metrics,
        }
    }

    /// Add a virtual tree: `make` builds it from the numbers it is given. Returns the tree
    /// and its numbers.
    pub fn add_tree<T: Tree + 'static>(
        &mut self,
        make: impl FnOnce(TreeIds) -> Arc<T>,
    ) -> (Arc<T>, TreeIds) {
        let ids = TreeIds::new((self.trees.len() + 1) as u16);
        let tree = make(ids);
        self.trees.push(tree.clone());
        (tree, ids)
    }

    /// The data tree (the passthrough or the object tree), for virtual trees that show it
    /// transformed (`.kplug/views/`).
    pub fn main_tree(&self) -> Arc<dyn Tree> {
        self.main.clone()
    }

    /// Show the tree whose root is `root` as `name` in the mount's root.
    pub fn add_junction(&mut self, name: &str, root: u64) {
        self.junctions.push((name.into(), root));
    }

    /// Per-operation request counters, filled by the FUSE adapter.
    pub fn fuse_metrics(&self) -> &Arc<FuseMetrics> {
        &self.fuse_metrics
    }

    /// How long the kernel may cache attributes.
    pub fn attr_ttl(&self) -> Duration {
        self.attr_ttl
    }

    /// The tree an inode or handle number belongs to.
    fn tree(&self, n: u64) -> Result<&dyn Tree> {
        match TreeIds::tree_of(n) {
            0 => Ok(&*self.main),
            k => self
                .trees
                .get(k - 1)
                .map(|t| &**t)
                .ok_or_else(|| fs_err!(libc::ESTALE, "unknown virtual number {n:#x}")),
        }
    }

    /// The virtual root `name` in `parent` leads to, if it is a junction.
    fn junction(&self, parent: u64, name: &OsStr) -> Option<u64> {
        if parent != ROOT_INO {
            return None;
        }
        self.junctions
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, root)| root)
    }

    /// Refuse a namespace change of a junction name.
    fn guard(&self, pairs: &[(u64, &OsStr)]) -> Result<()> {
        if pairs.iter().any(|&(p, n)| self.junction(p, n).is_some()) {
            return Err(managed());
        }
        Ok(())
    }

    /// Both numbers in one tree, else the error of an operation on a `.kplug` entry.
    fn same_tree(&self, a: u64, b: u64) -> Result<&dyn Tree> {
        if TreeIds::tree_of(a) != TreeIds::tree_of(b) {
            return Err(managed());
        }
        self.tree(a)
    }

    /// The entry of a virtual tree's root (never cached: virtual attributes change without
    /// the kernel knowing).
    fn junction_entry(&self, root: u64) -> Result<Entry> {
        Ok(Entry {
            attr: self.tree(root)?.getattr(root, None)?,
            ttl: Duration::ZERO,
        })
    }

    /// Look up `name` in directory `parent`; the kernel now holds one more reference.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        match self.junction(parent, name) {
            Some(root) => self.junction_entry(root),
            None => self.tree(parent)?.lookup(parent, name),
        }
    }

    /// The kernel dropped `nlookup` references to `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        if let Ok(t) = self.tree(ino) {
            t.forget(ino, nlookup)
        }
    }

    /// Attributes of `ino` (through its open handle when given).
    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        self.tree(ino)?.getattr(ino, fh)
    }

    /// Change attributes, then return the new ones.
    pub fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        self.tree(ino)?.setattr(ino, set)
    }

    /// Target of a symbolic link.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        self.tree(ino)?.readlink(ino)
    }

    /// Create a device node, FIFO or socket.
    pub fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Entry> {
        self.guard(&[(parent, name)])?;
        self.tree(parent)?
            .mknod(parent, name, mode, umask, rdev, caller)
    }

    /// Create a directory.
    pub fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<Entry> {
        self.guard(&[(parent, name)])?;
        self.tree(parent)?.mkdir(parent, name, mode, umask, caller)
    }

    /// Create a symbolic link `name` -> `target`.
    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Entry> {
        self.guard(&[(parent, name)])?;
        self.tree(parent)?.symlink(parent, name, target, caller)
    }

    /// Create a hard link to `ino` named `name` in `newparent`.
    pub fn link(&self, ino: u64, newparent: u64, name: &OsStr) -> Result<Entry> {
        self.guard(&[(newparent, name)])?;
        self.same_tree(ino, newparent)?.link(ino, newparent, name)
    }

    /// Remove a file.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.guard(&[(parent, name)])?;
        self.tree(parent)?.unlink(parent, name)
    }

    /// Remove an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.guard(&[(parent, name)])?;
        self.tree(parent)?.rmdir(parent, name)
    }

    /// Rename, with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` flags.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        self.guard(&[(parent, name), (newparent, newname)])?;
        self.same_tree(parent, newparent)?
            .rename(parent, name, newparent, newname, flags)?;
        // Paths under the moved name changed: probes' subtree filters look again.
        self.fuse_metrics.probes().paths_moved();
        Ok(())
    }

    /// Open a file with `flags` (O_CREAT/O_EXCL/O_NOCTTY already handled by the kernel).
    pub fn open(&self, ino: u64, flags: i32, caller: Caller) -> Result<Opened> {
        self.tree(ino)?.open(ino, flags, caller)
    }

    /// Create and open a file.
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Entry, Opened)> {
        if self.junction(parent, name).is_some() {
            return Err(fs_err!(libc::EEXIST, "{} exists", name.to_string_lossy()));
        }
        self.tree(parent)?
            .create(parent, name, mode, umask, flags, caller)
    }

    /// Read up to `size` bytes at `offset`.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.tree(fh)?.read(fh, offset, size)
    }

    /// Write `data` at `offset` (see [`Tree::write_through`]).
    pub fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        from_page_cache: bool,
    ) -> Result<Written> {
        self.tree(fh)?
            .write_through(fh, offset, data, from_page_cache)
    }

    /// Drop the set-user/group-ID bits of the file of `fh` before a write (see
    /// [`Tree::kill_suidgid`]).
    pub fn kill_suidgid(&self, fh: u64) -> Result<()> {
        self.tree(fh)?.kill_suidgid(fh)
    }

    /// Write `data` at `offset`; returns the bytes written.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        Ok(self.write_through(fh, offset, data, false)?.bytes)
    }

    /// `close()` of one descriptor of the handle: report deferred errors.
    pub fn flush(&self, fh: u64, pid: u32) -> Result<()> {
        self.tree(fh)?.flush(fh, pid)
    }

    /// Last close of the handle.
    pub fn release(&self, fh: u64) -> Result<()> {
        self.tree(fh)?.release(fh)
    }

    /// fsync/fdatasync of an open file.
    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        self.tree(fh)?.fsync(fh, datasync)
    }

    /// Open a directory for listing.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        self.tree(ino)?.opendir(ino)
    }

    /// List a directory from `offset` (0 = start); the root's listing ends with the
    /// junctions.
    pub fn readdir(&self, ino: u64, fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        let tree = self.tree(ino)?;
        if ino != ROOT_INO || self.junctions.is_empty() {
            return tree.readdir(ino, fh, offset, sink);
        }
        let mut hiding = Hiding {
            inner: sink,
            names: &self.junctions,
            full: false,
        };
        tree.readdir(ino, fh, offset.min(JUNCTION_OFFSET), &mut hiding)?;
        if hiding.full {
            return Ok(());
        }
        for (i, (name, root)) in self.junctions.iter().enumerate() {
            let off = JUNCTION_OFFSET + i as u64 + 1;
            if offset < off && sink.add(*root, off, FileKind::Dir, name) {
                break;
            }
        }
        Ok(())
    }

    /// List a directory with attributes; every entry but `.` and `..` counts as a lookup.
    pub fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let tree = self.tree(ino)?;
        if ino != ROOT_INO || self.junctions.is_empty() {
            return tree.readdirplus(ino, fh, offset, sink);
        }
        let mut hiding = HidingPlus {
            inner: sink,
            names: &self.junctions,
            tree,
            full: false,
        };
        tree.readdirplus(ino, fh, offset.min(JUNCTION_OFFSET), &mut hiding)?;
        if hiding.full {
            return Ok(());
        }
        for (i, (name, root)) in self.junctions.iter().enumerate() {
            let off = JUNCTION_OFFSET + i as u64 + 1;
            if offset < off && sink.add(off, name, &self.junction_entry(*root)?) {
                break;
            }
        }
        Ok(())
    }

    /// Close a directory handle.
    pub fn releasedir(&self, fh: u64) -> Result<()> {
        self.tree(fh)?.releasedir(fh)
    }

    /// fsync of a directory handle.
    pub fn fsyncdir(&self, fh: u64, datasync: bool) -> Result<()> {
        self.tree(fh)?.fsyncdir(fh, datasync)
    }

    /// Statistics of the backing store.
    pub fn statfs(&self) -> Result<StatFs> {
        self.main.statfs()
    }

    /// Get an extended attribute (`size` 0 asks for its size).
    pub fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        self.tree(ino)?.getxattr(ino, name, size)
    }

    /// Set an extended attribute.
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        self.tree(ino)?.setxattr(ino, name, value, flags)
    }

    /// List extended attribute names (`size` 0 asks for the list's size).
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply> {
        self.tree(ino)?.listxattr(ino, size)
    }

    /// Remove an extended attribute.
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        self.tree(ino)?.removexattr(ino, name)
    }

    /// access(2): check `mask` (R_OK/W_OK/X_OK bits, or F_OK) for `caller`.
    pub fn access(&self, ino: u64, mask: i32, caller: Caller) -> Result<()> {
        self.tree(ino)?.access(ino, mask, caller)
    }

    /// Allocate or punch space in an open file.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        self.tree(fh)?.fallocate(fh, offset, length, mode)
    }

    /// lseek, with SEEK_DATA and SEEK_HOLE answered by the backing file.
    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        self.tree(fh)?.lseek(fh, offset, whence)
    }

    /// Copy a range between two open files of one tree.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        if TreeIds::tree_of(fh_in) != TreeIds::tree_of(fh_out) {
            return Err(fs_err!(libc::EOPNOTSUPP, "not on {CONTROL_DIR} files"));
        }
        self.tree(fh_in)?
            .copy_file_range(fh_in, off_in, fh_out, off_out, len, flags)
    }

    /// Names of the entries of directory `ino` (for tests).
    pub fn list_names(&self, ino: u64) -> Result<Vec<OsString>> {
        struct Names(Vec<OsString>);
        impl DirSink for Names {
            fn add(&mut self, _ino: u64, _offset: u64, _kind: FileKind, name: &OsStr) -> bool {
                if name != "." && name != ".." {
                    self.0.push(name.to_owned());
                }
                false
            }
        }
        let fh = self.opendir(ino)?;
        let mut names = Names(Vec::new());
        let r = self.readdir(ino, fh, 0, &mut names);
        self.releasedir(fh)?;
        r.map(|()| names.0)
    }
}

/// Passes a root listing on, without the backing entries a junction hides.
struct Hiding<'a> {
    inner: &'a mut dyn DirSink,
    names: &'a [(OsString, u64)],
    full: bool,
}

impl DirSink for Hiding<'_> {
    fn add(&mut self, ino: u64, offset: u64, kind: FileKind, name: &OsStr) -> bool {
        if self.names.iter().any(|(n, _)| n == name) {
            return false;
        }
        self.full = self.inner.add(ino, offset, kind, name);
        self.full
    }
}

/// [`Hiding`] for readdirplus: a hidden entry's lookup is undone.
struct HidingPlus<'a> {
    inner: &'a mut dyn DirPlusSink,
    names: &'a [(OsString, u64)],
    tree: &'a dyn Tree,
    full: bool,
}

impl DirPlusSink for HidingPlus<'_> {
    fn add(&mut self, offset: u64, name: &OsStr, entry: &Entry) -> bool {
        if self.names.iter().any(|(n, _)| n == name) {
            if name != "." && name != ".." {
                self.tree.forget(entry.attr.ino, 1);
            }
            return false;
        }
        self.full = self.inner.add(offset, name, entry);
        self.full
    }
}
