//! CLOCK eviction written with `kplug-sdk`, libCacheSim's `Clock` (FIFO with
//! reinsertion, "second chance").
//!
//! Each resident block has an `n`-bit counter. A new block enters at the head
//! of the queue with the counter **clear**; a hit increments it (saturating at
//! `2^n - 1`). To evict, the hand looks at the tail: a block with a non-zero
//! counter has it decremented and moves to the head; the first block found
//! with a zero counter is the victim.
//!
//! By handle (ABI 1.8): a block's handle is its entry in the queue, whose tag is
//! its counter.
//!
//! Parameters:
//! - `n-bit-counter=N` (default **1**, 1..=8): counter width; 1 is classic
//!   CLOCK, 2 is the "2-bit CLOCK" of S3-FIFO's main queue.

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    HandleEviction, HandleList, Plugin, Rejected, export_plugin, param_in, write_keys,
};

/// CLOCK with an n-bit counter per block.
pub struct Clock {
    /// Front = most recently inserted or reinserted; the hand is at the back.
    /// An entry's tag is its counter.
    queue: HandleList,
    max_freq: u8,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            queue: HandleList::new(),
            max_freq: 1,
        }
    }
}

impl Plugin for Clock {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "n-bit-counter" => {
                let n: u32 = param_in(value, 1..=8)?;
                self.max_freq = ((1u32 << n) - 1) as u8;
                Ok(())
            }
            _ => Err(Rejected),
        }
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        let c = capacity.min(1 << 20) as usize;
        self.queue.reserve(c);
        Ok(())
    }
}

impl HandleEviction for Clock {
    #[inline(always)]
    fn insert(&mut self, key: u64) -> u32 {
        // A new entry's tag, its counter, is clear.
        self.queue.push_front(key)
    }

    fn access(&mut self, handle: u32) {
        if let Some(f) = self.queue.tag_mut(handle)
            && *f < self.max_freq
        {
            *f += 1;
        }
    }

    fn remove(&mut self, _key: u64, handle: u32) {
        self.queue.remove(handle);
    }

    /// The block at the back is the next victim unless a hit set its counter (ABI 1.11).
    const HINTS: u32 = 1;

    fn likely_victims(&self, out: &mut [u64]) -> usize {
        write_keys(out, self.queue.back().and_then(|h| self.queue.key(h)))
    }

    #[inline(always)]
    fn victim(&mut self, _incoming: u64) -> Option<u64> {
        while let Some(h) = self.queue.back() {
            let f = self.queue.tag_mut(h)?;
            if *f == 0 {
                return self.queue.pop_back();
            }
            *f -= 1;
            self.queue.move_to_front(h);
        }
        None
    }
}

export_plugin!(Clock, handle_eviction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_chance() {
        let mut c = Clock::default();
        let h: Vec<u32> = (1..=3).map(|k| c.insert(k)).collect();
        c.access(h[0]);
        // 1 has its bit set: it moves to the head with the bit cleared.
        assert_eq!(c.victim(0), Some(2));
        assert_eq!(c.victim(0), Some(3));
        assert_eq!(c.victim(0), Some(1));
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = Clock::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("n-bit-counter", "2").unwrap().max_freq, 3);
        assert_eq!(set("n-bit-counter", "8").unwrap().max_freq, 255);
        for (key, bad) in [
            ("n-bit-counter", "0"),
            ("n-bit-counter", "9"),
            ("n-bit-counter", "x"),
            ("bits", "1"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
