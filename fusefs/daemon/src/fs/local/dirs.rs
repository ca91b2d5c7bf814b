//! Directory handles and listings of the passthrough (snapshots, so offsets stay valid).

use super::*;

impl LocalFs {
    /// Open a directory for listing.
    pub(super) fn opendir(&self, ino: u64) -> Result<u64> {
        let inode = self.inode(ino)?;
        if inode.kind != Kind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "opendir of a non-directory"));
        }
        let fd = sys::reopen(inode.fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
        let entries = self.snapshot(fd.as_fd())?;
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

    pub(super) fn snapshot(&self, fd: BorrowedFd<'_>) -> Result<Vec<DirEnt>> {
        let mut v: Vec<DirEnt> = sys::read_dir_entries(fd)?
            .into_iter()
            .map(|(name, backing_ino, t)| DirEnt {
                name,
                backing_ino,
                kind: FileKind::from_dtype(t),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    pub(super) fn entries_from(&self, d: &OpenDir, offset: u64) -> Result<Arc<Vec<DirEnt>>> {
        let mut guard = d.entries.lock();
        if offset == 0 {
            *guard = Arc::new(self.snapshot(d.fd.as_fd())?);
        }
        Ok(guard.clone())
    }

    /// List a directory from `offset` (0 = start). Offsets 1 and 2 are `.` and `..`;
    /// entry i of the snapshot has offset i + 3.
    pub(super) fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> Result<()> {
        let d = self.dir(fh)?;
        debug_assert_eq!(d.ino, ino);
        let entries = self.entries_from(&d, offset)?;
        let listing = entries.iter().map(|e| {
            let kind = e.kind.unwrap_or(FileKind::File);
            (e.backing_ino, kind, OsStr::from_bytes(&e.name))
        });
        list_dir(sink, offset, ino, ROOT_INO, listing);
        Ok(())
    }

    /// List a directory with attributes; every entry but `.` and `..` counts as a lookup.
    pub(super) fn readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let d = self.dir(fh)?;
        let entries = self.entries_from(&d, offset)?;
        let dir = self.inode(ino)?;
        let dst = sys::fstat(dir.fd())?;
        let dot = Entry {
            attr: Attr::from_stat(ino, &dst),
            ttl: Duration::ZERO,
        };
        list_dir_plus(
            sink,
            offset,
            &dot,
            entries.iter(),
            |e| OsStr::from_bytes(&e.name),
            |e| match self.do_lookup(&dir, OsStr::from_bytes(&e.name)) {
                Ok(entry) => Ok(Some(entry)),
                // Removed since the snapshot: skip it, as getdents would not have shown it.
                Err(err) if err.errno() == libc::ENOENT => Ok(None),
                Err(err) => Err(err),
            },
            // Not taken: undo the lookup the kernel will never know about.
            |entry| self.forget(entry.attr.ino, 1),
        )?;
        Ok(())
    }

    /// Close a directory handle.
    pub(super) fn releasedir(&self, fh: u64) -> Result<()> {
        self.dirs
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "releasedir of unknown handle {fh}"))
    }

    /// fsync of a directory handle.
    pub(super) fn fsyncdir(&self, fh: u64, datasync: bool) -> Result<()> {
        let d = self.dir(fh)?;
        Ok(sys::fsync(d.fd.as_fd(), datasync)?)
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
