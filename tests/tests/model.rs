//! Reference-model property test of the mount (root and /dev/fuse).
//!
//! proptest generates sequences of [`Op`]s: create, write, append, read, truncate, rename
//! (over files, directories and hard links of the same file), hard link, unlink/rmdir,
//! mkdir, shared-`mmap` writes with `msync`, and operations on descriptors held open across
//! the sequence (read, write, `ftruncate`, `fsync`). An op never names a file: it holds
//! [`Ix`]es that pick an existing file, directory or descriptor *modulo the current
//! count*, so every sequence proptest shrinks to is still meaningful.
//!
//! Each op is first resolved against the model into a concrete [`Step`] (paths and numbers),
//! then applied to both sides through the one [`Side::apply`] each has: the [`Model`] (a
//! `BTreeMap` namespace over in-memory byte vectors that encodes the Linux rules) and the
//! [`Real`] mount. Results, errno included, must be equal. After *every* step [`check`]
//! compares the whole state:
//!
//! - every directory's listing, through the mount and in the backing directory;
//! - every file's bytes through a fresh open (reopen) and in the backing file, its size and
//!   link count through the mount;
//! - inode identity: names of one model file share one `st_ino` (mount and backing), names
//!   of different files do not;
//! - every file ever created is watched by a read-only descriptor opened once and held to the
//!   end of the case (across writes, truncates, renames, unlinks): reading it must always give
//!   the model's bytes, which catches stale page or block caching; so must every descriptor
//!   the ops themselves hold open.
//!
//! One mount serves all cases; each case works in a fresh subdirectory that it removes at the
//! end. `KPLUGFS_SOAK=1` runs many more and longer sequences; `PROPTEST_CASES` overrides the
//! case count. Adding an op means a variant in [`Op`] and [`Step`], a line in
//! [`Model::resolve`] and one arm in each `apply`.
//!
//! **Plugin ops** (on the small-cache mount: 1 MiB of 64 KiB blocks, no kernel cache, so
//! reads reach the block cache and evictions happen): swap in a valid eviction plugin (the
//! SDK LRU exported from the binary, or the WAT LRU) under one of two names, drop a hostile
//! one (its `kplug_evict_victim` loops, traps or names a block that is not resident), remove a
//! plugin file, and *churn*: read a 2 MiB ballast file outside the case directory, which
//! evicts the whole cache. The model tracks which plugin files exist and which one serves
//! eviction ([`Plugins`]); after every step the data checks above run as always (no plugin
//! may cause a wrong byte) and the `.kplug/plugins` listing and `status` must agree with it:
//! a hostile plugin serves until its first eviction, then shows `failed` with one fault and
//! the built-in LRU serves; after a churn that first eviction has certainly happened. Each
//! case starts by removing every plugin file.
#![cfg(feature = "mount-tests")]

use std::collections::{BTreeMap, HashMap, btree_map};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use kplugfs_tests::{Hostile, TestMount};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// Names ops create entries with: few, so creates collide with existing entries and the
/// error paths (EEXIST, EISDIR, ENOTEMPTY...) are exercised as often as the success paths.
const NAMES: [&str; 6] = ["a", "b", "c", "d", "x", "y"];
/// Most descriptors an op sequence holds at once (beyond this, `Open` is skipped).
const MAX_HANDLES: usize = 6;
/// Page size of the test machines: offsets cluster around its multiples, where the kernel
/// page cache and any block cache split requests.
const PAGE: u64 = 4096;

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

/// Bytes to write: `len` bytes of a pattern seeded by `seed`, never zero (so holes, which
/// read as zeros, cannot be mistaken for written data) and different for each seed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Data {
    seed: u8,
    len: usize,
}

impl Data {
    fn bytes(self) -> Vec<u8> {
        (0..self.len)
            .map(|i| ((usize::from(self.seed) * 37 + i * 7) % 255 + 1) as u8)
            .collect()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data{{seed:{},len:{}}}", self.seed, self.len)
    }
}

/// Picks existing state by index modulo its current size (so a shrunk sequence still picks
/// something); shrinks towards the first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ix(u8);

impl Ix {
    fn index(self, len: usize) -> usize {
        usize::from(self.0) % len
    }
}

