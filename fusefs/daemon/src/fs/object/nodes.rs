//! The inode table of an object-store mount: what the kernel knows of the bucket's names.
//!
//! A node is a directory (a key prefix, `a/b/`; `local` while it exists only because it was
//! `mkdir`ed here and no object is under it yet, or its last object was removed through the
//! mount) or a file (an object key, `a/b/c`, with the size, ETag and time of the version
//! last seen; a version seen in the store is one inode, see [`Nodes::upsert_object`]).
//! Inode numbers are handed out in order and never reused during a mount; a node lives while the kernel holds a reference to it
//! (lookup counts, as FUSE defines them) or while it is open, and is found again by
//! (parent, name). Each node remembers when its attributes were last confirmed by the store
//! (`seen`), so they are asked again once older than the attribute timeout, unless a new
//! version is being written through the mount (`writing`: the store does not have it yet).
//! Being open does not keep a node from the store's answers: a name deleted or replaced
//! behind the mount is seen as such once the timeout has passed, open or not.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use kplug_store::ObjectInfo;

/// Inode number of the mount's root (the prefix).
pub const ROOT: u64 = 1;

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An object.
    File,
    /// A key prefix.
    Dir,
}

/// One name of the mount.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its inode number.
    pub ino: u64,
    /// Its directory's inode number (the root is its own parent).
    pub parent: u64,
    /// Its name in that directory.
    pub name: String,
    /// File or directory.
    pub kind: NodeKind,
    /// Size in bytes (files).
    pub size: u64,
    /// The version last seen (files).
    pub etag: Option<String>,
    /// Last modification (files; directories show the mount's start).
    pub mtime: SystemTime,
    /// When the store last confirmed the attributes.
    pub seen: Instant,
    /// A directory made here that the store does not know yet.
    pub local: bool,
    /// The version whose blocks the data cache holds (files).
    pub cached_etag: Option<String>,
    /// References the kernel holds.
    pub lookups: u64,
    /// Open handles.
    pub open: u32,
    /// Handles writing a new version of it that is not in the store yet (files).
    pub writing: u32,
}

/// The table.
#[derive(Debug)]
pub struct Nodes {
    by_ino: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next: u64,
}

impl Nodes {
    /// A table holding the root.
    pub fn new(started: SystemTime) -> Self {
        let root = Node {
            ino: ROOT,
            parent: ROOT,
            name: String::new(),
            kind: NodeKind::Dir,
            size: 0,
            etag: None,
            mtime: started,
            seen: Instant::now(),
            local: false,
            cached_etag: None,
            lookups: 1,
            open: 0,
            writing: 0,
        };
        Nodes {
            by_ino: HashMap::from([(ROOT, root)]),
            by_name: HashMap::new(),
            next: ROOT + 1,
        }
    }

