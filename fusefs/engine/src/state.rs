//! The data of a plugin's store and the deadline policy of its calls.
//!
//! [`HostState`] is what the host imports see of the plugin they serve (capacity, resident
//! count, figures, a governor's candidate table) plus the store's limiter and the state of
//! the deadline of the call in progress. **Deadlines** use wasmtime's epoch interruption
//! (one ticker thread per engine, `engine.rs`): every call is armed to expire at the next
//! tick, so a call still running then is *slow* and the host notes its thread's CPU clock
//! (the *mark*). The epoch measures wall-clock time, and on a loaded machine a thread can be
//! descheduled for longer than a deadline in the middle of a 30 ns hook, so a call is
//! interrupted only once it has both seen `D` ticks and used `D - 1` ticks of CPU since the
//! mark ([`on_deadline`]): a runaway stops after `D` to `D + 1` ms on an idle machine, an
//! honest hook is never stopped for waiting on the scheduler. The CPU a slow call uses after
//! its mark is what `budget.rs` charges.

use std::sync::Arc;

use kplug_abi::{self as abi, Role};
use wasmtime::UpdateDeadline;

use crate::figures::Figures;
use crate::globs::Globs;
use crate::limiter::Limiter;

/// Data of a plugin's store, visible to the host imports.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    pub(crate) capacity: u64,
    pub(crate) resident: u64,
    pub(crate) name: Arc<str>,
    pub(crate) logs_left: u32,
    /// Deadline state of the current call (see [`on_deadline`]): the thread's CPU clock at
    /// the first tick the call saw, and how many ticks it has seen.
    pub(crate) cpu_mark: Option<u64>,
    pub(crate) ticks_seen: u64,
    /// The deadline `D` of calls, in ticks (at least 2).
    pub(crate) deadline_ticks: u64,
    /// Set when a call was interrupted for running past its budget.
    pub(crate) timed_out: bool,
    /// The figures of the cache the plugin is installed in (ABI 1.1 introspection).
    pub(crate) figures: Arc<Figures>,
    /// What a governor registered and may read or request (ABI 1.1).
    pub(crate) gov: GovState,
    /// The path patterns the plugin registered (ABI 1.3).
    pub(crate) globs: Globs,
    /// Records a transform counted in and out since the host last took them (ABI 1.6).
    pub(crate) records: (u64, u64),
    /// The reader of the current stream, for `transform_uid` (-1 unknown; ABI 1.6).
    pub(crate) caller_uid: i64,
    /// A probe's filter and the paths it may ask for (ABI 1.5).
    pub(crate) probe: ProbeState,
}

/// Files whose path a probe instance remembers for `probe_path`; beyond that the table is
/// cleared and refilled by the next events (a path comes with every cache event).
pub(crate) const MAX_PROBE_PATHS: usize = 1 << 16;

/// A probe's side of the host (ABI 1.5): the filter it chose while loading, and the paths of
/// the files its events named.
#[derive(Debug, Clone)]
pub(crate) struct ProbeState {
    /// Whether the instance is a probe (may `publish`).
    pub(crate) is_probe: bool,
    /// Mask of `1 << kind`.
    pub(crate) kinds: u32,
    /// Only FUSE events of this caller.
    pub(crate) uid: Option<u32>,
    /// Only events on files under this directory (ABI 1.7; normalized, no `/` at either end).
    pub(crate) subtree: Option<Arc<str>>,
    pub(crate) paths: crate::hash::FastMap<u64, Arc<str>>,
}

impl Default for ProbeState {
    fn default() -> Self {
        ProbeState {
            is_probe: false,
            kinds: abi::probe::ALL_KINDS,
            uid: None,
            subtree: None,
            paths: Default::default(),
        }
    }
}

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
pub(crate) fn thread_cpu_ns() -> u64 {
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

/// Epoch-deadline callback, run at every tick a call sees (each call is armed for the next
/// tick). The first notes the thread's CPU clock; the call is interrupted at the first tick at
/// which it has seen `deadline_ticks` ticks and used `deadline_ticks - 1` ticks of CPU since
/// that mark. A runaway plugin is stopped after about `deadline_ticks` ms when the machine is
/// idle, later when it is busy, and an honest plugin is never stopped for waiting on the
/// scheduler.
pub(crate) fn on_deadline(
    mut ctx: wasmtime::StoreContextMut<'_, HostState>,
) -> wasmtime::Result<UpdateDeadline> {
    let now = thread_cpu_ns();
    let d = ctx.data_mut();
    d.ticks_seen += 1;
    let mark = *d.cpu_mark.get_or_insert(now);
    if deadline_reached(d.ticks_seen, d.deadline_ticks, now.saturating_sub(mark)) {
        d.timed_out = true;
        Ok(UpdateDeadline::Interrupt)
    } else {
        Ok(UpdateDeadline::Continue(1))
    }
}

/// Whether a call that has seen `ticks_seen` ticks and used `cpu_since_mark` ns of CPU since
/// the first of them has run past a deadline of `deadline_ticks`.
fn deadline_reached(ticks_seen: u64, deadline_ticks: u64, cpu_since_mark: u64) -> bool {
    let tick_ns = abi::EPOCH_TICK.as_nanos() as u64;
    ticks_seen >= deadline_ticks && cpu_since_mark >= (deadline_ticks - 1) * tick_ns
}

impl HostState {
    /// The state of a new store: a plugin named `name` loading for a cache of `capacity`
    /// blocks, its memory capped at `memory_limit` bytes.
    pub(crate) fn new(name: Arc<str>, capacity: u64, memory_limit: usize) -> Self {
        HostState {
            limiter: Limiter::new(memory_limit, abi::MAX_TABLE_ELEMENTS),
            capacity,
            resident: 0,
            name,
            logs_left: abi::MAX_LOG_MESSAGES as u32,
            cpu_mark: None,
            ticks_seen: 0,
            deadline_ticks: 2,
            timed_out: false,
            figures: Arc::default(),
            gov: GovState {
                loading: true,
                active: [-1; 3],
                ..GovState::default()
            },
            globs: Globs::default(),
            records: (0, 0),
            caller_uid: -1,
            probe: ProbeState::default(),
        }
    }

    /// Sets the deadline of calls to `ticks` (at least 2: with one, an honest call that
    /// happens to see a tick would be interrupted).
    pub(crate) fn set_deadline(&mut self, ticks: u64) {
        self.deadline_ticks = ticks.max(2);
    }

    /// Arms the deadline for a new call: it expires at the next tick.
    pub(crate) fn arm(&mut self) {
        self.cpu_mark = None;
        self.ticks_seen = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_interrupts_only_after_the_ticks_and_the_cpu() {
        const MS: u64 = 1_000_000;
        // The first tick only marks (a 2-tick deadline needs 1 ms of CPU after it).
        assert!(!deadline_reached(1, 2, 0));
        // Descheduled: two ticks seen, little CPU used since the mark: extend.
        assert!(!deadline_reached(2, 2, MS / 10));
        assert!(!deadline_reached(9, 2, MS / 2));
        // Spinning: the ticks and the CPU are both there: interrupt.
        assert!(deadline_reached(2, 2, MS));
        // CPU alone is not enough before the ticks.
        assert!(!deadline_reached(4, 5, 10 * MS));
        assert!(deadline_reached(5, 5, 4 * MS));
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
