//! S3-FIFO eviction written with `kplug-sdk`, following libCacheSim's
//! `S3FIFO.c` (Yang et al., SOSP '23; the 2024 version of that file).
//!
//! Three FIFO queues: **small** (10 % of the cache), **main** (the rest) and a
//! **ghost** of ids (as many entries as 90 % of the cache). A hit increments
//! the block's counter. A miss whose id is in the ghost enters main, any
//! other miss enters small, even while the cache is still filling (this is
//! the reference libCacheSim, commit aa0fc40, whose numbers we match exactly;
//! later versions send misses to main while small is full before the first
//! eviction, which changes cloudPhysicsIO at 25 % from 0.6526 to 0.6266). To
//! make room: if main holds more than its
//! share, or small is empty, main's tail is examined: a counter >= 1 sends
//! the block back to main's head with `min(counter, 3) - 1` (2-bit CLOCK),
//! else it is evicted. Otherwise small's tail: a counter >= the
//! move-to-main threshold (2) moves it to main's head with a cleared counter
//! and the next tail is examined; else it is evicted into the ghost.
//!
//! Ghost timing: libCacheSim checks the ghost for the missed block before
//! making room, our hooks at `insert`, after; the ghost is trimmed lazily (one
//! entry over its size until the next insert has looked), which yields
//! exactly libCacheSim's ghost contents.
//!
//! Parameters (libCacheSim's names and defaults):
//! - `small-size-ratio=0.10`: small queue share, `floor(capacity x ratio)`;
//! - `ghost-size-ratio=0.90`: ghost entries, `floor(capacity x ratio)`;
//! - `move-to-main-threshold=2`: hits in small needed to move to main.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Eviction, IntMap, KeyList, Plugin, Rejected, export_plugin, param_in};

/// S3-FIFO.
pub struct S3Fifo {
    small: KeyList,
    main: KeyList,
    ghost: KeyList,
    freq: IntMap<u8>,
    small_ratio: f64,
    ghost_ratio: f64,
    threshold: u8,
    small_size: usize,
    main_size: usize,
    ghost_size: usize,
}

impl Default for S3Fifo {
    fn default() -> Self {
        S3Fifo {
            small: KeyList::new(),
            main: KeyList::new(),
            ghost: KeyList::new(),
            freq: IntMap::new(),
            small_ratio: 0.10,
            ghost_ratio: 0.90,
            threshold: 2,
            small_size: 0,
            main_size: 0,
            ghost_size: 0,
        }
    }
}

impl S3Fifo {
    fn trim_ghost(&mut self, to: usize) {
        while self.ghost.len() > to {
            self.ghost.pop_back();
        }
    }

    fn evict_main(&mut self) -> Option<u64> {
        while let Some(k) = self.main.back() {
            let f = self
                .freq
                .get_mut(k)
                .expect("resident blocks have a counter");
            if *f >= 1 {
                *f = (*f).min(3) - 1;
                self.main.move_to_front(k);
            } else {
                self.main.pop_back();
                self.freq.remove(k);
                return Some(k);
            }
        }
        None
    }

    /// Evicts one block from small, or moves all of small to main (None).
    fn evict_small(&mut self) -> Option<u64> {
        while let Some(k) = self.small.pop_back() {
            let f = self
                .freq
                .get_mut(k)
                .expect("resident blocks have a counter");
            if *f >= self.threshold {
                *f = 0;
                self.main.push_front(k);
            } else {
                self.freq.remove(k);
                self.trim_ghost(self.ghost_size);
                if self.ghost_size > 0 {
                    self.ghost.push_front(k);
                }
                return Some(k);
            }
        }
        None
    }
}

impl Plugin for S3Fifo {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "small-size-ratio" => self.small_ratio = param_in(value, 0.0..=1.0)?,
            "ghost-size-ratio" => self.ghost_ratio = param_in(value, 0.0..=1.0)?,
            "move-to-main-threshold" => {
                self.threshold = value.parse()?;
            }
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.small_size = (capacity as f64 * self.small_ratio) as usize;
        self.main_size = capacity as usize - self.small_size;
        self.ghost_size = (capacity as f64 * self.ghost_ratio) as usize;
        let c = capacity.min(1 << 20) as usize;
        self.main.reserve(c);
        self.freq.reserve(c);
        self.ghost.reserve(self.ghost_size.min(1 << 20) + 1);
        Ok(())
    }
}

impl Eviction for S3Fifo {
    fn insert(&mut self, key: u64) {
        let remembered = self.ghost.remove(key);
        self.trim_ghost(self.ghost_size);
        if remembered {
            self.main.push_front(key);
        } else {
            self.small.push_front(key);
        }
        self.freq.insert(key, 0);
    }

    fn access(&mut self, key: u64) {
        if let Some(f) = self.freq.get_mut(key) {
            *f = f.saturating_add(1);
        }
    }

    fn remove(&mut self, key: u64) {
        if self.freq.remove(key).is_some() && !self.small.remove(key) {
            self.main.remove(key);
        }
    }

    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        loop {
            let victim = if self.main.len() > self.main_size || self.small.is_empty() {
                match self.evict_main() {
                    Some(k) => Some(k),
                    None if self.small.is_empty() => return None,
                    None => self.evict_small(),
                }
            } else {
                self.evict_small()
            };
            if victim.is_some() {
                return victim;
            }
        }
    }
}

export_plugin!(S3Fifo, eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hit_wonders_leave_through_small() {
        let mut s = S3Fifo::default();
        s.init(10).unwrap(); // small 1, main 9, ghost 9
        for k in 1..=10 {
            s.insert(k); // all in small
        }
        s.access(1);
        s.access(1);
        // small's tail 1 has 2 hits: it moves to main; 2 has none: evicted
        // into the ghost.
        assert_eq!(s.victim(0), Some(2));
        assert!(s.main.contains(1) && s.ghost.contains(2));
        s.insert(11);
        assert_eq!(s.victim(0), Some(3));
        s.insert(2); // remembered -> main
        assert!(s.main.contains(2) && !s.ghost.contains(2));
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = S3Fifo::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("small-size-ratio", "0.2").unwrap().small_ratio, 0.2);
        assert_eq!(set("ghost-size-ratio", "0.5").unwrap().ghost_ratio, 0.5);
        assert_eq!(set("move-to-main-threshold", "3").unwrap().threshold, 3);
        for (key, bad) in [
            ("small-size-ratio", "1.1"),
            ("ghost-size-ratio", "-0.5"),
            ("move-to-main-threshold", "256"),
            ("move-to-main-threshold", "1.5"),
            ("small_size_ratio", "0.2"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
