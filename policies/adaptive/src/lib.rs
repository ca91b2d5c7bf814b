//! `adaptive`: an eviction governor that follows the policy that would have hit most.
//!
//! It registers every eviction policy of `candidates` with the host, which runs each one
//! as a shadow cache of the same capacity (keys only) fed the same requests, so each
//! candidate's hit count is exactly what that fixed policy would have had. On every tick
//! it adds each candidate's new hits to its score, decayed with a half-life of `half-life`
//! requests (100,000 by default; 0: cumulative), and serves the best scored candidate once
//! its lead over the serving one is
//!
//! - *significant*: more than `confidence` (default 1) standard deviations of a sign test.
//!   Were the two equally good, each request on which only one of them hits would favour
//!   either by a coin flip, so a lead built on few such requests is noise. Without it, one
//!   hit ahead switches, and a switch costs the blocks the old policy kept (on the MSR
//!   sample at 5 %, one such switch and back cost 14 misses);
//! - more than `margin` of the requests scored (default 0), and
//! - (if `switch-cost` > 0) large enough, extrapolated over the horizon still to come (the
//!   half-life, or the requests seen so far if more), to outweigh `switch-cost` times the
//!   blocks the winner's shadow holds that the cache does not (`candidate_divergence`).
//!
//! The switch goes to the best scored candidate or, with `tied=different` (the default), to
//! the one whose shadow holds the most blocks the cache does not among the candidates the
//! same test cannot tell from the best and finds significantly ahead of the serving one:
//! the serving one is significantly behind each of them, so the evidence is against its
//! behaviour, and among those it cannot tell apart the switch goes furthest from it. On the
//! LIRS paper's `multi2` and `multi3` at 10 % this goes to LIRS at the first evidence, where
//! the best scored was ARC, level with it (docs/policies.md).
//!
//! The half-life is in requests, not in cache lifetimes: a policy's advantage on a real
//! trace comes in bursts on blocks it kept for long, and a memory shorter than about
//! 100,000 requests chases the bursts, a longer one reaches them too late
//! (docs/policies.md measures both sides). `capacity-lives` sets a floor in multiples of
//! the capacity (default 0: none; ignored with cumulative scores). The host makes a switch
//! cheap: the cache *follows* the chosen shadow, evicting first the blocks it does not
//! hold, so nothing is thrown away eagerly and a candidate's history is never disturbed
//! (docs/policies.md).
//!
//! With `temperature` > 0 the governor does not pick one candidate: it sets every
//! candidate's eviction weight (ABI 1.2) to e^-(lead / (temperature x capacity)), and the
//! cache evicts the block whose holders weigh least (a vote of the shadows). Each switch of
//! the best scored candidate is logged (`kplug.log`, info).
//!
//! Parameters: `candidates` (candidate specs joined by `/`, each `name` or
//! `name:key=value;key=value`, default `s3fifo/arc/lirs/twoq/lru`: the fixed policies that
//! are best somewhere on the real traces; the first serves at start, S3-FIFO being the one
//! closest to the best on the most of them), `half-life` (requests, default 100000, 0 =
//! cumulative), `capacity-lives` (default 0), `confidence` (default 1, 0: any lead), `margin`
//! (default 0), `switch-cost` (default 0), `tied` (`different`, the default, or `best`),
//! `temperature` (default 0: follow one candidate).
//! The older names `half_life`, `capacity_lives` and `switch_cost` are aliases.
//!
//! The decision is deterministic given the tick sequence, so `kplugfs sim --policy adaptive`
//! is reproducible.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kplug_sdk::governor::{
    activate, add_candidate, candidate_divergence, candidate_hits, candidate_requests, set_weight,
};
use kplug_sdk::{
    Governor, Level, Plugin, Rejected, Role, export_plugin, log, param_in, param_key, param_list,
};

