//! Names of an object-store mount: lookups (a HEAD and a one-key listing at once: is the
//! name an object, a prefix, or both), attributes refreshed after the attribute timeout, and
//! the namespace changes the store allows.

use super::*;

impl ObjectFs {
    /// Ask the store what `name` in `parent` is, and record it.
    fn probe(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        let pkey = self.key(parent)?;
        let (object, dir) = self.store.probe(&format!("{pkey}{name}"))?;
        let mut nodes = self.nodes.lock();
        if dir {
            return Ok(Some(
                nodes.upsert(parent, name, NodeKind::Dir, |n| n.local = false),
            ));
        }
        if let Some(info) = object {
            return Ok(Some(nodes.upsert(parent, name, NodeKind::File, |n| {
                n.size = info.size;
                n.etag = info.etag.clone();
                n.mtime = info.mtime;
            })));
        }
        // Neither: a directory made here still exists; anything else is gone.
        if let Some(n) = nodes.child(parent, name)
            && (n.local || n.open > 0)
        {
            return Ok(Some(n.ino));
        }
        nodes.remove_name(parent, name);
        Ok(None)
    }

    /// Look up `name` in `parent`: from the table while its attributes are fresh, else from
    /// the store.
    pub(super) fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let p = self.node(parent)?;
        if p.kind != NodeKind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        if name == "." {
            self.nodes.lock().reference(parent);
            return Ok(self.entry_of(&p));
        }
        if name == ".." {
            let up = self.node(p.parent)?;
            self.nodes.lock().reference(up.ino);
            return Ok(self.entry_of(&up));
        }
        let name = check_name(name)?;
        let fresh = {
            let nodes = self.nodes.lock();
            nodes
                .child(parent, name)
                .filter(|n| n.local || n.open > 0 || n.seen.elapsed() < self.config.attr_ttl)
                .map(|n| n.ino)
        };
        let ino = match fresh {
            Some(i) => i,
            None => self
                .probe(parent, name)?
                .ok_or_else(|| fs_err!(libc::ENOENT, "no {name} in {}", self.describe(parent)))?,
        };
        let mut nodes = self.nodes.lock();
        nodes.reference(ino);
        let n = nodes.get(ino).expect("just referenced");
        Ok(self.entry_of(n))
    }

    /// `s3://bucket/prefix/dir/` of a node, for messages.
    pub(super) fn describe(&self, ino: u64) -> String {
        self.store.describe(&self.key(ino).unwrap_or_default())
    }

    /// Attributes of `ino`; a file's are asked again once older than the attribute timeout.
    pub(super) fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        let n = self.node(ino)?;
        let stale = n.kind == NodeKind::File
            && n.open == 0
            && n.parent != 0
            && n.seen.elapsed() >= self.config.attr_ttl;
        if stale {
            let parent = n.parent;
            if self.probe(parent, &n.name)? != Some(ino) {
                return Err(fs_err!(libc::ESTALE, "{} changed or was deleted", n.name));
            }
            return Ok(self.attr_of(&self.node(ino)?));
        }
        Ok(self.attr_of(&n))
    }

    /// Owner and mode never change; the size only on a file being written (to 0, starting it
    /// anew, or to its length so far); times are the store's, and setting them is accepted
    /// and ignored (so `touch` works).
    pub(super) fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            self.writable()?;
            return Err(unsupported(libc::EPERM, "chmod/chown"));
        }
        if let Some(size) = set.size {
            self.writable()?;
            self.truncate(ino, set.fh, size)?;
        }
        self.getattr(ino, set.fh)
    }

    /// `mkdir`: a directory that lives here until a file is created in it.
    pub(super) fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        self.writable()?;
        let name = check_name(name)?;
        if self.probe(parent, name)?.is_some() {
            return Err(fs_err!(libc::EEXIST, "{name} exists"));
        }
        let mut nodes = self.nodes.lock();
        let ino = nodes.upsert(parent, name, NodeKind::Dir, |n| n.local = true);
        nodes.reference(ino);
        Ok(self.entry_of(nodes.get(ino).expect("just made")))
    }

    /// `unlink`: delete the object.
    pub(super) fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let name = check_name(name)?;
        let ino = self
            .probe(parent, name)?
            .ok_or_else(|| fs_err!(libc::ENOENT, "no {name}"))?;
        let n = self.node(ino)?;
        if n.kind == NodeKind::Dir {
            return Err(fs_err!(libc::EISDIR, "{name} is a directory"));
        }
        // Its upload would bring it back at close: as mountpoint-s3, not while written.
        if self.being_written(ino) {
            return Err(fs_err!(libc::EBUSY, "{name} is being written"));
        }
        self.store.delete(&self.key(ino)?)?;
        self.data.invalidate_file(ino);
        self.nodes.lock().remove_name(parent, name);
        Ok(())
    }

    /// `rmdir`: an empty directory (no key under its prefix).
    pub(super) fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let name = check_name(name)?;
        let ino = self
            .probe(parent, name)?
            .ok_or_else(|| fs_err!(libc::ENOENT, "no {name}"))?;
        let n = self.node(ino)?;
        if n.kind != NodeKind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "{name} is not a directory"));
        }
        let key = self.key(ino)?;
        let listing = self.store.list(&key)?;
        if !listing.dirs.is_empty()
            || !listing.files.is_empty()
            || !self.nodes.lock().local_dirs(ino).is_empty()
        {
            return Err(fs_err!(libc::ENOTEMPTY, "{name} is not empty"));
        }
        // A `dir/` marker object (made by other tools) goes with the directory.
        if self.store.head(&key)?.is_some() {
            self.store.delete(&key)?;
        }
        self.nodes.lock().remove_name(parent, name);
        Ok(())
    }

    /// `rename`: a file is copied on the server, then its old key deleted (not atomic: a
    /// crash between the two leaves both); a directory made here and still empty is renamed
    /// here; any other directory is refused with EXDEV, so `mv` copies it.
    pub(super) fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        self.writable()?;
        let (name, newname) = (check_name(name)?, check_name(newname)?);
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(unsupported(libc::EINVAL, "rename with RENAME_EXCHANGE"));
        }
        let ino = self
            .probe(parent, name)?
            .ok_or_else(|| fs_err!(libc::ENOENT, "no {name}"))?;
        let n = self.node(ino)?;
        let target = self.probe(newparent, newname)?;
        if target == Some(ino) {
            return Ok(());
        }
        if let Some(t) = target {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(fs_err!(libc::EEXIST, "{newname} exists"));
            }
            let t = self.node(t)?;
            match (n.kind, t.kind) {
                (NodeKind::File, NodeKind::Dir) => {
                    return Err(fs_err!(libc::EISDIR, "{newname} is a directory"));
                }
                (NodeKind::Dir, NodeKind::File) => {
                    return Err(fs_err!(libc::ENOTDIR, "{newname} is not a directory"));
                }
                _ => {}
            }
        }
        if n.kind == NodeKind::Dir {
            let empty_local = n.local && self.store.list(&self.key(ino)?)?.files.is_empty();
            if !empty_local || target.is_some() {
                return Err(FsError::new(
                    libc::EXDEV,
                    format!("{name}: directories of an object store are not renamed"),
                ));
            }
            self.nodes.lock().rename(ino, newparent, newname);
            return Ok(());
        }
        if self.being_written(ino) {
            return Err(fs_err!(libc::EBUSY, "{name} is being written"));
        }
        let from = self.key(ino)?;
        let to = format!("{}{newname}", self.key(newparent)?);
        self.store.copy(&from, &to)?;
        self.store.delete(&from)?;
        if let Some(t) = target {
            self.data.invalidate_file(t);
        }
        // The copy is a new version (its own ETag): take its attributes.
        let info = self.store.head(&to)?;
        let mut nodes = self.nodes.lock();
        nodes.rename(ino, newparent, newname);
        if let (Some(info), Some(n)) = (info, nodes.get_mut(ino)) {
            n.size = info.size;
            n.etag = info.etag;
            n.mtime = info.mtime;
        }
        Ok(())
    }

    /// Whether a handle is writing a new version of `ino`.
    fn being_written(&self, ino: u64) -> bool {
        self.files
            .lock()
            .values()
            .any(|f| f.ino == ino && f.writing())
    }
}
