/* LRU eviction written in C against the C SDK (plugin-sdk/c/kplug.h): the same policy as
 * policies/lru (Rust) and the built-in lru, block for block.
 *
 * Freestanding C: no libc, no malloc. kplug_init sizes everything from the capacity the
 * host passes and takes it once from a bump allocator above __heap_base (growing the
 * memory), so no hook allocates. A node pool of `capacity` entries holds the keys in a
 * doubly linked list (front = most recently used, back = the victim) threaded through
 * 32-bit indices, and a chained hash table (power-of-two buckets, at least two per node,
 * Fibonacci hashing) finds a key's node: every hook is O(1). 28 bytes per block: a
 * million-block cache takes 28 MiB of the 64 MiB a plugin may use; a capacity that does
 * not fit fails kplug_init with code 2.
 *
 * The host never has more than `capacity` blocks resident, so the pool cannot run out; if
 * it ever did (a host breaking the contract) the insert traps, the host reports the fault
 * and its built-in lru takes over. Parameters: none.
 *
 * Build (scripts/setup.sh installs clang and lld):
 *   clang --target=wasm32-unknown-unknown -O2 -ffreestanding -nostdlib \
 *         -Wl,--no-entry -I plugin-sdk/c -o lru-c.wasm policies/c/lru.c
 */
#include "kplug.h"

#define NIL 0xffffffffu

static uint64_t *keys;    /* the key of each node */
static uint32_t *prev;    /* list: towards the front (more recent) */
static uint32_t *next;    /* list: towards the back; the free list reuses it */
static uint32_t *chain;   /* hash chain: next node in the same bucket */
static uint32_t *buckets; /* first node of each bucket */
static uint32_t shift;    /* 64 - log2(number of buckets) */
static uint32_t head = NIL, tail = NIL, free_list = NIL;

extern unsigned char __heap_base;
static uintptr_t brk;

/* `bytes` of zeroed memory aligned to 8 (fresh pages are zero), or 0 if memory cannot
 * grow that far. */
static void *bump(uint64_t bytes) {
    if (brk == 0) brk = (uintptr_t)&__heap_base;
    uint64_t start = ((uint64_t)brk + 7) & ~(uint64_t)7;
    uint64_t end = start + bytes;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) << 16;
    if (end > have) {
        uint64_t pages = (end - have + 0xffff) >> 16;
        if (end > 0xffffffffull || __builtin_wasm_memory_grow(0, (uintptr_t)pages) == (uintptr_t)-1)
            return 0;
    }
    brk = (uintptr_t)end;
    return (void *)(uintptr_t)start;
}

static uint32_t bucket_of(uint64_t key) {
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> shift);
}

/* The slot (bucket head or chain link) that points at `key`'s node; *slot is NIL if the
 * key is not tracked. */
static uint32_t *slot_of(uint64_t key) {
    uint32_t *slot = &buckets[bucket_of(key)];
    while (*slot != NIL && keys[*slot] != key) slot = &chain[*slot];
    return slot;
}

static void unlink_node(uint32_t n) {
    if (prev[n] != NIL) next[prev[n]] = next[n]; else head = next[n];
    if (next[n] != NIL) prev[next[n]] = prev[n]; else tail = prev[n];
}

static void push_front(uint32_t n) {
    prev[n] = NIL;
    next[n] = head;
    if (head != NIL) prev[head] = n; else tail = n;
    head = n;
}

/* Forgets the node `*slot` points at (hash and list) and returns it to the pool. */
static void drop(uint32_t *slot) {
    uint32_t n = *slot;
    *slot = chain[n];
    unlink_node(n);
    next[n] = free_list;
    free_list = n;
}

int32_t kplug_abi_version(void) { return KPLUG_ABI_VERSION; }

int32_t kplug_init(int64_t capacity_blocks) {
    uint64_t n = capacity_blocks < 1 ? 1 : (uint64_t)capacity_blocks;
    if (n >= NIL / 2) return 2;
    uint32_t bits = 1;
    while ((1ull << bits) < 2 * n) bits++;
    uint64_t nb = 1ull << bits;
    keys = bump(8 * n);
    prev = bump(4 * n);
    next = bump(4 * n);
    chain = bump(4 * n);
    buckets = bump(4 * nb);
    if (!keys || !prev || !next || !chain || !buckets) {
        kplug_log_str(KPLUG_LOG_ERROR, "lru.c: the capacity does not fit in memory");
        return 2;
    }
    shift = 64 - bits;
    for (uint64_t i = 0; i < nb; i++) buckets[i] = NIL;
    for (uint64_t i = 0; i < n; i++) next[i] = i + 1 < n ? (uint32_t)(i + 1) : NIL;
    free_list = 0;
    return 0;
}

void kplug_evict_insert(int64_t key) {
    uint32_t *slot = slot_of((uint64_t)key);
    if (*slot != NIL) { /* already tracked (the host says it never is): a use */
        unlink_node(*slot);
        push_front(*slot);
        return;
    }
    if (free_list == NIL) __builtin_trap(); /* more blocks than the capacity */
    uint32_t n = free_list;
    free_list = next[n];
    keys[n] = (uint64_t)key;
    chain[n] = NIL;
    *slot = n;
    push_front(n);
}

void kplug_evict_access(int64_t key) {
    uint32_t n = *slot_of((uint64_t)key);
    if (n == NIL || n == head) return;
    unlink_node(n);
    push_front(n);
}

void kplug_evict_remove(int64_t key) {
    uint32_t *slot = slot_of((uint64_t)key);
    if (*slot != NIL) drop(slot);
}

int64_t kplug_evict_victim(void) {
    /* Empty only if the host asks with nothing resident: answer a key that is never
     * resident, so the host reports the inconsistency. */
    if (tail == NIL) return -1;
    uint64_t key = keys[tail];
    drop(slot_of(key));
    return (int64_t)key;
}