    /// The node `ino`.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.by_ino.get(&ino)
    }

    /// The node `ino`, to change.
    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        self.by_ino.get_mut(&ino)
    }

    /// The node named `name` in `parent`.
    pub fn child(&self, parent: u64, name: &str) -> Option<&Node> {
        self.by_name
            .get(&(parent, name.to_string()))
            .and_then(|i| self.by_ino.get(i))
    }

    /// The key of `ino` relative to the mount's root: `a/b` for a file, `a/b/` for a
    /// directory, `` for the root.
    pub fn key(&self, ino: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut n = self.by_ino.get(&ino)?;
        let kind = n.kind;
        while n.ino != ROOT {
            parts.push(n.name.as_str());
            n = self.by_ino.get(&n.parent)?;
        }
        parts.reverse();
        let mut key = parts.join("/");
        if kind == NodeKind::Dir && !key.is_empty() {
            key.push('/');
        }
        Some(key)
    }

    /// Put `name` in `parent` as `kind` (replacing what was there under that name, which keeps
    /// its inode only if it has the same kind), with attributes set by `update`. Returns its
    /// inode number.
    pub fn upsert(
        &mut self,
        parent: u64,
        name: &str,
        kind: NodeKind,
        update: impl FnOnce(&mut Node),
    ) -> u64 {
        let key = (parent, name.to_string());
        let existing = self
            .by_name
            .get(&key)
            .copied()
            .filter(|i| self.by_ino.get(i).is_some_and(|n| n.kind == kind));
        let ino = match existing {
            Some(i) => i,
            None => {
                let ino = self.next;
                self.next += 1;
                if let Some(old) = self.by_name.insert(key, ino) {
                    self.detach(old);
                }
                self.by_ino.insert(
                    ino,
                    Node {
                        ino,
                        parent,
                        name: name.to_string(),
                        kind,
                        size: 0,
                        etag: None,
                        mtime: SystemTime::UNIX_EPOCH,
                        seen: Instant::now(),
                        local: false,
                        cached_etag: None,
                        lookups: 0,
                        open: 0,
                        writing: 0,
                    },
                );
                ino
            }
        };
        let n = self.by_ino.get_mut(&ino).expect("just found or made");
        update(n);
        n.seen = Instant::now();
        ino
    }

    /// Record the object `name` in `parent` as the store shows it (`info`); returns its
    /// inode. The same version (ETag) keeps its inode; another version is another inode, as
    /// a file replaced by a rename is on a local filesystem: the kernel keeps one page cache
    /// per inode, so descriptors of the old version never read the new one's pages (nor the
    /// data cache its blocks), and the old node lives on while they hold it. A file being
    /// written through the mount is left as the mount has it.
    pub fn upsert_object(&mut self, parent: u64, name: &str, info: &ObjectInfo) -> u64 {
        if let Some(n) = self.child(parent, name)
            && n.kind == NodeKind::File
        {
            if n.writing > 0 {
                return n.ino;
            }
            if n.etag.is_some() && info.etag.is_some() && n.etag != info.etag {
                self.remove_name(parent, name);
            }
        }
        self.upsert(parent, name, NodeKind::File, |n| {
            n.size = info.size;
            n.etag = info.etag.clone();
            n.mtime = info.mtime;
        })
    }

    /// `name` in `parent` no longer exists: forget the name (the node itself lives on while
    /// the kernel or a handle holds it).
    pub fn remove_name(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.by_name.remove(&(parent, name.to_string()))?;
        self.detach(ino);
        Some(ino)
    }

    /// A node lost its name: drop it unless referenced.
    fn detach(&mut self, ino: u64) {
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.parent = 0;
            if n.lookups == 0 && n.open == 0 {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// Move `ino` to `name` in `parent`.
    pub fn rename(&mut self, ino: u64, parent: u64, name: &str) {
        if let Some(n) = self.by_ino.get(&ino) {
            self.by_name.remove(&(n.parent, n.name.clone()));
        }
        if let Some(old) = self.by_name.insert((parent, name.to_string()), ino)
            && old != ino
        {
            self.detach(old);
        }
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.parent = parent;
            n.name = name.to_string();
        }
    }

    /// The kernel took one more reference.
    pub fn reference(&mut self, ino: u64) {
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.lookups += 1;
        }
    }

    /// Take back a reference counted for an entry the kernel did not take (a readdirplus
    /// reply that was full): the node stays as it was before, whatever its count.
    pub fn unreference(&mut self, ino: u64) {
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.lookups = n.lookups.saturating_sub(1);
        }
    }

    /// Keep `dir` and the directories above it through the mount even when the store has
    /// no key under them (their last object was just removed or moved through the mount: a
    /// directory does not vanish because it became empty).
    pub fn keep_dirs(&mut self, dir: u64) {
        let mut ino = dir;
        while ino != ROOT {
            let Some(n) = self.by_ino.get_mut(&ino) else {
                return;
            };
            if n.parent == 0 {
                return;
            }
            n.local = true;
            ino = n.parent;
        }
    }

    /// The kernel dropped `count` references; a node no one holds and that lost its name is
    /// dropped; one that still has its name is kept only while open.
    pub fn forget(&mut self, ino: u64, count: u64) {
        if ino == ROOT {
            return;
        }
        let Some(n) = self.by_ino.get_mut(&ino) else {
            return;
        };
        n.lookups = n.lookups.saturating_sub(count);
        if n.lookups == 0 && n.open == 0 {
            self.release(ino);
        }
    }

    /// A node neither the kernel nor a handle holds: drop it and its name.
    fn release(&mut self, ino: u64) {
        if let Some(n) = self.by_ino.remove(&ino)
            && self.by_name.get(&(n.parent, n.name.clone())) == Some(&ino)
        {
            self.by_name.remove(&(n.parent, n.name));
        }
    }

    /// A handle was opened on `ino` (`delta` 1) or closed (`-1`).
    pub fn opened(&mut self, ino: u64, delta: i32) {
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.open = n.open.saturating_add_signed(delta);
            if n.open == 0 && n.lookups == 0 && ino != ROOT {
                self.release(ino);
            }
        }
    }

    /// Directories made here, directly in `parent`, that the store does not know yet.
    pub fn local_dirs(&self, parent: u64) -> Vec<String> {
        self.by_ino
            .values()
            .filter(|n| n.parent == parent && n.local && n.ino != ROOT)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Files directly in `parent` being written through the mount: name and inode.
    pub fn writing_files(&self, parent: u64) -> Vec<(String, u64)> {
        self.by_ino
            .values()
            .filter(|n| n.parent == parent && n.writing > 0 && n.kind == NodeKind::File)
            .map(|n| (n.name.clone(), n.ino))
            .collect()
    }

    /// Nodes in the table, the root included (for tests).
    pub fn count(&self) -> usize {
        self.by_ino.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_names_and_lifetimes() {
        let mut t = Nodes::new(SystemTime::UNIX_EPOCH);
        let a = t.upsert(ROOT, "a", NodeKind::Dir, |_| {});
        let f = t.upsert(a, "f", NodeKind::File, |n| n.size = 3);
        assert_eq!(t.key(ROOT).unwrap(), "");
        assert_eq!(t.key(a).unwrap(), "a/");
        assert_eq!(t.key(f).unwrap(), "a/f");
        assert_eq!(t.child(a, "f").unwrap().size, 3);
        // Same name, same kind: same inode; another kind: a new one.
        assert_eq!(t.upsert(a, "f", NodeKind::File, |n| n.size = 4), f);
        t.reference(f);
        let d = t.upsert(a, "f", NodeKind::Dir, |_| {});
        assert_ne!(d, f);
        assert!(t.get(f).is_some(), "still referenced by the kernel");
        t.forget(f, 1);
        assert!(t.get(f).is_none());
        // An open node outlives its name and its lookups.
        t.reference(d);
        t.opened(d, 1);
        t.remove_name(a, "f");
        t.forget(d, 1);
        assert!(t.get(d).is_some());
        t.opened(d, -1);
        assert!(t.get(d).is_none());
        // Rename moves the name.
        let g = t.upsert(ROOT, "g", NodeKind::File, |_| {});
        t.rename(g, a, "h");
        assert_eq!(t.key(g).unwrap(), "a/h");
        assert!(t.child(ROOT, "g").is_none());
    }

    fn info(etag: &str, size: u64) -> ObjectInfo {
        ObjectInfo {
            size,
            etag: Some(etag.into()),
            mtime: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_new_version_is_a_new_inode_and_the_old_one_lives_while_held() {
        let mut t = Nodes::new(SystemTime::UNIX_EPOCH);
        let v1 = t.upsert_object(ROOT, "f", &info("e1", 1));
        assert_eq!(t.upsert_object(ROOT, "f", &info("e1", 1)), v1);
        t.opened(v1, 1);
        let v2 = t.upsert_object(ROOT, "f", &info("e2", 2));
        assert_ne!(v1, v2);
        assert_eq!(t.child(ROOT, "f").unwrap().ino, v2);
        assert_eq!(
            t.get(v1).unwrap().size,
            1,
            "the open old version keeps its attributes"
        );
        t.opened(v1, -1);
        assert!(t.get(v1).is_none());
        // A file being written keeps what the mount has.
        t.get_mut(v2).unwrap().writing = 1;
        assert_eq!(t.upsert_object(ROOT, "f", &info("e3", 3)), v2);
        assert_eq!(t.get(v2).unwrap().size, 2);
    }

    #[test]
    fn unreference_keeps_the_node_and_keep_dirs_marks_the_chain() {
        let mut t = Nodes::new(SystemTime::UNIX_EPOCH);
        let a = t.upsert(ROOT, "a", NodeKind::Dir, |_| {});
        let b = t.upsert(a, "b", NodeKind::Dir, |_| {});
        let f = t.upsert(b, "f", NodeKind::File, |_| {});
        t.reference(f);
        t.unreference(f);
        assert!(
            t.get(f).is_some(),
            "a listed node stays for the next readdirplus"
        );
        t.keep_dirs(b);
        assert!(t.get(a).unwrap().local && t.get(b).unwrap().local);
        assert_eq!(t.local_dirs(a), vec!["b".to_string()]);
    }
}
