//! Introspection (ABI 1.1): the figures a plugin may read about the cache it serves.
//!
//! A `CacheCore` (crate `kplug-cache`) owns one `Figures` and hands it to every plugin it
//! installs; the `kplug.*` introspection imports read it. The core updates it on its own
//! request path with plain arithmetic, publishing through relaxed atomics, so the imports
//! never lock the core (they run *inside* a hook the core is calling):
//!
//! - `hit_ratio() -> f64`: hits / requests over the last completed window of
//!   [`WINDOW`] requests (the current window's ratio until the first one completes;
//!   0 before any request). Windows, not decay, so the simulator stays deterministic and a
//!   plugin sees a figure it can reason about.
//! - `pressure() -> f64`: over the last completed window of insertions, the fraction that
//!   had to evict a block first (0 while the cache fills, near 1 when every miss evicts).
//! - `sequentiality(file: i64) -> f64`: for the file (`key >> 32`; the simulator's ids are
//!   file 0), the fraction of its recent accesses that were to the block after the previous
//!   one (an exponentially weighted average with weight 1/8; 0 for a file never seen). It is
//!   tracked from the moment a plugin importing it is installed. `file = -1` gives the
//!   same figure over every file's accesses together (weight 1/64): what a governor
//!   watching the whole workload wants.
//! - `backend_latency_ns() -> i64`: the mount's recent backend read latency (EWMA with
//!   weight 1/8, fed by the block cache); in the simulator, what `--backend-latency` says
//!   (0 by default).
//! - `now_ns() -> i64`: monotonic time in the mount; in the simulator, a logical clock of
//!   1 µs per request, so runs are reproducible.
//!
//! **File facts** (ABI 1.3): the block size, and per file (`key >> 32`) its size and its
//! path from the mount's root, as the mount last saw them, for `block_size`, `file_size` and
//! `path_matches`. The mount records them only once a plugin importing `file_size` or
//! `path_matches` is installed ([`Figures::tracks_files`]); the simulator has none. Each path
//! change gets a new *version*, so an instance's cached pattern matches
//! (`state.rs`) are recomputed only when the path they were computed for changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::hash::FastMap;

/// Requests (and insertions) per window of `hit_ratio` (and `pressure`).
pub const WINDOW: u64 = 4096;

/// Files tracked for `sequentiality`; beyond that the table is cleared and starts again.
const MAX_FILES: usize = 1 << 16;

/// Files whose facts are kept; beyond that the table is cleared and refilled as files are
/// read again (a fact is recorded at every read of its file).
const MAX_FACT_FILES: usize = 1 << 20;

/// What the mount knows of one file (ABI 1.3).
#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    /// Size in bytes, if known.
    pub size: Option<u64>,
    /// Path from the mount's root, `/`-separated, no leading `/`, if known.
    pub path: Option<Arc<str>>,
    /// Changes with every new path (never 0 once a path was set).
    pub path_version: u64,
}

/// Live figures of one cache, shared by its core and the plugins installed in it.
#[derive(Debug, Default)]
pub struct Figures {
    hit_ratio: AtomicU64,
    pressure: AtomicU64,
    backend_latency_ns: AtomicU64,
    /// 0: wall clock; else the logical clock in ns.
    logical_now: AtomicU64,
    logical: AtomicBool,
    track_sequentiality: AtomicBool,
    files: Mutex<FastMap<u64, (u64, f64)>>,
    /// Sequentiality over all files (weight 1/64), as f64 bits.
    global_sequentiality: AtomicU64,
    /// Bytes per block (0: blocks have no fixed size).
    block_size: AtomicU64,
    track_files: AtomicBool,
    facts: Mutex<FastMap<u64, FileFacts>>,
    path_versions: AtomicU64,
    /// The figures probes published (ABI 1.5), by `PROBE/NAME`.
    probe_figures: Mutex<std::collections::BTreeMap<String, f64>>,
}

/// Window counters kept by the core (not shared: the core updates them under `&mut`).
#[derive(Debug, Default, Clone)]
pub struct Windows {
    requests: u64,
    hits: u64,
    inserts: u64,
    evicting: u64,
    published_hit: bool,
    published_pressure: bool,
}

