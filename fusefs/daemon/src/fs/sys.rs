//! Thin, safe wrappers over the `*at` system calls the passthrough needs.
//!
//! Every backing object is reached through an `O_PATH` descriptor held by its inode, never
//! through a path string: a rename behind our back cannot make us operate on the wrong file,
//! and no path is ever longer than one component. Calls that refuse `O_PATH` descriptors
//! (chmod, utimes, xattrs, reopen) go through the descriptor's `/proc/self/fd/N` magic link,
//! as libfuse's passthrough_hp does. Each wrapper converts `-1/errno` into `io::Error`.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Convert a syscall's `-1` return into the thread's errno.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A name as a C string; a name with an interior NUL is EINVAL.
pub fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `/proc/self/fd/N` for a descriptor.
pub fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// `openat(dir, name, flags, mode)`.
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reopen an `O_PATH` descriptor with real access flags.
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let path = proc_path(fd);
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`: the stat of the object itself.
/// Where the file open at `fd` is now (`/proc/self/fd`), relative to `root` (absolute,
/// without symlinks): `""` for `root` itself; `None` outside it, removed, or not UTF-8.
pub fn path_under(fd: BorrowedFd<'_>, root: &std::path::Path) -> Option<std::sync::Arc<str>> {
    let at = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    let rel = at.strip_prefix(root).ok()?.to_str()?;
    (!rel.ends_with(" (deleted)")).then(|| std::sync::Arc::from(rel))
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            st.as_mut_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn fstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(unsafe { st.assume_init() })
}

/// `mkdirat`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `mknodat`.
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, rdev: u64) -> io::Result<()> {
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, rdev) })
        .map(drop)
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`, falling back to the `/proc` link when the
/// caller lacks CAP_DAC_READ_SEARCH (which AT_EMPTY_PATH needs).
pub fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let r = cvt(unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    });
    match r {
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EPERM) =>
        {
            let path = proc_path(fd);
            cvt(unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            })
            .map(drop)
        }
        r => r.map(drop),
    }
}

/// `unlinkat(dir, name, flags)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `renameat2` with RENAME_NOREPLACE / RENAME_EXCHANGE flags passed through.
pub fn renameat2(
    olddir: BorrowedFd<'_>,
    old: &CStr,
    newdir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> io::Result<()> {
    cvt(unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            old.as_ptr(),
            newdir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `readlinkat(fd, "")`: the target of the symlink the descriptor refers to.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = cvt_size(unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// `fchmodat` through the `/proc` link (chmod refuses `O_PATH` descriptors).
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = proc_path(fd);
    cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`; `u32::MAX` keeps a field.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Set atime/mtime; `is_symlink` picks `AT_EMPTY_PATH` on the descriptor itself, since the
/// `/proc` link would follow the symlink.
pub fn utimens_fd(
    fd: BorrowedFd<'_>,
    times: &[libc::timespec; 2],
    is_symlink: bool,
) -> io::Result<()> {
    if is_symlink {
        cvt(unsafe {
            libc::utimensat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                times.as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    } else {
        let path = proc_path(fd);
        cvt(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) }).map(drop)
    }
}

/// `truncate` through the `/proc` link.
pub fn truncate_fd(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    let path = proc_path(fd);
    cvt(unsafe { libc::truncate(path.as_ptr(), size as libc::off_t) }).map(drop)
}

/// `ftruncate` on an open descriptor.
pub fn ftruncate(fd: BorrowedFd<'_>, size: u64) -> io::Result<()> {
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) }).map(drop)
}

/// `pread` until `buf` is full or EOF; returns the bytes read.
pub fn pread_full(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let r = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_size(r) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `pwrite` the whole buffer (short writes are retried).
pub fn pwrite_full(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let r = unsafe {
            libc::pwrite(
                fd,
                buf[done..].as_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_size(r) {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if done > 0 => {
                let _ = e;
                return Ok(done);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `fsync` or `fdatasync`.
pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    cvt(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
    .map(drop)
}

/// `close(dup(fd))`: reports the errors a `close()` would (NFS-style backends report
/// deferred write errors there) without closing our own descriptor.
pub fn flush_fd(fd: BorrowedFd<'_>) -> io::Result<()> {
    let dup = cvt(unsafe { libc::dup(fd.as_raw_fd()) })?;
    cvt(unsafe { libc::close(dup) }).map(drop)
}

/// `fallocate`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    cvt(unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })
    .map(drop)
}

/// `lseek` (SEEK_SET/CUR/END/DATA/HOLE).
pub fn lseek(fd: BorrowedFd<'_>, offset: i64, whence: i32) -> io::Result<i64> {
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `copy_file_range` between two open descriptors at explicit offsets.
pub fn copy_file_range(
    fd_in: BorrowedFd<'_>,
    off_in: u64,
    fd_out: BorrowedFd<'_>,
    off_out: u64,
    len: u64,
    flags: u32,
) -> io::Result<usize> {
    let mut oi = off_in as libc::loff_t;
    let mut oo = off_out as libc::loff_t;
    cvt_size(unsafe {
        libc::copy_file_range(
            fd_in.as_raw_fd(),
            &mut oi,
            fd_out.as_raw_fd(),
            &mut oo,
            len as usize,
            flags,
        ) as libc::ssize_t
    })
}

/// `fstatvfs`.
pub fn statvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    Ok(unsafe { st.assume_init() })
}

/// Extended attributes through the `/proc` link. `buf` empty asks for the size.
pub fn getxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_path(fd);
    cvt_size(unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// `setxattr` through the `/proc` link.
pub fn setxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    let path = proc_path(fd);
    cvt(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// `listxattr` through the `/proc` link. `buf` empty asks for the size.
pub fn listxattr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let path = proc_path(fd);
    cvt_size(unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `removexattr` through the `/proc` link.
pub fn removexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let path = proc_path(fd);
    cvt(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) }).map(drop)
}

/// Read every entry of a directory descriptor (except `.` and `..`), as
/// (name, backing inode, d_type).
pub fn read_dir_entries(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, u64, u8)>> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d =
        nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for ent in d.iter() {
        let ent = ent.map_err(io::Error::from)?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let dtype = match ent.file_type() {
            Some(nix::dir::Type::Directory) => libc::DT_DIR,
            Some(nix::dir::Type::File) => libc::DT_REG,
            Some(nix::dir::Type::Symlink) => libc::DT_LNK,
            Some(nix::dir::Type::Fifo) => libc::DT_FIFO,
            Some(nix::dir::Type::Socket) => libc::DT_SOCK,
            Some(nix::dir::Type::CharacterDevice) => libc::DT_CHR,
            Some(nix::dir::Type::BlockDevice) => libc::DT_BLK,
            None => libc::DT_UNKNOWN,
        };
        out.push((name.to_vec(), ent.ino(), dtype));
    }
    Ok(out)
}
