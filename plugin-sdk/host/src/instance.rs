//! One running plugin: its own wasmtime `Store` (memory, limiter, deadline),
//! typed handles to the hooks it exports, and the load sequence.
//!
//! A store per plugin is what makes a fault local: a trap, a timeout or a
//! memory-cap hit poisons only that store, and dropping the [`Plugin`] frees
//! everything it allocated. The typed handles (`TypedFunc`) are looked up once
//! at load so a hook call is: store the resident count in the store's data,
//! set the epoch deadline (a load of the engine epoch plus a store), and call
//! the compiled trampoline: ~20-40 ns in total.
//!
//! Load sequence (any failure is a [`LoadError`] and nothing survives):
//! instantiate (the start function, if any, runs under the init deadline),
//! `kplug_abi_version` (major must be 1, minor <= ours), each parameter
//! through `kplug_alloc` + `kplug_set_param`, `kplug_init(capacity)`, and for
//! the prefetch role `kplug_prefetch_buf` (the output array must lie in
//! memory; memory never shrinks, so the bound checked here holds for life).
//!
//! Faults are classified here: the limiter's flag first (a refused growth
//! surfaces as a trap whose error wraps ours), then wasmtime's
//! `Trap::Interrupt` (the epoch deadline) as `Timeout`, anything else as a
//! `Trap` with wasmtime's message. Validation of answers (`InvalidAnswer`)
//! belongs to the role adapters, which know what is legal.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::{
    Caller, Engine, Extern, Linker, Memory, Store, Trap, TypedFunc, UpdateDeadline, WasmParams,
    WasmResults,
};

use crate::abi::{self, Role, RoleSet};
use crate::engine::{CompiledPlugin, PluginEngine};
use crate::error::{Fault, LoadError};
use crate::figures::Figures;
use crate::limiter::Limiter;
use crate::status::{PluginStatus, StatusHandle};

/// Data of a plugin's store, visible to the host imports.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    capacity: u64,
    resident: u64,
    name: Arc<str>,
    logs_left: u32,
    /// Deadline state of the current call (see [`on_deadline`]).
    cpu_mark: Option<u64>,
    /// Ticks added when the deadline is extended; CPU budget in ns.
    extend_ticks: u64,
    cpu_budget_ns: u64,
    /// Set when a call was interrupted for running past its budget.
    timed_out: bool,
    /// The figures of the cache the plugin is installed in (ABI 1.1 introspection).
    figures: Arc<Figures>,
    /// What a governor registered and may read or request (ABI 1.1).
    pub(crate) gov: GovState,
}

/// Most candidates one governor may register.
pub const MAX_CANDIDATES: usize = 32;
/// Longest candidate spec (`name:key=value;...`), in bytes.
pub const MAX_CANDIDATE_SPEC: usize = 1024;

/// A governor's side of the candidate table: registrations during load, counters and the
/// active candidates refreshed by the core before each tick, and the activation asked for.
#[derive(Debug, Default, Clone)]
pub(crate) struct GovState {
    pub(crate) candidates: Vec<(Role, String)>,
    pub(crate) counters: Vec<Option<(u64, u64)>>,
    pub(crate) divergence: Vec<Option<u64>>,
    pub(crate) active: [i32; 3],
    /// Activations asked for during the current call, in order.
    pub(crate) pending: Vec<usize>,
    pub(crate) weights: Vec<(usize, f64)>,
    pub(crate) loading: bool,
}

/// CPU time consumed by the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Epoch-deadline callback. The epoch measures wall-clock time, and on a
/// loaded machine a thread can be descheduled for longer than a deadline in
/// the middle of a 30 ns hook. So a first expiry only arms a CPU-time check:
/// it notes the thread's CPU clock and extends the deadline; at the next
/// expiry the call is interrupted if the thread spent the CPU budget since
/// the mark, else it is extended again. A runaway plugin is stopped after
/// about `deadline + budget` when the machine is idle, later when it is
/// busy, and an honest plugin is never stopped for waiting on the scheduler.
fn on_deadline(
    mut ctx: wasmtime::StoreContextMut<'_, HostState>,
) -> wasmtime::Result<UpdateDeadline> {
    let now = thread_cpu_ns();
    let d = ctx.data_mut();
    let (mark, interrupt) = deadline_step(d.cpu_mark, now, d.cpu_budget_ns);
    d.cpu_mark = mark;
    if interrupt {
        d.timed_out = true;
        Ok(UpdateDeadline::Interrupt)
    } else {
        Ok(UpdateDeadline::Continue(d.extend_ticks))
    }
}

