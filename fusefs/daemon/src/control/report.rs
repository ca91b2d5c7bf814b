//! The documents the control tree serves, as the typed schema of `monitor::schema`:
//! `.kplug/stats` ([`Sources::stats`]) and `.kplug/status` ([`Sources::status`]).
//!
//! `stats` reads the plugin files first and the cache core second; `status` reads the core
//! while holding the plugin files' lock (taken first, as every load and removal does), so the
//! files, their instances' states and what serves each role are one moment's truth. Both
//! copy the core's counters under its lock: nothing is counted twice. A role a governor's
//! candidate serves is counted among the governor's file's `active_roles`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kplug_abi::Role;
use kplug_cache::{CacheCore, CacheStats};
use kplug_engine::{CodeTier, PluginState, StatusHandle, StatusSnapshot};
use kplug_store::Store;

use super::plugins::{
    PluginFile, PluginsDir, is_params_file, params_file_of, plugin_name, swap_latency,
};
use crate::data::blockcache::BlockCache;
use crate::monitor::history::HistoryState;
use crate::monitor::metrics::FuseMetrics;
use crate::monitor::schema::{
    ActiveRoles, ActiveStatus, BackendStats, CacheCounters, CandidateEntry, FuseOpStats, HintStats,
    PluginCode, PluginEntry, PluginStats, PrefetchCounters, ProbeStats, ScopeStats, ScopeStatus,
    Stats, Status, StatusBackend, StoreKindStats, StoreStats, TierUps,
};

/// Where the documents' figures come from.
pub struct Sources {
    /// The block cache (and its core).
    pub cache: Arc<BlockCache>,
    /// The object store of an object-store mount.
    pub store: Option<Arc<Store>>,
    /// The plugin files.
    pub plugins: Arc<PluginsDir>,
    /// The scopes of `.kplug/scopes/`.
    pub scopes: Arc<super::scopes::Scopes>,
    /// The views of the transforms among them.
    pub views: Arc<super::views::Views>,
    /// The FUSE adapter's request counters.
    pub fuse: Arc<FuseMetrics>,
    /// The history writer, once started.
    pub history: OnceLock<Arc<HistoryState>>,
    /// When the control plane started.
    pub started_at: Instant,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The roles served by `h` or by a candidate of it, given what serves each role.
fn served_by_file(serving: &[(Role, StatusHandle)], h: &StatusHandle) -> Vec<Role> {
    serving
        .iter()
        .filter(|(_, s)| s.is_or_owned_by(h))
        .map(|(r, _)| *r)
        .collect()
}

/// The name `active` shows for a role: the plugin's, or `builtin:NAME`.
fn served_by(name: String, plugin: bool) -> String {
    if plugin {
        name
    } else {
        format!("builtin:{name}")
    }
}

/// What serves each role of `core` (eviction, admission, prefetch, as status names) and the
/// plugins among them, read in one moment under the core's lock.
fn serving_roles<V>(core: &CacheCore<V>) -> ([String; 3], Vec<(Role, StatusHandle)>) {
    let mut serving = Vec::new();
    let names = [Role::Eviction, Role::Admission, Role::Prefetch].map(|role| {
        let p = core.policy(role);
        if let Some(h) = &p.plugin {
            serving.push((role, h.clone()));
        }
        served_by(p.name, p.plugin.is_some())
    });
    (names, serving)
}

impl Sources {
    fn cache_counters(&self, s: &CacheStats, resident: u64, capacity: u64) -> CacheCounters {
        let c = self.cache.counters();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        CacheCounters {
            admission_refusals: s.admission_refusals,
            block_size: self.cache.block_size(),
            capacity_blocks: capacity,
            deduplicated_fetches: load(&c.deduplicated),
            evictions: s.evictions,
            faults: s.faults,
            hits: s.hits,
            insertions: s.insertions,
            invalidations: s.invalidations,
            misses: s.misses,
            policy_switches: s.policy_switches,
            resident_blocks: resident,
            stale_fetches_dropped: load(&c.stale_fetches),
        }
    }

