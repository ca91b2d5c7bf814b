//! One typed schema for what the daemon reports: `.kplug/stats` ([`Stats`]) and
//! `.kplug/status` ([`Status`]).
//!
//! The daemon renders these structs, the history writer stores them (`history.rs`), and
//! every reader (`kplugfs stats`, `kplugfs trace replay`, the tests) parses them back with
//! the same types, so a renamed or retyped field is a compile error on one side or a parse
//! error on the other, never a silent zero. Every field is documented in `docs/METRICS.md`;
//! `fusefs/daemon/tests/schema.rs` walks a full document (plugins, hints and history
//! present) and fails on any field the page does not name, and checks that a history row
//! round-trips.
//!
//! `.kplug/metrics` (`prometheus.rs`) renders [`Stats`] too, naming each metric after its
//! field; the structs' `GAUGES` say which numbers are levels rather than counts.
//!
//! Fields are declared in alphabetical order, so the documents' keys come out sorted, as
//! they always have. A field added later must be `#[serde(default)]`, so that history rows
//! written before it still parse.

use std::collections::BTreeMap;

use kplug_abi::Role;
use kplug_engine::PluginState;
use serde::{Deserialize, Serialize};

pub use super::metrics::LatencyUs;

/// `.kplug/stats`: counters and latencies of every layer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Which policy serves each role.
    pub active: ActiveRoles,
    /// Reads of the backing store.
    pub backend: BackendStats,
    /// The block cache's counters.
    pub cache: CacheCounters,
    /// FUSE requests, per operation seen at least once.
    pub fuse: BTreeMap<String, FuseOpStats>,
    /// The history writer, when history is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryInfo>,
    /// The kernel hint sink; `null` with `--kernel-hints off`.
    pub kernel_hints: Option<HintStats>,
    /// Every plugin file, by plugin name.
    pub plugins: BTreeMap<String, PluginStats>,
    /// Prefetch counters, in blocks.
    pub prefetch: PrefetchCounters,
    /// The probes loaded (ABI 1.5), by name: their events delivered and dropped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probes: BTreeMap<String, ProbeStats>,
    /// Per scope of `.kplug/scopes/`, by name, and the root scope as `/` (absent while the
    /// mount has no scope): `cache` adds them all up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scopes: BTreeMap<String, ScopeStats>,
    /// The object store of an object-store mount (absent for a directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStats>,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub time_unix_ms: u64,
    /// ms since the mount's control plane started.
    pub uptime_ms: u64,
    /// Per view of `.kplug/views/` (transform plugins, ABI 1.6), by name.
    #[serde(default)]
    pub views: BTreeMap<String, ViewStats>,
}

/// The policy serving each role: a plugin's name, or `builtin:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActiveRoles {
    /// Admission.
    pub admission: String,
    /// Eviction.
    pub eviction: String,
    /// Prefetch.
    pub prefetch: String,
}

/// `stats.backend`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackendStats {
    /// Bytes the reads returned.
    pub bytes: u64,
    /// The `--backend-latency` delay added to each read, µs.
    pub emulated_latency_us: u64,
    /// Latency of a read, µs, the emulated delay included.
    pub latency_us: LatencyUs,
    /// Successful data reads (demand misses and prefetches).
    pub reads: u64,
}

impl BackendStats {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] = &["emulated_latency_us"];
}

/// `cache`, in `.kplug/stats` and `.kplug/status`: the cache core's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCounters {
    /// Fetched blocks the admission policy kept out.
    pub admission_refusals: u64,
    /// Bytes per block.
    pub block_size: u64,
    /// Capacity in blocks.
    pub capacity_blocks: u64,
    /// Demand reads that waited for a fetch already in flight.
    pub deduplicated_fetches: u64,
    /// Blocks evicted to make room.
    pub evictions: u64,
    /// Plugin faults the core handled.
    pub faults: u64,
    /// Block lookups answered from the cache.
    pub hits: u64,
    /// Blocks inserted.
    pub insertions: u64,
    /// Blocks dropped because their file changed.
    pub invalidations: u64,
    /// Block lookups that had to fetch.
    pub misses: u64,
    /// Times a governor switched the policy serving a role.
    pub policy_switches: u64,
    /// Blocks in the cache now.
    pub resident_blocks: u64,
    /// Fetched blocks not inserted because their file changed meanwhile.
    pub stale_fetches_dropped: u64,
}

