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
use crate::engine::{CompiledPlugin, EvictionAbi, PluginEngine};
use crate::error::{Fault, LoadError};
use crate::figures::Figures;
use crate::keybuf::{HitMarks, KeyBuf};
use crate::state::{HostState, on_deadline, thread_cpu_ns};
use crate::status::{PluginStatus, StatusHandle};
use crate::text::one_line;

/// The events a probe takes, as it chose them while loading (ABI 1.5, the subtree 1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFilter {
    /// Mask of `1 << kind`.
    pub kinds: u32,
    /// Only FUSE requests of this caller (`None`: any).
    pub uid: Option<u32>,
    /// Only events on files and directories under this directory of the mount (no `/` at
    /// either end; `None`: the whole mount).
    pub subtree: Option<Arc<str>>,
}

/// A fault together with the export that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The eviction hooks: the per-event set of ABI 1.0, or a batched set (1.4 by key, 1.8 by
/// handle). One per plugin, and the batched set is read on every request: not boxed, which
/// would put a pointer between every call and its state.
#[allow(clippy::large_enum_variant)]
enum EvictionFns {
    PerEvent {
        insert: TypedFunc<i64, ()>,
        access: TypedFunc<i64, ()>,
        remove: TypedFunc<i64, ()>,
        victim: TypedFunc<(), i64>,
    },
    Batched(BatchedEviction),
}

/// ABI 1.4's and 1.8's eviction: hits (1.4: keys; 1.8: handles) wait in `pending` (host
/// memory) until `hit_batch` of them (1.13: while only hits on handles the plugin marked
/// wait, the key buffer less the coming requests' room), a miss or a removal; they are then
/// copied into the plugin's key buffer and delivered in one call (1.8: the miss's own).
/// Victims come back through the same buffer into `victims`, where the caller takes them.
struct BatchedEviction {
    calls: BatchedCalls,
    hits: TypedFunc<i32, i32>,
    /// The key buffer ([`abi::EVICT_BUF_KEYS`] keys), checked at load.
    keys: KeyBuf,
    hit_batch: usize,
    /// `kplug_evict_seed(n)` (1.9, optional): the load's replay in batches.
    seed: Option<TypedFunc<i32, i64>>,
    /// The most keys the next seed call is offered: [`abi::EVICT_SEED_KEYS`], halved after
    /// each call that used more than [`SEED_CALL_CPU_NS`] of CPU.
    seed_batch: usize,
    pending: Vec<u64>,
    victims: Vec<u64>,
    /// The hook that returned the last victims (for a fault's message).
    victims_from: &'static str,
    /// The most victims the plugin names ahead (1.10, `kplug_evict_ahead`; 0: none, and
    /// always 0 for the set by key).
    ahead_max: usize,
    /// The blocks the last miss answer named ahead, next first from `ahead_at` (see
    /// [`Plugin::next_ahead`]).
    ahead: Vec<u64>,
    ahead_at: usize,
    /// The most likely victims the plugin names (1.11, `kplug_evict_hints`; 0: none, and
    /// always 0 for the set by key).
    hints_max: usize,
    /// The likely victims the last miss answer named (see [`Plugin::hints`]).
    hints: Vec<u64>,
    /// The most keys of coming requests a miss call carries (1.12, `kplug_evict_lookahead`;
    /// 0: none, and always 0 for the set by key).
    lookahead_max: usize,
    /// The keys of coming requests told since the last miss call, oldest first, the newest
    /// `lookahead_max` of them (see [`Plugin::tell_coming`]).
    coming: Vec<u64>,
    /// Where the last miss answer said the plugin will read for them (see
    /// [`Plugin::coming_reads`]).
    reads: Vec<u64>,
    /// The plugin's hit marks (1.13, `kplug_evict_hit_marks`; `None`: none, and always
    /// `None` for the set by key or beside blocks named ahead).
    marks: Option<HitMarks>,
    /// Whether a hit on an unmarked handle waits in `pending` (always, after a hit, for a
    /// plugin without marks): the batch is then `hit_batch` whatever the next hits' marks,
    /// which that hit, promising nothing, may have made stale.
    unmarked_waiting: bool,
}

impl BatchedEviction {
    /// Whether the entries waiting leave room for a miss taken without a call: its two
    /// entries, still below the hit batch (a full batch is delivered when a hit fills it,
    /// `Plugin::evict_access`, so the entries waiting never exceed it).
    #[inline]
    fn ahead_room(&self) -> bool {
        self.pending.len() + 2 < self.hit_batch
    }

