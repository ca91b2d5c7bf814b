//! The structures most eviction policies are built from, written for
//! small code size and predictable speed inside a plugin (no hashing crate,
//! no std): [`IntMap`], an open-addressing map from `u64` keys, and
//! [`KeyList`], an ordered list of keys with O(1) lookup, move and removal
//! (LRU, FIFO, CLOCK hands, 2Q/ARC/S3-FIFO queues are one or more of these).
//! [`HandleList`] is the same list named by handles instead of keys (no hashing
//! at all), for policies that evict by handle (ABI 1.8), and [`HandleLists`]
//! several such lists over one slab, between which an entry moves keeping its
//! handle (ARC's T1, T2 and ghosts).

use alloc::vec::Vec;

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The CPU cache one core has to itself, for a policy judging whether its tables stay in it
/// ([`IntMap::outgrows_core_cache`]): 1 MiB, a server core's L2 (this project's benchmark
/// machine, an AMD EPYC, has 1 MiB; recent Intel and AMD cores 1-2 MiB). A wasm plugin cannot
/// ask the CPU, and the choice it serves is a cost, never a decision.
pub const CORE_CACHE_BYTES: usize = 1 << 20;

/// The home slot of `key` in a table of `2^(64 - shift)` slots (at least 8): keys
/// `4j..4j+3` take four neighbouring slots, one cache line of 16-byte slots, at a place
/// Fibonacci hashing of `j` picks (the top bits of `j * K`: one 64-bit multiply, as wasm
/// has no 64x64->128 one, whose high bits depend on all bits of `j`). Neighbouring keys,
/// a file's blocks or a block trace's ids, are read together: a run of them then costs a
/// quarter of the cache misses.
#[inline]
fn slot_of(key: u64, shift: u32) -> usize {
    ((((key >> 2).wrapping_mul(K) >> shift) as usize) & !3) | (key & 3) as usize
}

/// A hash map from `u64` to `V` with linear probing and backward-shift
/// deletion (no tombstones, so lookups stay short under churn). Load factor
/// at most 1/2: neighbouring keys fill whole 4-slot groups (`slot_of`), so a
/// probe that runs past its group costs a cache line, and a lookup that fails
/// (most of a ghost list's) must run to an empty slot. A slot is the key and
/// `Option<V>` side by side (16 bytes for a `u32` value, where `Option<(u64,
/// u32)>` takes 24): at a million ids every lookup misses the CPU's caches, so
/// the table's size is its speed; at most 32 bytes an entry, as before at 3/4.
pub struct IntMap<V> {
    slots: Vec<Slot<V>>,
    len: usize,
    mask: usize,
    /// 64 - log2(slots.len()).
    shift: u32,
}

/// One slot of an [`IntMap`]: empty while `value` is `None`.
struct Slot<V> {
    key: u64,
    value: Option<V>,
}

const fn empty<V>() -> Slot<V> {
    Slot {
        key: 0,
        value: None,
    }
}

impl<V> Default for IntMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> IntMap<V> {
    /// An empty map (allocates on first insert).
    pub const fn new() -> Self {
        IntMap {
            slots: Vec::new(),
            len: 0,
            mask: 0,
            shift: 63,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `additional` more entries without rehashing.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len + additional;
        if need * 2 > self.slots.len() {
            self.resize((need * 2).next_power_of_two().max(8));
        }
    }

    fn resize(&mut self, cap: usize) {
        let old = core::mem::take(&mut self.slots);
        self.slots = Vec::with_capacity(cap);
        self.slots.resize_with(cap, empty);
        self.mask = cap - 1;
        self.shift = 64 - cap.trailing_zeros();
        self.len = 0;
        for slot in old {
            if let Some(v) = slot.value {
                self.insert(slot.key, v);
            }
        }
    }

    #[inline]
    fn find(&self, key: u64) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        // The mask from the slice's own length: no bounds check in the probe loop.
        let slots = &self.slots[..];
        let mask = slots.len() - 1;
        let mut i = slot_of(key, self.shift) & mask;
        loop {
            let slot = &slots[i];
            match slot.value {
                Some(_) if slot.key == key => return Ok(i),
                Some(_) => i = (i + 1) & mask,
                None => return Err(i),
            }
        }
    }

    /// Reads `key`'s home slot and nothing else, so that a lookup of `key` soon after finds
    /// it in the CPU's caches. Wasm has no prefetch instruction, but plain loads that do not
    /// depend on each other wait for memory together: touching a batch of keys first, then
    /// looking each up, costs about one cache miss for the batch instead of one a key. No
    /// effect on the map.
    #[inline]
    pub fn touch(&self, key: u64) {
        if let Some(slot) = self.slots.get(slot_of(key, self.shift) & self.mask) {
            // SAFETY: a reference to an initialised `u64`; volatile so the load is kept.
            let _ = unsafe { core::ptr::read_volatile(&slot.key) };
        }
    }

