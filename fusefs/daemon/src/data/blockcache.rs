//! The block cache: file data served from memory in fixed-size blocks, every decision about
//! which blocks to keep, admit and prefetch taken by a policy (a WebAssembly plugin or a
//! built-in), through `kplug_cache::CacheCore`.
//!
//! **Locking.** One mutex guards the `CacheCore` and the small tables beside it; it is held
//! only for bookkeeping and policy calls (tens of ns each), never across backend I/O. A miss
//! registers a *pending fetch* for its block, drops the lock, reads the block from the backend,
//! and retakes the lock to insert it. A second reader of the same block waits for that fetch
//! instead of reading again, and so does a reader of a block a prefetch is already bringing in:
//! in-flight fetches are deduplicated.
//!
//! **Never a wrong byte.** Each file has a *generation*, bumped by every invalidation (a
//! write, truncate or fallocate through the mount, or a change seen behind it at open). A fetch
//! records the generation when it starts and inserts its block only if the generation is
//! unchanged when it ends; invalidation also detaches the file's pending fetches, so a reader
//! that arrives after a write never joins a fetch that may have read the old bytes. A cached
//! block shorter than the block size (end of file) is used only while the file still ends
//! inside it. A write through the mount is bracketed by `write_begin`/`write_end`: reads of
//! the file wait while it is in progress, so none can be answered from before the write and
//! leave old bytes in the kernel's page cache once the writer's `write()` has returned (the
//! kernel drops written pages as soon as they are copied, before the daemon sees the write).
//! Plugin faults never reach this file: the core falls back to a built-in policy
//! and completes the call.
//!
//! **Prefetch.** After each block access the prefetch policy may ask for ranges; the core
//! validates them, clamps them to its per-access budget and filters what is resident or in
//! flight. Dedicated prefetch threads (not the FUSE workers, `--prefetch-threads`, default
//! 2) fetch them, one job per block so a window is fetched in parallel (a slow store's
//! throughput is its concurrency); the queue is bounded ([`queue_bound`]: twice the per-access
//! budget, at least `MAX_QUEUED_PREFETCH` blocks), and
//! what does not fit is dropped, so prefetch never starves demand reads. Each range is also forwarded to the kernel bridge (`--kernel-hints`), which
//! asks the backing filesystem's page cache to read it ahead.
//!
//! **Keys.** A block's key is `(file_id << 32) | block_index`, with a 32-bit `file_id` given
//! to each inode the first time it is read (ids are not reused during a mount).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kplug_abi::{block_key, key_block, key_file};
use kplug_cache::{
    BlockRange, CacheCore, CacheStats, CoreConfig, CoreEvent, Insert, ROOT_SCOPE, ScopeError,
    ScopeId, ScopedCache,
};
use kplug_engine::Figures;

use super::scopes::ScopePaths;
use super::sync::{self, Condvar, Mutex, MutexGuard, WorkQueue};
use super::{Backend, DataCache, FileRef, Source};
use crate::error::Result;
use crate::monitor::probes::ProbeBus;
use crate::monitor::recorder::Recorder;
use kplug_abi::probe::{self as pe, Event, Kind};
use kplug_traces::Op;

/// A cached block: the bytes of `[index * block_size, ..)`, shorter at end of file.
pub type Block = Arc<[u8]>;

/// Fewest prefetch blocks queued (or in flight) for the prefetch threads at once; more are
/// dropped. Enough to keep two threads busy through a few readahead windows, small enough
/// that a burst of prefetch cannot delay demand reads by more than a few backend round trips.
/// A cache whose per-access prefetch budget is larger allows twice that budget instead (see
/// [`queue_bound`]).
pub const MAX_QUEUED_PREFETCH: usize = 512;

/// Prefetch blocks a cache with a per-access budget of `budget` blocks lets queue or be in
/// flight at once: at least [`MAX_QUEUED_PREFETCH`], and twice the budget, so that a
/// readahead window of the budget's size asks for its next half while the previous window
/// is still in flight without the new range being dropped. A bound equal to the window
/// dropped every other refill of a 64 MiB window on S3 (a thousand 128 KiB demand GETs in a
/// 1 GiB scan, at a quarter of mountpoint-s3's rate at 20 ms of RTT).
pub fn queue_bound(budget: u64) -> usize {
    MAX_QUEUED_PREFETCH.max(usize::try_from(budget.saturating_mul(2)).unwrap_or(usize::MAX))
}

/// Settings of a block cache.
#[derive(Debug, Clone)]
pub struct BlockCacheConfig {
    /// Bytes per block.
    pub block_size: u64,
    /// Capacity in bytes (rounded down to whole blocks).
    pub capacity_bytes: u64,
    /// Prefetch threads.
    pub prefetch_threads: usize,
    /// Built-in policies and prefetch budget of the core.
    pub core: CoreConfig,
}