impl CacheCounters {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] =
        &["block_size", "capacity_blocks", "resident_blocks"];
}

/// `fuse.<op>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FuseOpStats {
    /// Bytes read or written (read, write, copy_file_range).
    pub bytes: u64,
    /// Requests.
    pub count: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Time in the daemon per request, µs.
    pub latency_us: LatencyUs,
}

/// `stats.history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryInfo {
    /// Why history stopped, if it did.
    pub error: Option<String>,
    /// The database file.
    pub path: String,
    /// Time between samples, ms.
    pub period_ms: u64,
    /// Rows older than this are deleted, ms.
    pub retention_ms: u64,
    /// Rows written since the mount.
    pub rows_written: u64,
}

impl HistoryInfo {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] = &["period_ms", "retention_ms"];
}

/// `stats.kernel_hints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintStats {
    /// Where hints go: `kmod`, `readahead`, `fadvise`.
    pub backend: String,
    /// Bytes the hints asked the kernel to read ahead.
    pub bytes: u64,
    /// Hints the kernel refused.
    pub errors: u64,
    /// Hints forwarded.
    pub forwarded: u64,
}

/// `stats.probes.<name>`: the events of one probe (ABI 1.5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProbeStats {
    /// Events delivered to it.
    pub delivered: u64,
    /// Events its filter took but its full ring dropped.
    pub dropped: u64,
    /// Events waiting in its ring.
    pub queued: u64,
}

impl ProbeStats {
    /// The fields that are gauges (the others are counters), for `.kplug/metrics`.
    pub const GAUGES: &'static [&'static str] = &["queued"];
}

/// `stats.plugins.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStats {
    /// The roles it serves now.
    pub active_roles: Vec<Role>,
    /// Hook calls.
    pub calls: u64,
    /// Faults (a fault disables it).
    pub faults: u64,
    /// Whether it is a governor.
    pub governor: bool,
    /// Whether it is a probe (ABI 1.5).
    #[serde(default)]
    pub probe: bool,
    /// The roles it implements.
    pub roles: Vec<Role>,
    /// `active`, `failed` or `disabled`.
    pub state: PluginState,
    /// Estimated ns spent in its hooks (sampled).
    pub time_ns: u64,
}

impl PluginStats {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] = &["governor", "probe"];
}

/// `prefetch`, in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrefetchCounters {
    /// Prefetched blocks fetched and inserted.
    pub completed_blocks: u64,
    /// Blocks not prefetched because the queue was full.
    pub dropped_blocks: u64,
    /// Blocks the prefetch policy asked for (after validation and budget).
    pub issued_blocks: u64,
    /// Prefetched blocks hit before leaving the cache.
    pub used_blocks: u64,
    /// Prefetched blocks evicted or invalidated unread.
    pub wasted_blocks: u64,
}

impl PrefetchCounters {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] = &[];
}

/// `stats.store`: what the object store was asked, per kind of request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreStats {
    /// Requests per kind (`get`, `head`, `list`, `put`, `create_multipart`, `upload_part`,
    /// `complete_multipart`, `abort_multipart`, `delete`, `copy`, `other`), each kind used
    /// at least once.
    pub requests: BTreeMap<String, StoreKindStats>,
    /// The mount's source, `s3://bucket/prefix/`.
    pub source: String,
}

/// `stats.store.requests.<kind>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreKindStats {
    /// Payload bytes the calls moved.
    pub bytes: u64,
    /// Calls that failed after every retry.
    pub errors: u64,
    /// Latency of a whole call, retries and body included, µs.
    pub latency_us: LatencyUs,
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Requests that failed in a way the client retries.
    pub retries: u64,
}

