//! `.kplug/views/NAME/`: a read-only mirror of the mount's tree for each loaded transform
//! plugin (ABI 1.6), whose files are the transformed contents of the same names.
//!
//! ```text
//! .kplug/views/            r-xr-xr-x  one directory per transform in plugins/
//! └── grep/                the mount's root, seen through grep.wasm (+ grep.params)
//!     └── a/log            = grep(a/log): same name, mode without write bits, owner, times
//! ```
//!
//! **A tree beside the passthrough.** The views are one virtual tree (its own inode and handle
//! numbers, `fs/tree.rs`); a node is a (view, path) pair numbered on first sight. Every
//! operation resolves the path afresh through the mount's data tree (`Tree::lookup` from the
//! root, the references given back when done), so a view sees what the plain tree sees, on
//! both backends, and the source's bytes come through the data tree's `read`: the block
//! cache, under the eviction, admission and prefetch policies as usual.
//!
//! **Sizes and reads.** `stat` must tell the true size before the first read, and `pread` at
//! any offset must give the bytes of the whole transformed stream there. A size-preserving
//! transform (`kplug_transform_flags`) gets the source's size with no pass. For the others the
//! first `stat` or `open` runs the transform over the whole source once and keeps the output,
//! keyed by the source's (inode, size, mtime, ctime): later stats, opens and reads at any
//! offset are answered from it. An output is kept in memory up to [`VIEW_MEM_OUTPUT`]; a
//! larger one is **spilled** as it is produced to an unlinked file of the spool directory
//! (`$TMPDIR`, else `/var/tmp`), read back with `pread`, so a 1 GiB decompressed view costs
//! disk, not memory. A change of the source, through the mount or behind it, changes the
//! key, and the next `stat`/`open` computes again. A view keeps its outputs up to
//! [`VIEW_CACHE_BYTES`] in memory and [`VIEW_SPOOL_BYTES`] spilled; beyond that the oldest
//! are dropped (their sizes are kept, so `stat` stays free; an `open` computes again). An open handle holds the output
//! it opened on: repeated reads of one descriptor are consistent even if the source changes
//! meanwhile. Views are served with direct I/O: the kernel never keeps their pages, so a
//! changed source never shows stale pages and two callers never share cached pages.
//!
//! **Faults.** A stream either completes or fails; a part is never served as the whole. A
//! fault of the plugin (trap, timeout, memory cap, an answer outside the ABI) makes it
//! `failed` in `.kplug/status`, and every read of that view fails with EIO until the plugin
//! file is written again; a stream error (the plugin refused the input, the output went over
//! [`view_output_cap`], the source could not be read) fails that file's open with EIO and
//! shows as the view's `last_error`. A spill that fails (no space left) is a stream error. The plain tree and the other views are never touched.
//!
//! **Per-caller views.** A transform importing `transform_uid` shapes each reader's bytes by
//! who reads (redaction exempting some users): it must be size-preserving (`stat` does not say
//! who asks, so the size cannot depend on it), its outputs are kept per (path, uid), and the
//! direct I/O above means two readers never share kernel pages.
//!
//! **Costs.** One pass over the source per (file, version) for a transform that changes sizes,
//! then memory for its output; one transform runs at a time per view (one wasm instance).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use kplug_engine::{StatusHandle, TransformError, Transformer};
use parking_lot::{Mutex, RwLock};

use super::node::{Handles, Owner, entry, slice};
use crate::error::Result;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, Tree, TreeIds, list_dir,
    list_dir_plus,
};
use crate::fs_err;
use crate::monitor::schema::{ViewEntry, ViewStats};

