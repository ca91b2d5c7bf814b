//! [`Tree`]: the operations of one part of the mount's namespace.
//!
//! The mount is made of trees: the passthrough of the backing store (inode numbers below
//! [`VIRTUAL_BASE`]) and the virtual trees under `.kplug/` (one per entry of `.kplug`, each
//! with its own range of inode and handle numbers, see [`TreeIds`]). The router
//! (`router.rs`) picks the tree of every request from its inode or handle number, in one
//! place; a tree never sees another tree's numbers. A virtual tree implements what it
//! serves and inherits the defaults below for the rest: namespace changes are refused with
//! EPERM, owners and modes never change, xattrs do not exist, data operations on its files
//! are not supported; a tree of one file answers ENOTDIR to directory operations and one of
//! one directory EISDIR to file operations.
//!
//! Directory listings of every tree number their entries the same way ([`list_dir`],
//! [`list_dir_plus`]): offset 1 is `.`, 2 is `..`, entry `i` is `i + 3` (an offset is the
//! cookie of the *next* entry, as FUSE wants).

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use super::types::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, StatFs, Written,
    XattrReply,
};
use crate::error::{FsError, Result};
use crate::fs_err;

/// Name of the control directory in the mount's root: the junction of the virtual trees.
pub const CONTROL_DIR: &str = ".kplug";
/// First inode number of the virtual trees (the passthrough's are below it).
pub const VIRTUAL_BASE: u64 = 1 << 63;
/// Bit set in every handle of a virtual tree.
pub const VIRTUAL_FH: u64 = 1 << 63;
/// Bits of a virtual inode or handle number local to its tree.
const LOCAL_BITS: u32 = 48;

/// The numbers of virtual tree `id`: inode `VIRTUAL_BASE | id << 48 | local`, handle likewise
/// with [`VIRTUAL_FH`]. Local inode 1 is the tree's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeIds(u64);

impl TreeIds {
    /// The numbers of virtual tree `id` (1..=32767).
    pub fn new(id: u16) -> Self {
        assert!(id > 0 && id < 1 << 15, "virtual tree id");
        TreeIds(id as u64)
    }

    /// The virtual tree an inode or handle number belongs to (0: the passthrough).
    pub fn tree_of(n: u64) -> usize {
        if n & VIRTUAL_BASE == 0 {
            0
        } else {
            ((n & !VIRTUAL_BASE) >> LOCAL_BITS) as usize
        }
    }

    /// Global inode number of local inode `local`.
    pub fn ino(self, local: u64) -> u64 {
        debug_assert!(local < 1 << LOCAL_BITS);
        VIRTUAL_BASE | self.0 << LOCAL_BITS | local
    }

    /// Global handle number of local handle `local`.
    pub fn fh(self, local: u64) -> u64 {
        debug_assert!(local < 1 << LOCAL_BITS);
        VIRTUAL_FH | self.0 << LOCAL_BITS | local
    }

    /// The local part of an inode or handle number of this tree.
    pub fn local(self, n: u64) -> u64 {
        n & ((1 << LOCAL_BITS) - 1)
    }

    /// The tree's root inode.
    pub fn root(self) -> u64 {
        self.ino(1)
    }
}

/// The error of an operation a virtual tree does not allow.
pub fn managed() -> FsError {
    fs_err!(libc::EPERM, "{} is managed by kplugfs", CONTROL_DIR)
}

fn not_a_dir() -> FsError {
    fs_err!(libc::ENOTDIR, "not a directory")
}

fn unsupported() -> FsError {
    fs_err!(libc::EOPNOTSUPP, "not on {} files", CONTROL_DIR)
}

/// The operations of one tree of the mount. Every method is a FUSE operation with plain
/// types; the defaults are those of a read-mostly virtual tree.
#[allow(clippy::too_many_arguments)]
pub trait Tree: Send + Sync {
    /// Look up `name` in directory `parent`; the kernel now holds one more reference.
    /// Default: a tree of one file has no directory.
    fn lookup(&self, _parent: u64, _name: &OsStr) -> Result<Entry> {
        Err(not_a_dir())
    }

    /// The kernel dropped `nlookup` references to `ino`.
    fn forget(&self, _ino: u64, _nlookup: u64) {}

    /// Attributes of `ino` (through its open handle when given).
    fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr>;

    /// The path from the mount's root (`/`-separated, no `/` at either end, `""` for the
    /// root) of inode `ino`, if known: what a probe's subtree filter tests (ABI 1.7).
    fn path_of(&self, _ino: u64) -> Option<Arc<str>> {
        None
    }