    /// The address in memory of `key`'s home slot, where a lookup of `key` reads first
    /// (`u64::MAX` while the map has no slots): for a host that reads ahead what a plugin
    /// will read (ABI 1.12, `HandleEviction::coming`). No effect on the map.
    #[inline]
    pub fn home(&self, key: u64) -> u64 {
        self.slots
            .get(slot_of(key, self.shift) & self.mask)
            .map_or(u64::MAX, |slot| slot as *const Slot<V> as usize as u64)
    }

    /// The bytes of its slot array, which its lookups read.
    #[inline]
    pub fn table_bytes(&self) -> usize {
        self.slots.len() * core::mem::size_of::<Slot<V>>()
    }

    /// Whether its slot array is larger than `CORE_CACHE_BYTES`: then a lookup of a key
    /// not looked up lately reads memory, and reading its slot ahead pays (ABI 1.12,
    /// `HandleEviction::lookahead`); below, the slots stay in the core's cache and telling
    /// the coming keys costs more than it saves.
    #[inline]
    pub fn outgrows_core_cache(&self) -> bool {
        self.table_bytes() > CORE_CACHE_BYTES
    }

    /// What a policy whose miss looks its key up here answers for
    /// `HandleEviction::lookahead`: `most` once the table
    /// [outgrows a core's cache](Self::outgrows_core_cache), 0 before.
    #[inline]
    pub fn lookahead_count(&self, most: u32) -> u32 {
        if self.outgrows_core_cache() { most } else { 0 }
    }

    /// Replaces each key of `keys` with its [`home`](Self::home): a policy's answer to the
    /// coming requests (ABI 1.12, `HandleEviction::coming`) when its miss looks them up here.
    #[inline]
    pub fn homes(&self, keys: &mut [u64]) {
        for k in keys {
            *k = self.home(*k);
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<&V> {
        self.find(key)
            .ok()
            .and_then(|i| self.slots[i].value.as_ref())
    }

    /// The value of `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) => self.slots[i].value.as_mut(),
            Err(_) => None,
        }
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: u64, value: V) -> Option<V> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.resize((self.slots.len() * 2).max(8));
        }
        match self.find(key) {
            Ok(i) => self.slots[i].value.replace(value),
            Err(i) => {
                self.slots[i] = Slot {
                    key,
                    value: Some(value),
                };
                self.len += 1;
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: u64) -> Option<V> {
        self.remove_if(key, |_| true)
    }

    /// Removes `key` if `stale(its value)`, returning the value removed: a lookup and a
    /// removal in one probe (ARC dropping an entry only if its handle no longer holds the key).
    #[inline]
    pub fn remove_if(&mut self, key: u64, stale: impl FnOnce(&V) -> bool) -> Option<V> {
        let hole = self.find(key).ok()?;
        if !stale(self.slots[hole].value.as_ref()?) {
            return None;
        }
        self.remove_at(hole)
    }

    /// Empties slot `hole` (found by `find`), returning its value, and closes the gap.
    fn remove_at(&mut self, mut hole: usize) -> Option<V> {
        let value = self.slots[hole].value.take()?;
        self.len -= 1;
        // Backward-shift: pull later entries of the probe run into the hole
        // when their home slot is at or before it (cyclically). The mask taken from the
        // slice's own length (a power of two) lets the compiler drop the bounds checks.
        let slots = &mut self.slots[..];
        let mask = slots.len() - 1;
        let mut i = (hole + 1) & mask;
        while slots[i & mask].value.is_some() {
            let home = slot_of(slots[i & mask].key, self.shift);
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                slots.swap(hole & mask, i & mask);
                hole = i;
            }
            i = (i + 1) & mask;
        }
        Some(value)
    }

    /// Removes every entry, keeping the allocation.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| s.value = None);
        self.len = 0;
    }
}

/// Writes `keys` into `out`, in order and up to its length, and returns how many it wrote:
/// what a policy's `likely_victims` (ABI 1.11) answers with its candidates.
pub fn write_keys(out: &mut [u64], keys: impl IntoIterator<Item = u64>) -> usize {
    let mut n = 0;
    for (slot, k) in out.iter_mut().zip(keys) {
        *slot = k;
        n += 1;
    }
    n
}

const NIL: u32 = u32::MAX;
/// `prev` of a node on the free list (a removed handle).
const FREE: u32 = u32::MAX - 1;

#[derive(Clone, Copy)]
struct Node {
    key: u64,
    prev: u32,
    next: u32,
    /// The list the entry is in.
    list: u8,
    /// The policy's byte (`tag`): in the padding, so free.
    tag: u8,
}

