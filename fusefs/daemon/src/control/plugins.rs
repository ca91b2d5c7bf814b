//! `.kplug/plugins/`: drop a `.wasm` in to load it, `rm` it to unload it; `NAME.params`
//! beside `NAME.wasm` holds its parameters.
//!
//! **Loading.** Writes to a file only fill a buffer. The `close()` of the writer (FUSE
//! `flush`) loads what was written ([`Loader`]): a module that fails any step is refused,
//! `close()` fails with EINVAL (so `cp` reports an error), the reason shows in `status`, and
//! the policies that were serving keep serving. Replacing a file replaces its plugin; `rm`
//! returns its roles to the built-ins. The plugin's name is the file name without `.wasm`.
//!
//! **Parameters.** `NAME.params` holds `key=value` parameters (newline- or comma-separated,
//! `#` comments) passed to `NAME.wasm` before its `kplug_init`. Write it before copying the
//! plugin, or afterwards to retune a live plugin: its `close()` reloads `NAME.wasm` with the
//! new parameters (EINVAL, and nothing changes, when the plugin rejects them).
//!
//! **Who may write.** The directory belongs to the user who mounted; the kernel's
//! `default_permissions` lets only that user (and root) create, write or remove files here.
//!
//! **Kept.** With a state directory attached ([`PluginsDir::attach_state`], see
//! `persist.rs`), every accepted file is also written there and every `rm` removes it there.
//! Plugins chosen at mount time enter through [`PluginsDir::put`], the same path as a drop.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use kplug_engine::StatusHandle;
use parking_lot::Mutex;

use super::loader::Loader;
use super::node::{Handles, Owner, entry, slice};
use super::persist::StateDir;
use crate::error::Result;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, Tree, TreeIds, Written,
    list_dir, list_dir_plus,
};
use crate::fs_err;

/// Suffix of parameter files: `NAME.params` holds the `key=value` parameters of `NAME.wasm`.
const PARAMS_SUFFIX: &str = ".params";

/// The plugin name of a file: its name without `.wasm`.
pub fn plugin_name(file: &str) -> &str {
    file.strip_suffix(".wasm").unwrap_or(file)
}

/// Whether `file` is a parameter file.
pub fn is_params_file(file: &str) -> bool {
    file.ends_with(PARAMS_SUFFIX)
}

/// The parameter file of a plugin file.
pub fn params_file_of(plugin_file: &str) -> String {
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

/// A plugin file's name must be a plain, visible name (it is also a file of the state
/// directory).
fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(fs_err!(libc::EINVAL, "bad plugin file name {name:?}"));
    }
    Ok(())
}

/// A file in `plugins/`.
#[derive(Debug, Clone)]
pub struct PluginFile {
    /// Its inode.
    pub ino: u64,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Written since the last load attempt.
    dirty: bool,
    /// Last write.
    pub mtime: SystemTime,
    /// The instance serving (or that served) this file's roles.
    pub status: Option<StatusHandle>,
    /// Why the last load attempt was refused, and when.
    pub refused: Option<(String, SystemTime)>,
    /// When the `close()` that loaded the current plugin began.
    pub closed_at: Option<Instant>,
}

/// The `plugins/` directory.
pub struct PluginsDir {
    ids: TreeIds,
    owner: Owner,
    started: SystemTime,
    loader: Loader,
    files: Mutex<BTreeMap<String, PluginFile>>,
    next_ino: AtomicU64,
    /// Open plugin files (by name) and open listings (`None`).
    open: Handles<Option<String>>,
    max_module_bytes: usize,
    /// Where accepted files are kept across mounts, once attached.
    state: OnceLock<StateDir>,
}

impl PluginsDir {
    /// `plugins/`, loading into `loader`'s cache modules of at most `max_module_bytes`.
    pub fn new(ids: TreeIds, owner: Owner, loader: Loader, max_module_bytes: usize) -> Self {
        Self {
            ids,
            owner,
            started: SystemTime::now(),
            loader,
            files: Mutex::new(BTreeMap::new()),
            next_ino: AtomicU64::new(2),
            open: Handles::new(ids),
            max_module_bytes,
            state: OnceLock::new(),
        }
    }

    /// From now on, keep every accepted file in `state` and forget it there on `rm`.
    pub fn attach_state(&self, state: StateDir) {
        let _ = self.state.set(state);
    }

    fn keep(&self, name: &str, bytes: &[u8]) {
        if let Some(state) = self.state.get()
            && let Err(e) = state.save(name, bytes)
        {
            tracing::error!(
                file = name,
                dir = %state.plugins_dir().display(),
                "cannot keep the plugin file in the state directory (it is live, but will not \
                 be loaded at the next mount): {e}"
            );
        }
    }

