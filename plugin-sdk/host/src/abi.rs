//! The plugin ABI v1: export and import names, the version word and the limits.
//!
//! Everything a plugin and the host must agree on lives here as a constant, so
//! the loader (`engine.rs`), the per-call code (`instance.rs`), the role adapters
//! and `docs/plugin-abi.md` all point at one place. The guest SDK (`kplug-sdk`)
//! repeats the names; a test compares the two lists.
//!
//! Versioning: `kplug_abi_version()` returns `(major << 16) | minor`. The host
//! accepts `major == ABI_MAJOR` and `minor <= ABI_MINOR`. A minor version may
//! only *add* optional exports (new roles such as a governor `kplug_tick`) and
//! imports (introspection such as hit ratio or backend latency); a plugin built
//! against minor N therefore runs on every host of minor >= N, and a plugin that
//! imports something this host does not know is refused at load, naming it.
//!
//! The limits are chosen so that a hostile plugin costs a bounded amount of
//! host memory and time, while honest policies never come near them: an LRU
//! over a million blocks needs ~40 MiB of guest memory, a hook runs in tens of
//! nanoseconds against a deadline of milliseconds.

use std::time::Duration;

/// Major version of the ABI this host implements.
pub const ABI_MAJOR: u32 = 1;
/// Minor version of the ABI this host implements (highest minor it accepts).
/// 1.1 added the introspection imports and the governor role; 1.2 added `set_weight`.
pub const ABI_MINOR: u32 = 2;
/// The version word of this host's ABI, `kplug_abi_version`'s answer for a 1.2 plugin.
pub const ABI_VERSION: u32 = (ABI_MAJOR << 16) | ABI_MINOR;

/// Module name of every host import.
pub const IMPORT_MODULE: &str = "kplug";
/// `log(level: i32, ptr: i32, len: i32)`: a UTF-8 message (lossy) at a level, 0=error .. 4=trace.
pub const IMPORT_LOG: &str = "log";
/// `capacity() -> i64`: the cache capacity in blocks.
pub const IMPORT_CAPACITY: &str = "capacity";
/// `resident() -> i64`: the number of blocks resident right now.
pub const IMPORT_RESIDENT: &str = "resident";
/// 1.1: `hit_ratio() -> f64`, hits / requests over the last window (see `figures.rs`).
pub const IMPORT_HIT_RATIO: &str = "hit_ratio";
/// 1.1: `pressure() -> f64`, the fraction of recent insertions that had to evict.
pub const IMPORT_PRESSURE: &str = "pressure";
/// 1.1: `sequentiality(file: i64) -> f64`, how sequential the file's recent accesses are.
pub const IMPORT_SEQUENTIALITY: &str = "sequentiality";
/// 1.1: `backend_latency_ns() -> i64`, recent backend read latency.
pub const IMPORT_BACKEND_LATENCY: &str = "backend_latency_ns";
/// 1.1: `now_ns() -> i64`, monotonic time (logical in the simulator).
pub const IMPORT_NOW: &str = "now_ns";
/// 1.1 governor: `add_candidate(role: i32, spec_ptr: i32, spec_len: i32) -> i32`, during
/// load only: register a candidate policy (`name` or `name:key=value;key=value`) for a
/// role (0 eviction, 1 admission, 2 prefetch); its index, or -1 if refused.
pub const IMPORT_ADD_CANDIDATE: &str = "add_candidate";
/// 1.1 governor: `candidate_hits(index: i32) -> i64`, demand hits counted for the candidate
/// since it was registered (its shadow cache's while not active, the cache's while active);
/// -1 for a bad index or a candidate without figures (not eviction).
pub const IMPORT_CANDIDATE_HITS: &str = "candidate_hits";
/// 1.1 governor: `candidate_requests(index: i32) -> i64`, demand requests counted likewise.
pub const IMPORT_CANDIDATE_REQUESTS: &str = "candidate_requests";
/// 1.1 governor: `candidate_divergence(index: i32) -> i64`, about how many blocks the
/// eviction candidate's shadow holds that the cache does not (what switching to it would
/// have to fetch again; estimated from a sample of up to 256 of its keys; for the candidate
/// followed, what the cache has not caught up with yet), -1 for a bad index or a candidate
/// without a shadow.
pub const IMPORT_CANDIDATE_DIVERGENCE: &str = "candidate_divergence";
/// 1.1 governor: `active(role: i32) -> i32`, the candidate serving the role, -1 if none.
pub const IMPORT_ACTIVE: &str = "active";
/// 1.1 governor: `activate(index: i32) -> i32`, make the candidate serve its role once the
/// current call returns (0), or -1 for a bad index.
pub const IMPORT_ACTIVATE: &str = "activate";
/// 1.2 governor: `set_weight(index: i32, weight: f64) -> i32`, give an eviction candidate a
/// weight (finite, >= 0) in the cache's eviction vote once the current call returns (0), or
/// -1 for a bad index, a candidate of another role or a bad weight. The cache evicts the
/// resident block whose holders (the candidates whose shadow holds it) weigh least;
/// `activate(i)` is the weight 1 for `i` and 0 for every other eviction candidate.
pub const IMPORT_SET_WEIGHT: &str = "set_weight";
/// 1.1 governor role: `kplug_tick(now_ns: i64) -> i32`, called periodically (every N
/// requests in the simulator, on a timer in the mount); 0 = ok, anything else is a fault.
pub const EXPORT_TICK: &str = "kplug_tick";

