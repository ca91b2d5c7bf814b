//! The probe role (ABI 1.5): watch the mount's events and report on demand.
//!
//! A probe implements [`Probe`] and is exported with `export_plugin!(Type, probe)`. The host
//! delivers events in batches off the request path ([`Probe::event`] once per event, oldest
//! first), and calls [`Probe::report`] when someone reads `MOUNT/.kplug/probes/NAME`: what it
//! writes is what they read (text or JSON). Choose the events in [`Plugin::init`](crate::Plugin::init)
//! with [`filter`] and [`subtree`]; the host checks the filter before queueing anything, so an event kind the
//! probe does not take costs nothing. [`path`] names the file of an inode (known once a cache
//! event of that file was delivered).
//!
//! The event layout is [`Event`] (`kplug_abi::probe`, version 1). See docs/probes.md.

pub use kplug_abi::probe::{
    BACKEND_DEMAND, BACKEND_PREFETCH, CACHE_HIT, CACHE_JOINED, CACHE_MISS, Event, FUSE_OPS,
    FUSE_READ, FUSE_WRITE, Kind, POLICY_ADMIT, POLICY_EVICT, POLICY_OPS, POLICY_PREFETCH,
    POLICY_PREFETCH_USED, POLICY_REFUSE,
};

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "kplug")]
    unsafe extern "C" {
        pub fn probe_filter(kinds: i32, uid: i64) -> i32;
        pub fn probe_subtree(ptr: i32, len: i32) -> i32;
        pub fn probe_path(ino: i64, ptr: i32, cap: i32) -> i32;
        pub fn publish(ptr: i32, len: i32, value: f64) -> i32;
        pub fn probe_figure(ptr: i32, len: i32) -> f64;
    }
}

/// The probe role: aggregate events, write a report when asked.
pub trait Probe {
    /// One event (the host delivers them in order, in batches).
    fn event(&mut self, e: &Event);

    /// Write the report into `out` (it starts empty); at most 1 MiB.
    fn report(&mut self, out: &mut alloc::string::String);

    /// After each batch of events: the place to [`publish`] figures. Default: nothing.
    fn batch_end(&mut self) {}
}

/// Publish this probe's figure `name` (1..=64 bytes, no `/`; at most 32 names) as `value`
/// (finite): every plugin of the mount reads it as `PROBE/NAME` with [`figure`], a governor
/// to adapt the cache to what the probe sees. Whether the host took it.
pub fn publish(name: &str, value: f64) -> bool {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from our memory; the str is live.
    return unsafe { imports::publish(name.as_ptr() as i32, name.len() as i32, value) } == 0;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (name, value);
        false
    }
}

/// The figure `key` (`PROBE/NAME`) a probe of the mount published, if any: any plugin may
/// read it (ABI 1.5).
pub fn figure(key: &str) -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the host reads `len` bytes at `ptr` from our memory; the str is live.
        let v = unsafe { imports::probe_figure(key.as_ptr() as i32, key.len() as i32) };
        return (!v.is_nan()).then_some(v);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// Take only events of `kinds` (and, of FUSE requests, those of `uid`), during
/// [`Plugin::init`](crate::Plugin::init) only; whether the host accepted it. Without a call a
/// probe gets every event.
pub fn filter(kinds: &[Kind], uid: Option<u32>) -> bool {
    let mask = kinds.iter().fold(0u32, |m, k| m | k.bit());
    #[cfg(target_arch = "wasm32")]
    {
        let uid = uid.map_or(-1, i64::from);
        // SAFETY: a plain host call without pointers.
        return unsafe { imports::probe_filter(mask as i32, uid) } == 0;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (mask, uid);
        false
    }
}

/// Take only events on files and directories under directory `dir` of the mount (from its
/// root, `/`-separated; `""` the whole mount), during [`Plugin::init`](crate::Plugin::init)
/// only (ABI 1.7); whether the host accepted it. The host tests each event's inode before
/// queueing it, so the events of other trees cost the probe nothing.
pub fn subtree(dir: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from our memory; the str is live.
    return unsafe { imports::probe_subtree(dir.as_ptr() as i32, dir.len() as i32) } == 0;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = dir;
        false
    }
}

/// The path (from the mount's root) of the file of inode `ino`, if the host knows it.
pub fn path(ino: u64) -> Option<alloc::string::String> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut buf = alloc::vec![0u8; 256];
        loop {
            // SAFETY: the host writes at most `cap` bytes at `ptr`, inside `buf`.
            let n = unsafe {
                imports::probe_path(ino as i64, buf.as_mut_ptr() as i32, buf.len() as i32)
            };
            let n = usize::try_from(n).ok()?;
            if n <= buf.len() {
                buf.truncate(n);
                return alloc::string::String::from_utf8(buf).ok();
            }
            buf.resize(n, 0);
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = ino;
        None
    }
}

/// The top-level directory of a path (`a/b/c` → `a`; a file at the root → `/`).
pub fn top_dir(path: &str) -> &str {
    match path.split_once('/') {
        Some((top, _)) => top,
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_dirs() {
        assert_eq!(top_dir("a/b/c"), "a");
        assert_eq!(top_dir("f"), "/");
        assert!(!filter(&[Kind::Fuse], None), "no host outside wasm32");
        assert_eq!(path(1), None);
        assert!(!publish("x", 1.0));
        assert_eq!(figure("p/x"), None);
    }
}
