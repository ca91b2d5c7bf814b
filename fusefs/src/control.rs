//! The control directory `MOUNT/.kplug/`: a small virtual tree, like sysfs, through which an
//! operator manages the plugins of a live mount.
//!
//! ```text
//! .kplug/            dr-xr-xr-x  owner: the mounting user
//! ├── status         r--r--r--   JSON: every plugin and which policy serves each role
//! ├── stats          r--r--r--   JSON: counters and latencies of every layer (docs/METRICS.md)
//! ├── trace          rw-r--r--   write `start /abs/path.kplug` or `stop`: record data accesses
//! └── plugins/       rwxr-xr-x   drop a .wasm here to load it; rm it to unload it;
//!                                NAME.params beside NAME.wasm sets its parameters
//! ```
//!
//! **Loading.** Writes to a file in `plugins/` only fill a buffer. The `close()` of the
//! writer (FUSE `flush`) compiles and validates the module, instantiates it for the cache's
//! capacity and installs it for every role it implements, atomically between two requests
//! (the cache core's mutex). A module that fails any step is refused: `close()` fails with
//! EINVAL, so `cp` reports an error, the reason shows in `status`, and the policies that were
//! serving keep serving. Replacing a file replaces its plugin; `rm` returns its roles to the
//! built-ins. The plugin's name is the file name without `.wasm`.
//!
//! **Parameters.** `plugins/NAME.params` holds `key=value` parameters (newline- or
//! comma-separated, `#` comments) passed to `NAME.wasm` before its `kplug_init`. Write it
//! before copying the plugin, or afterwards to retune a live plugin: its `close()` reloads
//! `NAME.wasm` with the new parameters (EINVAL, and nothing changes, when the plugin rejects
//! them).
//!
//! **Who may write.** The tree belongs to the user who mounted; the kernel's
//! `default_permissions` check then lets only that user (and root) create, write or remove
//! files in `plugins/`: anyone else gets EACCES.
//!
//! **Numbers.** Virtual inodes live above `inode::VIRTUAL_BASE` and are never forgotten;
//! virtual handles carry `VIRTUAL_FH`. An entry named `.kplug` in the backing root is hidden
//! by this tree and never touched.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kplug_host::{
    BuiltinAdmission, BuiltinEviction, BuiltinPrefetch, EngineConfig, PluginEngine, PluginRegistry,
    Role, RoleSet, StatusHandle, StatusSnapshot,
};
use parking_lot::Mutex;
use serde::Serialize;

use crate::blockcache::BlockCache;
use crate::error::Result;
use crate::fs::{Attr, Caller, Entry, FileKind};
use crate::fs_err;
use crate::history::HistoryState;
use crate::inode::VIRTUAL_BASE;
use crate::metrics::FuseMetrics;

/// Name of the control directory in the mount's root.
pub const CONTROL_DIR: &str = ".kplug";
/// Inode of `.kplug`.
pub const INO_CONTROL: u64 = VIRTUAL_BASE + 1;
/// Inode of `.kplug/status`.
pub const INO_STATUS: u64 = VIRTUAL_BASE + 2;
/// Inode of `.kplug/plugins`.
pub const INO_PLUGINS: u64 = VIRTUAL_BASE + 3;
/// Inode of `.kplug/trace`.
pub const INO_TRACE: u64 = VIRTUAL_BASE + 4;
/// Inode of `.kplug/stats`.
pub const INO_STATS: u64 = VIRTUAL_BASE + 5;
/// First inode of plugin files.
const INO_FIRST_PLUGIN: u64 = VIRTUAL_BASE + 1024;
/// Bit set in every virtual file handle.
pub const VIRTUAL_FH: u64 = 1 << 63;

/// True for inode numbers of the control tree.
pub fn is_virtual(ino: u64) -> bool {
    ino >= VIRTUAL_BASE
}

/// True for handles of the control tree.
pub fn is_virtual_fh(fh: u64) -> bool {
    fh & VIRTUAL_FH != 0
}