impl fmt::Debug for Ix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ix({})", self.0)
    }
}

fn ix() -> impl Strategy<Value = Ix> {
    any::<u8>().prop_map(Ix)
}

/// Where a rename or link goes: onto an existing entry, or to a name in an existing directory
/// (which may exist too: the name pool is small).
#[derive(Debug, Clone)]
enum Target {
    Existing(Ix),
    Fresh { parent: Ix, name: Ix },
}

/// A generated operation. Ixes pick existing state modulo its size at the time the op
/// runs; ops that need state that does not exist (a file when there is none) are skipped.
#[derive(Debug, Clone)]
enum Op {
    /// `open(O_WRONLY|O_CREAT|(excl ? O_EXCL : O_TRUNC))` of `NAMES[name]` in a directory.
    Create {
        parent: Ix,
        name: Ix,
        excl: bool,
    },
    Mkdir {
        parent: Ix,
        name: Ix,
    },
    /// `pwrite` through a fresh descriptor.
    Write {
        file: Ix,
        offset: u64,
        data: Data,
    },
    /// `write` through a fresh `O_APPEND` descriptor.
    Append {
        file: Ix,
        data: Data,
    },
    /// `pread` through a fresh descriptor.
    Read {
        file: Ix,
        offset: u64,
        len: usize,
    },
    /// `truncate(path)`.
    Truncate {
        file: Ix,
        len: u64,
    },
    /// `rename` of any entry (file or directory).
    Rename {
        src: Ix,
        dst: Target,
    },
    /// `link` of any entry (EPERM for a directory).
    Link {
        src: Ix,
        dst: Target,
    },
    /// `unlink` a file or `rmdir` a directory.
    Remove {
        entry: Ix,
    },
    /// Write through a shared mapping of the whole file, `msync(MS_SYNC)`, unmap.
    MmapWrite {
        file: Ix,
        offset: u64,
        data: Data,
    },
    /// `pwrite` of whole pages at a page-aligned offset through a fresh `O_DIRECT`
    /// descriptor, from a page-aligned buffer (valid on any Linux filesystem).
    DirectWrite {
        file: Ix,
        page: u64,
        pages: usize,
        seed: u8,
    },
    /// `pread` of whole pages at a page-aligned offset through a fresh `O_DIRECT` descriptor.
    DirectRead {
        file: Ix,
        page: u64,
        pages: usize,
    },
    /// Open a file read-write and hold the descriptor.
    Open {
        file: Ix,
    },
    Close {
        handle: Ix,
    },
    HandleRead {
        handle: Ix,
        offset: u64,
        len: usize,
    },
    HandleWrite {
        handle: Ix,
        offset: u64,
        data: Data,
    },
    HandleTruncate {
        handle: Ix,
        len: u64,
    },
    Fsync {
        handle: Ix,
        data_only: bool,
    },
    /// Write a valid eviction plugin (`module` picks one of [`Module`]) as one of
    /// [`VALID_PLUGINS`] into `.kplug/plugins/`.
    SwapPlugin {
        name: Ix,
        module: Ix,
    },
    /// Write a hostile eviction plugin (one of [`Hostile::ALL`]).
    DropFaulty {
        kind: Ix,
    },
    /// Remove a plugin file.
    RemovePlugin {
        plugin: Ix,
    },
    /// Read the ballast file: the whole cache is evicted.
    Churn,
}

/// File names valid plugins are dropped as (a swap onto an existing name replaces it).
const VALID_PLUGINS: [&str; 2] = ["evict-a.wasm", "evict-b.wasm"];
/// The ballast file in the mount's root, twice the plugin mount's cache.
const BALLAST: &str = "ballast";
const BALLAST_LEN: usize = 2 << 20;