/// One deadline expiry: `(new CPU mark, interrupt?)` given the mark taken at
/// the first expiry of this call (if any), the thread's CPU clock now and the
/// CPU budget.
fn deadline_step(mark: Option<u64>, now: u64, budget: u64) -> (Option<u64>, bool) {
    match mark {
        None => (Some(now), false),
        Some(m) => (Some(m), now.saturating_sub(m) >= budget),
    }
}

impl HostState {
    /// Sets the deadline policy for calls: `ticks` of wall clock, then the
    /// same span of thread CPU time.
    fn set_budget(&mut self, ticks: u64) {
        self.extend_ticks = ticks.max(1);
        self.cpu_budget_ns = (abi::EPOCH_TICK * ticks.max(1) as u32).as_nanos() as u64;
    }
}

/// Log messages a plugin may emit over its life before further ones are
/// dropped: a plugin logging on every hook would otherwise flood the log.
const LOG_BUDGET: u32 = 10_000;

/// The linker holding the `kplug.*` imports; built once per engine.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_CAPACITY,
        |c: Caller<'_, HostState>| c.data().capacity as i64,
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_RESIDENT,
        |c: Caller<'_, HostState>| c.data().resident as i64,
    )?;
    l.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_LOG, host_log)?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_HIT_RATIO,
        |c: Caller<'_, HostState>| c.data().figures.hit_ratio(),
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_PRESSURE,
        |c: Caller<'_, HostState>| c.data().figures.pressure(),
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_SEQUENTIALITY,
        |c: Caller<'_, HostState>, file: i64| c.data().figures.sequentiality(file as u64),
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_BACKEND_LATENCY,
        |c: Caller<'_, HostState>| c.data().figures.backend_latency_ns() as i64,
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_NOW,
        |c: Caller<'_, HostState>| c.data().figures.now_ns() as i64,
    )?;
    l.func_wrap(abi::IMPORT_MODULE, abi::IMPORT_ADD_CANDIDATE, add_candidate)?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_CANDIDATE_HITS,
        |c: Caller<'_, HostState>, i: i32| counter(&c, i, |h, _| h),
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_CANDIDATE_REQUESTS,
        |c: Caller<'_, HostState>, i: i32| counter(&c, i, |_, r| r),
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_CANDIDATE_DIVERGENCE,
        |c: Caller<'_, HostState>, i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|i| c.data().gov.divergence.get(i).copied().flatten())
                .map_or(-1, |d| d as i64)
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_ACTIVE,
        |c: Caller<'_, HostState>, role: i32| {
            Role::from_index(role).map_or(-1, |r| c.data().gov.active[r as usize])
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_ACTIVATE,
        |mut c: Caller<'_, HostState>, i: i32| {
            let g = &mut c.data_mut().gov;
            match usize::try_from(i) {
                Ok(i) if i < g.candidates.len() => {
                    if g.pending.len() < 4 * MAX_CANDIDATES {
                        g.pending.push(i);
                    }
                    if g.candidates[i].0 == Role::Eviction {
                        g.weights.clear();
                    }
                    0
                }
                _ => -1,
            }
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_SET_WEIGHT,
        |mut c: Caller<'_, HostState>, i: i32, w: f64| {
            let g = &mut c.data_mut().gov;
            match usize::try_from(i) {
                Ok(i)
                    if g.candidates.get(i).is_some_and(|c| c.0 == Role::Eviction)
                        && w.is_finite()
                        && w >= 0.0
                        && g.weights.len() < 4 * MAX_CANDIDATES =>
                {
                    g.weights.push((i, w));
                    0
                }
                _ => -1,
            }
        },
    )?;
    Ok(l)
}