/// `N` ordered lists of keys (front to back) over one slab, whose entries are named by
/// **handles**: the `u32` that [`push_front`](HandleLists::push_front) or
/// [`push_back`](HandleLists::push_back) returns, an index into the slab (reused after
/// removal). An entry keeps its handle when it moves from one list to another (ARC's block
/// going from T1 to T2, or to the ghost list B1 when it is evicted), so the handle the host
/// keeps for a block (ABI 1.8, [`HandleEviction`](crate::HandleEviction)) stays valid. Every
/// operation on a handle is a few array accesses, no hashing. A handle that names no entry
/// (never given, or removed) is refused, never a panic. Keys need not be distinct: the
/// handle, not the key, names an entry. Lists are numbered `0..N` (`N <= 256`); a list
/// number out of range panics (a bug in the policy, not the host's input).
///
/// `MARKED` (default 0: none, and no cost) is a set of lists, bit `l` for list `l < 64`:
/// [`marks`](HandleLists::marks) then holds a byte per handle, 1 while its entry is in one of
/// them, kept as entries move: the hit marks of ABI 1.13
/// ([`HandleEviction::hit_marks`](crate::HandleEviction::hit_marks)) of a policy whose hits
/// evict nothing in those lists (W-TinyLFU's window and protected segment).
pub struct HandleLists<const N: usize, const MARKED: u64 = 0> {
    nodes: Vec<Node>,
    marks: Vec<u8>,
    free: Vec<u32>,
    heads: [u32; N],
    tails: [u32; N],
    lens: [usize; N],
}

impl<const N: usize, const MARKED: u64> Default for HandleLists<N, MARKED> {
    fn default() -> Self {
        const { assert!(N >= 1 && N <= 256, "1 to 256 lists") };
        HandleLists {
            nodes: Vec::new(),
            marks: Vec::new(),
            free: Vec::new(),
            heads: [NIL; N],
            tails: [NIL; N],
            lens: [0; N],
        }
    }
}

#[inline]
fn some(i: u32) -> Option<u32> {
    (i != NIL).then_some(i)
}

impl<const N: usize, const MARKED: u64> HandleLists<N, MARKED> {
    /// Empty lists.
    pub fn new() -> Self {
        Self::default()
    }

    /// A byte per handle, 1 while its entry is in a list of `MARKED` (empty with none).
    #[inline]
    pub fn marks(&self) -> &[u8] {
        &self.marks
    }

    /// Keeps handle `i`'s mark: in list `l` (`None`: removed).
    #[inline(always)]
    fn mark(&mut self, i: u32, l: Option<usize>) {
        if MARKED != 0 {
            let m = l.is_some_and(|l| l < 64 && MARKED >> l & 1 != 0);
            self.marks[i as usize] = m as u8;
        }
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        let more = additional.saturating_sub(self.free.len());
        self.nodes.reserve(more);
        if MARKED != 0 {
            self.marks.reserve(more);
        }
    }

    /// Number of entries in list `list`.
    #[inline]
    pub fn len(&self, list: usize) -> usize {
        self.lens[list]
    }

    /// Whether list `list` is empty.
    #[inline]
    pub fn is_empty(&self, list: usize) -> bool {
        self.lens[list] == 0
    }

    /// The list of the entry `handle` names, `None` if it names none.
    #[inline]
    pub fn list_of(&self, handle: u32) -> Option<usize> {
        self.nodes
            .get(handle as usize)
            .filter(|n| n.prev != FREE)
            .map(|n| n.list as usize)
    }

    /// Whether `handle` names an entry (of any list).
    #[inline]
    pub fn contains(&self, handle: u32) -> bool {
        self.list_of(handle).is_some()
    }

    /// The key of the entry `handle` names.
    #[inline]
    pub fn key(&self, handle: u32) -> Option<u64> {
        self.contains(handle)
            .then(|| self.nodes[handle as usize].key)
    }

    /// The policy's byte of the entry `handle` names (0 when it was pushed): a visited bit
    /// (SIEVE), a small counter (CLOCK, S3-FIFO), kept in the entry itself so that a hand
    /// walking the list reads one place per entry.
    #[inline]
    pub fn tag(&self, handle: u32) -> Option<u8> {
        self.contains(handle)
            .then(|| self.nodes[handle as usize].tag)
    }

    /// The policy's byte of the entry `handle` names, to change it.
    #[inline]
    pub fn tag_mut(&mut self, handle: u32) -> Option<&mut u8> {
        if !self.contains(handle) {
            return None;
        }
        Some(&mut self.nodes[handle as usize].tag)
    }

    /// The handle of the entry at the back of `list` (oldest for LRU/FIFO use).
    #[inline]
    pub fn back(&self, list: usize) -> Option<u32> {
        some(self.tails[list])
    }

    /// Writes the key at the back of each of `lists` that is not empty into `out`, in order
    /// and up to its length, and returns how many: the likely victims (ABI 1.11,
    /// `HandleEviction::likely_victims`) of a policy that evicts from the back of one of
    /// several lists.
    pub fn backs(&self, lists: &[usize], out: &mut [u64]) -> usize {
        let mut n = 0;
        for &l in lists {
            let Some(slot) = out.get_mut(n) else { break };
            // A list's back is always a live entry: its key is read without `key`'s check.
            if let Some(node) = some(self.tails[l]).and_then(|h| self.nodes.get(h as usize)) {
                *slot = node.key;
                n += 1;
            }
        }
        n
    }

