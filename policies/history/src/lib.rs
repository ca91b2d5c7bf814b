//! Prefetch: history-based, a per-file successor table (a simple relative of
//! Mithril's association mining: "block B followed block A before").
//!
//! For every file the policy remembers the last block accessed; on an access
//! to block B after block A of the same file it records `succ(A) = B`
//! (replacing an older successor). It then follows the table from B for up
//! to `depth` steps (B -> succ(B) -> succ(succ(B)) ...) and prefetches those
//! blocks. Repeated non-sequential patterns (a database walking the same
//! index pages, a program loading the same files in the same order) are
//! therefore prefetched from their second occurrence; a first-time or random
//! stream has no history and prefetches nothing.
//!
//! Parameters:
//! - `depth=2`: successors followed per access (at most 64);
//! - `max-entries=262144`: table entries (the table is reset past it).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{
    IntMap, Plugin, Prefetch, PrefetchOut, PrefetchRequest, Rejected, export_plugin, narrow,
};

/// History prefetcher.
pub struct History {
    last: IntMap<u64>,
    succ: IntMap<u64>,
    depth: u32,
    max_entries: usize,
}

impl Default for History {
    fn default() -> Self {
        History {
            last: IntMap::new(),
            succ: IntMap::new(),
            depth: 2,
            max_entries: 1 << 18,
        }
    }
}

fn node(file: u64, block: u64) -> u64 {
    (file << 32) ^ block
}

impl Plugin for History {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "depth" if (1..=64).contains(&v) => self.depth = v as u32,
            "max-entries" if v >= 1 => self.max_entries = narrow(v)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }
}

impl Prefetch for History {
    fn prefetch(&mut self, req: PrefetchRequest, out: &mut PrefetchOut<'_>) {
        if let Some(&prev) = self.last.get(req.file)
            && prev != req.block
        {
            if self.succ.len() >= self.max_entries {
                self.succ.clear();
            }
            self.succ.insert(node(req.file, prev), req.block);
        }
        if self.last.len() >= self.max_entries && !self.last.contains_key(req.file) {
            self.last.clear();
        }
        self.last.insert(req.file, req.block);
        let mut b = req.block;
        for _ in 0..self.depth {
            match self.succ.get(node(req.file, b)) {
                Some(&n) if n != req.block && n < req.file_blocks => {
                    out.push(n, 1);
                    b = n;
                }
                _ => break,
            }
        }
    }
}

export_plugin!(History, prefetch);

#[cfg(test)]
mod tests {
    use super::*;
    use kplug_sdk::MAX_PREFETCH_RANGES;

    fn ask(h: &mut History, block: u64) -> std::vec::Vec<(u64, u64)> {
        let mut buf = [0u64; 2 * MAX_PREFETCH_RANGES];
        let mut out = PrefetchOut::new(&mut buf);
        let req = PrefetchRequest {
            file: 9,
            block,
            file_blocks: 1000,
            hit: false,
        };
        h.prefetch(req, &mut out);
        (0..out.len()).filter_map(|i| out.get(i)).collect()
    }

    #[test]
    fn replays_a_seen_pattern() {
        let mut h = History::default();
        for b in [5, 90, 17, 300] {
            assert!(ask(&mut h, b).is_empty());
        }
        assert_eq!(ask(&mut h, 5), vec![(90, 1), (17, 1)]);
        assert_eq!(ask(&mut h, 90), vec![(17, 1), (300, 1)]);
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = History::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("depth", "4").unwrap().depth, 4);
        assert_eq!(set("max-entries", "1024").unwrap().max_entries, 1024);
        for (key, bad) in [
            ("depth", "0"),
            ("depth", "65"),
            ("max-entries", "0"),
            ("max_entries", "1024"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