/// A file in `plugins/`.
struct PluginFile {
    ino: u64,
    data: Vec<u8>,
    /// Written since the last load attempt.
    dirty: bool,
    mtime: SystemTime,
    /// The instance serving (or that served) this file's roles.
    status: Option<StatusHandle>,
    /// Why the last load attempt was refused.
    refused: Option<(String, SystemTime)>,
    /// When the `close()` that loaded the current plugin began.
    closed_at: Option<std::time::Instant>,
}

enum Handle {
    Status(Vec<u8>),
    Plugin(String),
    /// `.kplug/trace`: the state rendered at open, and the command being written.
    Trace(Vec<u8>, Vec<u8>),
    Dir,
}

/// One plugin in `.kplug/status`.
#[derive(Debug, Serialize)]
struct PluginJson {
    name: String,
    file: String,
    roles: Vec<Role>,
    /// A governor (exports `kplug_tick`): it may serve no role and picks those that do.
    governor: bool,
    state: String,
    error: Option<String>,
    loaded_at: u64,
    calls: u64,
    faults: u64,
    /// Microseconds from the `close()` that loaded the plugin to its first decision (its
    /// first hook call once installed); null until then.
    swap_latency_us: Option<u64>,
    /// The text of `NAME.params`, when present.
    params: Option<String>,
}

