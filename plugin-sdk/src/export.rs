//! The registration macro and the runtime pieces its generated code uses.
//!
//! State lives in a static [`__private::PluginCell`]: wasm32 plugins are
//! single-threaded and the host never re-enters a plugin (imports do not call
//! back), so each export takes the one `&mut` to the state for its duration.
//! The exports are generated only on wasm32, so policy crates can also be
//! linked natively (as rlibs, for unit tests or a native simulator) without
//! clashing `#[no_mangle]` symbols.

#[doc(hidden)]
pub mod __private {
    use core::cell::UnsafeCell;

    use crate::{MAX_PARAM_BYTES, MAX_PREFETCH_RANGES, Plugin};
    use kplug_abi::PREFETCH_RANGE_BYTES;

    /// Lazily-initialised plugin state in a static.
    pub struct PluginCell<T>(UnsafeCell<Option<T>>);

    // SAFETY: only used on wasm32 (single-threaded) by the generated exports,
    // which are not re-entered.
    unsafe impl<T> Sync for PluginCell<T> {}

    impl<T: Default> PluginCell<T> {
        /// An empty cell.
        pub const fn new() -> Self {
            PluginCell(UnsafeCell::new(None))
        }

        /// The state, created with `Default` on first use.
        ///
        /// # Safety
        /// No other reference from `get` may be alive (single thread, no
        /// re-entrance): each generated export calls it once.
        #[inline(always)]
        #[allow(clippy::mut_from_ref)]
        pub unsafe fn get(&self) -> &mut T {
            // SAFETY: see the function's contract.
            unsafe { (*self.0.get()).get_or_insert_with(T::default) }
        }
    }

    impl<T: Default> Default for PluginCell<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A static buffer of a fixed size, handed to the host.
    #[repr(align(8))]
    pub struct Buffer<const N: usize>(pub UnsafeCell<[u8; N]>);

    // SAFETY: as for `PluginCell`.
    unsafe impl<const N: usize> Sync for Buffer<N> {}

    /// Where the host writes a parameter's key and value.
    pub static PARAM_BUF: Buffer<{ 2 * MAX_PARAM_BYTES }> =
        Buffer(UnsafeCell::new([0; 2 * MAX_PARAM_BYTES]));
    /// Where the plugin writes its prefetch ranges.
    pub static PREFETCH_BUF: Buffer<{ PREFETCH_RANGE_BYTES * MAX_PREFETCH_RANGES }> = Buffer(
        UnsafeCell::new([0; PREFETCH_RANGE_BYTES * MAX_PREFETCH_RANGES]),
    );

    /// The eviction key buffer (ABI 1.4): hits in, victims out.
    pub static EVICT_BUF: Buffer<{ 8 * kplug_abi::EVICT_BUF_KEYS }> =
        Buffer(UnsafeCell::new([0; 8 * kplug_abi::EVICT_BUF_KEYS]));

