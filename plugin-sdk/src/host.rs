//! The host imports of ABI v1 (module `kplug`). Outside wasm32 (native unit
//! tests of a policy) there is no host: `log` does nothing and every figure
//! is 0.
//!
//! ABI 1.1 added the introspection imports ([`hit_ratio`], [`pressure`],
//! [`sequentiality`], [`backend_latency_ns`], [`now_ns`]), ABI 1.3 the file
//! facts ([`block_size`], [`file_size`], [`add_glob`], [`path_matches`]): see
//! `docs/plugin-abi.md` §4 for what each measures. A module imports only
//! what it calls, so a plugin that uses none of them still loads on any 1.x
//! host that accepts its version word.

/// Log levels of [`log`].
pub use kplug_abi::Level;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "kplug")]
    unsafe extern "C" {
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn capacity() -> i64;
        pub fn resident() -> i64;
        pub fn hit_ratio() -> f64;
        pub fn pressure() -> f64;
        pub fn sequentiality(file: i64) -> f64;
        pub fn backend_latency_ns() -> i64;
        pub fn now_ns() -> i64;
        pub fn block_size() -> i64;
        pub fn file_size(file: i64) -> i64;
        pub fn add_glob(ptr: i32, len: i32) -> i32;
        pub fn path_matches(file: i64, glob: i32) -> i32;
        pub fn transform_records(records_in: i64, records_out: i64);
        pub fn transform_uid() -> i64;
    }
}

/// Logs `msg` through the host (truncated to 1 KiB; the host drops messages
/// after a budget of 10 000 per instance, so do not log per hook).
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from our memory; the slice is live.
    unsafe {
        imports::log(level as i32, msg.as_ptr() as i32, msg.len() as i32)
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, msg);
}

/// Cache capacity in blocks.
pub fn capacity() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::capacity() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Blocks resident right now.
pub fn resident() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::resident() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Hits / requests of the cache over its last window of 4096 requests (ABI 1.1).
pub fn hit_ratio() -> f64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::hit_ratio() };
    #[cfg(not(target_arch = "wasm32"))]
    0.0
}

/// Fraction of the last window of insertions that had to evict first: 0 while
/// the cache fills, near 1 when every miss evicts (ABI 1.1).
pub fn pressure() -> f64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::pressure() };
    #[cfg(not(target_arch = "wasm32"))]
    0.0
}

/// How sequential `file`'s recent accesses are, 0..=1: the weighted fraction
/// that went to the block right after the previous one (ABI 1.1). `file` is
/// `key >> 32`, as `kplug_admit` and the prefetch hook receive it.
pub fn sequentiality(file: u64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::sequentiality(file as i64) };
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = file;
        0.0
    }
}

/// Recent backend read latency in ns (ABI 1.1); in the simulator, its
/// `--backend-latency` (0 by default).
pub fn backend_latency_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::backend_latency_ns() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Monotonic time in ns (ABI 1.1); in the simulator a logical clock of 1 µs per
/// request, so runs are reproducible.
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::now_ns() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Bytes per block of the cache (ABI 1.3); `None` where blocks have no fixed
/// size (the simulator's objects).
pub fn block_size() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return u64::try_from(unsafe { imports::block_size() }).ok();
    #[cfg(not(target_arch = "wasm32"))]
    None
}

/// Size in bytes of `file` (`key >> 32`, as the hooks receive it) as the cache
/// last saw it (ABI 1.3); `None` when unknown (the simulator has no files).
pub fn file_size(file: u64) -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return u64::try_from(unsafe { imports::file_size(file as i64) }).ok();
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = file;
        None
    }
}

/// Register a path pattern, during [`Plugin::set_param`](crate::Plugin::set_param)
/// or [`Plugin::init`](crate::Plugin::init) only (ABI 1.3); its index for
/// [`path_matches`], or `None` if refused (more than 64 patterns, longer than
/// 1 KiB, not a pattern). A pattern without `/` matches file names at any depth
/// (`*.log`); one with `/` matches paths from the mount's root (`logs/**`).
pub fn add_glob(pattern: &str) -> Option<u32> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the host reads `len` bytes at `ptr` from our memory; the str is live.
        let i = unsafe { imports::add_glob(pattern.as_ptr() as i32, pattern.len() as i32) };
        return u32::try_from(i).ok();
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = pattern;
        None
    }
}

/// Whether the path of `file` matches pattern `glob` (an index [`add_glob`]
/// returned), ABI 1.3; `None` when the path is unknown (the simulator) or the
/// index is bad. The host matches; no string crosses per call.
pub fn path_matches(file: u64, glob: u32) -> Option<bool> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: a plain host call without pointers.
        return match unsafe { imports::path_matches(file as i64, glob as i32) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        };
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (file, glob);
        None
    }
}

/// Transform (ABI 1.6): add to the records the view counts in and out (`.kplug/stats`). The
/// SDK calls it after each chunk with what [`crate::Output`] counted.
pub fn transform_records(records_in: u64, records_out: u64) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    unsafe {
        imports::transform_records(records_in as i64, records_out as i64)
    };
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (records_in, records_out);
}

/// Transform (ABI 1.6): the user id of the reader whose open started the current stream
/// (`None` unknown, and outside wasm32). Calling it makes the transform per-caller: the host
/// keeps its outputs per user, and it must be size-preserving.
pub fn transform_uid() -> Option<u32> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return u32::try_from(unsafe { imports::transform_uid() }).ok();
    #[cfg(not(target_arch = "wasm32"))]
    None
}
