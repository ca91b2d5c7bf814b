//! The kplugfs plugin ABI, defined once: versions, the host imports and plugin exports with
//! their signatures, limits, and the few types both sides share.
//!
//! Everything a plugin and the host must agree on is a constant here, and both sides read it:
//! the guest SDK (`kplug-sdk`) takes its version word, limits and role numbers from this
//! crate, and the host (`kplug-engine`) checks every module's imports and exports against
//! [`imports::ALL`] and the export tables, and registers its host functions under these names.
//! The SDK's `extern "C"` blocks and generated exports must spell names as literals (Rust
//! cannot take a symbol name from a constant), so `fusefs/cache/tests/sdk.rs` builds a plugin
//! that uses every import and export of the SDK and checks each one, name and signature,
//! against these tables. `docs/plugin-abi.md` is the prose of the same contract.
//!
//! **Versioning.** `kplug_abi_version()` returns `(major << 16) | minor`. The host accepts
//! `major == ABI_MAJOR` and `minor <= ABI_MINOR`. A minor version may only *add* optional
//! exports (new roles such as a governor's `kplug_tick`) and imports (introspection such as
//! the hit ratio); a plugin built against minor N therefore runs on every host of minor >= N,
//! and a plugin importing something its host does not know is refused at load, naming it.
//! Each [`Func`] records the minor version that introduced it.
//!
//! **Limits** are chosen so that a hostile plugin costs a bounded amount of host memory and
//! time, while honest policies never come near them: an LRU over a million blocks needs
//! ~40 MiB of guest memory, a hook runs in tens of nanoseconds against a deadline of
//! milliseconds.
//!
//! `no_std`, no dependencies (`serde` derives behind the `serde` feature).

#![no_std]
#![deny(missing_docs)]

use core::time::Duration;

pub mod c;

/// Major version of the ABI.
pub const ABI_MAJOR: u32 = 1;
/// Minor version of the ABI (the highest minor a host accepts). 1.1 added the introspection
/// imports and the governor role; 1.2 added `set_weight`; 1.3 the file facts (`block_size`,
/// `file_size`, `add_glob`, `path_matches`); 1.4 the batched eviction hooks
/// ([`exports::EVICTION_BATCHED`]); 1.5 the probe role (`kplug_probe_*`, `probe_filter`,
/// `probe_path`, `publish`, `probe_figure`; see [`probe`]); 1.6 the transform role
/// (data-path plugins: `kplug_transform_*`, `transform_records`, `transform_uid`); 1.7 the
/// probes' subtree filter (`probe_subtree`) and their policy events ([`probe::Kind::Policy`]);
/// 1.8 eviction by handle ([`exports::EVICTION_HANDLES`]); 1.9 the load's replay in batches
/// ([`exports::EVICT_SEED`]); 1.10 victims named ahead ([`exports::EVICT_AHEAD`]); 1.11
/// likely victims ([`exports::EVICT_HINTS`]); 1.12 the coming requests
/// ([`exports::EVICT_LOOKAHEAD`]); 1.13 the hits that may wait ([`exports::EVICT_HIT_MARKS`]).
pub const ABI_MINOR: u32 = 13;
/// The version word of this ABI, what `kplug_abi_version` returns for a plugin built on it.
pub const ABI_VERSION: u32 = (ABI_MAJOR << 16) | ABI_MINOR;

/// The signature of an ABI function, one letter per value: `I` = i32, `L` = i64, `F` = f64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sig {
    /// Parameter types.
    pub params: &'static str,
    /// Result types.
    pub results: &'static str,
}

/// A function of the ABI: a host import or a plugin export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Func {
    /// Its name (the import's field name in module [`imports::MODULE`], or the export name).
    pub name: &'static str,
    /// Its wasm signature.
    pub sig: Sig,
    /// The minor version of ABI 1 that introduced it.
    pub since_minor: u32,
    /// The parameters' names, one per letter of `sig.params` (what the docs, the C header
    /// `plugin-sdk/c/kplug.h` and error messages call them). An `i32` named `ptr` or
    /// `*_ptr` is an address in the plugin's memory (`out_ptr`: one the host writes).
    pub args: &'static [&'static str],
}

const fn func(
    name: &'static str,
    params: &'static str,
    results: &'static str,
    since: u32,
    args: &'static [&'static str],
) -> Func {
    assert!(params.len() == args.len(), "one name per parameter");
    Func {
        name,
        sig: Sig { params, results },
        since_minor: since,
        args,
    }
}

/// The functions the host provides, all in module [`imports::MODULE`]. A module imports only
/// what it calls; anything else (WASI included) is refused at load.
pub mod imports {
    use super::{Func, func};

