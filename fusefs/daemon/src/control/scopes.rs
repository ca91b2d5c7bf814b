//! `.kplug/scopes/`: per-subtree policies. `mkdir .kplug/scopes/NAME` creates a scope (at
//! most [`MAX_SCOPES`]); `rmdir` removes it with its files, as in cgroupfs, and its blocks go
//! to the enclosing scope. Each scope directory holds:
//!
//! ```text
//! NAME/path      rw  a directory of the mount, relative to its root ("" unset: no file)
//! NAME/share     rw  the cache it is guaranteed: 25%, 0.25 or a size (64MiB); 0 by default
//! NAME/plugins/  rwx its own plugins/, the root's rules (.wasm, .params), cache roles only
//! ```
//!
//! A file belongs to the scope with the innermost `path` holding it (`data/scopes.rs`);
//! the cache's arbitration between scopes is in `kplug_cache::scopes`.
//!
//! **Inheritance.** A role a scope's own files do not serve is served by its own instance
//! of the plugin the enclosing scope (ultimately the mount's `plugins/`) serves it with, with
//! the same parameters, or by the same built-in. [`Scopes::sync`] keeps that true: it runs
//! after every change of any `plugins/` directory and of any scope, outermost scopes first,
//! and replaces an inherited instance only when its source changed (an inherited instance
//! that faulted stays on the built-in until then). A governor's choices are not inherited.
//!
//! **Tuned by probes.** A probe (ABI 1.5) that publishes the figure `share.NAME` sets scope
//! NAME's share to that fraction of the cache: every [`SHARE_POLL`] a thread applies each
//! published value that changed since it last looked ([`Scopes::apply_published`]), through
//! the same path as a write to `share` (refused values are logged once). An operator's
//! write stands until the published value changes again. This is how monitoring code
//! deployed for the question at hand adapts the arbitration at run time.
//!
//! **Kept.** With a state directory attached ([`Scopes::attach_state`]), each scope is kept
//! in its `scopes/NAME/` (`path`, `share`, and the files of its `plugins/`, kept as the
//! mount's are) and restored by the next mount before the kernel sees it; `rmdir` forgets it.
//!
//! **Numbers.** Each scope lives in a slot 1..=[`MAX_SCOPES`]; its `plugins/` is the
//! slot's own virtual tree, registered at mount like every other (`control/mod.rs`), so a
//! removed scope's slot serves the next `mkdir` with an empty directory.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::SystemTime;

use kplug_abi::Role;
use kplug_cache::ScopeId;
use kplug_engine::StatusHandle;
use parking_lot::Mutex;

use super::node::{Handles, Owner, entry, keep_owner_and_mode, slice, write_at};
use super::persist::StateDir;
use super::plugins::PluginsDir;
use crate::data::blockcache::BlockCache;
pub use crate::data::blockcache::MAX_SCOPES;
use crate::error::Result;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, Opened, SetAttr, Tree, TreeIds, Written,
    list_dir, list_dir_plus,
};
use crate::fs_err;

/// The roles a scope serves, in the order of the inheritance table.
const ROLES: [Role; 3] = [Role::Eviction, Role::Admission, Role::Prefetch];

/// How often published `share.NAME` figures are looked at.
pub const SHARE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest `path` or `share` text.
const MAX_TEXT: usize = 4096;

/// A role a scope inherits: the enclosing scope's instance it copies, and its own copy
/// (`None` if the copy was refused).
#[derive(Clone)]
struct Inherit {
    source: StatusHandle,
    instance: Option<StatusHandle>,
}

/// One scope, as the operator set it.
#[derive(Clone, Debug)]
pub struct ScopeInfo {
    /// Its directory's name in `.kplug/scopes/`.
    pub name: String,
    /// Its `path`, normalized (`None`: unset).
    pub path: Option<String>,
    /// Its `share`, as written (`0` until written).
    pub share: String,
    /// When it was created.
    pub created: SystemTime,
    /// Unique to this scope among all a mount had: a handle of a removed scope's file never
    /// reaches the scope created next in its slot.
    pub generation: u64,
}