fn counter(c: &Caller<'_, HostState>, i: i32, pick: fn(u64, u64) -> u64) -> i64 {
    usize::try_from(i)
        .ok()
        .and_then(|i| c.data().gov.counters.get(i).copied().flatten())
        .map_or(-1, |(h, r)| pick(h, r) as i64)
}

fn add_candidate(
    mut caller: Caller<'_, HostState>,
    role: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let (Some(role), true) = (Role::from_index(role), caller.data().gov.loading) else {
        return Ok(-1);
    };
    let len = len as u32 as usize;
    if len == 0 || len > MAX_CANDIDATE_SPEC || caller.data().gov.candidates.len() >= MAX_CANDIDATES
    {
        return Ok(-1);
    }
    let Some(Extern::Memory(mem)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Ok(-1);
    };
    let start = ptr as u32 as usize;
    let Some(bytes) = mem.data(&caller).get(start..start + len) else {
        wasmtime::bail!(
            "kplug.add_candidate: spec {start:#x}+{len} is outside the plugin's memory"
        );
    };
    let Ok(spec) = std::str::from_utf8(bytes).map(str::to_string) else {
        return Ok(-1);
    };
    let g = &mut caller.data_mut().gov;
    g.candidates.push((role, spec));
    Ok(g.candidates.len() as i32 - 1)
}

fn host_log(
    mut caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    if caller.data().logs_left == 0 {
        return Ok(());
    }
    caller.data_mut().logs_left -= 1;
    let Some(Extern::Memory(mem)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Ok(());
    };
    let (start, len) = (
        ptr as u32 as usize,
        (len as u32 as usize).min(abi::MAX_LOG_BYTES),
    );
    let data = mem.data(&caller);
    let Some(bytes) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
        wasmtime::bail!("kplug.log: message {start:#x}+{len} is outside the plugin's memory");
    };
    let msg = String::from_utf8_lossy(bytes);
    let name = &caller.data().name;
    match level {
        0 => tracing::error!(plugin = %name, "{msg}"),
        1 => tracing::warn!(plugin = %name, "{msg}"),
        2 => tracing::info!(plugin = %name, "{msg}"),
        3 => tracing::debug!(plugin = %name, "{msg}"),
        _ => tracing::trace!(plugin = %name, "{msg}"),
    }
    if caller.data().logs_left == 0 {
        tracing::warn!(plugin = %name, "log budget of {LOG_BUDGET} messages spent; dropping further messages");
    }
    Ok(())
}

/// A fault together with the export that raised it.
#[derive(Debug, Clone)]
pub(crate) struct HookFault {
    pub(crate) hook: &'static str,
    pub(crate) fault: Fault,
}

impl std::fmt::Display for HookFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.hook, self.fault)
    }
}

struct EvictionFns {
    insert: TypedFunc<i64, ()>,
    access: TypedFunc<i64, ()>,
    remove: TypedFunc<i64, ()>,
    victim: TypedFunc<(), i64>,
}

struct PrefetchFns {
    prefetch: TypedFunc<(i64, i64, i64, i32), i32>,
    buf: usize,
}

/// One hook call in this many is timed for [`PluginStatus::time_ns`]: a power of two, so the
/// check is a mask; 16 keeps the clock's cost under 3 ns per call on average while a plugin
/// making thousands of calls a second still gets hundreds of samples.
const TIME_SAMPLE_EVERY: u64 = 16;

/// The store and what every call needs besides the function handle.
struct Runner {
    store: Store<HostState>,
    deadline: u64,
    calls: u64,
    /// The call number that is the plugin's first decision once installed (0: not armed).
    first_decision_call: u64,
    status: StatusHandle,
}