/// The control plane of one mount.
pub struct Control {
    cache: Arc<BlockCache>,
    registry: Mutex<PluginRegistry>,
    files: Mutex<BTreeMap<String, PluginFile>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    next_ino: AtomicU64,
    owner: (u32, u32),
    started: SystemTime,
    /// Monotonic start, for `uptime_ms`.
    started_at: std::time::Instant,
    max_module_bytes: usize,
    /// The FUSE adapter's request counters (absent when driven without FUSE).
    fuse_metrics: OnceLock<Arc<FuseMetrics>>,
    /// The history writer, when `--history-period` is not 0.
    history: OnceLock<Arc<HistoryState>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn plugin_name(file: &str) -> &str {
    file.strip_suffix(".wasm").unwrap_or(file)
}

/// Suffix of parameter files: `NAME.params` holds the `key=value` parameters of `NAME.wasm`.
const PARAMS_SUFFIX: &str = ".params";

fn is_params_file(file: &str) -> bool {
    file.ends_with(PARAMS_SUFFIX)
}

/// The parameter file of a plugin file, and the plugin file of a parameter file.
fn params_file_of(plugin_file: &str) -> String {
    format!("{}{PARAMS_SUFFIX}", plugin_name(plugin_file))
}

fn plugin_file_of(params_file: &str) -> String {
    format!(
        "{}.wasm",
        params_file
            .strip_suffix(PARAMS_SUFFIX)
            .unwrap_or(params_file)
    )
}

/// Parse a parameter file: `key=value` pairs separated by newlines or commas; `#` starts a
/// comment.
pub fn parse_params_text(text: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let text =
        std::str::from_utf8(text).map_err(|_| "parameters must be UTF-8 text".to_string())?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for item in line.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value"))?;
            if k.trim().is_empty() {
                return Err(format!("{item:?} has an empty key"));
            }
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(out)
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Control {
    /// The `prefetch` object shared by `.kplug/status` and `.kplug/stats`.
    fn prefetch_object(&self, stats: &kplug_host::CacheStats) -> serde_json::Value {
        let counters = self.cache.counters();
        serde_json::json!({
            "issued_blocks": stats.prefetch_planned,
            "completed_blocks": stats.prefetch_inserted,
            "used_blocks": stats.prefetch_used,
            "wasted_blocks": stats.prefetch_wasted,
            "dropped_blocks": counters.prefetch_dropped.load(Ordering::Relaxed),
        })
    }

    /// The `cache` object shared by `.kplug/status` and `.kplug/stats`.
    fn cache_object(
        &self,
        stats: &kplug_host::CacheStats,
        occupancy: (u64, u64),
    ) -> serde_json::Value {
        let counters = self.cache.counters();
        serde_json::json!({
            "block_size": self.cache.block_size(),
            "resident_blocks": occupancy.0,
            "capacity_blocks": occupancy.1,
            "hits": stats.hits,
            "misses": stats.misses,
            "evictions": stats.evictions,
            "insertions": stats.insertions,
            "admission_refusals": stats.admission_refusals,
            "invalidations": stats.invalidations,
            "faults": stats.faults,
            "policy_switches": stats.policy_switches,
            "deduplicated_fetches": counters.deduplicated.load(Ordering::Relaxed),
            "stale_fetches_dropped": counters.stale_fetches.load(Ordering::Relaxed),
        })
    }

    /// The control plane of a mount owned by `owner` (uid, gid), over `cache`.
    pub fn new(cache: Arc<BlockCache>, owner: (u32, u32), engine: EngineConfig) -> Result<Self> {
        let max_module_bytes = engine.max_module_bytes;
        let engine =
            PluginEngine::new(engine).map_err(|e| fs_err!(libc::EIO, "plugin engine: {e}"))?;
        Ok(Self {
            cache,
            registry: Mutex::new(PluginRegistry::new(engine)),
            files: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            next_ino: AtomicU64::new(INO_FIRST_PLUGIN),
            owner,
            started: SystemTime::now(),
            started_at: std::time::Instant::now(),
            max_module_bytes,
            fuse_metrics: OnceLock::new(),
            history: OnceLock::new(),
        })
    }

    /// Show `metrics` (the FUSE adapter's) in `stats`.
    pub fn attach_fuse_metrics(&self, metrics: Arc<FuseMetrics>) {
        let _ = self.fuse_metrics.set(metrics);
    }

    /// Show the history writer's state in `stats`.
    pub fn attach_history(&self, history: Arc<HistoryState>) {
        let _ = self.history.set(history);
    }

    fn attr(&self, ino: u64, kind: FileKind, perm: u16, size: u64, mtime: SystemTime) -> Attr {
        Attr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            kind,
            perm,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 4096,
        }
    }

    fn entry(attr: Attr) -> Entry {
        // Virtual attributes change without the kernel knowing: never cache them.
        Entry {
            attr,
            ttl: Duration::ZERO,
        }
    }

    /// Attributes of a virtual inode.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        Ok(match ino {
            INO_CONTROL => self.attr(ino, FileKind::Dir, 0o555, 0, self.started),
            INO_STATUS | INO_STATS => self.attr(ino, FileKind::File, 0o444, 0, SystemTime::now()),
            INO_TRACE => self.attr(ino, FileKind::File, 0o644, 0, SystemTime::now()),
            INO_PLUGINS => self.attr(ino, FileKind::Dir, 0o755, 0, self.started),
            _ => {
                let files = self.files.lock();
                let f = files
                    .values()
                    .find(|f| f.ino == ino)
                    .ok_or_else(|| fs_err!(libc::ENOENT, "plugin file gone"))?;
                self.attr(ino, FileKind::File, 0o644, f.data.len() as u64, f.mtime)
            }
        })
    }

    /// The entry of `.kplug` itself.
    pub fn root_entry(&self) -> Entry {
        Self::entry(self.attr(INO_CONTROL, FileKind::Dir, 0o555, 0, self.started))
    }

    /// Look up `name` in a virtual directory.
    pub fn lookup(&self, parent: u64, name: &str) -> Result<Entry> {
        let ino = match (parent, name) {
            (INO_CONTROL, "status") => INO_STATUS,
            (INO_CONTROL, "stats") => INO_STATS,
            (INO_CONTROL, "trace") => INO_TRACE,
            (INO_CONTROL, "plugins") => INO_PLUGINS,
            (INO_CONTROL | INO_PLUGINS, "." | "..") => parent,
            (INO_PLUGINS, _) => self
                .files
                .lock()
                .get(name)
                .map(|f| f.ino)
                .ok_or_else(|| fs_err!(libc::ENOENT, "no plugin {name}"))?,
            (INO_CONTROL, _) => return Err(fs_err!(libc::ENOENT, "no {name} in .kplug")),
            _ => return Err(fs_err!(libc::ENOTDIR, "not a directory")),
        };
        Ok(Self::entry(self.getattr(ino)?))
    }

    /// Entries of a virtual directory: (inode, kind, name).
    pub fn list(&self, ino: u64) -> Result<Vec<(u64, FileKind, String)>> {
        match ino {
            INO_CONTROL => Ok(vec![
                (INO_PLUGINS, FileKind::Dir, "plugins".into()),
                (INO_STATS, FileKind::File, "stats".into()),
                (INO_STATUS, FileKind::File, "status".into()),
                (INO_TRACE, FileKind::File, "trace".into()),
            ]),
            INO_PLUGINS => Ok(self
                .files
                .lock()
                .iter()
                .map(|(n, f)| (f.ino, FileKind::File, n.clone()))
                .collect()),
            _ => Err(fs_err!(libc::ENOTDIR, "not a directory")),
        }
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) | VIRTUAL_FH;
        self.handles.lock().insert(fh, h);
        fh
    }

    /// Open a virtual directory.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        self.list(ino)?;
        Ok(self.new_fh(Handle::Dir))
    }

    /// Open a virtual file. `status` is rendered once per open, so a reader sees one
    /// consistent snapshot.
    pub fn open(&self, ino: u64, flags: i32) -> Result<u64> {
        match ino {
            INO_STATUS => {
                if flags & libc::O_ACCMODE != libc::O_RDONLY {
                    return Err(fs_err!(libc::EACCES, ".kplug/status is read-only"));
                }
                Ok(self.new_fh(Handle::Status(self.status_json().into_bytes())))
            }
            INO_STATS => {
                if flags & libc::O_ACCMODE != libc::O_RDONLY {
                    return Err(fs_err!(libc::EACCES, ".kplug/stats is read-only"));
                }
                Ok(self.new_fh(Handle::Status(self.stats_json().into_bytes())))
            }
            INO_TRACE => {
                let mut state =
                    serde_json::to_string_pretty(&self.cache.recorder().state()).expect("json");
                state.push('\n');
                Ok(self.new_fh(Handle::Trace(state.into_bytes(), Vec::new())))
            }
            INO_CONTROL | INO_PLUGINS => Err(fs_err!(libc::EISDIR, "a directory")),
            _ => {
                let mut files = self.files.lock();
                let (name, f) = files
                    .iter_mut()
                    .find(|(_, f)| f.ino == ino)
                    .ok_or_else(|| fs_err!(libc::ENOENT, "plugin file gone"))?;
                if flags & libc::O_TRUNC != 0 {
                    f.data.clear();
                    f.dirty = true;
                }
                let name = name.clone();
                drop(files);
                Ok(self.new_fh(Handle::Plugin(name)))
            }
        }
    }

    /// Create a plugin file in `plugins/`.
    pub fn create(&self, parent: u64, name: &str, _caller: Caller) -> Result<(Entry, u64)> {
        if parent != INO_PLUGINS {
            return Err(fs_err!(
                libc::EACCES,
                "files can only be created in .kplug/plugins"
            ));
        }
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return Err(fs_err!(libc::EINVAL, "bad plugin file name {name:?}"));
        }
        let mut files = self.files.lock();
        let ino = match files.get_mut(name) {
            Some(f) => {
                f.data.clear();
                f.dirty = true;
                f.ino
            }
            None => {
                let ino = self.next_ino.fetch_add(1, Ordering::Relaxed);
                files.insert(
                    name.to_string(),
                    PluginFile {
                        ino,
                        data: Vec::new(),
                        dirty: true,
                        mtime: SystemTime::now(),
                        status: None,
                        refused: None,
                        closed_at: None,
                    },
                );
                ino
            }
        };
        drop(files);
        let fh = self.new_fh(Handle::Plugin(name.to_string()));
        Ok((Self::entry(self.getattr(ino)?), fh))
    }

    /// Read from a virtual file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let slice = |d: &[u8]| {
            let start = (offset as usize).min(d.len());
            let end = start.saturating_add(size as usize).min(d.len());
            d[start..end].to_vec()
        };
        let handles = self.handles.lock();
        match handles.get(&fh) {
            Some(Handle::Status(d)) | Some(Handle::Trace(d, _)) => Ok(slice(d)),
            Some(Handle::Plugin(name)) => {
                let files = self.files.lock();
                Ok(files.get(name).map(|f| slice(&f.data)).unwrap_or_default())
            }
            Some(Handle::Dir) => Err(fs_err!(libc::EISDIR, "a directory")),
            None => Err(fs_err!(libc::EBADF, "unknown handle")),
        }
    }

    /// Write to a plugin file (buffered until `flush`).
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let name = match self.handles.lock().get_mut(&fh) {
            Some(Handle::Plugin(name)) => name.clone(),
            Some(Handle::Trace(_, cmd)) => {
                // Commands are one short line; anything longer is not a command.
                if offset as usize + data.len() > 4096 {
                    return Err(fs_err!(
                        libc::EINVAL,
                        "a .kplug/trace command is one short line"
                    ));
                }
                let end = offset as usize + data.len();
                if cmd.len() < end {
                    cmd.resize(end, 0);
                }
                cmd[offset as usize..end].copy_from_slice(data);
                return Ok(data.len() as u32);
            }
            Some(_) => return Err(fs_err!(libc::EBADF, "not writable")),
            None => return Err(fs_err!(libc::EBADF, "unknown handle")),
        };
        let end = offset as usize + data.len();
        if end > self.max_module_bytes {
            return Err(fs_err!(
                libc::EFBIG,
                "plugin modules are limited to {} bytes",
                self.max_module_bytes
            ));
        }
        let mut files = self.files.lock();
        let f = files
            .get_mut(&name)
            .ok_or_else(|| fs_err!(libc::ENOENT, "plugin file removed"))?;
        if f.data.len() < end {
            f.data.resize(end, 0);
        }
        f.data[offset as usize..end].copy_from_slice(data);
        f.dirty = true;
        f.mtime = SystemTime::now();
        Ok(data.len() as u32)
    }

    /// Truncate a plugin file.
    pub fn truncate(&self, ino: u64, size: u64) -> Result<Attr> {
        if ino == INO_TRACE {
            // `echo stop > .kplug/trace` truncates first: commands replace, never append.
            return self.getattr(ino);
        }
        if size as usize > self.max_module_bytes {
            return Err(fs_err!(
                libc::EFBIG,
                "plugin modules are limited to {} bytes",
                self.max_module_bytes
            ));
        }
        {
            let mut files = self.files.lock();
            let f = files
                .values_mut()
                .find(|f| f.ino == ino)
                .ok_or_else(|| fs_err!(libc::EACCES, "read-only"))?;
            f.data.resize(size as usize, 0);
            f.dirty = true;
            f.mtime = SystemTime::now();
        }
        self.getattr(ino)
    }

    /// `close()` of a descriptor: load what was written. EINVAL when the module is refused.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let name = match self.handles.lock().get_mut(&fh) {
            Some(Handle::Plugin(name)) => name.clone(),
            Some(Handle::Trace(_, cmd)) if !cmd.is_empty() => {
                let cmd = std::mem::take(cmd);
                return self.trace_command(&cmd);
            }
            _ => return Ok(()),
        };
        let closed_at = std::time::Instant::now();
        let bytes = {
            let mut files = self.files.lock();
            let Some(f) = files.get_mut(&name) else {
                return Ok(());
            };
            if !f.dirty {
                return Ok(());
            }
            f.dirty = false;
            f.data.clone()
        };
        if is_params_file(&name) {
            return self.flush_params(&name, &bytes);
        }
        match self.load(&name, &bytes) {
            Ok(status) => {
                let mut files = self.files.lock();
                if let Some(f) = files.get_mut(&name) {
                    f.status = Some(status);
                    f.refused = None;
                    f.closed_at = Some(closed_at);
                }
                tracing::info!(plugin = plugin_name(&name), "plugin loaded");
                Ok(())
            }
            Err(msg) => {
                tracing::warn!(plugin = plugin_name(&name), "plugin refused: {msg}");
                let mut files = self.files.lock();
                if let Some(f) = files.get_mut(&name) {
                    f.refused = Some((msg.clone(), SystemTime::now()));
                }
                Err(fs_err!(libc::EINVAL, "plugin {name} refused: {msg}"))
            }
        }
    }

    /// A command written to `.kplug/trace`: `start /absolute/path` or `stop`.
    fn trace_command(&self, cmd: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(cmd);
        let text = text.trim();
        let rec = self.cache.recorder();
        let r = match text
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a, b.trim()))
            .unwrap_or((text, ""))
        {
            ("start", path) if !path.is_empty() => rec.start(std::path::Path::new(path)),
            ("stop", "") => rec.stop().map(drop),
            _ => Err(format!(
                "unknown command {text:?} (expected `start /absolute/path` or `stop`)"
            )),
        };
        r.map_err(|msg| {
            tracing::warn!("trace: {msg}");
            fs_err!(libc::EINVAL, "trace: {msg}")
        })
    }

    /// A parameter file was written: check it, and reload its plugin (if loaded) with it.
    fn flush_params(&self, name: &str, text: &[u8]) -> Result<()> {
        let refuse = |msg: String| {
            tracing::warn!(file = name, "parameters refused: {msg}");
            if let Some(f) = self.files.lock().get_mut(name) {
                f.refused = Some((msg.clone(), SystemTime::now()));
            }
            Err(fs_err!(libc::EINVAL, "{name}: {msg}"))
        };
        if let Err(msg) = parse_params_text(text) {
            return refuse(msg);
        }
        if let Some(f) = self.files.lock().get_mut(name) {
            f.refused = None;
        }
        let plugin_file = plugin_file_of(name);
        let wasm = {
            let files = self.files.lock();
            files
                .get(&plugin_file)
                .filter(|f| f.status.is_some())
                .map(|f| f.data.clone())
        };
        let Some(wasm) = wasm else { return Ok(()) };
        let closed_at = std::time::Instant::now();
        match self.load(&plugin_file, &wasm) {
            Ok(status) => {
                if let Some(f) = self.files.lock().get_mut(&plugin_file) {
                    f.status = Some(status);
                    f.refused = None;
                    f.closed_at = Some(closed_at);
                }
                tracing::info!(
                    plugin = plugin_name(&plugin_file),
                    "plugin reloaded with new parameters"
                );
                Ok(())
            }
            Err(msg) => refuse(format!("reloading {plugin_file}: {msg}")),
        }
    }

    /// Compile, validate, instantiate and install; the previous plugin of the same file gives
    /// back the roles the new one does not take.
    fn load(&self, file: &str, bytes: &[u8]) -> std::result::Result<StatusHandle, String> {
        let name = plugin_name(file);
        let capacity = self.cache.with_core(|c| c.capacity());
        let params = match self.files.lock().get(&params_file_of(file)) {
            Some(f) => {
                parse_params_text(&f.data).map_err(|e| format!("{}: {e}", params_file_of(file)))?
            }
            None => Vec::new(),
        };
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let plugin = {
            let mut reg = self.registry.lock();
            reg.add(name, bytes).map_err(|e| e.to_string())?;
            reg.instantiate(name, &params, capacity)
                .map_err(|e| e.to_string())?
        };
        let roles = plugin.roles();
        let status = plugin.status();
        let previous = self.files.lock().get(file).and_then(|f| f.status.clone());
        if plugin.is_governor() {
            // Candidates are policies of the binary or other plugins dropped here.
            let engine = self.registry.lock().engine().clone();
            let loaded: BTreeMap<String, kplug_host::CompiledPlugin> = {
                let reg = self.registry.lock();
                reg.names()
                    .filter_map(|n| reg.get(n).map(|c| (n.to_string(), c.clone())))
                    .collect()
            };
            let resolve = |n: &str| -> std::result::Result<kplug_host::CompiledPlugin, String> {
                if let Some(c) = loaded.get(n) {
                    return Ok(c.clone());
                }
                let e = crate::policies::find(n)
                    .ok_or_else(|| format!("no policy named {n} in this binary or in plugins/"))?;
                engine.compile(n, e.wasm).map_err(|e| e.to_string())
            };
            self.cache
                .with_core(|core| core.install_governor(plugin, &resolve, 0))
                .map_err(|e| e.to_string())?;
            self.cache.start_governor_ticker();
            return Ok(status);
        }
        self.cache.with_core(|core| {
            core.install_plugin(plugin, roles)
                .map_err(|e| e.to_string())?;
            if let Some(prev) = previous {
                Self::return_roles(core, &prev, roles);
            }
            Ok(status)
        })
    }

    /// Give every role `status`'s plugin still serves, except those in `keep`, to the built-ins.
    fn return_roles(
        core: &mut kplug_host::CacheCore<crate::blockcache::Block>,
        status: &StatusHandle,
        keep: RoleSet,
    ) {
        for role in [Role::Eviction, Role::Admission, Role::Prefetch] {
            if keep.contains(role) {
                continue;
            }
            let serves = core
                .policy(role)
                .plugin
                .is_some_and(|p| Arc::ptr_eq(&p, status));
            if serves {
                match role {
                    Role::Eviction => core.set_eviction(BuiltinEviction::default()),
                    Role::Admission => core.set_admission(BuiltinAdmission::default()),
                    Role::Prefetch => core.set_prefetch(BuiltinPrefetch::default()),
                }
            }
        }
    }

    /// Close a virtual handle.
    pub fn release(&self, fh: u64) -> Result<()> {
        self.handles
            .lock()
            .remove(&fh)
            .map(drop)
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown handle"))
    }

    /// `rm .kplug/plugins/NAME`: unload it; its roles go back to the built-ins.
    pub fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        if parent != INO_PLUGINS {
            return Err(fs_err!(libc::EPERM, "only plugin files can be removed"));
        }
        let f = self
            .files
            .lock()
            .remove(name)
            .ok_or_else(|| fs_err!(libc::ENOENT, "no plugin {name}"))?;
        if let Some(status) = f.status {
            self.cache.with_core(|core| {
                if core.governor_name() == Some(plugin_name(name)) {
                    core.remove_governor();
                }
                Self::return_roles(core, &status, RoleSet::default())
            });
        }
        tracing::info!(plugin = plugin_name(name), "plugin removed");
        Ok(())
    }

    /// The document of `.kplug/stats` (see docs/METRICS.md for every field).
    pub fn stats_value(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let now = SystemTime::now();
        // Plugin files first (their lock is never taken with the core's).
        let handles: Vec<(String, Option<StatusHandle>)> = self
            .files
            .lock()
            .iter()
            .filter(|(file, _)| !is_params_file(file))
            .map(|(file, f)| (plugin_name(file).to_string(), f.status.clone()))
            .collect();
        let (active, serving, stats, occupancy) = self.cache.with_core(|core| {
            let mut active = Map::new();
            let mut serving: Vec<(Role, StatusHandle)> = Vec::new();
            for role in [Role::Eviction, Role::Admission, Role::Prefetch] {
                let p = core.policy(role);
                let v = match &p.plugin {
                    Some(h) => {
                        serving.push((role, h.clone()));
                        p.name
                    }
                    None => format!("builtin:{}", p.name),
                };
                active.insert(role.name().to_string(), v.into());
            }
            (
                active,
                serving,
                *core.stats(),
                (core.len() as u64, core.capacity()),
            )
        });
        let mut plugins = Map::new();
        for (name, handle) in handles {
            let v = match handle {
                Some(h) => {
                    let snap = h.snapshot();
                    let active_roles: Vec<&str> = serving
                        .iter()
                        .filter(|(_, s)| Arc::ptr_eq(s, &h))
                        .map(|(r, _)| r.name())
                        .collect();
                    json!({
                        "state": snap.state,
                        "roles": snap.roles,
                        "governor": snap.governor,
                        "active_roles": active_roles,
                        "calls": snap.calls,
                        "faults": snap.faults,
                        "time_ns": h.time_ns(),
                    })
                }
                None => json!({
                    "state": "failed",
                    "roles": [],
                    "governor": false,
                    "active_roles": [],
                    "calls": 0,
                    "faults": 0,
                    "time_ns": 0,
                }),
            };
            plugins.insert(name, v);
        }
        let backend = self.cache.backend();
        let mut fuse = Map::new();
        if let Some(m) = self.fuse_metrics.get() {
            for op in m.snapshot() {
                fuse.insert(
                    op.op.name().to_string(),
                    json!({
                        "count": op.count,
                        "errors": op.errors,
                        "bytes": op.bytes,
                        "latency_us": op.latency.latency_us(),
                    }),
                );
            }
        }
        let hints = match self.cache.hint_stats() {
            Some(h) => json!({
                "backend": h.backend,
                "forwarded": h.forwarded,
                "bytes": h.bytes,
                "errors": h.errors,
            }),
            None => Value::Null,
        };
        let mut doc = json!({
            "time_unix_ms": millis(now),
            "uptime_ms": self.started_at.elapsed().as_millis() as u64,
            "cache": self.cache_object(&stats, occupancy),
            "prefetch": self.prefetch_object(&stats),
            "backend": {
                "reads": backend.reads(),
                "bytes": backend.bytes(),
                "emulated_latency_us": backend.latency().as_micros() as u64,
                "latency_us": backend.read_latency().latency_us(),
            },
            "fuse": fuse,
            "kernel_hints": hints,
            "active": active,
            "plugins": plugins,
        });
        if let Some(h) = self.history.get() {
            doc["history"] = h.json();
        }
        doc
    }

    /// The text of `.kplug/stats`.
    pub fn stats_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.stats_value()).expect("json");
        s.push('\n');
        s
    }

    /// The JSON document of `.kplug/status`.
    pub fn status_json(&self) -> String {
        let files = self.files.lock();
        let mut plugins = Vec::new();
        for (file, f) in files.iter() {
            if is_params_file(file) {
                continue;
            }
            let params = files
                .get(&params_file_of(file))
                .map(|p| String::from_utf8_lossy(&p.data).trim().to_string());
            let snap: Option<StatusSnapshot> = f.status.as_ref().map(|s| s.snapshot());
            let json = match (&f.refused, snap) {
                (Some((err, at)), prev) => PluginJson {
                    name: plugin_name(file).into(),
                    file: file.clone(),
                    roles: prev.as_ref().map(|s| s.roles.clone()).unwrap_or_default(),
                    governor: prev.as_ref().is_some_and(|s| s.governor),
                    state: "failed".into(),
                    error: Some(format!("refused at load: {err}")),
                    loaded_at: millis(*at),
                    calls: prev.as_ref().map_or(0, |s| s.calls),
                    faults: prev.as_ref().map_or(0, |s| s.faults),
                    swap_latency_us: None,
                    params: params.clone(),
                },
                (None, Some(s)) => PluginJson {
                    name: s.name,
                    file: file.clone(),
                    roles: s.roles,
                    governor: s.governor,
                    state: serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    error: s.error,
                    loaded_at: s.loaded_at,
                    calls: s.calls,
                    faults: s.faults,
                    swap_latency_us: match (
                        f.closed_at,
                        f.status.as_ref().and_then(|h| h.first_decision()),
                    ) {
                        (Some(c), Some(d)) => {
                            Some(d.saturating_duration_since(c).as_micros() as u64)
                        }
                        _ => None,
                    },
                    params: params.clone(),
                },
                (None, None) => PluginJson {
                    name: plugin_name(file).into(),
                    file: file.clone(),
                    roles: Vec::new(),
                    governor: false,
                    state: "failed".into(),
                    error: Some("not loaded yet (still being written?)".into()),
                    loaded_at: millis(f.mtime),
                    calls: 0,
                    faults: 0,
                    swap_latency_us: None,
                    params: params.clone(),
                },
            };
            plugins.push(json);
        }
        drop(files);
        let (active, stats, occupancy) = self.cache.with_core(|core| {
            let mut active = serde_json::Map::new();
            for role in [Role::Eviction, Role::Admission, Role::Prefetch] {
                let p = core.policy(role);
                let v = if p.plugin.is_some() {
                    p.name
                } else {
                    format!("builtin:{}", p.name)
                };
                active.insert(role.name().to_string(), v.into());
            }
            active.insert("governor".into(), core.governor_name().into());
            let candidates: Vec<serde_json::Value> = core
                .candidates()
                .into_iter()
                .map(|c| {
                    serde_json::json!({
                        "spec": c.spec, "role": c.role, "active": c.active,
                        "hits": c.hits, "requests": c.requests,
                    })
                })
                .collect();
            active.insert("candidates".into(), candidates.into());
            (active, *core.stats(), (core.len() as u64, core.capacity()))
        });
        let doc = serde_json::json!({
            "plugins": plugins,
            "active": active,
            "cache": self.cache_object(&stats, occupancy),
            "prefetch": self.prefetch_object(&stats),
            "backend": {
                "reads": self.cache.backend().reads(),
                "bytes": self.cache.backend().bytes(),
                "latency_us": self.cache.backend().latency().as_micros() as u64,
            },
        });
        let mut s = serde_json::to_string_pretty(&doc).expect("json");
        s.push('\n');
        s
    }
}