    /// Module name of every host import.
    pub const MODULE: &str = "kplug";
    /// `log(level: i32, ptr: i32, len: i32)`: a UTF-8 message (lossy) at a [`Level`](crate::Level).
    pub const LOG: Func = func("log", "III", "", 0, &["level", "ptr", "len"]);
    /// `capacity() -> i64`: the cache capacity in blocks.
    pub const CAPACITY: Func = func("capacity", "", "L", 0, &[]);
    /// `resident() -> i64`: the number of blocks resident right now.
    pub const RESIDENT: Func = func("resident", "", "L", 0, &[]);
    /// `hit_ratio() -> f64`: hits / requests over the last window of requests.
    pub const HIT_RATIO: Func = func("hit_ratio", "", "F", 1, &[]);
    /// `pressure() -> f64`: the fraction of recent insertions that had to evict.
    pub const PRESSURE: Func = func("pressure", "", "F", 1, &[]);
    /// `sequentiality(file: i64) -> f64`: how sequential the file's recent accesses are
    /// (`file = -1`: every file's together).
    pub const SEQUENTIALITY: Func = func("sequentiality", "L", "F", 1, &["file"]);
    /// `backend_latency_ns() -> i64`: recent backend read latency.
    pub const BACKEND_LATENCY: Func = func("backend_latency_ns", "", "L", 1, &[]);
    /// `now_ns() -> i64`: monotonic time (logical in the simulator).
    pub const NOW: Func = func("now_ns", "", "L", 1, &[]);
    /// Governor, load time only: `add_candidate(role: i32, spec_ptr: i32, spec_len: i32) ->
    /// i32` registers a candidate policy (`name` or `name:key=value;key=value`) for a
    /// [`Role`](crate::Role); its index, or -1 if refused.
    pub const ADD_CANDIDATE: Func = func("add_candidate", "III", "I", 1, &["role", "ptr", "len"]);
    /// Governor: `candidate_hits(index: i32) -> i64`, demand hits counted for the candidate
    /// since it was registered; -1 for a bad index or a candidate without figures.
    pub const CANDIDATE_HITS: Func = func("candidate_hits", "I", "L", 1, &["index"]);
    /// Governor: `candidate_requests(index: i32) -> i64`, demand requests counted likewise.
    pub const CANDIDATE_REQUESTS: Func = func("candidate_requests", "I", "L", 1, &["index"]);
    /// Governor: `candidate_divergence(index: i32) -> i64`, about how many blocks the eviction
    /// candidate's shadow holds that the cache does not; -1 without a shadow.
    pub const CANDIDATE_DIVERGENCE: Func = func("candidate_divergence", "I", "L", 1, &["index"]);
    /// Governor: `active(role: i32) -> i32`, the candidate serving the role, -1 if none.
    pub const ACTIVE: Func = func("active", "I", "I", 1, &["role"]);
    /// Governor: `activate(index: i32) -> i32`, make the candidate serve its role once the
    /// current call returns (0), or -1 for a bad index.
    pub const ACTIVATE: Func = func("activate", "I", "I", 1, &["index"]);
    /// Governor: `set_weight(index: i32, weight: f64) -> i32`, an eviction candidate's weight
    /// (finite, >= 0) in the cache's eviction vote (0), or -1 when refused.
    pub const SET_WEIGHT: Func = func("set_weight", "IF", "I", 2, &["index", "weight"]);
    /// `block_size() -> i64`: bytes per block of the cache; -1 where blocks have no fixed
    /// size (the simulator's objects).
    pub const BLOCK_SIZE: Func = func("block_size", "", "L", 3, &[]);
    /// `file_size(file: i64) -> i64`: the size in bytes of `file` (`key >> 32`) as the
    /// cache last saw it; -1 when unknown (a file not read yet, the simulator).
    pub const FILE_SIZE: Func = func("file_size", "L", "L", 3, &["file"]);
    /// Load time only: `add_glob(ptr: i32, len: i32) -> i32` registers a path pattern
    /// (UTF-8, at most [`MAX_GLOB_BYTES`](crate::MAX_GLOB_BYTES), at most
    /// [`MAX_GLOBS`](crate::MAX_GLOBS)); its index, or -1 if refused (not loading, too many,
    /// too long, not UTF-8, not a pattern). The host matches paths; no string crosses per call.
    pub const ADD_GLOB: Func = func("add_glob", "II", "I", 3, &["ptr", "len"]);
    /// `path_matches(file: i64, glob: i32) -> i32`: 1 if the path of `file` matches pattern
    /// `glob`, 0 if not, -1 for a bad index or a file whose path is unknown.
    pub const PATH_MATCHES: Func = func("path_matches", "LI", "I", 3, &["file", "glob"]);
    /// Probe, load time only: `probe_filter(kinds: i32, uid: i64) -> i32` chooses the events
    /// the host queues for the probe: `kinds` a mask of `1 << kind` (see
    /// [`probe::Kind`](crate::probe::Kind)), `uid` the caller's uid of FUSE events (-1: any).
    /// 0, or -1 if refused (not loading, no known kind in the mask, a bad uid). Without a
    /// call the probe gets every event.
    pub const PROBE_FILTER: Func = func("probe_filter", "IL", "I", 5, &["kinds", "uid"]);
    /// Probe, load time only: `probe_subtree(ptr: i32, len: i32) -> i32` takes only events on
    /// files and directories under the directory named by the UTF-8 at `ptr` (from the
    /// mount's root, `/`-separated, at most [`MAX_GLOB_BYTES`](crate::MAX_GLOB_BYTES); empty:
    /// the whole mount). 0, or -1 if refused (not loading, not UTF-8, a `.` or `..`
    /// component). The host tests the event's inode before queueing it.
    pub const PROBE_SUBTREE: Func = func("probe_subtree", "II", "I", 7, &["ptr", "len"]);
    /// Probe: `probe_path(ino: i64, ptr: i32, cap: i32) -> i32` writes at most `cap` bytes of
    /// the path (from the mount's root, no leading `/`) of the file of inode `ino`, as seen by
    /// the events delivered so far, and returns its full length; -1 when unknown.
    pub const PROBE_PATH: Func = func("probe_path", "LII", "I", 5, &["ino", "out_ptr", "cap"]);
    /// Probe: `publish(ptr: i32, len: i32, value: f64) -> i32` sets the probe's figure named
    /// by the UTF-8 at `ptr` (1..=[`MAX_FIGURE_NAME`](crate::probe::MAX_FIGURE_NAME) bytes,
    /// at most [`MAX_PROBE_FIGURES`](crate::probe::MAX_PROBE_FIGURES) names) to a finite
    /// `value`, readable by every plugin of the mount as `PROBE/NAME`; 0, or -1 if refused.
    pub const PUBLISH: Func = func("publish", "IIF", "I", 5, &["ptr", "len", "value"]);
    /// `probe_figure(ptr: i32, len: i32) -> f64`: the figure a probe published, named
    /// `PROBE/NAME` by the UTF-8 at `ptr`; NaN when there is none.
    pub const PROBE_FIGURE: Func = func("probe_figure", "II", "F", 5, &["ptr", "len"]);
    /// Transform: `transform_records(records_in: i64, records_out: i64)` adds to the records
    /// the view counts in and out (`.kplug/stats`); negative counts are ignored.
    pub const TRANSFORM_RECORDS: Func = func(
        "transform_records",
        "LL",
        "",
        6,
        &["records_in", "records_out"],
    );
    /// Transform: `transform_uid() -> i64`, the user id of the reader whose open started the
    /// current stream (-1 unknown). A transform importing it is **per-caller**: the host keeps
    /// its outputs per user and requires it to be size-preserving (`stat` has no caller).
    pub const TRANSFORM_UID: Func = func("transform_uid", "", "L", 6, &[]);