    /// The handle of the entry at the front of `list`.
    #[inline]
    pub fn front(&self, list: usize) -> Option<u32> {
        some(self.heads[list])
    }

    /// The handle of the entry next to `handle` toward the front of its list (`None` at the
    /// front, or for a handle that names no entry): a cursor walking a list back to front
    /// (SIEVE's hand).
    #[inline]
    pub fn toward_front(&self, handle: u32) -> Option<u32> {
        let p = self.nodes.get(handle as usize)?.prev;
        (p != FREE).then_some(p).and_then(some)
    }

    /// The handle of the entry next to `handle` toward the back of its list (`None` at the
    /// back, or for a handle that names no entry).
    #[inline]
    pub fn toward_back(&self, handle: u32) -> Option<u32> {
        let n = self.nodes.get(handle as usize)?;
        (n.prev != FREE).then_some(n.next).and_then(some)
    }

    // `unlink` and `link_front` are always inlined: left to LLVM, a move to the front (ARC's
    // hit) called the unlink, about 30 instructions a request more (docs/benchmarks.md §10).
    // They read and write nodes and list ends without bounds checks ([`Self::at`],
    // [`Self::end`]): every handle they are given names a slab entry (checked by `contains`,
    // or just allocated), as does every link of a live entry, and a list number is below
    // `N` (asserted where it enters, kept in the node).

    /// The node of handle `i`, which names a slab entry.
    #[inline(always)]
    fn at(&mut self, i: u32) -> &mut Node {
        debug_assert!((i as usize) < self.nodes.len(), "handle {i}");
        // SAFETY: the callers' handles name slab entries (above); the slab only grows.
        unsafe { self.nodes.get_unchecked_mut(i as usize) }
    }

    /// Entry `l` of `heads`, `tails` or `lens`, `l < N`.
    #[inline(always)]
    fn end<T>(ends: &mut [T; N], l: usize) -> &mut T {
        debug_assert!(l < N, "list {l}");
        // SAFETY: `l` is below `N` (above).
        unsafe { ends.get_unchecked_mut(l) }
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let Node {
            prev, next, list, ..
        } = *self.at(i);
        let l = list as usize;
        match prev {
            NIL => *Self::end(&mut self.heads, l) = next,
            p => self.at(p).next = next,
        }
        match next {
            NIL => *Self::end(&mut self.tails, l) = prev,
            n => self.at(n).prev = prev,
        }
        *Self::end(&mut self.lens, l) -= 1;
    }

    #[inline(always)]
    fn link_front(&mut self, l: usize, i: u32) {
        let old = *Self::end(&mut self.heads, l);
        let n = self.at(i);
        (n.prev, n.next, n.list) = (NIL, old, l as u8);
        match old {
            NIL => *Self::end(&mut self.tails, l) = i,
            h => self.at(h).prev = i,
        }
        *Self::end(&mut self.heads, l) = i;
        *Self::end(&mut self.lens, l) += 1;
        self.mark(i, Some(l));
    }

    #[inline]
    fn link_back(&mut self, l: usize, i: u32) {
        let old = *Self::end(&mut self.tails, l);
        let n = self.at(i);
        (n.prev, n.next, n.list) = (old, NIL, l as u8);
        match old {
            NIL => *Self::end(&mut self.heads, l) = i,
            t => self.at(t).next = i,
        }
        *Self::end(&mut self.tails, l) = i;
        *Self::end(&mut self.lens, l) += 1;
        self.mark(i, Some(l));
    }

