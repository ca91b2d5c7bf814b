//! The calling thread's scheduling priority (its nice, Linux's per-thread `setpriority`):
//! the engine's background threads (the optimizer, the module cache's writer) run below the
//! threads serving reads, and a user's plugin swap runs above them (the daemon's
//! `SwapPriority`, through [`raise`]). The one place that calls `getpriority`/`setpriority`.
//!
//! A thread starts at the nice of the thread that spawned it, so one spawned while a swap
//! has its thread raised (the tier-up finisher, a governor's ticker, the probes' delivery)
//! would run above the readers for good: such a thread starts with [`start_at`] of its
//! spawner's [`own`] nice.

use std::cell::Cell;

thread_local! {
    /// The thread's own nice while [`raise`] has it raised.
    static RAISED_FROM: Cell<Option<i32>> = const { Cell::new(None) };
}

/// The calling thread's id, as `setpriority` takes it.
fn tid() -> libc::id_t {
    // SAFETY: gettid takes no argument and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// The calling thread's nice; `None` if it cannot be read.
pub fn get() -> Option<i32> {
    // SAFETY: getpriority on this thread's own id; no memory is passed; errno is this
    // thread's (cleared first, as -1 is also a valid nice).
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid());
        (nice != -1 || *libc::__errno_location() == 0).then_some(nice)
    }
}

/// Sets the calling thread's nice; false if refused (raising a priority needs
/// `CAP_SYS_NICE`).
pub fn set(nice: i32) -> bool {
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid(), nice) == 0 }
}

/// Raises the calling thread to nice `to` if it is below that and may be raised (root), until
/// the guard drops or [`lower`] is called; `None` if nothing was raised.
pub fn raise(to: i32) -> Option<Raised> {
    if RAISED_FROM.get().is_some() {
        return None;
    }
    let old = get().filter(|&old| old > to)?;
    set(to).then(|| {
        RAISED_FROM.set(Some(old));
        Raised(())
    })
}

/// The calling thread raised by [`raise`]: dropping it gives the thread its own nice back.
#[derive(Debug)]
pub struct Raised(());

impl Drop for Raised {
    fn drop(&mut self) {
        lower();
    }
}

/// Gives the calling thread its own nice back, if [`raise`] raised it.
pub fn lower() {
    if let Some(old) = RAISED_FROM.take() {
        set(old);
    }
}

/// The calling thread's own nice: the one before a [`raise`], else its current one.
pub fn own() -> Option<i32> {
    RAISED_FROM.get().or_else(get)
}

/// For the first line of a thread: run at `own` (its spawner's [`own`] nice), not at the
/// raised nice it may have inherited.
pub fn start_at(own: Option<i32>) {
    if let Some(n) = own
        && get() != Some(n)
    {
        set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread spawned while its spawner is raised starts at the spawner's own nice, not
    /// the raised one (as root; elsewhere nothing is raised and nothing changes).
    #[test]
    fn a_thread_spawned_while_raised_starts_at_its_spawners_own_nice() {
        std::thread::spawn(|| {
            let before = get().unwrap();
            let raised = raise(before - 5);
            assert_eq!(own(), Some(before));
            assert!(raise(before - 6).is_none(), "raised once at a time");
            let own = own();
            let child = std::thread::spawn(move || {
                let inherited = get().unwrap();
                start_at(own);
                (inherited, get().unwrap())
            })
            .join()
            .unwrap();
            if raised.is_some() {
                assert_eq!(child, (before - 5, before));
            } else {
                assert_eq!(child, (before, before));
            }
            drop(raised);
            assert_eq!(get(), Some(before));
        })
        .join()
        .unwrap();
    }
}
