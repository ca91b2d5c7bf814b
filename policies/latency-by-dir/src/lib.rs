//! Probe: how long reads take, per top-level directory of the mount. Which part of the
//! namespace is slow (a dataset on a cold prefix, a directory of huge files) shows at once,
//! without shipping every request out: a log2 histogram per directory, kept in the probe
//! (bpftrace's `hist()`).
//!
//! Every FUSE read that succeeded counts in the directory of its file: `a/b/c` in `a`, a file
//! at the mount's root in `/`, a file whose path the host has not named yet (no cache event
//! of it delivered) in `?`. The probe also takes the cache events, only for the paths they
//! bring (`probe_path`).
//!
//! Report (text): one row per directory, by total time spent reading (largest first), then
//! its histogram, one line per non-empty bucket `[lo, hi)` in µs:
//!
//! ```text
//! # latency-by-dir: FUSE read latency per top-level directory (µs)
//! dir reads bytes mean_us p50_us p99_us max_us
//! slow 8 1048576 20412 32768 32768 21057
//! slow [16384,32768) 8
//! ```
//!
//! p50 and p99 are the upper bounds of the buckets holding them (at most 2x the true value).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kplug_sdk::probe::{self, Event, FUSE_READ, Kind, Probe};
use kplug_sdk::{Plugin, export_plugin};

/// Buckets: `[2^(i-1), 2^i)` µs, bucket 0 under 1 µs; the last one holds everything above.
const BUCKETS: usize = 40;

#[derive(Clone)]
struct Dir {
    reads: u64,
    bytes: u64,
    total_ns: u64,
    max_ns: u64,
    hist: [u64; BUCKETS],
}

impl Default for Dir {
    fn default() -> Self {
        Dir {
            reads: 0,
            bytes: 0,
            total_ns: 0,
            max_ns: 0,
            hist: [0; BUCKETS],
        }
    }
}

fn bucket(ns: u64) -> usize {
    let us = ns / 1000;
    ((64 - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The bucket's bounds in µs.
fn bounds(i: usize) -> (u64, u64) {
    if i == 0 {
        (0, 1)
    } else {
        (1 << (i - 1), 1 << i)
    }
}

impl Dir {
    /// The upper bound of the bucket holding quantile `per_mille`/1000.
    fn quantile_us(&self, per_mille: u64) -> u64 {
        let want = (self.reads * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= want {
                return bounds(i).1;
            }
        }
        0
    }
}

/// The per-directory histograms.
#[derive(Default)]
pub struct LatencyByDir {
    dirs: BTreeMap<String, Dir>,
    /// Top-level directory of each inode seen, once named.
    top: BTreeMap<u64, String>,
}

impl Plugin for LatencyByDir {
    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        probe::filter(&[Kind::Fuse, Kind::Cache], None);
        Ok(())
    }
}

impl LatencyByDir {
    fn dir_of(&mut self, ino: u64) -> String {
        if let Some(d) = self.top.get(&ino) {
            return d.clone();
        }
        match probe::path(ino) {
            Some(p) => {
                let d = String::from(probe::top_dir(&p));
                self.top.insert(ino, d.clone());
                d
            }
            None => String::from("?"),
        }
    }

    /// Count a read of `bytes` that took `ns`, in `dir`.
    fn count(&mut self, dir: String, bytes: u64, ns: u64) {
        let d = self.dirs.entry(dir).or_default();
        d.reads += 1;
        d.bytes += bytes;
        d.total_ns += ns;
        d.max_ns = d.max_ns.max(ns);
        d.hist[bucket(ns)] += 1;
    }
}

impl Probe for LatencyByDir {
    fn event(&mut self, e: &Event) {
        if e.kind() == Some(Kind::Fuse) && e.op == FUSE_READ && e.result == 0 {
            let dir = self.dir_of(e.ino);
            self.count(dir, e.bytes, e.latency_ns);
        }
    }

    fn report(&mut self, out: &mut String) {
        let _ = writeln!(
            out,
            "# latency-by-dir: FUSE read latency per top-level directory (µs)"
        );
        let _ = writeln!(out, "dir reads bytes mean_us p50_us p99_us max_us");
        let mut dirs: Vec<(&String, &Dir)> = self.dirs.iter().collect();
        dirs.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(b.0)));
        for (name, d) in &dirs {
            let _ = writeln!(
                out,
                "{name} {} {} {} {} {} {}",
                d.reads,
                d.bytes,
                d.total_ns / d.reads.max(1) / 1000,
                d.quantile_us(500),
                d.quantile_us(990),
                d.max_ns / 1000
            );
        }
        for (name, d) in &dirs {
            for (i, n) in d.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
                let (lo, hi) = bounds(i);
                let _ = writeln!(out, "{name} [{lo},{hi}) {n}");
            }
        }
    }
}

export_plugin!(LatencyByDir, probe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_per_directory() {
        let mut l = LatencyByDir::default();
        l.count("a".into(), 10, 3_000); // 3 µs: [2, 4)
        l.count("a".into(), 10, 5_000_000); // 5 ms: [4096, 8192)
        l.count("b".into(), 1, 500); // [0, 1)
        let mut out = String::new();
        l.report(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "a 2 20 2501 4 8192 5000", "{out}");
        assert_eq!(lines[3], "b 1 1 0 1 1 0", "{out}");
        assert_eq!(lines[4], "a [2,4) 1");
        assert_eq!(lines[5], "a [4096,8192) 1");
        assert_eq!(lines[6], "b [0,1) 1");
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }
}