    /// Change attributes, then return the new ones. Default: owner and mode never change,
    /// nothing can be truncated, times are accepted and ignored.
    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(fs_err!(
                libc::EPERM,
                "{CONTROL_DIR} entries keep their owner and mode"
            ));
        }
        if set.size.is_some() {
            return Err(fs_err!(libc::EACCES, "read-only"));
        }
        self.getattr(ino, set.fh)
    }

    /// Target of a symbolic link.
    fn readlink(&self, _ino: u64) -> Result<Vec<u8>> {
        Err(fs_err!(libc::EINVAL, "not a symlink"))
    }

    /// Create a device node, FIFO or socket.
    fn mknod(
        &self,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        _caller: Caller,
    ) -> Result<Entry> {
        Err(managed())
    }

    /// Create a directory.
    fn mkdir(
        &self,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _caller: Caller,
    ) -> Result<Entry> {
        Err(managed())
    }

    /// Create a symbolic link `name` -> `target`.
    fn symlink(
        &self,
        _parent: u64,
        _name: &OsStr,
        _target: &Path,
        _caller: Caller,
    ) -> Result<Entry> {
        Err(managed())
    }

    /// Create a hard link to `ino` named `name` in `newparent` (both in this tree).
    fn link(&self, _ino: u64, _newparent: u64, _name: &OsStr) -> Result<Entry> {
        Err(managed())
    }

    /// Remove a file.
    fn unlink(&self, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(managed())
    }

    /// Remove an empty directory.
    fn rmdir(&self, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(managed())
    }

    /// Rename within this tree, with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` flags.
    fn rename(
        &self,
        _parent: u64,
        _name: &OsStr,
        _newparent: u64,
        _newname: &OsStr,
        _flags: u32,
    ) -> Result<()> {
        Err(managed())
    }

    /// Open a file with `flags` for `caller`. Default: a tree of one directory has no file.
    fn open(&self, _ino: u64, _flags: i32, _caller: Caller) -> Result<Opened> {
        Err(fs_err!(libc::EISDIR, "a directory"))
    }

    /// Create and open a file.
    fn create(
        &self,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        _caller: Caller,
    ) -> Result<(Entry, Opened)> {
        Err(managed())
    }

    /// Read up to `size` bytes at `offset`; fewer only at end of file.
    fn read(&self, _fh: u64, _offset: u64, _size: u32) -> Result<Vec<u8>> {
        Err(fs_err!(libc::EISDIR, "a directory"))
    }

    /// Write `data` at `offset`, saying whether the kernel may now hold older bytes of the
    /// written pages (`from_page_cache`: the kernel sends its own dirty pages).
    fn write_through(
        &self,
        _fh: u64,
        _offset: u64,
        _data: &[u8],
        _from_page_cache: bool,
    ) -> Result<Written> {
        Err(fs_err!(libc::EBADF, "not writable"))
    }

    /// A write by a caller without `CAP_FSETID` is about to change the file of `fh`: drop its
    /// set-user-ID bit, and the set-group-ID bit of a group-executable file, as the kernel
    /// does for other filesystems. The mount asks the kernel to leave this to it
    /// (`FUSE_HANDLE_KILLPRIV_V2`, see `fuse.rs`), which spares every write a `getxattr`
    /// round trip. Trees whose files carry no such bits have nothing to do.
    fn kill_suidgid(&self, _fh: u64) -> Result<()> {
        Ok(())
    }

    /// `close()` of one descriptor of the handle, by process `pid` (a handle's descriptors
    /// may be duplicated, so there may be several `flush`es before its `release`).
    fn flush(&self, _fh: u64, _pid: u32) -> Result<()> {
        Ok(())
    }

    /// Last close of the handle.
    fn release(&self, _fh: u64) -> Result<()> {
        Err(fs_err!(libc::EBADF, "unknown handle"))
    }

    /// fsync/fdatasync of an open file.
    fn fsync(&self, _fh: u64, _datasync: bool) -> Result<()> {
        Ok(())
    }

    /// Open a directory for listing.
    fn opendir(&self, _ino: u64) -> Result<u64> {
        Err(not_a_dir())
    }

    /// List a directory from `offset` (see the module note for offsets).
    fn readdir(&self, _ino: u64, _fh: u64, _offset: u64, _sink: &mut dyn DirSink) -> Result<()> {
        Err(not_a_dir())
    }

    /// List a directory with attributes; every entry but `.` and `..` counts as a lookup.
    fn readdirplus(
        &self,
        _ino: u64,
        _fh: u64,
        _offset: u64,
        _sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        Err(not_a_dir())
    }

    /// Close a directory handle.
    fn releasedir(&self, _fh: u64) -> Result<()> {
        Err(fs_err!(libc::EBADF, "unknown handle"))
    }

    /// fsync of a directory handle.
    fn fsyncdir(&self, _fh: u64, _datasync: bool) -> Result<()> {
        Ok(())
    }

    /// Statistics of the filesystem (the router asks the passthrough only).
    fn statfs(&self) -> Result<StatFs> {
        Err(fs_err!(libc::ENOSYS, "statfs of a virtual tree"))
    }

    /// Get an extended attribute (`size` 0 asks for its size).
    fn getxattr(&self, _ino: u64, _name: &OsStr, _size: u32) -> Result<XattrReply> {
        Err(fs_err!(libc::ENODATA, "no xattrs in {}", CONTROL_DIR))
    }

    /// Set an extended attribute.
    fn setxattr(&self, _ino: u64, _name: &OsStr, _value: &[u8], _flags: i32) -> Result<()> {
        Err(fs_err!(libc::ENOTSUP, "no xattrs in {}", CONTROL_DIR))
    }

    /// List extended attribute names (`size` 0 asks for the list's size).
    fn listxattr(&self, _ino: u64, size: u32) -> Result<XattrReply> {
        Ok(if size == 0 {
            XattrReply::Size(0)
        } else {
            XattrReply::Data(Vec::new())
        })
    }

    /// Remove an extended attribute.
    fn removexattr(&self, _ino: u64, _name: &OsStr) -> Result<()> {
        Err(fs_err!(libc::ENOTSUP, "no xattrs in {}", CONTROL_DIR))
    }

    /// access(2): check `mask` for `caller` (virtual trees leave it to the kernel's
    /// `default_permissions`).
    fn access(&self, _ino: u64, _mask: i32, _caller: Caller) -> Result<()> {
        Ok(())
    }

    /// Allocate or punch space in an open file.
    fn fallocate(&self, _fh: u64, _offset: u64, _length: u64, _mode: i32) -> Result<()> {
        Err(unsupported())
    }

    /// lseek with SEEK_DATA / SEEK_HOLE.
    fn lseek(&self, _fh: u64, _offset: i64, _whence: i32) -> Result<i64> {
        Err(unsupported())
    }

    /// Copy a range between two open files of this tree.
    fn copy_file_range(
        &self,
        _fh_in: u64,
        _off_in: u64,
        _fh_out: u64,
        _off_out: u64,
        _len: u64,
        _flags: u32,
    ) -> Result<u32> {
        Err(unsupported())
    }
}