    /// Every import, in the order `docs/plugin-abi.md` lists them.
    pub const ALL: &[Func] = &[
        LOG,
        CAPACITY,
        RESIDENT,
        HIT_RATIO,
        PRESSURE,
        SEQUENTIALITY,
        BACKEND_LATENCY,
        NOW,
        ADD_CANDIDATE,
        CANDIDATE_HITS,
        CANDIDATE_REQUESTS,
        CANDIDATE_DIVERGENCE,
        ACTIVE,
        ACTIVATE,
        SET_WEIGHT,
        BLOCK_SIZE,
        FILE_SIZE,
        ADD_GLOB,
        PATH_MATCHES,
        PROBE_FILTER,
        PROBE_SUBTREE,
        PROBE_PATH,
        PUBLISH,
        PROBE_FIGURE,
        TRANSFORM_RECORDS,
        TRANSFORM_UID,
    ];

    /// The import named `name`, if the ABI has one.
    pub fn find(name: &str) -> Option<&'static Func> {
        ALL.iter().find(|f| f.name == name)
    }
}

/// The functions (and the memory) a plugin exports.
pub mod exports {
    use super::{Func, func};

    /// Required: the plugin's linear memory (32-bit, not shared).
    pub const MEMORY: &str = "memory";
    /// Required: `kplug_abi_version() -> i32`, the version word.
    pub const ABI_VERSION: Func = func("kplug_abi_version", "", "I", 0, &[]);
    /// Optional: `kplug_alloc(len: i32) -> i32`, a guest buffer for parameter strings
    /// (0 = refuse).
    pub const ALLOC: Func = func("kplug_alloc", "I", "I", 0, &["len"]);
    /// Optional: `kplug_set_param(key_ptr, key_len, val_ptr, val_len: i32) -> i32`
    /// (0 = accepted).
    pub const SET_PARAM: Func = func(
        "kplug_set_param",
        "IIII",
        "I",
        0,
        &["key_ptr", "key_len", "val_ptr", "val_len"],
    );
    /// Optional: `kplug_init(capacity_blocks: i64) -> i32` (0 = ok), once after the params.
    pub const INIT: Func = func("kplug_init", "L", "I", 0, &["capacity_blocks"]);
    /// The optional lifecycle exports, each checked when present.
    pub const LIFECYCLE: &[Func] = &[ALLOC, SET_PARAM, INIT];

