//! W-TinyLFU eviction written with `kplug-sdk`, following libCacheSim's
//! `WTinyLFU.c` (Einziger et al., TOS '17) with its default SLRU main cache.
//!
//! - **Window**: an LRU that every missed block enters (1 % of the cache; it
//!   is not capped on insert, only drained by eviction, as in libCacheSim).
//! - **Main**: a segmented LRU of the rest of the cache, 20 % probation and
//!   80 % protected (libCacheSim's `seg-size=1:4`). Blocks enter probation
//!   (or protected while probation is full and protected is not); a hit in
//!   probation promotes to protected, whose overflow is demoted back to the
//!   head of probation.
//! - **Frequency sketch**: a counting Bloom filter sized for the main cache
//!   at 0.1 % error (libCacheSim's `minimalIncrementCBF`, same sizing, same
//!   XXH64-based indexes), incremented on insertion, on main hits and for
//!   each window block considered for main; all counters are halved after
//!   `32 x main size` main hits.
//!
//! To make room, the window's LRU block moves to main while main has room;
//! once main is full it is compared with main's victim (probation's tail):
//! if the sketch says the window block is **more** frequent, main's victim is
//! evicted and the window block enters main (and the next window block is
//! considered: the reference libCacheSim, commit aa0fc40, the golden tests'
//! numbers; libCacheSim 0.3.5 stops there, as `evict-once=1` does); otherwise
//! the window block is evicted. An empty window makes main evict.
//!
//! libCacheSim's loop can evict several main blocks for one miss, leaving
//! the cache below capacity, and a hit in probation can evict too (protected's
//! overflow demoted into a full probation). ABI 1.4 lets the host follow
//! exactly: a miss names every block the loop evicted, and a hit names what it
//! evicted (`HIT_BATCH = 1`, so they leave before the next request). The
//! blocks evicted on the way wait on a pending list only within one call.
//! Only a hit in probation can evict: the window's and the protected
//! segment's blocks are marked (ABI 1.13, `HandleLists`' marks), and the
//! host holds hits on them until the next call.
//!
//! By handle (ABI 1.8): window, probation, protected and the pending list share one
//! slab (`HandleLists`), so a block keeps its handle as it moves between them (a
//! pending block hit again goes back to the window with it); only the sketch is
//! indexed by key.
//!
//! Parameters (libCacheSim's names and defaults):
//! - `window-size=0.01`: window share, `floor(capacity x ratio)`, in [0, 1);
//! - `main-cache=SLRU`: the only main cache implemented;
//! - `evict-once=0`: 1 ends an eviction at the first window block admitted
//!   into main (libCacheSim 0.3.5).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use kplug_sdk::{
    HandleEviction, HandleLists, Plugin, Rejected, Victims, export_plugin, param_bool,
};

/// The lists, numbered as in `HandleLists`.
const WINDOW: usize = 0;
/// SLRU segment 0.
const PROBATION: usize = 1;
/// SLRU segment 1.
const PROTECTED: usize = 2;
/// Blocks evicted in the current call, not yet named to the host.
const PENDING: usize = 3;

/// libCacheSim's `minimalIncrementCBF`: a counting Bloom filter sized for
/// `entries` at false-positive rate `error`. Despite its name, an add
/// increments all `k` counters (libCacheSim's loop does); the estimate is
/// their minimum. Indexes are `(a + i b) mod m` in 32-bit arithmetic, with
/// `a`, `b` the low 32 bits of XXH64 of the id under two seeds, exactly as
/// libCacheSim computes them.
struct Sketch {
    counters: Vec<u32>,
    hashes: u32,
}

const SEED0: u64 = 0x1234_5678;
const SEED1: u64 = 0x1234_4321;