    fn prefetch_counters(&self, s: &CacheStats) -> PrefetchCounters {
        PrefetchCounters {
            completed_blocks: s.prefetch_inserted,
            dropped_blocks: self
                .cache
                .counters()
                .prefetch_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            issued_blocks: s.prefetch_planned,
            used_blocks: s.prefetch_used,
            wasted_blocks: s.prefetch_wasted,
        }
    }

    /// `.kplug/stats` now (see docs/METRICS.md for every field).
    pub fn stats(&self) -> Stats {
        let now = SystemTime::now();
        // Plugin files first (their lock is never taken with the core's).
        let handles: Vec<(String, Option<StatusHandle>, bool)> = self
            .plugins
            .files()
            .into_iter()
            .filter(|(file, _)| !is_params_file(file))
            .map(|(file, f)| {
                let refused = f.refused.is_some();
                (plugin_name(&file).to_string(), f.instance, refused)
            })
            .collect();
        let (active, serving) = self.cache.with_core(|core| {
            let ([eviction, admission, prefetch], serving) = serving_roles(core);
            let active = ActiveRoles {
                eviction,
                admission,
                prefetch,
            };
            (active, serving)
        });
        // Every scope's counters add up to the cache's.
        let stats = self.cache.stats();
        let (resident, capacity) = self.cache.occupancy();
        let plugins = handles
            .into_iter()
            .map(|(name, handle, refused)| {
                let v = match handle {
                    Some(h) => {
                        let snap = h.snapshot();
                        PluginStats {
                            active_roles: served_by_file(&serving, &h),
                            calls: snap.calls,
                            faults: snap.faults,
                            governor: snap.governor,
                            probe: snap.probe,
                            roles: snap.roles,
                            state: snap.state,
                            time_ns: h.time_ns(),
                        }
                    }
                    None => PluginStats {
                        active_roles: Vec::new(),
                        calls: 0,
                        faults: 0,
                        governor: false,
                        probe: false,
                        roles: Vec::new(),
                        state: if refused {
                            PluginState::Failed
                        } else {
                            PluginState::Loading
                        },
                        time_ns: 0,
                    },
                };
                (name, v)
            })
            .collect();
        let backend = self.cache.backend();
        let fuse = self
            .fuse
            .snapshot()
            .into_iter()
            .map(|op| {
                let v = FuseOpStats {
                    bytes: op.bytes,
                    count: op.count,
                    errors: op.errors,
                    latency_us: op.latency.latency_us(),
                };
                (op.op.name().to_string(), v)
            })
            .collect::<BTreeMap<_, _>>();
        Stats {
            active,
            backend: BackendStats {
                bytes: backend.bytes(),
                emulated_latency_us: backend.latency().as_micros() as u64,
                latency_us: backend.read_latency().latency_us(),
                reads: backend.reads(),
            },
            cache: self.cache_counters(&stats, resident, capacity),
            fuse,
            history: self.history.get().map(|h| h.info()),
            kernel_hints: self.cache.hint_stats().map(|h| HintStats {
                backend: h.backend,
                bytes: h.bytes,
                errors: h.errors,
                forwarded: h.forwarded,
            }),
            plugins,
            prefetch: self.prefetch_counters(&stats),
            scopes: self.scope_stats(),
            probes: self
                .fuse
                .probes()
                .counts()
                .into_iter()
                .map(|c| {
                    let s = ProbeStats {
                        delivered: c.delivered,
                        dropped: c.dropped,
                        queued: c.queued,
                    };
                    (c.name, s)
                })
                .collect(),
            store: self.store.as_ref().map(|s| StoreStats {
                source: s.describe(""),
                requests: s
                    .stats()
                    .into_iter()
                    .map(|k| {
                        let v = StoreKindStats {
                            bytes: k.bytes,
                            errors: k.errors,
                            latency_us: k.latency.latency_us(),
                            requests: k.requests,
                            retries: k.retries,
                        };
                        (k.kind.name().to_string(), v)
                    })
                    .collect(),
            }),
            time_unix_ms: millis(now),
            uptime_ms: self.started_at.elapsed().as_millis() as u64,
            views: self
                .views
                .all()
                .iter()
                .map(|v| (v.entry().name, v.stats()))
                .collect(),
        }
    }