/// Most bytes of transformed output one view keeps in memory (256 MiB): a 1 % filter of
/// 25 GiB of sources, or a few decompressed files; more is computed again at its next open.
pub const VIEW_CACHE_BYTES: u64 = 256 << 20;
/// Largest output kept in memory (64 MiB); a larger one is spilled to the spool directory.
pub const VIEW_MEM_OUTPUT: u64 = 64 << 20;
/// Most bytes of spilled outputs one view keeps (16 GiB); beyond, the oldest are dropped.
pub const VIEW_SPOOL_BYTES: u64 = 16 << 30;
/// Cap on one file's transformed output: 64 times the source (text and logs compress 5 to
/// 20 times), at least [`VIEW_CACHE_BYTES`] (a small file may expand more), at most
/// [`VIEW_SPOOL_BYTES`]. A decompression bomb is an error (EIO), never a daemon out of memory
/// or a full disk.
pub fn view_output_cap(source: u64) -> u64 {
    source
        .saturating_mul(64)
        .clamp(VIEW_CACHE_BYTES, VIEW_SPOOL_BYTES)
}

/// Where outputs larger than [`VIEW_MEM_OUTPUT`] are spilled: `$TMPDIR`, else `/var/tmp`
/// (on disk on Debian, where `/tmp` may be memory).
fn spool_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// One file's transformed output: in memory, or spilled to an unlinked file.
enum Output {
    Mem(Vec<u8>),
    Spilled { file: std::fs::File, len: u64 },
}

impl Output {
    fn len(&self) -> u64 {
        match self {
            Output::Mem(v) => v.len() as u64,
            Output::Spilled { len, .. } => *len,
        }
    }

    fn in_memory(&self) -> bool {
        matches!(self, Output::Mem(_))
    }

    /// At most `size` bytes at `offset` (fewer at the end).
    fn read_at(&self, offset: u64, size: u32) -> Result<Vec<u8>> {
        match self {
            Output::Mem(v) => Ok(slice(v, offset, size)),
            Output::Spilled { file, len } => {
                use std::os::unix::fs::FileExt;
                let n = (*len).saturating_sub(offset).min(size as u64) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, offset).map_err(|e| {
                    crate::FsError::from(e).context("reading a spilled view output")
                })?;
                Ok(buf)
            }
        }
    }
}

/// Collects a stream's output: in memory up to [`VIEW_MEM_OUTPUT`], then in a spool file.
struct OutputWriter {
    mem: Vec<u8>,
    spilled: Option<(std::fs::File, u64)>,
}

impl OutputWriter {
    fn new() -> Self {
        OutputWriter {
            mem: Vec::new(),
            spilled: None,
        }
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if self.spilled.is_none() && (self.mem.len() + b.len()) as u64 > VIEW_MEM_OUTPUT {
            let mut f = tempfile::tempfile_in(spool_dir())?;
            f.write_all(&self.mem)?;
            self.spilled = Some((f, self.mem.len() as u64));
            self.mem = Vec::new();
        }
        match &mut self.spilled {
            Some((f, len)) => {
                f.write_all(b)?;
                *len += b.len() as u64;
            }
            None => self.mem.extend_from_slice(b),
        }
        Ok(())
    }

    fn finish(self) -> Output {
        match self.spilled {
            Some((file, len)) => Output::Spilled { file, len },
            None => Output::Mem(self.mem),
        }
    }
}
/// Passes over one file before a source that keeps changing during them is an error.
const PASSES: usize = 3;
/// The inode of the mount's root in the data tree.
const DATA_ROOT: u64 = crate::fs::inode::ROOT_INO;

/// A source's version: (inode, size, mtime, ctime). Any change makes a view compute again.
type Version = (u64, u64, SystemTime, SystemTime);

fn version(a: &Attr) -> Version {
    (a.ino, a.size, a.mtime, a.ctime)
}

/// What a view knows of one file's output.
struct Known {
    version: Version,
    size: u64,
    output: Option<Arc<Output>>,
}

/// Whose output: a path, and for a per-caller transform the reader's uid.
type Key = (PathBuf, Option<u32>);