impl Sketch {
    fn new(entries: u64, error: f64) -> Self {
        // bpe = -ln(error) / ln(2)^2 counters per entry, k = ceil(ln(2) bpe).
        let bpe = -ln(error) / 0.480_453_013_918_201;
        let hashes = ceil(core::f64::consts::LN_2 * bpe) as u32;
        let m = (ceil(bpe * entries as f64) as u64).clamp(2 * hashes as u64, i32::MAX as u64);
        Sketch {
            counters: vec![0; m as usize],
            hashes,
        }
    }

    #[inline]
    fn slots(&self, key: u64) -> impl Iterator<Item = usize> + use<> {
        let a = xxh64_u64(key, SEED0) as u32;
        let b = xxh64_u64(key, SEED1) as u32;
        let m = self.counters.len() as u32;
        (0..self.hashes).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % m) as usize)
    }

    fn estimate(&self, key: u64) -> u32 {
        self.slots(key).map(|i| self.counters[i]).min().unwrap_or(0)
    }

    fn add(&mut self, key: u64) {
        for i in self.slots(key) {
            self.counters[i] = self.counters[i].wrapping_add(1);
        }
    }

    fn decay(&mut self) {
        self.counters.iter_mut().for_each(|c| *c >>= 1);
    }
}

/// XXH64 of the 8 little-endian bytes of `x`.
#[inline]
fn xxh64_u64(x: u64, seed: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    let mut h = seed.wrapping_add(P5).wrapping_add(8);
    let k = x.wrapping_mul(P2).rotate_left(31).wrapping_mul(P1);
    h ^= k;
    h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

fn ceil(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t < x { t + 1.0 } else { t }
}

/// Natural logarithm for no_std (only used at init): ln(x) = 2 atanh((x-1)/(x+1)).
fn ln(x: f64) -> f64 {
    // Reduce x to [0.5, 1) x 2^e.
    let mut e = 0i32;
    let mut m = x;
    while m >= 1.0 {
        m /= 2.0;
        e += 1;
    }
    while m < 0.5 {
        m *= 2.0;
        e -= 1;
    }
    let y = (m - 1.0) / (m + 1.0);
    let (mut term, mut sum, y2) = (y, 0.0, y * y);
    for k in 0..40 {
        sum += term / (2 * k + 1) as f64;
        term *= y2;
    }
    2.0 * sum + e as f64 * core::f64::consts::LN_2
}

/// W-TinyLFU with an SLRU main cache.
pub struct WTinyLfu {
    /// Window, probation, protected (fronts are MRU) and pending.
    lists: HandleLists<4, { 1 << WINDOW | 1 << PROTECTED }>,
    seg_max: [usize; 2],
    main_size: usize,
    window_ratio: f64,
    sketch: Sketch,
    main_hits: u64,
    decay_every: u64,
    /// `evict-once`: a window block admitted into main ends the eviction.
    evict_once: bool,
}

impl Default for WTinyLfu {
    fn default() -> Self {
        WTinyLfu {
            lists: HandleLists::new(),
            seg_max: [0, 0],
            main_size: 0,
            window_ratio: 0.01,
            sketch: Sketch {
                counters: Vec::new(),
                hashes: 1,
            },
            main_hits: 0,
            decay_every: u64::MAX,
            evict_once: false,
        }
    }
}

impl WTinyLfu {
    fn main_len(&self) -> usize {
        self.lists.len(PROBATION) + self.lists.len(PROTECTED)
    }

    /// Moves entry `h` into main: probation, or protected while probation is full and
    /// protected is not.
    fn main_insert(&mut self, h: u32) {
        let l = &self.lists;
        if l.len(PROBATION) < self.seg_max[0] || l.len(PROTECTED) >= self.seg_max[1] {
            self.lists.move_to_front(PROBATION, h);
        } else {
            self.lists.move_to_front(PROTECTED, h);
        }
    }

    /// SLRU's victim: probation's tail, or protected's when probation is empty.
    fn main_victim(&self) -> Option<u32> {
        self.lists
            .back(PROBATION)
            .or_else(|| self.lists.back(PROTECTED))
    }

    /// Main's victim leaves the model: to the pending list (still resident in the host).
    /// Its handle, if main had one.
    fn main_evict_to_pending(&mut self) -> Option<u32> {
        let h = self.main_victim()?;
        self.lists.move_to_front(PENDING, h);
        Some(h)
    }

    fn main_hit(&mut self, h: u32) {
        let Some(key) = self.lists.key(h) else { return };
        if self.lists.list_of(h) != Some(PROTECTED) {
            self.lists.move_to_front(PROTECTED, h);
            while self.lists.len(PROTECTED) > self.seg_max[1] {
                let k = self.lists.back(PROTECTED).expect("non-empty");
                self.lists.move_to_front(PROBATION, k);
                while self.lists.len(PROBATION) > self.seg_max[0] {
                    self.main_evict_to_pending();
                }
            }
        } else {
            self.lists.move_to_front(PROTECTED, h);
        }
        self.sketch.add(key);
        self.main_hits += 1;
        if self.main_hits >= self.decay_every {
            self.main_hits = 0;
            self.sketch.decay();
        }
    }

    /// libCacheSim's `WTinyLFU_evict`: evicts at least one block; all but the
    /// last go to the pending list, the last is returned (its entry still in its list).
    #[inline(always)]
    fn evict_one(&mut self) -> Option<u32> {
        loop {
            let Some(w) = self.lists.back(WINDOW) else {
                return self.main_victim();
            };
            let wkey = self.lists.key(w)?;
            if self.main_len() < self.main_size {
                self.main_insert(w);
                self.sketch.add(wkey);
                continue;
            }
            let m = self.main_victim().and_then(|m| self.lists.key(m));
            match m {
                Some(m) if self.sketch.estimate(wkey) > self.sketch.estimate(m) => {
                    let victim = self.main_evict_to_pending();
                    self.main_insert(w);
                    self.sketch.add(wkey);
                    if self.evict_once {
                        return victim;
                    }
                }
                _ => {
                    self.sketch.add(wkey);
                    return Some(w);
                }
            }
        }
    }
}

impl Plugin for WTinyLfu {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "window-size" => match value.parse::<f64>() {
                Ok(r) if (0.0..1.0).contains(&r) => self.window_ratio = r,
                _ => return Err(Rejected),
            },
            "main-cache" if value.eq_ignore_ascii_case("SLRU") => {}
            "evict-once" => self.evict_once = param_bool(value)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        let window = (capacity as f64 * self.window_ratio) as u64;
        let main = capacity - window;
        self.main_size = main as usize;
        self.seg_max = [
            (1.0 / 5.0 * main as f64) as usize,
            (4.0 / 5.0 * main as f64) as usize,
        ];
        self.decay_every = (32 * main).max(1);
        self.sketch = Sketch::new(main.min(1 << 22), 0.001);
        let c = capacity.min(1 << 20) as usize;
        self.lists.reserve(c + 1);
        Ok(())
    }
}