/// Count one event (`yes` or not) into a window of [`WINDOW`] events and publish
/// `yes / all` to `out`: at each completed window, and after every event until the first
/// window completes.
#[inline(always)]
fn window(out: &AtomicU64, all: &mut u64, yes: &mut u64, published: &mut bool, hit: bool) {
    *all += 1;
    *yes += hit as u64;
    if *all == WINDOW {
        out.store((*yes as f64 / WINDOW as f64).to_bits(), Ordering::Relaxed);
        *published = true;
        *all = 0;
        *yes = 0;
    } else if !*published {
        out.store((*yes as f64 / *all as f64).to_bits(), Ordering::Relaxed);
    }
}

impl Figures {
    /// Set probe `probe`'s figure `name` (ABI 1.5 `publish`); false when the probe already has
    /// `limit` other figures.
    pub fn publish(&self, probe: &str, name: &str, value: f64, limit: usize) -> bool {
        let key = format!("{probe}/{name}");
        let mut m = self.probe_figures.lock();
        if !m.contains_key(&key) {
            let prefix = format!("{probe}/");
            if m.keys().filter(|k| k.starts_with(&prefix)).count() >= limit {
                return false;
            }
        }
        m.insert(key, value);
        true
    }

    /// The figure `PROBE/NAME` a probe published (ABI 1.5 `probe_figure`).
    pub fn probe_figure(&self, key: &str) -> Option<f64> {
        self.probe_figures.lock().get(key).copied()
    }

