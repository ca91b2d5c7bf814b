/* kplug.h: the kplugfs plugin ABI 1.13, for plugins written in C.
 *
 * GENERATED from plugin-sdk/abi (the kplug-abi crate), where the ABI is defined once:
 * do not edit. Regenerate with `KPLUG_BLESS=1 cargo test -p kplug-abi --test c_header`.
 * The contract of every function is docs/plugin-abi.md (section 3 exports, 4 imports).
 *
 * A plugin is freestanding C (there is no libc and no WASI): it takes memory from its
 * static data or above __heap_base (policies/c/lru.c), defines kplug_abi_version and
 * every export of each role it serves, and calls any of the imports. Build:
 *   clang --target=wasm32-unknown-unknown -O2 -ffreestanding -nostdlib \
 *         -Wl,--no-entry -I plugin-sdk/c -o lru.wasm policies/c/lru.c
 * (wasm-ld comes with lld). Only the imports a plugin calls end up in its module, and only
 * the exports it defines: declaring the others here costs nothing.
 */
#ifndef KPLUG_H
#define KPLUG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KPLUG_ABI_MAJOR 1
#define KPLUG_ABI_MINOR 13
/* What kplug_abi_version() returns. */
#define KPLUG_ABI_VERSION ((KPLUG_ABI_MAJOR << 16) | KPLUG_ABI_MINOR)

/* Limits. */
#define KPLUG_EVICT_BUF_KEYS 256
#define KPLUG_EVICT_AHEAD_KEYS 64
#define KPLUG_EVICT_HINT_KEYS 8
#define KPLUG_EVICT_LOOKAHEAD_KEYS 8
#define KPLUG_EVICT_AHEAD_MIN_HIT_BATCH 3
#define KPLUG_MAX_PREFETCH_RANGES 64
#define KPLUG_PREFETCH_RANGE_BYTES 16
#define KPLUG_MAX_MODULE_BYTES 16777216
#define KPLUG_DEFAULT_MEMORY_LIMIT 67108864
#define KPLUG_MEMORY_PER_BLOCK 1024
#define KPLUG_MAX_TABLE_ELEMENTS 10000
#define KPLUG_MAX_PARAM_BYTES 256
#define KPLUG_MAX_LOG_BYTES 1024
#define KPLUG_MAX_CANDIDATES 32
#define KPLUG_MAX_CANDIDATE_SPEC 1024
#define KPLUG_MAX_GLOBS 64
#define KPLUG_MAX_GLOB_BYTES 1024
#define KPLUG_TRANSFORM_IN_BYTES 65536
#define KPLUG_TRANSFORM_OUT_BYTES 262144
#define KPLUG_TRANSFORM_MORE 1073741824
#define KPLUG_TRANSFORM_SIZE_PRESERVING 1
/* Marks a miss among a call's hits (1.10): kplug_evict_ahead. */
#define KPLUG_EVICT_MISS_EVENT 0x8000000000000000ULL

/* Roles, as the governor imports number them. */
#define KPLUG_ROLE_EVICTION 0
#define KPLUG_ROLE_ADMISSION 1
#define KPLUG_ROLE_PREFETCH 2

/* Levels of kplug_log. */
#define KPLUG_LOG_ERROR 0
#define KPLUG_LOG_WARN 1
#define KPLUG_LOG_INFO 2
#define KPLUG_LOG_DEBUG 3
#define KPLUG_LOG_TRACE 4

/* One range of a prefetch answer, KPLUG_MAX_PREFETCH_RANGES of them at the address
 * kplug_prefetch_buf() returns: blocks [start, start + len) of the file. */
typedef struct kplug_range {
    uint64_t start;
    uint64_t len;
} kplug_range;
_Static_assert(sizeof(kplug_range) == KPLUG_PREFETCH_RANGE_BYTES, "kplug_range layout");

#define KPLUG_IMPORT(name) __attribute__((import_module("kplug"), import_name(name)))
#define KPLUG_EXPORT(name) __attribute__((export_name(name)))

