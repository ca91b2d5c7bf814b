//! The object-store tree: a bucket (or a prefix of one) as a [`Tree`], with mountpoint-s3's
//! namespace and the write semantics an object store honestly allows (docs/object-store.md
//! has the whole table, next to POSIX and mountpoint-s3).
//!
//! **Names.** `/` separates directories; a directory is a common prefix of keys (listed with
//! a delimiter, every page), or a directory `mkdir`ed here, which stays local until a file is
//! created in it. A name that is both an object and a prefix is the directory (the object is
//! shadowed). Sizes and times come from the listing or HEAD; owner, group and modes from the
//! mount's options. The kernel caches names and attributes for `--attr-timeout`; a node's
//! attributes older than that are asked again (`nodes.rs`).
//!
//! **Reads** go through the same data cache and plugins as a local mount: each open file's
//! [`Source`](crate::data::Source) is the object at the version (ETag) `open` saw, read with
//! ranged GETs that carry `If-Match`, so bytes of two versions are never mixed; an object
//! replaced behind the mount is seen at the next open once the attribute timeout passed, and
//! its cached blocks are dropped then (cache keys are per inode, and an inode's blocks belong
//! to one ETag). A read of an object replaced while open fails with EIO.
//!
//! **Writes.** A new file, or one opened with `O_TRUNC`, is written from start to end and
//! streamed to the store in parts (`kplug_store::Upload`); it becomes visible to other clients
//! when the `close()` that ends it returns (`flush`; `fsync` ends it too). Writing anywhere but
//! at the end, writing into an existing object opened without `O_TRUNC`, appends, links,
//! symlinks, special files and owner or mode changes fail at once, logged. `unlink` deletes the
//! object; `rmdir` removes an empty directory; `rename` of a file copies it on the server and
//! deletes the old key (not atomic); a non-empty directory is not renamed (EXDEV: `mv`
//! copies). A file being written is not removed, renamed or renamed over (EBUSY) until its
//! upload ends. `--read-only` (and `mount -o remount,ro`) is the kernel's: it refuses every
//! change with EROFS before a request gets here, so the daemon keeps no read-only flag and
//! `remount,rw` needs nothing from it.
//!
//! Files: `nodes.rs` (the inode table), `names.rs` (lookups, attributes, namespace changes),
//! `files.rs` (open files: reads, uploads), `dirs.rs` (listings).

mod dirs;
mod files;
mod names;
mod nodes;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use kplug_store::Store;
use parking_lot::Mutex;

use super::tree::Tree;
use super::types::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, StatFs, Written,
    XattrReply,
};
use crate::data::DataCache;
use crate::error::{FsError, Level, Result};
use crate::fs_err;
use files::OpenObject;
use nodes::{Node, NodeKind, Nodes};

/// How an object-store mount presents the bucket.
#[derive(Debug, Clone)]
pub struct ObjectConfig {
    /// Owner of every file and directory (`--uid`).
    pub uid: u32,
    /// Group (`--gid`).
    pub gid: u32,
    /// Permission bits of files (`--file-mode`).
    pub file_mode: u16,
    /// Permission bits of directories (`--dir-mode`).
    pub dir_mode: u16,
    /// How long the kernel caches names and attributes (`--attr-timeout`), and how old a
    /// node's attributes may get before the store is asked again.
    pub attr_ttl: Duration,
    /// Let the kernel keep a file's pages across opens while its ETag is unchanged.
    pub kernel_cache: bool,
}

/// A bucket as a tree (see the module note).
pub struct ObjectFs {
    store: Arc<Store>,
    data: Arc<dyn DataCache>,
    config: ObjectConfig,
    nodes: Mutex<Nodes>,
    files: Mutex<HashMap<u64, Arc<OpenObject>>>,
    dirs: Mutex<HashMap<u64, Arc<dirs::OpenDir>>>,
    next_fh: AtomicU64,
    started: SystemTime,
}

impl std::fmt::Debug for ObjectFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFs")
            .field("store", &self.store.describe(""))
            .finish_non_exhaustive()
    }
}