impl Default for BlockCacheConfig {
    fn default() -> Self {
        Self {
            block_size: 128 << 10,
            capacity_bytes: 256 << 20,
            prefetch_threads: 2,
            core: CoreConfig::default(),
        }
    }
}

/// Where a kernel readahead hint goes (the kernel bridge); `None` forwards nothing.
pub trait HintSink: Send + Sync {
    /// Ask the kernel to read `[offset, offset + len)` of `fd` ahead.
    fn hint(&self, fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: u64);

    /// What was forwarded so far, for `.kplug/stats`.
    fn stats(&self) -> HintCounters {
        HintCounters::default()
    }
}

/// Counters of a [`HintSink`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HintCounters {
    /// Where hints go (`kmod`, `readahead`, `fadvise`, `off`).
    pub backend: String,
    /// Hints forwarded successfully.
    pub forwarded: u64,
    /// Bytes those hints asked the kernel to read ahead (clamped to end of file).
    pub bytes: u64,
    /// Hints the kernel refused.
    pub errors: u64,
}

/// One fetch in progress; readers of the same block wait on it.
#[derive(Default)]
struct Pending {
    result: Mutex<Option<std::result::Result<Block, i32>>>,
    cv: Condvar,
}

impl Pending {
    fn complete(&self, r: std::result::Result<Block, i32>) {
        *self.result.lock() = Some(r);
        self.cv.notify_all();
    }

    fn wait(&self) -> std::result::Result<Block, i32> {
        let mut g = self.result.lock();
        while g.is_none() {
            self.cv.wait(&mut g);
        }
        g.clone().expect("set")
    }
}

#[derive(Default)]
struct FileState {
    id: u32,
    version: u64,
    /// Writes through the mount in progress on this file: reads wait for them.
    writing: u32,
    /// The size and path last recorded in the figures (ABI 1.3 file facts), while a plugin
    /// wants them.
    facts: Option<(u64, Option<Arc<str>>)>,
    /// The file's scope, resolved at `scope_tag`: the scope table's epoch and the path it
    /// was resolved from (held, so that its address is not another path's later).
    scope: ScopeId,
    scope_tag: (u64, Option<Arc<str>>),
}

struct Inner {
    cache: ScopedCache<Block>,
    /// The scopes' directories.
    scope_paths: ScopePaths,
    files: HashMap<u64, FileState>,
    /// The inode of each file id (for the probes' policy events).
    inos: HashMap<u32, u64>,
    /// Policy events (ABI 1.7) gathered under the lock, emitted once it is dropped
    /// ([`Probes::policy`]).
    policy_out: Vec<Event>,
    next_file_id: u32,
    pending: HashMap<u64, (u64, Arc<Pending>)>,
    queued_prefetch: usize,
}

impl Inner {
    fn file(&mut self, ino: u64) -> &mut FileState {
        let next = &mut self.next_file_id;
        let inos = &mut self.inos;
        self.files.entry(ino).or_insert_with(|| {
            let id = *next;
            *next = next.wrapping_add(1).max(1);
            inos.insert(id, ino);
            FileState {
                id,
                ..Default::default()
            }
        })
    }

    /// The scope of `ino`, at `path` (`FileRef::source`'s, asked before the lock: it may
    /// read a link): the root while no scope has a path, else the one remembered for it
    /// unless the table or the file's path changed since.
    #[inline]
    fn scope_of(&mut self, ino: u64, path: Option<&Arc<str>>) -> ScopeId {
        if self.scope_paths.is_empty() {
            return ROOT_SCOPE;
        }
        let epoch = self.scope_paths.epoch();
        if let Some(f) = self.files.get(&ino)
            && f.scope_tag.0 == epoch
            && match (&f.scope_tag.1, path) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        {
            return f.scope;
        }
        let s = self.scope_paths.resolve(path.map(|p| &**p));
        let f = self.file(ino);
        f.scope = s;
        f.scope_tag = (epoch, path.cloned());
        s
    }

    fn detach_pending(&mut self, id: u32) {
        self.pending.retain(|k, _| (k >> 32) as u32 != id);
    }
}

/// Contiguous blocks to prefetch with one backend read.
struct PrefetchJob {
    ino: u64,
    /// The scope that planned it (whose core has its blocks in flight).
    scope: ScopeId,
    file_id: u32,
    version: u64,
    source: Arc<dyn Source>,
    /// Consecutive block indexes, each with the fetch readers wait on.
    blocks: Vec<(u64, Arc<Pending>)>,
}

