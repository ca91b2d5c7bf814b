//! The eviction key buffer as the host sees it: the place in a plugin's linear memory where,
//! on every miss, the host writes the hits waiting and reads the victims named.
//!
//! Through wasmtime's safe API each access resolves the memory again (`Memory::data`: the
//! store's instance, its offsets, the vmctx's memory pointer, the memory's definition, five
//! dependent loads), twice a miss: about a tenth of what a `CacheCore` miss with the SDK LRU
//! costs the host outside the plugin (`perf annotate` of `Plugin::evict_miss` under
//! `cargo bench -p kplug-cache --bench hook_call -- core/requests_wasm_sdk_lru`). A
//! [`KeyBuf`] resolves the buffer's address once, at load, and keeps it. That is sound
//! because:
//!
//! 1. the address stays inside the memory: the buffer was checked to lie within it at load,
//!    and a linear memory never shrinks;
//! 2. the memory never moves: every engine is built with `memory_may_move(false)`
//!    (`engine.rs`), so growing it never relocates the base the address was taken from; it
//!    is freed only with the store, which the `Plugin` owning this `KeyBuf` owns too;
//! 3. nothing else touches those bytes while the host does: each access borrows the store
//!    (mutably to write), so no wasm code runs and no slice of the memory from
//!    `Memory::data` is alive meanwhile; the wasm guest is single-threaded (no shared
//!    memories: the engine turns threads off).
//!
//! Every access to the eviction key buffer goes through it (the miss path's, and a load's
//! replay in batches, ABI 1.9). It also keeps the memory's base, from which it prefetches
//! the places a plugin said it will read for the coming requests (ABI 1.12): a prefetch
//! reads nothing into the program and never faults, and an offset below 4 GiB stays inside
//! the memory's reservation.
//!
//! [`HitMarks`] reads a plugin's hit marks (ABI 1.13) the same way, at every hit: its header
//! was checked to lie inside memory at load (1 and 2 keep it there), and the table the header
//! names is checked on each read against the memory's size, which is looked up again only
//! when a table reaches past the size last seen (a memory only grows, so a table within the
//! size seen is within the memory).

use std::ptr::NonNull;

use wasmtime::{Memory, Store};

use crate::state::HostState;

/// `len` bytes at a fixed place in one plugin's linear memory (see the module docs). Its
/// methods take the store it was made from (the `Plugin` that owns both passes it): that
/// borrow is what keeps the guest from running meanwhile.
pub(crate) struct KeyBuf {
    at: NonNull<u8>,
    len: usize,
    /// The memory's base, for [`KeyBuf::prefetch_guest`].
    base: NonNull<u8>,
}

// SAFETY: a `KeyBuf` is an address inside the linear memory of the store it travels with (the
// same `Plugin`), used only while that store is borrowed; moving both to another thread
// moves the memory's only users with them.
unsafe impl Send for KeyBuf {}

impl KeyBuf {
    /// The `len` bytes at `at` of `memory`, which belongs to `store`; `None` if they do not
    /// lie inside it.
    pub(crate) fn new(
        memory: &Memory,
        store: &Store<HostState>,
        at: usize,
        len: usize,
    ) -> Option<Self> {
        if at.checked_add(len)? > memory.data_size(store) {
            return None;
        }
        // wasmtime's raw base pointer (no reference to the memory is made: the bytes are the
        // guest's, which writes them through the same base).
        let base = NonNull::new(memory.data_ptr(store))?;
        // SAFETY: `at + len` is within the memory, checked above.
        NonNull::new(unsafe { base.as_ptr().add(at) }).map(|at| KeyBuf { at, len, base })
    }

    /// Writes `keys` little-endian at the start of the buffer. Panics if they do not fit.
    #[inline]
    pub(crate) fn write(&self, store: &mut Store<HostState>, keys: &[u64]) {
        self.write_at(store, 0, keys)
    }

