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
//! learns in `find` before making room. The ABI's eviction hooks learn the
//! key only at `insert`, after the victim was chosen, so this plugin also
//! serves the **admission** role and always admits: the host asks
//! `kplug_admit(key)` for every block about to be inserted, before making
//! room, which is exactly libCacheSim's `find`-on-miss. If another plugin
//! takes the admission role (`arc+doorkeeper`), ARC sees the ghost hit only
//! at insert (the victim is then chosen as for a miss in no list).
//!
//! Parameters: none (libCacheSim's ARC has none).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Admission, Eviction, KeyList, Plugin, export_plugin};

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
    fn replace(&mut self) -> u64 {
        let t1 = self.t1.len() as f64;
        let from_t1 = (t1 > 0.0 && (t1 > self.p || (t1 == self.p && self.ghost() == Ghost::B2)))
            || self.t2.is_empty();
        let (data, ghost) = if from_t1 {
            (&mut self.t1, &mut self.b1)
        } else {
            (&mut self.t2, &mut self.b2)
        };
        match data.pop_back() {
            Some(k) => {
                ghost.push_front(k);
                k
            }
            None => u64::MAX,
        }
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

impl Admission for Arc {
    fn admit(&mut self, key: u64, _file: u64, _block: u64) -> bool {
        self.miss(key);
        true
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

    fn victim(&mut self) -> u64 {
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
                self.t1.pop_back().unwrap_or(u64::MAX)
            }
        } else {
            if self.t1.len() + self.b1.len() + self.t2.len() + self.b2.len() >= 2 * c {
                self.b2.pop_back();
            }
            self.replace()
        }
    }
}

export_plugin!(Arc, eviction, admission);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_hit_goes_to_t2_and_moves_p() {
        let mut a = Arc::default();
        a.init(4).unwrap();
        for k in 1..=4 {
            assert!(a.admit(k, 0, k));
            a.insert(k);
        }
        a.access(1); // T1 {4 3 2}, T2 {1}
        a.admit(5, 0, 5);
        assert_eq!(a.victim(), 2); // T1's tail into B1
        a.insert(5);
        a.admit(2, 0, 2); // B1 hit: p = 1
        assert_eq!(a.p, 1.0);
        assert_eq!(a.victim(), 3);
        a.insert(2);
        assert!(a.t2.contains(2) && a.b1.contains(3));
    }
}
