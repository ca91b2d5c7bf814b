//! Attributes, lookups, xattrs and access checks of the passthrough.

use super::*;

impl LocalFs {
    /// Look up `name` in directory `parent`; the kernel now holds one more reference.
    pub(super) fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let p = self.inode(parent)?;
        self.do_lookup(&p, name)
    }

    /// The kernel dropped `nlookup` references to `ino`. Once nobody holds it, its stamp
    /// goes, and so do its cached blocks: the next lookup may find the file changed behind
    /// the mount with no stamp left to tell (a view's pass, or the kernel's forget under memory
    /// pressure, then a rewrite: the next open would have served the old blocks).
    pub(super) fn forget(&self, ino: u64, nlookup: u64) {
        if self.inodes.forget(ino, nlookup) {
            self.stamps.lock().remove(&ino);
            self.data.invalidate_file(ino);
        }
    }

    /// Attributes of `ino` (through its open handle when given).
    pub(super) fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        if let Some(fh) = fh
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
    pub(super) fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
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
            if set.kill_suidgid && set.mode.is_none() {
                super::data::kill_suidgid(inode.fd())?;
            }
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
    pub(super) fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        Ok(sys::readlink_fd(inode.fd())?)
    }

    /// Statistics of the backing filesystem.
    pub(super) fn statfs(&self) -> Result<StatFs> {
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

    pub(super) fn xattr_target(&self, ino: u64) -> Result<Arc<Inode>> {
        let inode = self.inode(ino)?;
        if matches!(inode.kind, Kind::Symlink | Kind::Special) {
            // The /proc link of a symlink or special file cannot carry the call to the object
            // itself; user xattrs are not allowed there anyway.
            return Err(fs_err!(libc::EPERM, "xattrs on symlinks and special files"));
        }
        Ok(inode)
    }

    /// Get an extended attribute (`size` 0 asks for its size).
    pub(super) fn getxattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
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
    pub(super) fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        let inode = self.xattr_target(ino)?;
        let c = sys::cstr(name)?;
        Ok(sys::setxattr(inode.fd(), &c, value, flags)?)
    }

    /// List extended attribute names (`size` 0 asks for the list's size).
    pub(super) fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply> {
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
    pub(super) fn removexattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        let inode = self.xattr_target(ino)?;
        let c = sys::cstr(name)?;
        Ok(sys::removexattr(inode.fd(), &c)?)
    }

    /// access(2): check `mask` (R_OK/W_OK/X_OK bits, or F_OK) for `caller`.
    pub(super) fn access(&self, ino: u64, mask: i32, caller: Caller) -> Result<()> {
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
}