impl Runner {
    #[inline]
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        hook: &'static str,
        f: &TypedFunc<P, R>,
        params: P,
        resident: u64,
    ) -> Result<R, HookFault> {
        let d = self.store.data_mut();
        d.resident = resident;
        d.cpu_mark = None;
        self.store.set_epoch_deadline(self.deadline);
        self.calls += 1;
        self.status.calls.store(self.calls, Ordering::Relaxed);
        if self.calls == self.first_decision_call {
            self.status.note_first_decision();
        }
        // Time spent in the plugin, sampled: timing every call would cost two clock reads
        // (~40 ns) around a ~30 ns hook, so one call in TIME_SAMPLE_EVERY is timed and
        // counted for all of them (see `PluginStatus::time_ns`).
        let r = if self.calls & (TIME_SAMPLE_EVERY - 1) == 0 {
            let start = std::time::Instant::now();
            let r = f.call(&mut self.store, params);
            self.status
                .add_sampled_time(start.elapsed().as_nanos() as u64 * TIME_SAMPLE_EVERY);
            r
        } else {
            f.call(&mut self.store, params)
        };
        r.map_err(|e| HookFault {
            hook,
            fault: classify(&self.store, e),
        })
    }
}

/// A loaded plugin instance, ready to be installed into a [`crate::CacheCore`].
pub struct Plugin {
    rt: Runner,
    memory: Memory,
    eviction: Option<EvictionFns>,
    admission: Option<TypedFunc<(i64, i64, i64), i32>>,
    prefetch: Option<PrefetchFns>,
    capacity: u64,
    roles: RoleSet,
    wants_sequentiality: bool,
    wants_divergence: bool,
    tick: Option<TypedFunc<i64, i32>>,
    // Keeps the epoch ticker alive as long as the instance.
    _engine: PluginEngine,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.rt.status.name())
            .field("roles", &self.roles)
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn classify(store: &Store<HostState>, e: wasmtime::Error) -> Fault {
    if store.data().limiter.exceeded {
        return Fault::MemoryLimit;
    }
    if store.data().timed_out {
        return Fault::Timeout;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Timeout,
        Some(t) => Fault::Trap(t.to_string().trim_start_matches("wasm trap: ").to_string()),
        None => Fault::Trap(format!("{e:#}")),
    }
}

