//! Probe: where does the time of a read go, and what limits it? The paper's NFS example,
//! with the object store (or the backing disk) as the server: a client whose reads are slow
//! deploys this probe and learns whether to look at the backend at all, and if so whether its
//! round trips (latency), its bandwidth (throughput) or its errors are to blame.
//!
//! It adds up the latency of the FUSE reads (what the applications waited for), the time
//! those reads waited for blocks that missed the cache (a miss fetching its block, or joining
//! a prefetch or another reader's fetch in flight: time spent on the backend), the cache's
//! hits and misses, and the backend's requests (demand and prefetch, their bytes, latency and
//! errors). Then:
//!
//! - **backend errors** when more than 1 % of the backend reads failed;
//! - **backend retries** when the store's client retried requests for more than 1 % of
//!   the backend reads (a throttling or flaky store: the reads succeed, late; ABI 1.7
//!   backend events carry the retries);
//! - **backend** when waiting for missed blocks takes at least half the reads' time, split
//!   by the shape of the backend's requests: the fastest request is taken as the fixed
//!   cost of a round trip; when it is at least half the mean request, round trips dominate
//!   (**backend-latency**: larger or earlier reads help: prefetch, bigger blocks), otherwise
//!   transferring the bytes does (**backend-throughput**: more parallel reads, a closer store);
//! - **not the backend** otherwise: the time goes to FUSE, the cache and its plugins (the
//!   `.kplug/stats` latencies and the plugins' time in `.kplug/status` say which).
//!
//! Rules, not constants tuned to a trace: every threshold is a ratio of the workload's own
//! figures. Report (text, `key value` pairs, the verdict last):
//!
//! ```text
//! # bottleneck: where the time of reads goes
//! reads 40 read_time_us 812345
//! backend_share_pct 96 miss_wait_us 780001
//! cache hits 24 misses 16 joined 0 hit_pct 60
//! backend_demand requests 16 bytes 1048576 mean_us 20412 min_us 20101 errors 0 retries 0
//! backend_prefetch requests 0 bytes 0 mean_us 0 errors 0 retries 0
//! verdict backend-latency: round trips take 98% of a backend read (...)
//! ```

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;

use kplug_sdk::probe::{
    self, BACKEND_DEMAND, CACHE_HIT, CACHE_JOINED, Event, FUSE_READ, Kind, Probe,
};
use kplug_sdk::{Plugin, export_plugin};

#[derive(Default, Clone, Copy)]
struct Backend {
    requests: u64,
    bytes: u64,
    total_ns: u64,
    min_ns: Option<u64>,
    errors: u64,
    retries: u64,
}

impl Backend {
    fn mean_us(&self) -> u64 {
        self.total_ns / self.requests.max(1) / 1000
    }
}

/// The counters.
#[derive(Default)]
pub struct Bottleneck {
    reads: u64,
    read_ns: u64,
    hits: u64,
    misses: u64,
    joined: u64,
    /// Time reads waited for blocks that missed.
    wait_ns: u64,
    demand: Backend,
    prefetch: Backend,
}

impl Plugin for Bottleneck {
    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        probe::filter(&[Kind::Fuse, Kind::Cache, Kind::Backend], None);
        Ok(())
    }
}

impl Bottleneck {
    /// The % of the reads' time spent waiting for missed blocks.
    fn share(&self) -> u64 {
        (self.wait_ns.saturating_mul(100) / self.read_ns.max(1)).min(100)
    }

    /// The verdict: a one-word cause and why.
    fn verdict(&self) -> (&'static str, String) {
        let all = self.demand.requests + self.prefetch.requests;
        let errors = self.demand.errors + self.prefetch.errors;
        if self.reads == 0 {
            return ("none", String::from("no reads seen yet"));
        }
        if errors * 100 > all {
            return (
                "backend-errors",
                alloc::format!("{errors} of {all} backend reads failed"),
            );
        }
        let retries = self.demand.retries + self.prefetch.retries;
        if retries * 100 > all {
            return (
                "backend-retries",
                alloc::format!(
                    "the store's client retried {retries} requests for {all} backend reads: the store throttles or drops requests (fewer parallel reads, another endpoint)"
                ),
            );
        }
        let share = self.share();
        if share < 50 {
            return (
                "not-backend",
                alloc::format!(
                    "the backend takes {share}% of the reads' time: FUSE, the cache and its plugins take the rest"
                ),
            );
        }
        let total = self.demand.total_ns + self.prefetch.total_ns;
        let mean = total / all.max(1);
        let fixed = match (self.demand.min_ns, self.prefetch.min_ns) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        let fixed_pct = fixed.saturating_mul(100) / mean.max(1);
        if fixed_pct >= 50 {
            (
                "backend-latency",
                alloc::format!(
                    "round trips take {fixed_pct}% of a backend read ({} us of {} us): prefetch further or read larger blocks",
                    fixed / 1000,
                    mean / 1000
                ),
            )
        } else {
            (
                "backend-throughput",
                alloc::format!(
                    "transfers take {}% of a backend read: read in parallel or from a closer store",
                    100 - fixed_pct
                ),
            )
        }
    }
}

