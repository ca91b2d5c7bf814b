//! The prefetch queue: an unbounded multi-consumer queue that closes when its owner goes
//! away (the block cache bounds what it queues itself). Built on the locks of its parent
//! module, so the shuttle tests run it with theirs (`tests/shuttle/src/lib.rs`).

use std::collections::VecDeque;

use super::{Condvar, Mutex};

/// An unbounded multi-consumer work queue that ends when closed.
#[derive(Debug)]
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

#[derive(Debug)]
struct State<T> {
    jobs: VecDeque<T>,
    closed: bool,
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> WorkQueue<T> {
    /// Queue `job` for a worker; once the queue is closed, `job` comes back as the error.
    pub fn push(&self, job: T) -> Result<(), T> {
        let mut g = self.state.lock();
        if g.closed {
            return Err(job);
        }
        g.jobs.push_back(job);
        drop(g);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.state.lock();
        loop {
            if let Some(job) = g.jobs.pop_front() {
                return Some(job);
            }
            if g.closed {
                return None;
            }
            self.ready.wait(&mut g);
        }
    }

    /// Refuse new jobs; workers finish what is queued and stop.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}
