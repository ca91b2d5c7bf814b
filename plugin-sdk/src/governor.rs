//! The governor's host imports (ABI 1.1; `set_weight` 1.2; module `kplug`). Outside wasm32 there
//! is no host: registrations, activations and weights are refused and every figure is absent.

use crate::Role;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "kplug")]
    unsafe extern "C" {
        pub fn add_candidate(role: i32, ptr: i32, len: i32) -> i32;
        pub fn candidate_hits(index: i32) -> i64;
        pub fn candidate_requests(index: i32) -> i64;
        pub fn candidate_divergence(index: i32) -> i64;
        pub fn active(role: i32) -> i32;
        pub fn activate(index: i32) -> i32;
        pub fn set_weight(index: i32, weight: f64) -> i32;
    }
}

/// Register a candidate for `role`, during [`Plugin::init`](crate::Plugin::init) only:
/// `spec` is a policy name the host can resolve (a built-in policy of the binary) or
/// `name:key=value;key=value` with parameters. Returns its index.
pub fn add_candidate(role: Role, spec: &str) -> Option<u32> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: the host reads `len` bytes at `ptr` from our memory; the str is live.
        let i =
            unsafe { imports::add_candidate(role as i32, spec.as_ptr() as i32, spec.len() as i32) };
        return u32::try_from(i).ok();
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (role, spec);
        None
    }
}

#[cfg(target_arch = "wasm32")]
fn figure(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// Demand hits of eviction candidate `index`'s shadow cache since it was registered:
/// exactly what that fixed policy would have hit; `None` for other candidates.
pub fn candidate_hits(index: u32) -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return figure(unsafe { imports::candidate_hits(index as i32) });
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = index;
        None
    }
}

/// Demand requests counted for eviction candidate `index`.
pub fn candidate_requests(index: u32) -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return figure(unsafe { imports::candidate_requests(index as i32) });
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = index;
        None
    }
}

/// About how many blocks eviction candidate `index` holds that the cache does not: what a
/// switch to it would fetch again (for the one followed: what the cache has not caught up
/// with yet).
pub fn candidate_divergence(index: u32) -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return figure(unsafe { imports::candidate_divergence(index as i32) });
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = index;
        None
    }
}

/// The candidate serving `role` now, if one does.
pub fn active(role: Role) -> Option<u32> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return u32::try_from(unsafe { imports::active(role as i32) }).ok();
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = role;
        None
    }
}

/// Ask the host to make candidate `index` serve its role once this call returns.
pub fn activate(index: u32) -> bool {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::activate(index as i32) } == 0;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = index;
        false
    }
}

/// Give eviction candidate `index` a weight (finite, >= 0) in the cache's eviction vote,
/// once this call returns (ABI 1.2). The cache evicts the resident block whose holders
/// (the candidates whose shadow cache holds it) weigh least (among equals: held by the
/// fewest candidates, then the oldest):
/// with one candidate of weight > 0 the cache becomes that candidate's cache, with several
/// it keeps what the heavy ones agree on. [`activate`] is weight 1 for one candidate and 0
/// for the others. Returns false for a bad index, a candidate of another role or a bad
/// weight.
pub fn set_weight(index: u32, weight: f64) -> bool {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    return unsafe { imports::set_weight(index as i32, weight) } == 0;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (index, weight);
        false
    }
}
