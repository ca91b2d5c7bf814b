//! The documents the control tree serves, as the typed schema of `monitor::schema`:
//! `.kplug/stats` ([`Sources::stats`]) and `.kplug/status` ([`Sources::status`]).
//!
//! Both read the plugin files first and the cache core second (the two locks are never held
//! together), and copy the core's counters under its lock: nothing is counted twice.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kplug_abi::Role;
use kplug_cache::CacheStats;
use kplug_engine::{PluginState, StatusHandle};
use kplug_store::Store;

use super::plugins::{PluginsDir, is_params_file, params_file_of, plugin_name};
use crate::data::blockcache::BlockCache;
use crate::monitor::history::HistoryState;
use crate::monitor::metrics::FuseMetrics;
use crate::monitor::schema::{
    ActiveRoles, ActiveStatus, BackendStats, CacheCounters, CandidateEntry, FuseOpStats, HintStats,
    PluginEntry, PluginStats, PrefetchCounters, Stats, Status, StatusBackend, StoreKindStats,
    StoreStats,
};

/// Where the documents' figures come from.
pub struct Sources {
    /// The block cache (and its core).
    pub cache: Arc<BlockCache>,
    /// The object store of an object-store mount.
    pub store: Option<Arc<Store>>,
    /// The plugin files.
    pub plugins: Arc<PluginsDir>,
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

/// The name `active` shows for a role: the plugin's, or `builtin:NAME`.
fn served_by(name: String, plugin: bool) -> String {
    if plugin {
        name
    } else {
        format!("builtin:{name}")
    }
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
        let handles: Vec<(String, Option<StatusHandle>)> = self
            .plugins
            .files()
            .into_iter()
            .filter(|(file, _)| !is_params_file(file))
            .map(|(file, f)| (plugin_name(&file).to_string(), f.status))
            .collect();
        let (active, serving, stats, resident, capacity) = self.cache.with_core(|core| {
            let mut serving: Vec<(Role, StatusHandle)> = Vec::new();
            let mut name = |role: Role| {
                let p = core.policy(role);
                if let Some(h) = &p.plugin {
                    serving.push((role, h.clone()));
                }
                served_by(p.name, p.plugin.is_some())
            };
            let active = ActiveRoles {
                eviction: name(Role::Eviction),
                admission: name(Role::Admission),
                prefetch: name(Role::Prefetch),
            };
            (
                active,
                serving,
                *core.stats(),
                core.len() as u64,
                core.capacity(),
            )
        });
        let plugins = handles
            .into_iter()
            .map(|(name, handle)| {
                let v = match handle {
                    Some(h) => {
                        let snap = h.snapshot();
                        PluginStats {
                            active_roles: serving
                                .iter()
                                .filter(|(_, s)| Arc::ptr_eq(s, &h))
                                .map(|(r, _)| *r)
                                .collect(),
                            calls: snap.calls,
                            faults: snap.faults,
                            governor: snap.governor,
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
                        roles: Vec::new(),
                        state: PluginState::Failed,
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
        }
    }

    /// `.kplug/status` now.
    pub fn status(&self) -> Status {
        let files = self.plugins.files();
        let mut plugins = Vec::new();
        for (file, f) in &files {
            if is_params_file(file) {
                continue;
            }
            let params = files
                .get(&params_file_of(file))
                .map(|p| String::from_utf8_lossy(&p.data).trim().to_string());
            let snap = f.status.as_ref().map(|s| s.snapshot());
            let entry = match (&f.refused, snap) {
                (Some((err, at)), prev) => PluginEntry {
                    calls: prev.as_ref().map_or(0, |s| s.calls),
                    error: Some(format!("refused at load: {err}")),
                    faults: prev.as_ref().map_or(0, |s| s.faults),
                    file: file.clone(),
                    governor: prev.as_ref().is_some_and(|s| s.governor),
                    loaded_at: millis(*at),
                    name: plugin_name(file).into(),
                    params,
                    roles: prev.map(|s| s.roles).unwrap_or_default(),
                    state: PluginState::Failed,
                    swap_latency_us: None,
                },
                (None, Some(s)) => PluginEntry {
                    calls: s.calls,
                    error: s.error,
                    faults: s.faults,
                    file: file.clone(),
                    governor: s.governor,
                    loaded_at: s.loaded_at,
                    name: s.name,
                    params,
                    roles: s.roles,
                    state: s.state,
                    swap_latency_us: match (
                        f.closed_at,
                        f.status.as_ref().and_then(|h| h.first_decision()),
                    ) {
                        (Some(c), Some(d)) => {
                            Some(d.saturating_duration_since(c).as_micros() as u64)
                        }
                        _ => None,
                    },
                },
                (None, None) => PluginEntry {
                    calls: 0,
                    error: Some("not loaded yet (still being written?)".into()),
                    faults: 0,
                    file: file.clone(),
                    governor: false,
                    loaded_at: millis(f.mtime),
                    name: plugin_name(file).into(),
                    params,
                    roles: Vec::new(),
                    state: PluginState::Failed,
                    swap_latency_us: None,
                },
            };
            plugins.push(entry);
        }
        let (active, stats, resident, capacity) = self.cache.with_core(|core| {
            let name = |role: Role| {
                let p = core.policy(role);
                served_by(p.name, p.plugin.is_some())
            };
            let active = ActiveStatus {
                admission: name(Role::Admission),
                candidates: core
                    .candidates()
                    .into_iter()
                    .map(|c| CandidateEntry {
                        active: c.active,
                        hits: c.hits,
                        requests: c.requests,
                        role: c.role,
                        spec: c.spec,
                    })
                    .collect(),
                eviction: name(Role::Eviction),
                governor: core.governor_name().map(str::to_string),
                prefetch: name(Role::Prefetch),
            };
            (active, *core.stats(), core.len() as u64, core.capacity())
        });
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
        }
    }
}