    /// Eviction: `kplug_evict_insert(key: i64)`, a block became resident.
    pub const EVICT_INSERT: Func = func("kplug_evict_insert", "L", "", 0, &["key"]);
    /// Eviction: `kplug_evict_access(key: i64)`, a hit on a resident block.
    pub const EVICT_ACCESS: Func = func("kplug_evict_access", "L", "", 0, &["key"]);
    /// Eviction: `kplug_evict_remove(key: i64)`, the host dropped a block (invalidation).
    pub const EVICT_REMOVE: Func = func("kplug_evict_remove", "L", "", 0, &["key"]);
    /// Eviction: `kplug_evict_victim() -> i64`, propose a resident block to evict.
    pub const EVICT_VICTIM: Func = func("kplug_evict_victim", "", "L", 0, &[]);
    /// Batched eviction (1.4): `kplug_evict_buf() -> i32`, the address of the key buffer
    /// ([`EVICT_BUF_KEYS`](crate::EVICT_BUF_KEYS) little-endian `u64`s) through which the host
    /// passes hits and the plugin returns victims; called once at load.
    pub const EVICT_BUF: Func = func("kplug_evict_buf", "", "I", 4, &[]);
    /// Batched eviction (1.4): `kplug_evict_hit_batch() -> i32`, the most hits the host may
    /// deliver in one `kplug_evict_hits` call, 1..=[`EVICT_BUF_KEYS`](crate::EVICT_BUF_KEYS);
    /// called once at load.
    pub const EVICT_HIT_BATCH: Func = func("kplug_evict_hit_batch", "", "I", 4, &[]);
    /// Batched eviction (1.4): `kplug_evict_miss(key: i64, need: i32) -> i32`: block `key`
    /// is about to become resident and the cache must first lose `need` blocks. The plugin
    /// writes `n >= need` victims at the buffer, forgets them, starts tracking `key` and
    /// returns `n`.
    pub const EVICT_MISS: Func = func("kplug_evict_miss", "LI", "I", 4, &["key", "need"]);
    /// Batched eviction (1.4): `kplug_evict_hits(n: i32) -> i32`: the buffer holds `n` hits,
    /// oldest first; the plugin writes the victims it chose while taking them (usually none)
    /// at the buffer and returns their number.
    pub const EVICT_HITS: Func = func("kplug_evict_hits", "I", "I", 4, &["n"]);
    /// Eviction by handle (1.8): `kplug_evict_handle_miss(hits: i32, key: i64, need: i32) ->
    /// i64`. The key buffer first holds `hits` handles of hits (oldest first), which the
    /// plugin takes before the miss; block `key` is then about to become resident and the
    /// cache must lose `need` blocks. The plugin writes `n >= need` victims (keys) at the
    /// buffer, counting any it chose while taking the hits, forgets them, starts tracking
    /// `key` and returns `(handle << 32) | n`: `handle` is any 32-bit value the plugin
    /// chooses for `key` (its slot, say); the host passes it back with each hit on `key` and
    /// when it drops `key`, and never interprets it. 1.10, a plugin exporting
    /// [`EVICT_AHEAD`] with a nonzero answer: the buffer's `hits` entries may hold misses
    /// taken without a call ([`EVICT_MISS_EVENT`](crate::EVICT_MISS_EVENT)), and the answer is
    /// `(handle << 32) | (a << 16) | n` with `n + a <= 256`: after its `n` victims the plugin
    /// wrote the `a` blocks it would evict next (keys, in order, still tracked), see
    /// [`EVICT_AHEAD`]. 1.11, a plugin exporting [`EVICT_HINTS`] with a nonzero answer:
    /// `(handle << 32) | (h << 24) | (a << 16) | n`, `a < 256`, `n + a + h <= 256`, and the
    /// `h` keys after the blocks named ahead are its likely next victims (advice only).
    /// 1.12, a plugin exporting [`EVICT_LOOKAHEAD`] with a nonzero answer: `hits` is
    /// `(c << 16) | e`, the buffer's first `e` entries the hits and its last `c` entries the
    /// keys of requests to come, over which the plugin writes offsets in its memory to read
    /// ahead (advice only, see [`EVICT_LOOKAHEAD`]); its answer reads as 1.11's.
    pub const EVICT_HANDLE_MISS: Func = func(
        "kplug_evict_handle_miss",
        "ILI",
        "L",
        8,
        &["hits", "key", "need"],
    );
    /// Eviction by handle (1.8): `kplug_evict_handle_hits(n: i32) -> i32`: the buffer holds
    /// the handles of `n` hits, oldest first; the plugin writes the victims it chose while
    /// taking them (usually none) at the buffer and returns their number.
    pub const EVICT_HANDLE_HITS: Func = func("kplug_evict_handle_hits", "I", "I", 8, &["n"]);
    /// Eviction by handle (1.8): `kplug_evict_handle_remove(key: i64, handle: i32)`: the
    /// host dropped resident `key`, whose handle is `handle` (invalidation).
    pub const EVICT_HANDLE_REMOVE: Func =
        func("kplug_evict_handle_remove", "LI", "", 8, &["key", "handle"]);
    /// Optional with either batched set (1.9): `kplug_evict_seed(n: i32) -> i64`, the blocks
    /// already resident when the plugin is loaded, told in batches. The key buffer holds `n`
    /// keys (1..=[`EVICT_SEED_KEYS`](crate::EVICT_SEED_KEYS)), least recently used first. The
    /// plugin takes a first `taken` of them (1..=`n`) in order, each as the miss of a block
    /// that needs no room (`kplug_evict_miss(key, 0)`, or `kplug_evict_handle_miss(0, key,
    /// 0)`, would take it); by handle, it writes the handle of key `i` as a little-endian
    /// `u32` at byte [`EVICT_SEED_HANDLES_AT`](crate::EVICT_SEED_HANDLES_AT)` + 4 * i` of the
    /// buffer; it writes the victims it chose while taking them (usually none; at most
    /// `EVICT_SEED_KEYS`) at the buffer's start, and returns `(taken << 32) | victims`. The
    /// host calls again with the keys it did not take. Without it, the host tells each block
    /// with its own miss call.
    pub const EVICT_SEED: Func = func("kplug_evict_seed", "I", "L", 9, &["n"]);
    /// Optional with the by-handle set (1.10): `kplug_evict_ahead() -> i32`, called once at
    /// load: the most victims the plugin names ahead in one `kplug_evict_handle_miss`
    /// answer, 0..=[`EVICT_AHEAD_KEYS`](crate::EVICT_AHEAD_KEYS) (0, or no such export: none).
    /// A block named ahead is the plugin's promise: at the next misses that need one block
    /// of room, the host may evict the named blocks in order without a call, as long as the
    /// block it takes has had no hit since the answer and is resident, and give each missed
    /// block the handle of the block it replaced; it tells the plugin each such miss in the
    /// next call's hits ([`EVICT_MISS_EVENT`](crate::EVICT_MISS_EVENT)), in order with the
    /// hits. It stops at the first named block that fails the test, or at a miss needing
    /// other than one block, and calls; with the hits' room short it delivers them first
    /// (`kplug_evict_handle_hits`; victims named then are the miss's room, and the miss a
    /// call); each `kplug_evict_handle_miss` answer replaces the blocks named before. With a
    /// hit batch under 3 the host keeps nothing named; beside the by-key set the export is
    /// ignored. A policy may name
    /// ahead only what its `victim` would answer (LRU, FIFO: the back of its list).
    pub const EVICT_AHEAD: Func = func("kplug_evict_ahead", "", "I", 10, &[]);
    /// Optional with the by-handle set (1.11): `kplug_evict_hints() -> i32`, called once at
    /// load: the most **likely victims** one `kplug_evict_handle_miss` answer names,
    /// 0..=[`EVICT_HINT_KEYS`](crate::EVICT_HINT_KEYS) (0, or no such export: none). They are
    /// advice, for a policy whose next victim is one of a few blocks it knows but cannot
    /// promise ahead (ARC: the back of T1 or of T2, as the next missed key decides): the host
    /// reads their entries into its caches meanwhile, so the next victim's removal finds its
    /// entry there, and does nothing else with them (a key not resident, repeated or never
    /// evicted costs a wasted read, never a fault). Beside the by-key set it is ignored.
    pub const EVICT_HINTS: Func = func("kplug_evict_hints", "", "I", 11, &[]);
    /// Optional with the by-handle set (1.12): `kplug_evict_lookahead() -> i32`, called once
    /// at load: the most keys of **coming requests** one `kplug_evict_handle_miss` call may
    /// carry, 0..=[`EVICT_LOOKAHEAD_KEYS`](crate::EVICT_LOOKAHEAD_KEYS) (0, or no such
    /// export: none). A host that knows the requests to come (the simulator, replaying a
    /// trace; a mount never does) tells a request's key at most once, in a call at most
    /// `EVICT_LOOKAHEAD_KEYS` requests before it is made: the newest `c` (at most the
    /// plugin's count) told since the last such call, oldest first, in the key buffer's last
    /// `c` entries, `c` in bits 16-23 of `hits` (the host's hit batch is at most `256 -` the
    /// plugin's count, so they never meet the hits). The plugin writes over each key an
    /// offset in its linear memory where it will read for that key (`u64::MAX`: none), and
    /// after the call the host prefetches each offset below 4 GiB, unless the answer's
    /// victims, blocks named ahead and likely victims reached into those entries. Advice,
    /// for a policy whose miss looks the missed key up in a table of its own (ARC's index
    /// of its ghosts), which wasm cannot prefetch: a wrong key or offset costs a wasted read,
    /// never a fault. Whether a coming request hits, and whether it is made at all, the
    /// plugin learns as before. The answer of a plugin exporting it reads as 1.11's (`h` in
    /// bits 24-31, 0 without likely victims). Beside the by-key set it is ignored.
    pub const EVICT_LOOKAHEAD: Func = func("kplug_evict_lookahead", "", "I", 12, &[]);
    /// Optional with the by-handle set (1.13): `kplug_evict_hit_marks() -> i32`, called once
    /// at load: the address of the plugin's **hit marks** header (0: none), 8 bytes that stay
    /// there for the instance's life: a table's address and its length in bytes, each a
    /// little-endian `u32`, which the plugin keeps current (the table may move as it grows).
    /// Byte `h` of the table, nonzero, promises that a hit on handle `h` evicts nothing, and
    /// that taking it unmarks no handle, so the hit may wait for the next call whatever the
    /// plugin's hit batch: for a policy whose hits can evict, and whose hit batch is
    /// therefore 1, but only some of them (LIRS: a hit on a LIR block never evicts; one on a
    /// HIR block can). The host reads the byte at each hit, from the header and table as the
    /// plugin's last call left them: a hit on a marked handle waits (up to
    /// [`EVICT_BUF_KEYS`](crate::EVICT_BUF_KEYS) less the coming requests' room, 1.12); once
    /// one on an unmarked handle waits, the hit batch bounds the hits waiting until the next
    /// call (with a batch of 1 it is delivered at once, with the hits before it). A header, table or handle outside the plugin's memory or the table reads
    /// as unmarked (a wrong mark misleads only the plugin's own policy; the host checks its
    /// answers as ever). Ignored beside the by-key set and from a plugin naming victims ahead
    /// ([`EVICT_AHEAD`]: a miss taken without a call gives a handle to another block).
    pub const EVICT_HIT_MARKS: Func = func("kplug_evict_hit_marks", "", "I", 13, &[]);
    /// Admission: `kplug_admit(key: i64, file: i64, block: i64) -> i32`, 1 = admit, 0 = refuse.
    pub const ADMIT: Func = func("kplug_admit", "LLL", "I", 0, &["key", "file", "block"]);
    /// Prefetch: `kplug_prefetch_buf() -> i32`, address of the range output array
    /// ([`MAX_PREFETCH_RANGES`](crate::MAX_PREFETCH_RANGES) ranges of
    /// [`PREFETCH_RANGE_BYTES`](crate::PREFETCH_RANGE_BYTES)).
    pub const PREFETCH_BUF: Func = func("kplug_prefetch_buf", "", "I", 0, &[]);
    /// Prefetch: `kplug_prefetch(file: i64, block: i64, file_blocks: i64, hit: i32) -> i32`,
    /// the number of ranges written.
    pub const PREFETCH: Func = func(
        "kplug_prefetch",
        "LLLI",
        "I",
        0,
        &["file", "block", "file_blocks", "hit"],
    );
    /// Governor: `kplug_tick(now_ns: i64) -> i32`, called periodically (every N requests in
    /// the simulator, on a timer in the mount); 0 = ok, anything else is a fault.
    pub const TICK: Func = func("kplug_tick", "L", "I", 1, &["now_ns"]);