const DEFAULT: &str = "s3fifo/arc/lirs/twoq/lru";
/// Default half-life of the scores, in demand requests (docs/policies.md: how it was chosen).
const DEFAULT_HALF_LIFE: f64 = 100_000.0;
/// Older names of the parameters, `(alias, canonical)`.
const ALIASES: &[(&str, &str)] = &[
    ("half_life", "half-life"),
    ("capacity_lives", "capacity-lives"),
    ("switch_cost", "switch-cost"),
];

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
    /// `tied=different` (true, the default): a switch goes to the candidate whose blocks
    /// differ most from the cache's among those not significantly behind the best scored;
    /// `tied=best`: to the best scored.
    tie_to_different: bool,
    switch_cost: f64,
    temperature: f64,
    confidence: f64,
    capacity: f64,
    cands: Vec<Cand>,
    /// `spread[i * n + j]`: the sum over ticks of |new hits of i - new hits of j|: (a lower
    /// bound of) the requests on which exactly one of the two hit, the variance of the lead
    /// of one over the other were they equally good. Decayed by the square of the scores'
    /// factor, as the variance of a decayed sum is.
    spread: Vec<f64>,
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
            half_life: DEFAULT_HALF_LIFE,
            capacity_lives: 0.0,
            margin: 0.0,
            tie_to_different: true,
            switch_cost: 0.0,
            temperature: 0.0,
            confidence: 1.0,
            capacity: 0.0,
            cands: Vec::new(),
            spread: Vec::new(),
            last_requests: 0,
            requests: 0.0,
            elapsed: 0.0,
            serving: 0,
            switches: 0,
        }
    }
}

