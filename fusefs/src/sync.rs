//! The locks, condition variables and threads of the block cache, in one place so a test
//! build can swap them.
//!
//! Normally these are parking_lot's `Mutex`/`Condvar` and `std::thread`. With the `shuttle`
//! feature (used only by the `kplugfs-shuttle` test crate, `tests/shuttle/`) they are thin
//! wrappers over shuttle's, with parking_lot's API, so the block cache's own code runs under
//! shuttle's scheduler, which explores the interleavings of its lock and condvar operations
//! (see `tests/shuttle/tests/blockcache.rs`). Plain atomics stay `std`: they only count.
//!
//! [`WorkQueue`] is the prefetch queue: an unbounded multi-consumer queue that closes when
//! its owner goes away (the block cache bounds what it queues itself).

use std::collections::VecDeque;

#[cfg(not(feature = "shuttle"))]
pub use parking_lot::{Condvar, Mutex, MutexGuard};

#[cfg(feature = "shuttle")]
pub use shuttle_impl::{Condvar, Mutex, MutexGuard};

/// Start a named thread.
pub fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    #[cfg(not(feature = "shuttle"))]
    std::thread::Builder::new().name(name).spawn(f)?;
    #[cfg(feature = "shuttle")]
    shuttle::thread::Builder::new().name(name).spawn(f)?;
    Ok(())
}

#[cfg(feature = "shuttle")]
mod shuttle_impl {
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
}

/// An unbounded multi-consumer work queue that ends when closed.
#[derive(Debug)]
pub struct WorkQueue<T> {
    state: Mutex<(VecDeque<T>, bool)>,
    ready: Condvar,
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        }
    }
}

impl<T> WorkQueue<T> {
    /// Queue `job` for a worker; once the queue is closed, `job` comes back as the error.
    pub fn push(&self, job: T) -> Result<(), T> {
        let mut g = self.state.lock();
        if g.1 {
            return Err(job);
        }
        g.0.push_back(job);
        drop(g);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.state.lock();
        loop {
            if let Some(job) = g.0.pop_front() {
                return Some(job);
            }
            if g.1 {
                return None;
            }
            self.ready.wait(&mut g);
        }
    }

    /// Refuse new jobs; workers finish what is queued and stop.
    pub fn close(&self) {
        self.state.lock().1 = true;
        self.ready.notify_all();
    }
}
