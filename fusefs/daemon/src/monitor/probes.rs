//! The probes of a mount (ABI 1.5): plugins that watch events at kplugfs's boundaries and
//! keep their own aggregates, in the manner of bpftrace's maps or DTrace's aggregations.
//!
//! **Requests never wait for a probe.** Where an event happens (a FUSE request answered in
//! `fuse.rs`, a block asked of the cache and a backend read in `data/blockcache.rs`) the
//! code asks [`ProbeBus::enabled`] for its kind, one relaxed load of the kinds the loaded
//! probes take, and does nothing more while no probe takes it. With probes, [`ProbeBus::emit`]
//! checks each probe's filter (event kinds, the caller's uid, a subtree), chosen by the probe
//! at load, before anything is queued, and pushes a copy of the 64-byte event into that
//! probe's bounded ring (a lock-free `ArrayQueue` of [`PROBE_RING_EVENTS`]): when the ring is
//! full the event is dropped and counted.
//!
//! **Subtrees** (ABI 1.7). A probe that chose a directory takes only events whose inode's
//! path is under it. The path comes with the event where the code has it (a cache or
//! backend event's file), else from the data tree ([`ProbeBus::set_resolver`]: a `readlink`
//! of the inode's descriptor, or the object tree's key), remembered per inode until a rename
//! ([`ProbeBus::paths_moved`]), so each inode costs one lookup, then a map probe per event.
//! An inode whose path is unknown (removed, outside the tree) matches no subtree.
//!
//! **Delivery is off the request path**: one thread per mount (`kplugfs-probes`, started
//! with the first probe) drains each ring every [`DELIVERY_PERIOD`] in batches of at most
//! [`PROBE_BATCH_EVENTS`], encoded as the ABI's little-endian structs, through the probe's
//! buffer (`kplug_probe_events`). A read of `.kplug/probes/NAME` first delivers what is
//! queued, then asks the probe for its report (`kplug_probe_report`), so a reader sees every
//! event that happened before the read and was not dropped.
//!
//! **Faults.** A probe runs under the same deadlines and memory cap as any plugin, and every
//! answer is checked by the engine (the report must lie in its memory and be at most
//! `MAX_PROBE_REPORT_BYTES`). A fault (trap, timeout, a bad answer) disables that probe only:
//! its instance is dropped, its status says why (`.kplug/status`), its ring is no longer
//! fed, and reading its report gives the fault. Other probes and the mount go on.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use kplug_abi::probe::{Event, Kind, PROBE_BATCH_EVENTS, PROBE_EVENT_BYTES, PROBE_RING_EVENTS};
use kplug_engine::hash::FastMap;
use kplug_engine::{Plugin, ProbeFilter, StatusHandle};
use parking_lot::{Mutex, RwLock};

/// How often the delivery thread drains the rings: at a million events a second a ring
/// holds 16 ms of them, so 5 ms leaves room for a slow batch without drops.
pub const DELIVERY_PERIOD: Duration = Duration::from_millis(5);

/// Inodes whose path the bus remembers for subtree filters; beyond that it forgets them all
/// and asks again.
const MAX_REMEMBERED_PATHS: usize = 1 << 16;

/// A path learned for an inode (`None`: it has none), and the rename count then.
type Learned = (u64, Option<Arc<str>>);

/// Names an inode of the data tree by its path from the mount's root (`Tree::path_of`).
pub type PathResolver = Box<dyn Fn(u64) -> Option<Arc<str>> + Send + Sync>;

/// Whether `path` is `dir` or under it (both without `/` at either end; `dir` not empty).
fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One loaded probe.
pub struct ProbeSlot {
    name: String,
    kinds: u32,
    uid: Option<u32>,
    subtree: Option<Arc<str>>,
    ring: ArrayQueue<(Event, Option<Arc<str>>)>,
    /// Events matched but dropped because the ring was full.
    dropped: AtomicU64,
    /// Events delivered to the probe.
    delivered: AtomicU64,
    /// `None` once the probe faulted (the reason is in `fault` and its status).
    plugin: Mutex<Option<Plugin>>,
    fault: Mutex<Option<String>>,
    status: StatusHandle,
}

