//! The calling thread's scheduling priority (its nice, Linux's per-thread `setpriority`):
//! the engine's background threads (the optimizer, the module cache's writer) run below the
//! threads serving reads, and a user's plugin swap runs above them (the daemon's
//! `SwapPriority`). The one place that calls `getpriority`/`setpriority`.

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