/// The outputs of one view, by path (and reader), within [`VIEW_CACHE_BYTES`] in memory and
/// [`VIEW_SPOOL_BYTES`] spilled.
#[derive(Default)]
struct Outputs {
    known: HashMap<Key, Known>,
    /// Keys holding an output, oldest first.
    order: VecDeque<Key>,
    /// Bytes of the outputs kept in memory.
    bytes: u64,
    /// Bytes of the outputs kept spilled.
    spilled: u64,
}

impl Outputs {
    fn used(&mut self, in_memory: bool) -> &mut u64 {
        if in_memory {
            &mut self.bytes
        } else {
            &mut self.spilled
        }
    }

    fn insert(&mut self, key: &Key, version: Version, output: Arc<Output>) {
        self.drop_output(key);
        let (size, mem) = (output.len(), output.in_memory());
        let budget = if mem {
            VIEW_CACHE_BYTES
        } else {
            VIEW_SPOOL_BYTES
        };
        // The oldest outputs of the same kind (memory or spool) make room.
        while *self.used(mem) + size > budget {
            let Some(i) = self.order.iter().position(|k| {
                self.known
                    .get(k)
                    .and_then(|k| k.output.as_ref())
                    .is_some_and(|o| o.in_memory() == mem)
            }) else {
                break;
            };
            let old = self.order.remove(i).expect("found");
            if let Some(o) = self.known.get_mut(&old).and_then(|k| k.output.take()) {
                *self.used(mem) -= o.len();
            }
        }
        let keep = size <= budget;
        if keep {
            *self.used(mem) += size;
            self.order.push_back(key.clone());
        }
        self.known.insert(
            key.clone(),
            Known {
                version,
                size,
                output: keep.then_some(output),
            },
        );
    }

    fn drop_output(&mut self, key: &Key) {
        if let Some(k) = self.known.get_mut(key)
            && let Some(o) = k.output.take()
        {
            *self.used(o.in_memory()) -= o.len();
            self.order.retain(|p| p != key);
        }
    }
}