    /// Probe: `kplug_probe_buf() -> i32`, the address of the event buffer of
    /// [`PROBE_BATCH_EVENTS`](crate::probe::PROBE_BATCH_EVENTS) events of
    /// [`PROBE_EVENT_BYTES`](crate::probe::PROBE_EVENT_BYTES); called once at load.
    pub const PROBE_BUF: Func = func("kplug_probe_buf", "", "I", 5, &[]);
    /// Probe: `kplug_probe_events(n: i32) -> i32`, the buffer holds `n` events (oldest
    /// first); 0 = ok, anything else is a fault.
    pub const PROBE_EVENTS: Func = func("kplug_probe_events", "I", "I", 5, &["n"]);
    /// Probe: `kplug_probe_report() -> i64`, write the report (text or JSON) in memory and
    /// return `(ptr << 32) | len`; at most
    /// [`MAX_PROBE_REPORT_BYTES`](crate::probe::MAX_PROBE_REPORT_BYTES).
    pub const PROBE_REPORT: Func = func("kplug_probe_report", "", "L", 5, &[]);

    /// Transform (1.6): `kplug_transform_in_buf() -> i32`, address of the input buffer
    /// ([`TRANSFORM_IN_BYTES`](crate::TRANSFORM_IN_BYTES)), asked once at load.
    pub const TRANSFORM_IN_BUF: Func = func("kplug_transform_in_buf", "", "I", 6, &[]);
    /// Transform: `kplug_transform_out_buf() -> i32`, address of the output buffer
    /// ([`TRANSFORM_OUT_BYTES`](crate::TRANSFORM_OUT_BYTES)), asked once at load.
    pub const TRANSFORM_OUT_BUF: Func = func("kplug_transform_out_buf", "", "I", 6, &[]);
    /// Transform: `kplug_transform_begin(file_size: i64) -> i32`, a new stream starts (its
    /// source size, -1 if unknown); the plugin forgets any earlier stream. 0 = ok.
    pub const TRANSFORM_BEGIN: Func = func("kplug_transform_begin", "L", "I", 6, &["file_size"]);
    /// Transform: `kplug_transform_chunk(len: i32, last: i32) -> i32`: the first `len` bytes
    /// of the input buffer are the stream's next bytes (`last` = 1: the final chunk, maybe
    /// empty). Returns the bytes written at the start of the output buffer, with
    /// [`TRANSFORM_MORE`](crate::TRANSFORM_MORE) set when more output is pending (the host
    /// then calls again with `len` = 0 and the same `last` before any new input); negative =
    /// the plugin's error (the read fails with EIO).
    pub const TRANSFORM_CHUNK: Func = func("kplug_transform_chunk", "II", "I", 6, &["len", "last"]);
    /// Transform, optional: `kplug_transform_flags() -> i32`, asked once at load;
    /// [`TRANSFORM_SIZE_PRESERVING`](crate::TRANSFORM_SIZE_PRESERVING) promises output as long
    /// as its input (the host checks it).
    pub const TRANSFORM_FLAGS: Func = func("kplug_transform_flags", "", "I", 6, &[]);

