//! The wasmtime engine shared by all plugins, its epoch ticker, and compilation
//! with ABI validation.
//!
//! One [`PluginEngine`] per process: it owns the wasmtime `Engine` (compiled
//! code is tied to it), a `Linker` holding the three `kplug.*` host imports,
//! and one ticker thread that bumps the engine's epoch every
//! [`abi::EPOCH_TICK`]. Epoch interruption is the cheapest way to bound a call:
//! the generated code only compares a counter at loop headers and function
//! entries, and setting a deadline before a call is a load and a store. Fuel is
//! off (it costs on every basic block and we do not meter, only bound).
//!
//! Compilation is where load-time refusals happen, before any plugin code
//! runs: size limit, magic header, wasmtime validation (with threads,
//! memory64, multi-memory, GC and the component model off, so there is exactly
//! one 32-bit non-shared memory), imports checked against the `kplug` set
//! (anything else, WASI included, is refused with its name), the required
//! exports, and each role's export set, which must be complete and exactly
//! typed. The result, [`CompiledPlugin`], is cheap to clone and to instantiate
//! many times (an `InstancePre` is cached), e.g. once per mount and per
//! simulator run.
//!
//! Every compile first looks the module's bytes up in the compiled-module cache
//! ([`crate::modcache`]): a module seen before is validated again (cheap) but not
//! compiled again.
//!
//! **Tiers.** Cranelift, the optimizing compiler, takes 10-40 ms for a policy on this class
//! of machine: too long for a hot swap of a module never seen. With
//! [`EngineConfig::baseline_tier`] on (the mount), [`PluginEngine::compile_first`] compiles
//! a module that is in no cache with Winch, wasmtime's baseline compiler (one pass, no
//! optimization: 3-6x faster to compile, slower code), and the caller asks for the optimized
//! code in the background ([`PluginEngine::optimize_later`]: one low-priority thread per
//! engine, a job dropped if the caller no longer wants it; what the caller does with the
//! result runs on a second thread at normal priority, since it takes locks readers wait
//! on). A compile's parallel work runs on threads at its caller's priority
//! ([`crate::pools`]): a swap's at the swap's, the optimizer's below the readers. When it
//! is ready (in the module cache), the caller loads the module again, which now finds the
//! optimized code: the mount swaps the plugin to it like any hot swap. The two compilers run
//! the same validated module with the same limits: the same linear memory cap, the same
//! epoch deadlines (both engines tick), the same host imports. A module Winch cannot compile (a proposal it lacks)
//! is compiled by Cranelift at once. Baseline code is never cached: only optimized code
//! enters the module cache, so a module seen before always loads optimized.
//!
//! The ticker thread holds only clones of the wasmtime engines and a stop
//! flag; it ends within a tick of the last `PluginEngine` clone (held by every
//! compiled plugin and instance) being dropped. The optimizer thread holds the optimizing
//! engine and the module cache; it ends when its queue's sender (in the `PluginEngine`)
//! is dropped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::{
    Config, Engine, ExternType, FuncType, InstancePre, Linker, Module, OptLevel, RegallocAlgorithm,
    Strategy, ValType,
};

use crate::error::LoadError;
use crate::imports;
use crate::modcache::{self, ModuleCache, Source};
use crate::state::HostState;
use kplug_abi::{self as abi, Func, Role, RoleSet, exports as exp, imports as imp};

/// Tunables of a [`PluginEngine`]; the defaults are the documented ABI limits.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Base of the cap on each plugin's linear memory, in bytes; a module's initial memory
    /// must fit in it.
    pub memory_limit: usize,
    /// Bytes the cap grows by per block of the capacity an instance is loaded for
    /// ([`EngineConfig::memory_cap`]).
    pub memory_per_block: usize,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Per-hook deadline in epoch ticks (a call times out after `ticks - 1`
    /// to `ticks` ticks of [`abi::EPOCH_TICK`]).
    pub hook_deadline_ticks: u64,
    /// Deadline of `kplug_set_param`/`kplug_init` in ticks.
    pub init_deadline_ticks: u64,
    /// CPU a plugin's slow calls may use per second before it is disabled (`budget.rs`);
    /// zero: no limit (the simulator, where nobody waits).
    pub slow_budget: Duration,
    /// The directory of the on-disk compiled-module cache (see [`crate::modcache`]); `None`
    /// keeps compiled modules in memory only. The mount and the simulator use
    /// [`crate::modcache::default_dir`].
    pub module_cache: Option<std::path::PathBuf>,
    /// Compile a module in no cache with the baseline compiler (Winch) in
    /// [`PluginEngine::compile_first`], so that it serves within milliseconds, and leave the
    /// optimizing compile to [`PluginEngine::optimize_later`]. Off by default (the simulator
    /// and tools compile once and run long); the mount turns it on.
    pub baseline_tier: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: abi::DEFAULT_MEMORY_LIMIT,
            memory_per_block: abi::MEMORY_PER_BLOCK,
            max_module_bytes: abi::MAX_MODULE_BYTES,
            hook_deadline_ticks: abi::DEFAULT_HOOK_DEADLINE_TICKS,
            init_deadline_ticks: abi::DEFAULT_INIT_DEADLINE_TICKS,
            slow_budget: abi::DEFAULT_SLOW_BUDGET,
            module_cache: None,
            baseline_tier: false,
        }
    }
}