/// The scopes of one mount: their settings, their `plugins/` and what they inherit.
pub struct Scopes {
    cache: Arc<BlockCache>,
    /// Slot 0: the mount's `plugins/`; slot i: scope i's.
    dirs: Vec<Arc<PluginsDir>>,
    slots: Mutex<Vec<Option<ScopeInfo>>>,
    inherited: Mutex<Vec<[Option<Inherit>; 3]>>,
    /// The mount's state directory, once attached: where scopes are kept.
    state: Mutex<Option<StateDir>>,
    /// The last scope generation given.
    generations: std::sync::atomic::AtomicU64,
    /// The published `share.NAME` figures last applied, by `(probe, scope name)`.
    published: Mutex<std::collections::BTreeMap<(String, String), f64>>,
}

impl Scopes {
    /// The scopes of `cache`, whose `plugins/` are `dirs` (the root's first, then one per
    /// slot).
    pub fn new(cache: Arc<BlockCache>, dirs: Vec<Arc<PluginsDir>>) -> Arc<Self> {
        assert_eq!(dirs.len(), MAX_SCOPES + 1, "one plugins/ per slot");
        let n = dirs.len();
        let scopes = Arc::new(Scopes {
            cache,
            dirs,
            slots: Mutex::new(vec![None; n]),
            inherited: Mutex::new(vec![Default::default(); n]),
            state: Mutex::new(None),
            generations: Default::default(),
            published: Default::default(),
        });
        let weak = Arc::downgrade(&scopes);
        let _ = std::thread::Builder::new()
            .name("kplugfs-scopes".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SHARE_POLL);
                    let Some(s) = weak.upgrade() else { break };
                    s.apply_published();
                }
            });
        for d in &scopes.dirs {
            let weak = Arc::downgrade(&scopes);
            d.on_change(Box::new(move || {
                if let Some(s) = weak.upgrade() {
                    s.sync();
                }
            }));
        }
        scopes
    }

    /// From now on keep every scope in `state` (`scopes/NAME/`), the ones that exist too.
    pub fn attach_state(&self, state: StateDir) {
        for (id, info) in self.list() {
            self.keep_scope(&state, id, &info);
        }
        *self.state.lock() = Some(state);
    }

    /// Keep scope `id` in `state`: its directory, its settings, its `plugins/` from now on.
    fn keep_scope(&self, state: &StateDir, id: ScopeId, info: &ScopeInfo) {
        let kept = state.scope(&info.name).and_then(|s| {
            s.save_setting("path", info.path.as_deref().unwrap_or(""))?;
            s.save_setting("share", &info.share)?;
            Ok(s)
        });
        match kept {
            Ok(s) => self.dirs[id].attach_state(s),
            Err(e) => tracing::error!(
                scope = info.name,
                "cannot keep the scope in the state directory (it is live, but will not be \
                 restored at the next mount): {e}"
            ),
        }
    }

    /// Keep setting `file` of scope `id` as `text`, if scopes are kept.
    fn keep_setting(&self, id: ScopeId, file: &str, text: &str) {
        let Some(name) = self.slots.lock()[id].as_ref().map(|s| s.name.clone()) else {
            return;
        };
        if let Some(state) = &*self.state.lock()
            && let Err(e) = state.scope(&name).and_then(|s| s.save_setting(file, text))
        {
            tracing::error!(scope = name, "cannot keep the scope's {file}: {e}");
        }
    }

    /// Restore the scopes kept in `state` (at mount, before [`attach_state`](Self::attach_state)):
    /// each one created, its `path` and `share` written, its plugin files put in its
    /// `plugins/`. Returns one line per refusal.
    pub fn restore(&self, state: &StateDir) -> Vec<String> {
        let mut failures = Vec::new();
        let kept = match state.scopes() {
            Ok(k) => k,
            Err(e) => return vec![format!("cannot read the kept scopes: {e}")],
        };
        for (name, scope_state, path, share) in kept {
            let id = match self.create(&name) {
                Ok(id) => id,
                Err(e) => {
                    failures.push(format!("kept scope {name}: {}", e.message()));
                    continue;
                }
            };
            for (file, text) in [("path", path), ("share", share)] {
                let Some(text) = text else { continue };
                let r = match file {
                    "path" => self.set_path(id, &text),
                    _ => self.set_share(id, &text),
                };
                if let Err(e) = r {
                    failures.push(format!("kept scope {name}: {file} {:?}: {e}", text.trim()));
                }
            }
            match scope_state.files() {
                Ok(files) => {
                    for (file, bytes) in files {
                        if let Err(e) = self.dirs[id].put(&file, bytes) {
                            failures.push(format!("kept scope {name}: {e}"));
                        }
                    }
                }
                Err(e) => failures.push(format!("kept scope {name}: cannot read its plugins: {e}")),
            }
        }
        failures
    }

    /// Apply each `share.NAME` figure a probe published that changed since the last look
    /// (see the module docs).
    pub fn apply_published(&self) {
        let now = self.cache.figures().published_named("share.");
        let mut applied = self.published.lock();
        if now.is_empty() {
            applied.clear();
            return;
        }
        applied.retain(|k, _| now.iter().any(|(p, n, _)| (p, n) == (&k.0, &k.1)));
        for (probe, name, value) in now {
            let key = (probe, name);
            if applied.get(&key) == Some(&value) {
                continue;
            }
            applied.insert(key.clone(), value);
            let (probe, name) = key;
            let Some(id) = self.find(&name) else {
                tracing::warn!(probe, scope = name, "published share of no scope");
                continue;
            };
            // With a point, so that 1 reads as the whole cache, not one byte.
            match self.set_share(id, &format!("{value:.4}")) {
                Ok(()) => tracing::info!(probe, scope = name, value, "scope share published"),
                Err(e) => {
                    tracing::warn!(probe, scope = name, value, "published share refused: {e}")
                }
            }
        }
    }

    /// Scope `id`'s `plugins/` (0: the mount's).
    pub fn dir(&self, id: ScopeId) -> &Arc<PluginsDir> {
        &self.dirs[id]
    }

    /// The scopes that exist, by slot.
    pub fn list(&self) -> Vec<(ScopeId, ScopeInfo)> {
        self.slots
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.clone()?)))
            .collect()
    }

    /// The roles scope `id` serves with an inherited plugin instance now.
    pub fn inherited_roles(&self, id: ScopeId) -> Vec<Role> {
        let inherited = self.inherited.lock();
        let Some(row) = inherited.get(id) else {
            return Vec::new();
        };
        ROLES
            .iter()
            .zip(row)
            .filter(|(r, i)| {
                i.as_ref()
                    .and_then(|i| i.instance.as_ref())
                    .is_some_and(|inst| {
                        self.cache
                            .with_scope(id, |c| c.policy(**r).plugin)
                            .flatten()
                            .is_some_and(|s| Arc::ptr_eq(&s, inst))
                    })
            })
            .map(|(r, _)| *r)
            .collect()
    }

    fn find(&self, name: &str) -> Option<ScopeId> {
        self.slots
            .lock()
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.name == name))
    }

    /// `mkdir .kplug/scopes/NAME`.
    pub fn create(&self, name: &str) -> Result<ScopeId> {
        check_name(name)?;
        let id = {
            let mut slots = self.slots.lock();
            if slots.iter().flatten().any(|s| s.name == name) {
                return Err(fs_err!(libc::EEXIST, "scope {name} exists"));
            }
            let Some(id) = (1..slots.len()).find(|i| slots[*i].is_none()) else {
                return Err(fs_err!(
                    libc::ENOSPC,
                    "a mount has at most {MAX_SCOPES} scopes"
                ));
            };
            self.cache
                .add_scope(id, 0)
                .map_err(|e| fs_err!(libc::EIO, "scope {name}: {e}"))?;
            let info = ScopeInfo {
                name: name.to_string(),
                path: None,
                share: "0".into(),
                created: SystemTime::now(),
                generation: self
                    .generations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1,
            };
            slots[id] = Some(info.clone());
            drop(slots);
            if let Some(state) = &*self.state.lock() {
                self.keep_scope(state, id, &info);
            }
            id
        };
        tracing::info!(scope = name, slot = id, "scope created");
        self.sync();
        Ok(id)
    }

    /// `rmdir .kplug/scopes/NAME`: its files go (their plugins retired), its blocks go to
    /// the enclosing scope, and the scopes it enclosed inherit from that one.
    pub fn remove(&self, name: &str) -> Result<()> {
        let id = self
            .find(name)
            .ok_or_else(|| fs_err!(libc::ENOENT, "no scope {name}"))?;
        self.dirs[id].clear();
        self.dirs[id].detach_state();
        if let Some(state) = &*self.state.lock()
            && let Err(e) = state.remove_scope(name)
        {
            tracing::error!(scope = name, "cannot forget the kept scope: {e}");
        }
        let moved = self
            .cache
            .remove_scope(id, "its scope was removed")
            .map_err(|e| fs_err!(libc::EIO, "scope {name}: {e}"))?;
        self.slots.lock()[id] = None;
        self.inherited.lock()[id] = Default::default();
        tracing::info!(scope = name, blocks = moved, "scope removed");
        self.sync();
        Ok(())
    }

    /// Write scope `id`'s `path`: `""` unsets it.
    pub fn set_path(&self, id: ScopeId, text: &str) -> std::result::Result<(), String> {
        let text = text.trim();
        let path = if text.is_empty() {
            None
        } else {
            Some(crate::data::scopes::normalize(text)?)
        };
        self.cache.set_scope_path(id, path.clone())?;
        if let Some(s) = self.slots.lock()[id].as_mut() {
            s.path = path.clone();
        }
        self.keep_setting(id, "path", path.as_deref().unwrap_or(""));
        self.sync();
        Ok(())
    }

    /// Write scope `id`'s `share`.
    pub fn set_share(&self, id: ScopeId, text: &str) -> std::result::Result<(), String> {
        let text = text.trim();
        let (_, capacity) = self.cache.occupancy();
        let blocks = parse_share(text, capacity, self.cache.block_size())?;
        self.cache
            .set_scope_share(id, blocks)
            .map_err(|e| e.to_string())?;
        if let Some(s) = self.slots.lock()[id].as_mut() {
            s.share = text.to_string();
        }
        self.keep_setting(id, "share", text);
        Ok(())
    }

    /// Make every scope serve each role its own files do not with its own instance of what
    /// its enclosing scope serves it with (see the module docs).
    pub fn sync(&self) {
        let mut inherited = self.inherited.lock();
        // Outermost first, so that a scope copies what its parent serves after this sync.
        let mut live: Vec<(usize, ScopeId, ScopeId)> = self
            .list()
            .into_iter()
            .map(|(id, _)| {
                let (parent, depth) = self.cache.scope_parent(id);
                (depth, id, parent)
            })
            .collect();
        live.sort_unstable();
        for (_, s, parent) in live {
            for (ri, role) in ROLES.iter().enumerate() {
                let Some(serving) = self.cache.with_scope(s, |c| c.policy(*role).plugin) else {
                    continue;
                };
                if serving.as_ref().is_some_and(|st| self.dirs[s].owns(st)) {
                    inherited[s][ri] = None;
                    continue;
                }
                let desired = self.effective(&inherited, parent, *role, ri);
                let current = inherited[s][ri].clone();
                let still = |rec: &Inherit| matches!((&serving, &rec.instance), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
                match (desired, current) {
                    (None, None) => {}
                    (None, Some(rec)) => {
                        if still(&rec)
                            && let Some(i) = &rec.instance
                        {
                            self.cache
                                .with_scope(s, |c| c.retire(i, "no longer inherited"));
                        }
                        inherited[s][ri] = None;
                    }
                    (Some(src), Some(rec)) if Arc::ptr_eq(&src, &rec.source) => {}
                    (Some(src), current) => {
                        let instance = self.copy(s, &src, *role);
                        if let Some(old) = current.filter(still).and_then(|r| r.instance) {
                            self.cache.with_scope(s, |c| c.retire(&old, "replaced"));
                        }
                        inherited[s][ri] = Some(Inherit {
                            source: src,
                            instance,
                        });
                    }
                }
            }
        }
    }

    /// What scope `id` serves `role` with, as a plugin file's instance (its own, or the one
    /// it inherits a copy of); `None` for a built-in or a governor's choice.
    fn effective(
        &self,
        inherited: &[[Option<Inherit>; 3]],
        id: ScopeId,
        role: Role,
        ri: usize,
    ) -> Option<StatusHandle> {
        let serving = self
            .cache
            .with_scope(id, |c| c.policy(role).plugin)
            .flatten()?;
        if self.dirs[id].owns(&serving) {
            return Some(serving);
        }
        inherited[id][ri]
            .as_ref()
            .filter(|r| {
                r.instance
                    .as_ref()
                    .is_some_and(|i| Arc::ptr_eq(i, &serving))
            })
            .map(|r| r.source.clone())
    }

    /// Scope `s`'s own instance of the file whose instance is `src`, serving `role`.
    fn copy(&self, s: ScopeId, src: &StatusHandle, role: Role) -> Option<StatusHandle> {
        let super::plugins::PluginSource {
            name,
            bytes,
            params,
        } = self.dirs.iter().find_map(|d| d.source_of(src))?;
        match self.dirs[s]
            .loader()
            .install_inherited(&name, &bytes, &params, role)
        {
            Ok(st) => {
                tracing::info!(plugin = name, scope = s, ?role, "plugin inherited");
                Some(st)
            }
            Err(e) => {
                tracing::warn!(plugin = name, scope = s, ?role, "cannot inherit: {e}");
                None
            }
        }
    }
}