/// Counters of one view (`.kplug/stats`, `views.NAME`).
#[derive(Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    records_in: AtomicU64,
    records_out: AtomicU64,
    time_ns: AtomicU64,
    streams: AtomicU64,
    cache_hits: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    /// Add `other`'s counts to these.
    fn add(&self, other: &Counters) {
        let pairs = [
            (&self.bytes_in, &other.bytes_in),
            (&self.bytes_out, &other.bytes_out),
            (&self.records_in, &other.records_in),
            (&self.records_out, &other.records_out),
            (&self.time_ns, &other.time_ns),
            (&self.streams, &other.streams),
            (&self.cache_hits, &other.cache_hits),
            (&self.errors, &other.errors),
        ];
        for (mine, theirs) in pairs {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// One view: a transform plugin's instance and what it computed.
pub struct View {
    name: String,
    transformer: Mutex<Transformer>,
    status: StatusHandle,
    size_preserving: bool,
    /// The output depends on the reader (`transform_uid`): kept per uid.
    per_caller: bool,
    outputs: Mutex<Outputs>,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

impl View {
    /// The view of transform `name`, running `t`.
    pub fn new(name: &str, t: Transformer) -> Self {
        View {
            name: name.to_string(),
            status: t.status(),
            size_preserving: t.size_preserving(),
            per_caller: t.per_caller(),
            transformer: Mutex::new(t),
            outputs: Mutex::default(),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        }
    }

    /// The plugin instance's status.
    pub fn status(&self) -> &StatusHandle {
        &self.status
    }

    fn check_serving(&self) -> Result<()> {
        if self.status.state() == kplug_engine::PluginState::Failed {
            return Err(fs_err!(
                libc::EIO,
                "view {} is out of service: {}",
                self.name,
                self.status.error().unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn stream_error(&self, path: &Path, e: &TransformError) -> crate::FsError {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let msg = format!("{}: {e}", path.display());
        *self.last_error.lock() = Some(msg.clone());
        tracing::warn!(view = %self.name, "{msg}");
        fs_err!(libc::EIO, "view {}: {msg}", self.name)
    }

    /// The transformed size of the file at `path` (data-tree attributes `src`): the source's
    /// for a size-preserving transform, else known or computed.
    fn size(&self, main: &dyn Tree, path: &Path, src: &Attr) -> Result<u64> {
        self.check_serving()?;
        if self.size_preserving {
            return Ok(src.size);
        }
        let key = (path.to_path_buf(), None);
        if let Some(k) = self.outputs.lock().known.get(&key)
            && k.version == version(src)
        {
            return Ok(k.size);
        }
        Ok(self.output(main, path, src, None)?.len())
    }

    /// The whole transformed output of the file at `path` for reader `uid`: kept, or
    /// computed now.
    fn output(
        &self,
        main: &dyn Tree,
        path: &Path,
        src: &Attr,
        uid: Option<u32>,
    ) -> Result<Arc<Output>> {
        self.check_serving()?;
        let key: Key = (path.to_path_buf(), uid.filter(|_| self.per_caller));
        if let Some(k) = self.outputs.lock().known.get(&key)
            && k.version == version(src)
            && let Some(o) = &k.output
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(o.clone());
        }
        let mut t = self.transformer.lock();
        // Another reader may have computed it while this one waited.
        if let Some(k) = self.outputs.lock().known.get(&key)
            && k.version == version(src)
            && let Some(o) = &k.output
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(o.clone());
        }
        t.set_caller(key.1);
        let mut attr = *src;
        for _ in 0..PASSES {
            let fh = main.open(attr.ino, libc::O_RDONLY, Caller::ROOT)?.fh;
            let mut pos = 0u64;
            let mut read = |buf: &mut [u8]| -> std::io::Result<usize> {
                let data = main
                    .read(fh, pos, buf.len() as u32)
                    .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
                buf[..data.len()].copy_from_slice(&data);
                pos += data.len() as u64;
                Ok(data.len())
            };
            let mut out = OutputWriter::new();
            let cap = view_output_cap(attr.size);
            let r = t.run_into(Some(attr.size), cap, &mut read, &mut |b| out.write(b));
            let _ = main.release(fh);
            let fig = match r {
                Ok(x) => x,
                Err(e) => return Err(self.stream_error(path, &e)),
            };
            let c = &self.counters;
            c.streams.fetch_add(1, Ordering::Relaxed);
            c.bytes_in.fetch_add(fig.bytes_in, Ordering::Relaxed);
            c.bytes_out.fetch_add(fig.bytes_out, Ordering::Relaxed);
            c.records_in.fetch_add(fig.records_in, Ordering::Relaxed);
            c.records_out.fetch_add(fig.records_out, Ordering::Relaxed);
            c.time_ns.fetch_add(fig.time_ns, Ordering::Relaxed);
            // The source must be the version the pass started from, whole.
            let now = main.getattr(attr.ino, None)?;
            if version(&now) == version(&attr) && fig.bytes_in == attr.size {
                let out = Arc::new(out.finish());
                self.outputs
                    .lock()
                    .insert(&key, version(&attr), out.clone());
                return Ok(out);
            }
            attr = now;
        }
        Err(fs_err!(
            libc::EIO,
            "view {}: {} kept changing while it was read",
            self.name,
            path.display()
        ))
    }

    /// `stats.views.NAME`.
    pub fn stats(&self) -> ViewStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let kept = self.outputs.lock();
        ViewStats {
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            cache_hits: get(&c.cache_hits),
            cached_bytes: kept.bytes,
            spilled_bytes: kept.spilled,
            errors: get(&c.errors),
            faults: self.status.faults(),
            records_in: get(&c.records_in),
            records_out: get(&c.records_out),
            streams: get(&c.streams),
            time_ns: get(&c.time_ns),
        }
    }

    /// `status.views[]`.
    pub fn entry(&self) -> ViewEntry {
        let s = self.status.snapshot();
        ViewEntry {
            error: s.error,
            last_error: self.last_error.lock().clone(),
            name: self.name.clone(),
            per_caller: self.per_caller,
            size_preserving: self.size_preserving,
            state: s.state,
        }
    }
}

/// The views of a mount, by name: what the loader installs and removes.
#[derive(Default)]
pub struct Views {
    map: RwLock<BTreeMap<String, Arc<View>>>,
}

impl Views {
    /// Serve `view` as `views/NAME/`, in place of any view of that name.
    pub fn insert(&self, view: View) {
        self.map.write().insert(view.name.clone(), Arc::new(view));
    }

    /// Serve `view` in place of the view of the same name whose instance is `previous`, only
    /// if `previous` still serves: checked holding its transformer's lock, which its faults
    /// are raised under (a tier-up never undoes a fault), and taken before the map's, so a
    /// running transform delays this swap only, not every view's lookup. Whether it was
    /// swapped.
    pub fn replace_if_serving(&self, view: View, previous: &StatusHandle) -> bool {
        let Some(old) = self
            .get(&view.name)
            .filter(|v| Arc::ptr_eq(&v.status, previous))
        else {
            return false;
        };
        let _running = old.transformer.lock();
        if previous.state() != kplug_engine::PluginState::Active {
            return false;
        }
        let mut m = self.map.write();
        // Still that view: not removed or replaced while the transform ran.
        if !m.get(&view.name).is_some_and(|v| Arc::ptr_eq(v, &old)) {
            return false;
        }
        // The same view to its readers: the same module and parameters compute the same
        // outputs, so those kept are kept (not computed again); its counters and last error
        // go on (a stream still running on the old instance adds to the old ones only).
        *view.outputs.lock() = std::mem::take(&mut *old.outputs.lock());
        view.counters.add(&old.counters);
        *view.last_error.lock() = old.last_error.lock().clone();
        m.insert(view.name.clone(), Arc::new(view));
        true
    }

    /// Remove `views/NAME/` (if the view there is `status`'s, or any with `None`).
    pub fn remove(&self, name: &str, status: Option<&StatusHandle>) {
        let mut m = self.map.write();
        if let Some(v) = m.get(name)
            && status.is_none_or(|s| Arc::ptr_eq(s, &v.status))
        {
            m.remove(name);
        }
    }

    /// The view named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<View>> {
        self.map.read().get(name).cloned()
    }

    /// Every view, by name.
    pub fn all(&self) -> Vec<Arc<View>> {
        self.map.read().values().cloned().collect()
    }
}

/// A node of the views tree: the root (`views/`), or a path in a view.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Node {
    Root,
    In(String, PathBuf),
}

#[derive(Default)]
struct Nodes {
    by_node: HashMap<Node, u64>,
    by_ino: HashMap<u64, Node>,
}

/// The data tree's references held while a path is used, given back on drop.
struct Held<'a> {
    main: &'a dyn Tree,
    inos: Vec<u64>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for &ino in self.inos.iter().rev() {
            self.main.forget(ino, 1);
        }
    }
}