impl EngineConfig {
    /// The cap on the linear memory of an instance loaded for a cache of `capacity` blocks:
    /// `memory_limit + memory_per_block x capacity`, at most 4 GiB (a 32-bit memory's
    /// whole range).
    pub fn memory_cap(&self, capacity: u64) -> usize {
        let cap = abi::memory_cap(self.memory_limit, self.memory_per_block, capacity);
        usize::try_from(cap).unwrap_or(usize::MAX)
    }
}

/// Which set of eviction hooks a plugin serves eviction through (the ABI has three; a
/// plugin without the role reports `PerEvent`, and is never asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionAbi {
    /// ABI 1.0: one call per insertion, hit and victim (`kplug_evict_insert`, ...).
    PerEvent,
    /// ABI 1.4: one call per miss, hits in batches, keys (`kplug_evict_miss`, ...).
    Batched,
    /// ABI 1.8: as 1.4, but a block's hits and removal carry the handle the plugin gave it
    /// and the hits waiting ride with the next miss (`kplug_evict_handle_miss`, ...).
    Handles,
}

/// Which compiler made a [`CompiledPlugin`]'s machine code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeTier {
    /// Winch, the baseline compiler: fast to compile, slower code; replaced by the optimized
    /// code when it is ready (see the module note, "Tiers").
    Baseline,
    /// Cranelift, the optimizing compiler.
    Optimized,
}

impl CodeTier {
    /// `baseline` or `optimized`, as `.kplug/status` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeTier::Baseline => "baseline",
            CodeTier::Optimized => "optimized",
        }
    }
}

/// What a compile asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Optimized code, cached or compiled now.
    Optimized,
    /// Cached optimized code, else baseline code if the engine has the tier.
    First,
    /// Baseline code.
    Baseline,
}

/// The baseline compiler's engine and linker (see "Tiers").
struct Baseline {
    engine: Engine,
    linker: Linker<HostState>,
}

/// What the optimizer thread did ([`PluginEngine::optimizer_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptimizerStats {
    /// Requests made ([`PluginEngine::optimize_later`]).
    pub requested: u64,
    /// Modules compiled with Cranelift (or found cached meanwhile) and handed back.
    pub optimized: u64,
    /// Requests dropped because their caller no longer wanted them.
    pub dropped: u64,
    /// Optimizing compiles that failed (the baseline code keeps serving).
    pub failed: u64,
}

