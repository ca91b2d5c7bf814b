//! The filesystem core: a passthrough over a backing directory, as plain Rust methods.
//!
//! [`KplugFs`] implements every operation of the passthrough with signatures free of FUSE
//! types (`lookup(parent, name) -> Result<Entry>`), so unit tests drive it directly, and the
//! FUSE adapter in `fuse.rs` stays a thin translation layer. Directory listings go through the
//! small [`DirSink`] trait for the same reason.
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
//! in the kernel page cache; it is dropped at every `open()` (no `keep_cache`), so a reader
//! that reopens a file sees changes made behind the mount. See docs/consistency.md.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::coherence;
use crate::control::{self, CONTROL_DIR, Control, is_virtual, is_virtual_fh};
use crate::data::{DataCache, FileRef};
use crate::error::{FsError, Result};
use crate::fs_err;
use crate::inode::{Inode, InodeTable, Kind, ROOT_INO};
use crate::metrics::FuseMetrics;
use crate::sys;

/// File types as reported to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
}

impl FileKind {
    /// The kind from a `st_mode`.
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => FileKind::File,
        }
    }

    fn from_dtype(t: u8) -> Option<Self> {
        Some(match t {
            libc::DT_DIR => FileKind::Dir,
            libc::DT_REG => FileKind::File,
            libc::DT_LNK => FileKind::Symlink,
            libc::DT_FIFO => FileKind::Fifo,
            libc::DT_SOCK => FileKind::Socket,
            libc::DT_CHR => FileKind::CharDevice,
            libc::DT_BLK => FileKind::BlockDevice,
            _ => return None,
        })
    }
}

/// Attributes of an object, with its FUSE inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// FUSE inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// Type.
    pub kind: FileKind,
    /// Permission bits, including set-ID and sticky bits.
    pub perm: u16,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Preferred I/O size.
    pub blksize: u32,
}

fn to_time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

impl Attr {
    /// Attributes from a backing stat, under FUSE inode number `ino`.
    pub fn from_stat(ino: u64, st: &libc::stat) -> Self {
        Attr {
            ino,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: to_time(st.st_atime, st.st_atime_nsec),
            mtime: to_time(st.st_mtime, st.st_mtime_nsec),
            ctime: to_time(st.st_ctime, st.st_ctime_nsec),
            kind: FileKind::from_mode(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
        }
    }
}

/// A directory entry handed to the kernel: attributes plus how long it may be cached.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The object's attributes.
    pub attr: Attr,
    /// How long the kernel may cache the name and the attributes.
    pub ttl: Duration,
}

/// Who is asking: the credentials of the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id.
    pub pid: u32,
}

impl Caller {
    /// Root, for tests and internal operations.
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };
}

/// A time to set: now, or an explicit instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The current time.
    Now,
    /// This instant.
    At(SystemTime),
}

/// The attribute changes of a setattr request; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
    /// The open handle the change came through, if any.
    pub fh: Option<u64>,
}

/// Receives directory entries; `add` returns true when the buffer is full (entry not taken).
pub trait DirSink {
    /// Offer one entry; `offset` is the cookie of the *next* entry.
    fn add(&mut self, ino: u64, offset: u64, kind: FileKind, name: &OsStr) -> bool;
}

/// Receives directory entries with attributes (readdirplus).
pub trait DirPlusSink {
    /// Offer one entry; returns true when the buffer is full (entry not taken).
    fn add(&mut self, offset: u64, name: &OsStr, entry: &Entry) -> bool;
}

/// Filesystem statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Maximum name length.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

/// Answer of a getxattr/listxattr: the size asked for, or the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply {
    /// The caller asked for the size (size 0).
    Size(u32),
    /// The value or the list.
    Data(Vec<u8>),
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long the kernel may cache attributes and names.
    pub attr_ttl: Duration,
    /// Let the kernel keep a file's cached pages across opens while the file is unchanged
    /// (libfuse's `auto_cache`). Off: every open drops them, and every read reaches the
    /// daemon (and so the block cache and its policies).
    pub kernel_cache: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        // One second, as libfuse's default: a change made behind the mount shows within 1 s,
        // while `ls -l` of a big directory does not stat every file twice.
        Self {
            attr_ttl: Duration::from_secs(1),
            kernel_cache: true,
        }
    }
}