/// The `.kplug/views/` tree.
pub struct ViewsTree {
    ids: TreeIds,
    owner: Owner,
    started: SystemTime,
    main: Arc<dyn Tree>,
    views: Arc<Views>,
    nodes: Mutex<Nodes>,
    next: AtomicU64,
    /// Open files (their output) and listings (`None`).
    open: Handles<Option<Arc<Output>>>,
}

impl ViewsTree {
    /// `views/` over the data tree `main`, serving `views`.
    pub fn new(ids: TreeIds, owner: Owner, main: Arc<dyn Tree>, views: Arc<Views>) -> Self {
        let t = ViewsTree {
            ids,
            owner,
            started: SystemTime::now(),
            main,
            views,
            nodes: Mutex::default(),
            next: AtomicU64::new(2),
            open: Handles::new(ids),
        };
        t.nodes.lock().by_ino.insert(ids.root(), Node::Root);
        t.nodes.lock().by_node.insert(Node::Root, ids.root());
        t
    }

    fn ino_of(&self, node: Node) -> u64 {
        let mut n = self.nodes.lock();
        if let Some(&ino) = n.by_node.get(&node) {
            return ino;
        }
        let ino = self.ids.ino(self.next.fetch_add(1, Ordering::Relaxed));
        n.by_node.insert(node.clone(), ino);
        n.by_ino.insert(ino, node);
        ino
    }