#[derive(Default)]
struct OptimizerCounts {
    requested: AtomicU64,
    optimized: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// A request for a module's optimized code ([`PluginEngine::optimize_later`]).
struct OptimizeJob {
    key: modcache::Key,
    bytes: Arc<[u8]>,
    wanted: Box<dyn Fn() -> bool + Send>,
    done: Box<dyn FnOnce(bool) + Send>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<HostState>,
    /// Present with [`EngineConfig::baseline_tier`].
    baseline: Option<Baseline>,
    config: EngineConfig,
    modules: Arc<ModuleCache>,
    /// The optimizer thread's queue, started at the first [`PluginEngine::optimize_later`].
    optimizer: Mutex<Option<mpsc::Sender<OptimizeJob>>>,
    optimizer_counts: Arc<OptimizerCounts>,
    stop: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide plugin engine: compiles and validates plugins. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl PluginEngine {
    /// Creates the engine and starts its epoch ticker thread.
    pub fn new(config: EngineConfig) -> Result<PluginEngine, LoadError> {
        let build = |strategy: Strategy| {
            let mut c = Config::new();
            c.strategy(strategy)
                .epoch_interruption(true)
                .consume_fuel(false)
                .max_wasm_stack(abi::MAX_WASM_STACK)
                .cranelift_opt_level(OptLevel::Speed)
                .wasm_memory64(false)
                .wasm_multi_memory(false)
                // A plugin's data segments are copied into each new instance instead of
                // mapped copy-on-write from the module's image: for a policy's few KiB the
                // copy is cheaper than the mapping and its page faults, which every hot
                // swap's instantiation paid (`cargo bench -p kplug-cache --bench hook_call --
                // instance/`: instantiate and drop of the SDK LRU 42.4 -> 28.9 us). The copy
                // is bounded by the module's size.
                .memory_init_cow(false)
                // A linear memory never relocates when it grows (a 32-bit memory fits the
                // default 4 GiB reservation, so this only makes it a guarantee): the host keeps
                // the eviction key buffer's address for the instance's life (`keybuf.rs`).
                .memory_may_move(false);
            // Winch compiles the module's functions; Cranelift still compiles its trampolines
            // (one a signature, one an export and one a runtime builtin called: 39 beside the
            // SDK LRU's 50 functions), about a third of a baseline compile's instructions.
            // Baseline code serves only until the optimized code replaces it, so its
            // trampolines are compiled unoptimized with the single-pass register allocator:
            // `cargo bench -p kplug-cache --bench hook_call -- compile/baseline` 7.8-8.3 ->
            // 5.7-6.3 ms (docs/benchmarks.md §5).
            if strategy == Strategy::Winch {
                c.cranelift_opt_level(OptLevel::None)
                    .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
            }
            // For `perf`: the plugins' machine code named in /tmp/perf-PID.map (docs/benchmarks.md).
            if std::env::var_os("KPLUGFS_WASM_PERFMAP").is_some_and(|v| v == "1") {
                c.profiler(wasmtime::ProfilingStrategy::PerfMap);
            }
            let engine =
                Engine::new(&c).map_err(|e| LoadError::Instantiate(format!("engine: {e}")))?;
            let linker = imports::linker(&engine)
                .map_err(|e| LoadError::Instantiate(format!("linker: {e}")))?;
            Ok::<_, LoadError>((engine, linker))
        };
        let (engine, linker) = build(Strategy::Cranelift)?;
        let baseline = match config.baseline_tier {
            true => {
                let (engine, linker) = build(Strategy::Winch)?;
                Some(Baseline { engine, linker })
            }
            false => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut ticked = vec![engine.clone()];
        ticked.extend(baseline.as_ref().map(|b| b.engine.clone()));
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("kplug-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(abi::EPOCH_TICK);
                    for e in &ticked {
                        e.increment_epoch();
                    }
                }
            })
            .map_err(|e| LoadError::Instantiate(format!("epoch ticker thread: {e}")))?;
        let modules = Arc::new(ModuleCache::new(&engine, config.module_cache.as_deref()));
        Ok(PluginEngine {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                baseline,
                config,
                modules,
                optimizer: Mutex::new(None),
                optimizer_counts: Arc::default(),
                stop,
            }),
        })
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Compiles and validates a plugin module (binary format only), or takes it from the
    /// compiled-module cache if these bytes were compiled before (by this engine, or by one
    /// with the same settings sharing the disk cache). No plugin code runs here; see
    /// [`CompiledPlugin::instantiate`].
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, LoadError> {
        self.compile_as(name, bytes, Want::Optimized)
    }