/// A scope name: a directory name, not `.` or `..`, no `/` or NUL, at most 255 bytes.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\0'])
    {
        return Err(fs_err!(libc::EINVAL, "bad scope name {name:?}"));
    }
    Ok(())
}

/// A share in blocks of a cache of `capacity` blocks of `block_size` bytes: a percentage
/// (`25%`), a fraction written with a point (`0.25`, `1.0`), or a size (`64MiB`, `4096`:
/// whole blocks of it).
pub fn parse_share(text: &str, capacity: u64, block_size: u64) -> std::result::Result<u64, String> {
    let t = text.trim();
    let fraction = if let Some(p) = t.strip_suffix('%') {
        Some(
            p.trim()
                .parse::<f64>()
                .map_err(|_| format!("bad share {t:?}"))?
                / 100.0,
        )
    } else if t.contains('.') {
        Some(
            t.parse::<f64>()
                .map_err(|_| format!("bad share {t:?} (examples: 25%, 0.25, 64MiB)"))?,
        )
    } else {
        None
    };
    match fraction {
        Some(f) if (0.0..=1.0).contains(&f) => Ok((f * capacity as f64).floor() as u64),
        Some(_) => Err(format!("share {t:?} is outside 0..=100%")),
        None => {
            let bytes = crate::mount::parse_size(t)?;
            Ok(bytes / block_size.max(1))
        }
    }
}