    /// The eviction key buffer as an array of keys.
    ///
    /// # Safety
    /// No other reference to `EVICT_BUF` may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn evict_keys() -> &'static mut [u64; kplug_abi::EVICT_BUF_KEYS] {
        // SAFETY: the buffer is 8-aligned and exactly EVICT_BUF_KEYS u64s; see the contract.
        unsafe { &mut *(EVICT_BUF.0.get() as *mut [u64; kplug_abi::EVICT_BUF_KEYS]) }
    }

    /// `kplug_evict_miss`: `evict` then `insert`; the number of victims written.
    pub fn evict_miss<T: crate::Eviction>(p: &mut T, key: i64, need: i32) -> i32 {
        // SAFETY: the only reference to the buffer during this export.
        let mut v = crate::Victims::new(unsafe { evict_keys() });
        p.evict(key as u64, need.max(0) as usize, &mut v);
        p.insert(key as u64);
        v.len() as i32
    }

    /// `kplug_evict_hits`: each of the `n` hits in the buffer, oldest first; the number of
    /// victims written.
    pub fn evict_hits<T: crate::Eviction>(p: &mut T, n: i32) -> i32 {
        // SAFETY: the only reference to the buffer during this export.
        let mut v = crate::Victims::new(unsafe { evict_keys() });
        v.take_hits(n.max(0) as usize, |k, v| p.hit(k, v));
        v.len() as i32
    }

    /// `kplug_evict_handle_miss` (1.8): the `hits` handles in the buffer, then `evict` (the
    /// hits' victims count towards `need`) and `insert`; `(handle << 32) | victims`.
    pub fn evict_handle_miss<T: crate::HandleEviction>(
        p: &mut T,
        hits: i32,
        key: i64,
        need: i32,
    ) -> i64 {
        // SAFETY: the only reference to the buffer during this export.
        let keys = unsafe { evict_keys() };
        // 1.12: the keys of coming requests in the buffer's last entries, their count in
        // bits 16-23 (only to a plugin that asked, so a plain count otherwise); the policy
        // writes over each the address it will read for it, which the host reads ahead.
        let (hits, coming) = (hits & 0xffff, (hits >> 16 & 0xff) as usize);
        // At most its count, and never over the hits, whatever the host says.
        let most = (evict_lookahead(T::LOOKAHEAD) as usize)
            .min(kplug_abi::EVICT_BUF_KEYS.saturating_sub(hits as usize));
        let coming = coming.min(most);
        if T::LOOKAHEAD > 0 && coming > 0 {
            let at = kplug_abi::EVICT_BUF_KEYS - coming;
            p.coming(&mut keys[at..]);
        }
        let mut v = crate::Victims::new(keys);
        if hits > 0 {
            take_events(p, &mut v, hits);
        }
        p.evict(key as u64, need.max(0) as usize, &mut v);
        let handle = p.insert(key as u64);
        // 1.10: named ahead only after a miss that made room (the host takes them only then;
        // any other answer drops what was named).
        let mut named = 0;
        let most = evict_ahead(T::AHEAD, T::HIT_BATCH) as u32;
        if most > 0 {
            // SAFETY: the only reference to the cell during this export.
            let ahead = unsafe { AHEAD.get() };
            if need > 0 {
                let want = ahead.next(most);
                named = v.name_ahead(want as usize, |out| p.name_ahead(out));
            }
            ahead.named(named as u32);
        }
        // 1.11: likely victims after the blocks named ahead.
        let mut hints = 0;
        if T::HINTS > 0 && need > 0 {
            let most = evict_hints(T::HINTS) as usize;
            hints = v.name_after(named, most, |out| p.likely_victims(out));
        }
        let n = v.len() as u64;
        publish_marks(p);
        ((handle as u64) << 32 | (hints as u64) << 24 | (named as u64) << 16 | n) as i64
    }

    /// How many blocks to name ahead (1.10): as many as the host took last time, doubled,
    /// within `1..=HandleEviction::AHEAD`. Naming costs the plugin a step along its list per
    /// block, wasted on blocks never taken (the host stops at the first one hit, removed or
    /// short of room): where the host takes all, the count grows to the policy's most; where
    /// hits reach the back of the list before misses do, it falls towards one.
    #[derive(Default)]
    pub struct AheadCount {
        /// Blocks to name next (0: not yet started, one).
        scale: u32,
        /// Named in the last answer, and taken since.
        named: u32,
        taken: u32,
    }

    impl AheadCount {
        /// The count for this answer, judged by how the last one's blocks were taken.
        #[inline]
        fn next(&mut self, most: u32) -> u32 {
            if self.named > 0 {
                self.scale = if self.taken >= self.named {
                    self.scale.saturating_mul(2)
                } else {
                    (self.taken.saturating_mul(2)).max(self.scale / 2)
                };
            }
            self.scale = self.scale.clamp(1, most.max(1));
            self.scale
        }

        /// This answer named `n`.
        #[inline]
        fn named(&mut self, n: u32) {
            (self.named, self.taken) = (n, 0);
        }
    }

    /// The plugin's count of blocks named ahead (1.10).
    pub static AHEAD: PluginCell<AheadCount> = PluginCell::new();

    /// The `n` entries of a by-handle call's hits: hits, and (1.10) misses taken without a
    /// call. Inlined into each export, as reading the hits was before misses came among them
    /// (left to LLVM, it was a call of its own with the policy's `hit` inside: the SDK LRU's
    /// cycle 53 -> 68 ns).
    /// A policy naming nothing ahead gets no miss among its hits (the host takes none): it
    /// reads them as hits alone, as before 1.10.
    #[inline(always)]
    fn take_events<T: crate::HandleEviction>(p: &mut T, v: &mut crate::Victims<'_>, n: i32) {
        if evict_ahead(T::AHEAD, T::HIT_BATCH) == 0 {
            v.take_hits(
                n as usize,
                #[inline(always)]
                |h, v| p.hit(h as u32, v),
            );
            return;
        }
        // SAFETY: the only reference to the cell while the hits are taken.
        let ahead = unsafe { AHEAD.get() };
        // The closure is called at four places of the loop (two entries a turn, a hit or a
        // miss each): left to LLVM, a few more instructions in the SDK's list moves made it
        // a function called at every entry (the SDK LRU 412 -> 475 instructions a request on
        // the hook bench's stream; docs/benchmarks.md §3).
        v.take_events(
            n as usize,
            #[inline(always)]
            |e, v| match e {
                crate::Event::Hit(h) => p.hit(h, v),
                crate::Event::Miss { handle, key } => took_ahead(p, ahead, handle, key),
            },
        );
    }

    /// A miss taken ahead, inline in the loop over the hits. Out of line it cost a call a miss
    /// (~30 instructions of Cranelift's prologue and epilogue). Inline, a policy's `access`
    /// should be `#[inline(always)]` (the SDK LRU's is): left to LLVM beside this one, it
    /// made the loop's body, hit or miss, a function called at every entry (the SDK LRU on
    /// cache2k's `orm-busy` 304 -> 356 instructions a request); with both inline, 296
    /// (`scripts/bench/instructions.sh`).
    #[inline(always)]
    fn took_ahead<T: crate::HandleEviction>(
        p: &mut T,
        ahead: &mut AheadCount,
        handle: u32,
        key: u64,
    ) {
        ahead.taken += 1;
        if !p.took_ahead(handle, key) {
            crate::broken_promise()
        }
    }

    /// `kplug_evict_handle_hits` (1.8): each of the `n` handles in the buffer, oldest first;
    /// the number of victims written.
    pub fn evict_handle_hits<T: crate::HandleEviction>(p: &mut T, n: i32) -> i32 {
        // SAFETY: the only reference to the buffer during this export.
        let mut v = crate::Victims::new(unsafe { evict_keys() });
        if n > 0 {
            take_events(p, &mut v, n);
        }
        let n = v.len() as i32;
        publish_marks(p);
        n
    }

    /// `kplug_evict_handle_remove` (1.8).
    pub fn evict_handle_remove<T: crate::HandleEviction>(p: &mut T, key: i64, handle: i32) {
        p.remove(key as u64, handle as u32);
        publish_marks(p);
    }

    /// The hit marks' header (1.13): the table's address and its length in bytes,
    /// little-endian `u32`s, as `publish_marks` last wrote them.
    pub static HIT_MARKS: Buffer<8> = Buffer(UnsafeCell::new([0; 8]));

    /// `kplug_evict_hit_marks` (1.13): the header's address for a policy that marks
    /// ([`HandleEviction::HIT_MARKS`](crate::HandleEviction::HIT_MARKS)), else 0 (none).
    pub fn evict_hit_marks(marks: bool) -> i32 {
        if marks {
            HIT_MARKS.0.get() as usize as i32
        } else {
            0
        }
    }

    /// Writes where the policy's hit marks are now into the header (1.13), at the end of
    /// every export that may have changed them: the table moves as it grows.
    #[inline(always)]
    fn publish_marks<T: crate::HandleEviction>(p: &T) {
        if T::HIT_MARKS {
            let marks = p.hit_marks();
            let mut header = [0u8; 8];
            // wasm32: a 32-bit address (the truncation only ever applies to native tests).
            header[..4].copy_from_slice(&(marks.as_ptr() as usize as u32).to_le_bytes());
            header[4..].copy_from_slice(&(marks.len() as u32).to_le_bytes());
            // SAFETY: the only reference to the header during this export.
            unsafe { *HIT_MARKS.0.get() = header };
        }
    }

    /// `kplug_evict_seed` (1.9): the first keys of the buffer (`n`, copied out first), each
    /// told through `miss` (the plugin's own `kplug_evict_miss(key, 0)` or
    /// `kplug_evict_handle_miss(0, key, 0)`: the policy decides exactly as with one call a
    /// block, and the miss path's code stays what it was: calling the policy's `evict` and
    /// `insert` from a second place made LLVM compile the miss path worse, `CacheCore`
    /// requests with the SDK LRU 2-5 % slower).
    /// `miss` answers `(handle, victims)` with the victims at the buffer's start; they are
    /// kept after the call's earlier ones. Keys are taken while at most half the call's room
    /// for victims ([`kplug_abi::EVICT_SEED_KEYS`]) is used; a key naming more than the room
    /// left traps (the plugin has forgotten blocks it cannot hand back). The handles go to the
    /// buffer's second half. `(taken << 32) | victims`.
    #[inline]
    pub fn evict_seed(n: i32, mut miss: impl FnMut(u64) -> (u32, usize)) -> i64 {
        use core::mem::MaybeUninit;
        const ROOM: usize = kplug_abi::EVICT_SEED_KEYS;
        let n = (n.max(0) as usize).min(ROOM);
        let mut keys = [MaybeUninit::<u64>::uninit(); ROOM];
        let mut handles = [0u32; ROOM];
        let mut named = [MaybeUninit::<u64>::uninit(); ROOM];
        let (mut taken, mut victims) = (0, 0);
        {
            // SAFETY: no other reference to the buffer while this one lives (`miss` writes it
            // through its own, after this block's reads).
            let buf = unsafe { evict_keys() };
            for (dst, k) in keys[..n].iter_mut().zip(buf.iter()) {
                dst.write(u64::from_le(*k));
            }
        }
        for k in &keys[..n] {
            if taken > 0 && victims > ROOM / 2 {
                break;
            }
            // SAFETY: the first `n` were written above.
            let (handle, m) = miss(unsafe { k.assume_init() });
            handles[taken] = handle;
            taken += 1;
            assert!(
                victims + m <= ROOM,
                "more victims than a seed call may name"
            );
            // SAFETY: as above; `miss` has returned.
            let buf = unsafe { evict_keys() };
            for (dst, v) in named[victims..victims + m].iter_mut().zip(&buf[..m]) {
                dst.write(*v);
            }
            victims += m;
        }
        // SAFETY: as above.
        let buf = unsafe { evict_keys() };
        for (dst, v) in buf.iter_mut().zip(&named[..victims]) {
            // SAFETY: the first `victims` were written in the loop.
            *dst = unsafe { v.assume_init() };
        }
        for (i, h) in handles[..taken].iter().enumerate() {
            seed_handle(buf, i, *h);
        }
        ((taken as u64) << 32 | victims as u64) as i64
    }

    /// Writes `handle` as the `i`-th little-endian `u32` of the seed's handles (1.9).
    #[inline]
    fn seed_handle(buf: &mut [u64; kplug_abi::EVICT_BUF_KEYS], i: usize, handle: u32) {
        let slot = &mut buf[kplug_abi::EVICT_SEED_KEYS + i / 2];
        let mut bytes = slot.to_ne_bytes();
        bytes[4 * (i % 2)..4 * (i % 2) + 4].copy_from_slice(&handle.to_le_bytes());
        *slot = u64::from_ne_bytes(bytes);
    }

    /// `kplug_evict_hit_batch`: the policy's batch (its `HIT_BATCH`), within 1..=256.
    /// This and the three counts below are inlined: from the policy's constants they fold
    /// away in the miss export, where each was a call (with `evict_ahead`'s, ~30
    /// instructions a miss).
    #[inline]
    pub fn evict_hit_batch(batch: u32) -> i32 {
        batch.clamp(1, kplug_abi::EVICT_BUF_KEYS as u32) as i32
    }

    /// `kplug_evict_ahead` (1.10): [`HandleEviction::AHEAD`](crate::HandleEviction::AHEAD),
    /// at most [`kplug_abi::EVICT_AHEAD_KEYS`]; 0 with a hit batch (`HIT_BATCH`) under
    /// [`kplug_abi::EVICT_AHEAD_MIN_HIT_BATCH`], where no miss fits among the hits and the host
    /// takes none.
    #[inline]
    pub fn evict_ahead(ahead: u32, hit_batch: u32) -> i32 {
        if (evict_hit_batch(hit_batch) as usize) < kplug_abi::EVICT_AHEAD_MIN_HIT_BATCH {
            return 0;
        }
        ahead.min(kplug_abi::EVICT_AHEAD_KEYS as u32) as i32
    }

    /// `kplug_evict_hints` (1.11): the policy's `HINTS`, at most
    /// [`kplug_abi::EVICT_HINT_KEYS`].
    #[inline]
    pub fn evict_hints(hints: u32) -> i32 {
        hints.min(kplug_abi::EVICT_HINT_KEYS as u32) as i32
    }

    /// `kplug_evict_lookahead` (1.12): the policy's `lookahead()` (at most its `LOOKAHEAD`),
    /// at most [`kplug_abi::EVICT_LOOKAHEAD_KEYS`].
    #[inline]
    pub fn evict_lookahead(lookahead: u32) -> i32 {
        lookahead.min(kplug_abi::EVICT_LOOKAHEAD_KEYS as u32) as i32
    }

    /// Where the host writes a probe's events (ABI 1.5).
    pub static PROBE_BUF: Buffer<
        { kplug_abi::probe::PROBE_BATCH_EVENTS * kplug_abi::probe::PROBE_EVENT_BYTES },
    > = Buffer(UnsafeCell::new(
        [0; kplug_abi::probe::PROBE_BATCH_EVENTS * kplug_abi::probe::PROBE_EVENT_BYTES],
    ));

    /// `kplug_probe_events(n)`: each of the `n` events in the buffer to `event`, in order
    /// (events of an unknown layout version are skipped).
    #[cfg(feature = "alloc")]
    pub fn probe_events<T: crate::Probe>(p: &mut T, n: i32) -> i32 {
        let n = (n.max(0) as usize).min(kplug_abi::probe::PROBE_BATCH_EVENTS);
        // SAFETY: the host wrote the buffer before this call and nothing else references it.
        let buf = unsafe { &*PROBE_BUF.0.get() };
        for raw in buf
            .chunks_exact(kplug_abi::probe::PROBE_EVENT_BYTES)
            .take(n)
        {
            if let Some(e) = kplug_abi::probe::Event::decode(raw) {
                p.event(&e);
            }
        }
        p.batch_end();
        0
    }

    /// The last report, kept until the next one (the host copies it out after the call).
    #[cfg(feature = "alloc")]
    pub static PROBE_REPORT: PluginCell<alloc::string::String> = PluginCell::new();

    /// `kplug_probe_report()`: the report's `(ptr << 32) | len`.
    #[cfg(feature = "alloc")]
    pub fn probe_report<T: crate::Probe>(p: &mut T) -> i64 {
        // SAFETY: single-threaded, the only reference during this call.
        let out = unsafe { PROBE_REPORT.get() };
        out.clear();
        p.report(out);
        kplug_abi::probe::pack_report(out.as_ptr() as usize as u32, out.len() as u32)
    }

    /// `kplug_alloc`: the parameter buffer if `len` fits, else 0.
    pub fn alloc(len: i32) -> i32 {
        if len > 0 && len as usize <= 2 * MAX_PARAM_BYTES {
            PARAM_BUF.0.get() as usize as i32
        } else {
            0
        }
    }

    /// `kplug_set_param`: decodes the strings and calls `set_param`.
    ///
    /// # Safety
    /// The pointers and lengths must describe bytes of this module's memory
    /// (the host passes ranges of the buffer `alloc` returned).
    pub unsafe fn set_param<T: Plugin>(p: &mut T, kp: i32, kl: i32, vp: i32, vl: i32) -> i32 {
        // SAFETY: see the function's contract.
        let (k, v) = unsafe {
            (
                core::slice::from_raw_parts(kp as usize as *const u8, kl as usize),
                core::slice::from_raw_parts(vp as usize as *const u8, vl as usize),
            )
        };
        match (core::str::from_utf8(k), core::str::from_utf8(v)) {
            (Ok(k), Ok(v)) => match p.set_param(k, v) {
                Ok(()) => 0,
                Err(_) => 1,
            },
            _ => 2,
        }
    }

    /// `kplug_init`.
    pub fn init<T: Plugin>(p: &mut T, capacity: i64) -> i32 {
        match p.init(capacity as u64) {
            Ok(()) => 0,
            Err(0) => 1,
            Err(c) => c,
        }
    }

    /// The prefetch output array as the SDK's typed view.
    ///
    /// # Safety
    /// No other reference to `PREFETCH_BUF` may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn prefetch_out() -> crate::PrefetchOut<'static> {
        // SAFETY: the buffer is 8-aligned and exactly 128 u64s; see the contract.
        let buf = unsafe { &mut *(PREFETCH_BUF.0.get() as *mut [u64; 2 * MAX_PREFETCH_RANGES]) };
        crate::PrefetchOut::new(buf)
    }

    #[cfg(test)]
    mod tests {
        extern crate std;

        use super::AheadCount;

        #[test]
        fn the_count_named_ahead_follows_what_the_host_takes() {
            let mut a = AheadCount::default();
            let round = |a: &mut AheadCount, taken: u32| {
                let n = a.next(32);
                a.named(n);
                a.taken = taken.min(n);
                n
            };
            // All taken: 1, 2, 4, ... up to the policy's most.
            let counts: std::vec::Vec<u32> = (0..8).map(|_| round(&mut a, u32::MAX)).collect();
            assert_eq!(counts, [1, 2, 4, 8, 16, 32, 32, 32]);
            // None taken: halved each answer, down to one.
            let counts: std::vec::Vec<u32> = (0..7).map(|_| round(&mut a, 0)).collect();
            assert_eq!(counts, [32, 16, 8, 4, 2, 1, 1]);
            // Some taken: twice those, if more than half the last count.
            let counts: std::vec::Vec<u32> = (0..5).map(|_| round(&mut a, 1)).collect();
            assert_eq!(counts, [1, 2, 2, 2, 2]);
            let mut b = AheadCount::default();
            for _ in 0..6 {
                round(&mut b, u32::MAX);
            }
            assert_eq!(round(&mut b, 12), 32);
            assert_eq!(round(&mut b, 0), 24);
            // An answer naming none (a miss with room) is not judged: the count stays.
            b.named(0);
            assert_eq!(b.next(32), 24);
            // The most named: the policy's, at most 64; none with a hit batch under 3.
            assert_eq!(super::evict_ahead(32, 256), 32);
            assert_eq!(super::evict_ahead(100, 3), 64);
            assert_eq!(super::evict_ahead(32, 2), 0);
        }
    }
}