impl WTinyLfu {
    /// Names the blocks evicted on the way, as many as one call can return (the rest at the
    /// next call: a hit on one of them meanwhile is replayed as libCacheSim's miss). Runs
    /// on every hit and nearly always finds none: tested inline, the loop called only when
    /// there are some (as a call it cost 76 instructions a request on cache2k's `orm-busy`).
    #[inline]
    fn hand_over(&mut self, victims: &mut Victims<'_>) {
        if !self.lists.is_empty(PENDING) {
            self.hand_over_pending(victims);
        }
    }

    #[inline(never)]
    fn hand_over_pending(&mut self, victims: &mut Victims<'_>) {
        while !victims.is_full()
            && let Some(k) = self.lists.pop_back(PENDING)
        {
            victims.push(k);
        }
    }
}

impl HandleEviction for WTinyLfu {
    const HIT_BATCH: u32 = 1;
    const HIT_MARKS: bool = true;

    /// The window's and the protected segment's blocks: a hit on one moves it to the front
    /// of its list (and counts in the sketch), which evicts nothing and moves no other block
    /// between lists. None while evicted blocks wait to be handed over (more than one
    /// call's answer holds): any hit hands them over.
    fn hit_marks(&self) -> &[u8] {
        if !self.lists.is_empty(PENDING) {
            return &[];
        }
        self.lists.marks()
    }