/// Which node of `.kplug/scopes/` an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Root,
    Dir(ScopeId),
    Path(ScopeId),
    Share(ScopeId),
}

/// An open handle of a `path` or `share` file: what was rendered at open, what is written.
struct Open {
    node: Node,
    /// The generation of the scope it was opened in.
    generation: u64,
    shown: Vec<u8>,
    written: Option<Vec<u8>>,
    /// The file offset where the line being written starts (after the lines applied).
    base: usize,
}

/// The `.kplug/scopes/` tree.
pub struct ScopesTree {
    ids: TreeIds,
    owner: Owner,
    started: SystemTime,
    scopes: Arc<Scopes>,
    /// The root inode of each slot's `plugins/` tree (index 0 unused).
    plugins_roots: Vec<u64>,
    open: Handles<Option<Open>>,
}

impl ScopesTree {
    /// `.kplug/scopes/` over `scopes`, whose slot i has its `plugins/` at inode
    /// `plugins_roots[i]`.
    pub fn new(ids: TreeIds, owner: Owner, scopes: Arc<Scopes>, plugins_roots: Vec<u64>) -> Self {
        Self {
            ids,
            owner,
            started: SystemTime::now(),
            scopes,
            plugins_roots,
            open: Handles::new(ids),
        }
    }