    /// Writes `keys` little-endian from key `from` of the buffer. Panics if they do not fit.
    #[inline]
    pub(crate) fn write_at(&self, _store: &mut Store<HostState>, from: usize, keys: &[u64]) {
        assert!(
            (from + keys.len()) * 8 <= self.len,
            "{} keys from {from} overflow the key buffer",
            keys.len()
        );
        // SAFETY: in bounds (checked above, and at `new`), and the store borrowed mutably
        // means no other access to the memory (module docs, 3). Byte copies: no alignment.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.at.as_ptr().add(from * 8), keys.len() * 8)
        };
        for (d, k) in dst.chunks_exact_mut(8).zip(keys) {
            d.copy_from_slice(&k.to_le_bytes());
        }
    }

    /// Asks the CPU to bring into its caches the guest's bytes at `offsets` of its memory
    /// (ABI 1.12: where a plugin will read soon). An offset at or past 4 GiB, outside any
    /// 32-bit linear memory, is skipped; one past the memory's end reads nothing (a prefetch
    /// never faults).
    #[inline]
    pub(crate) fn prefetch_guest(&self, _store: &Store<HostState>, offsets: &[u64]) {
        for &off in offsets {
            if off >= 1 << 32 {
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch never faults nor changes memory, so the address (a 32-bit
            // offset from the memory's base, which never moves) need not be mapped.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(self.base.as_ptr().wrapping_add(off as usize).cast());
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = off;
        }
    }

    /// Appends the first `n` little-endian keys of the buffer to `out`. Panics if the buffer
    /// holds fewer.
    #[inline]
    pub(crate) fn read(&self, store: &Store<HostState>, n: usize, out: &mut Vec<u64>) {
        self.read_from(store, 0, n, out)
    }

    /// Appends the `n` little-endian keys from key `from` of the buffer to `out`. Panics if
    /// the buffer holds fewer.
    #[inline]
    pub(crate) fn read_from(
        &self,
        _store: &Store<HostState>,
        from: usize,
        n: usize,
        out: &mut Vec<u64>,
    ) {
        let bytes = n * 8;
        assert!(
            (from + n) * 8 <= self.len,
            "{n} keys from {from} overflow the key buffer"
        );
        // SAFETY: in bounds, and the store borrowed means no wasm code writes meanwhile
        // (module docs, 3).
        let src = unsafe { std::slice::from_raw_parts(self.at.as_ptr().add(from * 8), bytes) };
        out.extend(
            src.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }

    /// Appends the `n` little-endian `u32`s from byte `at` of the buffer to `out` (a seed's
    /// handles). Panics if the buffer holds fewer.
    pub(crate) fn read_u32s(
        &self,
        _store: &Store<HostState>,
        at: usize,
        n: usize,
        out: &mut Vec<u32>,
    ) {
        let end = at + n * 4;
        assert!(
            end <= self.len,
            "{n} handles at {at} overflow the key buffer"
        );
        // SAFETY: as in `read`.
        let src = unsafe { std::slice::from_raw_parts(self.at.as_ptr().add(at), n * 4) };
        out.extend(
            src.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
    }
}

/// A plugin's hit marks (ABI 1.13, `kplug_evict_hit_marks`): an 8-byte header at a fixed
/// place in its memory naming a table (address and length, little-endian `u32`s) whose byte
/// `h`, nonzero, lets a hit on handle `h` wait for the next call (see the module docs).
pub(crate) struct HitMarks {
    header: NonNull<u8>,
    base: NonNull<u8>,
    /// The memory's size when last looked up (it only grows).
    size: usize,
    memory: Memory,
}

// SAFETY: as for `KeyBuf`: addresses inside the memory of the store they travel with.
unsafe impl Send for HitMarks {}

impl HitMarks {
    /// The header at `at` of `memory`, which belongs to `store`; `None` for address 0 (no
    /// marks) or a header not inside the memory.
    pub(crate) fn new(memory: &Memory, store: &Store<HostState>, at: usize) -> Option<Self> {
        let size = memory.data_size(store);
        if at == 0 || at.checked_add(8)? > size {
            return None;
        }
        let base = NonNull::new(memory.data_ptr(store))?;
        // SAFETY: `at + 8` is within the memory, checked above.
        let header = NonNull::new(unsafe { base.as_ptr().add(at) })?;
        Some(HitMarks {
            header,
            base,
            size,
            memory: *memory,
        })
    }

    /// Whether handle `handle` is marked: its byte lies inside the table and the memory, and
    /// is nonzero. Anything out of place reads as unmarked.
    #[inline]
    pub(crate) fn marked(&mut self, store: &Store<HostState>, handle: u32) -> bool {
        // SAFETY: the header lies inside the memory (checked at `new`, module docs 1 and 2),
        // and the store borrowed means no wasm code writes meanwhile (3). Byte reads: no
        // alignment.
        let header = unsafe { std::ptr::read_unaligned(self.header.as_ptr().cast::<[u8; 8]>()) };
        let [a0, a1, a2, a3, l0, l1, l2, l3] = header;
        let at = u32::from_le_bytes([a0, a1, a2, a3]) as usize;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        if handle as usize >= len {
            return false;
        }
        let Some(end) = at.checked_add(len) else {
            return false;
        };
        if end > self.size {
            self.size = self.memory.data_size(store);
            if end > self.size {
                return false;
            }
        }
        // SAFETY: `at + handle < at + len <= size`, within the memory (the size only grows);
        // as above for the rest.
        unsafe { *self.base.as_ptr().add(at + handle as usize) != 0 }
    }
}
