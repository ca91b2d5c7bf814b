//! ARC eviction written with `kplug-sdk`, following libCacheSim's `ARC.c`
//! (Megiddo & Modha, FAST '03; `p` and the adaptation step are floats).
//!
//! T1 (seen once) and T2 (seen again) are LRU lists of resident blocks; B1 and
//! B2 are their ghosts. A miss that finds the block in B1 grows the target
//! `p` for T1 by `max(|B2|/|B1|, 1)`, one found in B2 shrinks it by
//! `max(|B1|/|B2|, 1)`; the block then enters T2, any other miss enters T1. A
//! hit moves a block to the head of T2. REPLACE evicts T1's tail into B1 when
//! `|T1| > p` (or `|T1| == p` on a B2 hit, or T2 is empty), else T2's tail
//! into B2; a miss found in no list first trims B1 (when `|T1| + |B1| = c`;
//! with B1 empty it evicts T1's tail outright) or B2 (when all four hold
//! `2c`).
//!
//! Which case applies depends on the block being inserted, which libCacheSim
//! learns in `find` before making room. ABI 1.4 hands the missed key to
//! `evict` before any victim is chosen (on every miss, with room or not), which
//! is exactly libCacheSim's `find`-on-miss; so ARC serves eviction alone and
//! composes with any admission plugin (`arc+doorkeeper`).
//!
//! Parameters: none (libCacheSim's ARC has none).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Eviction, KeyList, Plugin, Victims, export_plugin};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ghost {
    None,
    B1,
    B2,
}

/// Adaptive Replacement Cache.
#[derive(Default)]
pub struct Arc {
    t1: KeyList,
    t2: KeyList,
    b1: KeyList,
    b2: KeyList,
    p: f64,
    capacity: u64,
    /// The block of the current miss and where it was found, once `miss` ran.
    current: Option<(u64, Ghost)>,
}

impl Arc {
    /// libCacheSim's `ARC_find` for a block that is not resident.
    fn miss(&mut self, key: u64) {
        let (b1, b2) = (self.b1.len() as f64, self.b2.len() as f64);
        let ghost = if self.b1.contains(key) {
            let delta = (b2 / b1).max(1.0);
            self.p = (self.p + delta).min(self.capacity as f64);
            self.b1.remove(key);
            Ghost::B1
        } else if self.b2.contains(key) {
            let delta = (b1 / b2).max(1.0);
            self.p = (self.p - delta).max(0.0);
            self.b2.remove(key);
            Ghost::B2
        } else {
            Ghost::None
        };
        self.current = Some((key, ghost));
    }

    fn ghost(&self) -> Ghost {
        self.current.map_or(Ghost::None, |(_, g)| g)
    }

    /// REPLACE: evict T1's or T2's tail into its ghost.
    fn replace(&mut self) -> Option<u64> {
        let t1 = self.t1.len() as f64;
        let from_t1 = (t1 > 0.0 && (t1 > self.p || (t1 == self.p && self.ghost() == Ghost::B2)))
            || self.t2.is_empty();
        let (data, ghost) = if from_t1 {
            (&mut self.t1, &mut self.b1)
        } else {
            (&mut self.t2, &mut self.b2)
        };
        let k = data.pop_back()?;
        ghost.push_front(k);
        Some(k)
    }
}

impl Plugin for Arc {
    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity;
        let c = capacity.min(1 << 20) as usize;
        self.t1.reserve(c);
        self.b1.reserve(c);
        Ok(())
    }
}

impl Eviction for Arc {
    fn insert(&mut self, key: u64) {
        if self.current.map(|(k, _)| k) != Some(key) {
            self.miss(key);
        }
        if self.ghost() == Ghost::None {
            self.t1.push_front(key);
        } else {
            self.t2.push_front(key);
        }
        self.current = None;
    }

    fn access(&mut self, key: u64) {
        if self.t1.remove(key) {
            self.t2.push_front(key);
        } else {
            self.t2.move_to_front(key);
        }
    }

    fn remove(&mut self, key: u64) {
        if !self.t1.remove(key) {
            self.t2.remove(key);
        }
    }

    fn evict(&mut self, incoming: u64, need: usize, victims: &mut Victims<'_>) {
        self.miss(incoming);
        victims.fill(need, || self.victim(incoming));
    }

    fn victim(&mut self, incoming: u64) -> Option<u64> {
        if self.current.map(|(k, _)| k) != Some(incoming) {
            self.miss(incoming);
        }
        if self.ghost() != Ghost::None {
            return self.replace();
        }
        // Case IV of the paper: a miss in all four lists.
        let c = self.capacity as usize;
        if self.t1.len() + self.b1.len() + 1 > c {
            if !self.b1.is_empty() {
                self.b1.pop_back();
                self.replace()
            } else {
                self.t1.pop_back()
            }
        } else {
            if self.t1.len() + self.b1.len() + self.t2.len() + self.b2.len() >= 2 * c {
                self.b2.pop_back();
            }
            self.replace()
        }
    }
}

export_plugin!(Arc, eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_hit_goes_to_t2_and_moves_p() {
        let mut a = Arc::default();
        a.init(4).unwrap();
        let mut buf = [0u64; 256];
        for k in 1..=4 {
            a.evict(k, 0, &mut Victims::new(&mut buf));
            a.insert(k);
        }
        a.access(1); // T1 {4 3 2}, T2 {1}
        assert_eq!(a.victim(5), Some(2)); // T1's tail into B1
        a.insert(5);
        let mut v = Victims::new(&mut buf);
        a.evict(2, 1, &mut v); // B1 hit: p = 1, then T1's tail
        assert_eq!(a.p, 1.0);
        assert_eq!(v.iter().collect::<Vec<_>>(), [3]);
        a.insert(2);
        assert!(a.t2.contains(2) && a.b1.contains(3));
    }
}
