//! Probe: which files are hot. Counts, per file, the bytes its FUSE reads returned, the
//! reads, and the blocks that missed the cache, and reports the top `k` files by bytes read
//! and by misses: the first question when a mount is slow ("what is it reading?"), answered
//! from inside the mount without shipping every event out (as `bpftrace`'s maps do).
//!
//! Report (text, one table per ranking; a file is named by its path from the mount's root,
//! or `ino:N` when the host has not seen a cache event naming it):
//!
//! ```text
//! # hot-files: top 10 of 42 files by bytes read
//! rank bytes reads misses file
//! 1 8388608 64 2048 data/big.bin
//! # hot-files: top 10 of 42 files by cache misses
//! rank misses bytes reads file
//! 1 2048 8388608 64 data/big.bin
//! ```
//!
//! Parameters: `k=10`, how many files each ranking lists (1..=1000). Memory: one entry per
//! file read (about 40 bytes).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kplug_sdk::probe::{self, CACHE_HIT, Event, FUSE_READ, Kind, Probe};
use kplug_sdk::{Plugin, Rejected, export_plugin, param_in};

#[derive(Default, Clone, Copy)]
struct File {
    bytes: u64,
    reads: u64,
    misses: u64,
}

/// The per-file counters.
pub struct HotFiles {
    k: usize,
    files: BTreeMap<u64, File>,
}

impl Default for HotFiles {
    fn default() -> Self {
        HotFiles {
            k: 10,
            files: BTreeMap::new(),
        }
    }
}

impl Plugin for HotFiles {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "k" => self.k = param_in(value, 1..=1000)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        probe::filter(&[Kind::Fuse, Kind::Cache], None);
        Ok(())
    }
}

impl HotFiles {
    fn name(ino: u64) -> String {
        probe::path(ino).unwrap_or_else(|| alloc::format!("ino:{ino}"))
    }

    /// The top `k` files by `key`, largest first (ties by inode).
    fn top(&self, key: fn(&File) -> u64) -> Vec<(u64, File)> {
        let mut v: Vec<(u64, File)> = self
            .files
            .iter()
            .filter(|(_, f)| key(f) > 0)
            .map(|(i, f)| (*i, *f))
            .collect();
        v.sort_by(|a, b| key(&b.1).cmp(&key(&a.1)).then(a.0.cmp(&b.0)));
        v.truncate(self.k);
        v
    }
}

impl Probe for HotFiles {
    fn event(&mut self, e: &Event) {
        match e.kind() {
            Some(Kind::Fuse) if e.op == FUSE_READ && e.result == 0 => {
                let f = self.files.entry(e.ino).or_default();
                f.bytes += e.bytes;
                f.reads += 1;
            }
            Some(Kind::Cache) if e.op != CACHE_HIT => {
                self.files.entry(e.ino).or_default().misses += 1;
            }
            _ => {}
        }
    }

    fn report(&mut self, out: &mut String) {
        let n = self.files.len();
        let _ = writeln!(
            out,
            "# hot-files: top {} of {n} files by bytes read",
            self.k
        );
        let _ = writeln!(out, "rank bytes reads misses file");
        for (i, (ino, f)) in self.top(|f| f.bytes).into_iter().enumerate() {
            let name = Self::name(ino);
            let _ = writeln!(out, "{} {} {} {} {name}", i + 1, f.bytes, f.reads, f.misses);
        }
        let _ = writeln!(
            out,
            "# hot-files: top {} of {n} files by cache misses",
            self.k
        );
        let _ = writeln!(out, "rank misses bytes reads file");
        for (i, (ino, f)) in self.top(|f| f.misses).into_iter().enumerate() {
            let name = Self::name(ino);
            let _ = writeln!(out, "{} {} {} {} {name}", i + 1, f.misses, f.bytes, f.reads);
        }
    }
}

export_plugin!(HotFiles, probe);

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ino: u64, bytes: u64) -> Event {
        Event {
            kind: Kind::Fuse as u8,
            op: FUSE_READ,
            ino,
            bytes,
            ..Event::default()
        }
    }

    #[test]
    fn ranks_files_by_bytes_and_misses() {
        let mut h = HotFiles::default();
        h.set_param("k", "2").unwrap();
        for _ in 0..3 {
            h.event(&read(7, 100));
        }
        h.event(&read(8, 1000));
        h.event(&read(9, 1));
        let miss = Event {
            kind: Kind::Cache as u8,
            op: 0,
            ino: 9,
            ..Event::default()
        };
        h.event(&miss);
        h.event(&miss);
        let mut out = String::new();
        h.report(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "# hot-files: top 2 of 3 files by bytes read");
        assert_eq!(lines[2], "1 1000 1 0 ino:8");
        assert_eq!(lines[3], "2 300 3 0 ino:7");
        assert_eq!(lines[6], "1 2 1 1 ino:9");
        assert_eq!(lines.len(), 7);
        assert!(h.set_param("k", "0").is_err());
    }
}