impl CompiledPlugin {
    /// Instantiates the plugin for a cache of `capacity` blocks, passing the
    /// `key=value` parameters before `kplug_init`.
    pub fn instantiate(&self, params: &[(&str, &str)], capacity: u64) -> Result<Plugin, LoadError> {
        let c = &self.inner;
        let cfg = c.engine.config().clone();
        let name: Arc<str> = Arc::from(c.name.as_str());
        let mut store = Store::new(
            c.engine.wasmtime(),
            HostState {
                limiter: Limiter::new(cfg.memory_limit, abi::MAX_TABLE_ELEMENTS),
                capacity,
                resident: 0,
                name,
                logs_left: LOG_BUDGET,
                cpu_mark: None,
                extend_ticks: 1,
                cpu_budget_ns: 0,
                timed_out: false,
                figures: Arc::default(),
                gov: GovState {
                    loading: true,
                    active: [-1; 3],
                    ..GovState::default()
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.data_mut().set_budget(cfg.init_deadline_ticks);
        store.epoch_deadline_callback(on_deadline);
        store.set_epoch_deadline(cfg.init_deadline_ticks);
        let instance = match c.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) if store.data().limiter.exceeded => {
                return Err(LoadError::Memory(format!("{:#}", e)));
            }
            Err(e) => {
                return Err(match e.downcast_ref::<Trap>() {
                    Some(_) => LoadError::Fault {
                        hook: "start function",
                        fault: classify(&store, e),
                    },
                    None => LoadError::Instantiate(format!("{e:#}")),
                });
            }
        };
        let inst_err = |e: wasmtime::Error| LoadError::Instantiate(format!("{e:#}"));
        let memory = instance.get_memory(&mut store, abi::EXPORT_MEMORY).ok_or(
            LoadError::MissingExport {
                name: abi::EXPORT_MEMORY,
                role: None,
            },
        )?;
        let load_call =
            |store: &mut Store<HostState>, hook: &'static str, r: wasmtime::Result<i32>| {
                r.map_err(|e| LoadError::Fault {
                    hook,
                    fault: classify(store, e),
                })
            };

        let version_fn = instance
            .get_typed_func::<(), i32>(&mut store, abi::EXPORT_ABI_VERSION)
            .map_err(inst_err)?;
        store.set_epoch_deadline(cfg.init_deadline_ticks);
        let r = version_fn.call(&mut store, ());
        let version = load_call(&mut store, abi::EXPORT_ABI_VERSION, r)? as u32;
        let (major, minor) = (version >> 16, version & 0xffff);
        if major != abi::ABI_MAJOR || minor > abi::ABI_MINOR {
            return Err(LoadError::AbiVersion {
                major,
                minor,
                host_minor: abi::ABI_MINOR,
            });
        }

        if !params.is_empty() {
            let param_err = |key: &str, reason: String| LoadError::Param {
                key: key.to_string(),
                reason,
            };
            let (Ok(alloc), Ok(set)) = (
                instance.get_typed_func::<i32, i32>(&mut store, abi::EXPORT_ALLOC),
                instance
                    .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, abi::EXPORT_SET_PARAM),
            ) else {
                return Err(param_err(
                    params[0].0,
                    "the plugin takes no parameters (it does not export kplug_alloc and kplug_set_param)".into(),
                ));
            };
            for (key, val) in params {
                if key.is_empty() || key.len() > abi::MAX_PARAM_BYTES || key.contains(['=', ',']) {
                    return Err(param_err(
                        key,
                        format!(
                            "keys are 1..={} bytes without '=' or ','",
                            abi::MAX_PARAM_BYTES
                        ),
                    ));
                }
                if val.len() > abi::MAX_PARAM_BYTES {
                    return Err(param_err(
                        key,
                        format!("value is longer than {} bytes", abi::MAX_PARAM_BYTES),
                    ));
                }
                let total = (key.len() + val.len()) as i32;
                store.set_epoch_deadline(cfg.init_deadline_ticks);
                let r = alloc.call(&mut store, total);
                let ptr = load_call(&mut store, abi::EXPORT_ALLOC, r)? as u32 as usize;
                let mut bytes = key.as_bytes().to_vec();
                bytes.extend_from_slice(val.as_bytes());
                if ptr == 0 || memory.write(&mut store, ptr, &bytes).is_err() {
                    return Err(param_err(
                        key,
                        format!("kplug_alloc({total}) returned {ptr:#x}, not a usable buffer"),
                    ));
                }
                store.set_epoch_deadline(cfg.init_deadline_ticks);
                let args = (
                    ptr as i32,
                    key.len() as i32,
                    (ptr + key.len()) as i32,
                    val.len() as i32,
                );
                let r = set.call(&mut store, args);
                let code = load_call(&mut store, abi::EXPORT_SET_PARAM, r)?;
                if code != 0 {
                    return Err(param_err(
                        key,
                        format!("rejected by the plugin (value `{val}`, code {code})"),
                    ));
                }
            }
        }

        if let Ok(init) = instance.get_typed_func::<i64, i32>(&mut store, abi::EXPORT_INIT) {
            store.set_epoch_deadline(cfg.init_deadline_ticks);
            let r = init.call(&mut store, capacity as i64);
            let code = load_call(&mut store, abi::EXPORT_INIT, r)?;
            if code != 0 {
                return Err(LoadError::Init { capacity, code });
            }
        }

        let roles = c.roles;
        let eviction = if roles.contains(Role::Eviction) {
            Some(EvictionFns {
                insert: instance
                    .get_typed_func(&mut store, abi::EXPORT_EVICT_INSERT)
                    .map_err(inst_err)?,
                access: instance
                    .get_typed_func(&mut store, abi::EXPORT_EVICT_ACCESS)
                    .map_err(inst_err)?,
                remove: instance
                    .get_typed_func(&mut store, abi::EXPORT_EVICT_REMOVE)
                    .map_err(inst_err)?,
                victim: instance
                    .get_typed_func(&mut store, abi::EXPORT_EVICT_VICTIM)
                    .map_err(inst_err)?,
            })
        } else {
            None
        };
        let admission = if roles.contains(Role::Admission) {
            Some(
                instance
                    .get_typed_func(&mut store, abi::EXPORT_ADMIT)
                    .map_err(inst_err)?,
            )
        } else {
            None
        };
        let prefetch = if roles.contains(Role::Prefetch) {
            let buf_fn = instance
                .get_typed_func::<(), i32>(&mut store, abi::EXPORT_PREFETCH_BUF)
                .map_err(inst_err)?;
            store.set_epoch_deadline(cfg.init_deadline_ticks);
            let r = buf_fn.call(&mut store, ());
            let buf = load_call(&mut store, abi::EXPORT_PREFETCH_BUF, r)? as u32 as usize;
            let need = (abi::MAX_PREFETCH_RANGES * abi::PREFETCH_RANGE_BYTES) as usize;
            if buf
                .checked_add(need)
                .is_none_or(|end| end > memory.data_size(&store))
            {
                return Err(LoadError::Fault {
                    hook: abi::EXPORT_PREFETCH_BUF,
                    fault: Fault::InvalidAnswer(format!(
                        "output array {buf:#x}+{need} is outside the plugin's memory"
                    )),
                });
            }
            Some(PrefetchFns {
                prefetch: instance
                    .get_typed_func(&mut store, abi::EXPORT_PREFETCH)
                    .map_err(inst_err)?,
                buf,
            })
        } else {
            None
        };