impl Plugin for Adaptive {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match param_key(key, ALIASES) {
            "candidates" if !value.is_empty() => self.names = String::from(value),
            "half-life" => {
                let h: f64 = value.parse()?;
                if h != 0.0 && !(1.0..=1e12).contains(&h) {
                    return Err(Rejected);
                }
                self.half_life = h;
            }
            "capacity-lives" => self.capacity_lives = param_in(value, 0.0..=1e6)?,
            "switch-cost" => self.switch_cost = param_in(value, 0.0..=1e6)?,
            "temperature" => self.temperature = param_in(value, 0.0..=1e6)?,
            "margin" => self.margin = param_in(value, 0.0..=1.0)?,
            "tied" => {
                self.tie_to_different = match value {
                    "different" => true,
                    "best" => false,
                    _ => return Err(Rejected),
                }
            }
            "confidence" => self.confidence = param_in(value, 0.0..=100.0)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        self.capacity = capacity as f64;
        for name in param_list(&self.names) {
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
    /// The half-life in requests (infinite: cumulative scores) and the decay factor over
    /// `requests` new ones, 0.5^(r/h).
    fn decay(&self, requests: u64) -> (f64, f64) {
        if self.half_life == 0.0 {
            return (f64::INFINITY, 1.0);
        }
        let h = self.half_life.max(self.capacity_lives * self.capacity);
        // Exact, not 1 - r ln2 / h: a mount's tick (100 ms) can hold a whole half-life.
        (h, exp_neg(requests as f64 * core::f64::consts::LN_2 / h))
    }

    /// The candidate index that should serve after adding `hits[i]` new hits per
    /// candidate over `requests` new requests (pure, for the native tests).
    fn decide(&mut self, hits: &[u64], requests: u64, divergence: &dyn Fn(usize) -> f64) -> usize {
        let (h, best) = self.score(hits, requests);
        let s = self.serving;
        // Expected gain against the blocks the switch must fetch again (the winner's
        // shadow holds them, the cache does not). The gain is the hit-rate advantage over
        // the horizon still to come, guessed as long as what was seen so far (and at least
        // a half-life).
        let advantage = self.cands[best].score - self.cands[s].score;
        let horizon = if h.is_finite() {
            h.max(self.elapsed)
        } else {
            self.elapsed
        };
        // A sign test: were the two equally good, each request on which only one of them
        // hits would favour either by a coin flip, so the lead's standard deviation is the
        // square root of their count. The lead must exceed `confidence` of them (compared
        // squared: no sqrt in no_std).
        let spread = self.spread[best * self.cands.len() + s];
        let significant = advantage * advantage > self.confidence * self.confidence * spread;
        if best != s
            && advantage > self.margin * self.requests
            && significant
            && advantage / self.requests.max(1.0) * horizon > self.switch_cost * divergence(best)
        {
            self.serving = if self.tie_to_different {
                self.most_different_tied(best, divergence)
            } else {
                best
            };
            self.switches += 1;
        }
        self.serving
    }

    /// Among `best` and the candidates the same sign test cannot tell from it (their lead
    /// behind it within `confidence` standard deviations) and finds significantly ahead of
    /// the serving one, the one whose shadow holds the most blocks the cache does not. The
    /// serving candidate is significantly behind all of them, so the evidence is against its
    /// behaviour; between candidates the evidence cannot tell apart, the switch goes
    /// furthest from it (a rule for ties, not evidence: docs/policies.md measures it). On a
    /// tie of divergence the best scored stays.
    fn most_different_tied(&self, best: usize, divergence: &dyn Fn(usize) -> f64) -> usize {
        let n = self.cands.len();
        let s = self.serving;
        let c2 = self.confidence * self.confidence;
        let (mut to, mut most) = (best, divergence(best));
        for i in (0..n).filter(|&i| i != best && i != s) {
            let behind = self.cands[best].score - self.cands[i].score;
            let ahead = self.cands[i].score - self.cands[s].score;
            let tied = behind * behind <= c2 * self.spread[best * n + i]
                && ahead > 0.0
                && ahead * ahead > c2 * self.spread[i * n + s];
            if tied {
                let d = divergence(i);
                if d > most {
                    (to, most) = (i, d);
                }
            }
        }
        to
    }

    /// Vote mode: update the scores; the heaviest candidate is the best scored.
    fn vote(&mut self, hits: &[u64], requests: u64) -> usize {
        let (_, best) = self.score(hits, requests);
        if best != self.serving {
            self.serving = best;
            self.switches += 1;
        }
        best
    }

    /// Add `hits[i]` new hits per candidate over `requests` new requests to the (decayed)
    /// scores; the half-life and the best scored candidate (the serving one on a tie).
    fn score(&mut self, hits: &[u64], requests: u64) -> (f64, usize) {
        let (h, d) = self.decay(requests);
        self.requests = self.requests * d + requests as f64;
        self.elapsed += requests as f64;
        for (c, h) in self.cands.iter_mut().zip(hits) {
            c.score = c.score * d + *h as f64;
        }
        // Within one tick only the net difference is known: |d| discordant requests at
        // least, all of them when a single candidate gained. A sum whose terms are scaled
        // by d has its variance scaled by d^2.
        let n = self.cands.len();
        self.spread.resize(n * n, 0.0);
        for i in 0..n {
            for j in 0..n {
                let x = hits[i].abs_diff(hits[j]) as f64;
                self.spread[i * n + j] = self.spread[i * n + j] * d * d + x;
            }
        }
        let mut best = self.serving;
        for (i, c) in self.cands.iter().enumerate() {
            if c.score > self.cands[best].score {
                best = i;
            }
        }
        (h, best)
    }
}

/// e^-x for x >= 0 without libm: 2^-(x / ln 2), the integer part as an exponent, the
/// fraction by a polynomial (relative error < 1e-9).
fn exp_neg(x: f64) -> f64 {
    let y = x.max(0.0) / core::f64::consts::LN_2;
    if y >= 1000.0 {
        return 0.0;
    }
    let n = y as u64;
    let f = y - n as f64;
    // 2^-f = e^(-f ln 2), Taylor to degree 10 (f ln 2 < 0.7).
    let z = -f * core::f64::consts::LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..11 {
        term *= z / k as f64;
        sum += term;
    }
    sum * f64::from_bits((1023 - n) << 52)
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
        let now = if self.temperature > 0.0 {
            self.vote(&hits, new_requests)
        } else {
            self.decide(&hits, new_requests, &div)
        };
        if self.temperature > 0.0 {
            let best = self.cands[now].score;
            let t = self.temperature * self.capacity.max(1.0);
            for c in &self.cands {
                set_weight(c.index, exp_neg((best - c.score) / t));
            }
        }
        if now != before {
            if self.temperature == 0.0 {
                activate(self.cands[now].index);
            }
            let names: Vec<&str> = param_list(&self.names).collect();
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
        // The margin alone holds here (the sign test has its own test).
        a.confidence = 0.0;
        a.margin = 0.002;
        a.switch_cost = 1.0;
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
    fn a_switch_between_tied_leaders_goes_to_the_most_different() {
        // Cumulative scores: every figure below is an exact integer.
        let run = |tied: &str| {
            let mut a = with(3);
            a.half_life = 0.0;
            a.set_param("tied", tied).unwrap();
            // 1 and 2 gain the same 30 hits over 0, 0 serving; 2's shadow differs more from
            // the cache (40 blocks the cache does not hold against 10).
            let div = |i: usize| [0.0, 10.0, 40.0][i];
            let mut serving = 0;
            for _ in 0..4 {
                serving = a.decide(&[50, 60, 60], 100, &div);
            }
            serving
        };
        assert_eq!(run("different"), 2);
        // The best scored (1 on a tie of scores: the first found) with the previous rule.
        assert_eq!(run("best"), 1);
        // A leader significantly ahead of the others is taken whatever their divergence.
        let mut a = with(3);
        a.half_life = 0.0;
        for _ in 0..4 {
            a.decide(&[50, 80, 60], 100, &|i| [0.0, 10.0, 40.0][i]);
        }
        assert_eq!(a.serving, 1);
    }

    #[test]
    fn cumulative_scores_follow_the_best_over_the_whole_stream() {
        let mut a = with(2);
        a.half_life = 0.0;
        a.capacity = 100.0;
        // 0 leads for a long time, then 1 does better but not yet better overall: stays.
        for _ in 0..50 {
            a.decide(&[600, 500], 1000, &|_| 50.0);
        }
        for _ in 0..40 {
            a.decide(&[500, 600], 1000, &|_| 50.0);
        }
        assert_eq!(a.serving, 0);
        // Once 1's total passes 0's by a significant lead, it serves.
        for _ in 0..20 {
            a.decide(&[500, 600], 1000, &|_| 50.0);
        }
        assert_eq!(a.serving, 1);
        assert_eq!(a.switches, 1);
    }

    #[test]
    fn a_lead_must_stand_out_of_the_noise() {
        // Cumulative scores: every figure below is an exact integer.
        let mut a = with(3);
        a.half_life = 0.0;
        // One hit ahead after identical ticks: one discordant request, a coin flip. Stays.
        for _ in 0..10 {
            a.decide(&[50, 50, 50], 100, &|_| 0.0);
        }
        assert_eq!(a.decide(&[50, 50, 51], 100, &|_| 0.0), 0);
        // Without the test, the same lead switches.
        let mut b = with(3);
        b.half_life = 0.0;
        b.confidence = 0.0;
        b.decide(&[50, 50, 50], 100, &|_| 0.0);
        assert_eq!(b.decide(&[50, 50, 51], 100, &|_| 0.0), 2);
        // Noisy and even: 0 and 1 trade 3 hits a tick for 20 ticks; then 1 leads by 5
        // over 5 ticks: under one standard deviation (sqrt(60 + 5)). Stays.
        let mut c = with(3);
        c.half_life = 0.0;
        for i in 0..20 {
            let (x, y) = if i % 2 == 0 { (53, 50) } else { (50, 53) };
            c.decide(&[x, y, 50], 100, &|_| 0.0);
        }
        for _ in 0..5 {
            c.decide(&[50, 51, 50], 100, &|_| 0.0);
        }
        assert_eq!(c.serving, 0);
        // A steady lead of 3 a tick stands out within a few ticks.
        let mut ticks = 0;
        while c.serving == 0 {
            c.decide(&[50, 53, 50], 100, &|_| 0.0);
            ticks += 1;
            assert!(ticks <= 5, "a steady lead did not switch");
        }
        assert_eq!((c.serving, c.switches), (1, 1));
    }

    #[test]
    fn old_noise_is_forgotten_with_the_scores() {
        // The same history under cumulative scores and under a half-life of 10 ticks: 20
        // noisy even ticks, 100 quiet ones, then one tick where 1 gains 3 hits more.
        let run = |half_life: f64| {
            let mut a = with(2);
            a.half_life = half_life;
            for i in 0..20 {
                let (x, y) = if i % 2 == 0 { (53, 50) } else { (50, 53) };
                a.decide(&[x, y], 100, &|_| 0.0);
            }
            for _ in 0..100 {
                a.decide(&[50, 50], 100, &|_| 0.0);
            }
            a.decide(&[50, 53], 100, &|_| 0.0)
        };
        // Remembered, the old noise (60 discordant requests) drowns a lead of 3.
        assert_eq!(run(0.0), 0);
        // Ten half-lives later it has faded: 3 ahead out of 3 discordant is a lead.
        assert_eq!(run(1000.0), 1);
    }

    #[test]
    fn exp_neg_is_accurate() {
        for (x, e) in [
            (0.0, 1.0),
            (1.0, 0.367_879_441_171),
            (5.5, 0.004_086_771_438),
            (40.0, 4.248_354_255e-18),
        ] {
            assert!(
                (exp_neg(x) - e).abs() <= 1e-6 * e,
                "{x}: {} vs {e}",
                exp_neg(x)
            );
        }
        assert_eq!(exp_neg(1e6), 0.0);
    }

    #[test]
    fn parameters_are_checked() {
        let mut a = Adaptive::default();
        assert!(a.set_param("half-life", "0").is_ok());
        assert!(a.set_param("half-life", "0.5").is_err());
        assert!(a.set_param("half-life", "2e12").is_err());
        assert!(a.set_param("temperature", "0.1").is_ok());
        assert!(a.set_param("temperature", "-1").is_err());
        assert!(a.set_param("capacity-lives", "-1").is_err());
        assert!(a.set_param("switch-cost", "x").is_err());
        assert!(a.set_param("margin", "0.01").is_ok());
        assert!(a.set_param("margin", "1.5").is_err());
        assert!(a.set_param("margin", "x").is_err());
        assert!(a.set_param("confidence", "2").is_ok());
        assert!(a.set_param("confidence", "-1").is_err());
        assert!(a.set_param("candidates", "lru/arc").is_ok());
        assert!(a.set_param("candidates", "").is_err());
        assert!(a.set_param("tied", "best").is_ok());
        assert!(a.set_param("tied", "Different").is_err());
        for bad in ["bogus", "Half-Life", "halflife", "switch cost"] {
            assert!(a.set_param(bad, "1").is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_names_and_aliases_set_the_same_value() {
        let set = |key: &str, value: &str| {
            let mut a = Adaptive::default();
            a.set_param(key, value).unwrap();
            a
        };
        for key in ["half-life", "half_life"] {
            assert_eq!(set(key, "8").half_life, 8.0, "{key}");
            assert!(Adaptive::default().set_param(key, "0.5").is_err(), "{key}");
        }
        for key in ["capacity-lives", "capacity_lives"] {
            assert_eq!(set(key, "2").capacity_lives, 2.0, "{key}");
            assert!(Adaptive::default().set_param(key, "-1").is_err(), "{key}");
        }
        for key in ["switch-cost", "switch_cost"] {
            assert_eq!(set(key, "0.5").switch_cost, 0.5, "{key}");
            assert!(Adaptive::default().set_param(key, "2e6").is_err(), "{key}");
        }
        assert_eq!(
            set("candidates", "lirs:hirs-ratio=0.05/lru").names,
            "lirs:hirs-ratio=0.05/lru"
        );
    }
}