    fn forget(&self, name: &str) {
        if let Some(state) = self.state.get()
            && let Err(e) = state.remove(name)
        {
            tracing::error!(file = name, "cannot remove the kept plugin file: {e}");
        }
    }

    /// Put `data` in as file `name`, as if written and closed through the mount: a module
    /// is loaded (replacing a file of the same name), a parameter file checked and applied.
    /// The error says why the file was refused; the file stays listed, as a drop would.
    pub fn put(&self, name: &str, data: Vec<u8>) -> std::result::Result<(), String> {
        check_file_name(name).map_err(|e| e.message().to_string())?;
        if data.len() > self.max_module_bytes {
            return Err(self.too_big().message().to_string());
        }
        {
            let mut files = self.files.lock();
            let f = files
                .entry(name.to_string())
                .or_insert_with(|| self.new_file());
            f.data = data.clone();
            f.dirty = false;
            f.mtime = SystemTime::now();
        }
        let result = if is_params_file(name) {
            self.flush_params(name, &data)
        } else {
            self.flush_module(name, &data, Instant::now())
        };
        result.map_err(|e| e.message().to_string())
    }

    fn new_file(&self) -> PluginFile {
        PluginFile {
            ino: self.ids.ino(self.next_ino.fetch_add(1, Ordering::Relaxed)),
            data: Vec::new(),
            dirty: true,
            mtime: SystemTime::now(),
            status: None,
            refused: None,
            closed_at: None,
        }
    }

    /// The loader (and through it, the cache).
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// A copy of every file, by name (for `status` and `stats`).
    pub fn files(&self) -> BTreeMap<String, PluginFile> {
        self.files.lock().clone()
    }

    fn file_attr(&self, f: &PluginFile) -> Attr {
        self.owner
            .attr(f.ino, FileKind::File, 0o644, f.data.len() as u64, f.mtime)
    }

    fn too_big(&self) -> crate::FsError {
        fs_err!(
            libc::EFBIG,
            "plugin modules are limited to {} bytes",
            self.max_module_bytes
        )
    }

    /// Load `name` (a module) after its writer's `close()`.
    fn flush_module(&self, name: &str, bytes: &[u8], closed_at: Instant) -> Result<()> {
        let result = self.load_file(name, bytes);
        let mut files = self.files.lock();
        match result {
            Ok(status) => {
                if let Some(f) = files.get_mut(name) {
                    f.status = Some(status);
                    f.refused = None;
                    f.closed_at = Some(closed_at);
                }
                drop(files);
                tracing::info!(plugin = plugin_name(name), "plugin loaded");
                self.keep(name, bytes);
                Ok(())
            }
            Err(msg) => {
                tracing::warn!(plugin = plugin_name(name), "plugin refused: {msg}");
                if let Some(f) = files.get_mut(name) {
                    f.refused = Some((msg.clone(), SystemTime::now()));
                }
                Err(fs_err!(libc::EINVAL, "plugin {name} refused: {msg}"))
            }
        }
    }

    /// Load plugin file `file` with the parameters of its `.params` file.
    fn load_file(&self, file: &str, bytes: &[u8]) -> std::result::Result<StatusHandle, String> {
        let (params, previous) = {
            let files = self.files.lock();
            let params = match files.get(&params_file_of(file)) {
                Some(f) => parse_params_text(&f.data)
                    .map_err(|e| format!("{}: {e}", params_file_of(file)))?,
                None => Vec::new(),
            };
            (params, files.get(file).and_then(|f| f.status.clone()))
        };
        self.loader
            .load(plugin_name(file), bytes, &params, previous.as_ref())
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
        let keep = || self.keep(name, text);
        let wasm = {
            let files = self.files.lock();
            files
                .get(&plugin_file)
                .filter(|f| f.status.is_some())
                .map(|f| f.data.clone())
        };
        let Some(wasm) = wasm else {
            keep();
            return Ok(());
        };
        let closed_at = Instant::now();
        match self.load_file(&plugin_file, &wasm) {
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
                keep();
                Ok(())
            }
            Err(msg) => refuse(format!("reloading {plugin_file}: {msg}")),
        }
    }
}