/* Imports: the host's functions, module "kplug", each under its C name kplug_NAME. */

/* log(level: i32, ptr: i32, len: i32), ABI 1.0 */
KPLUG_IMPORT("log") void kplug_log(int32_t level, const char *ptr, int32_t len);
/* capacity() -> i64, ABI 1.0 */
KPLUG_IMPORT("capacity") int64_t kplug_capacity(void);
/* resident() -> i64, ABI 1.0 */
KPLUG_IMPORT("resident") int64_t kplug_resident(void);
/* hit_ratio() -> f64, ABI 1.1 */
KPLUG_IMPORT("hit_ratio") double kplug_hit_ratio(void);
/* pressure() -> f64, ABI 1.1 */
KPLUG_IMPORT("pressure") double kplug_pressure(void);
/* sequentiality(file: i64) -> f64, ABI 1.1 */
KPLUG_IMPORT("sequentiality") double kplug_sequentiality(int64_t file);
/* backend_latency_ns() -> i64, ABI 1.1 */
KPLUG_IMPORT("backend_latency_ns") int64_t kplug_backend_latency_ns(void);
/* now_ns() -> i64, ABI 1.1 */
KPLUG_IMPORT("now_ns") int64_t kplug_now_ns(void);
/* add_candidate(role: i32, ptr: i32, len: i32) -> i32, ABI 1.1 */
KPLUG_IMPORT("add_candidate") int32_t kplug_add_candidate(int32_t role, const char *ptr, int32_t len);
/* candidate_hits(index: i32) -> i64, ABI 1.1 */
KPLUG_IMPORT("candidate_hits") int64_t kplug_candidate_hits(int32_t index);
/* candidate_requests(index: i32) -> i64, ABI 1.1 */
KPLUG_IMPORT("candidate_requests") int64_t kplug_candidate_requests(int32_t index);
/* candidate_divergence(index: i32) -> i64, ABI 1.1 */
KPLUG_IMPORT("candidate_divergence") int64_t kplug_candidate_divergence(int32_t index);
/* active(role: i32) -> i32, ABI 1.1 */
KPLUG_IMPORT("active") int32_t kplug_active(int32_t role);
/* activate(index: i32) -> i32, ABI 1.1 */
KPLUG_IMPORT("activate") int32_t kplug_activate(int32_t index);
/* set_weight(index: i32, weight: f64) -> i32, ABI 1.2 */
KPLUG_IMPORT("set_weight") int32_t kplug_set_weight(int32_t index, double weight);
/* block_size() -> i64, ABI 1.3 */
KPLUG_IMPORT("block_size") int64_t kplug_block_size(void);
/* file_size(file: i64) -> i64, ABI 1.3 */
KPLUG_IMPORT("file_size") int64_t kplug_file_size(int64_t file);
/* add_glob(ptr: i32, len: i32) -> i32, ABI 1.3 */
KPLUG_IMPORT("add_glob") int32_t kplug_add_glob(const char *ptr, int32_t len);
/* path_matches(file: i64, glob: i32) -> i32, ABI 1.3 */
KPLUG_IMPORT("path_matches") int32_t kplug_path_matches(int64_t file, int32_t glob);
/* probe_filter(kinds: i32, uid: i64) -> i32, ABI 1.5 */
KPLUG_IMPORT("probe_filter") int32_t kplug_probe_filter(int32_t kinds, int64_t uid);
/* probe_subtree(ptr: i32, len: i32) -> i32, ABI 1.7 */
KPLUG_IMPORT("probe_subtree") int32_t kplug_probe_subtree(const char *ptr, int32_t len);
/* probe_path(ino: i64, out_ptr: i32, cap: i32) -> i32, ABI 1.5 */
KPLUG_IMPORT("probe_path") int32_t kplug_probe_path(int64_t ino, char *out_ptr, int32_t cap);
/* publish(ptr: i32, len: i32, value: f64) -> i32, ABI 1.5 */
KPLUG_IMPORT("publish") int32_t kplug_publish(const char *ptr, int32_t len, double value);
/* probe_figure(ptr: i32, len: i32) -> f64, ABI 1.5 */
KPLUG_IMPORT("probe_figure") double kplug_probe_figure(const char *ptr, int32_t len);
/* transform_records(records_in: i64, records_out: i64), ABI 1.6 */
KPLUG_IMPORT("transform_records") void kplug_transform_records(int64_t records_in, int64_t records_out);
/* transform_uid() -> i64, ABI 1.6 */
KPLUG_IMPORT("transform_uid") int64_t kplug_transform_uid(void);

