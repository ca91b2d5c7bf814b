//! The block cache's locks, condition variables and threads, on shuttle's, with the API of
//! `kplug_daemon::data::sync` (parking_lot's: no poisoning).

use std::ops::{Deref, DerefMut};

/// shuttle's mutex with parking_lot's API (no poisoning).
#[derive(Debug)]
pub struct Mutex<T>(shuttle::sync::Mutex<T>);

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// Its guard; holds the inner guard in an `Option` so [`Condvar::wait`] can move it.
pub struct MutexGuard<'a, T>(Option<shuttle::sync::MutexGuard<'a, T>>);

impl<T> Mutex<T> {
    /// A new mutex.
    pub fn new(v: T) -> Self {
        Self(shuttle::sync::Mutex::new(v))
    }

    /// Lock it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("guard held")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("guard held")
    }
}

/// shuttle's condition variable with parking_lot's API.
#[derive(Debug)]
pub struct Condvar(shuttle::sync::Condvar);

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    /// A new condition variable.
    pub fn new() -> Self {
        Self(shuttle::sync::Condvar::new())
    }

    /// Wait, releasing and retaking the guard's lock.
    pub fn wait<T>(&self, g: &mut MutexGuard<'_, T>) {
        let inner = g.0.take().expect("guard held");
        g.0 = Some(self.0.wait(inner).unwrap_or_else(|e| e.into_inner()));
    }

    /// Wake every waiter.
    pub fn notify_all(&self) {
        self.0.notify_all();
    }

    /// Wake one waiter.
    pub fn notify_one(&self) {
        self.0.notify_one();
    }
}

/// Start a named shuttle thread.
pub fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    shuttle::thread::Builder::new().name(name).spawn(f)?;
    Ok(())
}

#[path = "../../../../fusefs/daemon/src/data/sync/workqueue.rs"]
mod workqueue;

pub use workqueue::WorkQueue;