    /// Forget every figure probe `probe` published (it was removed or disabled).
    pub fn forget_probe(&self, probe: &str) {
        let prefix = format!("{probe}/");
        self.probe_figures
            .lock()
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// The published figures whose name starts with `prefix`: `(probe, rest of the name,
    /// value)`, by probe then name.
    pub fn published_named(&self, prefix: &str) -> Vec<(String, String, f64)> {
        self.probe_figures
            .lock()
            .iter()
            .filter_map(|(k, v)| {
                let (probe, name) = k.split_once('/')?;
                let rest = name.strip_prefix(prefix)?;
                Some((probe.to_string(), rest.to_string(), *v))
            })
            .collect()
    }

    /// `hit_ratio()` as a plugin sees it.
    pub fn hit_ratio(&self) -> f64 {
        f64::from_bits(self.hit_ratio.load(Ordering::Relaxed))
    }

    /// `pressure()` as a plugin sees it.
    pub fn pressure(&self) -> f64 {
        f64::from_bits(self.pressure.load(Ordering::Relaxed))
    }

    /// `sequentiality(file)` as a plugin sees it; `file` = `u64::MAX` (-1) is every file's
    /// accesses together.
    pub fn sequentiality(&self, file: u64) -> f64 {
        if file == u64::MAX {
            return f64::from_bits(self.global_sequentiality.load(Ordering::Relaxed));
        }
        self.files.lock().get(&file).map_or(0.0, |f| f.1)
    }

    /// `backend_latency_ns()` as a plugin sees it.
    pub fn backend_latency_ns(&self) -> u64 {
        self.backend_latency_ns.load(Ordering::Relaxed)
    }

    /// `now_ns()` as a plugin sees it.
    pub fn now_ns(&self) -> u64 {
        if self.logical.load(Ordering::Relaxed) {
            self.logical_now.load(Ordering::Relaxed)
        } else {
            use std::sync::OnceLock;
            use std::time::Instant;
            static EPOCH: OnceLock<Instant> = OnceLock::new();
            EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
    }

    /// One backend read took `ns` (the mount calls this after every read).
    pub fn note_backend_latency(&self, ns: u64) {
        let old = self.backend_latency_ns.load(Ordering::Relaxed);
        let new = if old == 0 { ns } else { old - old / 8 + ns / 8 };
        self.backend_latency_ns.store(new, Ordering::Relaxed);
    }

    /// Set the backend latency outright (the simulator's `--backend-latency`).
    pub fn set_backend_latency(&self, ns: u64) {
        self.backend_latency_ns.store(ns, Ordering::Relaxed);
    }

    /// Use a logical clock advanced by the core: 1 µs per request (the simulator).
    pub fn use_logical_clock(&self) {
        self.logical.store(true, Ordering::Relaxed);
    }

    /// Track per-file sequentiality from now on (a plugin importing `sequentiality` was
    /// installed); off, the request path skips it.
    pub fn set_track_sequentiality(&self, on: bool) {
        self.track_sequentiality.store(on, Ordering::Relaxed);
    }

    /// Record file facts from now on (a plugin importing `file_size` or `path_matches` was
    /// installed); until then the mount skips them.
    pub fn set_track_files(&self, on: bool) {
        self.track_files.store(on, Ordering::Relaxed);
    }

    /// Whether file facts are wanted: the mount records them only then.
    pub fn tracks_files(&self) -> bool {
        self.track_files.load(Ordering::Relaxed)
    }

    /// `block_size()` as a plugin sees it: `None` where blocks have no fixed size.
    pub fn block_size(&self) -> Option<u64> {
        Some(self.block_size.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    /// The cache's block size (the mount sets it once).
    pub fn set_block_size(&self, bytes: u64) {
        self.block_size.store(bytes, Ordering::Relaxed);
    }

    /// Record what the mount knows of `file`: its size and, when given, its path (a path
    /// equal to the one recorded keeps its version).
    pub fn note_file(&self, file: u64, size: u64, path: Option<&Arc<str>>) {
        let mut facts = self.facts.lock();
        if facts.len() >= MAX_FACT_FILES && !facts.contains_key(&file) {
            facts.clear();
        }
        let f = facts.entry(file).or_default();
        f.size = Some(size);
        if let Some(p) = path
            && f.path.as_deref() != Some(&**p)
        {
            f.path = Some(p.clone());
            f.path_version = self.path_versions.fetch_add(1, Ordering::Relaxed) + 1;
        }
    }

    /// Forget what is known of `file` (its blocks are gone for good: the file was removed).
    pub fn forget_file(&self, file: u64) {
        self.facts.lock().remove(&file);
    }

    /// `file_size(file)` as a plugin sees it.
    pub fn file_size(&self, file: u64) -> Option<u64> {
        self.facts.lock().get(&file).and_then(|f| f.size)
    }

    /// The path of `file` and its version, if known.
    pub fn file_path(&self, file: u64) -> Option<(Arc<str>, u64)> {
        let facts = self.facts.lock();
        let f = facts.get(&file)?;
        Some((f.path.clone()?, f.path_version))
    }

    /// A request for `key`; `hit` says whether it was resident. On every request of the
    /// simulator and the mount: inlined, with the per-file sequentiality (wanted only by a
    /// plugin importing it) out of line, so that the path taken costs a few instructions and
    /// no call (it was a call of about 30 instructions, most of them saving registers).
    #[inline]
    pub fn note_request(&self, w: &mut Windows, key: u64, hit: bool) {
        window(
            &self.hit_ratio,
            &mut w.requests,
            &mut w.hits,
            &mut w.published_hit,
            hit,
        );
        if self.logical.load(Ordering::Relaxed) {
            // One writer (the thread driving this cache): a load and a store, not a locked
            // read-modify-write, which would wait for every memory access before it on each
            // request (a quarter of a simulation's time at a million unique ids).
            let now = self.logical_now.load(Ordering::Relaxed);
            self.logical_now.store(now + 1_000, Ordering::Relaxed);
        }
        if self.track_sequentiality.load(Ordering::Relaxed) {
            self.note_sequentiality(key);
        }
    }

    /// Per-file and global sequentiality, for a plugin importing `sequentiality`.
    #[cold]
    #[inline(never)]
    fn note_sequentiality(&self, key: u64) {
        let (file, block) = (key >> 32, key & 0xffff_ffff);
        let mut files = self.files.lock();
        if files.len() >= MAX_FILES && !files.contains_key(&file) {
            files.clear();
        }
        let e = files.entry(file).or_insert((u64::MAX - 1, 0.0));
        let seq = block == e.0.wrapping_add(1);
        e.1 += ((seq as u8 as f64) - e.1) / 8.0;
        e.0 = block;
        let g = f64::from_bits(self.global_sequentiality.load(Ordering::Relaxed));
        let g = g + ((seq as u8 as f64) - g) / 64.0;
        self.global_sequentiality
            .store(g.to_bits(), Ordering::Relaxed);
    }

    /// An insertion; `evicted` says whether it had to evict first.
    pub fn note_insert(&self, w: &mut Windows, evicted: bool) {
        window(
            &self.pressure,
            &mut w.inserts,
            &mut w.evicting,
            &mut w.published_pressure,
            evicted,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_is_the_last_completed_window() {
        let f = Figures::default();
        let mut w = Windows::default();
        assert_eq!(f.hit_ratio(), 0.0);
        f.note_request(&mut w, 1, true);
        f.note_request(&mut w, 2, false);
        assert_eq!(f.hit_ratio(), 0.5, "first window: running ratio");
        for i in 2..WINDOW {
            f.note_request(&mut w, i, false);
        }
        assert_eq!(f.hit_ratio(), 1.0 / WINDOW as f64);
        // The next window's requests do not move it until it completes.
        for i in 0..WINDOW - 1 {
            f.note_request(&mut w, i, true);
        }
        assert_eq!(f.hit_ratio(), 1.0 / WINDOW as f64);
        f.note_request(&mut w, 0, true);
        assert_eq!(f.hit_ratio(), 1.0);
    }

    #[test]
    fn sequentiality_per_file_only_when_tracked() {
        let f = Figures::default();
        let mut w = Windows::default();
        f.note_request(&mut w, 1, false);
        assert_eq!(f.sequentiality(0), 0.0, "not tracked");
        f.set_track_sequentiality(true);
        for b in 0..64u64 {
            f.note_request(&mut w, (3 << 32) | b, false);
            f.note_request(&mut w, (4 << 32) | (b * 7919 % 1000), false);
        }
        assert!(f.sequentiality(3) > 0.99, "{}", f.sequentiality(3));
        assert!(f.sequentiality(4) < 0.01, "{}", f.sequentiality(4));
        assert_eq!(f.sequentiality(5), 0.0);
        // Half the accesses sequential overall.
        let all = f.sequentiality(u64::MAX);
        assert!((0.3..0.7).contains(&all), "{all}");
    }

    #[test]
    fn file_facts_keep_a_path_version_until_the_path_changes() {
        let f = Figures::default();
        assert_eq!(f.block_size(), None);
        f.set_block_size(4096);
        assert_eq!(f.block_size(), Some(4096));
        assert_eq!(f.file_size(7), None);
        assert!(f.file_path(7).is_none());
        let a: Arc<str> = Arc::from("logs/a.log");
        f.note_file(7, 100, None);
        assert_eq!(f.file_size(7), Some(100));
        assert!(f.file_path(7).is_none(), "a size alone sets no path");
        f.note_file(7, 200, Some(&a));
        let (p, v) = f.file_path(7).unwrap();
        assert_eq!((&*p, f.file_size(7)), ("logs/a.log", Some(200)));
        f.note_file(7, 300, Some(&Arc::from("logs/a.log")));
        assert_eq!(f.file_path(7).unwrap().1, v, "same path, same version");
        f.note_file(7, 300, Some(&Arc::from("logs/b.log")));
        assert!(f.file_path(7).unwrap().1 > v);
        f.forget_file(7);
        assert_eq!(f.file_size(7), None);
    }

    #[test]
    fn pressure_logical_clock_and_latency() {
        let f = Figures::default();
        let mut w = Windows::default();
        f.note_insert(&mut w, false);
        f.note_insert(&mut w, true);
        assert_eq!(f.pressure(), 0.5);
        f.use_logical_clock();
        let t0 = f.now_ns();
        f.note_request(&mut w, 1, false);
        assert_eq!(f.now_ns(), t0 + 1_000);
        f.note_backend_latency(8_000);
        assert_eq!(f.backend_latency_ns(), 8_000);
        f.note_backend_latency(0);
        assert_eq!(f.backend_latency_ns(), 7_000);
    }
}