        let tick = if c.governor {
            Some(
                instance
                    .get_typed_func::<i64, i32>(&mut store, abi::EXPORT_TICK)
                    .map_err(inst_err)?,
            )
        } else {
            None
        };
        store.data_mut().gov.loading = false;
        store.data_mut().set_budget(cfg.hook_deadline_ticks);
        Ok(Plugin {
            tick,
            rt: Runner {
                store,
                deadline: cfg.hook_deadline_ticks,
                calls: 0,
                first_decision_call: 0,
                status: PluginStatus::new(&c.name, roles, c.governor),
            },
            wants_sequentiality: c.wants_sequentiality,
            wants_divergence: c.wants_divergence,
            memory,
            eviction,
            admission,
            prefetch,
            capacity,
            roles,
            _engine: c.engine.clone(),
        })
    }
}

impl Plugin {
    /// Whether a governor imports `kplug.candidate_divergence` (the core estimates it at each
    /// tick only then).
    pub(crate) fn wants_divergence(&self) -> bool {
        self.wants_divergence
    }

    /// Whether the plugin imports `kplug.sequentiality` (ABI 1.1).
    pub fn wants_sequentiality(&self) -> bool {
        self.wants_sequentiality
    }

    /// What `kplug.resident` reports during calls that do not pass it (the governor tick).
    pub(crate) fn set_resident(&mut self, n: u64) {
        self.rt.store.data_mut().resident = n;
    }

    /// Whether the plugin is a governor (exports `kplug_tick`, ABI 1.1).
    pub fn is_governor(&self) -> bool {
        self.tick.is_some()
    }

    /// The candidates a governor registered while loading: role and spec, in index order.
    pub fn candidate_specs(&self) -> Vec<(Role, String)> {
        self.rt.store.data().gov.candidates.clone()
    }