    /// [`PluginEngine::compile`] with the baseline compiler whatever the caches hold (tests
    /// and benchmarks of baseline code); an error without [`EngineConfig::baseline_tier`].
    pub fn compile_baseline(&self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, LoadError> {
        self.compile_as(name, bytes, Want::Baseline)
    }

    /// [`PluginEngine::compile`] for a load that someone waits on (a plugin dropped into a
    /// mount): a module in no cache is compiled by the baseline compiler when
    /// [`EngineConfig::baseline_tier`] is on ([`CompiledPlugin::tier`] says which). Ask for
    /// its optimized code with [`PluginEngine::optimize_later`].
    pub fn compile_first(&self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, LoadError> {
        self.compile_as(name, bytes, Want::First)
    }

    /// Compile `bytes` with the optimizing compiler into the module cache on the optimizer
    /// thread (niced: it yields to readers), then call `done(true)`; `done(false)` if the
    /// compile failed or `wanted()` (asked just before compiling) said it is no longer needed.
    /// Code already cached costs nothing: `done(true)` at once. `done` runs on a second
    /// thread, at the priority of the thread that first called this (it takes locks readers
    /// wait on), one job after another.
    pub fn optimize_later(
        &self,
        bytes: Arc<[u8]>,
        wanted: Box<dyn Fn() -> bool + Send>,
        done: Box<dyn FnOnce(bool) + Send>,
    ) {
        let job = OptimizeJob {
            key: modcache::key(&bytes),
            bytes,
            wanted,
            done,
        };
        let counts = &self.inner.optimizer_counts;
        counts.requested.fetch_add(1, Ordering::Relaxed);
        let mut tx = self.inner.optimizer.lock();
        if tx.is_none() {
            let (send, recv) = mpsc::channel::<OptimizeJob>();
            let (finished, finishing) = mpsc::channel::<Finished>();
            let (engine, modules) = (self.inner.engine.clone(), self.inner.modules.clone());
            let shared = counts.clone();
            // At this (caller's) thread's own priority, not the optimizer's, nor a swap's
            // raised one.
            let own = crate::nice::own();
            let spawned = std::thread::Builder::new()
                .name("kplug-tier-up".into())
                .spawn(move || {
                    crate::nice::start_at(own);
                    finisher(&shared, finishing)
                })
                .and_then(|_| {
                    std::thread::Builder::new()
                        .name("kplug-optimize".into())
                        .spawn(move || optimizer(&engine, &modules, recv, finished))
                });
            match spawned {
                Ok(_) => *tx = Some(send),
                Err(e) => {
                    tracing::warn!("no optimizer thread: {e}; the baseline code keeps serving");
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    (job.done)(false);
                    return;
                }
            }
        }
        if let Some(Err(mpsc::SendError(job))) = tx.as_ref().map(|t| t.send(job)) {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            (job.done)(false);
        }
    }

    /// What the optimizer thread has done so far.
    pub fn optimizer_stats(&self) -> OptimizerStats {
        let c = &self.inner.optimizer_counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OptimizerStats {
            requested: get(&c.requested),
            optimized: get(&c.optimized),
            dropped: get(&c.dropped),
            failed: get(&c.failed),
        }
    }

    fn compile_as(
        &self,
        name: &str,
        bytes: &[u8],
        want: Want,
    ) -> Result<CompiledPlugin, LoadError> {
        let limit = self.inner.config.max_module_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        if bytes.len() < 8 || bytes[0..4] != *b"\0asm" || bytes[4..8] != [1, 0, 0, 0] {
            return Err(LoadError::NotWasm);
        }
        let key = modcache::key(bytes);
        let compile = |engine: &Engine| {
            crate::pools::compile(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
        };
        let optimized = || compile(&self.inner.engine);
        let baseline = |b: &Baseline| compile(&b.engine);
        let cached = match want {
            Want::Baseline => None,
            _ => self.inner.modules.get(&self.inner.engine, &key),
        };
        let (module, source, tier) = match (cached, &self.inner.baseline, want) {
            (Some((m, source)), _, _) => (m, source, CodeTier::Optimized),
            (None, Some(b), Want::Baseline) => (baseline(b)?, Source::Compiled, CodeTier::Baseline),
            (None, None, Want::Baseline) => {
                return Err(LoadError::Instantiate(
                    "this engine has no baseline compiler (EngineConfig::baseline_tier)".into(),
                ));
            }
            // A module Winch refuses (a proposal it lacks) may still be valid: Cranelift
            // decides, and its error is the one reported.
            (None, Some(b), Want::First) => match baseline(b) {
                Ok(m) => (m, Source::Compiled, CodeTier::Baseline),
                Err(_) => (optimized()?, Source::Compiled, CodeTier::Optimized),
            },
            (None, _, _) => (optimized()?, Source::Compiled, CodeTier::Optimized),
        };
        check_imports(&module)?;
        let (roles, eviction_abi, probe) = check_exports(&module, self.inner.config.memory_limit)?;
        let transform = module.get_export(exp::TRANSFORM_CHUNK.name).is_some();
        if source == Source::Compiled && tier == CodeTier::Optimized {
            self.inner.modules.put(key, &module);
        }
        let linker = match (tier, &self.inner.baseline) {
            (CodeTier::Baseline, Some(b)) => &b.linker,
            _ => &self.inner.linker,
        };
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        Ok(CompiledPlugin {
            inner: Arc::new(CompiledInner {
                name: name.to_string(),
                engine: self.clone(),
                source,
                tier,
                pre,
                roles,
                eviction_abi,
                has_params: module.get_export(exp::SET_PARAM.name).is_some(),
                wants_sequentiality: imports(&module, imp::SEQUENTIALITY.name),
                wants_files: imports(&module, imp::FILE_SIZE.name)
                    || imports(&module, imp::PATH_MATCHES.name),
                wants_divergence: imports(&module, imp::CANDIDATE_DIVERGENCE.name),
                governor: module.get_export(exp::TICK.name).is_some(),
                transform,
                per_caller: imports(&module, imp::TRANSFORM_UID.name),
                probe,
                has_start: has_start_section(bytes),
            }),
        })
    }
}

pub(crate) struct CompiledInner {
    pub(crate) name: String,
    pub(crate) engine: PluginEngine,
    /// Where `compile` found the module.
    pub(crate) source: Source,
    /// Which compiler made its code.
    pub(crate) tier: CodeTier,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) roles: RoleSet,
    /// Which of the ABI's three sets of eviction hooks the plugin serves eviction through.
    pub(crate) eviction_abi: EvictionAbi,
    pub(crate) has_params: bool,
    /// Imports `kplug.sequentiality`: the core then tracks per-file sequentiality.
    pub(crate) wants_sequentiality: bool,
    /// Imports `kplug.file_size` or `kplug.path_matches`: the mount then records file facts.
    pub(crate) wants_files: bool,
    /// Imports `kplug.candidate_divergence`: the core then estimates it at each tick.
    pub(crate) wants_divergence: bool,
    /// Exports `kplug_tick`: a governor.
    pub(crate) governor: bool,
    /// Exports the transform role (ABI 1.6): a view's data-path plugin, no cache role.
    pub(crate) transform: bool,
    /// Imports `kplug.transform_uid`: a per-caller transform (its output depends on the reader).
    pub(crate) per_caller: bool,
    /// Exports the probe hooks (ABI 1.5).
    pub(crate) probe: bool,
    /// Has a start function (a trap while instantiating is then its fault, else a segment's).
    pub(crate) has_start: bool,
}

impl CompiledPlugin {
    /// Whether the module is a governor (exports `kplug_tick`, ABI 1.1).
    pub fn is_governor(&self) -> bool {
        self.inner.governor
    }

    /// Whether the module is a transform (exports `kplug_transform_*`, ABI 1.6).
    pub fn is_transform(&self) -> bool {
        self.inner.transform
    }

    /// Whether a transform is per-caller (imports `transform_uid`, ABI 1.6).
    pub fn is_per_caller(&self) -> bool {
        self.inner.per_caller
    }

    /// Whether the module is a probe (exports `kplug_probe_*`, ABI 1.5).
    pub fn is_probe(&self) -> bool {
        self.inner.probe
    }
}

/// A validated, compiled plugin module. Cheap to clone; instantiate it once
/// per cache (each instance has its own store, memory and state).
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) inner: Arc<CompiledInner>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("name", &self.inner.name)
            .field("roles", &self.inner.roles)
            .finish()
    }
}