    /// A node's inode: its scope's generation, slot and kind, so that a scope created in the
    /// slot of a removed one never gets the removed one's numbers (the kernel keeps a
    /// removed directory's inode dead).
    fn ino(&self, node: Node) -> u64 {
        let (i, k) = match node {
            Node::Root => return self.ids.ino(1),
            Node::Dir(i) => (i, 0),
            Node::Path(i) => (i, 1),
            Node::Share(i) => (i, 2),
        };
        let generation = self.generation(node) & ((1 << 36) - 1);
        self.ids.ino(generation << 12 | (i as u64) << 4 | k)
    }

    fn node(&self, ino: u64) -> Result<Node> {
        let local = self.ids.local(ino);
        let gone = || fs_err!(libc::ENOENT, "no such scope node");
        if local == 1 {
            return Ok(Node::Root);
        }
        let (generation, i, k) = (local >> 12, ((local >> 4) & 0xff) as usize, local & 15);
        let live = |i: usize| {
            self.scopes.slots.lock()[i]
                .as_ref()
                .is_some_and(|s| s.generation & ((1 << 36) - 1) == generation)
        };
        if i == 0 || i > MAX_SCOPES || !live(i) {
            return Err(gone());
        }
        match k {
            0 => Ok(Node::Dir(i)),
            1 => Ok(Node::Path(i)),
            2 => Ok(Node::Share(i)),
            _ => Err(gone()),
        }
    }

