//! `.kplug/plugins/`: drop a `.wasm` in to load it, `rm` it to unload it; `NAME.params`
//! beside `NAME.wasm` holds its parameters.
//!
//! **A state machine per file.** Everything here is keyed by the *file*: the instance its
//! last successful load made, its last refusal, its generation (bumped by every change of its
//! bytes). A file is `loading` (created or rewritten, its `close()` not done), `active` (its
//! instance serves roles, or is the governor), `failed` (refused at load with nothing of it
//! serving, or its instance faulted), or `disabled` (its instance was taken out of service by
//! another file's plugin). The transitions:
//!
//! - **close() of a written module** loads it ([`Loader`]): prepared with no lock held, then
//!   installed in a moment, if the file still has the bytes that were loaded (a newer copy
//!   or an `rm` meanwhile wins; the older load is dropped). The new instance takes its roles,
//!   and whatever the file's previous instance still served (roles the new one does not take,
//!   a governor with everything it chose) goes back to the built-ins: replacing a file by a
//!   module of another kind (eviction, governor, several roles) leaves nothing of the old one.
//!   A refused module fails `close()` with EINVAL (so `cp` reports an error), every
//!   `close()` of a descriptor of those bytes, not only the first (a `dup`, or a copy a
//!   forked child inherited, may close first: it loads them, the others get its answer); the
//!   reason shows in `status`, and the file's previous instance keeps its state.
//! - **rm** retires the file's instance and everything it put in service (a governor's
//!   candidates too): its roles go back to the built-ins. Only that file's instance: another
//!   file is never touched.
//! - **A name** is a file name without `.wasm`, and it is the plugin's identity (in
//!   `status`, `NAME.params`, a governor's candidate specs): a file whose name would give a
//!   name another file has (`nsk` beside `nsk.wasm`) is refused at creation with EEXIST.
//!
//! **Tiers.** A module the engine has never compiled is loaded from baseline code (Winch,
//! `kplug_engine::CodeTier`) so that `close()` returns within milliseconds; its optimized
//! code is compiled in the background, and when it is ready the file is loaded again from it
//! ([`Why::TierUp`]): a hot swap like any other (the resident blocks are replayed into the
//! new instance), but only while the file still has those bytes and its baseline instance
//! still serves (a fault is never undone by a tier-up). `swap_latency_us` keeps measuring
//! the user's `close()` to the first decision, which the baseline code made; `code` in
//! `status` says which code serves.
//!
//! **Parameters.** `NAME.params` holds `key=value` parameters (newline- or comma-separated,
//! `#` comments) passed to the module of `NAME` before its `kplug_init`. Write it before
//! copying the plugin, or afterwards to retune a live plugin: its `close()` reloads the module
//! with the new parameters (EINVAL, and nothing changes, when the plugin rejects them).
//!
//! **Who may write.** The directory belongs to the user who mounted; the kernel's
//! `default_permissions` lets only that user (and root) create, write or remove files here.
//!
//! **Locks.** The file table's mutex is held while a load is installed or a file retired, and
//! while `status` reads the cache, so both see one consistent state; it is taken before the
//! cache's lock, never under it, and never held while plugin code initialises.
//!
//! **Kept.** With a state directory attached ([`PluginsDir::attach_state`], see
//! `persist.rs`), every accepted file is also written there and every `rm` removes it there.
//! Plugins chosen at mount time enter through [`PluginsDir::put`], the same path as a drop.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Instant, SystemTime};

use kplug_engine::{CodeTier, PluginState, StatusHandle};
use parking_lot::Mutex;

use super::loader::{Loader, Ready};
use super::node::{Handles, Owner, entry, keep_owner_and_mode, slice};
use super::persist::StateDir;
use super::priority::SwapPriority;
use crate::error::Result;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, Tree, TreeIds, Written,
    list_dir, list_dir_plus,
};
use crate::fs_err;

/// Suffix of parameter files: `NAME.params` holds the `key=value` parameters of `NAME.wasm`.
const PARAMS_SUFFIX: &str = ".params";

pub use kplug_engine::names::{check_file_name, parse_params_text, plugin_name};

/// Whether `file` is a parameter file.
pub fn is_params_file(file: &str) -> bool {
    file.ends_with(PARAMS_SUFFIX)
}

/// The parameter file of a plugin file.
pub fn params_file_of(plugin_file: &str) -> String {
    format!("{}{PARAMS_SUFFIX}", plugin_name(plugin_file))
}