    /// `.kplug/status` now.
    pub fn status(&self) -> Status {
        self.plugins.with_files(|files| {
            let (active, serving, snaps) = self.cache.with_core(|core| {
                let ([eviction, admission, prefetch], serving) = serving_roles(core);
                let active = ActiveStatus {
                    admission,
                    candidates: core
                        .candidates()
                        .into_iter()
                        .map(|c| CandidateEntry {
                            active: c.active,
                            error: c.error,
                            hits: c.hits,
                            requests: c.requests,
                            role: c.role,
                            spec: c.spec,
                        })
                        .collect(),
                    eviction,
                    governor: core.governor_name().map(str::to_string),
                    prefetch,
                };
                // The instances' states as of this moment: a fault changes them only
                // under the core's lock.
                let snaps: BTreeMap<String, StatusSnapshot> = files
                    .iter()
                    .filter_map(|(n, f)| f.instance.as_ref().map(|h| (n.clone(), h.snapshot())))
                    .collect();
                (active, serving, snaps)
            });
            let plugins = file_entries(files, |file, _| snaps.get(file).cloned(), &serving);
            let stats = self.cache.stats();
            let (resident, capacity) = self.cache.occupancy();
            let backend = self.cache.backend();
            Status {
                active,
                backend: StatusBackend {
                    bytes: backend.bytes(),
                    latency_us: backend.latency().as_micros() as u64,
                    reads: backend.reads(),
                },
                cache: self.cache_counters(&stats, resident, capacity),
                plugins,
                prefetch: self.prefetch_counters(&stats),
                scopes: self.scope_status(),
                views: self.views.all().iter().map(|v| v.entry()).collect(),
                tier_ups: {
                    let o = self.plugins.loader().engine().optimizer_stats();
                    TierUps {
                        requested: o.requested,
                        optimized: o.optimized,
                        dropped: o.dropped,
                        failed: o.failed,
                    }
                },
            }
        })
    }
}

impl Sources {
    /// The scopes (the root as `/`) with their settings, figures and what serves them; empty
    /// while there is no scope.
    fn scope_rows(&self) -> Vec<ScopeRow> {
        let list = self.scopes.list();
        if list.is_empty() {
            return Vec::new();
        }
        let figures = self.cache.scopes();
        let root = (0, "/".to_string(), None, String::new());
        std::iter::once(root)
            .chain(list.into_iter().map(|(i, s)| (i, s.name, s.path, s.share)))
            .filter_map(|(id, name, path, share)| {
                let ([eviction, admission, prefetch], serving) =
                    self.cache.with_scope(id, |c| serving_roles(c))?;
                Some(ScopeRow {
                    id,
                    name,
                    path,
                    share,
                    active: ActiveRoles {
                        admission,
                        eviction,
                        prefetch,
                    },
                    serving,
                    figures: figures.iter().find(|f| f.id == id)?.clone(),
                    inherited: self.scopes.inherited_roles(id),
                })
            })
            .collect()
    }

    fn scope_stats(&self) -> BTreeMap<String, ScopeStats> {
        self.scope_rows()
            .into_iter()
            .map(|r| {
                let s = &r.figures.stats;
                let v = ScopeStats {
                    active: r.active,
                    admission_refusals: s.admission_refusals,
                    evictions: s.evictions,
                    faults: s.faults,
                    hits: s.hits,
                    inherited: r.inherited,
                    insertions: s.insertions,
                    misses: s.misses,
                    path: r.path,
                    resident_blocks: r.figures.resident,
                    share: r.share,
                    share_blocks: r.figures.share,
                };
                (r.name, v)
            })
            .collect()
    }