    fn text(&self, node: Node) -> Vec<u8> {
        let slots = self.scopes.slots.lock();
        let info = |i: ScopeId| slots[i].clone();
        let mut t = match node {
            Node::Path(i) => info(i).and_then(|s| s.path).unwrap_or_default(),
            Node::Share(i) => info(i).map(|s| s.share).unwrap_or_default(),
            _ => return Vec::new(),
        };
        if !t.is_empty() || matches!(node, Node::Path(i) if info(i).and_then(|s| s.path).is_some())
        {
            t.push('\n');
        }
        t.into_bytes()
    }

    fn created(&self, i: ScopeId) -> SystemTime {
        self.scopes.slots.lock()[i]
            .as_ref()
            .map_or(self.started, |s| s.created)
    }

    fn attr(&self, node: Node) -> Attr {
        let ino = self.ino(node);
        match node {
            Node::Root => self.owner.attr(ino, FileKind::Dir, 0o755, 0, self.started),
            Node::Dir(i) => self
                .owner
                .attr(ino, FileKind::Dir, 0o755, 0, self.created(i)),
            Node::Path(i) | Node::Share(i) => {
                let size = self.text(node).len() as u64;
                self.owner.attr(
                    ino,
                    FileKind::File,
                    0o644,
                    size,
                    SystemTime::now().max(self.created(i)),
                )
            }
        }
    }

    fn plugins_entry(&self, i: ScopeId) -> Result<Entry> {
        Ok(entry(
            self.scopes.dirs[i].getattr(self.plugins_roots[i], None)?,
        ))
    }