/// Generates the ABI v1 exports for a plugin type and the roles it serves.
///
/// `export_plugin!(Type, role, ...)` where `Type: Plugin + Default` and each
/// role is `eviction`, `handle_eviction` (ABI 1.8; not with `eviction`), `admission`,
/// `prefetch`, `governor` or `probe` (the type must implement the matching trait). Use it once per plugin crate. On targets other than
/// wasm32 it only checks the trait bounds.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty $(, $role:ident)+ $(,)?) => {
        const _: fn() = || {
            fn assert_plugin<T: $crate::Plugin + ::core::default::Default>() {}
            assert_plugin::<$ty>();
            $( $crate::export_plugin!(@check $role, $ty); )+
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static STATE: $crate::__private::PluginCell<$ty> = $crate::__private::PluginCell::new();

            #[inline(always)]
            fn state() -> &'static mut $ty {
                // SAFETY: single-threaded wasm, exports are not re-entered, and
                // each export takes the state once.
                unsafe { STATE.get() }
            }

            $crate::export_plugin!(@lifecycle);

            $( $crate::export_plugin!(@role $role, $ty); )+
        };
    };

    // The exports every plugin has (version, parameters, init), over the `state()` of the
    // expansion that invokes it (`export_plugin!`, `export_transform!`).
    (@lifecycle) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_abi_version() -> i32 {
            $crate::ABI_VERSION as i32
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_alloc(len: i32) -> i32 {
            $crate::__private::alloc(len)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_set_param(kp: i32, kl: i32, vp: i32, vl: i32) -> i32 {
            // SAFETY: the host passes ranges inside the buffer from kplug_alloc.
            unsafe { $crate::__private::set_param(state(), kp, kl, vp, vl) }
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_init(capacity: i64) -> i32 {
            $crate::__private::init(state(), capacity)
        }
    };

    (@check eviction, $ty:ty) => { fn assert_eviction<T: $crate::Eviction>() {} assert_eviction::<$ty>(); };
    (@check handle_eviction, $ty:ty) => { fn assert_handle_eviction<T: $crate::HandleEviction>() {} assert_handle_eviction::<$ty>(); };
    (@check admission, $ty:ty) => { fn assert_admission<T: $crate::Admission>() {} assert_admission::<$ty>(); };
    (@check prefetch, $ty:ty) => { fn assert_prefetch<T: $crate::Prefetch>() {} assert_prefetch::<$ty>(); };
    (@check governor, $ty:ty) => { fn assert_governor<T: $crate::Governor>() {} assert_governor::<$ty>(); };
    (@check probe, $ty:ty) => { fn assert_probe<T: $crate::Probe>() {} assert_probe::<$ty>(); };
    (@check $other:ident, $ty:ty) => {
        ::core::compile_error!(concat!("unknown role `", stringify!($other), "`: expected eviction, handle_eviction, admission, prefetch, governor or probe"));
    };

    (@role eviction, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_buf() -> i32 {
            $crate::__private::EVICT_BUF.0.get() as usize as i32
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_hit_batch() -> i32 {
            $crate::__private::evict_hit_batch(<$ty as $crate::Eviction>::HIT_BATCH)
        }
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub extern "C" fn kplug_evict_miss(key: i64, need: i32) -> i32 {
            $crate::__private::evict_miss(state(), key, need)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_hits(n: i32) -> i32 {
            $crate::__private::evict_hits(state(), n)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_remove(key: i64) {
            <$ty as $crate::Eviction>::remove(state(), key as u64)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_seed(n: i32) -> i64 {
            $crate::__private::evict_seed(n, |k| (0, kplug_evict_miss(k as i64, 0) as usize))
        }
    };
    (@role handle_eviction, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_buf() -> i32 {
            $crate::__private::EVICT_BUF.0.get() as usize as i32
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_hit_batch() -> i32 {
            $crate::__private::evict_hit_batch(<$ty as $crate::HandleEviction>::HIT_BATCH)
        }
        #[unsafe(no_mangle)]
        #[inline(never)]
        pub extern "C" fn kplug_evict_handle_miss(hits: i32, key: i64, need: i32) -> i64 {
            $crate::__private::evict_handle_miss(state(), hits, key, need)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_handle_hits(n: i32) -> i32 {
            $crate::__private::evict_handle_hits(state(), n)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_ahead() -> i32 {
            $crate::__private::evict_ahead(
                <$ty as $crate::HandleEviction>::AHEAD,
                <$ty as $crate::HandleEviction>::HIT_BATCH,
            )
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_hints() -> i32 {
            $crate::__private::evict_hints(<$ty as $crate::HandleEviction>::HINTS)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_lookahead() -> i32 {
            $crate::__private::evict_lookahead(
                <$ty as $crate::HandleEviction>::lookahead(state())
                    .min(<$ty as $crate::HandleEviction>::LOOKAHEAD),
            )
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_handle_remove(key: i64, handle: i32) {
            $crate::__private::evict_handle_remove(state(), key, handle)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_hit_marks() -> i32 {
            $crate::__private::evict_hit_marks(<$ty as $crate::HandleEviction>::HIT_MARKS)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_evict_seed(n: i32) -> i64 {
            $crate::__private::evict_seed(n, |k| {
                let r = kplug_evict_handle_miss(0, k as i64, 0) as u64;
                ((r >> 32) as u32, (r & 0xffff_ffff) as usize)
            })
        }
    };
    (@role admission, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_admit(key: i64, file: i64, block: i64) -> i32 {
            <$ty as $crate::Admission>::admit(state(), key as u64, file as u64, block as u64) as i32
        }
    };
    (@role prefetch, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_prefetch_buf() -> i32 {
            $crate::__private::PREFETCH_BUF.0.get() as usize as i32
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_prefetch(file: i64, block: i64, file_blocks: i64, hit: i32) -> i32 {
            // SAFETY: the only reference to the buffer during this call.
            let mut out = unsafe { $crate::__private::prefetch_out() };
            let req = $crate::PrefetchRequest {
                file: file as u64,
                block: block as u64,
                file_blocks: file_blocks as u64,
                hit: hit != 0,
            };
            <$ty as $crate::Prefetch>::prefetch(state(), req, &mut out);
            out.len() as i32
        }
    };
    (@role governor, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_tick(now_ns: i64) -> i32 {
            <$ty as $crate::Governor>::tick(state(), now_ns as u64);
            0
        }
    };
    (@role probe, $ty:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_probe_buf() -> i32 {
            $crate::__private::PROBE_BUF.0.get() as usize as i32
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_probe_events(n: i32) -> i32 {
            $crate::__private::probe_events(state(), n)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn kplug_probe_report() -> i64 {
            $crate::__private::probe_report(state())
        }
    };
    (@role $other:ident, $ty:ty) => {};
}