/* Exports. Every plugin defines kplug_abi_version (and has a memory, which wasm-ld
 * exports); kplug_alloc, kplug_set_param and kplug_init are optional; a role's
 * exports come all together or not at all. */

/* Required. */
/* kplug_abi_version() -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_abi_version") int32_t kplug_abi_version(void);

/* Optional: parameters and init. */
/* kplug_alloc(len: i32) -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_alloc") int32_t kplug_alloc(int32_t len);
/* kplug_set_param(key_ptr: i32, key_len: i32, val_ptr: i32, val_len: i32) -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_set_param") int32_t kplug_set_param(const char *key_ptr, int32_t key_len, const char *val_ptr, int32_t val_len);
/* kplug_init(capacity_blocks: i64) -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_init") int32_t kplug_init(int64_t capacity_blocks);

/* Role eviction. */
/* kplug_evict_insert(key: i64), ABI 1.0 */
KPLUG_EXPORT("kplug_evict_insert") void kplug_evict_insert(int64_t key);
/* kplug_evict_access(key: i64), ABI 1.0 */
KPLUG_EXPORT("kplug_evict_access") void kplug_evict_access(int64_t key);
/* kplug_evict_remove(key: i64), ABI 1.0 */
KPLUG_EXPORT("kplug_evict_remove") void kplug_evict_remove(int64_t key);
/* kplug_evict_victim() -> i64, ABI 1.0 */
KPLUG_EXPORT("kplug_evict_victim") int64_t kplug_evict_victim(void);

/* Role eviction, batched (1.4): these with kplug_evict_remove, instead of the four above. */
/* kplug_evict_buf() -> i32, ABI 1.4 */
KPLUG_EXPORT("kplug_evict_buf") int32_t kplug_evict_buf(void);
/* kplug_evict_hit_batch() -> i32, ABI 1.4 */
KPLUG_EXPORT("kplug_evict_hit_batch") int32_t kplug_evict_hit_batch(void);
/* kplug_evict_miss(key: i64, need: i32) -> i32, ABI 1.4 */
KPLUG_EXPORT("kplug_evict_miss") int32_t kplug_evict_miss(int64_t key, int32_t need);
/* kplug_evict_hits(n: i32) -> i32, ABI 1.4 */
KPLUG_EXPORT("kplug_evict_hits") int32_t kplug_evict_hits(int32_t n);

/* Role eviction by handle (1.8): these with kplug_evict_buf and kplug_evict_hit_batch, instead of either set above. */
/* kplug_evict_handle_miss(hits: i32, key: i64, need: i32) -> i64, ABI 1.8 */
KPLUG_EXPORT("kplug_evict_handle_miss") int64_t kplug_evict_handle_miss(int32_t hits, int64_t key, int32_t need);
/* kplug_evict_handle_hits(n: i32) -> i32, ABI 1.8 */
KPLUG_EXPORT("kplug_evict_handle_hits") int32_t kplug_evict_handle_hits(int32_t n);
/* kplug_evict_handle_remove(key: i64, handle: i32), ABI 1.8 */
KPLUG_EXPORT("kplug_evict_handle_remove") void kplug_evict_handle_remove(int64_t key, int32_t handle);