    /// The entries of directory `node`, without `.` and `..`.
    fn children(&self, node: Node) -> Vec<(u64, FileKind, String)> {
        match node {
            Node::Root => self
                .scopes
                .list()
                .into_iter()
                .map(|(i, s)| (self.ino(Node::Dir(i)), FileKind::Dir, s.name))
                .collect(),
            Node::Dir(i) => vec![
                (self.ino(Node::Path(i)), FileKind::File, "path".into()),
                (self.plugins_roots[i], FileKind::Dir, "plugins".into()),
                (self.ino(Node::Share(i)), FileKind::File, "share".into()),
            ],
            _ => Vec::new(),
        }
    }

    /// The generation of the scope of `node` now (0: none).
    fn generation(&self, node: Node) -> u64 {
        match node {
            Node::Dir(i) | Node::Path(i) | Node::Share(i) => self.scopes.slots.lock()[i]
                .as_ref()
                .map_or(0, |s| s.generation),
            Node::Root => 0,
        }
    }

    fn apply(&self, node: Node, generation: u64, text: &[u8]) -> Result<()> {
        if self.generation(node) != generation {
            return Err(fs_err!(libc::ENOENT, "the scope was removed"));
        }
        let text = String::from_utf8_lossy(text);
        let r = match node {
            Node::Path(i) => self.scopes.set_path(i, &text),
            Node::Share(i) => self.scopes.set_share(i, &text),
            _ => Ok(()),
        };
        r.map_err(|msg| {
            tracing::warn!("scopes: {msg}");
            fs_err!(libc::EINVAL, "{msg}")
        })
    }
}