/// Required export: the plugin's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Required export: `kplug_abi_version() -> i32`.
pub const EXPORT_ABI_VERSION: &str = "kplug_abi_version";
/// Optional export: `kplug_alloc(len: i32) -> i32`, a guest buffer for parameter strings (0 = refuse).
pub const EXPORT_ALLOC: &str = "kplug_alloc";
/// Optional export: `kplug_set_param(key_ptr, key_len, val_ptr, val_len: i32) -> i32` (0 = accepted).
pub const EXPORT_SET_PARAM: &str = "kplug_set_param";
/// Optional export: `kplug_init(capacity_blocks: i64) -> i32` (0 = ok), called once after the params.
pub const EXPORT_INIT: &str = "kplug_init";

/// Eviction role: `kplug_evict_insert(key: i64)`, a block became resident.
pub const EXPORT_EVICT_INSERT: &str = "kplug_evict_insert";
/// Eviction role: `kplug_evict_access(key: i64)`, a hit on a resident block.
pub const EXPORT_EVICT_ACCESS: &str = "kplug_evict_access";
/// Eviction role: `kplug_evict_remove(key: i64)`, the host dropped a block (invalidation).
pub const EXPORT_EVICT_REMOVE: &str = "kplug_evict_remove";
/// Eviction role: `kplug_evict_victim() -> i64`, propose a resident block to evict.
pub const EXPORT_EVICT_VICTIM: &str = "kplug_evict_victim";
/// Admission role: `kplug_admit(key: i64, file: i64, block: i64) -> i32`, 1 = admit, 0 = refuse.
pub const EXPORT_ADMIT: &str = "kplug_admit";
/// Prefetch role: `kplug_prefetch_buf() -> i32`, address of the range output array.
pub const EXPORT_PREFETCH_BUF: &str = "kplug_prefetch_buf";
/// Prefetch role: `kplug_prefetch(file: i64, block: i64, file_blocks: i64, hit: i32) -> i32`, number of ranges written.
pub const EXPORT_PREFETCH: &str = "kplug_prefetch";

/// Most ranges one `kplug_prefetch` call may return.
pub const MAX_PREFETCH_RANGES: u32 = 64;
/// Size of one prefetch range in guest memory: `{start: u64, len: u64}` little-endian.
pub const PREFETCH_RANGE_BYTES: u32 = 16;

/// Largest module accepted, in bytes. A policy is a few KiB to a few hundred KiB;
/// 16 MiB leaves room for big lookup tables while bounding compile time.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Default cap on a plugin's linear memory (64 MiB): room for per-block state of
/// a million-block cache, small enough that dozens of plugins fit in RAM.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;
/// Largest table a plugin may have, in elements (function-pointer tables of
/// Rust/C programs are a few hundred entries).
pub const MAX_TABLE_ELEMENTS: usize = 10_000;
/// Longest `key` or `value` of a parameter string, in bytes.
pub const MAX_PARAM_BYTES: usize = 256;
/// Longest log message forwarded to `tracing`; longer ones are truncated.
pub const MAX_LOG_BYTES: usize = 1024;