/// The plugin name a parameter file is for.
fn params_plugin(params_file: &str) -> &str {
    params_file
        .strip_suffix(PARAMS_SUFFIX)
        .unwrap_or(params_file)
}

/// What a copy of a loaded plugin file needs (a scope inheriting it, `scopes.rs`).
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The plugin's name.
    pub name: String,
    /// The module.
    pub bytes: Vec<u8>,
    /// Its parameters (`NAME.params`).
    pub params: Vec<(String, String)>,
}

/// The last generation given to a plugin file's bytes ([`PluginFile::touch`]).
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// A file in `plugins/`.
#[derive(Debug, Clone)]
pub struct PluginFile {
    /// Its inode.
    pub ino: u64,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Written since the last load attempt.
    dirty: bool,
    /// Why the last load of these bytes after a `close()` refused them (`None`: accepted, or
    /// none yet): what a later `close()` of a descriptor of the same bytes answers.
    closed_refusal: Option<String>,
    /// New (process-wide) at every change of its bytes: a load installs only what is still
    /// current.
    generation: u64,
    /// Last write.
    pub mtime: SystemTime,
    /// The instance of the file's last successful load: serving, or taken out of service.
    pub instance: Option<StatusHandle>,
    /// Why the last load attempt was refused, and when.
    pub refused: Option<(String, SystemTime)>,
    /// When the `close()` that loaded the current instance began.
    pub closed_at: Option<Instant>,
    /// The module and parameters the current instance was loaded from (what a scope that
    /// inherits it copies: never a half-written or refused newer copy).
    loaded: Option<PluginSource>,
    /// The generation of `loaded`'s bytes (the file's may be newer: a copy refused since).
    loaded_generation: u64,
    /// Which compiler made the current instance's code.
    pub tier: Option<CodeTier>,
    /// µs from the `close()` to the first decision, kept from the baseline instance when its
    /// optimized code replaced it (that instance made the first decision).
    pub swap_latency_us: Option<u64>,
}

/// Why a module file is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Its writer's `close()`: the bytes written since the last load.
    Closed,
    /// Its parameters changed: its current bytes.
    Params,
    /// Its optimized code is ready, and the file still has the bytes of this generation.
    TierUp(u64),
}

/// µs from `closed` to `decided`, when both happened.
pub fn swap_latency(closed: Option<Instant>, decided: Option<Instant>) -> Option<u64> {
    match (closed, decided) {
        (Some(c), Some(d)) => Some(d.saturating_duration_since(c).as_micros() as u64),
        _ => None,
    }
}

impl PluginFile {
    /// Whether the file still has the bytes of `generation` and its instance of them, from
    /// baseline code, still serves (a tier-up replaces only that).
    fn runs_baseline_of(&self, generation: u64) -> bool {
        self.loaded_generation == generation
            && self.tier == Some(CodeTier::Baseline)
            && self
                .instance
                .as_ref()
                .is_some_and(|h| h.state() == PluginState::Active)
    }

    /// The bytes changed.
    fn touch(&mut self) {
        self.dirty = true;
        // Unique in the process, not per file: a file removed and written again under the
        // same name (or a scope's directory cleared and refilled) never reuses one, so a
        // tier-up queued for the old bytes cannot take the new ones for its own.
        self.generation = GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        self.mtime = SystemTime::now();
    }
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
    /// Where accepted files are kept across mounts, once attached (a scope's `plugins/`
    /// changes hands with its slot).
    state: Mutex<Option<StateDir>>,
    /// Told after every change of what the files serve (a load installed, a file removed),
    /// with no lock held: the scopes' inheritance follows (`scopes.rs`).
    changed: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Itself, for the background tier-up of a load.
    me: Weak<PluginsDir>,
    /// Held by a load after a `close()` or a parameter change, so that two closes of
    /// descriptors of the same bytes (a second descriptor, or a copy a forked child inherited
    /// and closed at its `exec`) load them once and both answer what that load found.
    closing: Mutex<()>,
}