/// The result of [`KplugFs::write_through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub bytes: u32,
    /// A byte range whose pages the kernel may hold with older bytes than were just written:
    /// the FUSE adapter must drop them from the kernel's cache before replying.
    pub stale_pages: Option<std::ops::Range<u64>>,
}

/// An open regular file.
#[derive(Debug)]
pub struct OpenFile {
    /// FUSE inode number.
    pub ino: u64,
    /// The inode (for its read log, see [`crate::coherence`]).
    pub inode: Arc<Inode>,
    /// Backing descriptor opened with the caller's flags.
    pub fd: OwnedFd,
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
pub struct KplugFs {
    inodes: InodeTable,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<OpenDir>>>,
    next_fh: AtomicU64,
    data: Arc<dyn DataCache>,
    config: FsConfig,
    is_root: bool,
    control: Option<Arc<Control>>,
    stamps: Mutex<HashMap<u64, Stamp>>,
    /// Requests per FUSE operation, filled by the adapter, shown in `.kplug/stats`.
    fuse_metrics: Arc<FuseMetrics>,
}

/// (size, mtime s, mtime ns, ctime s, ctime ns) of a file at its last open.
type Stamp = (i64, i64, i64, i64, i64);

/// An opened file: its handle, and whether the kernel may keep the pages it cached for the
/// file (true only when the file is unchanged since the previous open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The handle.
    pub fh: u64,
    /// Set FOPEN_KEEP_CACHE.
    pub keep_cache: bool,
}

impl std::fmt::Debug for KplugFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KplugFs")
            .field("data", &self.data.name())
            .finish_non_exhaustive()
    }
}