impl CompiledPlugin {
    /// The name given at compile time.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The roles whose export sets the module implements.
    pub fn roles(&self) -> RoleSet {
        self.inner.roles
    }

    /// Whether the module was compiled now or found in the compiled-module cache.
    pub fn source(&self) -> Source {
        self.inner.source
    }

    /// Which compiler made its machine code.
    pub fn tier(&self) -> CodeTier {
        self.inner.tier
    }

    /// The wasmtime engine its code belongs to (each tier has its own).
    pub(crate) fn wasmtime(&self) -> &Engine {
        self.inner.pre.module().engine()
    }

    /// Whether the module exports `kplug_set_param` (accepts parameters).
    pub fn accepts_params(&self) -> bool {
        self.inner.has_params
    }
}

/// What became of a job: its `done`, what to call it with, and the count it goes to.
struct Finished {
    done: Box<dyn FnOnce(bool) + Send>,
    outcome: Outcome,
}

#[derive(Clone, Copy)]
enum Outcome {
    Optimized,
    Dropped,
    Failed,
}

/// The optimizer thread: compiles each wanted job's module with Cranelift into the cache,
/// and hands its `done` to the [`finisher`].
fn optimizer(
    engine: &Engine,
    modules: &ModuleCache,
    jobs: mpsc::Receiver<OptimizeJob>,
    finished: mpsc::Sender<Finished>,
) {
    // Below the readers: a tier-up is worth having, never worth a stalled read.
    crate::nice::set(10);
    for job in jobs {
        let outcome = if !(job.wanted)() {
            Outcome::Dropped
        } else if modules.get(engine, &job.key).is_some() {
            Outcome::Optimized
        } else {
            match crate::pools::compile(engine, &job.bytes) {
                Ok(m) => {
                    modules.put(job.key, &m);
                    Outcome::Optimized
                }
                Err(e) => {
                    tracing::warn!(
                        "optimizing compile failed, the baseline code keeps serving: {e:#}"
                    );
                    Outcome::Failed
                }
            }
        };
        let done = job.done;
        if finished.send(Finished { done, outcome }).is_err() {
            return;
        }
    }
}

/// The thread that runs each job's `done` (the caller's swap to the optimized code, which
/// takes the cache's lock) at the caller's priority: readers never wait on a lock held by
/// the niced optimizer. A `done` that panics counts as failed, and the next ones still run.
fn finisher(counts: &OptimizerCounts, finished: mpsc::Receiver<Finished>) {
    for Finished { done, outcome } in finished {
        let ready = matches!(outcome, Outcome::Optimized);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(ready)));
        let counter = match (ran, outcome) {
            (Err(_), _) | (Ok(()), Outcome::Failed) => &counts.failed,
            (Ok(()), Outcome::Optimized) => &counts.optimized,
            (Ok(()), Outcome::Dropped) => &counts.dropped,
        };
        // Counted once `done` has run: whoever sees the count sees what `done` did.
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn type_letter(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(_) => "ref",
    }
}

fn describe_func(ft: &FuncType) -> String {
    let mut s = String::from("func(");
    for (i, p) in ft.params().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(type_letter(&p));
    }
    s.push(')');
    let results: Vec<&str> = ft.results().map(|r| type_letter(&r)).collect();
    if !results.is_empty() {
        let _ = write!(s, " -> {}", results.join(", "));
    }
    s
}