    fn node(&self, ino: u64) -> Result<Node> {
        self.nodes
            .lock()
            .by_ino
            .get(&ino)
            .cloned()
            .ok_or_else(|| fs_err!(libc::ENOENT, "no such view node"))
    }

    fn view(&self, name: &str) -> Result<Arc<View>> {
        self.views
            .get(name)
            .ok_or_else(|| fs_err!(libc::ENOENT, "no view {name}"))
    }

    /// Resolve `path` in the data tree: its attributes, the references held meanwhile.
    fn resolve(&self, path: &Path) -> Result<(Attr, Held<'_>)> {
        let mut held = Held {
            main: &*self.main,
            inos: Vec::new(),
        };
        let mut attr = self.main.getattr(DATA_ROOT, None)?;
        for (i, c) in path.components().enumerate() {
            let std::path::Component::Normal(name) = c else {
                return Err(fs_err!(libc::ENOENT, "bad view path"));
            };
            if i == 0 && name == crate::fs::CONTROL_DIR {
                return Err(fs_err!(
                    libc::ENOENT,
                    "no {} in a view",
                    crate::fs::CONTROL_DIR
                ));
            }
            let e = self.main.lookup(attr.ino, name)?;
            held.inos.push(e.attr.ino);
            attr = e.attr;
        }
        Ok((attr, held))
    }

    /// The attributes of a view's node at `path`: the source's, read-only, with the
    /// transformed size.
    fn view_attr(&self, ino: u64, view: &View, path: &Path) -> Result<Attr> {
        let (src, _held) = self.resolve(path)?;
        let mut a = src;
        a.ino = ino;
        a.perm &= !0o222;
        if src.kind == FileKind::File {
            a.size = view.size(&*self.main, path, &src)?;
            a.blocks = a.size.div_ceil(512);
        }
        Ok(a)
    }

    fn attr_of(&self, ino: u64) -> Result<Attr> {
        self.attr_of_node(&self.node(ino)?, ino)
    }

    fn attr_of_node(&self, node: &Node, ino: u64) -> Result<Attr> {
        match node {
            Node::Root => Ok(self.owner.attr(ino, FileKind::Dir, 0o555, 0, self.started)),
            Node::In(name, path) => {
                let view = self.view(name)?;
                self.view_attr(ino, &view, path)
            }
        }
    }

    /// The entries of a directory: view names at the root, the data tree's listing in a view.
    fn listing(&self, node: &Node) -> Result<Vec<(Node, FileKind, OsString)>> {
        match node {
            Node::Root => Ok(self
                .views
                .all()
                .iter()
                .map(|v| {
                    let n = Node::In(v.name.clone(), PathBuf::new());
                    (n, FileKind::Dir, OsString::from(&v.name))
                })
                .collect()),
            Node::In(name, path) => {
                self.view(name)?;
                let (dir, _held) = self.resolve(path)?;
                if dir.kind != FileKind::Dir {
                    return Err(fs_err!(libc::ENOTDIR, "not a directory"));
                }
                let fh = self.main.opendir(dir.ino)?;
                let mut sink = Collect::default();
                let mut offset = 0;
                let r = loop {
                    let before = sink.entries.len();
                    if let Err(e) = self.main.readdir(dir.ino, fh, offset, &mut sink) {
                        break Err(e);
                    }
                    if sink.entries.len() == before {
                        break Ok(());
                    }
                    offset = sink.last_offset;
                };
                let _ = self.main.releasedir(fh);
                r?;
                Ok(sink
                    .entries
                    .into_iter()
                    .filter(|(n, _)| n != "." && n != "..")
                    .filter(|(n, _)| !(path.as_os_str().is_empty() && n == crate::fs::CONTROL_DIR))
                    .map(|(n, k)| (Node::In(name.clone(), path.join(&n)), k, n))
                    .collect())
            }
        }
    }
}

