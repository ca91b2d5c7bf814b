//! The control directory `MOUNT/.kplug/`: small virtual trees, like sysfs, through which an
//! operator manages the plugins of a live mount and reads what it does.
//!
//! ```text
//! .kplug/            dr-xr-xr-x  owner: the mounting user               root.rs
//! ├── status         r--r--r--   JSON: every plugin, what serves each role   file.rs + report.rs
//! ├── stats          r--r--r--   JSON: counters and latencies (docs/METRICS.md)
//! ├── metrics        r--r--r--   the same in the Prometheus text format   file.rs + monitor/prometheus.rs
//! ├── trace          rw-r--r--   write `start /abs/path.kplug` or `stop`     trace.rs
//! ├── plugins/       rwxr-xr-x   drop a .wasm here to load it; rm to unload  plugins.rs + loader.rs
//! ├── scopes/        rwxr-xr-x   mkdir NAME: a subtree with its own plugins/ and share   scopes.rs
//! ├── views/         r-xr-xr-x   views/NAME/: the mount through transform NAME   views.rs
//! └── probes/        r-xr-xr-x   one file per probe plugin: its report      probes.rs + monitor/probes.rs
//! ```
//!
//! Each entry is a tree of its own ([`crate::fs::Tree`]) with its own inode and handle
//! numbers, registered with the router by [`mount`]; `.kplug` itself (`root.rs`) only lists
//! them. A new entry is one more file here and one more [`Child`] in [`mount`]. The
//! documents are the typed schema of `crate::monitor::schema`, built in `report.rs`. An
//! entry named `.kplug` in the backing root is hidden by this tree and never touched.
//!
//! **Who may write.** The trees belong to the user who mounted; the kernel's
//! `default_permissions` check then lets only that user (and root) create, write or remove
//! files in `plugins/`: anyone else gets EACCES.

mod file;
mod loader;
mod node;
pub mod persist;
mod plugins;
mod priority;
mod probes;
mod report;
mod root;
pub mod scopes;
mod trace;
pub mod views;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kplug_engine::{EngineConfig, PluginEngine};
use kplug_store::Store;

pub use node::Owner;
pub use plugins::parse_params_text;
pub use report::Sources;
pub use root::Child;

use crate::data::blockcache::BlockCache;
use crate::error::Result;
use crate::fs::{CONTROL_DIR, KplugFs, Tree, TreeIds};
use crate::fs_err;
use crate::monitor::history::HistoryState;
use crate::monitor::schema::{self, Stats, Status};