impl Tree for ScopesTree {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let node = self.node(parent)?;
        if name == "." || name == ".." {
            return Ok(entry(self.getattr(parent, None)?));
        }
        let name = name.to_string_lossy();
        match node {
            Node::Root => {
                let i = self
                    .scopes
                    .find(&name)
                    .ok_or_else(|| fs_err!(libc::ENOENT, "no scope {name}"))?;
                Ok(entry(self.attr(Node::Dir(i))))
            }
            Node::Dir(i) => match name.as_ref() {
                "path" => Ok(entry(self.attr(Node::Path(i)))),
                "share" => Ok(entry(self.attr(Node::Share(i)))),
                "plugins" => self.plugins_entry(i),
                _ => Err(fs_err!(
                    libc::ENOENT,
                    "a scope holds path, share and plugins/"
                )),
            },
            _ => Err(fs_err!(libc::ENOTDIR, "not a directory")),
        }
    }

    fn getattr(&self, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        Ok(self.attr(self.node(ino)?))
    }

    /// `echo 25% > share` truncates first: a write replaces the setting.
    fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        keep_owner_and_mode(&set)?;
        self.getattr(ino, None)
    }

    fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _caller: Caller,
    ) -> Result<Entry> {
        if self.node(parent)? != Node::Root {
            return Err(fs_err!(
                libc::EPERM,
                "scopes are created in .kplug/scopes/ only"
            ));
        }
        let id = self.scopes.create(&name.to_string_lossy())?;
        Ok(entry(self.attr(Node::Dir(id))))
    }

    fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        if self.node(parent)? != Node::Root {
            return Err(fs_err!(libc::EPERM, "only a scope can be removed here"));
        }
        self.scopes.remove(&name.to_string_lossy())
    }

    fn open(&self, ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        let node = self.node(ino)?;
        if matches!(node, Node::Root | Node::Dir(_)) {
            return Err(fs_err!(libc::EISDIR, "a directory"));
        }
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        Ok(Opened::direct(self.open.insert(Some(Open {
            node,
            generation: self.generation(node),
            shown: self.text(node),
            written: writing.then(Vec::new),
            base: 0,
        }))))
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        self.open.with(fh, |o| {
            let o = o
                .as_ref()
                .ok_or_else(|| fs_err!(libc::EISDIR, "a directory"))?;
            Ok(slice(&o.shown, offset, size))
        })
    }

    fn write_through(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        _from_page_cache: bool,
    ) -> Result<Written> {
        // A whole line is applied at once, so that `echo 200% > share` fails in `write()`
        // (shells do not report an error of `close()`); the rest at `close()`.
        let line = self.open.with(fh, |o| {
            let o = o
                .as_mut()
                .filter(|o| o.written.is_some())
                .ok_or_else(|| fs_err!(libc::EBADF, "not open for writing"))?;
            let w = o.written.as_mut().expect("checked");
            let at = (offset as usize).saturating_sub(o.base);
            write_at(w, at, data, MAX_TEXT, "a scope setting is one short line")?;
            if !w.ends_with(b"\n") {
                return Ok(None);
            }
            o.base = offset as usize + data.len();
            Ok(Some((o.node, o.generation, std::mem::take(w))))
        })?;
        if let Some((node, generation, text)) = line {
            self.apply(node, generation, &text)?;
        }
        Ok(Written {
            bytes: data.len() as u32,
            stale_pages: None,
        })
    }

    /// `close()` applies what was written: EINVAL, and nothing changes, when it is refused.
    fn flush(&self, fh: u64, _pid: u32) -> Result<()> {
        let pending = self.open.with(fh, |o| {
            Ok(o.as_mut().and_then(|o| {
                Some((
                    o.node,
                    o.generation,
                    o.written.as_mut().map(std::mem::take)?,
                ))
            }))
        })?;
        match pending {
            Some((node, generation, text)) if !text.is_empty() => {
                self.apply(node, generation, &text)
            }
            _ => Ok(()),
        }
    }

    fn release(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }

    fn opendir(&self, ino: u64) -> Result<u64> {
        match self.node(ino)? {
            Node::Root | Node::Dir(_) => Ok(self.open.insert(None)),
            _ => Err(fs_err!(libc::ENOTDIR, "not a directory")),
        }
    }

    fn readdir(&self, ino: u64, _fh: u64, offset: u64, sink: &mut dyn DirSink) -> Result<()> {
        let node = self.node(ino)?;
        let parent = match node {
            Node::Dir(_) => self.ino(Node::Root),
            _ => ino,
        };
        let children = self.children(node);
        let listing = children
            .iter()
            .map(|(i, k, n)| (*i, *k, OsStr::new(n.as_str())));
        list_dir(sink, offset, ino, parent, listing);
        Ok(())
    }

    fn readdirplus(
        &self,
        ino: u64,
        _fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> Result<()> {
        let node = self.node(ino)?;
        let dot = entry(self.getattr(ino, None)?);
        let children = self.children(node);
        list_dir_plus(
            sink,
            offset,
            &dot,
            children.iter(),
            |(_, _, n)| OsStr::new(n.as_str()),
            |(i, _, n)| {
                Ok(Some(match (node, n.as_str()) {
                    (Node::Dir(s), "plugins") => self.plugins_entry(s)?,
                    _ => entry(self.getattr(*i, None)?),
                }))
            },
            |_| {},
        )?;
        Ok(())
    }

    fn releasedir(&self, fh: u64) -> Result<()> {
        self.open.remove(fh).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_share;

    #[test]
    fn shares_parse_as_percent_fraction_or_size() {
        assert_eq!(parse_share("25%", 1000, 4096), Ok(250));
        assert_eq!(parse_share(" 0.5 \n", 1000, 4096), Ok(500));
        assert_eq!(parse_share("1.0", 1000, 4096), Ok(1000));
        assert_eq!(parse_share("4MiB", 1000, 4096), Ok(1024));
        assert_eq!(parse_share("0", 1000, 4096), Ok(0));
        assert!(parse_share("150%", 1000, 4096).is_err());
        assert!(parse_share("half", 1000, 4096).is_err());
    }
}