    /// Forgets the blocks named ahead.
    #[inline]
    fn drop_ahead(&mut self) {
        self.ahead.clear();
        self.ahead_at = 0;
    }
}

/// The calls that differ between the two batched sets.
enum BatchedCalls {
    /// 1.4: `kplug_evict_miss(key, need)`, `kplug_evict_remove(key)`.
    Keys {
        miss: TypedFunc<(i64, i32), i32>,
        remove: TypedFunc<i64, ()>,
    },
    /// 1.8: `kplug_evict_handle_miss(hits, key, need)`, `kplug_evict_handle_remove(key,
    /// handle)`.
    Handles {
        miss: TypedFunc<(i32, i64, i32), i64>,
        remove: TypedFunc<(i64, i32), ()>,
    },
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

/// CPU a seed call (ABI 1.9) may use before the next is offered half the keys: a seed call
/// runs under a hook's deadline (2 ms in a mount) and budget, which one call a block of a
/// slow but honest policy would meet; an honest batch of 128 takes a few microseconds.
const SEED_CALL_CPU_NS: u64 = 250_000;

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
pub(crate) fn arm(store: &mut Store<HostState>) {
    store.data_mut().arm();
    store.set_epoch_deadline(1);
}

/// A wasmtime error while looking up or instantiating, as a one-line load error.
pub(crate) fn inst_err(e: wasmtime::Error) -> LoadError {
    LoadError::Instantiate(one_line(&format!("{e:#}")))
}

/// Calls the load-time export `f() -> i32` (a buffer's address, a flag) under the init deadline.
pub(crate) fn ask_i32(
    instance: &wasmtime::Instance,
    store: &mut Store<HostState>,
    f: &'static abi::Func,
) -> Result<i32, LoadError> {
    let func = instance
        .get_typed_func::<(), i32>(&mut *store, f.name)
        .map_err(inst_err)?;
    arm(store);
    let r = func.call(&mut *store, ());
    r.map_err(|e| LoadError::Fault {
        hook: f.name,
        fault: classify(store, e),
    })
}

/// Asks optional export `f` for a count of `what`, `0..=max` (another answer fails the load);
/// 0 if the plugin does not export it.
fn ask_count(
    instance: &wasmtime::Instance,
    store: &mut Store<HostState>,
    f: &'static abi::Func,
    max: usize,
    what: &str,
) -> Result<usize, LoadError> {
    if instance.get_export(&mut *store, f.name).is_none() {
        return Ok(0);
    }
    let n = ask_i32(instance, store, f)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| LoadError::Fault {
            hook: f.name,
            fault: Fault::InvalidAnswer(format!("{n} {what}, outside 0..={max}")),
        })
}

/// Asks export `f` for the address of a buffer of `bytes` through which the host and the
/// plugin talk, and checks that it lies inside memory (memory never shrinks, so it stays
/// there for the instance's life); `what` names the buffer in the error.
pub(crate) fn ask_buffer(
    instance: &wasmtime::Instance,
    store: &mut Store<HostState>,
    memory: &Memory,
    f: &'static abi::Func,
    bytes: usize,
    what: &str,
) -> Result<usize, LoadError> {
    let at = ask_i32(instance, store, f)? as u32 as usize;
    if at
        .checked_add(bytes)
        .is_none_or(|end| end > memory.data_size(&*store))
    {
        return Err(LoadError::Fault {
            hook: f.name,
            fault: Fault::InvalidAnswer(format!(
                "{what} {at:#x}+{bytes} is outside the plugin's memory"
            )),
        });
    }
    Ok(at)
}