    /// The activation a governor asked for (during load or its last tick), taken.
    pub(crate) fn take_activations(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.rt.store.data_mut().gov.pending)
    }

    /// The eviction weights a governor set (during load or its last tick), in call order,
    /// taken. An `activate` clears the weights set before it in the same call.
    pub(crate) fn take_weights(&mut self) -> Vec<(usize, f64)> {
        std::mem::take(&mut self.rt.store.data_mut().gov.weights)
    }

    /// `kplug_tick(now_ns)` with the candidates' counters and the active candidate per role
    /// as the imports will report them; a non-zero answer is a fault.
    pub(crate) fn tick(
        &mut self,
        now_ns: u64,
        counters: Vec<Option<(u64, u64)>>,
        divergence: Vec<Option<u64>>,
        active: [i32; 3],
    ) -> Result<(), HookFault> {
        let d = &mut self.rt.store.data_mut().gov;
        d.counters = counters;
        d.divergence = divergence;
        d.active = active;
        let f = self.tick.as_ref().expect("governor");
        let resident = self.rt.store.data().resident;
        match self.rt.call(abi::EXPORT_TICK, f, now_ns as i64, resident)? {
            0 => Ok(()),
            code => Err(HookFault {
                hook: abi::EXPORT_TICK,
                fault: Fault::InvalidAnswer(format!("kplug_tick returned {code}, not 0")),
            }),
        }
    }

    /// Give the plugin the figures of the cache it is installed in.
    pub(crate) fn attach_figures(&mut self, figures: Arc<Figures>) {
        self.rt.store.data_mut().figures = figures;
    }

    /// Plugin name.
    pub fn name(&self) -> &str {
        self.rt.status.name()
    }

    /// Roles the plugin implements.
    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// Capacity passed to `kplug_init`.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The shared status handle (keep it to display the plugin after it is
    /// installed, replaced or failed).
    pub fn status(&self) -> StatusHandle {
        self.rt.status.clone()
    }

    /// `kplug_evict_insert(key)`. Panics if the plugin has no eviction role
    /// (the core only routes roles a plugin implements).
    #[inline]
    pub(crate) fn evict_insert(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").insert;
        self.rt
            .call(abi::EXPORT_EVICT_INSERT, f, key as i64, resident)
    }

    /// `kplug_evict_access(key)`.
    #[inline]
    pub(crate) fn evict_access(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").access;
        self.rt
            .call(abi::EXPORT_EVICT_ACCESS, f, key as i64, resident)
    }

    /// `kplug_evict_remove(key)`.
    #[inline]
    pub(crate) fn evict_remove(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").remove;
        self.rt
            .call(abi::EXPORT_EVICT_REMOVE, f, key as i64, resident)
    }

    /// `kplug_evict_victim()`, unvalidated.
    #[inline]
    pub(crate) fn evict_victim(&mut self, resident: u64) -> Result<u64, HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").victim;
        self.rt
            .call(abi::EXPORT_EVICT_VICTIM, f, (), resident)
            .map(|k| k as u64)
    }

    /// `kplug_admit(key, file, block)`, raw answer.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        key: u64,
        file: u64,
        block: u64,
        resident: u64,
    ) -> Result<i32, HookFault> {
        let f = self.admission.as_ref().expect("admission role");
        let args = (key as i64, file as i64, block as i64);
        self.rt.call(abi::EXPORT_ADMIT, f, args, resident)
    }

    /// `kplug_prefetch(...)`: returns the raw count and the output array
    /// (the first `min(n, 64)` ranges as little-endian byte pairs).
    pub(crate) fn prefetch(
        &mut self,
        file: u64,
        block: u64,
        file_blocks: u64,
        hit: bool,
        resident: u64,
    ) -> Result<(i32, &[u8]), HookFault> {
        let p = self.prefetch.as_ref().expect("prefetch role");
        let args = (file as i64, block as i64, file_blocks as i64, hit as i32);
        let n = self
            .rt
            .call(abi::EXPORT_PREFETCH, &p.prefetch, args, resident)?;
        let len = (n.clamp(0, abi::MAX_PREFETCH_RANGES as i32) as u32 * abi::PREFETCH_RANGE_BYTES)
            as usize;
        // In bounds: checked at load, and memory never shrinks.
        let bytes = &self.memory.data(&self.rt.store)[p.buf..p.buf + len];
        Ok((n, bytes))
    }

    /// The plugin now serves its roles: its next hook call is its first decision (the
    /// replay of resident blocks before it does not count).
    pub(crate) fn mark_installed(&mut self) {
        self.rt.first_decision_call = self.rt.calls + 1;
    }

    pub(crate) fn mark_failed(&self, fault: &HookFault) {
        self.rt.status.set_failed(fault.to_string());
    }

    pub(crate) fn mark_disabled(&self, reason: &str) {
        self.rt.status.set_disabled(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_interrupts_only_after_the_cpu_budget() {
        // First expiry arms the check.
        assert_eq!(deadline_step(None, 1_000, 10), (Some(1_000), false));
        // Descheduled: little CPU used since the mark, extend.
        assert_eq!(deadline_step(Some(1_000), 1_004, 10), (Some(1_000), false));
        // Spinning: the budget was spent, interrupt.
        assert_eq!(deadline_step(Some(1_000), 1_010, 10), (Some(1_000), true));
    }

    #[test]
    fn thread_cpu_clock_advances_with_work() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns() > a);
    }
}