impl PluginsDir {
    /// `plugins/`, loading into `loader`'s cache modules of at most `max_module_bytes`.
    pub fn new(ids: TreeIds, owner: Owner, loader: Loader, max_module_bytes: usize) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            ids,
            owner,
            started: SystemTime::now(),
            loader,
            files: Mutex::new(BTreeMap::new()),
            closing: Mutex::new(()),
            next_ino: AtomicU64::new(2),
            open: Handles::new(ids),
            max_module_bytes,
            state: Mutex::new(None),
            changed: OnceLock::new(),
        })
    }

    /// Call `f` after every change of what the files serve.
    pub fn on_change(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.changed.set(f);
    }

    fn changed(&self) {
        if let Some(f) = self.changed.get() {
            f();
        }
    }

    /// Whether `status` is the instance of one of these files.
    pub fn owns(&self, status: &StatusHandle) -> bool {
        self.with_file_of(status, |_| ()).is_some()
    }

    /// The file whose instance is `status`: its plugin name, bytes and parameters.
    pub fn source_of(&self, status: &StatusHandle) -> Option<PluginSource> {
        self.with_file_of(status, |f| f.loaded.clone()).flatten()
    }

    /// `f` of the file whose instance is `status`, if one is.
    fn with_file_of<R>(
        &self,
        status: &StatusHandle,
        f: impl FnOnce(&PluginFile) -> R,
    ) -> Option<R> {
        let files = self.files.lock();
        files
            .values()
            .find(|pf| {
                pf.instance
                    .as_ref()
                    .is_some_and(|i| std::sync::Arc::ptr_eq(i, status))
            })
            .map(f)
    }

    /// Remove every file, retiring what each put in service (a scope's `rmdir`).
    pub fn clear(&self) {
        let files = std::mem::take(&mut *self.files.lock());
        for (name, f) in files {
            if let Some(status) = f.instance {
                self.loader.retire(plugin_name(&name), &status);
            }
        }
    }

    /// From now on, keep every accepted file in `state` and forget it there on `rm`.
    pub fn attach_state(&self, state: StateDir) {
        *self.state.lock() = Some(state);
    }

    /// Keep nothing from now on (a removed scope's slot).
    pub fn detach_state(&self) {
        *self.state.lock() = None;
    }

    fn keep(&self, name: &str, bytes: &[u8]) {
        if let Some(state) = &*self.state.lock()
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
        if let Some(state) = &*self.state.lock()
            && let Err(e) = state.remove(name)
        {
            tracing::error!(file = name, "cannot remove the kept plugin file: {e}");
        }
    }

    /// Put `data` in as file `name`, as if written and closed through the mount: a module
    /// is loaded (replacing a file of the same name), a parameter file checked and applied.
    /// The error says why the file was refused; the file stays listed, as a drop would.
    pub fn put(&self, name: &str, data: Vec<u8>) -> std::result::Result<(), String> {
        check_file_name(name).map_err(|e| format!("bad plugin file name: {e}"))?;
        if data.len() > self.max_module_bytes {
            return Err(self.too_big().message().to_string());
        }
        {
            let mut files = self.files.lock();
            let f = files
                .entry(name.to_string())
                .or_insert_with(|| self.new_file());
            f.data = data.clone();
            f.touch();
        }
        let result = if is_params_file(name) {
            self.flush_params(name, &data)
        } else {
            self.flush_module(name)
        };
        result.map_err(|e| e.message().to_string())
    }

    fn new_file(&self) -> PluginFile {
        PluginFile {
            ino: self.ids.ino(self.next_ino.fetch_add(1, Ordering::Relaxed)),
            data: Vec::new(),
            dirty: true,
            closed_refusal: None,
            generation: 0,
            mtime: SystemTime::now(),
            instance: None,
            refused: None,
            closed_at: None,
            loaded: None,
            loaded_generation: 0,
            tier: None,
            swap_latency_us: None,
        }
    }

    /// The loader (and through it, the cache).
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// A copy of every file, by name (for `stats`).
    pub fn files(&self) -> BTreeMap<String, PluginFile> {
        self.files.lock().clone()
    }

    /// Run `f` on the files with no load installing and no file retired meanwhile (for
    /// `status`, which reads the cache in `f`: the cache's lock is taken after this one).
    pub fn with_files<R>(&self, f: impl FnOnce(&BTreeMap<String, PluginFile>) -> R) -> R {
        f(&self.files.lock())
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

    /// The parameters of plugin file `file`, from its `.params` file.
    fn params_of(
        files: &BTreeMap<String, PluginFile>,
        file: &str,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        match files.get(&params_file_of(file)) {
            Some(f) => {
                parse_params_text(&f.data).map_err(|e| format!("{}: {e}", params_file_of(file)))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Load module file `name`: the bytes written since its last load (or, with `reload`,
    /// its current bytes whatever they are). Prepared with no lock held, installed only if
    /// the file still holds those bytes. `Err(msg)` when refused.
    fn load(&self, name: &str, why: Why) -> std::result::Result<(), String> {
        let closed_at = Instant::now();
        // The user waits on this swap, the readers on their reads: for its few hundred
        // microseconds the swap goes first (a tier-up is background work: not raised).
        let asked = !matches!(why, Why::TierUp(_));
        let _first = asked.then(SwapPriority::raise);
        let _one_at_a_time = asked.then(|| self.closing.lock());
        // For a tier-up, also the baseline instance it is to replace.
        let (bytes, generation, params, baseline) = {
            let mut files = self.files.lock();
            let params = Self::params_of(&files, name);
            let Some(f) = files.get_mut(name) else {
                return Ok(());
            };
            match why {
                // Loaded already (another descriptor's close): that load's answer.
                Why::Closed if !f.dirty => return f.closed_refusal.clone().map_or(Ok(()), Err),
                // From what its baseline instance was loaded from: the file may hold a newer
                // copy since, refused.
                Why::TierUp(g) => match f.loaded.as_ref().filter(|_| f.runs_baseline_of(g)) {
                    Some(src) => (
                        src.bytes.clone(),
                        g,
                        Ok(src.params.clone()),
                        f.instance.clone(),
                    ),
                    None => return Ok(()),
                },
                _ => {
                    f.dirty = false;
                    (f.data.clone(), f.generation, params, None)
                }
            }
        };
        let used = params.as_ref().ok().cloned().unwrap_or_default();
        let optimized = matches!(why, Why::TierUp(_));
        let ready = params.and_then(|p| {
            self.loader
                .prepare(plugin_name(name), &bytes, &p, optimized)
        });
        let mut files = self.files.lock();
        // A tier-up's bytes are its baseline instance's, checked just below.
        let current =
            |f: &&mut PluginFile| matches!(why, Why::TierUp(_)) || f.generation == generation;
        let Some(f) = files.get_mut(name).filter(current) else {
            // Removed, or written again meanwhile: the newer bytes' close() decides.
            if let Ok(r) = ready {
                self.loader
                    .discard(r, "superseded by a newer copy of its file");
            }
            return Ok(());
        };
        // The same instance still serves: a reload with new parameters meanwhile (the same
        // bytes, so the same generation, again on baseline code) is not the one this tier-up
        // read its parameters for, and must not be replaced with the old ones.
        let same = |i: &Option<StatusHandle>| match (i, &baseline) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if let Why::TierUp(g) = why
            && !(f.runs_baseline_of(g) && same(&f.instance))
        {
            // It faulted, was taken out of service or was reloaded while the new instance
            // was prepared.
            if let Ok(r) = ready {
                self.loader
                    .discard(r, "its baseline instance no longer serves");
            }
            return Ok(());
        }
        let tier = ready.as_ref().map(|r| r.tier()).ok();
        let tiers_up = ready.as_ref().is_ok_and(|r| r.tiers_up());
        let previous = f.instance.clone();
        let installed = ready.and_then(|r: Ready| match (why, previous.as_ref()) {
            (Why::TierUp(_), Some(prev)) => self.loader.install_tier_up(r, prev),
            _ => self.loader.install(r, previous.as_ref()),
        });
        match installed {
            Ok(status) => {
                f.instance = Some(status);
                f.loaded_generation = generation;
                f.loaded = Some(PluginSource {
                    name: plugin_name(name).to_string(),
                    bytes: bytes.clone(),
                    params: used,
                });
                f.refused = None;
                if why == Why::Closed {
                    f.closed_refusal = None;
                }
                f.tier = tier;
                if matches!(why, Why::TierUp(_)) {
                    // The swap the user asked for began at their close() and ended at the
                    // baseline instance's first decision (if it made one).
                    f.swap_latency_us = f.swap_latency_us.or_else(|| {
                        swap_latency(
                            f.closed_at,
                            previous.as_ref().and_then(|p| p.first_decision()),
                        )
                    });
                } else {
                    f.closed_at = Some(closed_at);
                    f.swap_latency_us = None;
                }
                drop(files);
                if !matches!(why, Why::TierUp(_)) {
                    self.keep(name, &bytes);
                }
                if tiers_up {
                    self.tier_up_later(name, generation, bytes);
                }
                self.changed();
                Ok(())
            }
            Err(msg) if matches!(why, Why::TierUp(_)) => {
                // The baseline instance keeps serving; the file was not refused.
                tracing::warn!(
                    plugin = plugin_name(name),
                    "optimized code not loaded: {msg}"
                );
                Ok(())
            }
            Err(msg) => {
                f.refused = Some((msg.clone(), SystemTime::now()));
                if why == Why::Closed {
                    f.closed_refusal = Some(msg.clone());
                }
                Err(msg)
            }
        }
    }

    /// Ask for `bytes`' optimized code in the background, and load file `name` from it when
    /// ready, if it still runs the baseline code of `generation` then.
    fn tier_up_later(&self, name: &str, generation: u64, bytes: Vec<u8>) {
        let (asked, done) = (self.me.clone(), self.me.clone());
        let (n1, n2) = (name.to_string(), name.to_string());
        let still_wanted = move |d: &PluginsDir, n: &str| {
            d.files
                .lock()
                .get(n)
                .is_some_and(|f| f.runs_baseline_of(generation))
        };
        self.loader.engine().optimize_later(
            Arc::from(bytes),
            Box::new(move || asked.upgrade().is_some_and(|d| still_wanted(&d, &n1))),
            Box::new(move |ready| {
                let Some(d) = done.upgrade().filter(|_| ready) else {
                    return;
                };
                if d.load(&n2, Why::TierUp(generation)).is_ok() {
                    tracing::debug!(plugin = plugin_name(&n2), "plugin runs optimized code");
                }
            }),
        );
    }

    /// Load module `name` after its writer's `close()`: EINVAL when refused.
    fn flush_module(&self, name: &str) -> Result<()> {
        match self.load(name, Why::Closed) {
            Ok(()) => {
                tracing::info!(plugin = plugin_name(name), "plugin loaded");
                Ok(())
            }
            Err(msg) => {
                tracing::warn!(plugin = plugin_name(name), "plugin refused: {msg}");
                Err(fs_err!(libc::EINVAL, "plugin {name} refused: {msg}"))
            }
        }
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
        let module = {
            let mut files = self.files.lock();
            if let Some(f) = files.get_mut(name) {
                f.refused = None;
            }
            files
                .iter()
                .find(|(n, f)| {
                    !is_params_file(n)
                        && plugin_name(n) == params_plugin(name)
                        && f.instance.is_some()
                })
                .map(|(n, _)| n.clone())
        };
        let keep = || self.keep(name, text);
        let Some(module) = module else {
            keep();
            return Ok(());
        };
        match self.load(&module, Why::Params) {
            Ok(()) => {
                tracing::info!(
                    plugin = plugin_name(&module),
                    "plugin reloaded with new parameters"
                );
                keep();
                Ok(())
            }
            Err(msg) => refuse(format!("reloading {module}: {msg}")),
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
        keep_owner_and_mode(&set)?;
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
            f.touch();
        }
        self.getattr(ino, None)
    }

    fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        if parent != self.ids.root() {
            return Err(fs_err!(libc::EPERM, "only plugin files can be removed"));
        }
        let name = name.to_string_lossy();
        let mut files = self.files.lock();
        let f = files
            .remove(name.as_ref())
            .ok_or_else(|| fs_err!(libc::ENOENT, "no plugin {name}"))?;
        // This file's instance only, and all it put in service; under the table's lock, so
        // a load of this file finishing meanwhile finds it gone.
        if let Some(status) = f.instance {
            self.loader.retire(plugin_name(&name), &status);
        }
        drop(files);
        self.forget(&name);
        self.changed();
        tracing::info!(file = %name, "plugin file removed");
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
            f.touch();
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
        check_file_name(&name).map_err(|e| fs_err!(libc::EINVAL, "bad plugin file name: {e}"))?;
        let mut files = self.files.lock();
        if !is_params_file(&name)
            && let Some(other) = files
                .keys()
                .find(|n| *n != &name && !is_params_file(n) && plugin_name(n) == plugin_name(&name))
        {
            return Err(fs_err!(
                libc::EEXIST,
                "plugin name {} is taken by {other}",
                plugin_name(&name)
            ));
        }
        let f = files.entry(name.clone()).or_insert_with(|| self.new_file());
        f.data.clear();
        f.touch();
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
        f.touch();
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
        if !is_params_file(&name) {
            return self.flush_module(&name);
        }
        let text = {
            let mut files = self.files.lock();
            let Some(f) = files.get_mut(&name).filter(|f| f.dirty) else {
                return Ok(());
            };
            f.dirty = false;
            f.data.clone()
        };
        self.flush_params(&name, &text)
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
