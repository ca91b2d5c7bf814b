//! The inode table: FUSE inode numbers, lookup counts and the backing `O_PATH` descriptors.
//!
//! Each inode the kernel knows about holds an `O_PATH` descriptor of its backing object, so
//! every operation reaches the object itself rather than a path that may have moved.
//!
//! **Numbering.** A backing object is identified by `(st_dev, st_ino)`. Its FUSE inode number
//! is its backing `st_ino` whenever that is possible (same device as the backing root, not 1,
//! below the synthetic range, and not held by a different live object), so numbers are stable
//! for the whole life of the mount, across forget and re-lookup, and `ls -i` shows the same
//! numbers as the backing directory. Otherwise (a file on another device under the backing
//! dir, or a reused `st_ino` whose old owner the kernel still holds) the object gets a number
//! from the synthetic range, remembered per `(dev, ino)` for the rest of the mount.
//!
//! **Lookup counts** follow the FUSE contract exactly: every reply that creates an entry in the
//! kernel (lookup, create, mkdir, mknod, symlink, link, readdirplus) adds one; `forget(n)`
//! removes n; at zero the inode and its descriptor are dropped. The root is never dropped.
//!
//! **Reused inode numbers.** When a lookup finds `(dev, ino)` already in the table, the old
//! entry may be a deleted file the kernel still references (open but unlinked) whose number
//! the backing filesystem has since given to a new file. The old entry's link count tells:
//! a file found by name has at least one link, so an entry with zero links is a different,
//! deleted object, and the new one gets a fresh entry.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::coherence::ReadLog;
use super::sys;

/// FUSE's root inode number.
pub const ROOT_INO: u64 = 1;

/// First number of the synthetic range. Backing `st_ino` values this high are vanishingly
/// rare; objects that cannot use their own number get one from here.
pub const SYNTHETIC_BASE: u64 = 1 << 62;

/// First number of the virtual trees (`.kplug/`), above every other range.
pub use super::tree::VIRTUAL_BASE;

/// The kind of a backing object, as far as the core cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// FIFO, socket or device node.
    Special,
}

impl Kind {
    /// The kind from a `st_mode`.
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Special,
        }
    }
}

/// One live inode.
#[derive(Debug)]
pub struct Inode {
    /// The FUSE inode number.
    pub ino: u64,
    /// Backing device.
    pub dev: u64,
    /// Backing inode number.
    pub backing_ino: u64,
    /// What the object is.
    pub kind: Kind,
    fd: OwnedFd,
    nlookup: AtomicU64,
    /// Recent reads of the file's data, for the write path's page-cache check
    /// (see [`super::coherence`]).
    pub reads: ReadLog,
}

