//! The locks, condition variables and threads of the block cache, in one place so the
//! shuttle tests can swap them.
//!
//! Here they are parking_lot's `Mutex`/`Condvar` and `std::thread`. `tests/shuttle/` compiles
//! the block cache's source file (and [`WorkQueue`]'s) a second time inside its own crate,
//! next to a module of the same name and API built on shuttle's primitives, so the block
//! cache's own code runs under shuttle's scheduler, which explores the interleavings of its
//! lock and condvar operations. No feature changes this crate. Plain atomics stay `std`:
//! they only count.

pub use parking_lot::{Condvar, Mutex, MutexGuard};

mod workqueue;

pub use workqueue::WorkQueue;

/// Start a named thread, at the calling thread's own nice (not a swap's raised one, should
/// it be started during a swap: `kplug_engine::nice::start_at`).
pub fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let own = kplug_engine::nice::own();
    std::thread::Builder::new().name(name).spawn(move || {
        kplug_engine::nice::start_at(own);
        f()
    })?;
    Ok(())
}