fn describe_extern(t: &ExternType) -> String {
    match t {
        ExternType::Func(ft) => describe_func(ft),
        ExternType::Global(_) => "global".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Memory(_) => "memory".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// Renders an ABI signature written as letters (`I` = i32, `L` = i64).
fn describe_sig(params: &str, results: &str) -> String {
    let letter = |c: char| match c {
        'I' => "i32",
        'F' => "f64",
        _ => "i64",
    };
    let p: Vec<&str> = params.chars().map(letter).collect();
    let r: Vec<&str> = results.chars().map(letter).collect();
    if r.is_empty() {
        format!("func({})", p.join(", "))
    } else {
        format!("func({}) -> {}", p.join(", "), r.join(", "))
    }
}

fn matches_sig(t: &ExternType, params: &str, results: &str) -> bool {
    let ExternType::Func(ft) = t else {
        return false;
    };
    let same = |got: &mut dyn ExactSizeIterator<Item = ValType>, want: &str| {
        got.len() == want.len()
            && got.zip(want.chars()).all(|(g, w)| match w {
                'I' => matches!(g, ValType::I32),
                'F' => matches!(g, ValType::F64),
                _ => matches!(g, ValType::I64),
            })
    };
    same(&mut ft.params(), params) && same(&mut ft.results(), results)
}

/// Whether `module` imports `kplug.<name>` (the core computes some figures only then).
pub(crate) fn imports(module: &Module, name: &str) -> bool {
    module
        .imports()
        .any(|i| i.module() == imp::MODULE && i.name() == name)
}

fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let known = (import.module() == imp::MODULE)
            .then(|| imp::find(import.name()))
            .flatten();
        let Some(Func { sig, .. }) = known else {
            return Err(LoadError::UnknownImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        };
        let ty = import.ty();
        if !matches_sig(&ty, sig.params, sig.results) {
            return Err(LoadError::MistypedImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
                expected: describe_sig(sig.params, sig.results),
                found: describe_extern(&ty),
            });
        }
    }
    Ok(())
}

fn check_export(module: &Module, f: &Func, role: Option<Role>) -> Result<(), LoadError> {
    let Some(ty) = module.get_export(f.name) else {
        return Err(LoadError::MissingExport { name: f.name, role });
    };
    if !matches_sig(&ty, f.sig.params, f.sig.results) {
        return Err(LoadError::MistypedExport {
            name: f.name.to_string(),
            expected: describe_sig(f.sig.params, f.sig.results),
            found: describe_extern(&ty),
        });
    }
    Ok(())
}

/// The roles the module serves, whether it serves eviction through the batched set of
/// ABI 1.4 (preferred when both eviction sets are exported), and whether it is a probe (1.5).
fn check_exports(
    module: &Module,
    memory_limit: usize,
) -> Result<(RoleSet, EvictionAbi, bool), LoadError> {
    match module.get_export(exp::MEMORY) {
        None => {
            return Err(LoadError::MissingExport {
                name: exp::MEMORY,
                role: None,
            });
        }
        Some(ExternType::Memory(m)) => {
            if m.is_64() || m.is_shared() {
                return Err(LoadError::Memory(
                    "memory must be 32-bit and not shared".into(),
                ));
            }
            let initial = m.minimum().saturating_mul(m.page_size());
            if initial > memory_limit as u64 {
                return Err(LoadError::Memory(format!(
                    "initial memory of {initial} bytes is over the limit of {memory_limit} bytes"
                )));
            }
        }
        Some(other) => {
            return Err(LoadError::MistypedExport {
                name: exp::MEMORY.into(),
                expected: "memory".into(),
                found: describe_extern(&other),
            });
        }
    }
    check_export(module, &exp::ABI_VERSION, None)?;
    for f in exp::LIFECYCLE {
        if module.get_export(f.name).is_some() {
            check_export(module, f, None)?;
        }
    }
    let mut roles = RoleSet::EMPTY;
    let has = |f: &Func| module.get_export(f.name).is_some();
    // A role's export set counts as exported when one of its own hooks is: the eviction sets
    // share `kplug_evict_remove` (1.0, 1.4) and the key buffer's two exports (1.4, 1.8), which
    // name none of them. Each set exported is checked whole.
    let shared = [
        exp::EVICT_REMOVE.name,
        exp::EVICT_BUF.name,
        exp::EVICT_HIT_BATCH.name,
    ];
    let names_set = |set: &[Func]| set.iter().any(|f| !shared.contains(&f.name) && has(f));
    let eviction_abi = if names_set(exp::EVICTION_HANDLES) {
        EvictionAbi::Handles
    } else if names_set(exp::EVICTION_BATCHED) {
        EvictionAbi::Batched
    } else {
        EvictionAbi::PerEvent
    };
    let sets = Role::ALL.into_iter().map(|r| (r, r.exports())).chain([
        (Role::Eviction, exp::EVICTION_BATCHED),
        (Role::Eviction, exp::EVICTION_HANDLES),
    ]);
    for (role, set) in sets {
        if names_set(set) {
            for f in set {
                check_export(module, f, Some(role))?;
            }
            roles = roles.with(role);
        }
    }
    // The key buffer's exports, and the batched sets' optional ones (1.9), belong to a batched
    // set: without one they are a set exported in part, refused naming what the 1.4 set lacks
    // (as before 1.8 shared them).
    let optional = exp::EVICTION_OPTIONAL.iter().filter(|f| has(f));
    for f in optional.clone() {
        check_export(module, f, Some(Role::Eviction))?;
    }
    if eviction_abi == EvictionAbi::PerEvent
        && (has(&exp::EVICT_BUF) || has(&exp::EVICT_HIT_BATCH) || optional.count() > 0)
    {
        for f in exp::EVICTION_BATCHED {
            check_export(module, f, Some(Role::Eviction))?;
        }
    }
    // A governor (ABI 1.1) serves no cache role: it picks the policies that do.
    let governor = module.get_export(exp::TICK.name).is_some();
    if governor {
        check_export(module, &exp::TICK, None)?;
        if !roles.is_empty() {
            return Err(LoadError::GovernorWithRoles(roles.to_string()));
        }
    }
    // A transform (ABI 1.6) serves a view, no cache role and no governor.
    let transform = exp::TRANSFORM
        .iter()
        .chain([&exp::TRANSFORM_FLAGS])
        .any(|f| module.get_export(f.name).is_some());
    if transform {
        for f in exp::TRANSFORM {
            check_export(module, f, None)?;
        }
        if module.get_export(exp::TRANSFORM_FLAGS.name).is_some() {
            check_export(module, &exp::TRANSFORM_FLAGS, None)?;
        }
        if governor || !roles.is_empty() {
            return Err(LoadError::TransformWithRoles);
        }
    }
    // A probe (ABI 1.5) only watches: it serves no role and governs nothing.
    let probe = exp::PROBE
        .iter()
        .any(|f| module.get_export(f.name).is_some());
    if probe {
        for f in exp::PROBE {
            check_export(module, f, None)?;
        }
        if governor {
            return Err(LoadError::ProbeWithRoles("kplug_tick".into()));
        }
        if !roles.is_empty() {
            return Err(LoadError::ProbeWithRoles(format!(
                "the {roles} role's hooks"
            )));
        }
    }
    if roles.is_empty() && !governor && !transform && !probe {
        return Err(LoadError::NoRoles);
    }
    Ok((roles, eviction_abi, probe))
}