/// Counters of the block cache beyond the core's.
#[derive(Debug, Default)]
pub struct BlockCacheCounters {
    /// Prefetch blocks dropped because the queue was full.
    pub prefetch_dropped: AtomicU64,
    /// Demand reads that waited for a fetch already in flight.
    pub deduplicated: AtomicU64,
    /// Fetched blocks not inserted because their file changed meanwhile.
    pub stale_fetches: AtomicU64,
}

/// The plugin-driven block cache. See the module docs.
pub struct BlockCache {
    inner: Arc<Mutex<Inner>>,
    backend: Arc<Backend>,
    block_size: u64,
    queue: Arc<WorkQueue<PrefetchJob>>,
    /// Prefetch blocks allowed queued or in flight ([`queue_bound`]).
    max_queued: usize,
    hints: Option<Arc<dyn HintSink>>,
    counters: Arc<BlockCacheCounters>,
    /// Signalled when a file's last write in progress ends.
    writes_done: Condvar,
    recorder: Arc<Recorder>,
    /// The core's introspection figures (fed the backend latency, read without the lock).
    figures: Arc<Figures>,
    /// Whether the governor ticker runs.
    ticker: std::sync::atomic::AtomicBool,
    /// The mount's probes, once attached (shared with the prefetch threads).
    probes: Probes,
    /// Whether a scope has a path (then reads resolve their file's scope).
    scoped: std::sync::atomic::AtomicBool,
}

/// Most scopes a mount may have besides its root (`.kplug/scopes/`).
pub const MAX_SCOPES: usize = 8;

/// One scope's figures ([`BlockCache::scopes`]).
#[derive(Debug, Clone)]
pub struct ScopeFigures {
    /// Its slot (0: the root scope).
    pub id: ScopeId,
    /// Its directory, if set.
    pub path: Option<String>,
    /// Blocks guaranteed.
    pub share: u64,
    /// Blocks resident.
    pub resident: u64,
    /// Its core's counters.
    pub stats: CacheStats,
}

/// Period of a governor's ticks in a mount (the simulator ticks every N requests).
pub const GOVERNOR_TICK: std::time::Duration = std::time::Duration::from_millis(100);

impl Drop for BlockCache {
    /// The prefetch threads finish what is queued and exit.
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

impl BlockCache {
    /// A cache over `backend`, with prefetch threads started, forwarding prefetch ranges to
    /// `hints` when given.
    pub fn new(
        backend: Arc<Backend>,
        config: BlockCacheConfig,
        hints: Option<Arc<dyn HintSink>>,
    ) -> Arc<Self> {
        assert!(
            config.block_size >= 4096 && config.block_size.is_power_of_two(),
            "block size"
        );
        let capacity = config.capacity_bytes / config.block_size;
        let max_queued = queue_bound(config.core.prefetch_budget);
        let cache = ScopedCache::new(capacity, config.core.clone(), MAX_SCOPES);
        let figures = cache.figures().clone();
        figures.set_block_size(config.block_size);
        let inner = Arc::new(Mutex::new(Inner {
            cache,
            scope_paths: ScopePaths::default(),
            files: HashMap::new(),
            inos: HashMap::new(),
            policy_out: Vec::new(),
            next_file_id: 1,
            pending: HashMap::new(),
            queued_prefetch: 0,
        }));
        let queue = Arc::new(WorkQueue::<PrefetchJob>::default());
        let counters = Arc::new(BlockCacheCounters::default());
        let recorder = Recorder::with_block_size(config.block_size);
        let probes = Probes::default();
        for i in 0..config.prefetch_threads.max(1) {
            let queue = queue.clone();
            let inner = inner.clone();
            let backend = backend.clone();
            let counters = counters.clone();
            let recorder = recorder.clone();
            let figures = figures.clone();
            let probes = probes.clone();
            let bs = config.block_size;
            sync::spawn(format!("kplugfs-prefetch-{i}"), move || {
                while let Some(job) = queue.pop() {
                    let ctx = (&*counters, &*recorder, &*figures, &probes);
                    run_prefetch(&inner, &backend, bs, ctx, job);
                }
            })
            .expect("spawn prefetch thread");
        }
        Arc::new(Self {
            inner,
            backend,
            block_size: config.block_size,
            queue,
            max_queued,
            hints,
            counters,
            writes_done: Condvar::new(),
            recorder,
            figures,
            ticker: Default::default(),
            probes,
            scoped: Default::default(),
        })
    }

    /// Send this cache's events (blocks asked for, backend reads) to the mount's probes.
    pub fn attach_probes(&self, bus: Arc<ProbeBus>) {
        let _ = self.probes.0.set(bus);
    }