fn note(b: &mut Backend, e: &Event) {
    b.requests += 1;
    b.bytes += e.bytes;
    b.total_ns += e.latency_ns;
    b.min_ns = Some(b.min_ns.map_or(e.latency_ns, |m| m.min(e.latency_ns)));
    if e.result != 0 {
        b.errors += 1;
    }
    b.retries += e.retries() as u64;
}

impl Probe for Bottleneck {
    fn event(&mut self, e: &Event) {
        match e.kind() {
            Some(Kind::Fuse) if e.op == FUSE_READ => {
                self.reads += 1;
                self.read_ns += e.latency_ns;
            }
            Some(Kind::Cache) if e.op == CACHE_HIT => self.hits += 1,
            Some(Kind::Cache) => {
                if e.op == CACHE_JOINED {
                    self.joined += 1;
                } else {
                    self.misses += 1;
                }
                self.wait_ns += e.latency_ns;
            }
            Some(Kind::Backend) if e.op == BACKEND_DEMAND => note(&mut self.demand, e),
            Some(Kind::Backend) => note(&mut self.prefetch, e),
            _ => {}
        }
    }

    fn report(&mut self, out: &mut String) {
        let asked = self.hits + self.misses + self.joined;
        let share = self.share();
        let (d, p) = (self.demand, self.prefetch);
        let _ = writeln!(out, "# bottleneck: where the time of reads goes");
        let _ = writeln!(
            out,
            "reads {} read_time_us {}",
            self.reads,
            self.read_ns / 1000
        );
        let _ = writeln!(
            out,
            "backend_share_pct {share} miss_wait_us {}",
            self.wait_ns / 1000
        );
        let _ = writeln!(
            out,
            "cache hits {} misses {} joined {} hit_pct {}",
            self.hits,
            self.misses,
            self.joined,
            self.hits * 100 / asked.max(1)
        );
        let _ = writeln!(
            out,
            "backend_demand requests {} bytes {} mean_us {} min_us {} errors {} retries {}",
            d.requests,
            d.bytes,
            d.mean_us(),
            d.min_ns.unwrap_or(0) / 1000,
            d.errors,
            d.retries
        );
        let _ = writeln!(
            out,
            "backend_prefetch requests {} bytes {} mean_us {} errors {} retries {}",
            p.requests,
            p.bytes,
            p.mean_us(),
            p.errors,
            p.retries
        );
        let (what, why) = self.verdict();
        let _ = writeln!(out, "verdict {what}: {why}");
    }
}

export_plugin!(Bottleneck, probe);

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind, op: u8, latency_ns: u64, result: u32) -> Event {
        Event {
            kind: kind as u8,
            op,
            latency_ns,
            result,
            bytes: 4096,
            ..Event::default()
        }
    }

    fn verdict(events: &[Event]) -> &'static str {
        let mut b = Bottleneck::default();
        for e in events {
            b.event(e);
        }
        b.verdict().0
    }

    #[test]
    fn verdicts_follow_the_figures() {
        let read = |ns| ev(Kind::Fuse, FUSE_READ, ns, 0);
        let demand = |ns, r| ev(Kind::Backend, BACKEND_DEMAND, ns, r);
        let miss = |ns| ev(Kind::Cache, 0, ns, 0);
        assert_eq!(verdict(&[]), "none");
        // Slow reads, each waiting on a backend round trip of about the same time: latency.
        let slow = [
            demand(20_000_000, 0),
            miss(20_500_000),
            read(21_000_000),
            demand(22_000_000, 0),
            miss(22_500_000),
            read(23_000_000),
        ];
        assert_eq!(verdict(&slow), "backend-latency");
        // The backend's time grows with what it transfers: throughput.
        let big = [
            demand(1_000_000, 0),
            miss(1_000_000),
            read(2_000_000),
            demand(90_000_000, 0),
            miss(90_000_000),
            read(91_000_000),
        ];
        assert_eq!(verdict(&big), "backend-throughput");
        // Reads that barely wait for the backend.
        let hits = [demand(10_000, 0), miss(10_000), read(1_000_000)];
        assert_eq!(verdict(&hits), "not-backend");
        assert_eq!(verdict(&[read(1), demand(1, 5)]), "backend-errors");
        // Slow reads whose GETs succeeded after retries: the store throttles.
        let retried = |n| Event {
            pid: n,
            ..demand(20_000_000, 0)
        };
        let throttled = [retried(2), miss(20_500_000), read(21_000_000)];
        assert_eq!(verdict(&throttled), "backend-retries");
        let mut b = Bottleneck::default();
        throttled.iter().for_each(|e| b.event(e));
        let mut out = String::new();
        b.report(&mut out);
        assert!(out.contains("errors 0 retries 2\n"), "{out}");
    }
}
