//! The passthrough: a [`Tree`] over a backing directory.
//!
//! Every operation is a plain method (`lookup(parent, name) -> Result<Entry>`), so tests
//! drive it without FUSE. Files: `meta.rs` (lookups, attributes, xattrs, access), `names.rs`
//! (namespace changes), `data.rs` (open files, reads through the data cache, writes),
//! `dirs.rs` (listings). It knows nothing of `.kplug`: the router hides a backing entry of
//! that name and refuses to create one.
//!
//! **Permissions.** The mount uses the kernel's `default_permissions`: the kernel checks
//! every access against the mode, owner and group we report, exactly as for a local
//! filesystem. The daemon itself runs as root, so backing operations are not re-checked;
//! objects created through the mount are then given to the calling user (and to the
//! caller's group, unless the parent directory is set-group-ID, where the backing
//! filesystem's inheritance already applies).
//!
//! **Consistency model.** Writes are write-through: `write()` returns after `pwrite()` on
//! the backing file succeeded, and the data cache is told to drop the range. Attributes and
//! names are cached by the kernel for `attr_ttl` (default 1 s), so a change made directly in
//! the backing directory shows through the mount within that time. File data may also sit
//! in the kernel page cache: an `open()` lets the kernel keep it only while the file's size,
//! mtime and ctime are those the previous open saw (`keep_cache`), and a file changed behind
//! the mount loses its cached pages and blocks at its next open (`--no-kernel-cache` drops
//! them at every open). See docs/consistency.md.
//!
//! **Handles.** Open files and directories are kept in handle tables keyed by a counter; a
//! file handle owns its own backing descriptor opened with the caller's flags, so reads and
//! writes never reopen anything.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;

use super::coherence;
use super::inode::{Inode, InodeTable, Kind, ROOT_INO};
use super::sys;
use super::tree::{Tree, list_dir, list_dir_plus};
use super::types::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, FsConfig, Opened, SetAttr, SetTime,
    StatFs, Written, XattrReply,
};
use crate::data::{DataCache, FileRef, FileSource, Source};
use crate::error::{FsError, Result};
use crate::fs_err;

/// An open regular file.
#[derive(Debug)]
pub struct OpenFile {
    /// FUSE inode number.
    pub ino: u64,
    /// The inode (for its read log, see [`crate::fs::coherence`]).
    pub inode: Arc<Inode>,
    /// Backing descriptor opened with the caller's flags.
    pub fd: Arc<OwnedFd>,
    /// The same descriptor as the data cache reads it.
    pub source: Arc<dyn Source>,
    /// Open flags.
    pub flags: i32,
}

#[derive(Debug)]
struct DirEnt {
    name: Vec<u8>,
    backing_ino: u64,
    kind: Option<FileKind>,
}

#[derive(Debug)]
struct OpenDir {
    ino: u64,
    fd: OwnedFd,
    /// Snapshot of the entries, taken at opendir and again at each rewind (offset 0), so
    /// offsets stay valid while the directory changes.
    entries: Mutex<Arc<Vec<DirEnt>>>,
}

/// The passthrough filesystem core.
pub struct LocalFs {
    inodes: InodeTable,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<OpenDir>>>,
    next_fh: AtomicU64,
    data: Arc<dyn DataCache>,
    config: FsConfig,
    is_root: bool,
    stamps: Mutex<HashMap<u64, Stamp>>,
    /// The backing directory, absolute and without symlinks: open files are named from it
    /// for plugins' path patterns (ABI 1.3).
    root_path: Arc<Path>,
}

/// (size, mtime s, mtime ns, ctime s, ctime ns) of a file at its last open.
type Stamp = (i64, i64, i64, i64, i64);

impl std::fmt::Debug for LocalFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFs")
            .field("data", &self.data.name())
            .finish_non_exhaustive()
    }
}

mod data;
mod dirs;
mod meta;
mod names;