impl Inode {
    /// The `O_PATH` descriptor of the backing object.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Current lookup count (for tests and leak checks).
    pub fn lookups(&self) -> u64 {
        self.nlookup.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Tables {
    by_ino: HashMap<u64, Arc<Inode>>,
    by_id: HashMap<(u64, u64), u64>,
    synthetic: HashMap<(u64, u64), u64>,
    next_synthetic: u64,
}

/// The table of inodes the kernel currently references.
pub struct InodeTable {
    root: Arc<Inode>,
    tables: Mutex<Tables>,
}

impl InodeTable {
    /// A table holding the root, from an `O_PATH` descriptor of the backing directory.
    pub fn new(root_fd: OwnedFd) -> std::io::Result<Self> {
        let st = sys::fstat(root_fd.as_fd())?;
        let root = Arc::new(Inode {
            ino: ROOT_INO,
            dev: st.st_dev,
            backing_ino: st.st_ino,
            kind: Kind::Dir,
            fd: root_fd,
            nlookup: AtomicU64::new(1),
            reads: ReadLog::default(),
        });
        let mut t = Tables {
            next_synthetic: SYNTHETIC_BASE,
            ..Default::default()
        };
        t.by_ino.insert(ROOT_INO, root.clone());
        t.by_id.insert((st.st_dev, st.st_ino), ROOT_INO);
        Ok(Self {
            root,
            tables: Mutex::new(t),
        })
    }

    /// The root inode.
    pub fn root(&self) -> &Arc<Inode> {
        &self.root
    }

    /// The device of the backing root.
    pub fn root_dev(&self) -> u64 {
        self.root.dev
    }

    /// The live inode with this number.
    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        if ino == ROOT_INO {
            return Some(self.root.clone());
        }
        self.tables.lock().by_ino.get(&ino).cloned()
    }

    /// Register one more kernel reference to the object behind `fd` (whose stat is `st`),
    /// creating its inode if needed. Returns the inode; `fd` is dropped when an inode for the
    /// object already exists.
    pub fn reference(&self, fd: OwnedFd, st: &libc::stat) -> Arc<Inode> {
        let id = (st.st_dev, st.st_ino);
        let mut t = self.tables.lock();
        if let Some(&ino) = t.by_id.get(&id) {
            let existing = t.by_ino.get(&ino).cloned();
            if let Some(existing) = existing {
                let stale = existing.kind != Kind::Dir
                    && sys::fstat(existing.fd())
                        .map(|s| s.st_nlink == 0)
                        .unwrap_or(true);
                if !stale {
                    existing.nlookup.fetch_add(1, Ordering::Relaxed);
                    return existing;
                }
                // A deleted object the kernel still references: keep it under its number,
                // but detach it from the identity so the new object gets its own entry.
                t.by_id.remove(&id);
            }
        }
        let ino = self.pick_number(&mut t, id);
        let inode = Arc::new(Inode {
            ino,
            dev: st.st_dev,
            backing_ino: st.st_ino,
            kind: Kind::from_mode(st.st_mode),
            fd,
            nlookup: AtomicU64::new(1),
            reads: ReadLog::default(),
        });
        t.by_ino.insert(ino, inode.clone());
        t.by_id.insert(id, ino);
        inode
    }

    fn pick_number(&self, t: &mut Tables, id: (u64, u64)) -> u64 {
        if let Some(&n) = t.synthetic.get(&id)
            && !t.by_ino.contains_key(&n)
        {
            return n;
        }
        let (dev, bino) = id;
        let own_ok = dev == self.root.dev
            && bino != ROOT_INO
            && bino != 0
            && bino < SYNTHETIC_BASE
            && !t.by_ino.contains_key(&bino);
        if own_ok {
            return bino;
        }
        let n = t.next_synthetic;
        t.next_synthetic += 1;
        t.synthetic.insert(id, n);
        n
    }

    /// Drop `n` kernel references. Returns true when the inode was removed.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        if ino == ROOT_INO {
            return false;
        }
        let mut t = self.tables.lock();
        let Some(inode) = t.by_ino.get(&ino) else {
            return false;
        };
        let prev = inode.nlookup.load(Ordering::Relaxed);
        let left = prev.saturating_sub(n);
        inode.nlookup.store(left, Ordering::Relaxed);
        if left > 0 {
            return false;
        }
        let inode = t.by_ino.remove(&ino).expect("present");
        let id = (inode.dev, inode.backing_ino);
        if t.by_id.get(&id) == Some(&ino) {
            t.by_id.remove(&id);
        }
        true
    }

    /// Number of live inodes, root included.
    pub fn len(&self) -> usize {
        self.tables.lock().by_ino.len()
    }

    /// True when only the root is live.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn open_path(p: &std::path::Path) -> OwnedFd {
        let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0);
        unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
    }

    #[test]
    fn numbers_are_backing_inodes_and_counts_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let table = InodeTable::new(open_path(dir.path())).unwrap();
        let fd = open_path(&dir.path().join("a"));
        let st = sys::fstat(fd.as_fd()).unwrap();
        let a = table.reference(fd, &st);
        assert_eq!(a.ino, st.st_ino);
        for _ in 0..999 {
            let fd = open_path(&dir.path().join("a"));
            let b = table.reference(fd, &st);
            assert_eq!(b.ino, a.ino);
        }
        assert_eq!(a.lookups(), 1000);
        assert!(!table.forget(a.ino, 999));
        assert!(table.forget(a.ino, 1));
        assert!(table.get(a.ino).is_none());
        assert!(table.is_empty());
        // The same object looked up again gets the same number.
        let fd = open_path(&dir.path().join("a"));
        let again = table.reference(fd, &st);
        assert_eq!(again.ino, st.st_ino);
    }

    #[test]
    fn deleted_object_does_not_capture_a_reused_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        let table = InodeTable::new(open_path(dir.path())).unwrap();
        let fd = open_path(&p);
        let st = sys::fstat(fd.as_fd()).unwrap();
        let old = table.reference(fd, &st);
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"new").unwrap();
        let fd = open_path(&p);
        // Pretend the backing filesystem reused the number (as ext4 may).
        let mut st2 = sys::fstat(fd.as_fd()).unwrap();
        st2.st_ino = st.st_ino;
        let new = table.reference(fd, &st2);
        assert_ne!(new.ino, old.ino);
        assert!(new.ino >= SYNTHETIC_BASE);
        assert!(table.get(old.ino).is_some());
    }
}
