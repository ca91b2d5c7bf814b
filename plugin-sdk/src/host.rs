//! The host imports of ABI v1 (module `kplug`). Outside wasm32 (native unit
//! tests of a policy) there is no host: `log` does nothing and `capacity` /
//! `resident` return 0.

/// Log levels of [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// Something is wrong.
    Error = 0,
    /// Something is odd.
    Warn = 1,
    /// Notable event.
    Info = 2,
    /// Detail for debugging.
    Debug = 3,
    /// Very verbose detail.
    Trace = 4,
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "kplug")]
    unsafe extern "C" {
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn capacity() -> i64;
        pub fn resident() -> i64;
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