    /// The exports of the eviction role (1.0): one call per insertion, hit and victim.
    pub const EVICTION: &[Func] = &[EVICT_INSERT, EVICT_ACCESS, EVICT_REMOVE, EVICT_VICTIM];
    /// The batched exports of the eviction role (1.4): a plugin serves eviction by exporting
    /// either [`EVICTION`] or this set, each whole; the host prefers this one when both are.
    pub const EVICTION_BATCHED: &[Func] = &[
        EVICT_BUF,
        EVICT_HIT_BATCH,
        EVICT_MISS,
        EVICT_HITS,
        EVICT_REMOVE,
    ];
    /// The exports of eviction by handle (1.8): a third way to serve eviction, which the host
    /// prefers to the other two when a module exports it whole. Each resident block carries
    /// the 32-bit handle the plugin gave it, so a policy finds its state by indexing, not by
    /// hashing the key (as cache_ext's policies get the folio, libCacheSim's the object);
    /// the hits waiting ride along with the next miss. Victims are still keys, checked
    /// resident by the host.
    pub const EVICTION_HANDLES: &[Func] = &[
        EVICT_BUF,
        EVICT_HIT_BATCH,
        EVICT_HANDLE_MISS,
        EVICT_HANDLE_HITS,
        EVICT_HANDLE_REMOVE,
    ];
    /// The optional exports of either batched eviction set (1.9), checked when present: one
    /// exported without a batched set is a set exported in part.
    pub const EVICTION_OPTIONAL: &[Func] = &[
        EVICT_SEED,
        EVICT_AHEAD,
        EVICT_HINTS,
        EVICT_LOOKAHEAD,
        EVICT_HIT_MARKS,
    ];
    /// The exports of the admission role.
    pub const ADMISSION: &[Func] = &[ADMIT];
    /// The exports of the prefetch role.
    pub const PREFETCH_ROLE: &[Func] = &[PREFETCH_BUF, PREFETCH];
    /// The exports of the governor role.
    pub const GOVERNOR: &[Func] = &[TICK];
    /// The exports of a probe (ABI 1.5): all three, or the module is refused.
    pub const PROBE: &[Func] = &[PROBE_BUF, PROBE_EVENTS, PROBE_REPORT];
    /// The required exports of the transform role (1.6); [`TRANSFORM_FLAGS`] is optional.
    pub const TRANSFORM: &[Func] = &[
        TRANSFORM_IN_BUF,
        TRANSFORM_OUT_BUF,
        TRANSFORM_BEGIN,
        TRANSFORM_CHUNK,
    ];

    /// Every export function, required, lifecycle and role exports.
    pub const ALL: &[Func] = &[
        ABI_VERSION,
        ALLOC,
        SET_PARAM,
        INIT,
        EVICT_INSERT,
        EVICT_ACCESS,
        EVICT_REMOVE,
        EVICT_VICTIM,
        EVICT_BUF,
        EVICT_HIT_BATCH,
        EVICT_MISS,
        EVICT_HITS,
        EVICT_HANDLE_MISS,
        EVICT_HANDLE_HITS,
        EVICT_HANDLE_REMOVE,
        EVICT_SEED,
        EVICT_AHEAD,
        EVICT_HINTS,
        EVICT_LOOKAHEAD,
        EVICT_HIT_MARKS,
        ADMIT,
        PREFETCH_BUF,
        PREFETCH,
        TICK,
        PROBE_BUF,
        PROBE_EVENTS,
        PROBE_REPORT,
        TRANSFORM_IN_BUF,
        TRANSFORM_OUT_BUF,
        TRANSFORM_BEGIN,
        TRANSFORM_CHUNK,
        TRANSFORM_FLAGS,
    ];