/// Collects a data-tree listing.
#[derive(Default)]
struct Collect {
    entries: Vec<(OsString, FileKind)>,
    last_offset: u64,
}

impl DirSink for Collect {
    fn add(&mut self, _ino: u64, offset: u64, kind: FileKind, name: &OsStr) -> bool {
        self.entries.push((name.to_os_string(), kind));
        self.last_offset = offset;
        false
    }
}

impl Tree for ViewsTree {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let child = match self.node(parent)? {
            _ if name == "." => return Ok(entry(self.attr_of(parent)?)),
            Node::Root if name == ".." => return Ok(entry(self.attr_of(parent)?)),
            Node::Root => {
                let name = name.to_string_lossy().into_owned();
                self.view(&name)?;
                Node::In(name, PathBuf::new())
            }
            Node::In(view, path) if name == ".." => match path.parent() {
                Some(p) => Node::In(view, p.to_path_buf()),
                None => Node::Root,
            },
            Node::In(view, path) => Node::In(view, path.join(name)),
        };
        // Numbered only once it exists: a failed lookup leaves nothing behind.
        let mut attr = self.attr_of_node(&child, 0)?;
        attr.ino = self.ino_of(child);
        Ok(entry(attr))
    }

    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        self.attr_of(ino)
    }

    fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let Node::In(_, path) = self.node(ino)? else {
            return Err(fs_err!(libc::EINVAL, "not a symlink"));
        };
        let (src, _held) = self.resolve(&path)?;
        self.main.readlink(src.ino)
    }

    fn open(&self, ino: u64, flags: i32, caller: Caller) -> Result<Opened> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(fs_err!(libc::EROFS, "views are read-only"));
        }
        let Node::In(name, path) = self.node(ino)? else {
            return Err(fs_err!(libc::EISDIR, "a directory"));
        };
        let view = self.view(&name)?;
        let (src, _held) = self.resolve(&path)?;
        if src.kind != FileKind::File {
            return Err(fs_err!(libc::EISDIR, "not a regular file"));
        }
        let out = view.output(&*self.main, &path, &src, Some(caller.uid))?;
        Ok(Opened::direct(self.open.insert(Some(out))))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open.with(fh, |h| match h {
            Some(out) => out.read_at(offset, size),
            None => Err(fs_err!(libc::EISDIR, "a directory")),
        })
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }

    fn opendir(&self, ino: u64) -> Result<u64> {
        if self.attr_of(ino)?.kind != FileKind::Dir {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        Ok(self.open.insert(None))
    }

    fn readdir(&self, ino: u64, _fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        let node = self.node(ino)?;
        let parent = match &node {
            Node::Root => ino,
            Node::In(v, p) => self.ino_of(match p.parent() {
                Some(pp) => Node::In(v.clone(), pp.to_path_buf()),
                None => Node::Root,
            }),
        };
        let listing: Vec<(u64, FileKind, OsString)> = self
            .listing(&node)?
            .into_iter()
            .map(|(n, k, name)| (self.ino_of(n), k, name))
            .collect();
        list_dir(
            sink,
            offset,
            ino,
            parent,
            listing.iter().map(|(i, k, n)| (*i, *k, n.as_os_str())),
        );
        Ok(())
    }

    fn readdirplus(
        &self,
        ino: u64,
        _fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let dot = entry(self.attr_of(ino)?);
        let listing = self.listing(&self.node(ino)?)?;
        list_dir_plus(
            sink,
            offset,
            &dot,
            listing.iter(),
            |(_, _, name)| name.as_os_str(),
            // An entry whose size cannot be had (a failed view) is skipped, not shown wrong.
            |(n, _, _)| Ok(self.attr_of(self.ino_of(n.clone())).ok().map(entry)),
            |_| {},
        )?;
        Ok(())
    }

    fn releasedir(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}
