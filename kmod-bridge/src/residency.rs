//! Page-cache residency of a file range, measured with `mincore(2)`.
//!
//! `mincore` on a `MAP_SHARED` file mapping reports, for pages that are not
//! mapped into our page tables, whether the page-cache page exists: exactly
//! "would a read of this page hit the cache".  Creating the mapping faults
//! nothing in, so measuring does not disturb what is measured (unlike a read,
//! which would trigger readahead).  `cachestat(2)` (Linux 6.5) gives counts
//! without a mapping, but `mincore` works on every kernel we meet, including
//! the 6.1 guest of the VM test.
//!
//! Used by the tests of this crate and handy for diagnostics; not on any hot
//! path (one mmap + munmap per call).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

/// The system page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Per-page residency of `pages` pages starting at page `first_page` of the
/// file (pages past EOF read as not resident).
pub fn resident_map(fd: BorrowedFd<'_>, first_page: u64, pages: u64) -> io::Result<Vec<bool>> {
    if pages == 0 {
        return Ok(Vec::new());
    }
    let page = page_size();
    let too_big = || io::Error::from_raw_os_error(libc::EOVERFLOW);
    let len =
        usize::try_from(pages.checked_mul(page).ok_or_else(too_big)?).map_err(|_| too_big())?;
    let offset = libc::off_t::try_from(first_page.checked_mul(page).ok_or_else(too_big)?)
        .map_err(|_| too_big())?;
    // SAFETY: a fresh read-only shared mapping chosen by the kernel; it is
    // never dereferenced, only passed to mincore and unmapped below.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; pages as usize];
    // SAFETY: `map` is a live mapping of `len` bytes and `vec` has one byte
    // per page of it.
    let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmapping exactly the mapping created above.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
}

/// How many of `pages` pages starting at page `first_page` are resident.
pub fn resident_pages(fd: BorrowedFd<'_>, first_page: u64, pages: u64) -> io::Result<u64> {
    Ok(resident_map(fd, first_page, pages)?
        .into_iter()
        .filter(|&r| r)
        .count() as u64)
}