/* Optional with either batched set (1.9): the load's replay in batches. */
/* kplug_evict_seed(n: i32) -> i64, ABI 1.9 */
KPLUG_EXPORT("kplug_evict_seed") int64_t kplug_evict_seed(int32_t n);

/* Optional with the set by handle (1.10): victims named ahead. */
/* kplug_evict_ahead() -> i32, ABI 1.10 */
KPLUG_EXPORT("kplug_evict_ahead") int32_t kplug_evict_ahead(void);

/* Optional with the set by handle (1.11): likely victims. */
/* kplug_evict_hints() -> i32, ABI 1.11 */
KPLUG_EXPORT("kplug_evict_hints") int32_t kplug_evict_hints(void);

/* Optional with the set by handle (1.12): the coming requests. */
/* kplug_evict_lookahead() -> i32, ABI 1.12 */
KPLUG_EXPORT("kplug_evict_lookahead") int32_t kplug_evict_lookahead(void);

/* Optional with the set by handle (1.13): the hits that may wait. */
/* kplug_evict_hit_marks() -> i32, ABI 1.13 */
KPLUG_EXPORT("kplug_evict_hit_marks") int32_t kplug_evict_hit_marks(void);

/* Role admission. */
/* kplug_admit(key: i64, file: i64, block: i64) -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_admit") int32_t kplug_admit(int64_t key, int64_t file, int64_t block);

/* Role prefetch. */
/* kplug_prefetch_buf() -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_prefetch_buf") int32_t kplug_prefetch_buf(void);
/* kplug_prefetch(file: i64, block: i64, file_blocks: i64, hit: i32) -> i32, ABI 1.0 */
KPLUG_EXPORT("kplug_prefetch") int32_t kplug_prefetch(int64_t file, int64_t block, int64_t file_blocks, int32_t hit);

/* Role governor (may not serve another role). */
/* kplug_tick(now_ns: i64) -> i32, ABI 1.1 */
KPLUG_EXPORT("kplug_tick") int32_t kplug_tick(int64_t now_ns);

/* Role transform, ABI 1.6 (may not serve another role). */
/* kplug_transform_in_buf() -> i32, ABI 1.6 */
KPLUG_EXPORT("kplug_transform_in_buf") int32_t kplug_transform_in_buf(void);
/* kplug_transform_out_buf() -> i32, ABI 1.6 */
KPLUG_EXPORT("kplug_transform_out_buf") int32_t kplug_transform_out_buf(void);
/* kplug_transform_begin(file_size: i64) -> i32, ABI 1.6 */
KPLUG_EXPORT("kplug_transform_begin") int32_t kplug_transform_begin(int64_t file_size);
/* kplug_transform_chunk(len: i32, last: i32) -> i32, ABI 1.6 */
KPLUG_EXPORT("kplug_transform_chunk") int32_t kplug_transform_chunk(int32_t len, int32_t last);

/* Optional for a transform: its flags. */
/* kplug_transform_flags() -> i32, ABI 1.6 */
KPLUG_EXPORT("kplug_transform_flags") int32_t kplug_transform_flags(void);

/* Role probe, ABI 1.5 (may not serve another role; see docs/probes.md). */
/* kplug_probe_buf() -> i32, ABI 1.5 */
KPLUG_EXPORT("kplug_probe_buf") int32_t kplug_probe_buf(void);
/* kplug_probe_events(n: i32) -> i32, ABI 1.5 */
KPLUG_EXPORT("kplug_probe_events") int32_t kplug_probe_events(int32_t n);
/* kplug_probe_report() -> i64, ABI 1.5 */
KPLUG_EXPORT("kplug_probe_report") int64_t kplug_probe_report(void);

/* Logs a NUL-terminated message (kplug_log takes a length; there is no strlen). */
static inline void kplug_log_str(int32_t level, const char *msg) {
    int32_t len = 0;
    while (msg[len] != 0) len++;
    kplug_log(level, msg, len);
}

#ifdef __cplusplus
}
#endif

#endif /* KPLUG_H */