/// The control plane of one mount: what its virtual trees share.
pub struct Control {
    sources: Arc<Sources>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

/// Add `.kplug/` to `fs`: the control trees of a mount owned by `owner`, over `cache` (and
/// `store`, for an object-store mount), with plugins compiled under `engine`.
pub fn mount(
    fs: &mut KplugFs,
    cache: Arc<BlockCache>,
    store: Option<Arc<Store>>,
    owner: Owner,
    engine: EngineConfig,
) -> Result<Arc<Control>> {
    let max_module_bytes = engine.max_module_bytes;
    let engine = PluginEngine::new(engine).map_err(|e| fs_err!(libc::EIO, "plugin engine: {e}"))?;
    let recorder = cache.recorder().clone();
    let views = Arc::new(views::Views::default());
    let main = fs.main_tree();
    let (views_tree, views_ids) =
        fs.add_tree(|ids| Arc::new(views::ViewsTree::new(ids, owner, main, views.clone())));
    let bus = fs.fuse_metrics().probes().clone();
    cache.attach_probes(bus.clone());
    let root_loader = loader::Loader::new(cache.clone(), bus.clone(), engine, views.clone());
    let scope_loaders: Vec<loader::Loader> = (1..=scopes::MAX_SCOPES)
        .map(|i| root_loader.for_scope(i))
        .collect();
    let (plugins, plugins_ids) =
        fs.add_tree(|ids| plugins::PluginsDir::new(ids, owner, root_loader, max_module_bytes));
    // One plugins/ tree per scope slot, registered now: the router's trees are fixed at mount.
    let mut scope_dirs = vec![plugins.clone()];
    let mut scope_roots = vec![plugins_ids.root()];
    for l in scope_loaders {
        let (dir, ids) =
            fs.add_tree(|ids| plugins::PluginsDir::new(ids, owner, l, max_module_bytes));
        scope_dirs.push(dir);
        scope_roots.push(ids.root());
    }
    let scopes = scopes::Scopes::new(cache.clone(), scope_dirs);
    let (scopes_tree, scopes_ids) = fs.add_tree(|ids| {
        Arc::new(scopes::ScopesTree::new(
            ids,
            owner,
            scopes.clone(),
            scope_roots,
        ))
    });
    let sources = Arc::new(Sources {
        cache,
        store,
        plugins: plugins.clone(),
        scopes,
        views,
        fuse: fs.fuse_metrics().clone(),
        history: OnceLock::new(),
        started_at: Instant::now(),
    });
    let s = sources.clone();
    let (status, status_ids) = fs.add_tree(|ids| {
        Arc::new(file::RenderedFile::new(
            ids,
            owner,
            "status",
            Box::new(move || schema::to_text(&s.status())),
        ))
    });
    let s = sources.clone();
    let (stats, stats_ids) = fs.add_tree(|ids| {
        Arc::new(file::RenderedFile::new(
            ids,
            owner,
            "stats",
            Box::new(move || schema::to_text(&s.stats())),
        ))
    });
    let s = sources.clone();
    let (metrics, metrics_ids) = fs.add_tree(|ids| {
        Arc::new(file::RenderedFile::new(
            ids,
            owner,
            "metrics",
            Box::new(move || crate::monitor::prometheus::render(&s.stats())),
        ))
    });
    let (probes, probes_ids) =
        fs.add_tree(|ids| Arc::new(probes::ProbesDir::new(ids, owner, bus.clone())));
    let (trace, trace_ids) =
        fs.add_tree(|ids| Arc::new(trace::TraceFile::new(ids, owner, recorder)));
    let child = |name, tree: Arc<dyn Tree>, ids: TreeIds| Child {
        name,
        tree,
        root: ids.root(),
    };
    let children = vec![
        child("metrics", metrics, metrics_ids),
        child("plugins", plugins, plugins_ids),
        child("probes", probes, probes_ids),
        child("scopes", scopes_tree, scopes_ids),
        child("status", status, status_ids),
        child("stats", stats, stats_ids),
        child("trace", trace, trace_ids),
        child("views", views_tree, views_ids),
    ];
    let (_, root) = fs.add_tree(|ids| Arc::new(root::ControlRoot::new(ids, owner, children)));
    fs.add_junction(CONTROL_DIR, root.root());
    Ok(Arc::new(Control { sources }))
}

impl Control {
    /// `.kplug/stats` now.
    pub fn stats(&self) -> Stats {
        self.sources.stats()
    }

    /// `.kplug/status` now.
    pub fn status(&self) -> Status {
        self.sources.status()
    }

    /// Load the plugins of a new mount, before the kernel sees it: first the files kept in
    /// `state` (parameter files first), then `chosen` (`(file name, bytes)`, from the command
    /// line: they win over kept files of the same name), each through
    /// [`plugins::PluginsDir::put`] like a drop. A governor may name a plugin loaded after it,
    /// so a refused file is tried once more at the end. Then `state` is attached: from now on
    /// the files dropped into the mount are kept there. Returns one line per file refused.
    pub fn load_at_mount(
        &self,
        state: Option<persist::StateDir>,
        chosen: Vec<(String, Vec<u8>)>,
    ) -> Vec<String> {
        let plugins = &self.sources.plugins;
        let mut failures = Vec::new();
        let mut files = Vec::new();
        if let Some(state) = &state {
            match state.files() {
                Ok(kept) => files.extend(
                    kept.into_iter()
                        .map(|(n, b)| (n, b, "kept from an earlier mount")),
                ),
                Err(e) => failures.push(format!(
                    "cannot read the kept plugins in {}: {e}",
                    state.plugins_dir().display()
                )),
            }
        }
        files.extend(chosen.into_iter().map(|(n, b)| (n, b, "chosen at mount")));
        let mut again = Vec::new();
        for (name, bytes, origin) in files {
            if plugins.put(&name, bytes.clone()).is_err() {
                again.push((name, bytes, origin));
            }
        }
        for (name, bytes, origin) in again {
            if let Err(e) = plugins.put(&name, bytes) {
                failures.push(format!("{e} ({origin})"));
            }
        }
        // The scopes kept, with their plugins, once the mount's own are in (they inherit).
        if let Some(state) = &state {
            failures.extend(self.sources.scopes.restore(state));
        }
        if let Some(state) = state {
            self.sources.scopes.attach_state(state.clone());
            plugins.attach_state(state);
        }
        failures
    }

    /// Show the history writer's state in `stats`.
    pub fn attach_history(&self, history: Arc<HistoryState>) {
        let _ = self.sources.history.set(history);
    }
}