fn ballast() -> Vec<u8> {
    (0..BALLAST_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A valid eviction plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Module {
    /// `kplugfs policy export lru` (built with the SDK).
    SdkLru,
    /// policies/lru-wat (hand-written WAT).
    WatLru,
}

/// What `SwapPlugin`'s `module` picks from. The SDK module takes the (debug-built) daemon
/// ~0.5 s to compile, the WAT one a fraction of that: one swap in three loads the SDK one.
const MODULES: [Module; 3] = [Module::WatLru, Module::SdkLru, Module::WatLru];

/// An offset: small, around a page boundary, or anywhere in the first few pages.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..64u64,
        (1..4u64, 0..16u64).prop_map(|(p, d)| (p * PAGE + d).saturating_sub(8)),
        0..3 * PAGE + 100,
    ]
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![1..16usize, 1..2 * PAGE as usize + 100]
}

fn data() -> impl Strategy<Value = Data> {
    (any::<u8>(), length()).prop_map(|(seed, len)| Data { seed, len })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        ix().prop_map(Target::Existing),
        (ix(), ix()).prop_map(|(parent, name)| Target::Fresh { parent, name }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (ix(), ix(), any::<bool>()).prop_map(|(parent, name, excl)| Op::Create { parent, name, excl }),
        1 => (ix(), ix()).prop_map(|(parent, name)| Op::Mkdir { parent, name }),
        4 => (ix(), offset(), data()).prop_map(|(file, offset, data)| Op::Write { file, offset, data }),
        1 => (ix(), data()).prop_map(|(file, data)| Op::Append { file, data }),
        2 => (ix(), offset(), length()).prop_map(|(file, offset, len)| Op::Read { file, offset, len }),
        2 => (ix(), offset()).prop_map(|(file, len)| Op::Truncate { file, len }),
        3 => (ix(), target()).prop_map(|(src, dst)| Op::Rename { src, dst }),
        2 => (ix(), target()).prop_map(|(src, dst)| Op::Link { src, dst }),
        2 => ix().prop_map(|entry| Op::Remove { entry }),
        2 => (ix(), offset(), data()).prop_map(|(file, offset, data)| Op::MmapWrite { file, offset, data }),
        1 => (ix(), 0..4u64, 1..3usize, any::<u8>())
            .prop_map(|(file, page, pages, seed)| Op::DirectWrite { file, page, pages, seed }),
        1 => (ix(), 0..4u64, 1..3usize).prop_map(|(file, page, pages)| Op::DirectRead { file, page, pages }),
        2 => ix().prop_map(|file| Op::Open { file }),
        1 => ix().prop_map(|handle| Op::Close { handle }),
        2 => (ix(), offset(), length()).prop_map(|(handle, offset, len)| Op::HandleRead { handle, offset, len }),
        3 => (ix(), offset(), data()).prop_map(|(handle, offset, data)| Op::HandleWrite { handle, offset, data }),
        1 => (ix(), offset()).prop_map(|(handle, len)| Op::HandleTruncate { handle, len }),
        1 => (ix(), any::<bool>()).prop_map(|(handle, data_only)| Op::Fsync { handle, data_only }),
    ]
}

fn plugin_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (ix(), ix()).prop_map(|(name, module)| Op::SwapPlugin { name, module }),
        ix().prop_map(|kind| Op::DropFaulty { kind }),
        ix().prop_map(|plugin| Op::RemovePlugin { plugin }),
        Just(Op::Churn),
    ]
}

/// The ops of a case: file ops, plus the plugin ops (about one in twelve) on a plugin mount.
fn any_op(plugins: bool) -> BoxedStrategy<Op> {
    if plugins {
        prop_oneof![11 => op(), 1 => plugin_op()].boxed()
    } else {
        op().boxed()
    }
}

/// An op resolved against the current state: paths relative to the case directory and
/// descriptor slots. This is what both sides apply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Create {
        path: String,
        excl: bool,
    },
    Mkdir {
        path: String,
    },
    Write {
        path: String,
        offset: u64,
        data: Data,
    },
    Append {
        path: String,
        data: Data,
    },
    Read {
        path: String,
        offset: u64,
        len: usize,
    },
    Truncate {
        path: String,
        len: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Link {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    MmapWrite {
        path: String,
        offset: u64,
        data: Data,
    },
    DirectWrite {
        path: String,
        offset: u64,
        data: Data,
    },
    DirectRead {
        path: String,
        offset: u64,
        len: usize,
    },
    Open {
        path: String,
    },
    Close {
        handle: usize,
    },
    HandleRead {
        handle: usize,
        offset: u64,
        len: usize,
    },
    HandleWrite {
        handle: usize,
        offset: u64,
        data: Data,
    },
    HandleTruncate {
        handle: usize,
        len: u64,
    },
    Fsync {
        handle: usize,
        data_only: bool,
    },
    SwapPlugin {
        file: String,
        module: Module,
    },
    DropFaulty {
        file: String,
        kind: Hostile,
    },
    RemovePlugin {
        file: String,
    },
    Churn,
}

/// What a step returned: success with maybe some bytes, or an errno.
#[derive(PartialEq, Eq)]
enum Reply {
    Done,
    Bytes(Vec<u8>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Done => write!(f, "Done"),
            Reply::Bytes(b) => write!(f, "Bytes(len {})", b.len()),
        }
    }
}