/// Looks up the batched eviction hooks (ABI 1.4 or, with `handles`, 1.8) and asks for the key
/// buffer and the hit batch: the buffer must lie inside memory (memory never shrinks, so it
/// stays there) and the batch be 1..=[`abi::EVICT_BUF_KEYS`].
fn load_batched_eviction(
    instance: &wasmtime::Instance,
    store: &mut Store<HostState>,
    memory: &Memory,
    handles: bool,
) -> Result<EvictionFns, LoadError> {
    let bytes = abi::EVICT_BUF_KEYS * 8;
    let buf = ask_buffer(
        instance,
        store,
        memory,
        &exp::EVICT_BUF,
        bytes,
        "key buffer",
    )?;
    let keys = KeyBuf::new(memory, &*store, buf, bytes).expect("checked by ask_buffer");
    let hit_batch = ask_i32(instance, store, &exp::EVICT_HIT_BATCH)?;
    if !(1..=abi::EVICT_BUF_KEYS as i32).contains(&hit_batch) {
        return Err(LoadError::Fault {
            hook: exp::EVICT_HIT_BATCH.name,
            fault: Fault::InvalidAnswer(format!(
                "hit batch {hit_batch} is outside 1..={}",
                abi::EVICT_BUF_KEYS
            )),
        });
    }
    // Victims named ahead (1.10): only by handle, where a miss taken without a call can
    // give the missed block its victim's handle. Likely victims (1.11): advice, beside it.
    let (ahead_max, hints_max, lookahead_max) = if handles {
        let ahead = ask_count(
            instance,
            store,
            &exp::EVICT_AHEAD,
            abi::EVICT_AHEAD_KEYS,
            "victims ahead",
        )?;
        let hints = ask_count(
            instance,
            store,
            &exp::EVICT_HINTS,
            abi::EVICT_HINT_KEYS,
            "likely victims",
        )?;
        // The coming requests (1.12): advice too, carried by the miss call by handle.
        let lookahead = ask_count(
            instance,
            store,
            &exp::EVICT_LOOKAHEAD,
            abi::EVICT_LOOKAHEAD_KEYS,
            "coming requests",
        )?;
        (ahead, hints, lookahead)
    } else {
        (0, 0, 0)
    };
    // The hit marks (1.13): by handle only, and not beside blocks named ahead, whose misses
    // taken without a call hand handles to other blocks between calls. A header outside
    // memory is as none: marks only let hits wait, and none waiting is always right.
    let marks = match instance.get_export(&mut *store, exp::EVICT_HIT_MARKS.name) {
        Some(_) if handles && ahead_max == 0 => {
            let at = ask_i32(instance, store, &exp::EVICT_HIT_MARKS)? as u32 as usize;
            HitMarks::new(memory, &*store, at)
        }
        _ => None,
    };
    let (calls, hits) = if handles {
        let calls = BatchedCalls::Handles {
            miss: instance
                .get_typed_func(&mut *store, exp::EVICT_HANDLE_MISS.name)
                .map_err(inst_err)?,
            remove: instance
                .get_typed_func(&mut *store, exp::EVICT_HANDLE_REMOVE.name)
                .map_err(inst_err)?,
        };
        (calls, exp::EVICT_HANDLE_HITS.name)
    } else {
        let calls = BatchedCalls::Keys {
            miss: instance
                .get_typed_func(&mut *store, exp::EVICT_MISS.name)
                .map_err(inst_err)?,
            remove: instance
                .get_typed_func(&mut *store, exp::EVICT_REMOVE.name)
                .map_err(inst_err)?,
        };
        (calls, exp::EVICT_HITS.name)
    };
    Ok(EvictionFns::Batched(BatchedEviction {
        calls,
        hits: instance
            .get_typed_func(&mut *store, hits)
            .map_err(inst_err)?,
        keys,
        // Room after the hits for the coming requests' keys (1.12).
        hit_batch: (hit_batch as usize).min(abi::EVICT_BUF_KEYS - lookahead_max),
        seed: match instance.get_export(&mut *store, exp::EVICT_SEED.name) {
            Some(_) => Some(
                instance
                    .get_typed_func(&mut *store, exp::EVICT_SEED.name)
                    .map_err(inst_err)?,
            ),
            None => None,
        },
        seed_batch: abi::EVICT_SEED_KEYS,
        pending: Vec::with_capacity(abi::EVICT_BUF_KEYS),
        victims: Vec::new(),
        victims_from: exp::EVICT_MISS.name,
        ahead_max,
        ahead: Vec::with_capacity(ahead_max),
        ahead_at: 0,
        hints_max,
        hints: Vec::with_capacity(hints_max),
        lookahead_max,
        coming: Vec::with_capacity(lookahead_max),
        reads: Vec::with_capacity(lookahead_max),
        marks,
        unmarked_waiting: false,
    }))
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

pub(crate) fn classify(store: &Store<HostState>, e: wasmtime::Error) -> Fault {
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
    /// The load sequence every kind of instance shares: instantiate (start function under the
    /// init deadline), check the version word, pass the parameters, `kplug_init(capacity)`.
    pub(crate) fn boot(
        &self,
        params: &[(&str, &str)],
        capacity: u64,
    ) -> Result<(Store<HostState>, wasmtime::Instance, Memory), LoadError> {
        let c = &self.inner;
        let cfg = c.engine.config().clone();
        let name: Arc<str> = Arc::from(c.name.as_str());
        let mut store = Store::new(
            self.wasmtime(),
            HostState::new(name, capacity, cfg.memory_cap(capacity)),
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

        Ok((store, instance, memory))
    }

    /// Instantiates the plugin for a cache of `capacity` blocks, passing the
    /// `key=value` parameters before `kplug_init`.
    pub fn instantiate(&self, params: &[(&str, &str)], capacity: u64) -> Result<Plugin, LoadError> {
        let (mut store, instance, memory) = self.boot(params, capacity)?;
        let c = &self.inner;
        let cfg = c.engine.config().clone();
        let roles = c.roles;
        let eviction = match (roles.contains(Role::Eviction), c.eviction_abi) {
            (false, _) => None,
            (true, EvictionAbi::PerEvent) => Some(EvictionFns::PerEvent {
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
            }),
            (true, abi) => Some(load_batched_eviction(
                &instance,
                &mut store,
                &memory,
                abi == EvictionAbi::Handles,
            )?),
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
            let need = abi::MAX_PREFETCH_RANGES * abi::PREFETCH_RANGE_BYTES;
            let buf = ask_buffer(
                &instance,
                &mut store,
                &memory,
                &exp::PREFETCH_BUF,
                need,
                "output array",
            )?;
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
            let need = abi::probe::PROBE_BATCH_EVENTS * abi::probe::PROBE_EVENT_BYTES;
            let buf = ask_buffer(
                &instance,
                &mut store,
                &memory,
                &exp::PROBE_BUF,
                need,
                "event buffer",
            )?;
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

    /// The events a probe chose while loading (`probe_filter`, `probe_subtree`).
    pub fn probe_filter(&self) -> ProbeFilter {
        let p = &self.rt.store.data().probe;
        ProbeFilter {
            kinds: p.kinds,
            uid: p.uid,
            subtree: p.subtree.clone(),
        }
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

    /// Whether the plugin serves eviction through a batched set of hooks (ABI 1.4 or 1.8): the
    /// core then calls [`evict_miss`](Self::evict_miss) instead of `victim` + `insert`, and
    /// takes the victims of every eviction call with [`take_victims`](Self::take_victims).
    pub fn evicts_batched(&self) -> bool {
        matches!(self.eviction, Some(EvictionFns::Batched(_)))
    }

    /// Whether the plugin serves eviction by handle (ABI 1.8): the core keeps the handle that
    /// [`evict_miss`](Self::evict_miss) or [`evict_insert`](Self::evict_insert) returned for
    /// each block and passes it back with the block's hits and removal; and the hits waiting
    /// ride with the next miss, so the core need not deliver them first.
    pub fn evicts_by_handle(&self) -> bool {
        matches!(
            &self.eviction,
            Some(EvictionFns::Batched(BatchedEviction {
                calls: BatchedCalls::Handles { .. },
                ..
            }))
        )
    }

    /// Block `key` became resident (the host made room first). 1.0: `kplug_evict_insert`;
    /// 1.4 and 1.8: a miss with no room to make, whose victims (legal, if unusual, with room
    /// left) wait in [`take_victims`](Self::take_victims). Returns the block's handle (1.8
    /// only). Panics if the plugin has no eviction role (the core only routes roles a plugin
    /// implements).
    #[inline]
    pub fn evict_insert(&mut self, key: u64, resident: u64) -> Result<Option<u32>, HookFault> {
        match self.eviction.as_mut().expect("eviction role") {
            EvictionFns::PerEvent { insert, .. } => self
                .rt
                .call(exp::EVICT_INSERT.name, insert, key as i64, resident)
                .map(|()| None),
            EvictionFns::Batched(_) => self.evict_miss(key, 0, resident),
        }
    }

    /// A hit on resident `key`, whose handle is `handle` (1.8; ignored otherwise). 1.0:
    /// `kplug_evict_access`; 1.4 and 1.8: queued, delivered once the plugin's hit batch is
    /// full (1.13: a hit on a handle the plugin marked fills only the key buffer's room; its
    /// victims then wait in [`take_victims`](Self::take_victims)) or with the next miss or
    /// removal. Whether the plugin was called: only a call can name victims, so a caller
    /// that takes them after every call need not look after a hit that only queued.
    #[inline]
    pub fn evict_access(
        &mut self,
        key: u64,
        handle: u32,
        resident: u64,
    ) -> Result<bool, HookFault> {
        match self.eviction.as_mut().expect("eviction role") {
            EvictionFns::PerEvent { access, .. } => self
                .rt
                .call(exp::EVICT_ACCESS.name, access, key as i64, resident)
                .map(|()| true),
            EvictionFns::Batched(b) => {
                b.pending.push(match b.calls {
                    BatchedCalls::Keys { .. } => key,
                    BatchedCalls::Handles { .. } => handle as u64,
                });
                // 1.13: hits on marked handles wait whatever the hit batch, until one on an
                // unmarked handle joins them. A plugin without marks: the hit batch (its
                // own branch, a few instructions off every hit).
                let batch = match b.marks.as_mut() {
                    None => b.hit_batch,
                    Some(m) => {
                        b.unmarked_waiting |= !m.marked(&self.rt.store, handle);
                        if b.unmarked_waiting {
                            b.hit_batch
                        } else {
                            abi::EVICT_BUF_KEYS - b.lookahead_max
                        }
                    }
                };
                if b.pending.len() >= batch {
                    self.flush_hits(resident)?;
                    return Ok(true);
                }
                Ok(false)
            }
        }
    }

    /// The host dropped resident `key` (handle `handle`, 1.8): `kplug_evict_remove(key)` or
    /// `kplug_evict_handle_remove(key, handle)`, after delivering the hits waiting.
    #[inline]
    pub fn evict_remove(&mut self, key: u64, handle: u32, resident: u64) -> Result<(), HookFault> {
        self.flush_hits(resident)?;
        match self.eviction.as_ref().expect("eviction role") {
            EvictionFns::PerEvent { remove, .. }
            | EvictionFns::Batched(BatchedEviction {
                calls: BatchedCalls::Keys { remove, .. },
                ..
            }) => self
                .rt
                .call(exp::EVICT_REMOVE.name, remove, key as i64, resident),
            EvictionFns::Batched(BatchedEviction {
                calls: BatchedCalls::Handles { remove, .. },
                ..
            }) => self.rt.call(
                exp::EVICT_HANDLE_REMOVE.name,
                remove,
                (key as i64, handle as i32),
                resident,
            ),
        }
    }

    /// `kplug_evict_victim()`, unvalidated (1.0 plugins only: the core asks a 1.4 plugin
    /// with [`evict_miss`](Self::evict_miss)).
    #[inline]
    pub fn evict_victim(&mut self, resident: u64) -> Result<u64, HookFault> {
        let Some(EvictionFns::PerEvent { victim, .. }) = self.eviction.as_ref() else {
            // A host bug, not the plugin's: the core asks a 1.4 plugin with `evict_miss`. A
            // fault (the built-in takes over) rather than a panic in the mount.
            return Err(HookFault {
                hook: exp::EVICT_VICTIM.name,
                fault: Fault::InvalidAnswer("the host asked a batched plugin for a victim".into()),
            });
        };
        self.rt
            .call(exp::EVICT_VICTIM.name, victim, (), resident)
            .map(|k| k as u64)
    }

    /// 1.4 and 1.8: block `key` is about to become resident and the cache must first lose
    /// `need` blocks. 1.4: the hits waiting are delivered (a caller flushes them first with
    /// [`flush_hits`](Self::flush_hits) and evicts their victims, so that `need` counts the
    /// room they made), then `kplug_evict_miss(key, need)`. 1.8: one
    /// `kplug_evict_handle_miss(hits, key, need)` carries the hits waiting, whose victims
    /// count towards `need`; it returns the handle of `key`. The victims, checked here for
    /// count (`need..=256`) and left for the caller to check against the cache, wait in
    /// [`take_victims`](Self::take_victims).
    pub fn evict_miss(
        &mut self,
        key: u64,
        need: u32,
        resident: u64,
    ) -> Result<Option<u32>, HookFault> {
        let handles = self.evicts_by_handle();
        if !handles {
            self.flush_hits(resident)?;
        }
        let Some(EvictionFns::Batched(b)) = self.eviction.as_mut() else {
            return Err(HookFault {
                hook: exp::EVICT_MISS.name,
                fault: Fault::InvalidAnswer("the host asked a 1.0 plugin for a miss".into()),
            });
        };
        let need_arg = need.min(i32::MAX as u32) as i32;
        // Each miss answer replaces the blocks named before (1.10).
        b.drop_ahead();
        let (hook, n, handle) = match &b.calls {
            BatchedCalls::Keys { miss, .. } => {
                let n =
                    self.rt
                        .call(exp::EVICT_MISS.name, miss, (key as i64, need_arg), resident)?;
                (exp::EVICT_MISS.name, n as i64, None)
            }
            BatchedCalls::Handles { miss, .. } => {
                let hits = b.pending.len();
                if hits > 0 {
                    b.keys.write(&mut self.rt.store, &b.pending);
                    b.pending.clear();
                    b.unmarked_waiting = false;
                }
                // 1.12: the keys of coming requests in the buffer's last entries, their count
                // in bits 16-23 (the hit batch leaves them room).
                let coming = b.coming.len();
                if coming > 0 {
                    b.keys
                        .write_at(&mut self.rt.store, abi::EVICT_BUF_KEYS - coming, &b.coming);
                    b.coming.clear();
                }
                // What the last answer named is gone whatever this call answers.
                b.hints.clear();
                b.reads.clear();
                let r = self.rt.call(
                    exp::EVICT_HANDLE_MISS.name,
                    miss,
                    ((coming << 16 | hits) as i32, key as i64, need_arg),
                    resident,
                )? as u64;
                let n = if b.ahead_max > 0 || b.hints_max > 0 || b.lookahead_max > 0 {
                    // 1.10: `(handle << 32) | (ahead << 16) | n`; 1.11 with likely victims
                    // (and 1.12 with the coming requests):
                    // `(handle << 32) | (hints << 24) | (ahead << 16) | n`.
                    let (n, ahead, hints) = if b.hints_max > 0 || b.lookahead_max > 0 {
                        let byte = |at: u32| (r >> at & 0xff) as usize;
                        ((r & 0xffff) as usize, byte(16), byte(24))
                    } else {
                        ((r & 0xffff) as usize, (r >> 16 & 0xffff) as usize, 0)
                    };
                    if ahead > b.ahead_max
                        || hints > b.hints_max
                        || n + ahead + hints > abi::EVICT_BUF_KEYS
                    {
                        let (most, all) = (b.ahead_max, abi::EVICT_BUF_KEYS);
                        // Worded as the answer was read (1.11's layout beside likely
                        // victims or the coming requests).
                        let what = if b.hints_max == 0 && b.lookahead_max == 0 {
                            format!(
                                "{ahead} victims ahead after {n}, expected at most {most} and \
                                 {all} in all"
                            )
                        } else {
                            format!(
                                "{ahead} victims ahead and {hints} likely after {n}, expected \
                                 at most {most}, {} and {all} in all",
                                b.hints_max
                            )
                        };
                        return Err(HookFault {
                            hook: exp::EVICT_HANDLE_MISS.name,
                            fault: Fault::InvalidAnswer(what),
                        });
                    }
                    if hints > 0 {
                        b.keys
                            .read_from(&self.rt.store, n + ahead, hints, &mut b.hints);
                    }
                    // 1.12: where the plugin will read for each coming request, in place of
                    // its key (unless its answer wrote over them): read into the caches.
                    if coming > 0 && n + ahead + hints <= abi::EVICT_BUF_KEYS - coming {
                        let at = abi::EVICT_BUF_KEYS - coming;
                        b.keys.read_from(&self.rt.store, at, coming, &mut b.reads);
                        b.keys.prefetch_guest(&self.rt.store, &b.reads);
                    }
                    // Only a miss that made room names ahead: the core times the names
                    // from that answer (`CacheCore::batched_miss`). With a smaller hit batch
                    // no miss fits among the hits: none is kept.
                    if need > 0 && ahead > 0 && b.hit_batch >= abi::EVICT_AHEAD_MIN_HIT_BATCH {
                        b.keys.read_from(&self.rt.store, n, ahead, &mut b.ahead);
                    }
                    n as i64
                } else {
                    (r & 0xffff_ffff) as i64
                };
                (exp::EVICT_HANDLE_MISS.name, n, Some((r >> 32) as u32))
            }
        };
        let range = need as usize..=abi::EVICT_BUF_KEYS;
        match usize::try_from(n).ok().filter(|n| range.contains(n)) {
            Some(n) => {
                b.keys.read(&self.rt.store, n, &mut b.victims);
                b.victims_from = hook;
                Ok(handle)
            }
            None => Err(HookFault {
                hook,
                fault: Fault::InvalidAnswer(format!(
                    "{n} victims, expected {need}..={}",
                    abi::EVICT_BUF_KEYS
                )),
            }),
        }
    }

    /// Whether the plugin asked for the keys of requests to come (1.12, a nonzero
    /// `kplug_evict_lookahead`): [`tell_coming`](Self::tell_coming) does nothing otherwise.
    #[inline]
    pub fn wants_coming(&self) -> bool {
        matches!(&self.eviction, Some(EvictionFns::Batched(b)) if b.lookahead_max > 0)
    }

    /// Tells the key of a request to come (1.12, `kplug_evict_lookahead`), for a caller that
    /// knows them (the simulator): the next miss call carries the newest ones told since the
    /// last, up to the plugin's count. Nothing for a plugin that did not ask.
    #[inline]
    pub fn tell_coming(&mut self, key: u64) {
        if let Some(EvictionFns::Batched(b)) = &mut self.eviction
            && b.lookahead_max > 0
        {
            if b.coming.len() == b.lookahead_max {
                b.coming.remove(0);
            }
            b.coming.push(key);
        }
    }

    /// Where the plugin said, in its last miss answer, it will read for the coming requests
    /// that call carried (1.12, `kplug_evict_lookahead`): offsets in its memory, one per key
    /// told, oldest first (`u64::MAX`: none), which the host has asked the CPU to read; empty
    /// if none were carried, or the answer wrote over them.
    #[inline]
    pub fn coming_reads(&self) -> &[u64] {
        match &self.eviction {
            Some(EvictionFns::Batched(b)) => &b.reads,
            _ => &[],
        }
    }

    /// The likely victims the plugin named in its last miss answer (1.11,
    /// `kplug_evict_hints`): advice, whose entries the caller may read into the CPU's
    /// caches before the next miss; empty if none.
    #[inline]
    pub fn hints(&self) -> &[u64] {
        match &self.eviction {
            Some(EvictionFns::Batched(b)) => &b.hints,
            _ => &[],
        }
    }

    /// The next block the plugin named ahead (1.10, `kplug_evict_ahead`) and not yet taken,
    /// if any: the victim the plugin promised for the next miss needing one block of room,
    /// provided the block is resident and has had no hit since the miss answer that named it
    /// (which the caller checks: it keeps the blocks' last access).
    #[inline]
    pub fn next_ahead(&self) -> Option<u64> {
        match &self.eviction {
            Some(EvictionFns::Batched(b)) => b.ahead.get(b.ahead_at).copied(),
            _ => None,
        }
    }

    /// Whether the hits waiting leave room for a miss taken without a call (two entries, and
    /// still below the hit batch; see [`take_ahead`](Self::take_ahead)): if not, the caller
    /// delivers them first with [`flush_hits`](Self::flush_hits), which keeps the blocks
    /// named.
    #[inline]
    pub fn ahead_room(&self) -> bool {
        match &self.eviction {
            Some(EvictionFns::Batched(b)) => b.ahead_room(),
            _ => false,
        }
    }

    /// Takes the miss of `key` without a call, evicting [`next_ahead`](Self::next_ahead)
    /// (whose handle is `handle`, which `key` takes): the plugin learns it with the next
    /// call's hits ([`abi::EVICT_MISS_EVENT`]). False, and nothing done, if the hits waiting
    /// leave no room for it ([`ahead_room`](Self::ahead_room)) or nothing is named: the
    /// caller then calls [`evict_miss`](Self::evict_miss).
    #[inline]
    pub fn take_ahead(&mut self, key: u64, handle: u32) -> bool {
        let Some(EvictionFns::Batched(b)) = self.eviction.as_mut() else {
            return false;
        };
        if b.ahead_at >= b.ahead.len() || !b.ahead_room() {
            return false;
        }
        b.ahead_at += 1;
        b.pending.push(abi::EVICT_MISS_EVENT | handle as u64);
        b.pending.push(key);
        true
    }

    /// Whether hits wait to be delivered to a batched eviction plugin
    /// ([`flush_hits`](Self::flush_hits)).
    #[inline]
    pub fn hits_waiting(&self) -> bool {
        matches!(&self.eviction, Some(EvictionFns::Batched(b)) if !b.pending.is_empty())
    }

    /// Whether the plugin takes the load's replay in batches, [`evict_seed`](Self::evict_seed)
    /// (1.9).
    pub fn seeds_in_batches(&self) -> bool {
        matches!(&self.eviction, Some(EvictionFns::Batched(b)) if b.seed.is_some())
    }

    /// 1.9: tells the plugin the first of `keys` (blocks resident before it was loaded, least
    /// recently used first; `told` of them told before) with one `kplug_evict_seed` call: it
    /// is offered at most [`abi::EVICT_SEED_KEYS`] (fewer after a call that ran long:
    /// [`SEED_CALL_CPU_NS`]) and takes the first `taken` of them, whose handles
    /// (1.8; 0 for a plugin by key) are appended to `handles`. Returns `taken`. The victims it
    /// chose while taking them, checked here for count, wait in
    /// [`take_victims`](Self::take_victims). Only for a plugin that
    /// [`seeds_in_batches`](Self::seeds_in_batches), with no hit waiting (a fresh instance).
    pub fn evict_seed(
        &mut self,
        keys: &[u64],
        told: u64,
        handles: &mut Vec<u32>,
    ) -> Result<usize, HookFault> {
        let hook = exp::EVICT_SEED.name;
        let Some(EvictionFns::Batched(b)) = self.eviction.as_mut() else {
            return Err(HookFault {
                hook,
                fault: Fault::InvalidAnswer("the host asked a 1.0 plugin to seed".into()),
            });
        };
        let (Some(seed), true) = (&b.seed, b.pending.is_empty()) else {
            return Err(HookFault {
                hook,
                fault: Fault::InvalidAnswer("the host asked for a seed the plugin lacks".into()),
            });
        };
        let n = keys.len().min(b.seed_batch);
        b.keys.write(&mut self.rt.store, &keys[..n]);
        let cpu = thread_cpu_ns();
        let r = self.rt.call(hook, seed, n as i32, told + n as u64)? as u64;
        if thread_cpu_ns().saturating_sub(cpu) > SEED_CALL_CPU_NS {
            b.seed_batch = (b.seed_batch / 2).max(1);
        }
        let (taken, victims) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        if !(1..=n).contains(&taken) || victims > abi::EVICT_SEED_KEYS {
            return Err(HookFault {
                hook,
                fault: Fault::InvalidAnswer(format!(
                    "took {taken} of {n} keys with {victims} victims, expected 1..={n} and 0..={}",
                    abi::EVICT_SEED_KEYS
                )),
            });
        }
        match b.calls {
            BatchedCalls::Handles { .. } => {
                b.keys
                    .read_u32s(&self.rt.store, abi::EVICT_SEED_HANDLES_AT, taken, handles)
            }
            BatchedCalls::Keys { .. } => handles.extend(std::iter::repeat_n(0, taken)),
        }
        if victims > 0 {
            b.keys.read(&self.rt.store, victims, &mut b.victims);
            b.victims_from = hook;
        }
        Ok(taken)
    }

    /// 1.4 and 1.8: delivers the hits waiting, if any, with `kplug_evict_hits` (or
    /// `kplug_evict_handle_hits`); its victims wait in [`take_victims`](Self::take_victims).
    /// Nothing to do for a 1.0 plugin.
    pub fn flush_hits(&mut self, resident: u64) -> Result<(), HookFault> {
        let Some(EvictionFns::Batched(b)) = self.eviction.as_mut() else {
            return Ok(());
        };
        if b.pending.is_empty() {
            return Ok(());
        }
        let n = b.pending.len();
        b.keys.write(&mut self.rt.store, &b.pending);
        b.pending.clear();
        b.unmarked_waiting = false;
        let hook = match b.calls {
            BatchedCalls::Keys { .. } => exp::EVICT_HITS.name,
            BatchedCalls::Handles { .. } => exp::EVICT_HANDLE_HITS.name,
        };
        let m = self.rt.call(hook, &b.hits, n as i32, resident)?;
        match usize::try_from(m)
            .ok()
            .filter(|m| *m <= abi::EVICT_BUF_KEYS)
        {
            Some(m) => {
                if m > 0 {
                    b.keys.read(&self.rt.store, m, &mut b.victims);
                    b.victims_from = hook;
                }
                Ok(())
            }
            None => Err(HookFault {
                hook,
                fault: Fault::InvalidAnswer(format!(
                    "{m} victims, expected 0..={}",
                    abi::EVICT_BUF_KEYS
                )),
            }),
        }
    }

    /// Whether victims wait to be taken with [`take_victims`](Self::take_victims) (1.4 and 1.8;
    /// never for a 1.0 plugin): the check the core makes after each eviction call.
    #[inline]
    pub fn has_victims(&self) -> bool {
        matches!(&self.eviction, Some(EvictionFns::Batched(b)) if !b.victims.is_empty())
    }

    /// Moves the victims the plugin returned since the last call into `out` (1.4 and 1.8;
    /// always empty for a 1.0 plugin), and names the hook that returned the last of them. The
    /// caller checks each is resident and evicts it.
    #[inline]
    pub fn take_victims(&mut self, out: &mut Vec<u64>) -> &'static str {
        match self.eviction.as_mut() {
            Some(EvictionFns::Batched(b)) => {
                if out.is_empty() {
                    // The usual case (one victim a miss): the vectors trade places, no copy.
                    std::mem::swap(out, &mut b.victims);
                } else {
                    out.append(&mut b.victims);
                }
                b.victims_from
            }
            _ => exp::EVICT_VICTIM.name,
        }
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
    /// replay of resident blocks before it does not count). The blocks it named ahead, if
    /// any, are dropped: they were named in another cache's time (a governor's shadow),
    /// which the cache taking it over cannot check them against.
    pub fn mark_installed(&mut self) {
        self.rt.first_decision_call = self.rt.calls + 1;
        if let Some(EvictionFns::Batched(b)) = &mut self.eviction {
            b.drop_ahead();
        }
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
