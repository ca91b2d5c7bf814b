//! The slow-call budget: how much a plugin may hold up the cache with calls that are legal
//! (under the per-call deadline) but slow.
//!
//! The deadline bounds one call; it does not bound what a plugin costs readers when every
//! call is slow: eight readers queued behind a lock, each needing a few 3 ms hooks, wait for
//! each other's hooks in turn. So each plugin also has a budget per second for the CPU its
//! *slow* calls use: a call still running at the first epoch tick after it began (1 ms) is
//! slow, and the CPU it uses from that tick to its end is charged (`state.rs` notes the
//! mark; only a call that saw a tick pays for reading the thread's CPU clock, about one call
//! in ten thousand for an honest 100 ns hook). Once the charges of one second exceed the
//! budget, the call that crossed it is a [`Fault::TooSlow`]: the plugin is disabled like any
//! faulting plugin, and the built-ins serve. What a slow plugin can cost all readers together
//! is therefore about two budgets (the end of one second and the start of the next) plus one
//! deadline, whatever the number of readers.
//!
//! CPU, not wall time, for the same reason as the deadline: an honest hook whose thread was
//! descheduled is not slow. A governor's candidates share their governor's budget (the
//! budget is per plugin *file*), so thirty-two slow candidates cost no more than one.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Fault;

/// The length of a budget's window.
const WINDOW: Duration = Duration::from_secs(1);

/// A plugin's budget of CPU for slow calls, shared by a governor and its candidates.
#[derive(Debug)]
pub struct SlowBudget {
    limit_ns: u64,
    /// Start of the current window and the CPU charged in it.
    window: Mutex<(Instant, u64)>,
}

impl SlowBudget {
    /// A budget of `limit` of CPU per second; zero means no limit.
    pub(crate) fn new(limit: Duration) -> Self {
        SlowBudget {
            limit_ns: limit.as_nanos() as u64,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Charge `ns` of CPU a slow call used; a fault once the window's charges exceed the limit.
    pub(crate) fn charge(&self, ns: u64) -> Result<(), Fault> {
        if self.limit_ns == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut w = self.window.lock();
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        w.1 += ns;
        if w.1 > self.limit_ns {
            return Err(Fault::TooSlow {
                used_us: w.1 / 1000,
                budget_us: self.limit_ns / 1000,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_within_a_window_and_fault_past_the_limit() {
        let b = SlowBudget::new(Duration::from_millis(10));
        for _ in 0..4 {
            b.charge(2_000_000).unwrap();
        }
        assert_eq!(
            b.charge(3_000_000),
            Err(Fault::TooSlow {
                used_us: 11_000,
                budget_us: 10_000
            })
        );
        // No limit: anything goes.
        let free = SlowBudget::new(Duration::ZERO);
        free.charge(u64::MAX / 2).unwrap();
        free.charge(u64::MAX / 2).unwrap();
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let b = SlowBudget::new(Duration::from_millis(10));
        b.charge(9_000_000).unwrap();
        b.window.lock().0 -= WINDOW;
        b.charge(9_000_000).unwrap();
    }
}