/// `.kplug/status`: the plugins and which policy serves each role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Which policy serves each role, the governor and its candidates.
    pub active: ActiveStatus,
    /// Reads of the backing store.
    pub backend: StatusBackend,
    /// The block cache's counters (as in stats).
    pub cache: CacheCounters,
    /// Every plugin file (parameter files aside), by file name.
    pub plugins: Vec<PluginEntry>,
    /// Prefetch counters (as in stats).
    pub prefetch: PrefetchCounters,
    /// The scopes of `.kplug/scopes/`, the root scope (`/`) first; empty without scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeStatus>,
    /// The views of `.kplug/views/` (transform plugins, ABI 1.6), by name.
    #[serde(default)]
    pub views: Vec<ViewEntry>,
    /// The background compiles that move plugins from baseline to optimized code.
    #[serde(default)]
    pub tier_ups: TierUps,
}

/// `status.tier_ups`: the optimizing compiles of modules first loaded from baseline code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TierUps {
    /// Asked for (one per load from baseline code).
    pub requested: u64,
    /// Compiled (or found compiled) and handed back for the swap to optimized code.
    pub optimized: u64,
    /// Dropped: by then the file had other bytes, or its baseline instance had faulted or
    /// been replaced.
    pub dropped: u64,
    /// Failed to compile: the baseline code keeps serving.
    pub failed: u64,
}

/// `stats.scopes.NAME`: one scope's share of the cache and its counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScopeStats {
    /// Which policy serves each role in this scope.
    pub active: ActiveRoles,
    /// Blocks its admission policy refused.
    pub admission_refusals: u64,
    /// Blocks evicted from it (to make room for it or for another scope).
    pub evictions: u64,
    /// Plugin faults handled in it.
    pub faults: u64,
    /// Requests of its files (or of its blocks, after a rename) found in the cache.
    pub hits: u64,
    /// The roles it serves with its own copy of an enclosing scope's plugin.
    pub inherited: Vec<Role>,
    /// Blocks inserted into it.
    pub insertions: u64,
    /// Requests of its files not found.
    pub misses: u64,
    /// Its directory (relative to the mount's root); `null` until set (`""`: the whole mount).
    pub path: Option<String>,
    /// Blocks it holds.
    pub resident_blocks: u64,
    /// Its share as written (`25%`, `0.25`, `64MiB`; the root's is what the others leave).
    pub share: String,
    /// Its share in blocks: what it is guaranteed.
    pub share_blocks: u64,
}

impl ScopeStats {
    /// The fields that are levels, not counts (`.kplug/metrics` types them as gauges; every other number is a counter).
    pub const GAUGES: &'static [&'static str] = &["resident_blocks", "share_blocks"];
}

/// `status.scopes[]`: one scope, its settings and its plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeStatus {
    /// Which policy serves each role in this scope.
    pub active: ActiveRoles,
    /// The roles it serves with its own copy of an enclosing scope's plugin.
    pub inherited: Vec<Role>,
    /// Its name (`/` for the root scope).
    pub name: String,
    /// Its directory; `null` until set.
    pub path: Option<String>,
    /// The files of its `plugins/` (the root's are `status.plugins`).
    pub plugins: Vec<PluginEntry>,
    /// Blocks it holds.
    pub resident_blocks: u64,
    /// Its share as written.
    pub share: String,
    /// Its share in blocks.
    pub share_blocks: u64,
}

/// `status.active`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveStatus {
    /// Admission.
    pub admission: String,
    /// A governor's candidates.
    pub candidates: Vec<CandidateEntry>,
    /// Eviction.
    pub eviction: String,
    /// The governor, if one is installed.
    pub governor: Option<String>,
    /// Prefetch.
    pub prefetch: String,
}

/// `status.active.candidates[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateEntry {
    /// Whether it serves its role now.
    pub active: bool,
    /// The fault that put it out for good; null while it is healthy.
    #[serde(default)]
    pub error: Option<String>,
    /// Demand hits counted for it.
    pub hits: u64,
    /// Demand requests counted for it.
    pub requests: u64,
    /// Its role.
    pub role: Role,
    /// The spec the governor registered.
    pub spec: String,
}