/// Offer `.`, `..` and `entries` (inode, kind, name) to `sink` from `offset` on; the
/// entries' offsets are their index + 3. Returns whether the sink filled up.
pub fn list_dir<'a>(
    sink: &mut dyn DirSink,
    offset: u64,
    dir: u64,
    parent: u64,
    entries: impl Iterator<Item = (u64, FileKind, &'a OsStr)>,
) -> bool {
    let dots = [(dir, OsStr::new(".")), (parent, OsStr::new(".."))];
    for (i, (ino, name)) in dots.into_iter().enumerate() {
        let off = i as u64 + 1;
        if offset < off && sink.add(ino, off, FileKind::Dir, name) {
            return true;
        }
    }
    let start = offset.saturating_sub(2) as usize;
    for (i, (ino, kind, name)) in entries.enumerate().skip(start) {
        if sink.add(ino, i as u64 + 3, kind, name) {
            return true;
        }
    }
    false
}

/// [`list_dir`] with attributes: `.` and `..` get `dot`, each entry the [`Entry`] `entry`
/// gives it (`Ok(None)`: gone since the listing, skipped). An entry the sink does not take is
/// handed to `rejected`, so a tree that counted a lookup for it can undo it. Returns whether
/// the sink filled up.
pub fn list_dir_plus<'a, T: 'a>(
    sink: &mut dyn DirPlusSink,
    offset: u64,
    dot: &Entry,
    items: impl Iterator<Item = &'a T>,
    name: impl Fn(&T) -> &OsStr,
    mut entry: impl FnMut(&T) -> Result<Option<Entry>>,
    mut rejected: impl FnMut(&Entry),
) -> Result<bool> {
    for (i, n) in [".", ".."].into_iter().enumerate() {
        let off = i as u64 + 1;
        if offset < off && sink.add(off, OsStr::new(n), dot) {
            return Ok(true);
        }
    }
    let start = offset.saturating_sub(2) as usize;
    for (i, item) in items.enumerate().skip(start) {
        let Some(e) = entry(item)? else { continue };
        if sink.add(i as u64 + 3, name(item), &e) {
            rejected(&e);
            return Ok(true);
        }
    }
    Ok(false)
}
