//! Probe: which process is scanning. For every process (the pid of the FUSE request) it
//! counts its reads, its bytes, and how many of its reads of a file touch another of its
//! recent reads of that file end to start: a sequential reader's reads form one run. A scanner (a backup, `grep -r`, an ETL job)
//! shows near 100 %, a database or a random reader near 0 %: what a prefetcher or an
//! admission filter would want to know, per reader rather than per file.
//!
//! Report (text), processes by bytes read (largest first), at most `top` of them:
//!
//! ```text
//! # seq-by-process: sequentiality of each process's reads
//! pid reads bytes sequential_pct files
//! 4242 64 8388608 98 1
//! ```
//!
//! **Sequentiality** is the number of adjacencies (a read starting where one of the process's
//! last 8 reads of the file ended, or ending where one began) over the reads that could have
//! one (all but the first of each file), so n reads of one run score 100 % in whatever order
//! they arrive: events come in completion order, and the kernel's readahead issues several
//! reads of a scan at once, which FUSE threads answer in any order. Random reads score near 0.
//!
//! **Figure** (for governors, ABI 1.5): after each batch it publishes `max-seq`, the highest
//! sequentiality (0..=1) among the processes that made at least `min-reads` reads since the
//! last time it published, once at least `window` reads were seen: `scanboost` with
//! `figure=seq-by-process/max-seq` boosts its prefetcher while some reader scans, even when
//! other readers' random reads drown the mount-wide sequentiality.
//!
//! Parameters: `top=20` (1..=10000) rows in the report, `min-reads=8` (1..=1000000),
//! `window=64` (1..=1000000). Memory: one entry per (process, file) with its last 8 reads.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kplug_sdk::probe::{self, Event, FUSE_READ, Kind, Probe};
use kplug_sdk::{Plugin, Rejected, export_plugin, param_in};

#[derive(Default, Clone, Copy)]
struct Proc {
    reads: u64,
    bytes: u64,
    adjacencies: u64,
    files: u64,
    /// Reads and adjacencies since the figure was last published.
    window_reads: u64,
    window_adjacencies: u64,
}

/// Reads of a (process, file) remembered to find adjacencies.
const RECENT: usize = 8;

/// The last reads of a (process, file), `(start, end)`, oldest replaced first.
#[derive(Default)]
struct Recent {
    reads: [(u64, u64); RECENT],
    n: usize,
}

impl Recent {
    /// Note `[start, end)`; the number of adjacencies it makes with the recent reads.
    fn note(&mut self, start: u64, end: u64) -> u64 {
        let seen = &self.reads[..self.n.min(RECENT)];
        let before = seen.iter().any(|r| r.1 == start);
        let after = seen.iter().any(|r| r.0 == end);
        self.reads[self.n % RECENT] = (start, end);
        self.n += 1;
        before as u64 + after as u64
    }
}

/// The per-process counters.
pub struct SeqByProcess {
    top: usize,
    min_reads: u64,
    window: u64,
    /// Reads since the figure was last published.
    window_reads: u64,
    procs: BTreeMap<u32, Proc>,
    /// The last reads of each (process, file).
    recent: BTreeMap<(u32, u64), Recent>,
}

impl Default for SeqByProcess {
    fn default() -> Self {
        SeqByProcess {
            top: 20,
            min_reads: 8,
            window: 64,
            window_reads: 0,
            procs: BTreeMap::new(),
            recent: BTreeMap::new(),
        }
    }
}

impl Plugin for SeqByProcess {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "top" => self.top = param_in(value, 1..=10_000)?,
            "min-reads" => self.min_reads = param_in(value, 1..=1_000_000)?,
            "window" => self.window = param_in(value, 1..=1_000_000)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        probe::filter(&[Kind::Fuse], None);
        Ok(())
    }
}

impl Probe for SeqByProcess {
    fn event(&mut self, e: &Event) {
        if e.kind() != Some(Kind::Fuse) || e.op != FUSE_READ || e.result != 0 {
            return;
        }
        let p = self.procs.entry(e.pid).or_default();
        p.reads += 1;
        p.bytes += e.bytes;
        let r = self.recent.entry((e.pid, e.ino)).or_insert_with(|| {
            p.files += 1;
            Recent::default()
        });
        let adjacencies = r.note(e.offset, e.offset + e.bytes);
        p.adjacencies += adjacencies;
        p.window_reads += 1;
        p.window_adjacencies += adjacencies;
        self.window_reads += 1;
    }

    fn batch_end(&mut self) {
        if let Some(seq) = self.window_figure() {
            probe::publish("max-seq", seq);
        }
    }

    fn report(&mut self, out: &mut String) {
        let _ = writeln!(
            out,
            "# seq-by-process: sequentiality of each process's reads"
        );
        let _ = writeln!(out, "pid reads bytes sequential_pct files");
        let mut v: Vec<(&u32, &Proc)> = self.procs.iter().collect();
        v.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
        for (pid, p) in v.into_iter().take(self.top) {
            let could = p.reads - p.files;
            let pct = (p.adjacencies * 100)
                .checked_div(could)
                .unwrap_or(0)
                .min(100);
            let _ = writeln!(out, "{pid} {} {} {pct} {}", p.reads, p.bytes, p.files);
        }
    }
}

impl SeqByProcess {
    /// Once `window` reads were seen since the last time: the highest sequentiality of a
    /// process with `min-reads` of them (0 if none), and a new window starts.
    fn window_figure(&mut self) -> Option<f64> {
        if self.window_reads < self.window {
            return None;
        }
        self.window_reads = 0;
        let mut best = 0.0f64;
        for p in self.procs.values_mut() {
            if p.window_reads >= self.min_reads {
                let seq = p.window_adjacencies as f64 / p.window_reads as f64;
                best = best.max(seq.min(1.0));
            }
            p.window_reads = 0;
            p.window_adjacencies = 0;
        }
        Some(best)
    }
}

export_plugin!(SeqByProcess, probe);

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pid: u32, ino: u64, offset: u64, bytes: u64) -> Event {
        Event {
            kind: Kind::Fuse as u8,
            op: FUSE_READ,
            pid,
            ino,
            offset,
            bytes,
            ..Event::default()
        }
    }

    #[test]
    fn a_scanner_and_a_random_reader() {
        let mut s = SeqByProcess::default();
        for i in 0..10 {
            s.event(&read(1, 5, i * 100, 100));
        }
        for off in [700, 100, 900, 300] {
            s.event(&read(2, 5, off, 10));
        }
        // A scan whose reads arrive out of order is still one run.
        for off in [300, 0, 100, 200] {
            s.event(&read(3, 6, off, 100));
        }
        let mut out = String::new();
        s.report(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "1 10 1000 100 1");
        assert_eq!(lines[3], "3 4 400 100 1");
        assert_eq!(lines[4], "2 4 40 0 1");
        // 18 reads in the window: the scanner (10 reads, 9 adjacencies) is the most sequential
        // of those with 8 reads or more.
        s.window = 18;
        assert_eq!(s.window_figure(), Some(0.9));
        assert_eq!(s.window_figure(), None, "a new window");
    }
}