    #[inline(always)]
    fn evict(&mut self, _incoming: u64, need: usize, victims: &mut Victims<'_>) {
        self.hand_over(victims);
        while victims.len() < need {
            let last = self.evict_one();
            if let Some(h) = last {
                self.lists.move_to_front(PENDING, h);
            }
            self.hand_over(victims);
            if last.is_none() {
                break;
            }
        }
    }

    fn hit(&mut self, handle: u32, victims: &mut Victims<'_>) {
        self.access(handle);
        self.hand_over(victims);
    }

    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        self.sketch.add(key);
        self.lists.push_front(WINDOW, key)
    }

    fn access(&mut self, handle: u32) {
        match self.lists.list_of(handle) {
            Some(PENDING) => {
                // libCacheSim evicted it: this is its miss, with room to insert; the block
                // keeps its entry, and so its handle.
                self.lists.move_to_front(WINDOW, handle);
                if let Some(k) = self.lists.key(handle) {
                    self.sketch.add(k);
                }
            }
            Some(WINDOW) => {
                self.lists.move_to_front(WINDOW, handle);
            }
            Some(_) => self.main_hit(handle),
            None => {}
        }
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        self.lists.remove(handle);
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        if let Some(k) = self.lists.pop_back(PENDING) {
            return Some(k);
        }
        match self.evict_one() {
            Some(h) => self.lists.remove(h),
            None => self.lists.pop_back(PENDING),
        }
    }
}

