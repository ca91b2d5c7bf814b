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
            return Ok(Some(nodes.upsert_object(parent, name, &info)));
        }
        // Neither: a directory made (or kept) here still exists, and so does a file being
        // written here; anything else is gone (an open handle keeps its node, not its name).
        if let Some(n) = nodes.child(parent, name)
            && (n.local || n.writing > 0)
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
                .filter(|n| n.local || n.writing > 0 || n.seen.elapsed() < self.config.attr_ttl)
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

    /// Attributes of `ino`; a file's are asked again once older than the attribute timeout
    /// (an open file whose object is gone keeps the attributes it had).
    pub(super) fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        let n = self.node(ino)?;
        let stale = n.kind == NodeKind::File
            && n.writing == 0
            && n.parent != 0
            && n.seen.elapsed() >= self.config.attr_ttl;
        if stale {
            let parent = n.parent;
            if self.probe(parent, &n.name)? != Some(ino) {
                if n.open > 0 {
                    return Ok(self.attr_of(&self.node(ino)?));
                }
                return Err(fs_err!(libc::ESTALE, "{} changed or was deleted", n.name));
            }
            return Ok(self.attr_of(&self.node(ino)?));
        }
        Ok(self.attr_of(&n))
    }

    /// Owner and mode never change (setting them to what they are is accepted: `mv` and
    /// `cp -p` do); the size only on a file being written (to 0, starting it anew, or to its
    /// length so far); times are the store's, and setting them is accepted and ignored (so
    /// `touch` works).
    pub(super) fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        let perm = match self.node(ino)?.kind {
            NodeKind::File => self.config.file_mode,
            NodeKind::Dir => self.config.dir_mode,
        };
        let changes = set.mode.is_some_and(|m| m & 0o7777 != u32::from(perm))
            || set.uid.is_some_and(|u| u != self.config.uid)
            || set.gid.is_some_and(|g| g != self.config.gid);
        if changes {
            return Err(unsupported(libc::EPERM, "chmod/chown"));
        }
        if let Some(size) = set.size {
            self.truncate(ino, set.fh, size)?;
        }
        self.getattr(ino, set.fh)
    }

    /// `mkdir`: a directory that lives here until a file is created in it.
    pub(super) fn mkdir(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let name = check_name(name)?;
        if self.probe(parent, name)?.is_some() {
            return Err(fs_err!(libc::EEXIST, "{name} exists"));
        }
        let mut nodes = self.nodes.lock();
        let ino = nodes.upsert(parent, name, NodeKind::Dir, |n| n.local = true);
        nodes.reference(ino);
        Ok(self.entry_of(nodes.get(ino).expect("just made")))
    }

    /// `unlink`: delete the object; a file being written is refused (EBUSY).
    pub(super) fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let name = check_name(name)?;
        let ino = self
            .probe(parent, name)?
            .ok_or_else(|| fs_err!(libc::ENOENT, "no {name}"))?;
        let n = self.node(ino)?;
        if n.kind == NodeKind::Dir {
            return Err(fs_err!(libc::EISDIR, "{name} is a directory"));
        }
        // Its upload would bring it back at close, or vanish without a word: as mountpoint-s3,
        // a file is not removed while written (`docs/object-store.md`).
        if n.writing > 0 {
            return Err(unsupported(
                libc::EBUSY,
                &format!("removing {name} while it is written"),
            ));
        }
        self.store.delete(&self.key(ino)?)?;
        self.data.invalidate_file(ino);
        let mut nodes = self.nodes.lock();
        nodes.remove_name(parent, name);
        nodes.keep_dirs(parent);
        Ok(())
    }

    /// `rmdir`: an empty directory (no key under its prefix).
    pub(super) fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
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
            || !self.nodes.lock().writing_files(ino).is_empty()
        {
            return Err(fs_err!(libc::ENOTEMPTY, "{name} is not empty"));
        }
        // A `dir/` marker object (made by other tools) would keep the directory, and the
        // client cannot name a key ending in `/` (it would delete the object `dir`).
        if listing.marker {
            return Err(unsupported(
                libc::EPERM,
                &format!("removing {name}, kept by its marker object {key:?}"),
            ));
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
            if t.writing > 0 {
                return Err(unsupported(
                    libc::EBUSY,
                    &format!("renaming onto {newname} while it is written"),
                ));
            }
        }
        if n.kind == NodeKind::Dir {
            let empty_local = n.local && self.store.list(&self.key(ino)?)?.files.is_empty();
            if !empty_local || target.is_some() {
                return Err(unsupported(
                    libc::EXDEV,
                    &format!("renaming directory {name} (mv copies it)"),
                ));
            }
            self.nodes.lock().rename(ino, newparent, newname);
            return Ok(());
        }
        if n.writing > 0 {
            return Err(unsupported(
                libc::EBUSY,
                &format!("renaming {name} while it is written"),
            ));
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
        nodes.keep_dirs(parent);
        if let (Some(info), Some(n)) = (info, nodes.get_mut(ino)) {
            n.size = info.size;
            n.etag = info.etag;
            n.mtime = info.mtime;
        }
        Ok(())
    }
}