    /// The export named `name`, if the ABI has one.
    pub fn find(name: &str) -> Option<&'static Func> {
        ALL.iter().find(|f| f.name == name)
    }
}

/// Keys in the batched eviction buffer (1.4): the most hits one `kplug_evict_hits` call
/// carries and the most victims one call may return (2 KiB of guest memory).
pub const EVICT_BUF_KEYS: usize = 256;
/// The most keys one `kplug_evict_seed` call carries (1.9), and the most victims it may
/// return: the first half of the key buffer.
pub const EVICT_SEED_KEYS: usize = EVICT_BUF_KEYS / 2;
/// Where in the key buffer `kplug_evict_seed` writes the handles of the keys it took (1.9):
/// the byte after the victims' half.
pub const EVICT_SEED_HANDLES_AT: usize = 8 * EVICT_SEED_KEYS;
/// The most victims one `kplug_evict_handle_miss` answer names ahead (1.10,
/// [`exports::EVICT_AHEAD`]).
pub const EVICT_AHEAD_KEYS: usize = 64;
/// The most likely victims one `kplug_evict_handle_miss` answer names (1.11,
/// [`exports::EVICT_HINTS`]).
pub const EVICT_HINT_KEYS: usize = 8;
/// The most keys of coming requests one `kplug_evict_handle_miss` call carries (1.12,
/// [`exports::EVICT_LOOKAHEAD`]).
pub const EVICT_LOOKAHEAD_KEYS: usize = 8;
/// The smallest hit batch with which the host keeps the blocks a plugin names ahead (1.10,
/// [`exports::EVICT_AHEAD`]): a miss taken without a call is two entries among the hits,
/// kept below the batch; under it no miss fits, and nothing named is kept.
pub const EVICT_AHEAD_MIN_HIT_BATCH: usize = 3;
/// Marks a miss among a by-handle call's hits (1.10, [`exports::EVICT_AHEAD`]): the entry
/// `EVICT_MISS_EVENT | handle` and the one after it, `key`, say that the host evicted the
/// next block the plugin named ahead, whose handle was `handle`, and that block `key`
/// entered in its place with that handle. A hit's entry is a handle, below `2^32`.
pub const EVICT_MISS_EVENT: u64 = 1 << 63;

pub mod probe;

/// Most ranges one `kplug_prefetch` call may return.
pub const MAX_PREFETCH_RANGES: usize = 64;
/// Size of one prefetch range in guest memory: `{start: u64, len: u64}` little-endian.
pub const PREFETCH_RANGE_BYTES: usize = 16;
/// Size of a transform's input buffer: the most bytes one `kplug_transform_chunk` gets
/// (64 KiB: a few block-cache blocks, small enough that a chunk's deadline stays short).
pub const TRANSFORM_IN_BYTES: usize = 64 << 10;
/// Size of a transform's output buffer: the most bytes one `kplug_transform_chunk` answers
/// (256 KiB: a 64 KiB chunk expanding 4x needs one call; more is drained with
/// [`TRANSFORM_MORE`]).
pub const TRANSFORM_OUT_BYTES: usize = 256 << 10;
/// Bit of `kplug_transform_chunk`'s answer: more output is pending for the same input.
pub const TRANSFORM_MORE: i32 = 1 << 30;
/// Bit of `kplug_transform_flags`: the output of every stream is exactly as long as its input
/// (masking, redaction): `stat` of a view gives the source size without a pass.
pub const TRANSFORM_SIZE_PRESERVING: i32 = 1;
/// Default cap on one stream's output (1 GiB): a decompression bomb is an error, not an OOM.
pub const DEFAULT_TRANSFORM_OUTPUT_CAP: u64 = 1 << 30;
/// Time a transform call may take, in CPU: a base of [`TRANSFORM_BASE_TICKS`] ticks plus one
/// tick per this many bytes of input and output buffer the call handles (4 MiB/s of CPU: a
/// hundred times slower than an honest filter, so a busy machine never trips it, while an
/// infinite loop is stopped within ~0.1 s).
pub const TRANSFORM_BYTES_PER_TICK: u64 = 4 << 10;
/// Base deadline of one transform call, in ticks.
pub const TRANSFORM_BASE_TICKS: u64 = 5;

/// Largest module accepted, in bytes. A policy is a few KiB to a few hundred KiB; 16 MiB
/// leaves room for big lookup tables while bounding compile time.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Default base of the cap on a plugin's linear memory (64 MiB), to which each instance adds
/// [`MEMORY_PER_BLOCK`] per block of its cache's capacity: small enough that dozens of
/// plugins fit in RAM beside a small cache. A module's *initial* memory must fit in the base.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;
/// Bytes of linear memory an instance may grow by for each block (or object, in `kplugfs
/// sim`) of the capacity it is loaded for, beyond [`DEFAULT_MEMORY_LIMIT`]: a policy's state
/// grows with the blocks it tracks, so a fixed cap would fault every policy past some cache
/// size (at a flat 64 MiB, on a Zipf trace: LIRS past about 150,000 blocks, ARC past about
/// 500,000, S3-FIFO and W-TinyLFU past about 750,000).
/// The shipped policies peak at 25-502 bytes a block (LIRS the most: an entry for up to
/// twice the capacity, in tables that double as they grow; docs/plugin-abi.md §1); 1 KiB is
/// a quarter of a 4 KiB block's data.
pub const MEMORY_PER_BLOCK: usize = 1 << 10;
/// The most a 32-bit linear memory can hold: 65,536 pages of 64 KiB (4 GiB).
pub const MAX_LINEAR_MEMORY: u64 = 1 << 32;