    #[inline]
    fn alloc(&mut self, key: u64) -> u32 {
        let node = Node {
            key,
            prev: NIL,
            next: NIL,
            list: 0,
            tag: 0,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                if MARKED != 0 {
                    self.marks.push(0);
                }
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Adds `key` at the front of `list`; its handle.
    #[inline]
    pub fn push_front(&mut self, list: usize, key: u64) -> u32 {
        assert!(list < N, "list {list} of {N}");
        let i = self.alloc(key);
        self.link_front(list, i);
        i
    }

    /// Adds `key` at the back of `list`; its handle.
    #[inline]
    pub fn push_back(&mut self, list: usize, key: u64) -> u32 {
        assert!(list < N, "list {list} of {N}");
        let i = self.alloc(key);
        self.link_back(list, i);
        i
    }

    /// Moves the entry `handle` names to the front of `list` (from whichever list it is in);
    /// false if it names none.
    #[inline(always)]
    pub fn move_to_front(&mut self, list: usize, handle: u32) -> bool {
        assert!(list < N, "list {list} of {N}");
        if !self.contains(handle) {
            return false;
        }
        self.bring_to_front(list, handle);
        true
    }

    /// Moves live entry `handle` to the front of `list`.
    #[inline(always)]
    fn bring_to_front(&mut self, list: usize, handle: u32) {
        if self.heads[list] != handle {
            if N == 1 {
                // One list (a `HandleList`): the entry stays in it, so its list, its mark and
                // the list's length stay as they are; only the links change (an LRU's hit).
                self.relink_front(handle);
            } else {
                self.unlink(handle);
                self.link_front(list, handle);
            }
        }
    }

    /// Moves entry `i`, in list 0 and not its front, to the front of list 0, leaving its list,
    /// its mark and the length alone.
    #[inline(always)]
    fn relink_front(&mut self, i: u32) {
        let Node { prev, next, .. } = *self.at(i);
        // Not the front: it has a `prev`.
        self.at(prev).next = next;
        match next {
            NIL => self.tails[0] = prev,
            n => self.at(n).prev = prev,
        }
        let old = self.heads[0];
        let n = self.at(i);
        (n.prev, n.next) = (NIL, old);
        self.at(old).prev = i;
        self.heads[0] = i;
    }

    /// The entry at the back of `list`, which `handle` must name, becomes `key` at the
    /// front of `list`, keeping its handle and its tag set to 0: what
    /// [`pop_back`](Self::pop_back) then [`push_front`](Self::push_front) do (the push takes
    /// the handle the pop freed), in one step, with no trip through the free list. An LRU's or
    /// a FIFO's miss taken ahead ([`HandleEviction::took_ahead`](crate::HandleEviction::took_ahead)).
    /// False, changing nothing, if `handle` is not the back of `list`.
    #[inline]
    pub fn replace_back(&mut self, list: usize, handle: u32, key: u64) -> bool {
        assert!(list < N, "list {list} of {N}");
        if handle == NIL || self.tails[list] != handle {
            return false;
        }
        self.bring_to_front(list, handle);
        let n = self.at(handle);
        (n.key, n.tag) = (key, 0);
        true
    }

    /// Moves the entry `handle` names to the back of `list` (from whichever list it is in);
    /// false if it names none.
    #[inline]
    pub fn move_to_back(&mut self, list: usize, handle: u32) -> bool {
        assert!(list < N, "list {list} of {N}");
        if !self.contains(handle) {
            return false;
        }
        if self.tails[list] != handle {
            self.unlink(handle);
            self.link_back(list, handle);
        }
        true
    }

    /// Removes the entry `handle` names; its key, `None` if it names none.
    #[inline]
    pub fn remove(&mut self, handle: u32) -> Option<u64> {
        let key = self.key(handle)?;
        self.unlink(handle);
        self.nodes[handle as usize].prev = FREE;
        self.free.push(handle);
        self.mark(handle, None);
        Some(key)
    }

    /// Removes the entry at the back of `list`; its key.
    #[inline]
    pub fn pop_back(&mut self, list: usize) -> Option<u64> {
        self.remove(self.back(list)?)
    }

    /// Removes the entry at the front of `list`; its key.
    #[inline]
    pub fn pop_front(&mut self, list: usize) -> Option<u64> {
        self.remove(self.front(list)?)
    }
}

/// One ordered list of keys named by handles: [`HandleLists`] with a single list (LRU's,
/// FIFO's, CLOCK's queue).
#[derive(Default)]
pub struct HandleList(HandleLists<1>);

impl HandleList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len(0)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty(0)
    }

    /// Whether `handle` names an entry.
    #[inline]
    pub fn contains(&self, handle: u32) -> bool {
        self.0.contains(handle)
    }

    /// The key of the entry `handle` names.
    #[inline]
    pub fn key(&self, handle: u32) -> Option<u64> {
        self.0.key(handle)
    }

    /// The handle of the entry at the back (oldest for LRU/FIFO use).
    #[inline]
    pub fn back(&self) -> Option<u32> {
        self.0.back(0)
    }

    /// The handle of the entry at the front.
    #[inline]
    pub fn front(&self) -> Option<u32> {
        self.0.front(0)
    }

    /// See [`HandleLists::tag`].
    #[inline]
    pub fn tag(&self, handle: u32) -> Option<u8> {
        self.0.tag(handle)
    }

    /// See [`HandleLists::tag_mut`].
    #[inline]
    pub fn tag_mut(&mut self, handle: u32) -> Option<&mut u8> {
        self.0.tag_mut(handle)
    }

    /// See [`HandleLists::toward_front`].
    #[inline]
    pub fn toward_front(&self, handle: u32) -> Option<u32> {
        self.0.toward_front(handle)
    }

    /// See [`HandleLists::toward_back`].
    #[inline]
    pub fn toward_back(&self, handle: u32) -> Option<u32> {
        self.0.toward_back(handle)
    }

    /// Adds `key` at the front; its handle.
    #[inline]
    pub fn push_front(&mut self, key: u64) -> u32 {
        self.0.push_front(0, key)
    }

    /// Adds `key` at the back; its handle.
    #[inline]
    pub fn push_back(&mut self, key: u64) -> u32 {
        self.0.push_back(0, key)
    }

    /// Moves the entry `handle` names to the front; false if it names none.
    #[inline]
    pub fn move_to_front(&mut self, handle: u32) -> bool {
        self.0.move_to_front(0, handle)
    }

    /// See [`HandleLists::replace_back`]: the back entry, `handle`, becomes `key` at the
    /// front; false, changing nothing, if `handle` is not the back.
    #[inline]
    pub fn replace_back(&mut self, handle: u32, key: u64) -> bool {
        self.0.replace_back(0, handle, key)
    }

