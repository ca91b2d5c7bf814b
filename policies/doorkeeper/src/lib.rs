//! Admission: a TinyLFU-style frequency doorkeeper (Einziger et al., TOS '17).
//!
//! A missed block is admitted only once it has been missed `threshold` times
//! within the aging window. The first miss of a block only sets its bits in a
//! Bloom filter (the *doorkeeper*, so one-time blocks never reach the
//! counters); later misses increment a count-min sketch (4 rows of 8-bit
//! saturating counters). The estimate is `1 + min(row counters)` for blocks
//! in the doorkeeper. Every `window-factor x capacity` admission queries the
//! doorkeeper is cleared and the sketch halved (aging), so old popularity
//! fades. A one-pass scan is therefore refused block by block and cannot
//! flush the resident working set, whose blocks are hits and never asked
//! about.
//!
//! Parameters:
//! - `threshold=2`: misses within the window needed to enter (1 admits all);
//! - `window-factor=8`: aging period, in multiples of the cache capacity;
//! - `bits-per-key=10`: doorkeeper Bloom filter bits per key of the aging
//!   window (`window-factor x capacity` keys; 10 bits and 3 hashes keep false
//!   positives near 1 % when the window is full).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use kplug_sdk::{Admission, Plugin, Rejected, export_plugin};

const ROWS: usize = 4;

/// The doorkeeper admission policy.
pub struct Doorkeeper {
    bloom: Vec<u64>,
    bloom_mask: u64,
    sketch: Vec<u8>,
    row_mask: u64,
    threshold: u32,
    window_factor: u64,
    bits_per_key: u64,
    window: u64,
    queries: u64,
}

impl Default for Doorkeeper {
    fn default() -> Self {
        Doorkeeper {
            bloom: Vec::new(),
            bloom_mask: 0,
            sketch: Vec::new(),
            row_mask: 0,
            threshold: 2,
            window_factor: 8,
            bits_per_key: 10,
            window: 0,
            queries: 0,
        }
    }
}

#[inline]
fn mix(mut x: u64, seed: u64) -> u64 {
    x ^= seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Doorkeeper {
    /// Sets the doorkeeper bits of `key`; whether they were all set already.
    fn doorkeeper_check_set(&mut self, key: u64) -> bool {
        let mut seen = true;
        for seed in 1..=3 {
            let bit = mix(key, seed) & self.bloom_mask;
            let (w, b) = ((bit / 64) as usize, bit % 64);
            seen &= self.bloom[w] & (1 << b) != 0;
            self.bloom[w] |= 1 << b;
        }
        seen
    }

    fn slot(&self, key: u64, row: usize) -> usize {
        row * (self.row_mask as usize + 1) + (mix(key, 100 + row as u64) & self.row_mask) as usize
    }

    fn estimate(&self, key: u64) -> u32 {
        (0..ROWS)
            .map(|r| self.sketch[self.slot(key, r)] as u32)
            .min()
            .unwrap_or(0)
    }

    fn increment(&mut self, key: u64) {
        for r in 0..ROWS {
            let s = self.slot(key, r);
            self.sketch[s] = self.sketch[s].saturating_add(1);
        }
    }

    fn age(&mut self) {
        self.bloom.iter_mut().for_each(|w| *w = 0);
        self.sketch.iter_mut().for_each(|c| *c >>= 1);
        self.queries = 0;
    }
}

impl Plugin for Doorkeeper {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "threshold" if (1..=255).contains(&v) => self.threshold = v as u32,
            "window-factor" if v >= 1 => self.window_factor = v,
            "bits-per-key" if (1..=64).contains(&v) => self.bits_per_key = v,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        let c = capacity.clamp(64, 1 << 22);
        self.window = self.window_factor * capacity.max(1);
        let bits = (self.window.clamp(64, 1 << 26) * self.bits_per_key).next_power_of_two();
        self.bloom = vec![0; (bits / 64) as usize];
        self.bloom_mask = bits - 1;
        let width = (2 * c).next_power_of_two();
        self.sketch = vec![0; ROWS * width as usize];
        self.row_mask = width - 1;
        Ok(())
    }
}

impl Admission for Doorkeeper {
    fn admit(&mut self, key: u64, _file: u64, _block: u64) -> bool {
        self.queries += 1;
        if self.queries >= self.window {
            self.age();
        }
        let count = if self.doorkeeper_check_set(key) {
            self.increment(key);
            1 + self.estimate(key)
        } else {
            1
        };
        count >= self.threshold
    }
}

export_plugin!(Doorkeeper, admission);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_miss_enters_and_aging_forgets() {
        let mut d = Doorkeeper::default();
        d.init(100).unwrap(); // window 800 queries
        assert!(!d.admit(7, 0, 7));
        assert!(d.admit(7, 0, 7));
        for k in 1000..1800 {
            d.admit(k, 0, k);
        }
        // Aged: 7's doorkeeper bit is gone.
        assert!(!d.admit(7, 0, 7));
        let mut one = Doorkeeper::default();
        one.set_param("threshold", "1").unwrap();
        one.init(10).unwrap();
        assert!(one.admit(1, 0, 1));
        assert!(one.set_param("threshold", "0").is_err());
        assert!(one.set_param("nope", "1").is_err());
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = Doorkeeper::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("threshold", "3").unwrap().threshold, 3);
        assert_eq!(set("window-factor", "4").unwrap().window_factor, 4);
        assert_eq!(set("bits-per-key", "16").unwrap().bits_per_key, 16);
        for (key, bad) in [
            ("threshold", "0"),
            ("threshold", "256"),
            ("window-factor", "0"),
            ("bits-per-key", "65"),
            ("bits-per-key", "x"),
            ("window_factor", "4"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
