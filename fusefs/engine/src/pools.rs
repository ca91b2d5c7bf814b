//! A module's parallel compile runs at the priority of the thread that asked for it.
//!
//! wasmtime compiles a module's functions in parallel on rayon's threads, and a thread that
//! is not one of a pool's hands the whole compile to rayon's global pool and waits. Those
//! threads take their nice from the thread that first used the pool, for good: in a mount
//! that was the first plugin swap, raised to nice -10 (the daemon's `SwapPriority`), so every
//! later optimizing compile of the background optimizer (nice 10, `engine.rs`, "Tiers") ran at
//! -10 too, ahead of the readers for its tens of milliseconds; had the optimizer or a
//! load at mount start come first, every swap's compile would have waited behind them.
//! [`compile`] runs a compile in a pool whose threads run at the calling thread's
//! current nice, one pool per nice asked for (in practice three: a swap's, the readers', the
//! optimizer's), made on first use and kept.

use parking_lot::Mutex;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// The pools made so far, by the nice their threads run at.
static POOLS: Mutex<Vec<(i32, &'static ThreadPool)>> = Mutex::new(Vec::new());

/// At most this many pools (one per nice): past it, a compile runs in the pool of the
/// nearest nice. Bounds the threads a process can make for its compiles.
const MAX_POOLS: usize = 4;

/// `bytes` compiled by `engine`, its parallel work on threads at this thread's nice.
pub(crate) fn compile(
    engine: &wasmtime::Engine,
    bytes: &[u8],
) -> wasmtime::Result<wasmtime::Module> {
    at_callers_priority(|| wasmtime::Module::from_binary(engine, bytes))
}

/// Runs `f` (a wasmtime compile) with its parallel work on threads at this thread's nice;
/// on this thread alone if no pool can be made.
fn at_callers_priority<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match crate::nice::get().and_then(pool) {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// The pool whose threads run at `nice`, made if need be.
fn pool(nice: i32) -> Option<&'static ThreadPool> {
    let mut pools = POOLS.lock();
    if let Some(&(_, p)) = pools.iter().find(|(n, _)| *n == nice) {
        return Some(p);
    }
    if pools.len() >= MAX_POOLS {
        return pools
            .iter()
            .min_by_key(|(n, _)| n.abs_diff(nice))
            .map(|&(_, p)| p);
    }
    let built = ThreadPoolBuilder::new()
        .thread_name(move |i| format!("kplug-cc{nice}.{i}"))
        // A thread starts at its spawner's nice, which is this one's now; set anyway, as a
        // thread the pool starts again later may be spawned by another.
        .start_handler(move |_| {
            crate::nice::set(nice);
        })
        .build();
    match built {
        Ok(p) => {
            let p: &'static ThreadPool = Box::leak(Box::new(p));
            pools.push((nice, p));
            Some(p)
        }
        Err(e) => {
            tracing::warn!("no compile threads at nice {nice}: {e}; compiling on one thread");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compile's parallel work runs on threads at the caller's nice: a thread lowered by 5
    /// (lowering needs no privilege) gets a pool at its nice, and a thread at its own another.
    #[test]
    fn parallel_work_runs_at_the_callers_nice() {
        let own = crate::nice::get().unwrap();
        let (at, lowered) = std::thread::spawn(move || {
            crate::nice::set(own + 5);
            // At most 19, whatever was asked.
            let at = crate::nice::get().unwrap();
            let seen = at_callers_priority(|| rayon::broadcast(|_| crate::nice::get().unwrap()));
            (at, seen)
        })
        .join()
        .unwrap();
        assert!(own == 19 || at > own, "lowered from {own} to {at}");
        assert!(!lowered.is_empty());
        assert!(lowered.iter().all(|&n| n == at), "{lowered:?} at {at}");
        let here = at_callers_priority(|| rayon::broadcast(|_| crate::nice::get().unwrap()));
        assert!(here.iter().all(|&n| n == own), "{here:?}");
    }
}
