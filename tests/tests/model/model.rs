//! The reference model: a namespace of paths over in-memory byte vectors that encodes the
//! Linux rules ([`Model`]), and the plugin state of the mount ([`Plugins`]). It resolves each
//! generated op into a [`Step`] against its current state and applies steps as a [`Side`].

use std::collections::BTreeMap;

use kplugfs_tests::Hostile;

use crate::ops::{Data, Ix, MAX_HANDLES, MODULES, NAMES, Op, PAGE, Target, VALID_PLUGINS, ballast};
use crate::step::{Outcome, Reply, Side, Step};

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

/// The reference: a namespace of paths (relative to the case directory, which is `""` and
/// not an entry) and the contents of every file ever created, by model inode number. Files
/// are never forgotten, so the watching descriptors of unlinked files can still be checked.
#[derive(Debug, Default)]
pub(crate) struct Model {
    entries: BTreeMap<String, Node>,
    pub(crate) files: BTreeMap<u64, Vec<u8>>,
    pub(crate) handles: Vec<u64>,
    next_ino: u64,
    pub(crate) plugins: Plugins,
}

/// The plugin side of the model: the files in `.kplug/plugins/` and the one serving
/// eviction (`None`: the built-in LRU).
#[derive(Debug, Default)]
pub(crate) struct Plugins {
    pub(crate) files: BTreeMap<String, Option<Hostile>>,
    pub(crate) active: Option<String>,
}

fn write_at(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset as usize..end].copy_from_slice(data);
}

fn read_at(buf: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let start = (offset as usize).min(buf.len());
    let end = (offset as usize + len).min(buf.len());
    buf[start..end].to_vec()
}