impl ObjectFs {
    /// The tree of `store`, its data read through `data`.
    pub fn new(store: Arc<Store>, data: Arc<dyn DataCache>, config: ObjectConfig) -> Self {
        let started = SystemTime::now();
        Self {
            store,
            data,
            config,
            nodes: Mutex::new(Nodes::new(started)),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            started,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Nodes the tree holds (for tests: every lookup must be forgotten again).
    pub fn node_count(&self) -> usize {
        self.nodes.lock().count()
    }

    fn attr_of(&self, n: &Node) -> Attr {
        let (kind, perm, size, nlink) = match n.kind {
            NodeKind::File => (FileKind::File, self.config.file_mode, n.size, 1),
            NodeKind::Dir => (FileKind::Dir, self.config.dir_mode, 0, 2),
        };
        let mtime = if n.kind == NodeKind::Dir {
            self.started
        } else {
            n.mtime
        };
        Attr {
            ino: n.ino,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            kind,
            perm,
            nlink,
            uid: self.config.uid,
            gid: self.config.gid,
            rdev: 0,
            blksize: 128 << 10,
        }
    }

    fn entry_of(&self, n: &Node) -> Entry {
        Entry {
            attr: self.attr_of(n),
            ttl: self.config.attr_ttl,
        }
    }

    /// The node `ino`, copied out.
    fn node(&self, ino: u64) -> Result<Node> {
        self.nodes
            .lock()
            .get(ino)
            .cloned()
            .ok_or_else(|| fs_err!(libc::ESTALE, "unknown inode {ino}"))
    }

    /// The key of `ino` relative to the mount's root.
    fn key(&self, ino: u64) -> Result<String> {
        self.nodes
            .lock()
            .key(ino)
            .ok_or_else(|| fs_err!(libc::ESTALE, "unknown inode {ino}"))
    }
}

/// The error of an operation an object store cannot do: an errno at once, and a log line.
fn unsupported(errno: i32, what: &str) -> FsError {
    FsError::new(errno, format!("{what}: not possible on an object store")).at(Level::Warn)
}

/// A name the store can hold as one key segment.
fn check_name(name: &OsStr) -> Result<&str> {
    let s = name
        .to_str()
        .ok_or_else(|| fs_err!(libc::EINVAL, "object keys are UTF-8: {name:?}"))?;
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.chars().any(char::is_control) {
        return Err(fs_err!(
            libc::EINVAL,
            "{s:?} cannot be an object key segment"
        ));
    }
    if s.len() > 255 {
        return Err(fs_err!(libc::ENAMETOOLONG, "name longer than 255 bytes"));
    }
    Ok(s)
}

impl Tree for ObjectFs {
    fn path_of(&self, ino: u64) -> Option<Arc<str>> {
        let key = self.nodes.lock().key(ino)?;
        Some(Arc::from(key.trim_end_matches('/')))
    }
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        ObjectFs::lookup(self, parent, name)
    }
    fn forget(&self, ino: u64, nlookup: u64) {
        self.nodes.lock().forget(ino, nlookup)
    }
    fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        ObjectFs::getattr(self, ino, fh)
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        ObjectFs::setattr(self, ino, set)
    }
    fn mknod(
        &self,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        _caller: Caller,
    ) -> Result<Entry> {
        Err(unsupported(libc::EPERM, "mknod"))
    }
    fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _caller: Caller,
    ) -> Result<Entry> {
        ObjectFs::mkdir(self, parent, name)
    }
    fn symlink(
        &self,
        _parent: u64,
        _name: &OsStr,
        _target: &Path,
        _caller: Caller,
    ) -> Result<Entry> {
        Err(unsupported(libc::EPERM, "symlink"))
    }
    fn link(&self, _ino: u64, _newparent: u64, _name: &OsStr) -> Result<Entry> {
        Err(unsupported(libc::EPERM, "link"))
    }
    fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        ObjectFs::unlink(self, parent, name)
    }
    fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        ObjectFs::rmdir(self, parent, name)
    }
    fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        ObjectFs::rename(self, parent, name, newparent, newname, flags)
    }
    fn open(&self, ino: u64, flags: i32, caller: Caller) -> Result<Opened> {
        ObjectFs::open(self, ino, flags, caller.pid)
    }
    fn create(
        &self,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Entry, Opened)> {
        ObjectFs::create(self, parent, name, flags, caller.pid)
    }
    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        ObjectFs::read(self, fh, offset, size)
    }
    fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        _from_page_cache: bool,
    ) -> Result<Written> {
        ObjectFs::write(self, fh, offset, data)
    }
    fn flush(&self, fh: u64, pid: u32) -> Result<()> {
        ObjectFs::finish(self, fh, Some(pid))
    }
    fn release(&self, fh: u64) -> Result<()> {
        ObjectFs::release(self, fh)
    }
    fn fsync(&self, fh: u64, _datasync: bool) -> Result<()> {
        ObjectFs::finish(self, fh, None)
    }
    fn opendir(&self, ino: u64) -> Result<u64> {
        ObjectFs::opendir(self, ino)
    }
    fn readdir(&self, ino: u64, fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        ObjectFs::readdir(self, ino, fh, offset, sink)
    }
    fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        ObjectFs::readdirplus(self, ino, fh, offset, sink)
    }
    fn releasedir(&self, fh: u64) -> Result<()> {
        self.dirs
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "releasedir of unknown handle {fh}"))
    }
    fn statfs(&self) -> Result<StatFs> {
        // A bucket has no size: report a large, mostly free filesystem (as mountpoint-s3).
        Ok(StatFs {
            blocks: 1 << 40,
            bfree: 1 << 40,
            bavail: 1 << 40,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }
    /// ENOSYS: the kernel then stops asking for the rest of the mount (it otherwise asks for
    /// `security.capability` before every write, a round trip each).
    fn getxattr(&self, _ino: u64, _name: &OsStr, _size: u32) -> Result<XattrReply> {
        Err(fs_err!(libc::ENOSYS, "no xattrs on an object store"))
    }
    fn setxattr(&self, _ino: u64, _name: &OsStr, _value: &[u8], _flags: i32) -> Result<()> {
        Err(unsupported(libc::ENOTSUP, "setxattr"))
    }
    fn removexattr(&self, _ino: u64, _name: &OsStr) -> Result<()> {
        Err(unsupported(libc::ENOTSUP, "removexattr"))
    }
    fn fallocate(&self, _fh: u64, _offset: u64, _length: u64, _mode: i32) -> Result<()> {
        Err(unsupported(libc::EOPNOTSUPP, "fallocate"))
    }
}
