//! 2Q eviction written with `kplug-sdk`, following libCacheSim's `TwoQ.c`
//! (Johnson & Shasha, VLDB '94, the "full" version).
//!
//! New blocks enter **Ain**, a FIFO; hits in Ain change nothing. When room is
//! needed and Ain holds more than its share, Ain's oldest block is evicted and
//! remembered in **Aout**, a FIFO of ghost ids; otherwise **Am**, an LRU of
//! blocks that came back while remembered in Aout, loses its least recently
//! used block. A miss found in Aout enters Am.
//!
//! Ghost timing: libCacheSim looks the missed block up in Aout before making
//! room, our hooks after (at `insert`). Aout is therefore trimmed lazily: an
//! eviction may leave it one entry over its size until the next insert has
//! looked, which gives exactly libCacheSim's contents (removing the missed
//! id and pushing the victim commute when the oldest entry is dropped last).
//!
//! By handle (ABI 1.8): Ain, Am and Aout share one slab (`HandleLists`): a block's
//! handle is its entry, which becomes its ghost in Aout when Ain evicts it; only
//! the ghost lookup of an insertion is by key.
//!
//! Parameters (libCacheSim's defaults; sizes are `floor(capacity x ratio)`):
//! - `ain-size-ratio=0.25` (0..=1): Ain's share of the cache;
//! - `aout-size-ratio=0.5` (0..=1): ghost entries, as a fraction of the cache size.
//!
//! libCacheSim's names, `Ain-size-ratio` and `Aout-size-ratio`, are aliases.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    HandleEviction, HandleLists, IntMap, Plugin, Rejected, export_plugin, param_in, param_key,
};

/// The lists, numbered as in `HandleLists`.
const AIN: usize = 0;
const AM: usize = 1;
const AOUT: usize = 2;

/// Older names of the parameters, `(alias, canonical)`.
const ALIASES: &[(&str, &str)] = &[
    ("Ain-size-ratio", "ain-size-ratio"),
    ("Aout-size-ratio", "aout-size-ratio"),
];

/// 2Q.
pub struct TwoQ {
    /// Ain, Am and Aout, front = newest.
    lists: HandleLists<3>,
    /// The handle of each ghost's entry in Aout, by key.
    ghosts: IntMap<u32>,
    ain_ratio: f64,
    aout_ratio: f64,
    ain_size: usize,
    aout_size: usize,
}

impl Default for TwoQ {
    fn default() -> Self {
        TwoQ {
            lists: HandleLists::new(),
            ghosts: IntMap::new(),
            ain_ratio: 0.25,
            aout_ratio: 0.5,
            ain_size: 0,
            aout_size: 0,
        }
    }
}

impl TwoQ {
    #[inline(always)]
    fn trim_aout(&mut self, to: usize) {
        while self.lists.len(AOUT) > to {
            if let Some(k) = self.lists.pop_back(AOUT) {
                self.ghosts.remove(k);
            }
        }
    }
}

impl Plugin for TwoQ {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match param_key(key, ALIASES) {
            "ain-size-ratio" => self.ain_ratio = param_in(value, 0.0..=1.0)?,
            "aout-size-ratio" => self.aout_ratio = param_in(value, 0.0..=1.0)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.ain_size = (capacity as f64 * self.ain_ratio) as usize;
        self.aout_size = (capacity as f64 * self.aout_ratio) as usize;
        let c = capacity.min(1 << 20) as usize;
        self.lists.reserve(c + self.aout_size.min(1 << 20) + 1);
        self.ghosts.reserve(self.aout_size.min(1 << 20) + 1);
        Ok(())
    }
}

impl HandleEviction for TwoQ {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        let remembered = match self.ghosts.remove(key) {
            Some(h) => self.lists.remove(h).is_some(),
            None => false,
        };
        self.trim_aout(self.aout_size);
        self.lists
            .push_front(if remembered { AM } else { AIN }, key)
    }

    fn access(&mut self, handle: u32) {
        // Ain is a FIFO: a hit there changes nothing.
        if self.lists.list_of(handle) == Some(AM) {
            self.lists.move_to_front(AM, handle);
        }
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        if matches!(self.lists.list_of(handle), Some(AIN | AM)) {
            self.lists.remove(handle);
        }
    }

    /// The next victim is the back of A1in or of Am, as the queues' sizes after the next
    /// insertion decide (a remembered block enters Am): both are named as likely (ABI 1.11).
    const HINTS: u32 = 2;

    fn likely_victims(&self, out: &mut [u64]) -> usize {
        self.lists.backs(&[AIN, AM], out)
    }

    /// A miss looks its key up among the ghosts, whose slot is outside the CPU's caches at a
    /// large cache: the coming requests' slots are read ahead by the host (ABI 1.12), once
    /// the ghosts' table outgrows a core's cache (below, telling a key per request costs more
    /// than it saves).
    const LOOKAHEAD: u32 = 8;

    fn lookahead(&self) -> u32 {
        self.ghosts.lookahead_count(Self::LOOKAHEAD)
    }

    fn coming(&mut self, keys: &mut [u64]) {
        self.ghosts.homes(keys);
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        if (self.lists.len(AIN) > self.ain_size || self.lists.is_empty(AM))
            && let Some(h) = self.lists.back(AIN)
        {
            let k = self.lists.key(h)?;
            self.trim_aout(self.aout_size);
            // The entry becomes the block's ghost.
            self.lists.move_to_front(AOUT, h);
            self.ghosts.insert(k, h);
            return Some(k);
        }
        self.lists.pop_back(AM)
    }
}

export_plugin!(TwoQ, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    /// The coming keys are asked for only once the ghosts' table outgrows a core's cache.
    #[test]
    fn coming_keys_only_for_ghosts_larger_than_a_core_cache() {
        for (capacity, lookahead) in [(4, 0), (7_634, 0), (26_921, 0), (106_607, 8)] {
            let mut q = TwoQ::default();
            q.init(capacity).unwrap();
            assert_eq!(q.lookahead(), lookahead, "{capacity} blocks");
        }
    }

    #[test]
    fn remembered_blocks_enter_am() {
        let mut q = TwoQ::default();
        q.init(4).unwrap(); // Ain 1, Aout 2
        for k in 1..=4 {
            q.insert(k);
        }
        assert_eq!(q.victim(0), Some(1));
        let h = q.insert(1); // remembered in Aout -> Am
        assert_eq!(q.lists.list_of(h), Some(AM));
        assert!(q.ghosts.get(1).is_none());
        assert_eq!(q.victim(0), Some(2));
    }

    /// Every parameter by its name and by its alias (libCacheSim's spelling): both set the
    /// same value; an out-of-range or malformed value and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = TwoQ::default();
            p.set_param(key, value).map(|()| p)
        };
        for key in ["ain-size-ratio", "Ain-size-ratio"] {
            assert_eq!(set(key, "0.3").unwrap().ain_ratio, 0.3, "{key}");
            assert!(set(key, "2").is_err() && set(key, "x").is_err(), "{key}");
        }
        for key in ["aout-size-ratio", "Aout-size-ratio"] {
            assert_eq!(set(key, "0.2").unwrap().aout_ratio, 0.2, "{key}");
            assert!(set(key, "-0.1").is_err(), "{key}");
        }
        for bad in ["nope", "AIN-size-ratio", "ain_size_ratio"] {
            assert!(set(bad, "0.3").is_err(), "{bad}");
        }
    }
}