type Outcome = Result<Reply, i32>;

/// One side of the comparison.
trait Side {
    fn apply(&mut self, step: &Step) -> Outcome;
}

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

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

/// The reference: a namespace of paths (relative to the case directory, which is `""` and
/// not an entry) and the contents of every file ever created, by model inode number. Files
/// are never forgotten, so the watching descriptors of unlinked files can still be checked.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<String, Node>,
    files: BTreeMap<u64, Vec<u8>>,
    handles: Vec<u64>,
    next_ino: u64,
    plugins: Plugins,
}

/// The plugin side of the model: the files in `.kplug/plugins/` and the one serving
/// eviction (`None`: the built-in LRU).
#[derive(Debug, Default)]
struct Plugins {
    files: BTreeMap<String, Option<Hostile>>,
    active: Option<String>,
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
    fn dirs(&self) -> Vec<String> {
        let mut v = vec![String::new()];
        v.extend(
            self.entries
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }

    fn file_paths(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn has_children(&self, dir: &str) -> bool {
        self.entries.keys().any(|p| is_under(p, dir))
    }

    fn children(&self, dir: &str) -> BTreeMap<String, bool> {
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

    fn nlink(&self, ino: u64) -> u64 {
        self.entries
            .values()
            .filter(|n| **n == Node::File(ino))
            .count() as u64
    }

    fn ino_of(&self, path: &str) -> Option<u64> {
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
    fn resolve(&self, op: &Op) -> Option<Step> {
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
        }
    }
}

// ---------------------------------------------------------------------------------------
// The mount
// ---------------------------------------------------------------------------------------

/// The system under test: a case directory inside the mount, and the descriptors the ops
/// hold (slot for slot with [`Model::handles`]).
struct Real {
    dir: PathBuf,
    handles: Vec<File>,
    /// The mount point (for `.kplug/` and the ballast).
    mnt: PathBuf,
}

/// The module of a valid plugin, built once.
fn module_bytes(m: Module) -> &'static [u8] {
    static SDK: OnceLock<Vec<u8>> = OnceLock::new();
    static WAT: OnceLock<Vec<u8>> = OnceLock::new();
    match m {
        Module::SdkLru => SDK.get_or_init(|| kplugfs_tests::exported_policy("lru")),
        Module::WatLru => WAT.get_or_init(kplugfs_tests::wat_lru),
    }
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Read up to `len` bytes at `offset`, looping over short reads; stops at end of file.
fn pread_full(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

fn mmap_write(f: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let len = f.metadata()?.len() as usize;
    assert!(
        offset as usize + bytes.len() <= len,
        "mmap write outside file"
    );
    // SAFETY: a fresh shared mapping of `len` bytes of an open file, written inside its
    // bounds, synced and unmapped before returning; nothing else aliases it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            p.cast::<u8>().add(offset as usize),
            bytes.len(),
        );
        let synced = libc::msync(p, len, libc::MS_SYNC);
        let err = io::Error::last_os_error();
        libc::munmap(p, len);
        if synced != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// A zeroed, page-aligned buffer for `O_DIRECT`.
struct PageAligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageAligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + PAGE as usize];
        let start = raw.as_ptr().align_offset(PAGE as usize);
        Self { raw, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl Real {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn run(&mut self, step: &Step) -> io::Result<Reply> {
        match step {
            Step::Create { path, excl } => {
                let mut o = OpenOptions::new();
                o.write(true);
                if *excl {
                    o.create_new(true);
                } else {
                    o.create(true).truncate(true);
                }
                o.open(self.p(path))?;
            }
            Step::Mkdir { path } => fs::create_dir(self.p(path))?,
            Step::Write { path, offset, data } => {
                let f = OpenOptions::new().write(true).open(self.p(path))?;
                f.write_all_at(&data.bytes(), *offset)?;
            }
            Step::Append { path, data } => {
                let mut f = OpenOptions::new().append(true).open(self.p(path))?;
                f.write_all(&data.bytes())?;
            }
            Step::Read { path, offset, len } => {
                let f = File::open(self.p(path))?;
                return pread_full(&f, *offset, *len).map(Reply::Bytes);
            }
            Step::Truncate { path, len } => {
                // truncate(2) by path: a setattr without a file handle.
                let c = cpath(&self.p(path));
                // SAFETY: a valid NUL-terminated path.
                if unsafe { libc::truncate(c.as_ptr(), *len as libc::off_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Step::Rename { from, to } => fs::rename(self.p(from), self.p(to))?,
            Step::Link { from, to } => fs::hard_link(self.p(from), self.p(to))?,
            Step::Unlink { path } => fs::remove_file(self.p(path))?,
            Step::Rmdir { path } => fs::remove_dir(self.p(path))?,
            Step::MmapWrite { path, offset, data } => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(path))?;
                mmap_write(&f, *offset, &data.bytes())?;
            }
            Step::DirectWrite { path, offset, data } => {
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(self.p(path))?;
                let mut buf = PageAligned::new(data.len);
                buf.as_mut().copy_from_slice(&data.bytes());
                let n = f.write_at(buf.as_mut(), *offset)?;
                if n != data.len {
                    return Err(io::Error::other(format!("short O_DIRECT write: {n}")));
                }
            }
            Step::DirectRead { path, offset, len } => {
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(self.p(path))?;
                let mut buf = PageAligned::new(*len);
                let n = f.read_at(buf.as_mut(), *offset)?;
                return Ok(Reply::Bytes(buf.as_mut()[..n].to_vec()));
            }
            Step::Open { path } => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(path))?;
                self.handles.push(f);
            }
            Step::Close { handle } => drop(self.handles.remove(*handle)),
            Step::HandleRead {
                handle,
                offset,
                len,
            } => return pread_full(&self.handles[*handle], *offset, *len).map(Reply::Bytes),
            Step::HandleWrite {
                handle,
                offset,
                data,
            } => self.handles[*handle].write_all_at(&data.bytes(), *offset)?,
            Step::HandleTruncate { handle, len } => self.handles[*handle].set_len(*len)?,
            Step::Fsync { handle, data_only } => {
                if *data_only {
                    self.handles[*handle].sync_data()?
                } else {
                    self.handles[*handle].sync_all()?
                }
            }
            Step::SwapPlugin { file, module } => {
                kplugfs_tests::drop_plugin_at(&self.mnt, file, module_bytes(*module))?
            }
            Step::DropFaulty { file, kind } => {
                kplugfs_tests::drop_plugin_at(&self.mnt, file, &kind.wasm())?
            }
            Step::RemovePlugin { file } => {
                fs::remove_file(self.mnt.join(".kplug/plugins").join(file))?
            }
            Step::Churn => return fs::read(self.mnt.join(BALLAST)).map(Reply::Bytes),
        }
        Ok(Reply::Done)
    }
}

impl Side for Real {
    fn apply(&mut self, step: &Step) -> Outcome {
        self.run(step).map_err(errno)
    }
}

// ---------------------------------------------------------------------------------------
// Comparing the whole state
// ---------------------------------------------------------------------------------------

/// Describe how two byte strings differ (lengths, first differing offset, a few bytes).
fn diff(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let show = |b: &[u8]| format!("{:?}", &b[at.min(b.len())..(at + 8).min(b.len())]);
    Some(format!(
        "want {} bytes, got {}; first difference at {at}: want {}.., got {}..",
        want.len(),
        got.len(),
        show(want),
        show(got)
    ))
}

fn listing(dir: &Path) -> Result<BTreeMap<String, bool>, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
    let mut out = BTreeMap::new();
    for e in rd {
        let e = e.map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
        let is_dir = e.file_type().map_err(|e| e.to_string())?.is_dir();
        out.insert(e.file_name().to_string_lossy().into_owned(), is_dir);
    }
    Ok(out)
}

/// Descriptors opened by [`check`] on every file it sees and held to the end of the case,
/// by model inode.
type Watchers = BTreeMap<u64, File>;

/// Compare the mount and the backing directory with the model; see the module doc.
fn check(model: &Model, real: &Real, backing: &Path, watch: &mut Watchers) -> Result<(), String> {
    for dir in model.dirs() {
        let want = model.children(&dir);
        let got = listing(&real.p(&dir))?;
        if got != want {
            return Err(format!(
                "mount listing of {dir:?}: want {want:?}, got {got:?}"
            ));
        }
        let got = listing(&backing.join(&dir))?;
        if got != want {
            return Err(format!(
                "backing listing of {dir:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    // model inode -> (mount st_ino, backing st_ino)
    let mut inos: HashMap<u64, (u64, u64)> = HashMap::new();
    for path in model.file_paths() {
        let ino = model.ino_of(&path).unwrap();
        let want = &model.files[&ino];
        let got = fs::read(real.p(&path)).map_err(|e| format!("reopen {path}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("{path} read through a fresh open: {d}"));
        }
        let got = fs::read(backing.join(&path)).map_err(|e| format!("backing {path}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("backing file {path}: {d}"));
        }
        let md = fs::metadata(real.p(&path)).map_err(|e| format!("stat {path}: {e}"))?;
        let bmd = fs::metadata(backing.join(&path)).map_err(|e| e.to_string())?;
        if md.len() != want.len() as u64 {
            return Err(format!("{path}: st_size {} want {}", md.len(), want.len()));
        }
        if md.nlink() != model.nlink(ino) {
            return Err(format!(
                "{path}: st_nlink {} want {}",
                md.nlink(),
                model.nlink(ino)
            ));
        }
        let pair = (md.ino(), bmd.ino());
        if *inos.entry(ino).or_insert(pair) != pair {
            return Err(format!(
                "{path}: inode numbers {pair:?} differ from its other names"
            ));
        }
        if let btree_map::Entry::Vacant(slot) = watch.entry(ino) {
            slot.insert(File::open(real.p(&path)).map_err(|e| format!("open {path}: {e}"))?);
        }
    }
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (ino, (m, _)) in &inos {
        if let Some(other) = seen.insert(*m, *ino) {
            return Err(format!(
                "model files {other} and {ino} share mount inode {m}"
            ));
        }
    }
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (ino, (_, b)) in &inos {
        if let Some(other) = seen.insert(*b, *ino) {
            return Err(format!(
                "model files {other} and {ino} share backing inode {b}"
            ));
        }
    }
    let held = watch
        .iter()
        .map(|(ino, f)| (format!("watcher of file {ino}"), *ino, f))
        .chain(
            real.handles
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("handle {i}"), model.handles[i], f)),
        );
    for (what, ino, f) in held {
        let want = &model.files[&ino];
        let got = pread_full(f, 0, want.len() + 1).map_err(|e| format!("{what}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("{what} (held open): {d}"));
        }
        let size = f.metadata().map_err(|e| e.to_string())?.len();
        if size != want.len() as u64 {
            return Err(format!("{what}: fstat size {size} want {}", want.len()));
        }
    }
    Ok(())
}

/// Compare `.kplug/plugins/` and the status with [`Plugins`]. A hostile plugin the model
/// still has serving may have met its first eviction already: then it must show as failed
/// with exactly one fault (and the model learns it is out).
fn check_plugins(plugins: &mut Plugins, mnt: &Path) -> Result<(), String> {
    let got: Vec<String> = listing(&mnt.join(".kplug/plugins"))?.into_keys().collect();
    let want: Vec<String> = plugins.files.keys().cloned().collect();
    if got != want {
        return Err(format!(".kplug/plugins lists {got:?}, model has {want:?}"));
    }
    let text =
        fs::read(mnt.join(".kplug/status")).map_err(|e| format!("read .kplug/status: {e}"))?;
    let st: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!(".kplug/status: {e}"))?;
    let serving = st["active"]["eviction"].as_str().unwrap_or("?").to_string();
    let name = |f: &str| f.trim_end_matches(".wasm").to_string();
    match &plugins.active {
        None if serving == "builtin:lru" => Ok(()),
        Some(f) if serving == name(f) => Ok(()),
        Some(f) if serving == "builtin:lru" && plugins.files[f].is_some() => {
            let kind = plugins.files[f].unwrap();
            let p = st["plugins"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["name"] == name(f).as_str()))
                .ok_or_else(|| format!("{f} missing from status {st}"))?;
            let error = p["error"].as_str().unwrap_or("").to_lowercase();
            if p["state"] != "failed" || p["faults"] != 1 || !error.contains(kind.reason()) {
                return Err(format!(
                    "{f} ({kind:?}) lost eviction but its status is {p} (want failed, 1 fault, \
                     error mentioning {:?})",
                    kind.reason()
                ));
            }
            plugins.active = None;
            Ok(())
        }
        want => Err(format!(
            "eviction served by {serving:?}, model says {want:?} (files {:?})",
            plugins.files
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------------------

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Run `ops` in a fresh case directory of `mount`; `Err` describes the first divergence
/// together with the steps that led to it. The directory is removed through the mount
/// afterwards (also checked). On a `plugins` mount, plugin files are removed first and the
/// plugin state is checked after every step too.
fn run_case(mount: &TestMount, ops: &[Op], plugins: bool) -> Result<(), String> {
    let name = format!("case{}", CASE.fetch_add(1, Ordering::Relaxed));
    let backing = mount.b(&name);
    let mut real = Real {
        dir: mount.m(&name),
        handles: Vec::new(),
        mnt: mount.mnt.clone(),
    };
    if plugins {
        // Every case starts with the built-ins serving.
        let dir = mount.m(".kplug/plugins");
        for e in fs::read_dir(&dir).map_err(|e| format!("list {}: {e}", dir.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            fs::remove_file(&p).map_err(|e| format!("rm {}: {e}", p.display()))?;
        }
    }
    fs::create_dir(&real.dir).map_err(|e| format!("mkdir {name}: {e}"))?;
    let mut model = Model::default();
    let mut watch = Watchers::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut result = Ok(());
    for op in ops {
        let Some(step) = model.resolve(op) else {
            continue;
        };
        steps.push(step.clone());
        let want = model.apply(&step);
        let got = real.apply(&step);
        let failed = if want != got {
            Some(format!("returned {got:?}, model says {want:?}"))
        } else {
            check(&model, &real, &backing, &mut watch)
                .and_then(|()| {
                    if plugins {
                        check_plugins(&mut model.plugins, &mount.mnt)
                    } else {
                        Ok(())
                    }
                })
                .err()
        };
        if let Some(why) = failed {
            let history: Vec<String> = steps.iter().map(|s| format!("  {s:?}")).collect();
            result = Err(format!("{why}\nsteps:\n{}", history.join("\n")));
            break;
        }
    }
    drop(watch);
    real.handles.clear();
    let cleaned = fs::remove_dir_all(&real.dir).map_err(|e| format!("rm -r {name}: {e}"));
    result?;
    cleaned?;
    if backing.exists() {
        return Err(format!(
            "{name} removed through the mount but still in the backing dir"
        ));
    }
    Ok(())
}

fn soak() -> bool {
    std::env::var("KPLUGFS_SOAK").is_ok_and(|v| v == "1")
}

/// Cases and sequence length, shared out between the mount variants: ~1 minute on a 2-core
/// CI machine by default; soak mode runs 20x the cases with sequences up to 4x longer.
/// `PROPTEST_CASES` overrides the case count.
fn config() -> (Config, usize) {
    let (cases, max_ops) = if soak() { (20000, 300) } else { (1000, 80) };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    (
        Config {
            cases,
            // Shrinking a long sequence through a real mount takes many runs.
            max_shrink_iters: 10_000,
            // Shrunk failures are kept as named regression tests below, not in a seed file.
            failure_persistence: None,
            ..Config::default()
        },
        max_ops,
    )
}

/// Run the property on a mount made with `options`, `share` of the configured cases; with
/// `plugins` the plugin ops are generated too (and the ballast file is in the mount's root).
fn check_property(options: &[&str], share: f64, plugins: bool) {
    let mount = TestMount::with_backing(options, |b| {
        if plugins {
            fs::write(b.join(BALLAST), ballast()).unwrap();
        }
    });
    let (mut config, max_ops) = config();
    config.cases = ((f64::from(config.cases) * share).ceil() as u32).max(1);
    proptest!(config, |(ops in prop::collection::vec(any_op(plugins), 1..max_ops))| {
        run_case(&mount, &ops, plugins).map_err(TestCaseError::fail)?;
    });
}

/// The plugin mount: a cache of 16 blocks, every read reaching it.
const SMALL_CACHE: [&str; 5] = [
    "--cache-size",
    "1MiB",
    "--block-size",
    "64KiB",
    "--no-kernel-cache",
];

/// The default mount, as users get it (names and attributes cached for 1 s).
#[test]
fn mount_matches_model() {
    check_property(&[], 0.5, false);
}

/// Every access revalidates names and attributes, so lookups and getattrs reach the daemon
/// (its inode table) instead of the kernel's caches.
#[test]
fn mount_without_attr_cache_matches_model() {
    check_property(&["--attr-timeout", "0s"], 0.25, false);
}

/// A small block cache under plugin swaps, hostile plugins and removals (see the module doc):
/// evictions happen all the time, and data must still equal the model after every op.
#[test]
fn small_cache_with_plugin_ops_matches_model() {
    check_property(&SMALL_CACHE, 0.25, true);
}

// ---------------------------------------------------------------------------------------
// Regression tests: shrunk failures, kept by name
// ---------------------------------------------------------------------------------------

/// Run fixed `ops` on a fresh mount and panic with the divergence, if any.
fn replay(ops: &[Op]) {
    replay_on(&[], false, ops);
}

fn replay_on(options: &[&str], plugins: bool, ops: &[Op]) {
    let mount = TestMount::with_backing(options, |b| {
        if plugins {
            fs::write(b.join(BALLAST), ballast()).unwrap();
        }
    });
    if let Err(e) = run_case(&mount, ops, plugins) {
        panic!("{e}");
    }
}

fn create(name: u8) -> Op {
    Op::Create {
        parent: Ix(0),
        name: Ix(name),
        excl: false,
    }
}

/// A page written with `O_DIRECT` (page-aligned offset, length and buffer, valid on the
/// backing ext4) fails through the mount with EINVAL: the daemon reopens the backing file with
/// the caller's `O_DIRECT` and `pwrite`s the request from an unaligned buffer.
#[test]
fn regression_odirect_write_of_a_page() {
    replay(&[
        create(0),
        Op::DirectWrite {
            file: Ix(0),
            page: 0,
            pages: 1,
            seed: 0,
        },
    ]);
}

/// Every plugin op once, in an order that covers each transition: a hostile plugin serving
/// until a churn evicts, a swap replacing a failed one, removing the active and an inactive
/// plugin; file data checked throughout.
#[test]
fn plugin_ops_in_sequence() {
    let write = |seed| Op::Write {
        file: Ix(0),
        offset: 100,
        data: Data { seed, len: 9000 },
    };
    let mut ops = vec![create(0), write(1)];
    for (k, _) in Hostile::ALL.iter().enumerate() {
        ops.extend([
            Op::SwapPlugin {
                name: Ix(k as u8),
                module: Ix(k as u8),
            },
            Op::Churn,
            write(2 + k as u8),
            Op::DropFaulty { kind: Ix(k as u8) },
            Op::Churn,
            create(1),
            write(7),
            Op::SwapPlugin {
                name: Ix(1),
                module: Ix(0),
            },
            Op::DropFaulty {
                kind: Ix(k as u8 + 1),
            },
            Op::RemovePlugin { plugin: Ix(0) },
            Op::Churn,
            Op::RemovePlugin { plugin: Ix(1) },
        ]);
    }
    replay_on(&SMALL_CACHE, true, &ops);
}