export_plugin!(WTinyLfu, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_blocks_survive_a_scan() {
        let mut w = WTinyLfu::default();
        w.init(100).unwrap(); // window 1, main 99 (19 probation, 79 protected)
        // Resident blocks and their handles, as the host keeps them.
        let mut resident = std::collections::HashMap::new();
        let mut request = |w: &mut WTinyLfu, k: u64| {
            let mut buf = [0u64; 256];
            let mut v = Victims::new(&mut buf);
            let hit = resident.get(&k).copied();
            if let Some(h) = hit {
                w.hit(h, &mut v);
            } else {
                let need = (resident.len() + 1).saturating_sub(100);
                w.evict(k, need, &mut v);
                assert!(v.len() >= need);
            }
            for victim in v.iter() {
                assert!(
                    resident.remove(&victim).is_some(),
                    "victim {victim} not resident"
                );
            }
            if hit.is_none() {
                resident.insert(k, w.insert(k));
            }
            assert!(resident.len() <= 100);
        };
        for _ in 0..5 {
            for k in 0..50 {
                request(&mut w, k);
            }
        }
        // A scan interleaved with the hot set: main hits keep the hot blocks'
        // counts up and age the sketch; one-time blocks lose the comparison.
        for (i, k) in (1000..5000).enumerate() {
            request(&mut w, k);
            request(&mut w, i as u64 % 50);
        }
        let n = w.main_len();
        let window = w.lists.len(WINDOW);
        let hot = (0..50u64)
            .filter(|k| {
                [PROBATION, PROTECTED].iter().any(|&l| {
                    let mut c = w.lists.back(l);
                    while let Some(h) = c {
                        if w.lists.key(h) == Some(*k) {
                            return true;
                        }
                        c = w.lists.toward_front(h);
                    }
                    false
                })
            })
            .count();
        assert!(
            hot >= 45,
            "{hot} hot blocks in main of {n}, window {window}"
        );
    }

    /// ABI 1.13: a hit on a marked handle names no victim and unmarks no handle, on a
    /// skewed stream through a cache of 100 blocks; and nothing is marked while evicted
    /// blocks wait to be handed over.
    #[test]
    fn hits_on_marked_blocks_evict_nothing_and_unmark_nothing() {
        let mut w = WTinyLfu::default();
        w.init(100).unwrap();
        let mut resident = std::collections::HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut marked_hits, mut hits) = (0, 0);
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = if x & 1 == 0 {
                x >> 1 & 63
            } else {
                x >> 1 & 1023
            };
            let mut buf = [0u64; 256];
            let mut v = Victims::new(&mut buf);
            match resident.get(&k).copied() {
                Some(h) => {
                    hits += 1;
                    let before = w.hit_marks().to_vec();
                    let marked = before.get(h as usize).is_some_and(|m| *m != 0);
                    w.hit(h, &mut v);
                    if marked {
                        assert_eq!(v.len(), 0, "a marked hit named victims");
                        let after = w.hit_marks();
                        assert!(before.iter().zip(after).all(|(b, a)| *b == 0 || *a != 0));
                        marked_hits += 1;
                    }
                }
                None => {
                    let need = (resident.len() + 1).saturating_sub(100);
                    w.evict(k, need, &mut v);
                }
            }
            for victim in v.iter() {
                assert!(resident.remove(&victim).is_some());
            }
            if !resident.contains_key(&k) && v.iter().all(|victim| victim != k) {
                resident.insert(k, w.insert(k));
            }
        }
        assert!(
            marked_hits * 2 > hits,
            "{marked_hits} of {hits} hits marked"
        );
        w.lists.push_front(PENDING, 5000);
        assert!(w.hit_marks().is_empty());
    }

    #[test]
    fn ln_and_sketch() {
        assert!((ln(0.001) + 6.907_755).abs() < 1e-5);
        let mut s = Sketch::new(1000, 0.001);
        assert_eq!(s.hashes, 10);
        for _ in 0..5 {
            s.add(7);
        }
        s.add(8);
        assert_eq!(s.estimate(7), 5);
        assert_eq!(s.estimate(8), 1);
        s.decay();
        assert_eq!(s.estimate(7), 2);
        // XXH64 test vector: 8 zero bytes, seed 0.
        assert_eq!(xxh64_u64(0, 0), 0x34c9_6acd_cadb_1bbb);
    }

    /// A miss that admits window blocks into main evicts main's victim for each, and goes on
    /// to the next window block (the pinned libCacheSim); with `evict-once` the first
    /// admission ends it (libCacheSim 0.3.5).
    #[test]
    fn evict_once_stops_at_the_first_admission() {
        let victims = |once: bool| {
            let mut w = WTinyLfu::default();
            w.set_param("window-size", "0.2").unwrap();
            if once {
                w.set_param("evict-once", "1").unwrap();
            }
            w.init(10).unwrap(); // window 2, main 8
            // Ten misses with room: all in the (uncapped) window, oldest first out.
            for k in 1..=10 {
                w.insert(k);
            }
            // 9 and 10 are frequent; 1-8 go to main while it has room.
            for _ in 0..5 {
                w.sketch.add(9);
                w.sketch.add(10);
            }
            let mut buf = [0u64; 256];
            let mut v = Victims::new(&mut buf);
            w.evict(11, 1, &mut v);
            v.iter().collect::<Vec<_>>()
        };
        // Main holds 1 and 8 in probation (of 1 block; 2-7 filled protected). Both frequent
        // window blocks are admitted, each evicting probation's tail (1, then 8), and the
        // empty window makes main evict once more (9, just admitted).
        assert_eq!(victims(false), vec![1, 8, 9]);
        assert_eq!(victims(true), vec![1]);
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = WTinyLfu::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("window-size", "0.05").unwrap().window_ratio, 0.05);
        assert!(set("main-cache", "SLRU").is_ok());
        assert!(set("main-cache", "slru").is_ok());
        assert!(set("evict-once", "1").unwrap().evict_once);
        assert!(!set("evict-once", "false").unwrap().evict_once);
        for (key, bad) in [
            ("window-size", "1"),
            ("window-size", "-0.1"),
            ("main-cache", "LRU"),
            ("evict-once", "2"),
            ("window", "0.05"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
