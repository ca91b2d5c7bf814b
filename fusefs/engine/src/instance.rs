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
//! `Trap` with wasmtime's message in one line (a host import's own message,
//! without the backtrace around it). A call that saw an epoch tick is slow:
//! the CPU it used since is charged to the plugin's budget (`budget.rs`), and
//! the call that exhausts it is a `TooSlow` fault. Validation of answers
//! (`InvalidAnswer`) belongs to the role adapters, which know what is legal.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use kplug_abi::{self as abi, Role, RoleSet, exports as exp};
use wasmtime::{Memory, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::budget::SlowBudget;
use crate::engine::{CompiledPlugin, PluginEngine};
use crate::error::{Fault, LoadError};
use crate::figures::Figures;
use crate::state::{HostState, on_deadline, thread_cpu_ns};
use crate::status::{PluginStatus, StatusHandle};
use crate::text::one_line;

/// A fault together with the export that raised it.
#[derive(Debug, Clone)]
pub struct HookFault {
    /// The export that faulted.
    pub hook: &'static str,
    /// What went wrong.
    pub fault: Fault,
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

struct ProbeFns {
    events: TypedFunc<i32, i32>,
    report: TypedFunc<(), i64>,
    buf: usize,
}

/// One hook call in this many is timed for [`PluginStatus::time_ns`]: a power of two, so the
/// check is a mask; 16 keeps the clock's cost under 3 ns per call on average while a plugin
/// making thousands of calls a second still gets hundreds of samples.
const TIME_SAMPLE_EVERY: u64 = 16;

/// The store and what every call needs besides the function handle.
struct Runner {
    store: Store<HostState>,
    /// What slow calls may cost per second (shared by a governor and its candidates).
    budget: Arc<SlowBudget>,
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
        arm(&mut self.store);
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
        let r = r.map_err(|e| HookFault {
            hook,
            fault: classify(&self.store, e),
        })?;
        // A slow call (it saw a tick): charge the CPU it used since, the only calls that pay
        // for reading the thread's CPU clock.
        if let Some(mark) = self.store.data().cpu_mark {
            let used = thread_cpu_ns().saturating_sub(mark);
            self.budget
                .charge(used)
                .map_err(|fault| HookFault { hook, fault })?;
        }
        Ok(r)
    }
}

/// Arm the deadline of a new call: it expires at the next epoch tick (`state.rs`).
fn arm(store: &mut Store<HostState>) {
    store.data_mut().arm();
    store.set_epoch_deadline(1);
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
    wants_files: bool,
    wants_divergence: bool,
    tick: Option<TypedFunc<i64, i32>>,
    probe: Option<ProbeFns>,
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
        Some(t) => Fault::Trap(one_line(t.to_string().trim_start_matches("wasm trap: "))),
        // A host import's error (a bad `log` range...): its own message, without the wasm
        // backtrace wasmtime wraps it in.
        None => Fault::Trap(one_line(&e.root_cause().to_string())),
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
            HostState::new(name, capacity, cfg.memory_limit),
        );
        store.limiter(|s| &mut s.limiter);
        store.data_mut().probe.is_probe = c.probe;
        store.data_mut().set_deadline(cfg.init_deadline_ticks);
        store.epoch_deadline_callback(on_deadline);
        arm(&mut store);
        let instance = match c.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) if store.data().limiter.exceeded => {
                return Err(LoadError::Memory(one_line(&format!("{:#}", e))));
            }
            Err(e) => {
                return Err(match e.downcast_ref::<Trap>() {
                    Some(_) if c.has_start => LoadError::Fault {
                        hook: "start function",
                        fault: classify(&store, e),
                    },
                    // No start function: the trap is a data or element segment that does not
                    // fit (checked by wasmtime while instantiating).
                    Some(_) => LoadError::Instantiate(format!(
                        "a data or element segment does not fit in its memory or table ({})",
                        one_line(e.root_cause().to_string().trim_start_matches("wasm trap: "))
                    )),
                    None => LoadError::Instantiate(one_line(&format!("{e:#}"))),
                });
            }
        };
        let inst_err = |e: wasmtime::Error| LoadError::Instantiate(one_line(&format!("{e:#}")));
        let memory =
            instance
                .get_memory(&mut store, exp::MEMORY)
                .ok_or(LoadError::MissingExport {
                    name: exp::MEMORY,
                    role: None,
                })?;
        let load_call =
            |store: &mut Store<HostState>, hook: &'static str, r: wasmtime::Result<i32>| {
                r.map_err(|e| LoadError::Fault {
                    hook,
                    fault: classify(store, e),
                })
            };

        let version_fn = instance
            .get_typed_func::<(), i32>(&mut store, exp::ABI_VERSION.name)
            .map_err(inst_err)?;
        arm(&mut store);
        let r = version_fn.call(&mut store, ());
        let version = load_call(&mut store, exp::ABI_VERSION.name, r)? as u32;
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
                instance.get_typed_func::<i32, i32>(&mut store, exp::ALLOC.name),
                instance
                    .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, exp::SET_PARAM.name),
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
                arm(&mut store);
                let r = alloc.call(&mut store, total);
                let ptr = load_call(&mut store, exp::ALLOC.name, r)? as u32 as usize;
                let mut bytes = key.as_bytes().to_vec();
                bytes.extend_from_slice(val.as_bytes());
                if ptr == 0 || memory.write(&mut store, ptr, &bytes).is_err() {
                    return Err(param_err(
                        key,
                        format!("kplug_alloc({total}) returned {ptr:#x}, not a usable buffer"),
                    ));
                }
                arm(&mut store);
                let args = (
                    ptr as i32,
                    key.len() as i32,
                    (ptr + key.len()) as i32,
                    val.len() as i32,
                );
                let r = set.call(&mut store, args);
                let code = load_call(&mut store, exp::SET_PARAM.name, r)?;
                if code != 0 {
                    return Err(param_err(
                        key,
                        format!("rejected by the plugin (value `{val}`, code {code})"),
                    ));
                }
            }
        }

        if let Ok(init) = instance.get_typed_func::<i64, i32>(&mut store, exp::INIT.name) {
            arm(&mut store);
            let r = init.call(&mut store, capacity as i64);
            let code = load_call(&mut store, exp::INIT.name, r)?;
            if code != 0 {
                return Err(LoadError::Init { capacity, code });
            }
        }

        let roles = c.roles;
        let eviction = if roles.contains(Role::Eviction) {
            Some(EvictionFns {
                insert: instance
                    .get_typed_func(&mut store, exp::EVICT_INSERT.name)
                    .map_err(inst_err)?,
                access: instance
                    .get_typed_func(&mut store, exp::EVICT_ACCESS.name)
                    .map_err(inst_err)?,
                remove: instance
                    .get_typed_func(&mut store, exp::EVICT_REMOVE.name)
                    .map_err(inst_err)?,
                victim: instance
                    .get_typed_func(&mut store, exp::EVICT_VICTIM.name)
                    .map_err(inst_err)?,
            })
        } else {
            None
        };
        let admission = if roles.contains(Role::Admission) {
            Some(
                instance
                    .get_typed_func(&mut store, exp::ADMIT.name)
                    .map_err(inst_err)?,
            )
        } else {
            None
        };
        let prefetch = if roles.contains(Role::Prefetch) {
            let buf_fn = instance
                .get_typed_func::<(), i32>(&mut store, exp::PREFETCH_BUF.name)
                .map_err(inst_err)?;
            arm(&mut store);
            let r = buf_fn.call(&mut store, ());
            let buf = load_call(&mut store, exp::PREFETCH_BUF.name, r)? as u32 as usize;
            let need = abi::MAX_PREFETCH_RANGES * abi::PREFETCH_RANGE_BYTES;
            if buf
                .checked_add(need)
                .is_none_or(|end| end > memory.data_size(&store))
            {
                return Err(LoadError::Fault {
                    hook: exp::PREFETCH_BUF.name,
                    fault: Fault::InvalidAnswer(format!(
                        "output array {buf:#x}+{need} is outside the plugin's memory"
                    )),
                });
            }
            Some(PrefetchFns {
                prefetch: instance
                    .get_typed_func(&mut store, exp::PREFETCH.name)
                    .map_err(inst_err)?,
                buf,
            })
        } else {
            None
        };

        let tick = if c.governor {
            Some(
                instance
                    .get_typed_func::<i64, i32>(&mut store, exp::TICK.name)
                    .map_err(inst_err)?,
            )
        } else {
            None
        };
        let probe = if c.probe {
            let buf_fn = instance
                .get_typed_func::<(), i32>(&mut store, exp::PROBE_BUF.name)
                .map_err(inst_err)?;
            arm(&mut store);
            let r = buf_fn.call(&mut store, ());
            let buf = load_call(&mut store, exp::PROBE_BUF.name, r)? as u32 as usize;
            let need = abi::probe::PROBE_BATCH_EVENTS * abi::probe::PROBE_EVENT_BYTES;
            if buf
                .checked_add(need)
                .is_none_or(|end| end > memory.data_size(&store))
            {
                return Err(LoadError::Fault {
                    hook: exp::PROBE_BUF.name,
                    fault: Fault::InvalidAnswer(format!(
                        "event buffer {buf:#x}+{need} is outside the plugin's memory"
                    )),
                });
            }
            Some(ProbeFns {
                events: instance
                    .get_typed_func(&mut store, exp::PROBE_EVENTS.name)
                    .map_err(inst_err)?,
                report: instance
                    .get_typed_func(&mut store, exp::PROBE_REPORT.name)
                    .map_err(inst_err)?,
                buf,
            })
        } else {
            None
        };
        store.data_mut().gov.loading = false;
        store.data_mut().set_deadline(cfg.hook_deadline_ticks);
        Ok(Plugin {
            tick,
            probe,
            rt: Runner {
                store,
                budget: Arc::new(SlowBudget::new(cfg.slow_budget)),
                calls: 0,
                first_decision_call: 0,
                status: PluginStatus::new(&c.name, roles, c.governor, c.probe),
            },
            wants_sequentiality: c.wants_sequentiality,
            wants_files: c.wants_files,
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
    pub fn wants_divergence(&self) -> bool {
        self.wants_divergence
    }

    /// Whether the plugin imports `kplug.sequentiality` (ABI 1.1).
    pub fn wants_sequentiality(&self) -> bool {
        self.wants_sequentiality
    }

    /// What `kplug.resident` reports during calls that do not pass it (the governor tick).
    pub fn set_resident(&mut self, n: u64) {
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
    pub fn take_activations(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.rt.store.data_mut().gov.pending)
    }

    /// The eviction weights a governor set (during load or its last tick), in call order,
    /// taken. An `activate` clears the weights set before it in the same call.
    pub fn take_weights(&mut self) -> Vec<(usize, f64)> {
        std::mem::take(&mut self.rt.store.data_mut().gov.weights)
    }

    /// `kplug_tick(now_ns)` with the candidates' counters and the active candidate per role
    /// as the imports will report them; a non-zero answer is a fault.
    pub fn tick(
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
        match self.rt.call(exp::TICK.name, f, now_ns as i64, resident)? {
            0 => Ok(()),
            code => Err(HookFault {
                hook: exp::TICK.name,
                fault: Fault::InvalidAnswer(format!("kplug_tick returned {code}, not 0")),
            }),
        }
    }

    /// Whether the plugin is a probe (exports `kplug_probe_*`, ABI 1.5).
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// The events a probe chose while loading (`probe_filter`): a mask of `1 << kind`, and
    /// the uid of the FUSE events it wants (`None`: any).
    pub fn probe_filter(&self) -> (u32, Option<u32>) {
        let p = &self.rt.store.data().probe;
        (p.kinds, p.uid)
    }

    /// Forget the figures this probe published (it leaves service).
    pub fn forget_published(&self) {
        let d = self.rt.store.data();
        d.figures.forget_probe(&d.name);
    }

    /// The path of the file of inode `ino`, for the probe's `probe_path`.
    pub fn note_probe_path(&mut self, ino: u64, path: &Arc<str>) {
        let paths = &mut self.rt.store.data_mut().probe.paths;
        if paths.get(&ino).is_some_and(|p| Arc::ptr_eq(p, path)) {
            return;
        }
        if paths.len() >= crate::state::MAX_PROBE_PATHS {
            paths.clear();
        }
        paths.insert(ino, path.clone());
    }

    /// `kplug_probe_events(n)` with `events` (`n` encoded events, at most
    /// [`abi::probe::PROBE_BATCH_EVENTS`]) copied into the probe's buffer; a non-zero answer
    /// is a fault. Panics if the plugin is not a probe.
    pub fn probe_events(&mut self, events: &[u8]) -> Result<(), HookFault> {
        let p = self.probe.as_ref().expect("probe");
        let n = events.len() / abi::probe::PROBE_EVENT_BYTES;
        assert!(
            n <= abi::probe::PROBE_BATCH_EVENTS
                && events.len().is_multiple_of(abi::probe::PROBE_EVENT_BYTES)
        );
        // In bounds: checked at load, and memory never shrinks.
        self.memory.data_mut(&mut self.rt.store)[p.buf..p.buf + events.len()]
            .copy_from_slice(events);
        let resident = self.rt.store.data().resident;
        match self
            .rt
            .call(exp::PROBE_EVENTS.name, &p.events, n as i32, resident)?
        {
            0 => Ok(()),
            code => Err(HookFault {
                hook: exp::PROBE_EVENTS.name,
                fault: Fault::InvalidAnswer(format!("kplug_probe_events returned {code}, not 0")),
            }),
        }
    }

    /// `kplug_probe_report()`: the report's bytes, checked to lie in the probe's memory and
    /// to be at most [`abi::probe::MAX_PROBE_REPORT_BYTES`] long.
    pub fn probe_report(&mut self) -> Result<Vec<u8>, HookFault> {
        let p = self.probe.as_ref().expect("probe");
        let resident = self.rt.store.data().resident;
        let word = self
            .rt
            .call(exp::PROBE_REPORT.name, &p.report, (), resident)?;
        let (ptr, len) = abi::probe::unpack_report(word);
        let (ptr, len) = (ptr as usize, len as usize);
        let invalid = |why: String| HookFault {
            hook: exp::PROBE_REPORT.name,
            fault: Fault::InvalidAnswer(why),
        };
        if len > abi::probe::MAX_PROBE_REPORT_BYTES {
            return Err(invalid(format!(
                "a report of {len} bytes (at most {} allowed)",
                abi::probe::MAX_PROBE_REPORT_BYTES
            )));
        }
        let mem = self.memory.data(&self.rt.store);
        match mem.get(ptr..ptr + len) {
            Some(b) => Ok(b.to_vec()),
            None => Err(invalid(format!(
                "report {ptr:#x}+{len} is outside the plugin's memory ({} bytes)",
                mem.len()
            ))),
        }
    }

    /// Charge this plugin's slow calls to `owner`'s budget (a governor's candidates share
    /// their governor's: the budget is per plugin file).
    pub fn share_budget(&mut self, owner: &Plugin) {
        self.rt.budget = owner.rt.budget.clone();
    }

    /// Give the plugin the figures of the cache it is installed in, and have the cache
    /// compute the figures it imports that are computed only on demand (`sequentiality`,
    /// the file facts).
    pub fn attach_figures(&mut self, figures: Arc<Figures>) {
        if self.wants_sequentiality {
            figures.set_track_sequentiality(true);
        }
        if self.wants_files {
            figures.set_track_files(true);
        }
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
    pub fn evict_insert(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").insert;
        self.rt
            .call(exp::EVICT_INSERT.name, f, key as i64, resident)
    }

    /// `kplug_evict_access(key)`.
    #[inline]
    pub fn evict_access(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").access;
        self.rt
            .call(exp::EVICT_ACCESS.name, f, key as i64, resident)
    }

    /// `kplug_evict_remove(key)`.
    #[inline]
    pub fn evict_remove(&mut self, key: u64, resident: u64) -> Result<(), HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").remove;
        self.rt
            .call(exp::EVICT_REMOVE.name, f, key as i64, resident)
    }

    /// `kplug_evict_victim()`, unvalidated.
    #[inline]
    pub fn evict_victim(&mut self, resident: u64) -> Result<u64, HookFault> {
        let f = &self.eviction.as_ref().expect("eviction role").victim;
        self.rt
            .call(exp::EVICT_VICTIM.name, f, (), resident)
            .map(|k| k as u64)
    }

    /// `kplug_admit(key, file, block)`, raw answer.
    #[inline]
    pub fn admit(
        &mut self,
        key: u64,
        file: u64,
        block: u64,
        resident: u64,
    ) -> Result<i32, HookFault> {
        let f = self.admission.as_ref().expect("admission role");
        let args = (key as i64, file as i64, block as i64);
        self.rt.call(exp::ADMIT.name, f, args, resident)
    }

    /// `kplug_prefetch(...)`: returns the raw count and the output array
    /// (the first `min(n, 64)` ranges as little-endian byte pairs).
    pub fn prefetch(
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
            .call(exp::PREFETCH.name, &p.prefetch, args, resident)?;
        let len = n.clamp(0, abi::MAX_PREFETCH_RANGES as i32) as usize * abi::PREFETCH_RANGE_BYTES;
        // In bounds: checked at load, and memory never shrinks.
        let bytes = &self.memory.data(&self.rt.store)[p.buf..p.buf + len];
        Ok((n, bytes))
    }

    /// The plugin now serves its roles: its next hook call is its first decision (the
    /// replay of resident blocks before it does not count).
    pub fn mark_installed(&mut self) {
        self.rt.first_decision_call = self.rt.calls + 1;
    }

    /// Record `fault` in the plugin's status (state `failed`): the caller drops it.
    pub fn mark_failed(&self, fault: &HookFault) {
        self.rt.status.set_failed(fault.to_string());
    }

    /// Record that the plugin was taken out of service for `reason` (state `disabled`).
    pub fn mark_disabled(&self, reason: &str) {
        self.rt.status.set_disabled(reason);
    }
}
