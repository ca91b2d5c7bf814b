//! The governor's invariants, checked against the cache by the tests after every op
//! (`tests/governor.rs`): the cache within capacity, and while it votes every resident block
//! in the bucket of its current holders.

use crate::cache::CacheCore;

impl<V> CacheCore<V> {
    /// Checks the governor's bookkeeping against the cache (for tests): the cache is within
    /// capacity and, while it votes, every resident block and only those sits in the bucket
    /// of its current holders, and the buckets' live counts add up.
    #[doc(hidden)]
    pub fn check_governor_invariants(&self) -> Result<(), String> {
        if self.map.len() as u64 > self.capacity {
            return Err(format!(
                "{} blocks in a cache of {}",
                self.map.len(),
                self.capacity
            ));
        }
        let Some(g) = &self.governor else {
            return Ok(());
        };
        let Some(v) = &g.votes else {
            return Ok(());
        };
        if v.of.len() != self.map.len() {
            return Err(format!(
                "{} masks for {} blocks",
                v.of.len(),
                self.map.len()
            ));
        }
        for k in self.map.keys() {
            let (m, _) = v.of.get(&k).ok_or(format!("block {k:#x} has no mask"))?;
            if *m != g.holders(k) {
                return Err(format!(
                    "block {k:#x}: mask {m:#b}, holders {:#b}",
                    g.holders(k)
                ));
            }
        }
        let live: usize = v.buckets.values().map(|b| b.live).sum();
        if live != v.of.len() {
            return Err(format!(
                "buckets count {live} live blocks, {} masks",
                v.of.len()
            ));
        }
        Ok(())
    }
}
