//! `adaptive`: an eviction governor that follows the policy hitting most in the current
//! phase of the workload.
//!
//! It registers every eviction policy of `candidates` with the host, which runs each one
//! as a shadow cache of the same capacity (keys only) fed the same requests. On every tick
//! it reads each candidate's hits since the previous tick and keeps an exponentially
//! decayed score per candidate, with a half-life in requests of `half_life` or, if larger,
//! `capacity_lives` times the cache capacity (a big cache's content reflects a long
//! history, so its phases are judged over a long one). It switches when another
//! candidate's score beats the serving one's by more than `margin` of the decayed requests
//! and the expected gain (the hit-rate advantage times the horizon still to come, guessed
//! as long as the stream seen so far and at least a half-life) exceeds `switch_cost` times
//! the price of switching: the blocks the winner's shadow holds that the cache does not
//! (`candidate_divergence`), which must be fetched again. Early on, when the shadows have
//! barely diverged, it follows the leader freely; on a warm cache only a lasting advantage
//! moves it. The host hands the winner's shadow state to the cache, so the new policy
//! starts with its own history of the whole stream, not from scratch (docs/policies.md).
//! Each switch is logged (`kplug.log`, info).
//!
//! Parameters: `candidates` (policy names joined by `/`, default
//! `lru/fifo/clock/sieve/arc/twoq/lirs/s3fifo/wtinylfu`, the first serves at start),
//! `half_life` (requests, default 20000), `capacity_lives` (default 8), `margin` (default
//! 0.002), `switch_cost` (default 1).
//!
//! The decision is deterministic given the tick sequence, so `kplugfs sim --policy adaptive`
//! is reproducible.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kplug_sdk::governor::{
    activate, add_candidate, candidate_divergence, candidate_hits, candidate_requests,
};
use kplug_sdk::{Governor, Level, Plugin, Rejected, Role, export_plugin, log};

const DEFAULT: &str = "lru/fifo/clock/sieve/arc/twoq/lirs/s3fifo/wtinylfu";

struct Cand {
    index: u32,
    last_hits: u64,
    score: f64,
}

/// The adaptive governor.
pub struct Adaptive {
    names: String,
    half_life: f64,
    capacity_lives: f64,
    margin: f64,
    switch_cost: f64,
    capacity: f64,
    cands: Vec<Cand>,
    last_requests: u64,
    requests: f64,
    elapsed: f64,
    serving: usize,
    switches: u64,
}

impl Default for Adaptive {
    fn default() -> Self {
        Self {
            names: String::from(DEFAULT),
            half_life: 20_000.0,
            capacity_lives: 8.0,
            margin: 0.002,
            switch_cost: 1.0,
            capacity: 0.0,
            cands: Vec::new(),
            last_requests: 0,
            requests: 0.0,
            elapsed: 0.0,
            serving: 0,
            switches: 0,
        }
    }
}

fn parse_f64(v: &str) -> Result<f64, Rejected> {
    // Decimal `int[.frac]`, enough for parameters (no_std has no float parsing helper
    // beyond core's, which is what this uses).
    v.parse::<f64>().map_err(|_| Rejected)
}

impl Plugin for Adaptive {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "candidates" if !value.is_empty() => self.names = String::from(value),
            "half_life" => {
                let h = parse_f64(value)?;
                if !(1.0..=1e12).contains(&h) {
                    return Err(Rejected);
                }
                self.half_life = h;
            }
            "capacity_lives" => {
                let c = parse_f64(value)?;
                if !(0.0..=1e6).contains(&c) {
                    return Err(Rejected);
                }
                self.capacity_lives = c;
            }
            "switch_cost" => {
                let c = parse_f64(value)?;
                if !(0.0..=1e6).contains(&c) {
                    return Err(Rejected);
                }
                self.switch_cost = c;
            }
            "margin" => {
                let m = parse_f64(value)?;
                if !(0.0..=1.0).contains(&m) {
                    return Err(Rejected);
                }
                self.margin = m;
            }
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity as f64;
        for name in self.names.split('/').filter(|n| !n.is_empty()) {
            let index = add_candidate(Role::Eviction, name).ok_or(2)?;
            self.cands.push(Cand {
                index,
                last_hits: 0,
                score: 0.0,
            });
        }
        if self.cands.is_empty() {
            return Err(3);
        }
        activate(self.cands[0].index);
        Ok(())
    }
}