    fn scope_status(&self) -> Vec<ScopeStatus> {
        self.scope_rows()
            .into_iter()
            .map(|r| {
                // The root's files are `status.plugins`.
                let plugins = if r.id == 0 {
                    Vec::new()
                } else {
                    self.scopes.dir(r.id).with_files(|files| {
                        let snap =
                            |_: &str, f: &PluginFile| f.instance.as_ref().map(|h| h.snapshot());
                        file_entries(files, snap, &r.serving)
                    })
                };
                ScopeStatus {
                    active: r.active,
                    inherited: r.inherited,
                    name: r.name,
                    path: r.path,
                    plugins,
                    resident_blocks: r.figures.resident,
                    share: r.share,
                    share_blocks: r.figures.share,
                }
            })
            .collect()
    }
}

/// One scope as `stats` and `status` show it.
struct ScopeRow {
    id: usize,
    name: String,
    path: Option<String>,
    share: String,
    active: ActiveRoles,
    serving: Vec<(Role, StatusHandle)>,
    figures: crate::data::blockcache::ScopeFigures,
    inherited: Vec<Role>,
}

/// The status entries of the plugin files of `files` (parameter files aside), each with the
/// snapshot `snap` gives of its instance.
fn file_entries(
    files: &BTreeMap<String, PluginFile>,
    snap: impl Fn(&str, &PluginFile) -> Option<StatusSnapshot>,
    serving: &[(Role, StatusHandle)],
) -> Vec<PluginEntry> {
    files
        .iter()
        .filter(|(file, _)| !is_params_file(file))
        .map(|(file, f)| {
            let params = files
                .get(&params_file_of(file))
                .map(|p| String::from_utf8_lossy(&p.data).trim().to_string());
            file_entry(file, f, params, snap(file, f).as_ref(), serving)
        })
        .collect()
}

/// The status entry of plugin file `file`: its instance's state (a refusal of a later copy
/// is its last error), `failed` when refused with nothing loaded, `loading` before its first
/// load ends.
fn file_entry(
    file: &str,
    f: &PluginFile,
    params: Option<String>,
    snap: Option<&StatusSnapshot>,
    serving: &[(Role, StatusHandle)],
) -> PluginEntry {
    let refusal = f
        .refused
        .as_ref()
        .map(|(e, at)| (format!("refused at load: {e}"), *at));
    let name = plugin_name(file).to_string();
    match (&f.instance, snap) {
        (Some(h), Some(s)) => PluginEntry {
            active_roles: served_by_file(serving, h),
            calls: s.calls,
            error: refusal.as_ref().map(|r| r.0.clone()).or(s.error.clone()),
            faults: s.faults,
            file: file.to_string(),
            governor: s.governor,
            probe: s.probe,
            loaded_at: refusal.as_ref().map_or(s.loaded_at, |r| millis(r.1)),
            name,
            params,
            roles: s.roles.clone(),
            state: s.state,
            swap_latency_us: f
                .swap_latency_us
                .or_else(|| swap_latency(f.closed_at, h.first_decision())),
            code: f.tier.map(|t| match t {
                CodeTier::Baseline => PluginCode::Baseline,
                CodeTier::Optimized => PluginCode::Optimized,
            }),
        },
        _ => PluginEntry {
            active_roles: Vec::new(),
            calls: 0,
            faults: 0,
            file: file.to_string(),
            governor: false,
            probe: false,
            loaded_at: refusal.as_ref().map_or(millis(f.mtime), |r| millis(r.1)),
            name,
            params,
            roles: Vec::new(),
            state: if refusal.is_some() {
                PluginState::Failed
            } else {
                PluginState::Loading
            },
            error: refusal.map(|r| r.0),
            swap_latency_us: None,
            code: None,
        },
    }
}
