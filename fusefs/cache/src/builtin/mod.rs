//! Native built-in policies: the defaults, and the fallbacks that take over a
//! role the moment a plugin serving it faults.
//!
//! They implement small crate-private traits mirroring the ABI hooks, so the
//! core drives a built-in and a plugin the same way (see `roles/`). Built-ins
//! cannot fault: they are trusted host code, and their answers are still
//! checked by the core in debug builds.
//!
//! | role      | built-in    | behaviour |
//! |-----------|-------------|-----------|
//! | eviction  | `lru`       | least recently used; O(1) per hook (`lru.rs`) |
//! | admission | `admit-all` | admits every block |
//! | prefetch  | `readahead` | Linux-like sequential readahead (`readahead.rs`) |
//! | prefetch  | `none`      | never prefetches |

mod lru;
mod readahead;

pub(crate) use lru::Lru;
pub(crate) use readahead::Readahead;
pub use readahead::ReadaheadConfig;

use kplug_abi::BlockRange;

/// Eviction hooks of a native policy (same contracts as the ABI's).
///
/// As a plugin on the handles of ABI 1.8, a native policy answers `insert` with the block's
/// handle, which the core keeps in the block's entry and passes back on each hit and
/// removal: the policy finds its state without a map of its own, so a request looks one
/// table up (the core's), not two. A handle the policy did not give `key` (a host bug) must
/// not corrupt its state: it is ignored, and the victims the core then finds not resident
/// make the core rebuild the policy.
pub(crate) trait NativeEviction: Send {
    /// A block became resident (it is not tracked yet); returns its handle.
    fn insert(&mut self, key: u64) -> u32;
    /// A hit on a resident block, with the handle `insert` gave it.
    fn access(&mut self, key: u64, handle: u32);
    /// The host dropped a resident block, with the handle `insert` gave it.
    fn remove(&mut self, key: u64, handle: u32);
    /// Chooses a resident block and forgets it; `None` if it tracks nothing.
    fn victim(&mut self) -> Option<u64>;
}

/// Admission hook of a native policy.
pub(crate) trait NativeAdmission: Send {
    /// Whether the missed block `key` (= `file`, `block`) enters the cache.
    fn admit(&mut self, key: u64, file: u64, block: u64) -> bool;
}

/// Prefetch hook of a native policy.
pub(crate) trait NativePrefetch: Send {
    /// Appends ranges to read ahead after an access to `block` of `file`
    /// (`file_blocks` long); ranges must lie inside the file.
    fn plan(
        &mut self,
        file: u64,
        block: u64,
        file_blocks: u64,
        hit: bool,
        out: &mut Vec<BlockRange>,
    );
}

/// Built-in eviction policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuiltinEviction {
    /// Least recently used (the default and the fallback).
    #[default]
    Lru,
}

/// Built-in admission policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuiltinAdmission {
    /// Admit every block (the default and the fallback).
    #[default]
    AdmitAll,
}

/// Built-in prefetch policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinPrefetch {
    /// Sequential readahead with a doubling window (the default and the fallback).
    Readahead(ReadaheadConfig),
    /// No prefetching.
    None,
}

impl Default for BuiltinPrefetch {
    fn default() -> Self {
        BuiltinPrefetch::Readahead(ReadaheadConfig::default())
    }
}

impl BuiltinEviction {
    /// The policy's name (`lru`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinEviction::Lru => "lru",
        }
    }

    pub(crate) fn build(self) -> Box<dyn NativeEviction> {
        match self {
            BuiltinEviction::Lru => Box::new(Lru::default()),
        }
    }
}

struct AdmitAll;

impl NativeAdmission for AdmitAll {
    fn admit(&mut self, _key: u64, _file: u64, _block: u64) -> bool {
        true
    }
}

impl BuiltinAdmission {
    /// The policy's name (`admit-all`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinAdmission::AdmitAll => "admit-all",
        }
    }

    pub(crate) fn build(self) -> Box<dyn NativeAdmission> {
        match self {
            BuiltinAdmission::AdmitAll => Box::new(AdmitAll),
        }
    }
}

struct NoPrefetch;

impl NativePrefetch for NoPrefetch {
    fn plan(
        &mut self,
        _file: u64,
        _block: u64,
        _file_blocks: u64,
        _hit: bool,
        _out: &mut Vec<BlockRange>,
    ) {
    }
}

impl BuiltinPrefetch {
    /// The policy's name (`readahead` or `none`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinPrefetch::Readahead(_) => "readahead",
            BuiltinPrefetch::None => "none",
        }
    }

    pub(crate) fn build(self) -> Box<dyn NativePrefetch> {
        match self {
            BuiltinPrefetch::Readahead(c) => Box::new(Readahead::new(c)),
            BuiltinPrefetch::None => Box::new(NoPrefetch),
        }
    }
}