impl Tree for PluginsDir {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        if parent != self.ids.root() {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        if name == "." || name == ".." {
            return Ok(entry(self.getattr(parent, None)?));
        }
        let name = name.to_string_lossy();
        let files = self.files.lock();
        let f = files
            .get(name.as_ref())
            .ok_or_else(|| fs_err!(libc::ENOENT, "no plugin {name}"))?;
        Ok(entry(self.file_attr(f)))
    }

    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        if ino == self.ids.root() {
            return Ok(self.owner.attr(ino, FileKind::Dir, 0o755, 0, self.started));
        }
        let files = self.files.lock();
        let f = files
            .values()
            .find(|f| f.ino == ino)
            .ok_or_else(|| fs_err!(libc::ENOENT, "plugin file gone"))?;
        Ok(self.file_attr(f))
    }

    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(fs_err!(
                libc::EPERM,
                ".kplug entries keep their owner and mode"
            ));
        }
        if let Some(size) = set.size {
            if size as usize > self.max_module_bytes {
                return Err(self.too_big());
            }
            let mut files = self.files.lock();
            let f = files
                .values_mut()
                .find(|f| f.ino == ino)
                .ok_or_else(|| fs_err!(libc::EACCES, "read-only"))?;
            f.data.resize(size as usize, 0);
            f.dirty = true;
            f.mtime = SystemTime::now();
        }
        self.getattr(ino, None)
    }

    fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        if parent != self.ids.root() {
            return Err(fs_err!(libc::EPERM, "only plugin files can be removed"));
        }
        let name = name.to_string_lossy();
        let f = self
            .files
            .lock()
            .remove(name.as_ref())
            .ok_or_else(|| fs_err!(libc::ENOENT, "no plugin {name}"))?;
        if let Some(status) = f.status {
            self.loader.unload(plugin_name(&name), &status);
        }
        self.forget(&name);
        tracing::info!(plugin = plugin_name(&name), "plugin removed");
        Ok(())
    }

    fn open(&self, ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        if ino == self.ids.root() {
            return Err(fs_err!(libc::EISDIR, "a directory"));
        }
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
        Ok(Opened::direct(self.open.insert(Some(name))))
    }

    fn create(
        &self,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        _caller: Caller,
    ) -> Result<(Entry, Opened)> {
        if parent != self.ids.root() {
            return Err(fs_err!(
                libc::EACCES,
                "files can only be created in .kplug/plugins"
            ));
        }
        let name = name.to_string_lossy().into_owned();
        check_file_name(&name)?;
        let mut files = self.files.lock();
        let f = files.entry(name.clone()).or_insert_with(|| self.new_file());
        f.data.clear();
        f.dirty = true;
        let attr = self.file_attr(f);
        drop(files);
        Ok((entry(attr), Opened::direct(self.open.insert(Some(name)))))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let name = self.open.with(fh, |h| {
            h.clone()
                .ok_or_else(|| fs_err!(libc::EISDIR, "a directory"))
        })?;
        let files = self.files.lock();
        Ok(files
            .get(&name)
            .map(|f| slice(&f.data, offset, size))
            .unwrap_or_default())
    }

    fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        _from_page_cache: bool,
    ) -> Result<Written> {
        let name = self.open.with(fh, |h| {
            h.clone()
                .ok_or_else(|| fs_err!(libc::EBADF, "not writable"))
        })?;
        let end = offset as usize + data.len();
        if end > self.max_module_bytes {
            return Err(self.too_big());
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
        Ok(Written {
            bytes: data.len() as u32,
            stale_pages: None,
        })
    }

    /// `close()` of a descriptor: load what was written. EINVAL when the module is refused.
    fn flush(&self, fh: u64, _pid: u32) -> Result<()> {
        let Some(name) = self.open.with(fh, |h| Ok(h.clone()))? else {
            return Ok(());
        };
        let closed_at = Instant::now();
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
        self.flush_module(&name, &bytes, closed_at)
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }

    fn opendir(&self, ino: u64) -> Result<u64> {
        if ino != self.ids.root() {
            return Err(fs_err!(libc::ENOTDIR, "not a directory"));
        }
        Ok(self.open.insert(None))
    }

    fn readdir(&self, ino: u64, _fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        let files = self.files.lock();
        let listing = files
            .iter()
            .map(|(n, f)| (f.ino, FileKind::File, OsStr::new(n.as_str())));
        list_dir(sink, offset, ino, ino, listing);
        Ok(())
    }

    fn readdirplus(
        &self,
        ino: u64,
        _fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let dot = entry(self.getattr(ino, None)?);
        let files: Vec<(String, PluginFile)> = self.files().into_iter().collect();
        list_dir_plus(
            sink,
            offset,
            &dot,
            files.iter(),
            |(n, _)| OsStr::new(n.as_str()),
            |(_, f)| Ok(Some(entry(self.file_attr(f)))),
            |_| {},
        )?;
        Ok(())
    }

    fn releasedir(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}