    /// Moves the entry `handle` names to the back; false if it names none.
    #[inline]
    pub fn move_to_back(&mut self, handle: u32) -> bool {
        self.0.move_to_back(0, handle)
    }

    /// Removes the entry `handle` names; its key, `None` if it names none.
    #[inline]
    pub fn remove(&mut self, handle: u32) -> Option<u64> {
        self.0.remove(handle)
    }

    /// Removes the entry at the back; its key.
    #[inline]
    pub fn pop_back(&mut self) -> Option<u64> {
        self.0.pop_back(0)
    }

    /// Removes the entry at the front; its key.
    #[inline]
    pub fn pop_front(&mut self) -> Option<u64> {
        self.0.pop_front(0)
    }

    /// Writes the keys from the back towards the front into `out`, as many as fit, and
    /// returns how many: what `pop_back` would answer next, in order (the blocks an LRU or
    /// a FIFO names ahead, [`HandleEviction::name_ahead`](crate::HandleEviction::name_ahead)).
    #[inline]
    pub fn keys_from_back(&self, out: &mut [u64]) -> usize {
        let mut at = self.back();
        let mut n = 0;
        while n < out.len()
            && let Some(h) = at
        {
            // A handle the list links is an entry of the slab; its `prev` is the next one
            // towards the front, or NIL.
            let node = &self.0.nodes[h as usize];
            out[n] = node.key;
            n += 1;
            at = some(node.prev);
        }
        n
    }
}

/// An ordered list of distinct keys, front to back, with O(1) `push_front`,
/// `push_back`, `move_to_front`, `remove` and `pop_back`/`pop_front`: a [`HandleList`]
/// with an index from each key to its handle.
#[derive(Default)]
pub struct KeyList {
    index: IntMap<u32>,
    list: HandleList,
}