/// `status.backend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBackend {
    /// Bytes read.
    pub bytes: u64,
    /// The emulated `--backend-latency`, µs (`stats` calls it `emulated_latency_us`, and
    /// gives the measured latency as `latency_us`).
    pub latency_us: u64,
    /// Data reads.
    pub reads: u64,
}

/// `status.plugins[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginEntry {
    /// The roles it serves now, itself or through a candidate it (a governor) put in service.
    #[serde(default)]
    pub active_roles: Vec<Role>,
    /// Hook calls.
    pub calls: u64,
    /// The fault, refusal or reason that ended it.
    pub error: Option<String>,
    /// Faults seen.
    pub faults: u64,
    /// Its file in `plugins/`.
    pub file: String,
    /// Whether it is a governor.
    pub governor: bool,
    /// Whether it is a probe (ABI 1.5).
    #[serde(default)]
    pub probe: bool,
    /// When it was loaded (or refused), ms since the Unix epoch.
    pub loaded_at: u64,
    /// Its name (the file name without `.wasm`).
    pub name: String,
    /// The text of `NAME.params`, when present.
    pub params: Option<String>,
    /// The roles it implements.
    pub roles: Vec<Role>,
    /// `loading`, `active`, `failed` or `disabled`.
    pub state: PluginState,
    /// µs from the `close()` that loaded it to its first decision; null until then.
    pub swap_latency_us: Option<u64>,
    /// Which compiler made the serving instance's code: `baseline` (a module never compiled
    /// before serves first from Winch's code) until the `optimized` code (Cranelift's)
    /// replaces it; null with no instance.
    #[serde(default)]
    pub code: Option<PluginCode>,
}

/// [`PluginEntry::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginCode {
    /// Winch's code: loaded in milliseconds, replaced when the optimized code is ready.
    Baseline,
    /// Cranelift's code.
    Optimized,
}

/// `stats.views.NAME`: what one view's transform did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ViewStats {
    /// Source bytes fed to the transform.
    pub bytes_in: u64,
    /// Bytes it produced.
    pub bytes_out: u64,
    /// Opens answered from a kept output (no pass).
    pub cache_hits: u64,
    /// Bytes of output kept in memory now.
    pub cached_bytes: u64,
    /// Streams that failed (refused input, output over the cap, unreadable source).
    pub errors: u64,
    /// Faults of the plugin (0 or 1: a fault puts the view out of service).
    pub faults: u64,
    /// Records the plugin counted in (`transform_records`).
    pub records_in: u64,
    /// Records it counted out.
    pub records_out: u64,
    /// Bytes of output kept spilled to the spool now (outputs over 64 MiB).
    #[serde(default)]
    pub spilled_bytes: u64,
    /// Completed passes over a source file.
    pub streams: u64,
    /// Wall time in the plugin's calls, ns.
    pub time_ns: u64,
}

impl ViewStats {
    /// The fields that are levels, not counts.
    pub const GAUGES: &'static [&'static str] = &["cached_bytes", "spilled_bytes"];
}

/// `status.views[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    /// The fault that put the view out of service (every read EIO); null while it serves.
    pub error: Option<String>,
    /// The last stream that failed (that file's open EIO), and why.
    pub last_error: Option<String>,
    /// The view's name: `.kplug/views/NAME`, from `plugins/NAME.wasm`.
    pub name: String,
    /// Whether the output depends on the reader (the transform imports `transform_uid`).
    #[serde(default)]
    pub per_caller: bool,
    /// Whether the transform keeps sizes (no pass for `stat`).
    pub size_preserving: bool,
    /// `active` or `failed`.
    pub state: PluginState,
}

/// A document as the daemon writes it: pretty JSON and a newline.
pub fn to_text(doc: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("documents serialize");
    s.push('\n');
    s
}
