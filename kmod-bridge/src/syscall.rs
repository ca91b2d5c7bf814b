//! The syscall backend: `readahead(2)`, else `posix_fadvise(WILLNEED)`.
//!
//! Both calls end in one `vfs_fadvise(WILLNEED)`, and the kernel truncates
//! that to `max(bdi io_pages, file ra_pages)` pages without telling anyone
//! (`force_page_cache_ra`): on a virtio disk a 16 MiB request reads 1.25 MiB.
//! Userspace cannot cheaply learn either limit for an arbitrary file (the bdi
//! may be a whole disk, a network filesystem, a btrfs volume), so we issue
//! page-aligned chunks no larger than a floor that always holds: the kernel's
//! default readahead window, 128 KiB (`VM_READAHEAD_PAGES`).  An admin who
//! lowers `read_ahead_kb` below that on a device with a small max I/O size
//! gets partial hints; the kernel module has no such blind spot.
//!
//! `readahead(2)` enforces what the module enforces: the fd must be open for
//! reading (EBADF) and a regular file (EINVAL).  We fstat first anyway, to
//! clamp to EOF (so every backend reports the same byte count), and to map a
//! directory to EISDIR like the module.  `posix_fadvise` is only used when
//! `readahead` is refused wholesale (ENOSYS, or EPERM from a seccomp filter);
//! it checks no access mode, so we check O_WRONLY ourselves.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::kmod::Outcome;

pub(crate) struct SyscallHints {
    /// Bytes per call, a multiple of the page size.
    chunk: u64,
    /// Set for good once `readahead(2)` is refused wholesale.
    use_fadvise: AtomicBool,
}

impl SyscallHints {
    pub(crate) fn new(chunk: u64) -> Self {
        let page = crate::residency::page_size();
        let chunk = chunk.max(page).div_ceil(page) * page;
        Self {
            chunk,
            use_fadvise: AtomicBool::new(false),
        }
    }

    pub(crate) fn uses_fadvise(&self) -> bool {
        self.use_fadvise.load(Ordering::Relaxed)
    }

    pub(crate) fn hint(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<Outcome> {
        let size = regular_file_size(fd)?;
        let mut out = Outcome::default();
        if len == 0 || offset >= size {
            return Ok(out);
        }
        let end = offset.saturating_add(len).min(size);
        let mut pos = offset;
        while pos < end {
            // Chunk boundaries are aligned so no call spans more than
            // `chunk / page` pages, even when `offset` is mid-page.
            let next = ((pos / self.chunk + 1) * self.chunk).min(end);
            self.readahead(fd, pos, next - pos)?;
            out.chunks += 1;
            out.bytes += next - pos;
            pos = next;
        }
        Ok(out)
    }

    fn readahead(&self, fd: BorrowedFd<'_>, pos: u64, len: u64) -> io::Result<()> {
        // Both fit: pos < size <= i64::MAX, len <= chunk.
        let off = pos as libc::off64_t;
        if !self.uses_fadvise() {
            // SAFETY: readahead takes no pointers.
            if unsafe { libc::readahead(fd.as_raw_fd(), off, len as usize) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOSYS) | Some(libc::EPERM) => {
                    tracing::info!(error = %err, "readahead(2) unavailable, using posix_fadvise");
                    self.use_fadvise.store(true, Ordering::Relaxed);
                }
                _ => return Err(err),
            }
        }
        // SAFETY: fcntl(F_GETFL) takes no pointers.
        let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if fl < 0 {
            return Err(io::Error::last_os_error());
        }
        if fl & libc::O_ACCMODE == libc::O_WRONLY {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: posix_fadvise takes no pointers; it returns the error number.
        match unsafe {
            libc::posix_fadvise(
                fd.as_raw_fd(),
                off,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        } {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Size of the regular file behind `fd`; EISDIR / EINVAL otherwise.
fn regular_file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a full `struct stat` into `st` on success.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful fstat above.
    let st = unsafe { st.assume_init() };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(st.st_size.max(0) as u64),
        libc::S_IFDIR => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}