impl KeyList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `additional` more keys.
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.list.reserve(additional);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether `key` is in the list.
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains_key(key)
    }

    /// The key at the back (oldest for LRU/FIFO use).
    pub fn back(&self) -> Option<u64> {
        self.list.key(self.list.back()?)
    }

    /// The key at the front.
    pub fn front(&self) -> Option<u64> {
        self.list.key(self.list.front()?)
    }

    /// Adds `key` at the front; false (no change) if it is already present.
    pub fn push_front(&mut self, key: u64) -> bool {
        if self.index.contains_key(key) {
            return false;
        }
        let h = self.list.push_front(key);
        self.index.insert(key, h);
        true
    }

    /// Adds `key` at the back; false (no change) if it is already present.
    pub fn push_back(&mut self, key: u64) -> bool {
        if self.index.contains_key(key) {
            return false;
        }
        let h = self.list.push_back(key);
        self.index.insert(key, h);
        true
    }

    /// Moves `key` to the front; false if it is not present.
    pub fn move_to_front(&mut self, key: u64) -> bool {
        match self.index.get(key) {
            Some(&h) => self.list.move_to_front(h),
            None => false,
        }
    }

    /// Removes `key`; false if it is not present.
    pub fn remove(&mut self, key: u64) -> bool {
        match self.index.remove(key) {
            Some(h) => self.list.remove(h).is_some(),
            None => false,
        }
    }

    /// Removes and returns the key at the back.
    pub fn pop_back(&mut self) -> Option<u64> {
        let key = self.list.pop_back()?;
        self.index.remove(key);
        Some(key)
    }

    /// Removes and returns the key at the front.
    pub fn pop_front(&mut self) -> Option<u64> {
        let key = self.list.pop_front()?;
        self.index.remove(key);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::{HashMap, VecDeque};

    /// A small xorshift so the test needs no crate.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn int_map_matches_std_hashmap() {
        // Random keys in a small space (many collisions and removals), then keys in runs of
        // neighbours and strided ones (multiples of 4 and of 2^32, a file's first blocks),
        // which share or skip the 4-slot groups of `slot_of`.
        let shapes: [fn(u64) -> u64; 3] = [
            |r| r % 512,
            |r| (r % 64) * 7 + (r >> 8) % 4,
            |r| ((r % 32) << 32) | (((r >> 8) % 16) * 4),
        ];
        for shape in shapes {
            let mut m = IntMap::new();
            m.touch(5); // Nothing allocated yet: nothing read.
            let mut model = HashMap::new();
            let mut s = 0x1234_5678_9abc_def1u64;
            for _ in 0..200_000 {
                let r = rng(&mut s);
                let key = shape(r);
                // Touching a key, present or not, changes nothing.
                m.touch(shape(r >> 16));
                match (r >> 32) % 4 {
                    0 | 1 => assert_eq!(m.insert(key, r), model.insert(key, r)),
                    2 => assert_eq!(m.remove(key), model.remove(&key)),
                    // Removed only when its value is odd: one probe, as `remove` and `get`.
                    _ => {
                        let odd = model.get(&key).is_some_and(|v| v & 1 == 1);
                        let want = if odd { model.remove(&key) } else { None };
                        assert_eq!(m.remove_if(key, |v| v & 1 == 1), want);
                    }
                }
                assert_eq!(m.len(), model.len());
            }
            for (k, v) in &model {
                assert_eq!(m.get(*k), Some(v));
            }
            for k in 0..512 {
                assert_eq!(m.get(k), model.get(&k));
            }
            m.clear();
            assert!(m.is_empty() && m.get(1).is_none());
        }
    }

    #[test]
    fn neighbouring_keys_share_a_slot_group_and_groups_spread() {
        let shift = 64 - 16; // 65,536 slots, 16,384 groups of 4
        for j in [0u64, 1, 77, 1 << 20, u64::MAX >> 2] {
            let home = slot_of(4 * j, shift);
            for i in 0..4 {
                assert_eq!(slot_of(4 * j + i, shift), home + i as usize);
            }
        }
        // A million consecutive keys, and keys 4 KiB apart: no group takes more than
        // twice its share.
        for step in [1u64, 4096] {
            let mut groups = std::vec![0u32; 1 << 14];
            let n = 1u64 << 20;
            for k in 0..n {
                groups[slot_of(k * step, shift) >> 2] += 1;
            }
            let share = (n / (1 << 14)) as u32;
            let max = *groups.iter().max().unwrap();
            assert!(
                max <= 2 * share,
                "step {step}: {max} keys in a group, share {share}"
            );
        }
    }

    #[test]
    fn handle_list_matches_vecdeque_and_refuses_stale_handles() {
        let mut l = HandleList::new();
        // The model: (handle, key) pairs, front to back.
        let mut model: VecDeque<(u32, u64)> = VecDeque::new();
        let mut gone: std::vec::Vec<u32> = std::vec::Vec::new();
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50_000 {
            let r = rng(&mut s);
            let pick =
                |m: &VecDeque<(u32, u64)>| m.get((r >> 20) as usize % m.len().max(1)).copied();
            match (r >> 40) % 7 {
                0 => {
                    let h = l.push_front(r % 64);
                    assert!(
                        model.iter().all(|(m, _)| *m != h),
                        "handle reused while live"
                    );
                    model.push_front((h, r % 64));
                }
                1 => {
                    let h = l.push_back(r % 64);
                    model.push_back((h, r % 64));
                }
                2 => {
                    if let Some((h, k)) = pick(&model) {
                        model.retain(|(m, _)| *m != h);
                        model.push_front((h, k));
                        assert!(l.move_to_front(h));
                    }
                }
                3 => {
                    if let Some((h, k)) = pick(&model) {
                        model.retain(|(m, _)| *m != h);
                        assert_eq!(l.remove(h), Some(k));
                        gone.push(h);
                    }
                }
                4 if r & 1 == 0 => assert_eq!(l.pop_back(), model.pop_back().map(|(_, k)| k)),
                4 => {
                    // The back replaced in one step, or a handle that is not the back refused.
                    let other = pick(&model).map_or(7, |(h, _)| h);
                    let back = model.back().map(|(h, _)| *h);
                    if back != Some(other) {
                        assert!(!l.replace_back(other, 99));
                    }
                    if let Some((h, _)) = model.pop_back() {
                        model.push_front((h, r % 64));
                        *l.tag_mut(h).unwrap() = 5;
                        assert!(l.replace_back(h, r % 64));
                        assert_eq!((l.key(h), l.tag(h)), (Some(r % 64), Some(0)));
                    }
                }
                5 => assert_eq!(l.pop_front(), model.pop_front().map(|(_, k)| k)),
                _ => {
                    // A handle naming nothing: removed (and not reused since), or never given.
                    for &h in gone.iter().filter(|h| model.iter().all(|(m, _)| m != *h)) {
                        assert!(!l.contains(h) && l.remove(h).is_none() && !l.move_to_front(h));
                    }
                    assert!(l.remove(u32::MAX).is_none() && !l.move_to_back(1 << 30));
                }
            }
            assert_eq!(l.len(), model.len());
            assert_eq!(l.front(), model.front().map(|(h, _)| *h));
            assert_eq!(l.back(), model.back().map(|(h, _)| *h));
            // The cursors walk the model's order both ways.
            let mut fwd = std::vec::Vec::new();
            let mut c = l.back();
            while let Some(h) = c {
                fwd.push(h);
                c = l.toward_front(h);
            }
            fwd.reverse();
            let mut bwd = std::vec::Vec::new();
            let mut c = l.front();
            while let Some(h) = c {
                bwd.push(h);
                c = l.toward_back(h);
            }
            let want: std::vec::Vec<u32> = model.iter().map(|(h, _)| *h).collect();
            assert_eq!(fwd, want);
            assert_eq!(bwd, want);
            // The keys from the back, as many as fit.
            let mut out = [0u64; 5];
            let n = l.keys_from_back(&mut out[..(r % 6) as usize]);
            let keys: std::vec::Vec<u64> = model.iter().rev().map(|(_, k)| *k).collect();
            assert_eq!(out[..n], keys[..n.min(keys.len())]);
            assert_eq!(n, keys.len().min((r % 6) as usize));
        }
    }

    #[test]
    fn handle_lists_move_entries_between_lists_keeping_their_handles() {
        let mut l: HandleLists<3> = HandleLists::new();
        // The model: per list, (handle, key) pairs front to back.
        let mut model: [VecDeque<(u32, u64)>; 3] = Default::default();
        let mut tags: HashMap<u32, u8> = HashMap::new();
        let live_after =
            |m: &[VecDeque<(u32, u64)>; 3], h: u32| m.iter().flatten().any(|(x, _)| *x == h);
        let mut s = 0x0123_4567_89ab_cdefu64;
        for _ in 0..50_000 {
            let r = rng(&mut s);
            let list = (r % 3) as usize;
            let live: std::vec::Vec<(u32, u64)> = model.iter().flatten().copied().collect();
            let pick = live.get((r >> 24) as usize % live.len().max(1)).copied();
            let take = |m: &mut [VecDeque<(u32, u64)>; 3], h: u32| {
                for q in m.iter_mut() {
                    q.retain(|(x, _)| *x != h);
                }
            };
            match (r >> 40) % 6 {
                0 => {
                    let h = l.push_front(list, r % 64);
                    model[list].push_front((h, r % 64));
                }
                1 => {
                    let h = l.push_back(list, r % 64);
                    model[list].push_back((h, r % 64));
                }
                2 => {
                    if let Some((h, k)) = pick {
                        take(&mut model, h);
                        model[list].push_front((h, k));
                        assert!(l.move_to_front(list, h));
                    }
                }
                3 => {
                    if let Some((h, k)) = pick {
                        take(&mut model, h);
                        model[list].push_back((h, k));
                        assert!(l.move_to_back(list, h));
                    }
                }
                4 => {
                    if let Some((h, k)) = pick {
                        take(&mut model, h);
                        assert_eq!(l.remove(h), Some(k));
                        assert!(l.list_of(h).is_none() && !l.move_to_front(list, h));
                    }
                }
                _ => assert_eq!(l.pop_back(list), model[list].pop_back().map(|(_, k)| k)),
            }
            // Tags: 0 for a new entry, kept across moves (`tags`: what each live handle was
            // last set to; a handle given again after its removal starts at 0).
            for q in &model {
                for &(h, _) in q {
                    tags.entry(h).or_insert(0);
                }
            }
            tags.retain(|h, _| live_after(&model, *h));
            if let Some((h, _)) = pick
                && let Some(t) = l.tag_mut(h)
            {
                *t = (r >> 8) as u8;
                tags.insert(h, *t);
            }
            // The backs of lists 2 and 0, skipping an empty one, into room for `r % 3` keys.
            let backs: std::vec::Vec<u64> = [2, 0]
                .iter()
                .filter_map(|&i| model[i].back().map(|(_, k)| *k))
                .take((r % 3) as usize)
                .collect();
            let mut out = [u64::MAX; 2];
            let room = (r % 3) as usize;
            assert_eq!(l.backs(&[2, 0], &mut out[..room]), backs.len());
            assert_eq!(out[..backs.len()], backs[..]);
            for (i, q) in model.iter().enumerate() {
                assert_eq!(l.len(i), q.len());
                assert_eq!(l.front(i), q.front().map(|(h, _)| *h));
                assert_eq!(l.back(i), q.back().map(|(h, _)| *h));
                for &(h, k) in q {
                    assert_eq!((l.list_of(h), l.key(h)), (Some(i), Some(k)));
                    assert_eq!(l.tag(h), Some(tags[&h]));
                }
            }
        }
    }

    #[test]
    fn key_list_matches_vecdeque() {
        let mut l = KeyList::new();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            let r = rng(&mut s);
            let key = r % 64;
            match (r >> 40) % 6 {
                0 => assert_eq!(
                    l.push_front(key),
                    !model.contains(&key) && {
                        model.push_front(key);
                        true
                    }
                ),
                1 => assert_eq!(
                    l.push_back(key),
                    !model.contains(&key) && {
                        model.push_back(key);
                        true
                    }
                ),
                2 => {
                    let present = model.iter().position(|k| *k == key);
                    if let Some(p) = present {
                        model.remove(p);
                        model.push_front(key);
                    }
                    assert_eq!(l.move_to_front(key), present.is_some());
                }
                3 => {
                    let present = model.iter().position(|k| *k == key);
                    if let Some(p) = present {
                        model.remove(p);
                    }
                    assert_eq!(l.remove(key), present.is_some());
                }
                4 => assert_eq!(l.pop_back(), model.pop_back()),
                _ => assert_eq!(l.pop_front(), model.pop_front()),
            }
            assert_eq!(l.len(), model.len());
            assert_eq!(l.front(), model.front().copied());
            assert_eq!(l.back(), model.back().copied());
        }
    }
}