impl Adaptive {
    /// The candidate index that should serve after adding `hits[i]` new hits per
    /// candidate over `requests` new requests (pure, for the native tests).
    fn decide(&mut self, hits: &[u64], requests: u64, divergence: &dyn Fn(usize) -> f64) -> usize {
        // Decay over `requests` with half-life h requests: 0.5^(r/h) ~ 1 - r ln 2 / h (no
        // libm in no_std; ticks are much shorter than the half-life).
        let h = self.half_life.max(self.capacity_lives * self.capacity);
        let d = (1.0 - requests as f64 * core::f64::consts::LN_2 / h).max(0.0);
        self.requests = self.requests * d + requests as f64;
        self.elapsed += requests as f64;
        for (c, h) in self.cands.iter_mut().zip(hits) {
            c.score = c.score * d + *h as f64;
        }
        let mut best = self.serving;
        for (i, c) in self.cands.iter().enumerate() {
            if c.score > self.cands[best].score {
                best = i;
            }
        }
        // Expected gain against the blocks the switch must fetch again (the winner's
        // shadow holds them, the cache does not). The gain is the hit-rate advantage over
        // the horizon still to come, guessed as long as what was seen so far (and at least
        // a half-life).
        let advantage = self.cands[best].score - self.cands[self.serving].score;
        let horizon = h.max(self.elapsed);
        if best != self.serving
            && advantage > self.margin * self.requests
            && advantage / self.requests.max(1.0) * horizon > self.switch_cost * divergence(best)
        {
            self.serving = best;
            self.switches += 1;
        }
        self.serving
    }
}

impl Governor for Adaptive {
    fn tick(&mut self, _now_ns: u64) {
        let mut hits = Vec::with_capacity(self.cands.len());
        let mut requests = 0;
        for c in &mut self.cands {
            let h = candidate_hits(c.index).unwrap_or(c.last_hits);
            hits.push(h.saturating_sub(c.last_hits));
            c.last_hits = h;
            requests = candidate_requests(c.index).unwrap_or(requests);
        }
        let new_requests = requests.saturating_sub(self.last_requests);
        self.last_requests = requests;
        let before = self.serving;
        let idx: Vec<u32> = self.cands.iter().map(|c| c.index).collect();
        let div = |i: usize| candidate_divergence(idx[i]).unwrap_or(0) as f64;
        let now = self.decide(&hits, new_requests, &div);
        if now != before {
            activate(self.cands[now].index);
            let names: Vec<&str> = self.names.split('/').filter(|n| !n.is_empty()).collect();
            log(
                Level::Info,
                &format!(
                    "after {} requests: {} -> {} (decayed hits {:.0} vs {:.0} of {:.0}; ~{} blocks to fetch again)",
                    self.elapsed,
                    names.get(before).unwrap_or(&"?"),
                    names.get(now).unwrap_or(&"?"),
                    self.cands[now].score,
                    self.cands[before].score,
                    self.requests,
                    div(now),
                ),
            );
        }
    }
}

export_plugin!(Adaptive, governor);

#[cfg(test)]
mod tests {
    use super::*;

    fn with(n: usize) -> Adaptive {
        let mut a = Adaptive::default();
        for i in 0..n {
            a.cands.push(Cand {
                index: i as u32,
                last_hits: 0,
                score: 0.0,
            });
        }
        a
    }

    #[test]
    fn follows_the_better_candidate_with_hysteresis() {
        let mut a = with(2);
        a.half_life = 16_000.0;
        a.capacity = 100.0;
        // Equal: stays.
        assert_eq!(a.decide(&[500, 500], 1000, &|_| 50.0), 0);
        // Candidate 1 better by 0.1 % of requests: under the 0.2 % margin, stays.
        assert_eq!(a.decide(&[500, 501], 1000, &|_| 50.0), 0);
        // Clearly better for a while: switches, once.
        for _ in 0..5 {
            a.decide(&[400, 600], 1000, &|_| 50.0);
        }
        assert_eq!(a.serving, 1);
        assert_eq!(a.switches, 1);
        // A new phase where 0 wins: follows back within a few half-lives.
        let mut ticks = 0;
        while a.serving == 1 {
            a.decide(&[700, 300], 1000, &|_| 50.0);
            ticks += 1;
            assert!(ticks < 40, "did not follow the phase change");
        }
        assert_eq!(a.switches, 2);
    }

    #[test]
    fn parameters_are_checked() {
        let mut a = Adaptive::default();
        assert!(a.set_param("half_life", "8").is_ok());
        assert!(a.set_param("half_life", "0").is_err());
        assert!(a.set_param("switch_cost", "0.5").is_ok());
        assert!(a.set_param("capacity_lives", "-1").is_err());
        assert!(a.set_param("margin", "0.01").is_ok());
        assert!(a.set_param("margin", "x").is_err());
        assert!(a.set_param("candidates", "lru/arc").is_ok());
        assert!(a.set_param("bogus", "1").is_err());
    }
}