/// Interval of the epoch ticker thread. 1 ms keeps timeouts tight while the
/// ticker itself costs ~1000 wakeups/s of a few hundred ns.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Default per-hook deadline in ticks (≈10 ms). A hook takes tens of ns; the
/// margin absorbs a descheduled thread on a busy 2-core machine without letting
/// a runaway plugin stall the mount for long.
pub const DEFAULT_HOOK_DEADLINE_TICKS: u64 = 10;
/// Default deadline of load-time calls (`kplug_set_param`, `kplug_init`) in
/// ticks (≈1 s): init may build tables sized by the capacity.
pub const DEFAULT_INIT_DEADLINE_TICKS: u64 = 1000;
/// Largest wasm stack a plugin call may use (512 KiB, wasmtime's default).
pub const MAX_WASM_STACK: usize = 512 << 10;

/// Composes the stable key of a block in the mount: `(file_id << 32) | block`.
///
/// The simulator uses trace object ids directly; the core and the plugins treat
/// keys as opaque, except that [`key_file`]/[`key_block`] are used to remove all
/// blocks of a file.
#[inline]
pub fn block_key(file: u32, block: u32) -> u64 {
    ((file as u64) << 32) | block as u64
}

/// The file part of a key built by [`block_key`].
#[inline]
pub fn key_file(key: u64) -> u32 {
    (key >> 32) as u32
}

/// The block part of a key built by [`block_key`].
#[inline]
pub fn key_block(key: u64) -> u32 {
    key as u32
}

/// A role a plugin can serve. A plugin serves a role when it exports the
/// role's whole export set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Chooses which resident block to evict.
    Eviction,
    /// Decides whether a missed block enters the cache.
    Admission,
    /// Proposes block ranges to read ahead.
    Prefetch,
}

impl Role {
    /// The role with ABI number `n` (0 eviction, 1 admission, 2 prefetch).
    pub fn from_index(n: i32) -> Option<Role> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Role::ALL.get(i).copied())
    }

    /// All roles, in ABI order.
    pub const ALL: [Role; 3] = [Role::Eviction, Role::Admission, Role::Prefetch];

    /// The role's name as used in docs, status JSON and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Eviction => "eviction",
            Role::Admission => "admission",
            Role::Prefetch => "prefetch",
        }
    }

    /// The exports of the role, with their wasm signature `(params, results)`
    /// written as letters: `I` = i32, `L` = i64.
    pub fn exports(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Role::Eviction => &[
                (EXPORT_EVICT_INSERT, "L", ""),
                (EXPORT_EVICT_ACCESS, "L", ""),
                (EXPORT_EVICT_REMOVE, "L", ""),
                (EXPORT_EVICT_VICTIM, "", "L"),
            ],
            Role::Admission => &[(EXPORT_ADMIT, "LLL", "I")],
            Role::Prefetch => &[
                (EXPORT_PREFETCH_BUF, "", "I"),
                (EXPORT_PREFETCH, "LLLI", "I"),
            ],
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Role> for RoleSet {
    fn from(r: Role) -> RoleSet {
        RoleSet::EMPTY.with(r)
    }
}

/// A set of [`Role`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    /// The empty set.
    pub const EMPTY: RoleSet = RoleSet(0);

    /// A set holding the given roles.
    pub fn of(roles: &[Role]) -> RoleSet {
        roles.iter().fold(RoleSet::EMPTY, |s, r| s.with(*r))
    }

    /// This set plus `role`.
    pub fn with(self, role: Role) -> RoleSet {
        RoleSet(self.0 | role.bit())
    }

    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether every role of `other` is in this set.
    pub fn contains_all(self, other: RoleSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in ABI order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl std::fmt::Display for RoleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = block_key(0xdead_beef, 0x1234_5678);
        assert_eq!(k, 0xdead_beef_1234_5678);
        assert_eq!(key_file(k), 0xdead_beef);
        assert_eq!(key_block(k), 0x1234_5678);
    }

    #[test]
    fn role_sets() {
        let s = RoleSet::of(&[Role::Prefetch, Role::Eviction]);
        assert!(s.contains(Role::Eviction) && !s.contains(Role::Admission));
        assert_eq!(s.to_string(), "eviction,prefetch");
        assert!(s.contains_all(RoleSet::of(&[Role::Prefetch])));
        assert!(!s.contains_all(RoleSet::of(&[Role::Admission])));
        assert!(RoleSet::EMPTY.is_empty());
    }
}