impl std::fmt::Debug for ProbeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeSlot")
            .field("name", &self.name)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl ProbeSlot {
    #[inline]
    fn wants(&self, e: &Event) -> bool {
        self.kinds & (1 << e.kind) != 0
            && (e.kind != Kind::Fuse as u8 || self.uid.is_none_or(|u| u == e.uid))
    }

    /// Deliver everything queued (under the instance's lock): `Err` with the fault once the
    /// probe faulted.
    fn deliver(&self, plugin: &mut Option<Plugin>) -> Result<(), String> {
        let Some(p) = plugin.as_mut() else {
            return Err(self.fault_text());
        };
        let mut buf = Vec::with_capacity(PROBE_BATCH_EVENTS * PROBE_EVENT_BYTES);
        loop {
            buf.clear();
            while buf.len() < PROBE_BATCH_EVENTS * PROBE_EVENT_BYTES {
                let Some((e, path)) = self.ring.pop() else {
                    break;
                };
                if let Some(path) = &path {
                    p.note_probe_path(e.ino, path);
                }
                buf.extend_from_slice(&e.encode());
            }
            if buf.is_empty() {
                return Ok(());
            }
            let n = (buf.len() / PROBE_EVENT_BYTES) as u64;
            if let Err(fault) = p.probe_events(&buf) {
                return Err(self.disable(plugin, &fault));
            }
            self.delivered.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Take the faulted instance out of service and say why.
    fn disable(&self, plugin: &mut Option<Plugin>, fault: &kplug_engine::HookFault) -> String {
        if let Some(p) = plugin.take() {
            p.forget_published();
            p.mark_failed(fault);
        }
        let text = fault.to_string();
        tracing::warn!(probe = %self.name, "probe disabled: {text}");
        *self.fault.lock() = Some(text);
        self.fault_text()
    }

    fn fault_text(&self) -> String {
        format!(
            "probe {} was disabled: {}",
            self.name,
            self.fault.lock().as_deref().unwrap_or("removed")
        )
    }

    /// Deliver what is queued, then the probe's report.
    fn report(&self) -> Result<Vec<u8>, String> {
        let mut plugin = self.plugin.lock();
        self.deliver(&mut plugin)?;
        let p = plugin.as_mut().expect("delivered, so loaded");
        match p.probe_report() {
            Ok(r) => Ok(r),
            Err(fault) => Err(self.disable(&mut plugin, &fault)),
        }
    }
}

/// What `.kplug/stats` and the CLI show of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Its name.
    pub name: String,
    /// Events delivered.
    pub delivered: u64,
    /// Events matched but dropped (ring full).
    pub dropped: u64,
    /// Events queued now.
    pub queued: u64,
    /// Why it was disabled, if it was.
    pub fault: Option<String>,
}

/// The probes of one mount.
#[derive(Default)]
pub struct ProbeBus {
    /// The kinds some loaded probe takes (`1 << kind`; 0 without probes): the only thing
    /// the request path reads for an event no probe takes.
    kinds: AtomicU32,
    probes: RwLock<Vec<Arc<ProbeSlot>>>,
    epoch: std::sync::OnceLock<Instant>,
    worker: Mutex<bool>,
    /// How subtree filters learn an inode's path.
    resolver: std::sync::OnceLock<PathResolver>,
    /// Paths learned, with the rename count they were learned at.
    paths: Mutex<FastMap<u64, Learned>>,
    /// Renames seen: a path learned before the last one is asked again.
    moves: AtomicU64,
}

impl std::fmt::Debug for ProbeBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeBus")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl ProbeBus {
    /// Whether some loaded probe takes events of `kind` (one relaxed load: what an event
    /// costs without probes, or with probes that do not take its kind).
    #[inline]
    pub fn enabled(&self, kind: Kind) -> bool {
        self.kinds.load(Ordering::Relaxed) & kind.bit() != 0
    }

    fn update_kinds(&self, probes: &[Arc<ProbeSlot>]) {
        let mask = probes.iter().fold(0, |m, p| m | p.kinds);
        self.kinds.store(mask, Ordering::Relaxed);
    }

    /// Ns since the bus was first used: the events' clock.
    pub fn now_ns(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    /// `at` on the events' clock, without reading the clock.
    pub fn ns_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(*self.epoch.get_or_init(Instant::now))
            .as_nanos() as u64
    }

    /// Queue `e` (its `time_ns` set here, unless already set) for every probe whose filter
    /// takes it; `path` is asked only if one does (the file's path, for `probe_path` and
    /// subtree filters; the data tree is asked when it gives none and a subtree needs one).
    #[cold]
    pub fn emit(&self, mut e: Event, path: impl FnOnce() -> Option<Arc<str>>) {
        let probes = self.probes.read();
        let mut path = Some(path);
        let mut got: Option<Arc<str>> = None;
        let mut resolved = false;
        for p in probes.iter() {
            if !p.wants(&e) {
                continue;
            }
            if let Some(f) = path.take() {
                got = f();
                if e.time_ns == 0 {
                    e.time_ns = self.now_ns();
                }
            }
            if let Some(dir) = &p.subtree {
                if !resolved {
                    resolved = true;
                    if got.is_none() {
                        got = self.path_of(e.ino);
                    }
                }
                if !got.as_deref().is_some_and(|path| under(path, dir)) {
                    continue;
                }
            }
            if p.ring.push((e, got.clone())).is_err() {
                p.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How subtree filters name inodes (set once, by the mount, before any probe loads).
    pub fn set_resolver(&self, resolver: PathResolver) {
        let _ = self.resolver.set(resolver);
    }

    /// A rename happened: every path learned may be stale.
    pub fn paths_moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// The path of inode `ino`, remembered or asked of the data tree (one map probe once
    /// known).
    pub fn path_of(&self, ino: u64) -> Option<Arc<str>> {
        let moves = self.moves.load(Ordering::Relaxed);
        if let Some((at, path)) = self.paths.lock().get(&ino)
            && *at == moves
        {
            return path.clone();
        }
        let path = self.resolver.get().and_then(|r| r(ino));
        let mut paths = self.paths.lock();
        if paths.len() >= MAX_REMEMBERED_PATHS {
            paths.clear();
        }
        paths.insert(ino, (moves, path.clone()));
        path
    }

    /// Put probe instance `plugin` in service under `name` (replacing a probe of that name).
    pub fn add(self: &Arc<Self>, name: &str, plugin: Plugin) {
        let ProbeFilter {
            kinds,
            uid,
            subtree,
        } = plugin.probe_filter();
        let slot = Arc::new(ProbeSlot {
            name: name.to_string(),
            kinds,
            uid,
            subtree,
            ring: ArrayQueue::new(PROBE_RING_EVENTS),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            status: plugin.status(),
            plugin: Mutex::new(Some(plugin)),
            fault: Mutex::new(None),
        });
        let _ = self.now_ns();
        {
            let mut probes = self.probes.write();
            probes.retain(|p| p.name != name);
            probes.push(slot);
            self.update_kinds(&probes);
        }
        self.start_worker();
    }

    /// Take the probe whose instance has status `status` out of service; whether there was one.
    pub fn remove(&self, status: &StatusHandle) -> bool {
        let mut probes = self.probes.write();
        let before = probes.len();
        probes.retain(|p| {
            let gone = Arc::ptr_eq(&p.status, status);
            if gone && let Some(plugin) = p.plugin.lock().as_ref() {
                plugin.forget_published();
            }
            !gone
        });
        self.update_kinds(&probes);
        before != probes.len()
    }

    /// The names of the probes loaded, in load order.
    pub fn names(&self) -> Vec<String> {
        self.probes.read().iter().map(|p| p.name.clone()).collect()
    }

    fn slot(&self, name: &str) -> Option<Arc<ProbeSlot>> {
        self.probes.read().iter().find(|p| p.name == name).cloned()
    }

    /// The report of probe `name` after every event queued for it: `Err` with why not (no
    /// such probe, the probe faulted now or before).
    pub fn report(&self, name: &str) -> Result<Vec<u8>, String> {
        self.slot(name)
            .ok_or_else(|| format!("no probe named {name}"))?
            .report()
    }

    /// Every probe's counters.
    pub fn counts(&self) -> Vec<ProbeCounts> {
        self.probes
            .read()
            .iter()
            .map(|p| ProbeCounts {
                name: p.name.clone(),
                delivered: p.delivered.load(Ordering::Relaxed),
                dropped: p.dropped.load(Ordering::Relaxed),
                queued: p.ring.len() as u64,
                fault: p.fault.lock().clone(),
            })
            .collect()
    }

    /// Deliver what every probe has queued (what the delivery thread does each period).
    pub fn deliver_all(&self) {
        let probes: Vec<Arc<ProbeSlot>> = self.probes.read().clone();
        for p in probes {
            let mut plugin = p.plugin.lock();
            if plugin.is_some() {
                let _ = p.deliver(&mut plugin);
            } else {
                // Disabled: what still arrives is dropped.
                while p.ring.pop().is_some() {}
            }
        }
    }

    fn start_worker(self: &Arc<Self>) {
        let mut started = self.worker.lock();
        if *started {
            return;
        }
        let bus: Weak<ProbeBus> = Arc::downgrade(self);
        // Started by the first probe's load, maybe at a swap's raised priority: not kept.
        let own = kplug_engine::nice::own();
        let spawned = std::thread::Builder::new()
            .name("kplugfs-probes".into())
            .spawn(move || {
                kplug_engine::nice::start_at(own);
                loop {
                    std::thread::sleep(DELIVERY_PERIOD);
                    let Some(bus) = bus.upgrade() else { return };
                    bus.deliver_all();
                }
            });
        match spawned {
            Ok(_) => *started = true,
            Err(e) => tracing::error!("cannot start the probe delivery thread: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_engine::{EngineConfig, PluginEngine};
    use std::collections::HashMap;

    /// A probe (ABI 1.7) that takes events under `dir` (`probe_subtree` at init; an `Err`
    /// when the host refuses it: `kplug_init` returns the import's -1).
    fn subtree_probe(dir: &str) -> Result<Plugin, kplug_engine::LoadError> {
        let wat = format!(
            r#"(module
                 (import "kplug" "probe_subtree" (func $sub (param i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 32768) "{dir}")
                 (func (export "kplug_abi_version") (result i32) i32.const 0x10007)
                 (func (export "kplug_init") (param i64) (result i32)
                   (call $sub (i32.const 32768) (i32.const {len})))
                 (func (export "kplug_probe_buf") (result i32) i32.const 0)
                 (func (export "kplug_probe_events") (param i32) (result i32) i32.const 0)
                 (func (export "kplug_probe_report") (result i64) i64.const 0))"#,
            len = dir.len()
        );
        PluginEngine::new(EngineConfig::default())
            .unwrap()
            .compile("sub", &wat::parse_str(wat).unwrap())
            .unwrap()
            .instantiate(&[], 0)
    }

    fn fuse(ino: u64) -> Event {
        Event {
            kind: Kind::Fuse as u8,
            ino,
            uid: 0,
            ..Event::default()
        }
    }

    /// Events matched by the probe so far (delivered; nothing is left queued after
    /// `deliver_all`).
    fn matched(bus: &ProbeBus) -> u64 {
        bus.deliver_all();
        let c = &bus.counts()[0];
        assert_eq!((c.queued, c.dropped), (0, 0));
        c.delivered
    }

    #[test]
    fn a_subtree_takes_the_events_under_its_directory_and_follows_renames() {
        let paths: Arc<Mutex<HashMap<u64, &'static str>>> = Arc::new(Mutex::new(
            [(1, "a/b"), (2, "a/b/c.txt"), (3, "a/bc"), (4, "x"), (6, "")].into(),
        ));
        let bus = Arc::new(ProbeBus::default());
        let seen = paths.clone();
        bus.set_resolver(Box::new(move |ino| {
            seen.lock().get(&ino).map(|p| Arc::from(*p))
        }));
        // `/a//b/` is `a/b`: its directory and what is under it, not `a/bc`, not `x`, not the
        // root, not an inode without a path (5).
        bus.add("p", subtree_probe("/a//b/").unwrap());
        for ino in 1..=6 {
            bus.emit(fuse(ino), || None);
        }
        assert_eq!(matched(&bus), 2);
        // A path the event carries is used as is (a cache event's file).
        bus.emit(fuse(9), || Some(Arc::from("a/b/d/e")));
        bus.emit(fuse(10), || Some(Arc::from("a/b2")));
        assert_eq!(matched(&bus), 3);
        // x moves under a/b: remembered paths hold until a rename is announced.
        paths.lock().insert(4, "a/b/x");
        bus.emit(fuse(4), || None);
        assert_eq!(matched(&bus), 3);
        bus.paths_moved();
        bus.emit(fuse(4), || None);
        assert_eq!(matched(&bus), 4);
    }

    #[test]
    fn subtrees_are_refused_outside_the_tree() {
        for bad in ["a/../b", "./a", "a/./b"] {
            assert!(subtree_probe(bad).is_err(), "{bad}");
        }
        assert!(under("a/b", "a/b") && under("a/b/c", "a/b"));
        assert!(!under("a/bc", "a/b") && !under("a", "a/b"));
    }
}
