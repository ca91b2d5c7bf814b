//! Namespace changes of the passthrough: create, link, rename, remove; new objects are
//! given to their creator.

use super::*;

impl LocalFs {
    /// Give a new object to its creator (see the module note on permissions).
    pub(super) fn give_to_caller(
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

    pub(super) fn new_entry(
        &self,
        parent: &Inode,
        name: &OsStr,
        caller: Caller,
        mode: u32,
    ) -> Result<Entry> {
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
    pub(super) fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Entry> {
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let mode = mode & !(umask & 0o777);
        sys::mknodat(p.fd(), &c, mode, rdev as u64)?;
        self.new_entry(&p, name, caller, mode)
    }

    /// Create a directory.
    pub(super) fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<Entry> {
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let mode = mode & 0o7777 & !(umask & 0o777);
        sys::mkdirat(p.fd(), &c, mode)?;
        self.new_entry(&p, name, caller, libc::S_IFDIR | mode)
    }

    /// Create a symbolic link `name` -> `target`.
    pub(super) fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Entry> {
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        let t = sys::cstr(target.as_os_str())?;
        sys::symlinkat(&t, p.fd(), &c)?;
        self.new_entry(&p, name, caller, libc::S_IFLNK | 0o777)
    }

    /// Create a hard link to `ino` named `name` in `newparent`.
    pub(super) fn link(&self, ino: u64, newparent: u64, name: &OsStr) -> Result<Entry> {
        let inode = self.inode(ino)?;
        let p = self.inode(newparent)?;
        let c = sys::cstr(name)?;
        sys::link_fd(inode.fd(), p.fd(), &c)?;
        self.do_lookup(&p, name)
    }

    /// Remove a file.
    pub(super) fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
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

    pub(super) fn invalidate_backing(&self, dev: u64, bino: u64) {
        if dev == self.inodes.root_dev() {
            self.data.invalidate_file(bino);
        }
    }

    /// Remove an empty directory.
    pub(super) fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let p = self.inode(parent)?;
        let c = sys::cstr(name)?;
        Ok(sys::unlinkat(p.fd(), &c, libc::AT_REMOVEDIR)?)
    }

    /// Rename, with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` flags passed to the backing fs.
    pub(super) fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
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

    /// Create and open a file.
    pub(super) fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Entry, u64)> {
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
}