/// Whether a (validated) module binary has a start section (id 8). Sections are an id byte, a
/// LEB128 size and that many bytes, after the 8-byte header.
fn has_start_section(bytes: &[u8]) -> bool {
    const START: u8 = 8;
    let mut pos = 8;
    while pos < bytes.len() {
        let id = bytes[pos];
        pos += 1;
        let (mut size, mut shift) = (0usize, 0u32);
        loop {
            let Some(&b) = bytes.get(pos) else {
                return false;
            };
            pos += 1;
            size |= ((b & 0x7f) as usize).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if b & 0x80 == 0 || shift > 35 {
                break;
            }
        }
        if id == START {
            return true;
        }
        pos = pos.saturating_add(size);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn start_sections_are_found() {
        let with =
            wat::parse_str(r#"(module (memory 1) (func $s) (start $s) (data (i32.const 0) "x"))"#)
                .unwrap();
        let without =
            wat::parse_str(r#"(module (memory 1) (func $s) (data (i32.const 0) "x"))"#).unwrap();
        assert!(has_start_section(&with));
        assert!(!has_start_section(&without));
        assert!(!has_start_section(b"\0asm\x01\0\0\0"));
        assert!(!has_start_section(b"\0asm\x01\0\0\0\x01\xff"));
    }

    /// The smallest valid plugin: an admission policy admitting everything.
    const PLUGIN: &str = r#"(module
      (memory (export "memory") 1)
      (func (export "kplug_abi_version") (result i32) i32.const 0x10000)
      (func (export "kplug_admit") (param i64 i64 i64) (result i32) i32.const 1))"#;

    #[test]
    fn linear_memories_never_move() {
        // `keybuf.rs` keeps an address inside a plugin's memory for the instance's life.
        let e = PluginEngine::new(EngineConfig {
            baseline_tier: true,
            ..Default::default()
        })
        .unwrap();
        assert!(!e.inner.engine.get_memory_may_move());
        let baseline = e.inner.baseline.as_ref().expect("baseline tier");
        assert!(!baseline.engine.get_memory_may_move());
    }

    #[test]
    fn the_engine_compiles_a_module_once() {
        let tmp = std::env::temp_dir().join(format!("kplug-modcache-e-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let cfg = EngineConfig {
            module_cache: Some(tmp.clone()),
            ..Default::default()
        };
        let bytes = wat::parse_str(PLUGIN).unwrap();
        let e1 = PluginEngine::new(cfg.clone()).unwrap();
        let first = e1.compile("a", &bytes).unwrap();
        assert_eq!(first.source(), Source::Compiled);
        // Another name, same bytes: the same module, from memory.
        let again = e1.compile("b", &bytes).unwrap();
        assert_eq!(again.source(), Source::Memory);
        assert_eq!(again.name(), "b");
        assert!(again.instantiate(&[], 8).is_ok());
        // Another engine (another process) deserializes what the writer thread stored.
        let stored = || {
            fs::read_dir(&tmp).ok()?.flatten().find_map(|d| {
                fs::read_dir(d.path())
                    .ok()?
                    .flatten()
                    .find(|f| f.path().extension().is_some_and(|x| x == "cwasm"))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while stored().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "never written to disk"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let e2 = PluginEngine::new(cfg).unwrap();
        let c = e2.compile("c", &bytes).unwrap();
        assert_eq!(c.source(), Source::Disk);
        assert!(c.instantiate(&[], 8).is_ok());
        // Other bytes are compiled, and an invalid module is refused, never cached.
        let mut other = bytes.clone();
        other.extend_from_slice(&[0, 2, 1, b'x']); // a custom section "x"
        assert_eq!(e2.compile("d", &other).unwrap().source(), Source::Compiled);
        let bad = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
        assert!(e2.compile("bad", &bad).is_err());
        assert!(e2.compile("bad", &bad).is_err());
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_first_load_is_baseline_code_until_the_optimized_code_is_cached() {
        let bytes = wat::parse_str(PLUGIN).unwrap();
        // Without the tier, every compile is optimized, and baseline code cannot be asked for.
        let plain = PluginEngine::new(EngineConfig::default()).unwrap();
        assert_eq!(
            plain.compile_first("a", &bytes).unwrap().tier(),
            CodeTier::Optimized
        );
        assert!(plain.compile_baseline("a", &bytes).is_err());

        let e = PluginEngine::new(EngineConfig {
            baseline_tier: true,
            ..Default::default()
        })
        .unwrap();
        let first = e.compile_first("a", &bytes).unwrap();
        assert_eq!(
            (first.tier(), first.source()),
            (CodeTier::Baseline, Source::Compiled)
        );
        assert!(first.instantiate(&[], 8).is_ok());
        // Baseline code is never cached: asking again compiles baseline code again.
        assert_eq!(
            e.compile_first("a", &bytes).unwrap().tier(),
            CodeTier::Baseline
        );
        // A request nobody wants any more is dropped, nothing compiled.
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        let bytes: Arc<[u8]> = Arc::from(bytes);
        e.optimize_later(
            bytes.clone(),
            Box::new(|| false),
            Box::new(move |ok| t.send(ok).unwrap()),
        );
        assert!(!rx.recv().unwrap());
        assert_eq!(
            e.compile_first("a", &bytes).unwrap().tier(),
            CodeTier::Baseline
        );
        // A wanted one is compiled by Cranelift into the cache: the next load is optimized.
        let t = tx.clone();
        e.optimize_later(
            bytes.clone(),
            Box::new(|| true),
            Box::new(move |ok| t.send(ok).unwrap()),
        );
        assert!(rx.recv().unwrap());
        let next = e.compile_first("b", &bytes).unwrap();
        assert_eq!(
            (next.tier(), next.source()),
            (CodeTier::Optimized, Source::Memory)
        );
        // Asking again costs nothing: found cached.
        e.optimize_later(
            bytes.clone(),
            Box::new(|| true),
            Box::new(move |ok| tx.send(ok).unwrap()),
        );
        assert!(rx.recv().unwrap());
        // Each is counted once its `done` has returned.
        let settled = || loop {
            let s = e.optimizer_stats();
            if s.optimized + s.dropped + s.failed == s.requested {
                return (s.requested, s.optimized, s.dropped, s.failed);
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(settled(), (3, 2, 1, 0));
        // A `done` that panics counts as failed; the next job still runs, and its `done`
        // runs on another thread than the niced compile (at the caller's priority).
        e.optimize_later(
            bytes.clone(),
            Box::new(|| true),
            Box::new(|_| panic!("a hostile caller")),
        );
        let (tx, rx) = mpsc::channel();
        e.optimize_later(
            bytes.clone(),
            Box::new(|| true),
            Box::new(move |ok| {
                let me = std::thread::current().name().map(String::from);
                tx.send((ok, me)).unwrap()
            }),
        );
        assert_eq!(rx.recv().unwrap(), (true, Some("kplug-tier-up".into())));
        assert_eq!(settled(), (5, 3, 1, 1));
        // Invalid bytes are refused by both paths with the same kind of error.
        let bad = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
        assert!(matches!(
            e.compile_first("bad", &bad),
            Err(LoadError::MissingExport { .. })
        ));
        assert!(matches!(
            e.compile_first("bad", b"\0asm\x01\0\0\0\x01"),
            Err(LoadError::Invalid(_))
        ));
    }
}
