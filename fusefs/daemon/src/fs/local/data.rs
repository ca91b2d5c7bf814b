//! Open files of the passthrough: handles, close-to-open stamps, reads through the data
//! cache and write-through writes.

use super::*;

impl LocalFs {
    pub(super) fn register_file(&self, inode: Arc<Inode>, fd: OwnedFd, flags: i32) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let fd = Arc::new(fd);
        self.files.lock().insert(
            fh,
            Arc::new(OpenFile {
                ino: inode.ino,
                inode,
                source: Arc::new(FileSource::under(fd.clone(), self.root_path.clone())),
                fd,
                flags,
            }),
        );
        fh
    }

    /// Open a file with `flags` (O_CREAT/O_EXCL/O_NOCTTY already handled by the kernel).
    /// O_DIRECT is not passed on: the kernel already bypasses its page cache for the caller,
    /// and the daemon's buffers from FUSE requests are not aligned as O_DIRECT requires.
    pub(super) fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
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
            direct_io: false,
        })
    }

    /// Close-to-open consistency: compare the file's (size, mtime, ctime) with what the
    /// previous open saw. Unchanged: the kernel may keep its cached pages. Changed behind the
    /// mount: every cached block of the file is dropped.
    pub(super) fn check_stamp(&self, ino: u64, st: &libc::stat) -> bool {
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
    pub(super) fn changed_here(&self, ino: u64) {
        self.stamps.lock().remove(&ino);
    }

    /// Read through the data cache.
    pub(super) fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let f = self.file(fh)?;
        f.inode
            .reads
            .record(offset..offset.saturating_add(size as u64));
        self.data.read(
            FileRef {
                ino: f.ino,
                source: &f.source,
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
    /// the written pages (see [`crate::fs::coherence`]): `from_page_cache` is set for writes the
    /// kernel sends from its own dirty pages (mmap writeback), which cannot race that way.
    pub(super) fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        from_page_cache: bool,
    ) -> Result<Written> {
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
    pub(super) fn flush(&self, fh: u64) -> Result<()> {
        let f = self.file(fh)?;
        Ok(sys::flush_fd(f.fd.as_fd())?)
    }

    /// Last close of the handle.
    pub(super) fn release(&self, fh: u64) -> Result<()> {
        self.files
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "release of unknown handle {fh}"))
    }

    /// fsync/fdatasync of an open file.
    pub(super) fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        let f = self.file(fh)?;
        Ok(sys::fsync(f.fd.as_fd(), datasync)?)
    }

    /// Allocate or punch space in an open file.
    pub(super) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let f = self.file(fh)?;
        sys::fallocate(f.fd.as_fd(), mode, offset, length)?;
        self.changed_here(f.ino);
        self.data.invalidate(f.ino, offset, length);
        Ok(())
    }

    /// lseek, with SEEK_DATA and SEEK_HOLE answered by the backing file.
    pub(super) fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        let f = self.file(fh)?;
        Ok(sys::lseek(f.fd.as_fd(), offset, whence)?)
    }

    /// Copy a range between two open files inside the backing filesystem.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
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
        self.file(fh)
    }
}

/// Drop the set-user-ID bit of the file open as `fd`, and its set-group-ID bit if it is
/// group-executable (a set-group-ID bit without group execute marks mandatory locking), as
/// the kernel's `file_remove_privs` does for a writer without `CAP_FSETID`. One `fstat`;
/// a `chmod` only when a bit is set.
pub(super) fn kill_suidgid(fd: BorrowedFd<'_>) -> Result<()> {
    let mode = sys::fstat(fd)?.st_mode & 0o7777;
    let mut kept = mode & !libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        kept &= !libc::S_ISGID;
    }
    if kept != mode {
        sys::chmod_fd(fd, kept)?;
    }
    Ok(())
}