impl KplugFs {
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
        Ok(Self {
            inodes: InodeTable::new(root)?,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            data,
            config,
            is_root: nix::unistd::geteuid().is_root(),
            control: None,
            stamps: Mutex::new(HashMap::new()),
            fuse_metrics: Arc::default(),
        })
    }

    /// Serve the control directory `.kplug` from `control` (whose `stats` then shows this
    /// core's FUSE request metrics).
    pub fn with_control(mut self, control: Arc<Control>) -> Self {
        control.attach_fuse_metrics(self.fuse_metrics.clone());
        self.control = Some(control);
        self
    }

    /// Per-operation request counters, filled by the FUSE adapter.
    pub fn fuse_metrics(&self) -> &Arc<FuseMetrics> {
        &self.fuse_metrics
    }

    /// The control plane, when the mount has one.
    pub fn control(&self) -> Option<&Arc<Control>> {
        self.control.as_ref()
    }

    fn ctl(&self) -> Result<&Arc<Control>> {
        self.control
            .as_ref()
            .ok_or_else(|| fs_err!(libc::ESTALE, "no control plane"))
    }

    /// True when `name` in `parent` is the control directory.
    fn is_control_name(&self, parent: u64, name: &OsStr) -> bool {
        self.control.is_some() && parent == ROOT_INO && name.as_bytes() == CONTROL_DIR.as_bytes()
    }

    /// Refuse a namespace change touching the control tree.
    fn guard_names(&self, pairs: &[(u64, &OsStr)]) -> Result<()> {
        for &(parent, name) in pairs {
            if is_virtual(parent) || self.is_control_name(parent, name) {
                return Err(fs_err!(libc::EPERM, "{CONTROL_DIR} is managed by kplugfs"));
            }
        }
        Ok(())
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

    /// Look up `name` in directory `parent`; the kernel now holds one more reference.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        if is_virtual(parent) {
            return self.ctl()?.lookup(parent, &name.to_string_lossy());
        }
        if self.is_control_name(parent, name) {
            return Ok(self.ctl()?.root_entry());
        }
        let p = self.inode(parent)?;
        self.do_lookup(&p, name)
    }

    /// The kernel dropped `nlookup` references to `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        if is_virtual(ino) {
            return;
        }
        if self.inodes.forget(ino, nlookup) {
            self.stamps.lock().remove(&ino);
        }
    }

    /// Attributes of `ino` (through its open handle when given).
    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        if is_virtual(ino) {
            return self.ctl()?.getattr(ino);
        }
        if let Some(fh) = fh.filter(|fh| !is_virtual_fh(*fh))
            && let Ok(f) = self.file(fh)
        {
            let st = sys::fstat(f.fd.as_fd())?;
            return Ok(Attr::from_stat(ino, &st));
        }
        let inode = self.inode(ino)?;
        let st = sys::fstat(inode.fd())?;
        Ok(Attr::from_stat(ino, &st))
    }

    /// Change attributes: mode, owner, size, times (in that order, as chmod/chown/truncate/
    /// utimensat would), then return the new attributes.
    pub fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if is_virtual(ino) {
            let ctl = self.ctl()?;
            if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
                return Err(fs_err!(
                    libc::EPERM,
                    "{CONTROL_DIR} entries keep their owner and mode"
                ));
            }
            return match set.size {
                Some(size) => ctl.truncate(ino, size),
                None => ctl.getattr(ino),
            };
        }
        let inode = self.inode(ino)?;
        let handle = set.fh.and_then(|fh| self.file(fh).ok());
        if let Some(mode) = set.mode {
            sys::chmod_fd(inode.fd(), mode & 0o7777)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            sys::chown_fd(
                inode.fd(),
                set.uid.unwrap_or(u32::MAX),
                set.gid.unwrap_or(u32::MAX),
            )?;
        }
        if let Some(size) = set.size {
            match &handle {
                Some(h) if h.flags & libc::O_ACCMODE != libc::O_RDONLY => {
                    sys::ftruncate(h.fd.as_fd(), size)?
                }
                _ => sys::truncate_fd(inode.fd(), size)?,
            }
            self.changed_here(ino);
            self.data.invalidate_file(ino);
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let ts = |t: Option<SetTime>| match t {
                None => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_OMIT,
                },
                Some(SetTime::Now) => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_NOW,
                },
                Some(SetTime::At(t)) => match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => libc::timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: d.subsec_nanos() as i64,
                    },
                    Err(e) => {
                        let d = e.duration();
                        let mut sec = -(d.as_secs() as i64);
                        let mut nsec = -(d.subsec_nanos() as i64);
                        if nsec < 0 {
                            sec -= 1;
                            nsec += 1_000_000_000;
                        }
                        libc::timespec {
                            tv_sec: sec,
                            tv_nsec: nsec,
                        }
                    }
                },
            };
            let times = [ts(set.atime), ts(set.mtime)];
            sys::utimens_fd(inode.fd(), &times, inode.kind == Kind::Symlink)?;
        }
        let st = sys::fstat(inode.fd())?;
        Ok(Attr::from_stat(ino, &st))
    }

    /// Target of a symbolic link.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        if is_virtual(ino) {
            return Err(fs_err!(libc::EINVAL, "not a symlink"));
        }
        let inode = self.inode(ino)?;
        Ok(sys::readlink_fd(inode.fd())?)
    }

    /// Give a new object to its creator (see the module note on permissions).
    fn give_to_caller(
        &self,
        parent: &Inode,
        fd: BorrowedFd<'_>,
        caller: Caller,
        mode: u32,
    ) -> Result<()> {
        if !self.is_root || caller.uid == 0 && caller.gid == 0 {
            return Ok(());
        }
        let pst = sys::fstat(parent.fd())?;
        let gid = if pst.st_mode & libc::S_ISGID != 0 {
            u32::MAX
        } else {
            caller.gid
        };
        sys::chown_fd(fd, caller.uid, gid)?;
        // chown clears set-ID bits of regular files: put back what the creator asked for.
        if mode & (libc::S_ISUID | libc::S_ISGID) != 0 && mode & libc::S_IFMT == libc::S_IFREG {
            sys::chmod_fd(fd, mode & 0o7777)?;
        }
        Ok(())
    }

    fn new_entry(&self, parent: &Inode, name: &OsStr, caller: Caller, mode: u32) -> Result<Entry> {
        let c = sys::cstr(name)?;
        let fd = sys::openat(parent.fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        if let Err(e) = self.give_to_caller(parent, fd.as_fd(), caller, mode) {
            let flags = if mode & libc::S_IFMT == libc::S_IFDIR {
                libc::AT_REMOVEDIR
            } else {
                0
            };
            let _ = sys::unlinkat(parent.fd(), &c, flags);
            return Err(e);
        }
        let st = sys::fstat(fd.as_fd())?;
        let inode = self.inodes.reference(fd, &st);
        Ok(self.entry_for(&inode, &st))
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
        self.guard_names(&[(parent, name)])?;
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let mode = mode & !(umask & 0o777);
        sys::mknodat(p.fd(), &c, mode, rdev as u64)?;
        self.new_entry(&p, name, caller, mode)
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
        self.guard_names(&[(parent, name)])?;
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let mode = mode & 0o7777 & !(umask & 0o777);
        sys::mkdirat(p.fd(), &c, mode)?;
        self.new_entry(&p, name, caller, libc::S_IFDIR | mode)
    }

    /// Create a symbolic link `name` -> `target`.
    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Entry> {
        self.guard_names(&[(parent, name)])?;
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let t = sys::cstr(target.as_os_str())?;
        sys::symlinkat(&t, p.fd(), &c)?;
        self.new_entry(&p, name, caller, libc::S_IFLNK | 0o777)
    }

    /// Create a hard link to `ino` named `name` in `newparent`.
    pub fn link(&self, ino: u64, newparent: u64, name: &OsStr) -> Result<Entry> {
        self.guard_names(&[(newparent, name)])?;
        if is_virtual(ino) {
            return Err(fs_err!(
                libc::EPERM,
                "{CONTROL_DIR} entries cannot be linked"
            ));
        }
        let inode = self.inode(ino)?;
        let p = self.inode(newparent)?;
        let c = sys::cstr(name)?;
        sys::link_fd(inode.fd(), p.fd(), &c)?;
        self.do_lookup(&p, name)
    }

    /// Remove a file.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        if is_virtual(parent) {
            return self.ctl()?.unlink(parent, &name.to_string_lossy());
        }
        self.guard_names(&[(parent, name)])?;
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        // Drop cached data of a file losing its last name: its blocks would never be read
        // again, and a new file may reuse its inode number.
        let st = sys::fstatat(p.fd(), &c).ok();
        sys::unlinkat(p.fd(), &c, 0)?;
        if let Some(st) = st
            && st.st_nlink <= 1
        {
            self.invalidate_backing(st.st_dev, st.st_ino);
        }
        Ok(())
    }

    fn invalidate_backing(&self, dev: u64, bino: u64) {
        if dev == self.inodes.root_dev() {
            self.data.invalidate_file(bino);
        }
    }

    /// Remove an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.guard_names(&[(parent, name)])?;
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        Ok(sys::unlinkat(p.fd(), &c, libc::AT_REMOVEDIR)?)
    }

    /// Rename, with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` flags passed to the backing fs.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        self.guard_names(&[(parent, name), (newparent, newname)])?;
        let p = self.inode(parent)?;
        let np = self.inode(newparent)?;
        let c = sys::cstr(name)?;
        let nc = sys::cstr(newname)?;
        let replaced = if flags & libc::RENAME_EXCHANGE == 0 {
            sys::fstatat(np.fd(), &nc).ok()
        } else {
            None
        };
        sys::renameat2(p.fd(), &c, np.fd(), &nc, flags)?;
        if let Some(st) = replaced
            && st.st_nlink <= 1
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
        {
            self.invalidate_backing(st.st_dev, st.st_ino);
        }
        Ok(())
    }

    fn register_file(&self, inode: Arc<Inode>, fd: OwnedFd, flags: i32) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(
            fh,
            Arc::new(OpenFile {
                ino: inode.ino,
                inode,
                fd,
                flags,
            }),
        );
        fh
    }

    /// Open a file with `flags` (O_CREAT/O_EXCL/O_NOCTTY already handled by the kernel).
    /// O_DIRECT is not passed on: the kernel already bypasses its page cache for the caller,
    /// and the daemon's buffers from FUSE requests are not aligned as O_DIRECT requires.
    pub fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        if is_virtual(ino) {
            let fh = self.ctl()?.open(ino, flags)?;
            return Ok(Opened {
                fh,
                keep_cache: false,
            });
        }
        let inode = self.inode(ino)?;
        let flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT);
        let fd = sys::reopen(inode.fd(), flags)?;
        let keep_cache = if flags & libc::O_TRUNC != 0 {
            self.changed_here(ino);
            self.data.invalidate_file(ino);
            false
        } else if inode.kind == Kind::File {
            self.check_stamp(ino, &sys::fstat(fd.as_fd())?)
        } else {
            false
        };
        let fh = self.register_file(inode, fd, flags);
        Ok(Opened {
            fh,
            keep_cache: keep_cache && self.config.kernel_cache,
        })
    }

    /// Close-to-open consistency: compare the file's (size, mtime, ctime) with what the
    /// previous open saw. Unchanged: the kernel may keep its cached pages. Changed behind the
    /// mount: every cached block of the file is dropped.
    fn check_stamp(&self, ino: u64, st: &libc::stat) -> bool {
        let now: Stamp = (
            st.st_size,
            st.st_mtime,
            st.st_mtime_nsec,
            st.st_ctime,
            st.st_ctime_nsec,
        );
        let prev = self.stamps.lock().insert(ino, now);
        match prev {
            Some(p) if p == now => true,
            Some(_) => {
                self.data.invalidate_file(ino);
                false
            }
            None => false,
        }
    }

    /// Data of `ino` changed through the mount: forget its stamp, so the next open neither
    /// keeps stale kernel pages nor takes our own change for one made behind the mount.
    fn changed_here(&self, ino: u64) {
        self.stamps.lock().remove(&ino);
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
    ) -> Result<(Entry, u64)> {
        if is_virtual(parent) {
            return self.ctl()?.create(parent, &name.to_string_lossy(), caller);
        }
        if self.is_control_name(parent, name) {
            return Err(fs_err!(libc::EEXIST, "{CONTROL_DIR} exists"));
        }
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let mode = mode & 0o7777 & !(umask & 0o777);
        let flags = (flags | libc::O_CREAT) & !(libc::O_NOCTTY | libc::O_DIRECT);
        let fd = sys::openat(p.fd(), &c, flags, mode)?;
        let entry = self.new_entry(&p, name, caller, libc::S_IFREG | mode)?;
        let fh = self.register_file(
            self.inode(entry.attr.ino)?,
            fd,
            flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
        );
        Ok((entry, fh))
    }

    /// Read through the data cache.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        if is_virtual_fh(fh) {
            return self.ctl()?.read(fh, offset, size);
        }
        let f = self.file(fh)?;
        f.inode
            .reads
            .record(offset..offset.saturating_add(size as u64));
        self.data.read(
            FileRef {
                ino: f.ino,
                fd: f.fd.as_fd(),
            },
            offset,
            size,
        )
    }

    /// Write through to the backing file, then drop the cached range.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        Ok(self.write_through(fh, offset, data, false)?.bytes)
    }

    /// [`write`](Self::write), also saying whether the kernel may now cache older bytes of
    /// the written pages (see [`crate::coherence`]): `from_page_cache` is set for writes the
    /// kernel sends from its own dirty pages (mmap writeback), which cannot race that way.
    pub fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        from_page_cache: bool,
    ) -> Result<Written> {
        if is_virtual_fh(fh) {
            return Ok(Written {
                bytes: self.ctl()?.write(fh, offset, data)?,
                stale_pages: None,
            });
        }
        let arrived = coherence::now_ns();
        let f = self.file(fh)?;
        // An O_APPEND write lands wherever the end is: treat it as touching everything after 0.
        let (start, len) = if f.flags & libc::O_APPEND != 0 {
            (0, u64::MAX)
        } else {
            (offset, data.len() as u64)
        };
        self.data.write_begin(f.ino, start, len);
        let result = sys::pwrite_full(f.fd.as_raw_fd(), data, offset);
        self.changed_here(f.ino);
        self.data.write_end(f.ino, start, len);
        let bytes = result? as u32;
        // The pages the kernel filled with these bytes (it is given the final offset, also
        // for O_APPEND).
        let page = coherence::page_size();
        let pages = offset / page * page..(offset + bytes as u64).div_ceil(page) * page;
        let since = arrived.saturating_sub(coherence::RACE_WINDOW.as_nanos() as u64);
        let stale_pages =
            (!from_page_cache && bytes > 0 && f.inode.reads.overlaps_since(pages, since))
                .then(|| offset..offset + bytes as u64);
        Ok(Written { bytes, stale_pages })
    }

    /// `close()` of one descriptor of the handle: report deferred errors.
    pub fn flush(&self, fh: u64) -> Result<()> {
        if is_virtual_fh(fh) {
            return self.ctl()?.flush(fh);
        }
        let f = self.file(fh)?;
        Ok(sys::flush_fd(f.fd.as_fd())?)
    }

    /// Last close of the handle.
    pub fn release(&self, fh: u64) -> Result<()> {
        if is_virtual_fh(fh) {
            return self.ctl()?.release(fh);
        }
        self.files
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "release of unknown handle {fh}"))
    }

    /// fsync/fdatasync of an open file.
    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        if is_virtual_fh(fh) {
            return Ok(());
        }
        let f = self.file(fh)?;
        Ok(sys::fsync(f.fd.as_fd(), datasync)?)
    }

    /// Open a directory for listing.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        if is_virtual(ino) {
            return self.ctl()?.opendir(ino);
        }
        let inode = self.inode(ino)?;
        if inode.kind != Kind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "opendir of a non-directory"));
        }
        let fd = sys::reopen(inode.fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
        let entries = self.snapshot(ino, fd.as_fd())?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().insert(
            fh,
            Arc::new(OpenDir {
                ino,
                fd,
                entries: Mutex::new(Arc::new(entries)),
            }),
        );
        Ok(fh)
    }

    fn snapshot(&self, ino: u64, fd: BorrowedFd<'_>) -> Result<Vec<DirEnt>> {
        let hide = self.control.is_some() && ino == ROOT_INO;
        let mut v: Vec<DirEnt> = sys::read_dir_entries(fd)?
            .into_iter()
            .filter(|(name, _, _)| !(hide && name == CONTROL_DIR.as_bytes()))
            .map(|(name, backing_ino, t)| DirEnt {
                name,
                backing_ino,
                kind: FileKind::from_dtype(t),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    fn entries_from(&self, d: &OpenDir, offset: u64) -> Result<Arc<Vec<DirEnt>>> {
        let mut guard = d.entries.lock();
        if offset == 0 {
            *guard = Arc::new(self.snapshot(d.ino, d.fd.as_fd())?);
        }
        Ok(guard.clone())
    }

    /// List a directory from `offset` (0 = start). Offsets 1 and 2 are `.` and `..`;
    /// entry i of the snapshot has offset i + 3.
    pub fn readdir(&self, ino: u64, fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        if is_virtual(ino) {
            let names = self.ctl()?.list(ino)?;
            let dots = [
                (ino, FileKind::Dir, ".".to_string()),
                (ino, FileKind::Dir, "..".to_string()),
            ];
            for (i, (eino, kind, name)) in dots
                .into_iter()
                .chain(names)
                .enumerate()
                .skip(offset as usize)
            {
                if sink.add(eino, i as u64 + 1, kind, OsStr::new(&name)) {
                    break;
                }
            }
            return Ok(());
        }
        let d = self.dir(fh)?;
        debug_assert_eq!(d.ino, ino);
        let entries = self.entries_from(&d, offset)?;
        let dots: [(&[u8], u64); 2] = [(b".", ino), (b"..", ROOT_INO)];
        for (i, (name, dino)) in dots.iter().enumerate() {
            let off = i as u64 + 1;
            if offset < off && sink.add(*dino, off, FileKind::Dir, OsStr::from_bytes(name)) {
                return Ok(());
            }
        }
        let start = offset.saturating_sub(2) as usize;
        for (i, e) in entries.iter().enumerate().skip(start) {
            let kind = e.kind.unwrap_or(FileKind::File);
            if sink.add(
                e.backing_ino,
                i as u64 + 3,
                kind,
                OsStr::from_bytes(&e.name),
            ) {
                return Ok(());
            }
        }
        let last = entries.len() as u64 + 3;
        if self.control.is_some() && ino == ROOT_INO && offset < last {
            let _ = sink.add(
                control::INO_CONTROL,
                last,
                FileKind::Dir,
                OsStr::new(CONTROL_DIR),
            );
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
        if is_virtual(ino) {
            let ctl = self.ctl()?;
            let dot = Entry {
                attr: ctl.getattr(ino)?,
                ttl: Duration::ZERO,
            };
            let mut all = vec![(".".to_string(), dot), ("..".to_string(), dot)];
            for (_, _, name) in ctl.list(ino)? {
                if let Ok(e) = ctl.lookup(ino, &name) {
                    all.push((name, e));
                }
            }
            for (i, (name, e)) in all.iter().enumerate().skip(offset as usize) {
                if sink.add(i as u64 + 1, OsStr::new(name), e) {
                    break;
                }
            }
            return Ok(());
        }
        let d = self.dir(fh)?;
        let entries = self.entries_from(&d, offset)?;
        let dir = self.inode(ino)?;
        let dst = sys::fstat(dir.fd())?;
        let dot = Entry {
            attr: Attr::from_stat(ino, &dst),
            ttl: Duration::ZERO,
        };
        for (i, name) in [&b"."[..], &b".."[..]].iter().enumerate() {
            let off = i as u64 + 1;
            if offset < off && sink.add(off, OsStr::from_bytes(name), &dot) {
                return Ok(());
            }
        }
        let start = offset.saturating_sub(2) as usize;
        for (i, e) in entries.iter().enumerate().skip(start) {
            let name = OsStr::from_bytes(&e.name);
            let entry = match self.do_lookup(&dir, name) {
                Ok(entry) => entry,
                // Removed since the snapshot: skip it, as getdents would not have shown it.
                Err(e) if e.errno() == libc::ENOENT => continue,
                Err(e) => return Err(e),
            };
            if sink.add(i as u64 + 3, name, &entry) {
                // Not taken: undo the lookup the kernel will never know about.
                self.forget(entry.attr.ino, 1);
                return Ok(());
            }
        }
        let last = entries.len() as u64 + 3;
        if self.control.is_some() && ino == ROOT_INO && offset < last {
            let _ = sink.add(last, OsStr::new(CONTROL_DIR), &self.ctl()?.root_entry());
        }
        Ok(())
    }

    /// Close a directory handle.
    pub fn releasedir(&self, fh: u64) -> Result<()> {
        if is_virtual_fh(fh) {
            return self.ctl()?.release(fh);
        }
        self.dirs
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "releasedir of unknown handle {fh}"))
    }

    /// fsync of a directory handle.
    pub fn fsyncdir(&self, fh: u64, datasync: bool) -> Result<()> {
        if is_virtual_fh(fh) {
            return Ok(());
        }
        let d = self.dir(fh)?;
        Ok(sys::fsync(d.fd.as_fd(), datasync)?)
    }

    /// Statistics of the backing filesystem.
    pub fn statfs(&self) -> Result<StatFs> {
        let s = sys::statvfs(self.inodes.root().fd())?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    fn xattr_target(&self, ino: u64) -> Result<Arc<Inode>> {
        if is_virtual(ino) {
            return Err(fs_err!(libc::ENOTSUP, "no xattrs in {CONTROL_DIR}"));
        }
        let inode = self.inode(ino)?;
        if matches!(inode.kind, Kind::Symlink | Kind::Special) {
            // The /proc link of a symlink or special file cannot carry the call to the object
            // itself; user xattrs are not allowed there anyway.
            return Err(fs_err!(libc::EPERM, "xattrs on symlinks and special files"));
        }
        Ok(inode)
    }

    /// Get an extended attribute (`size` 0 asks for its size).
    pub fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        if is_virtual(ino) {
            return Err(fs_err!(libc::ENODATA, "no xattrs in {CONTROL_DIR}"));
        }
        let inode = self.inode(ino)?;
        if matches!(inode.kind, Kind::Symlink | Kind::Special) {
            return Err(fs_err!(
                libc::ENODATA,
                "no xattrs on symlinks and special files"
            ));
        }
        let c = sys::cstr(name)?;
        if size == 0 {
            return Ok(XattrReply::Size(
                sys::getxattr(inode.fd(), &c, &mut [])? as u32
            ));
        }
        let mut buf = vec![0u8; size as usize];
        let n = sys::getxattr(inode.fd(), &c, &mut buf)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    /// Set an extended attribute.
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        let inode = self.xattr_target(ino)?;
        let c = sys::cstr(name)?;
        Ok(sys::setxattr(inode.fd(), &c, value, flags)?)
    }

    /// List extended attribute names (`size` 0 asks for the list's size).
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply> {
        if is_virtual(ino) {
            return Ok(if size == 0 {
                XattrReply::Size(0)
            } else {
                XattrReply::Data(Vec::new())
            });
        }
        let inode = self.inode(ino)?;
        if matches!(inode.kind, Kind::Symlink | Kind::Special) {
            return Ok(if size == 0 {
                XattrReply::Size(0)
            } else {
                XattrReply::Data(Vec::new())
            });
        }
        if size == 0 {
            return Ok(XattrReply::Size(sys::listxattr(inode.fd(), &mut [])? as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = sys::listxattr(inode.fd(), &mut buf)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    /// Remove an extended attribute.
    pub fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let inode = self.xattr_target(ino)?;
        let c = sys::cstr(name)?;
        Ok(sys::removexattr(inode.fd(), &c)?)
    }

    /// access(2): check `mask` (R_OK/W_OK/X_OK bits, or F_OK) for `caller`.
    pub fn access(&self, ino: u64, mask: i32, caller: Caller) -> Result<()> {
        if is_virtual(ino) {
            return Ok(());
        }
        let inode = self.inode(ino)?;
        let st = sys::fstat(inode.fd())?;
        if mask == libc::F_OK {
            return Ok(());
        }
        let mode = st.st_mode;
        if caller.uid == 0 {
            // Root may do anything, but execute needs at least one x bit (or a directory).
            if mask & libc::X_OK != 0 && mode & 0o111 == 0 && mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(fs_err!(libc::EACCES, "no execute bit"));
            }
            return Ok(());
        }
        let bits = if caller.uid == st.st_uid {
            (mode >> 6) & 7
        } else if caller.gid == st.st_gid {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        if (mask as u32) & !bits & 7 != 0 {
            return Err(fs_err!(
                libc::EACCES,
                "mode {:o} denies {mask:#o}",
                mode & 0o7777
            ));
        }
        Ok(())
    }

    /// Allocate or punch space in an open file.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        if is_virtual_fh(fh) {
            return Err(fs_err!(libc::EOPNOTSUPP, "not on {CONTROL_DIR} files"));
        }
        let f = self.file(fh)?;
        sys::fallocate(f.fd.as_fd(), mode, offset, length)?;
        self.changed_here(f.ino);
        self.data.invalidate(f.ino, offset, length);
        Ok(())
    }

    /// lseek, with SEEK_DATA and SEEK_HOLE answered by the backing file.
    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        if is_virtual_fh(fh) {
            return Err(fs_err!(libc::EOPNOTSUPP, "not on {CONTROL_DIR} files"));
        }
        let f = self.file(fh)?;
        Ok(sys::lseek(f.fd.as_fd(), offset, whence)?)
    }

    /// Copy a range between two open files inside the backing filesystem.
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
        if is_virtual_fh(fh_in) || is_virtual_fh(fh_out) {
            return Err(fs_err!(libc::EOPNOTSUPP, "not on {CONTROL_DIR} files"));
        }
        let fin = self.file(fh_in)?;
        let fout = self.file(fh_out)?;
        let n = sys::copy_file_range(
            fin.fd.as_fd(),
            off_in,
            fout.fd.as_fd(),
            off_out,
            len.min(u32::MAX as u64),
            flags,
        )?;
        self.changed_here(fout.ino);
        self.data.invalidate(fout.ino, off_out, n as u64);
        Ok(n as u32)
    }

    /// The open file behind a handle (for the data path and the control plane).
    pub fn open_file(&self, fh: u64) -> Result<Arc<OpenFile>> {
        if is_virtual_fh(fh) {
            return Err(fs_err!(libc::EOPNOTSUPP, "not on {CONTROL_DIR} files"));
        }
        self.file(fh)
    }

    /// Names of the entries of directory `ino`, for tests.
    pub fn list_names(&self, ino: u64) -> Result<Vec<OsString>> {
        let fh = self.opendir(ino)?;
        let d = self.dir(fh)?;
        let names = d
            .entries
            .lock()
            .iter()
            .map(|e| OsString::from_vec(e.name.clone()))
            .collect();
        self.releasedir(fh)?;
        Ok(names)
    }
}

impl KplugFs {
    /// How long the kernel may cache attributes.
    pub fn attr_ttl(&self) -> Duration {
        self.config.attr_ttl
    }
}
