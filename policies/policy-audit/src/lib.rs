//! Probe: what the cache's policies decide, per top-level directory, from the policy events
//! (ABI 1.7): blocks the admission policy admitted and refused, blocks the eviction policy
//! evicted (and how many of those a prefetch brought in and nobody read: wasted prefetch),
//! blocks the prefetch policy sent to the backend and how many of them were then read
//! (its accuracy). The question it answers: is this directory's prefetch paying, and is its
//! data churning through the cache?
//!
//! Report (text), directories by blocks admitted (largest first), at most `top` of them, and
//! a total:
//!
//! ```text
//! # policy-audit: the cache policies' decisions per top-level directory
//! dir admitted refused evicted wasted prefetched used accuracy_pct
//! logs 1024 0 512 3 960 955 99
//! * 1024 0 512 3 960 955 99
//! ```
//!
//! **Figures** (for governors): after each batch in which a prefetch was issued or used, it
//! publishes `accuracy`, the blocks prefetched and read over those prefetched (0..=1, all
//! directories, since the probe loaded), and `waste`, the prefetched blocks evicted unread
//! over those prefetched.
//!
//! Parameters: `subtree=DIR` (a directory of the mount: only its events, filtered by the host
//! before they are queued), `top=20` (1..=10000). Memory: one entry per directory and one per
//! file seen (its top-level directory).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use kplug_sdk::probe::{
    self, Event, Kind, POLICY_ADMIT, POLICY_EVICT, POLICY_PREFETCH, POLICY_PREFETCH_USED,
    POLICY_REFUSE, Probe,
};
use kplug_sdk::{Plugin, Rejected, export_plugin, param_in};

/// One directory's counts, in blocks.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Counts {
    admitted: u64,
    refused: u64,
    evicted: u64,
    wasted: u64,
    prefetched: u64,
    used: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.admitted += o.admitted;
        self.refused += o.refused;
        self.evicted += o.evicted;
        self.wasted += o.wasted;
        self.prefetched += o.prefetched;
        self.used += o.used;
    }

    fn accuracy_pct(&self) -> u64 {
        (self.used * 100)
            .checked_div(self.prefetched)
            .unwrap_or(0)
            .min(100)
    }
}

/// The probe's state.
pub struct PolicyAudit {
    top: usize,
    subtree: String,
    dirs: BTreeMap<String, Counts>,
    /// Each file's top-level directory, asked of the host once.
    top_of: BTreeMap<u64, String>,
    /// Whether this batch saw prefetch activity (the figures change).
    moved: bool,
}

impl Default for PolicyAudit {
    fn default() -> Self {
        PolicyAudit {
            top: 20,
            subtree: String::new(),
            dirs: BTreeMap::new(),
            top_of: BTreeMap::new(),
            moved: false,
        }
    }
}

impl Plugin for PolicyAudit {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "top" => self.top = param_in(value, 1..=10_000)?,
            "subtree" => self.subtree = value.into(),
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        let host = cfg!(target_arch = "wasm32");
        if !probe::filter(&[Kind::Policy], None) && host {
            return Err(1);
        }
        if !self.subtree.is_empty() && !probe::subtree(&self.subtree) && host {
            // A subtree the host refuses (`..`, not UTF-8): the load fails, saying so.
            return Err(2);
        }
        Ok(())
    }
}

impl Probe for PolicyAudit {
    fn event(&mut self, e: &Event) {
        if e.kind() != Some(Kind::Policy) {
            return;
        }
        let dir = self
            .top_of
            .entry(e.ino)
            .or_insert_with(|| match probe::path(e.ino) {
                Some(p) => probe::top_dir(&p).into(),
                None => "?".into(),
            })
            .clone();
        self.count(&dir, e);
    }

    fn batch_end(&mut self) {
        if !core::mem::take(&mut self.moved) {
            return;
        }
        let t = self.total();
        if t.prefetched > 0 {
            probe::publish("accuracy", (t.used as f64 / t.prefetched as f64).min(1.0));
            probe::publish("waste", (t.wasted as f64 / t.prefetched as f64).min(1.0));
        }
    }