/// The cap on the linear memory of an instance loaded for a cache of `capacity` blocks:
/// `base + per_block x capacity`, at most [`MAX_LINEAR_MEMORY`].
pub fn memory_cap(base: usize, per_block: usize, capacity: u64) -> u64 {
    (base as u64)
        .saturating_add((per_block as u64).saturating_mul(capacity))
        .min(MAX_LINEAR_MEMORY)
}
/// Largest table a plugin may have, in elements (function-pointer tables of Rust/C programs
/// are a few hundred entries).
pub const MAX_TABLE_ELEMENTS: usize = 10_000;
/// Longest `key` or `value` of a parameter string, in bytes.
pub const MAX_PARAM_BYTES: usize = 256;
/// Longest log message forwarded to the host's log; longer ones are truncated.
pub const MAX_LOG_BYTES: usize = 1024;
/// Log messages an instance may send before the host drops the rest.
pub const MAX_LOG_MESSAGES: u64 = 10_000;
/// Most candidates one governor may register.
pub const MAX_CANDIDATES: usize = 32;
/// Longest candidate spec, in bytes.
pub const MAX_CANDIDATE_SPEC: usize = 1024;
/// Most path patterns one instance may register (`add_glob`): the matches of a file are one
/// 64-bit mask on the host.
pub const MAX_GLOBS: usize = 64;
/// Longest path pattern, in bytes.
pub const MAX_GLOB_BYTES: usize = 1024;

/// Granularity of the host's deadlines. 1 ms keeps timeouts tight while the ticker itself
/// costs ~1000 wakeups/s of a few hundred ns.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Default per-hook deadline in ticks (2 ms): a call is interrupted once it has seen this many
/// ticks and used one tick less of CPU since the first (1-3 ms for a runaway on an idle
/// machine). A hook takes tens of ns; an honest call descheduled on a busy machine is never
/// interrupted, since its thread's CPU clock does not advance.
pub const DEFAULT_HOOK_DEADLINE_TICKS: u64 = 2;
/// Default CPU a plugin's slow calls (still running at the first tick after they began) may
/// use per second before it is disabled as too slow: what a legal but slow plugin can cost
/// every reader together, whatever their number.
pub const DEFAULT_SLOW_BUDGET: Duration = Duration::from_millis(10);
/// Default deadline of load-time calls (`kplug_set_param`, `kplug_init`) in ticks (≈1 s):
/// init may build tables sized by the capacity.
pub const DEFAULT_INIT_DEADLINE_TICKS: u64 = 1000;
/// Largest wasm stack a plugin call may use (512 KiB, wasmtime's default).
pub const MAX_WASM_STACK: usize = 512 << 10;

/// Log levels of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

impl Level {
    /// The level numbered `n` by the ABI, if any.
    pub fn from_i32(n: i32) -> Option<Level> {
        Some(match n {
            0 => Level::Error,
            1 => Level::Warn,
            2 => Level::Info,
            3 => Level::Debug,
            4 => Level::Trace,
            _ => return None,
        })
    }
}

/// Composes the stable key of a block in the mount: `(file_id << 32) | block`.
///
/// The simulator uses trace object ids directly; the host and the plugins treat keys as
/// opaque, except that [`key_file`]/[`key_block`] split them (the admission hook and the
/// per-file figures receive the file part).
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

/// A range of blocks of one file, `[start, start + len)`: what a prefetch answer holds
/// (in guest memory as [`PREFETCH_RANGE_BYTES`] little-endian bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BlockRange {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub len: u64,
}

/// A role a plugin can serve, numbered as the ABI numbers them (the governor imports take
/// these numbers). A plugin serves a role when it exports the role's whole export set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[repr(i32)]
pub enum Role {
    /// Chooses which resident block to evict.
    Eviction = 0,
    /// Decides whether a missed block enters the cache.
    Admission = 1,
    /// Proposes block ranges to read ahead.
    Prefetch = 2,
}

impl Role {
    /// All roles, in ABI order.
    pub const ALL: [Role; 3] = [Role::Eviction, Role::Admission, Role::Prefetch];

    /// The role with ABI number `n` (0 eviction, 1 admission, 2 prefetch).
    pub fn from_index(n: i32) -> Option<Role> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Role::ALL.get(i).copied())
    }

    /// The role's name as used in docs, status JSON and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Eviction => "eviction",
            Role::Admission => "admission",
            Role::Prefetch => "prefetch",
        }
    }

    /// The exports of the role.
    pub fn exports(self) -> &'static [Func] {
        match self {
            Role::Eviction => exports::EVICTION,
            Role::Admission => exports::ADMISSION,
            Role::Prefetch => exports::PREFETCH_ROLE,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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

impl core::fmt::Display for RoleSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, r) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

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
        for (i, r) in Role::ALL.into_iter().enumerate() {
            assert_eq!(r as i32, i as i32);
            assert_eq!(Role::from_index(i as i32), Some(r));
        }
    }

    #[test]
    fn tables_are_consistent() {
        assert_eq!(ABI_VERSION, 0x0001_000d);
        let mut names: std::vec::Vec<&str> = imports::ALL.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), imports::ALL.len(), "duplicate import");
        for f in imports::ALL.iter().chain(exports::ALL) {
            assert!(f.since_minor <= ABI_MINOR, "{} is from the future", f.name);
            assert!(
                (f.sig.params.chars().chain(f.sig.results.chars())).all(|c| "ILF".contains(c)),
                "{}",
                f.name
            );
            assert!(imports::find(f.name).is_some() || exports::find(f.name).is_some());
        }
        for r in Role::ALL {
            for f in r.exports() {
                assert_eq!(exports::find(f.name), Some(f));
            }
        }
        for f in exports::EVICTION_BATCHED
            .iter()
            .chain(exports::EVICTION_HANDLES)
        {
            assert_eq!(exports::find(f.name), Some(f));
        }
        assert_eq!(MAX_PREFETCH_RANGES * PREFETCH_RANGE_BYTES, 1024);
    }
}
