//! The data of a plugin's store and the deadline policy of its calls.
//!
//! [`HostState`] is what the host imports see of the plugin they serve (capacity, resident
//! count, figures, a governor's candidate table) plus the store's limiter and the state of
//! the deadline of the call in progress. **Deadlines** use wasmtime's epoch interruption
//! (one ticker thread per engine, `engine.rs`): the epoch measures wall-clock time, and on a
//! loaded machine a thread can be descheduled for longer than a deadline in the middle of a
//! 30 ns hook, so the first expiry only arms a CPU-time check and a call is interrupted only
//! once the thread itself spent the budget ([`on_deadline`]).

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
    /// Deadline state of the current call (see [`on_deadline`]).
    pub(crate) cpu_mark: Option<u64>,
    /// Ticks added when the deadline is extended; CPU budget in ns.
    pub(crate) extend_ticks: u64,
    pub(crate) cpu_budget_ns: u64,
    /// Set when a call was interrupted for running past its budget.
    pub(crate) timed_out: bool,
    /// The figures of the cache the plugin is installed in (ABI 1.1 introspection).
    pub(crate) figures: Arc<Figures>,
    /// What a governor registered and may read or request (ABI 1.1).
    pub(crate) gov: GovState,
    /// The path patterns the plugin registered (ABI 1.3).
    pub(crate) globs: Globs,
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
pub(crate) fn on_deadline(
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
            extend_ticks: 1,
            cpu_budget_ns: 0,
            timed_out: false,
            figures: Arc::default(),
            gov: GovState {
                loading: true,
                active: [-1; 3],
                ..GovState::default()
            },
            globs: Globs::default(),
        }
    }

    /// Sets the deadline policy for calls: `ticks` of wall clock, then the
    /// same span of thread CPU time.
    pub(crate) fn set_budget(&mut self, ticks: u64) {
        self.extend_ticks = ticks.max(1);
        self.cpu_budget_ns = (abi::EPOCH_TICK * ticks.max(1) as u32).as_nanos() as u64;
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