    /// Tick a governor plugin every [`GOVERNOR_TICK`] from a thread of its own, started
    /// once (the first time a governor is installed) and ending with the cache. After a tick
    /// the candidates it activated get new spare instances, made without the lock. What a
    /// tick takes out of service (a faulted governor with its shadows, the built-in a
    /// followed candidate replaces) is dropped with the lock released.
    pub fn start_governor_ticker(&self) {
        if self.ticker.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let _ = sync::spawn("kplugfs-governor".into(), move || {
            loop {
                std::thread::sleep(GOVERNOR_TICK);
                let Some(i) = inner.upgrade() else { break };
                let wanted = on_root_deferring_drops(&i, |c| {
                    c.governor_tick();
                    c.spare_requests()
                });
                if !wanted.is_empty() {
                    let spares = wanted.make();
                    on_root_deferring_drops(&i, |c| c.give_spares(spares));
                }
            }
        });
    }

    /// The recorder of data accesses (`kplugfs trace record`).
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// The figures plugins read and probes publish to (every scope's).
    pub fn figures(&self) -> &Arc<Figures> {
        &self.figures
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Run `f` with the root scope's core locked (plugin installation, status).
    pub fn with_core<R>(&self, f: impl FnOnce(&mut CacheCore<Block>) -> R) -> R {
        f(self.inner.lock().cache.root_mut())
    }

    /// Run `f` with scope `id`'s core locked; `None` if the scope does not exist.
    pub fn with_scope<R>(
        &self,
        id: ScopeId,
        f: impl FnOnce(&mut CacheCore<Block>) -> R,
    ) -> Option<R> {
        self.inner.lock().cache.core_mut(id).map(f)
    }

    /// The counters of every scope added up.
    pub fn stats(&self) -> CacheStats {
        self.inner.lock().cache.stats()
    }

    /// Resident blocks (all scopes) and capacity in blocks.
    pub fn occupancy(&self) -> (u64, u64) {
        let g = self.inner.lock();
        (g.cache.len() as u64, g.cache.capacity())
    }

    /// Creates scope `id`, guaranteed `share` blocks, without a path (it holds no file yet).
    pub fn add_scope(&self, id: ScopeId, share: u64) -> std::result::Result<(), ScopeError> {
        self.inner.lock().cache.add_scope(id, share)
    }

    /// Sets scope `id`'s share in blocks.
    pub fn set_scope_share(&self, id: ScopeId, share: u64) -> std::result::Result<(), ScopeError> {
        self.inner.lock().cache.set_share(id, share)
    }

    /// Sets (or clears) scope `id`'s directory (normalized, see `data/scopes.rs`): files
    /// under it are resolved again at their next read.
    pub fn set_scope_path(
        &self,
        id: ScopeId,
        path: Option<String>,
    ) -> std::result::Result<(), String> {
        let mut g = self.inner.lock();
        if g.cache.core(id).is_none() {
            return Err(format!("no scope in slot {id}"));
        }
        g.scope_paths.set(id, path)?;
        self.scoped
            .store(!g.scope_paths.is_empty(), Ordering::Relaxed);
        Ok(())
    }

    /// Removes scope `id`; its blocks go to the enclosing scope. Returns how many.
    pub fn remove_scope(
        &self,
        id: ScopeId,
        reason: &str,
    ) -> std::result::Result<usize, ScopeError> {
        let mut g = self.inner.lock();
        let heir = g.scope_paths.enclosing(id);
        let n = g.cache.remove_scope(id, heir, reason)?;
        let _ = g.scope_paths.set(id, None);
        self.scoped
            .store(!g.scope_paths.is_empty(), Ordering::Relaxed);
        Ok(n)
    }

    /// The scope enclosing scope `id` (whose policies it inherits), and how deep `id` is.
    pub fn scope_parent(&self, id: ScopeId) -> (ScopeId, usize) {
        let g = self.inner.lock();
        (g.scope_paths.enclosing(id), g.scope_paths.depth(id))
    }

    /// The scope a file at `path` (relative to the mount's root) belongs to now.
    pub fn scope_at(&self, path: &str) -> ScopeId {
        self.inner.lock().scope_paths.resolve(Some(path))
    }

    /// Each scope's figures, the root's first.
    pub fn scopes(&self) -> Vec<ScopeFigures> {
        let g = self.inner.lock();
        g.cache
            .cores()
            .map(|(id, core)| ScopeFigures {
                id,
                path: g.scope_paths.path(id).map(str::to_string),
                share: g.cache.share(id).unwrap_or(0),
                resident: core.len() as u64,
                stats: *core.stats(),
            })
            .collect()
    }

    /// Counters of this layer.
    pub fn counters(&self) -> &BlockCacheCounters {
        &self.counters
    }

    /// What the kernel hint sink forwarded; `None` with `--kernel-hints off`.
    pub fn hint_stats(&self) -> Option<HintCounters> {
        self.hints.as_ref().map(|h| h.stats())
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Record `file`'s size and path for the plugins that ask (ABI 1.3), when they changed
    /// since the last record: a read costs a comparison, a change one short lock.
    fn note_facts(&self, g: &mut Inner, file: FileRef<'_>, size: u64) {
        let path = file.source.path();
        let f = g.file(file.ino);
        let same = f.facts.as_ref().is_some_and(|(s, p)| {
            *s == size
                && match (p, &path) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        });
        if !same {
            self.figures.note_file(f.id as u64, size, path.as_ref());
            f.facts = Some((size, path));
        }
    }

    /// Get block `index` of `file`: from the cache, from a fetch in flight, or from the
    /// backend. Returns the block and whether it was a hit.
    fn block(&self, file: FileRef<'_>, file_size: u64, index: u64) -> Result<(Block, bool)> {
        let bs = self.block_size;
        // The file's path, for its scope, before the lock (the first ask may read a link).
        let path = if self.scoped.load(Ordering::Relaxed) {
            file.source.path()
        } else {
            None
        };
        let mut g = self.inner.lock();
        while g.files.get(&file.ino).is_some_and(|f| f.writing > 0) {
            self.writes_done.wait(&mut g);
        }
        let (id, version) = {
            let f = g.file(file.ino);
            (f.id, f.version)
        };
        let scope = g.scope_of(file.ino, path.as_ref());
        if self.figures.tracks_files() {
            self.note_facts(&mut g, file, file_size);
        }
        let key = block_key(id, index as u32);
        let file_blocks = file_size.div_ceil(bs);
        let cached = g.cache.get(scope, key).cloned();
        if let Some(b) = cached {
            let start = index * bs;
            let valid = b.len() as u64 == bs || start + b.len() as u64 == file_size;
            if valid {
                self.plan_prefetch(&mut g, file, (scope, id), version, index, file_blocks, true);
                let _policy = self.probes.policy(&mut g);
                drop(g);
                if let Some(w) = self.probes.waiting(file, index, bs, pe::CACHE_HIT) {
                    w.hit();
                }
                return Ok((b, true));
            }
            // A short block of a file that grew: drop it and fetch again.
            g.cache.remove(key);
        }
        let joined = match g.pending.get(&key) {
            Some((pversion, p)) if *pversion == version => Some(p.clone()),
            _ => None,
        };
        let pending = match &joined {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(Pending::default());
                g.pending.insert(key, (version, p.clone()));
                p
            }
        };
        self.plan_prefetch(
            &mut g,
            file,
            (scope, id),
            version,
            index,
            file_blocks,
            false,
        );
        let policy = self.probes.policy(&mut g);
        drop(g);
        drop(policy);
        let op = if joined.is_some() {
            pe::CACHE_JOINED
        } else {
            pe::CACHE_MISS
        };
        // Emitted when the block is there (or the fetch failed), with the time waited.
        let _waiting = self.probes.waiting(file, index, bs, op);
        if joined.is_some() {
            self.counters.deduplicated.fetch_add(1, Ordering::Relaxed);
            if let Ok(b) = pending.wait() {
                return Ok((b, false));
            }
            // The fetch we joined failed: read ourselves, without caching.
            let data = self.backend.read(&**file.source, index * bs, bs as usize)?;
            return Ok((data.into(), false));
        }
        let started = std::time::Instant::now();
        let result = self.backend.read(&**file.source, index * bs, bs as usize);
        let latency = started.elapsed().as_nanos() as u64;
        self.figures.note_backend_latency(latency);
        let range = (index * bs, bs);
        let read = (range, latency, &**file.source);
        self.probes
            .backend(file.ino, read, &result, pe::BACKEND_DEMAND);
        let mut g = self.inner.lock();
        if let Some((_, p)) = g.pending.get(&key)
            && Arc::ptr_eq(p, &pending)
        {
            g.pending.remove(&key);
        }
        match result {
            Ok(data) => {
                let block: Block = data.into();
                if g.file(file.ino).version == version {
                    // The file's scope now: the one it had may have been removed meanwhile.
                    let scope = g.scope_of(file.ino, path.as_ref());
                    g.cache.insert(scope, key, block.clone());
                } else {
                    self.counters.stale_fetches.fetch_add(1, Ordering::Relaxed);
                }
                let _policy = self.probes.policy(&mut g);
                drop(g);
                pending.complete(Ok(block.clone()));
                Ok((block, false))
            }
            Err(e) => {
                drop(g);
                pending.complete(Err(e.errno()));
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_prefetch(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        file: FileRef<'_>,
        (scope, id): (ScopeId, u32),
        version: u64,
        index: u64,
        file_blocks: u64,
        hit: bool,
    ) {
        let plan = g
            .cache
            .prefetch_plan(scope, id, index as u32, file_blocks, hit);
        if plan.is_empty() {
            return;
        }
        let bs = self.block_size;
        let mut blocks = Vec::new();
        for r in &plan {
            if g.queued_prefetch + blocks.len() + r.len as usize > self.max_queued {
                g.cache.cancel_prefetch(scope, id, *r);
                self.counters
                    .prefetch_dropped
                    .fetch_add(r.len, Ordering::Relaxed);
                continue;
            }
            for b in r.start..r.start + r.len {
                let key = block_key(id, b as u32);
                if g.pending.get(&key).is_some_and(|(pv, _)| *pv == version) {
                    // A demand read is already fetching it.
                    g.cache
                        .cancel_prefetch(scope, id, BlockRange { start: b, len: 1 });
                    continue;
                }
                let p = Arc::new(Pending::default());
                g.pending.insert(key, (version, p.clone()));
                blocks.push((b, p));
            }
        }
        if let (Some(h), Some(fd)) = (&self.hints, file.source.fd()) {
            for r in &plan {
                h.hint(fd, r.start * bs, r.len * bs);
            }
        }
        if blocks.is_empty() {
            return;
        }
        g.queued_prefetch += blocks.len();
        // Runs of consecutive blocks, each at most the source's preferred read: block by
        // block for a local file, so the prefetch threads fetch a window in parallel (a slow
        // store's throughput is its concurrency); larger reads where a request costs more
        // than its bytes.
        let per_job = (file.source.preferred_read() / bs).max(1) as usize;
        let mut runs: Vec<Vec<(u64, Arc<Pending>)>> = Vec::new();
        for (b, p) in blocks {
            match runs.last_mut() {
                Some(run) if run.len() < per_job && run.last().is_some_and(|l| l.0 + 1 == b) => {
                    run.push((b, p))
                }
                _ => runs.push(vec![(b, p)]),
            }
        }
        let issued = self.probes.bus(Kind::Policy).is_some();
        for run in runs {
            if issued {
                g.policy_out.push(Event {
                    kind: Kind::Policy as u8,
                    op: pe::POLICY_PREFETCH,
                    ino: file.ino,
                    offset: run[0].0,
                    length: run.len() as u64,
                    uid: u32::MAX,
                    ..Event::default()
                });
            }
            let job = PrefetchJob {
                ino: file.ino,
                scope,
                file_id: id,
                version,
                source: file.source.clone(),
                blocks: run,
            };
            if let Err(job) = self.queue.push(job) {
                g.queued_prefetch -= job.blocks.len();
                for (b, p) in job.blocks {
                    g.cache
                        .cancel_prefetch(scope, id, BlockRange { start: b, len: 1 });
                    g.pending.remove(&block_key(id, b as u32));
                    p.complete(Err(libc::EAGAIN));
                }
            }
        }
    }
}

/// Runs `f` on the root scope's core under the lock; what it takes out of service (plugin
/// instances, a governor with its shadows, a built-in's tables) is dropped once the lock is
/// released.
fn on_root_deferring_drops<R>(
    inner: &Mutex<Inner>,
    f: impl FnOnce(&mut CacheCore<Block>) -> R,
) -> R {
    // The guard is a temporary of this statement: released before `retired` is dropped.
    let (r, retired) = inner.lock().cache.root_mut().deferring_drops(f);
    drop(retired);
    r
}

fn run_prefetch(
    inner: &Mutex<Inner>,
    backend: &Backend,
    bs: u64,
    (counters, recorder, figures, probes): (&BlockCacheCounters, &Recorder, &Figures, &Probes),
    job: PrefetchJob,
) {
    let Some(&(first, _)) = job.blocks.first() else {
        return;
    };
    let n = job.blocks.len() as u64;
    for &(b, _) in &job.blocks {
        recorder.record(job.ino, b * bs, bs, Op::Read, false, true);
    }
    let started = std::time::Instant::now();
    let result = backend.read(&*job.source, first * bs, (n * bs) as usize);
    let latency = started.elapsed().as_nanos() as u64;
    figures.note_backend_latency(latency);
    let range = (first * bs, n * bs);
    let read = (range, latency, &*job.source);
    probes.backend(job.ino, read, &result, pe::BACKEND_PREFETCH);
    let mut g = inner.lock();
    g.queued_prefetch -= job.blocks.len();
    let current = g.files.get(&job.ino).map(|f| f.version);
    let mut done = Vec::with_capacity(job.blocks.len());
    for (i, (b, pending)) in job.blocks.into_iter().enumerate() {
        let key = block_key(job.file_id, b as u32);
        if let Some((_, p)) = g.pending.get(&key)
            && Arc::ptr_eq(p, &pending)
        {
            g.pending.remove(&key);
        }
        let outcome = match &result {
            Ok(data) => {
                // The run's bytes, cut into its blocks (shorter, or empty, past end of file).
                let start = (i * bs as usize).min(data.len());
                let end = (start + bs as usize).min(data.len());
                let block: Block = data[start..end].into();
                if current == Some(job.version) {
                    if g.cache.insert_prefetched(job.scope, key, block.clone()) == Insert::Stale {
                        counters.stale_fetches.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    g.cache.cancel_prefetch(
                        job.scope,
                        job.file_id,
                        BlockRange { start: b, len: 1 },
                    );
                    counters.stale_fetches.fetch_add(1, Ordering::Relaxed);
                }
                Ok(block)
            }
            Err(e) => {
                g.cache
                    .cancel_prefetch(job.scope, job.file_id, BlockRange { start: b, len: 1 });
                Err(e.errno())
            }
        };
        done.push((pending, outcome));
    }
    let policy = probes.policy(&mut g);
    drop(g);
    drop(policy);
    for (pending, outcome) in done {
        pending.complete(outcome);
    }
}

/// Bump `ino`'s generation and drop its cached blocks overlapping `[offset, offset + len)`.
/// Writes past the end change the length of the last cached block: the read path revalidates
/// short blocks against the file size.
fn drop_range(g: &mut Inner, ino: u64, offset: u64, len: u64, bs: u64) {
    let Some(f) = g.files.get_mut(&ino) else {
        return;
    };
    f.version += 1;
    let id = f.id;
    g.detach_pending(id);
    let first = offset / bs;
    let last = offset.saturating_add(len.max(1) - 1) / bs;
    if last - first >= 64 || last > u32::MAX as u64 {
        g.cache.remove_file(id, first.min(u32::MAX as u64) as u32);
    } else {
        for b in first..=last {
            g.cache.remove(block_key(id, b as u32));
        }
    }
}

impl DataCache for BlockCache {
    fn read(&self, file: FileRef<'_>, offset: u64, len: u32) -> Result<Vec<u8>> {
        let size = file.source.size()?;
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(offset + len as u64);
        let bs = self.block_size;
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        let mut all_hit = true;
        while pos < end {
            let index = pos / bs;
            let (block, hit) = self.block(file, size, index)?;
            all_hit &= hit;
            let in_block = (pos - index * bs) as usize;
            if in_block >= block.len() {
                break; // the file shrank under us: a short read, as from the backing file
            }
            let take = (block.len() - in_block).min((end - pos) as usize);
            out.extend_from_slice(&block[in_block..in_block + take]);
            pos += take as u64;
        }
        self.recorder
            .record(file.ino, offset, out.len() as u64, Op::Read, all_hit, false);
        Ok(out)
    }

    fn invalidate(&self, ino: u64, offset: u64, len: u64) {
        drop_range(&mut self.inner.lock(), ino, offset, len, self.block_size);
    }

    fn write_begin(&self, ino: u64, offset: u64, len: u64) {
        let mut g = self.inner.lock();
        // Also for a file never read yet: a first read racing this write must wait too
        // (found by tests/shuttle).
        g.file(ino).writing += 1;
        drop_range(&mut g, ino, offset, len, self.block_size);
    }

    fn write_end(&self, ino: u64, offset: u64, len: u64) {
        // An O_APPEND write is announced as [0, MAX): its offset is not known here.
        let recorded_len = if len == u64::MAX { 0 } else { len };
        self.recorder
            .record(ino, offset, recorded_len, Op::Write, false, false);
        let mut g = self.inner.lock();
        let Some(f) = g.files.get_mut(&ino) else {
            return;
        };
        let was_writing = f.writing > 0;
        f.writing = f.writing.saturating_sub(1);
        let idle = f.writing == 0;
        drop_range(&mut g, ino, offset, len, self.block_size);
        drop(g);
        if was_writing && idle {
            self.writes_done.notify_all();
        }
    }

    fn invalidate_file(&self, ino: u64) {
        let mut g = self.inner.lock();
        let Some(f) = g.files.get_mut(&ino) else {
            return;
        };
        f.version += 1;
        let id = f.id;
        g.detach_pending(id);
        g.cache.remove_file(id, 0);
    }

    fn name(&self) -> &'static str {
        "block-cache"
    }
}

/// The cache's side of the mount's probes (`monitor/probes.rs`): set once attached, and each
/// event costs one relaxed load while no probe is loaded.
#[derive(Clone, Default)]
struct Probes(Arc<std::sync::OnceLock<Arc<ProbeBus>>>);

impl Probes {
    #[inline]
    fn bus(&self, kind: Kind) -> Option<&ProbeBus> {
        self.0.get().map(|b| &**b).filter(|b| b.enabled(kind))
    }

    /// Block `index` of `file` is asked for (`op` hit, miss or joined): the event goes out
    /// when the returned guard drops, with the time waited for the block (`None` without
    /// probes).
    #[inline]
    fn waiting(&self, file: FileRef<'_>, index: u64, bs: u64, op: u8) -> Option<CacheWait<'_>> {
        let bus = self.bus(Kind::Cache)?;
        Some(CacheWait {
            bus,
            source: file.source.clone(),
            started: std::time::Instant::now(),
            hit: false,
            event: Event {
                kind: Kind::Cache as u8,
                op,
                ino: file.ino,
                offset: index,
                length: bs,
                uid: u32::MAX,
                ..Event::default()
            },
        })
    }

    /// The policy events gathered under the cache's lock (`g`): the core's decisions and the
    /// prefetches issued, sent to the probes when the returned guard drops, which must be
    /// after the lock (a probe's subtree filter may ask the tree for a path). While no probe
    /// takes policy events the core keeps none.
    #[inline]
    fn policy(&self, g: &mut Inner) -> Option<PolicyEvents<'_>> {
        let Some(bus) = self.bus(Kind::Policy) else {
            g.cache.log_events(false);
            return None;
        };
        g.cache.log_events(true);
        let Inner {
            cache,
            inos,
            policy_out,
            ..
        } = g;
        cache.drain_events(|ev| {
            let (op, key, flag) = match ev {
                CoreEvent::Admitted { key, prefetched } => (pe::POLICY_ADMIT, key, prefetched),
                CoreEvent::Refused { key, prefetched } => (pe::POLICY_REFUSE, key, prefetched),
                CoreEvent::Evicted { key, wasted } => (pe::POLICY_EVICT, key, wasted),
                CoreEvent::PrefetchUsed { key } => (pe::POLICY_PREFETCH_USED, key, false),
            };
            policy_out.push(Event {
                kind: Kind::Policy as u8,
                op,
                ino: inos.get(&key_file(key)).copied().unwrap_or(0),
                offset: key_block(key) as u64,
                length: 1,
                uid: u32::MAX,
                bytes: flag as u64,
                ..Event::default()
            });
        });
        if policy_out.is_empty() {
            return None;
        }
        Some(PolicyEvents {
            bus,
            events: std::mem::take(policy_out),
        })
    }

    /// A backend read of `range` (offset, length) of `ino` from `source` took `latency` ns
    /// (its retries are asked of the source only while a probe takes the event).
    #[inline]
    fn backend(
        &self,
        ino: u64,
        ((offset, length), latency, source): ((u64, u64), u64, &dyn Source),
        result: &Result<Vec<u8>>,
        op: u8,
    ) {
        if let Some(bus) = self.bus(Kind::Backend) {
            let (bytes, errno) = match result {
                Ok(d) => (d.len() as u64, 0),
                Err(e) => (0, e.errno() as u32),
            };
            let e = Event {
                kind: Kind::Backend as u8,
                op,
                result: errno,
                ino,
                offset,
                length,
                latency_ns: latency,
                uid: u32::MAX,
                pid: source.last_retries(),
                bytes,
                ..Event::default()
            };
            bus.emit(e, || None);
        }
    }
}

/// Policy events to send once the cache's lock is dropped (see [`Probes::policy`]).
struct PolicyEvents<'a> {
    bus: &'a ProbeBus,
    events: Vec<Event>,
}

impl Drop for PolicyEvents<'_> {
    fn drop(&mut self) {
        let bus = self.bus;
        for e in self.events.drain(..) {
            // The file's path, for `probe_path` (a policy event has no source at hand).
            bus.emit(e, || bus.path_of(e.ino));
        }
    }
}

/// A cache event in progress (see [`Probes::waiting`]).
struct CacheWait<'a> {
    bus: &'a ProbeBus,
    source: Arc<dyn Source>,
    started: std::time::Instant,
    hit: bool,
    event: Event,
}

impl CacheWait<'_> {
    /// A hit: nothing was waited for (latency 0, not timed).
    fn hit(mut self) {
        self.hit = true;
    }
}

impl Drop for CacheWait<'_> {
    fn drop(&mut self) {
        if !self.hit {
            self.event.latency_ns = self.started.elapsed().as_nanos() as u64;
        }
        let source = &self.source;
        self.bus.emit(self.event, || source.path());
    }
}
