//! What every virtual tree of `.kplug/` shares: the attributes of its nodes (owned by the
//! user who mounted, never cached by the kernel) and a table of its open handles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::error::Result;
use crate::fs::{Attr, Entry, FileKind, SetAttr, TreeIds};
use crate::fs_err;

/// The user and group who own every virtual node (the mounting user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// Attributes of a virtual node.
    pub fn attr(self, ino: u64, kind: FileKind, perm: u16, size: u64, mtime: SystemTime) -> Attr {
        Attr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            kind,
            perm,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
        }
    }
}

/// The entry of a virtual node: virtual attributes change without the kernel knowing, so
/// they are never cached.
pub fn entry(attr: Attr) -> Entry {
    Entry {
        attr,
        ttl: Duration::ZERO,
    }
}

/// The open handles of one virtual tree, numbered in its range.
#[derive(Debug)]
pub struct Handles<H> {
    ids: TreeIds,
    next: AtomicU64,
    open: Mutex<HashMap<u64, H>>,
}

impl<H> Handles<H> {
    /// An empty table for the tree numbered by `ids`.
    pub fn new(ids: TreeIds) -> Self {
        Self {
            ids,
            next: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Register `h`; its handle number.
    pub fn insert(&self, h: H) -> u64 {
        let fh = self.ids.fh(self.next.fetch_add(1, Ordering::Relaxed));
        self.open.lock().insert(fh, h);
        fh
    }

    /// Run `f` on handle `fh` (EBADF when unknown).
    pub fn with<R>(&self, fh: u64, f: impl FnOnce(&mut H) -> Result<R>) -> Result<R> {
        match self.open.lock().get_mut(&fh) {
            Some(h) => f(h),
            None => Err(fs_err!(libc::EBADF, "unknown handle")),
        }
    }

    /// Close handle `fh`.
    pub fn remove(&self, fh: u64) -> Result<H> {
        self.open
            .lock()
            .remove(&fh)
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown handle"))
    }
}

/// Refuse a `chmod` or `chown` of a virtual node (EPERM): they belong to the mounting user.
pub fn keep_owner_and_mode(set: &SetAttr) -> Result<()> {
    if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
        return Err(fs_err!(
            libc::EPERM,
            ".kplug entries keep their owner and mode"
        ));
    }
    Ok(())
}

/// Write `data` at `offset` of `buf`, growing it (zero-filled) as needed; EINVAL past `max`
/// bytes, with `what` saying what the file holds.
pub fn write_at(
    buf: &mut Vec<u8>,
    offset: usize,
    data: &[u8],
    max: usize,
    what: &str,
) -> Result<()> {
    let end = offset.saturating_add(data.len());
    if end > max {
        return Err(fs_err!(libc::EINVAL, "{what}"));
    }
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(data);
    Ok(())
}

/// `[offset, offset + size)` of `data`, clipped to its end.
pub fn slice(data: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = (offset as usize).min(data.len());
    let end = start.saturating_add(size as usize).min(data.len());
    data[start..end].to_vec()
}