    fn report(&mut self, out: &mut String) {
        let _ = writeln!(
            out,
            "# policy-audit: the cache policies' decisions per top-level directory"
        );
        let _ = writeln!(
            out,
            "dir admitted refused evicted wasted prefetched used accuracy_pct"
        );
        let mut v: Vec<(&String, &Counts)> = self.dirs.iter().collect();
        v.sort_by(|a, b| b.1.admitted.cmp(&a.1.admitted).then(a.0.cmp(b.0)));
        for (dir, c) in v.into_iter().take(self.top) {
            row(out, dir, c);
        }
        row(out, "*", &self.total());
    }
}

fn row(out: &mut String, dir: &str, c: &Counts) {
    let _ = writeln!(
        out,
        "{dir} {} {} {} {} {} {} {}",
        c.admitted,
        c.refused,
        c.evicted,
        c.wasted,
        c.prefetched,
        c.used,
        c.accuracy_pct()
    );
}

impl PolicyAudit {
    fn count(&mut self, dir: &str, e: &Event) {
        let c = self.dirs.entry(dir.into()).or_default();
        match e.op {
            POLICY_ADMIT => c.admitted += 1,
            POLICY_REFUSE => c.refused += 1,
            POLICY_EVICT => {
                c.evicted += 1;
                c.wasted += (e.bytes != 0) as u64;
            }
            POLICY_PREFETCH => {
                c.prefetched += e.length;
                self.moved = true;
            }
            POLICY_PREFETCH_USED => {
                c.used += 1;
                self.moved = true;
            }
            _ => {}
        }
    }

    fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.dirs.values() {
            t.add(c);
        }
        t
    }
}

export_plugin!(PolicyAudit, probe);

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: u8, length: u64, bytes: u64) -> Event {
        Event {
            kind: Kind::Policy as u8,
            op,
            length,
            bytes,
            ..Event::default()
        }
    }

    /// A plain count of the same events, to check the probe against.
    fn reference(events: &[(&str, Event)]) -> BTreeMap<String, Counts> {
        let mut m: BTreeMap<String, Counts> = BTreeMap::new();
        for (dir, e) in events {
            let c = m.entry((*dir).into()).or_default();
            match e.op {
                0 => c.admitted += 1,
                1 => c.refused += 1,
                2 if e.bytes != 0 => {
                    c.evicted += 1;
                    c.wasted += 1
                }
                2 => c.evicted += 1,
                3 => c.prefetched += e.length,
                4 => c.used += 1,
                _ => {}
            }
        }
        m
    }

    #[test]
    fn counts_each_decision_per_directory_and_rates_prefetch() {
        let events = [
            ("a", ev(POLICY_PREFETCH, 8, 0)),
            ("a", ev(POLICY_ADMIT, 1, 1)),
            ("a", ev(POLICY_PREFETCH_USED, 1, 0)),
            ("a", ev(POLICY_PREFETCH_USED, 1, 0)),
            ("a", ev(POLICY_EVICT, 1, 1)),
            ("b", ev(POLICY_REFUSE, 1, 0)),
            ("b", ev(POLICY_EVICT, 1, 0)),
            ("b", ev(9, 1, 0)),
        ];
        let mut p = PolicyAudit::default();
        for (dir, e) in &events {
            p.count(dir, e);
        }
        assert_eq!(p.dirs, reference(&events));
        let mut out = String::new();
        p.report(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "a 1 0 1 1 8 2 25", "{out}");
        assert_eq!(lines[3], "b 0 1 1 0 0 0 0", "{out}");
        assert_eq!(lines[4], "* 1 1 2 1 8 2 25", "{out}");
        assert!(p.moved);
    }

    #[test]
    fn other_kinds_are_skipped_and_params_checked() {
        let mut p = PolicyAudit::default();
        p.event(&Event {
            kind: Kind::Fuse as u8,
            ..Event::default()
        });
        assert!(p.dirs.is_empty());
        assert!(p.set_param("top", "0").is_err());
        assert!(p.set_param("top", "3").is_ok());
        assert!(p.set_param("subtree", "logs/2026").is_ok());
        assert!(p.set_param("nope", "1").is_err());
    }
}