impl Model {
    pub(crate) fn dirs(&self) -> Vec<String> {
        let mut v = vec![String::new()];
        v.extend(
            self.entries
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }

    pub(crate) fn file_paths(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn has_children(&self, dir: &str) -> bool {
        self.entries.keys().any(|p| is_under(p, dir))
    }

    pub(crate) fn children(&self, dir: &str) -> BTreeMap<String, bool> {
        self.entries
            .iter()
            .filter(|(p, _)| {
                if dir.is_empty() {
                    !p.contains('/')
                } else {
                    is_under(p, dir) && !p[dir.len() + 1..].contains('/')
                }
            })
            .map(|(p, n)| (p.rsplit('/').next().unwrap().to_string(), *n == Node::Dir))
            .collect()
    }

    pub(crate) fn nlink(&self, ino: u64) -> u64 {
        self.entries
            .values()
            .filter(|n| **n == Node::File(ino))
            .count() as u64
    }

    pub(crate) fn ino_of(&self, path: &str) -> Option<u64> {
        match self.entries.get(path) {
            Some(Node::File(i)) => Some(*i),
            _ => None,
        }
    }

    fn file_mut(&mut self, path: &str) -> &mut Vec<u8> {
        let ino = self.ino_of(path).expect("resolved to a file");
        self.files.get_mut(&ino).unwrap()
    }

    /// Turn a generated op into a concrete step, or `None` when the state it needs is absent.
    pub(crate) fn resolve(&self, op: &Op) -> Option<Step> {
        let dirs = self.dirs();
        let files = self.file_paths();
        let entries: Vec<&String> = self.entries.keys().collect();
        let file = |i: &Ix| (!files.is_empty()).then(|| files[i.index(files.len())].clone());
        let entry = |i: &Ix| (!entries.is_empty()).then(|| entries[i.index(entries.len())].clone());
        let fresh = |p: &Ix, n: &Ix| join(&dirs[p.index(dirs.len())], NAMES[n.index(NAMES.len())]);
        let handle = |i: &Ix| (!self.handles.is_empty()).then(|| i.index(self.handles.len()));
        let target = |t: &Target| match t {
            Target::Existing(i) => entry(i),
            Target::Fresh { parent, name } => Some(fresh(parent, name)),
        };
        Some(match op {
            Op::Create { parent, name, excl } => Step::Create {
                path: fresh(parent, name),
                excl: *excl,
            },
            Op::Mkdir { parent, name } => Step::Mkdir {
                path: fresh(parent, name),
            },
            Op::Write {
                file: f,
                offset,
                data,
            } => Step::Write {
                path: file(f)?,
                offset: *offset,
                data: *data,
            },
            Op::Append { file: f, data } => Step::Append {
                path: file(f)?,
                data: *data,
            },
            Op::Read {
                file: f,
                offset,
                len,
            } => Step::Read {
                path: file(f)?,
                offset: *offset,
                len: *len,
            },
            Op::Truncate { file: f, len } => Step::Truncate {
                path: file(f)?,
                len: *len,
            },
            Op::Rename { src, dst } => Step::Rename {
                from: entry(src)?,
                to: target(dst)?,
            },
            Op::Link { src, dst } => Step::Link {
                from: entry(src)?,
                to: target(dst)?,
            },
            Op::Remove { entry: e } => {
                let path = entry(e)?;
                if self.entries[&path] == Node::Dir {
                    Step::Rmdir { path }
                } else {
                    Step::Unlink { path }
                }
            }
            Op::MmapWrite {
                file: f,
                offset,
                data,
            } => {
                // The mapping covers the file as it is: clamp the write into it.
                let path = file(f)?;
                let size = self.files[&self.ino_of(&path)?].len() as u64;
                if size == 0 {
                    return None;
                }
                let offset = offset % size;
                let len = data.len.min((size - offset) as usize);
                Step::MmapWrite {
                    path,
                    offset,
                    data: Data {
                        seed: data.seed,
                        len,
                    },
                }
            }
            Op::DirectWrite {
                file: f,
                page,
                pages,
                seed,
            } => Step::DirectWrite {
                path: file(f)?,
                offset: page * PAGE,
                data: Data {
                    seed: *seed,
                    len: pages * PAGE as usize,
                },
            },
            Op::DirectRead {
                file: f,
                page,
                pages,
            } => Step::DirectRead {
                path: file(f)?,
                offset: page * PAGE,
                len: pages * PAGE as usize,
            },
            Op::Open { file: f } => {
                if self.handles.len() >= MAX_HANDLES {
                    return None;
                }
                Step::Open { path: file(f)? }
            }
            Op::Close { handle: h } => Step::Close { handle: handle(h)? },
            Op::HandleRead {
                handle: h,
                offset,
                len,
            } => Step::HandleRead {
                handle: handle(h)?,
                offset: *offset,
                len: *len,
            },
            Op::HandleWrite {
                handle: h,
                offset,
                data,
            } => Step::HandleWrite {
                handle: handle(h)?,
                offset: *offset,
                data: *data,
            },
            Op::HandleTruncate { handle: h, len } => Step::HandleTruncate {
                handle: handle(h)?,
                len: *len,
            },
            Op::Fsync {
                handle: h,
                data_only,
            } => Step::Fsync {
                handle: handle(h)?,
                data_only: *data_only,
            },
            Op::SwapPlugin { name, module } => Step::SwapPlugin {
                file: VALID_PLUGINS[name.index(VALID_PLUGINS.len())].to_string(),
                module: MODULES[module.index(MODULES.len())],
            },
            Op::DropFaulty { kind } => {
                let kind = Hostile::ALL[kind.index(Hostile::ALL.len())];
                Step::DropFaulty {
                    file: kind.file_name().to_string(),
                    kind,
                }
            }
            Op::RemovePlugin { plugin } => {
                let names: Vec<&String> = self.plugins.files.keys().collect();
                if names.is_empty() {
                    return None;
                }
                Step::RemovePlugin {
                    file: names[plugin.index(names.len())].clone(),
                }
            }
            Op::Churn => Step::Churn,
            Op::Put {
                parent,
                name,
                excl,
                data,
            } => Step::Put {
                path: fresh(parent, name),
                excl: *excl,
                data: *data,
            },
            Op::RenameFile { src, dst } => Step::Rename {
                from: file(src)?,
                to: target(dst)?,
            },
        })
    }

    fn new_file(&mut self, path: &str) {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.files.insert(ino, Vec::new());
        self.entries.insert(path.to_string(), Node::File(ino));
    }

    /// Linux `rename(2)` without flags, in the order the VFS checks.
    fn rename(&mut self, from: &str, to: &str) -> Outcome {
        let src = *self.entries.get(from).ok_or(libc::ENOENT)?;
        if from == to {
            return Ok(Reply::Done);
        }
        if is_under(to, from) {
            return Err(libc::EINVAL);
        }
        if is_under(from, to) {
            return Err(libc::ENOTEMPTY);
        }
        if let Some(dst) = self.entries.get(to).copied() {
            match (src, dst) {
                (Node::File(a), Node::File(b)) if a == b => return Ok(Reply::Done),
                (Node::Dir, Node::File(_)) => return Err(libc::ENOTDIR),
                (Node::File(_), Node::Dir) => return Err(libc::EISDIR),
                (Node::Dir, Node::Dir) if self.has_children(to) => return Err(libc::ENOTEMPTY),
                _ => {}
            }
            self.entries.remove(to);
        }
        let moved: Vec<(String, Node)> = self
            .entries
            .iter()
            .filter(|(p, _)| p.as_str() == from || is_under(p, from))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        for (p, n) in moved {
            self.entries.remove(&p);
            self.entries.insert(format!("{to}{}", &p[from.len()..]), n);
        }
        Ok(Reply::Done)
    }
}

impl Side for Model {
    fn apply(&mut self, step: &Step) -> Outcome {
        match step {
            Step::Create { path, excl } => match self.entries.get(path) {
                Some(_) if *excl => Err(libc::EEXIST),
                Some(Node::Dir) => Err(libc::EISDIR),
                Some(Node::File(_)) => {
                    self.file_mut(path).clear();
                    Ok(Reply::Done)
                }
                None => {
                    self.new_file(path);
                    Ok(Reply::Done)
                }
            },
            Step::Mkdir { path } => {
                if self.entries.contains_key(path) {
                    return Err(libc::EEXIST);
                }
                self.entries.insert(path.clone(), Node::Dir);
                Ok(Reply::Done)
            }
            Step::Write { path, offset, data } => {
                write_at(self.file_mut(path), *offset, &data.bytes());
                Ok(Reply::Done)
            }
            Step::Append { path, data } => {
                self.file_mut(path).extend(data.bytes());
                Ok(Reply::Done)
            }
            Step::Read { path, offset, len } | Step::DirectRead { path, offset, len } => {
                Ok(Reply::Bytes(read_at(self.file_mut(path), *offset, *len)))
            }
            Step::Truncate { path, len } => {
                self.file_mut(path).resize(*len as usize, 0);
                Ok(Reply::Done)
            }
            Step::Rename { from, to } => self.rename(from, to),
            Step::Link { from, to } => {
                if self.entries.contains_key(to) {
                    return Err(libc::EEXIST);
                }
                match self.entries[from] {
                    Node::Dir => Err(libc::EPERM),
                    file => {
                        self.entries.insert(to.clone(), file);
                        Ok(Reply::Done)
                    }
                }
            }
            Step::Unlink { path } => {
                self.entries.remove(path);
                Ok(Reply::Done)
            }
            Step::Rmdir { path } => {
                if self.has_children(path) {
                    return Err(libc::ENOTEMPTY);
                }
                self.entries.remove(path);
                Ok(Reply::Done)
            }
            Step::MmapWrite { path, offset, data } | Step::DirectWrite { path, offset, data } => {
                write_at(self.file_mut(path), *offset, &data.bytes());
                Ok(Reply::Done)
            }
            Step::Open { path } => {
                let ino = self.ino_of(path).unwrap();
                self.handles.push(ino);
                Ok(Reply::Done)
            }
            Step::Close { handle } => {
                self.handles.remove(*handle);
                Ok(Reply::Done)
            }
            Step::HandleRead {
                handle,
                offset,
                len,
            } => {
                let buf = &self.files[&self.handles[*handle]];
                Ok(Reply::Bytes(read_at(buf, *offset, *len)))
            }
            Step::HandleWrite {
                handle,
                offset,
                data,
            } => {
                let buf = self.files.get_mut(&self.handles[*handle]).unwrap();
                write_at(buf, *offset, &data.bytes());
                Ok(Reply::Done)
            }
            Step::HandleTruncate { handle, len } => {
                let buf = self.files.get_mut(&self.handles[*handle]).unwrap();
                buf.resize(*len as usize, 0);
                Ok(Reply::Done)
            }
            Step::Fsync { .. } => Ok(Reply::Done),
            Step::SwapPlugin { file, .. } => {
                self.plugins.files.insert(file.clone(), None);
                self.plugins.active = Some(file.clone());
                Ok(Reply::Done)
            }
            Step::DropFaulty { file, kind } => {
                self.plugins.files.insert(file.clone(), Some(*kind));
                self.plugins.active = Some(file.clone());
                Ok(Reply::Done)
            }
            Step::RemovePlugin { file } => {
                self.plugins.files.remove(file);
                if self.plugins.active.as_ref() == Some(file) {
                    self.plugins.active = None;
                }
                Ok(Reply::Done)
            }
            Step::Churn => {
                // Evicting the whole cache runs the victim hook: a hostile plugin is out.
                if let Some(a) = &self.plugins.active
                    && self.plugins.files[a].is_some()
                {
                    self.plugins.active = None;
                }
                Ok(Reply::Bytes(ballast()))
            }
            Step::Put { path, excl, data } => match self.entries.get(path) {
                Some(_) if *excl => Err(libc::EEXIST),
                Some(Node::Dir) => Err(libc::EISDIR),
                Some(Node::File(_)) => {
                    *self.file_mut(path) = data.bytes();
                    Ok(Reply::Done)
                }
                None => {
                    self.new_file(path);
                    *self.file_mut(path) = data.bytes();
                    Ok(Reply::Done)
                }
            },
        }
    }
}