impl LocalFs {
    /// A filesystem over `backing`, reading data through `data`.
    pub fn new(backing: &Path, data: Arc<dyn DataCache>, config: FsConfig) -> Result<Self> {
        let c = sys::cstr(backing.as_os_str())?;
        let root = sys::openat(
            unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) },
            &c,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(|e| FsError::from(e).context(format!("open backing dir {}", backing.display())))?;
        let root_path = std::fs::canonicalize(backing)
            .map_err(|e| FsError::from(e).context(format!("resolve {}", backing.display())))?;
        Ok(Self {
            root_path: root_path.into(),
            inodes: InodeTable::new(root)?,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            data,
            config,
            is_root: nix::unistd::geteuid().is_root(),
            stamps: Mutex::new(HashMap::new()),
        })
    }

    /// The inode table (tests check lookup counts through it).
    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    /// The data cache.
    pub fn data(&self) -> &Arc<dyn DataCache> {
        &self.data
    }

    fn inode(&self, ino: u64) -> Result<Arc<Inode>> {
        self.inodes
            .get(ino)
            .ok_or_else(|| fs_err!(libc::ESTALE, "unknown inode {ino}"))
    }

    fn file(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown file handle {fh}"))
    }

    fn dir(&self, fh: u64) -> Result<Arc<OpenDir>> {
        self.dirs
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown dir handle {fh}"))
    }

    fn entry_for(&self, inode: &Inode, st: &libc::stat) -> Entry {
        Entry {
            attr: Attr::from_stat(inode.ino, st),
            ttl: self.config.attr_ttl,
        }
    }

    /// Open `name` in `parent` as `O_PATH`, register a kernel reference, return its entry.
    fn do_lookup(&self, parent: &Inode, name: &OsStr) -> Result<Entry> {
        if name.as_bytes() == b"." || (name.as_bytes() == b".." && parent.ino == ROOT_INO) {
            // Never walk above the backing root.
            let st = sys::fstat(parent.fd())?;
            let fd = sys::reopen(parent.fd(), libc::O_PATH)?;
            let inode = self.inodes.reference(fd, &st);
            return Ok(self.entry_for(&inode, &st));
        }
        let c = sys::cstr(name)?;
        let fd = sys::openat(parent.fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = sys::fstat(fd.as_fd())?;
        let inode = self.inodes.reference(fd, &st);
        Ok(self.entry_for(&inode, &st))
    }

    /// How long the kernel may cache attributes.
    pub fn attr_ttl(&self) -> Duration {
        self.config.attr_ttl
    }
}

/// The trait is the inherent methods of the files beside this one.
impl Tree for LocalFs {
    fn path_of(&self, ino: u64) -> Option<Arc<str>> {
        sys::path_under(self.inodes.get(ino)?.fd(), &self.root_path)
    }
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        LocalFs::lookup(self, parent, name)
    }
    fn forget(&self, ino: u64, nlookup: u64) {
        LocalFs::forget(self, ino, nlookup)
    }
    fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        LocalFs::getattr(self, ino, fh)
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        LocalFs::setattr(self, ino, set)
    }
    fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        LocalFs::readlink(self, ino)
    }
    fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Entry> {
        LocalFs::mknod(self, parent, name, mode, umask, rdev, caller)
    }
    fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<Entry> {
        LocalFs::mkdir(self, parent, name, mode, umask, caller)
    }
    fn symlink(&self, parent: u64, name: &OsStr, target: &Path, caller: Caller) -> Result<Entry> {
        LocalFs::symlink(self, parent, name, target, caller)
    }
    fn link(&self, ino: u64, newparent: u64, name: &OsStr) -> Result<Entry> {
        LocalFs::link(self, ino, newparent, name)
    }
    fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        LocalFs::unlink(self, parent, name)
    }
    fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        LocalFs::rmdir(self, parent, name)
    }
    fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        LocalFs::rename(self, parent, name, newparent, newname, flags)
    }
    fn open(&self, ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        LocalFs::open(self, ino, flags)
    }
    fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Entry, Opened)> {
        let (entry, fh) = LocalFs::create(self, parent, name, mode, umask, flags, caller)?;
        Ok((
            entry,
            Opened {
                fh,
                ..Opened::default()
            },
        ))
    }
    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        LocalFs::read(self, fh, offset, size)
    }
    fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        from_page_cache: bool,
    ) -> Result<Written> {
        LocalFs::write_through(self, fh, offset, data, from_page_cache)
    }
    fn kill_suidgid(&self, fh: u64) -> Result<()> {
        let f = self.file(fh)?;
        data::kill_suidgid(f.fd.as_fd())
    }
    fn flush(&self, fh: u64, _pid: u32) -> Result<()> {
        LocalFs::flush(self, fh)
    }
    fn release(&self, fh: u64) -> Result<()> {
        LocalFs::release(self, fh)
    }
    fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        LocalFs::fsync(self, fh, datasync)
    }
    fn opendir(&self, ino: u64) -> Result<u64> {
        LocalFs::opendir(self, ino)
    }
    fn readdir(&self, ino: u64, fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        LocalFs::readdir(self, ino, fh, offset, sink)
    }
    fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        LocalFs::readdirplus(self, ino, fh, offset, sink)
    }
    fn releasedir(&self, fh: u64) -> Result<()> {
        LocalFs::releasedir(self, fh)
    }
    fn fsyncdir(&self, fh: u64, datasync: bool) -> Result<()> {
        LocalFs::fsyncdir(self, fh, datasync)
    }
    fn statfs(&self) -> Result<StatFs> {
        LocalFs::statfs(self)
    }
    fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        LocalFs::getxattr(self, ino, name, size)
    }
    fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        LocalFs::setxattr(self, ino, name, value, flags)
    }
    fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply> {
        LocalFs::listxattr(self, ino, size)
    }
    fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        LocalFs::removexattr(self, ino, name)
    }
    fn access(&self, ino: u64, mask: i32, caller: Caller) -> Result<()> {
        LocalFs::access(self, ino, mask, caller)
    }
    fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        LocalFs::fallocate(self, fh, offset, length, mode)
    }
    fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        LocalFs::lseek(self, fh, offset, whence)
    }
    fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        LocalFs::copy_file_range(self, fh_in, off_in, fh_out, off_out, len, flags)
    }
}
