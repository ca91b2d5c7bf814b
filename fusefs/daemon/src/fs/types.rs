//! The plain types of the filesystem core: what every operation takes and returns, free of
//! FUSE types (the adapter in `fuse.rs` converts them).

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    pub(crate) fn from_dtype(t: u8) -> Option<Self> {
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
    /// A change of size by a caller without `CAP_FSETID`: drop the set-user-ID bit, and the
    /// set-group-ID bit of a group-executable file, as the kernel would (the mount handles
    /// killpriv itself: see `kill_suidgid` in [`crate::fs::tree::Tree`]).
    pub kill_suidgid: bool,
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

/// The result of a write ([`Tree::write_through`](super::Tree::write_through)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub bytes: u32,
    /// A byte range whose pages the kernel may hold with older bytes than were just written:
    /// the FUSE adapter must drop them from the kernel's cache before replying.
    pub stale_pages: Option<std::ops::Range<u64>>,
}

/// An opened file: its handle, and how the kernel may cache its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Opened {
    /// The handle.
    pub fh: u64,
    /// Set FOPEN_KEEP_CACHE: the kernel may keep the pages it cached for the file (only when
    /// the file is unchanged since the previous open).
    pub keep_cache: bool,
    /// Set FOPEN_DIRECT_IO: every read reaches the daemon, nothing is cached by the kernel
    /// (files whose contents change behind the kernel's back, such as `.kplug/status`).
    pub direct_io: bool,
}

impl Opened {
    /// A handle whose pages the kernel must neither keep nor share: direct I/O.
    pub fn direct(fh: u64) -> Self {
        Opened {
            fh,
            keep_cache: false,
            direct_io: true,
        }
    }
}
