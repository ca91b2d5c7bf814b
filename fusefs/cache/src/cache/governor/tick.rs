//! Ticking the governor and applying what it asks for: `kplug_tick` with each candidate's
//! counters and divergence, then its activations (an eviction candidate by its weight, the
//! other roles by installing an instance) and its weights; and when a governor faults or is
//! removed, the hand-over of eviction to the candidate it followed ([`CacheCore::materialize`]).

use crate::cache::CacheCore;
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::EvictionRole;
use kplug_abi::Role;
use kplug_engine::hash::FastSet;

use super::Governor;

/// Keys of a shadow sampled to estimate `candidate_divergence` at each tick, for governors
/// that import it (an estimate within a few percent; the simulator ticks every 100
/// requests).
const DIVERGENCE_SAMPLE: usize = 256;

impl<V> CacheCore<V> {
    /// Tick the governor now (the mount's timer); applies the activation it asks for.
    pub fn governor_tick(&mut self) {
        let now = self.figures.now_ns();
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        let counters = g
            .candidates
            .iter()
            .map(|c| (c.role == Role::Eviction).then_some((c.hits, c.requests)))
            .collect();
        let wants = g.plugin.wants_divergence();
        let divergence = g
            .candidates
            .iter()
            .map(|c| {
                let s = c.shadow.as_ref().filter(|_| wants)?;
                let sample = s.map.keys().take(DIVERGENCE_SAMPLE);
                let (mut n, mut out) = (0u64, 0u64);
                for k in sample {
                    n += 1;
                    out += !self.map.contains_key(k) as u64;
                }
                Some((out * s.map.len() as u64).checked_div(n).unwrap_or(0))
            })
            .collect();
        let active = g.live.map(|l| l.map_or(-1, |i| i as i32));
        g.plugin.set_resident(self.map.len() as u64);
        match g.plugin.tick(now, counters, divergence, active) {
            Ok(()) => {
                let pending = g.plugin.take_activations();
                let weights = g.plugin.take_weights();
                self.apply_choices(pending, weights);
            }
            Err(f) => {
                self.stats.faults += 1;
                tracing::warn!(plugin = g.plugin.name(), "governor disabled: {f}");
                g.plugin.mark_failed(&f);
                let g = self.governor.take().expect("checked");
                self.materialize(g);
            }
        }
    }

    /// Apply what the governor asked for in its last call: the last activation it asked for
    /// each role, then its weights.
    /// Weights are ignored while an operator's eviction policy serves (until the governor
    /// activates an eviction candidate): a governor that sets them every tick would
    /// otherwise take the cache back at once.
    pub(super) fn apply_choices(&mut self, pending: Vec<usize>, weights: Vec<(usize, f64)>) {
        let mut last: [Option<usize>; 3] = [None; 3];
        if let Some(g) = &self.governor {
            for i in pending {
                last[g.candidates[i].role as usize] = Some(i);
            }
        }
        for i in last.into_iter().flatten() {
            self.activate_candidate(i);
        }
        let overridden = self.governor.as_ref().is_some_and(|g| g.overridden);
        if !weights.is_empty() && !overridden {
            self.reweigh(&weights);
        }
    }

    /// Make candidate `i` serve its role. Failures are logged; the role keeps its policy.
    fn activate_candidate(&mut self, i: usize) {
        let Some(mut g) = self.governor.take() else {
            return;
        };
        let role = g.candidates[i].role;
        if role == Role::Eviction {
            g.overridden = false;
            self.governor = Some(g);
            let one_hot: Vec<(usize, f64)> =
                (0..self.governor.as_ref().map_or(0, |g| g.weights.len()))
                    .map(|j| (j, if j == i { 1.0 } else { 0.0 }))
                    .collect();
            self.reweigh(&one_hot);
            return;
        }
        if g.live[role as usize] != Some(i) {
            match g.candidates[i]
                .instantiate(self.capacity)
                .and_then(|p| self.install_plugin(p, role.into()))
            {
                Ok(()) => {
                    g.live[role as usize] = Some(i);
                    self.stats.policy_switches += 1;
                }
                Err(e) => tracing::warn!(
                    governor = g.plugin.name(),
                    candidate = g.candidates[i].spec,
                    "activation failed: {e}"
                ),
            }
        }
        self.governor = Some(g);
    }

    /// New eviction weights. When the cache starts voting, a plugin that served eviction in
    /// the cache gives way to the configured built-in, which tracks the resident set.
    fn reweigh(&mut self, weights: &[(usize, f64)]) {
        let Some(mut g) = self.governor.take() else {
            return;
        };
        let weights: Vec<(usize, f64)> = weights
            .iter()
            .copied()
            .filter(|(i, _)| g.bit.get(*i).is_some_and(|b| b.is_some()))
            .collect();
        // The resident set is needed only if the vote starts now.
        let starting = g.votes.is_none()
            && (0..g.weights.len()).any(|i| {
                let last = weights.iter().rev().find(|(j, _)| *j == i);
                last.map_or(g.weights[i], |w| w.1) > 0.0
            });
        let resident = if starting {
            self.resident_keys()
        } else {
            Vec::new()
        };
        if g.reweigh(&weights, &resident) {
            self.stats.policy_switches += 1;
        }
        if starting
            && g.votes.is_some()
            && let EvictionRole::Plugin(slot) = self.eviction
        {
            let old = self.slots();
            if matches!(self.admission, AdmissionRole::Plugin(s) if s == slot) {
                self.admission = AdmissionRole::Native(
                    self.config.admission.build(),
                    self.config.admission.name(),
                );
            }
            self.eviction = self.seeded_builtin(self.config.eviction);
            self.release_unused(&old);
        }
        self.governor = Some(g);
    }

    /// A governor is going away: the eviction candidate it followed serves the cache
    /// directly. Its shadow's instance forgets the blocks the cache lacks, the cache drops
    /// the orphans, and the instance is installed. If that fails (a fault, or the shadow
    /// fell back to its built-in) the built-in tracking the resident set keeps serving.
    pub(super) fn materialize(&mut self, mut g: Box<Governor>) {
        let Some(j) = g.live[Role::Eviction as usize] else {
            return;
        };
        let roles = g.candidates[j].eviction_roles();
        let Some(mut shadow) = g.candidates[j].shadow.take() else {
            return;
        };
        let keys = shadow.resident_keys();
        let Some(mut p) = shadow.take_eviction_plugin() else {
            return;
        };
        let resident = self.map.len() as u64;
        for k in keys.iter().filter(|k| !self.map.contains_key(k)) {
            if let Err(f) = p.evict_remove(*k, resident) {
                self.stats.faults += 1;
                p.mark_failed(&f);
                return;
            }
        }
        let theirs: FastSet<u64> = keys.into_iter().collect();
        for k in self.resident_keys() {
            if !theirs.contains(&k) {
                self.evict(k);
            }
        }
        let old = self.slots();
        p.attach_figures(self.figures.clone());
        p.mark_installed();
        let slot = self.plugins.add(p);
        self.eviction = EvictionRole::Plugin(slot);
        // ARC and LIRS learn the missed key in `kplug_admit`; an admission plugin the
        // operator installed keeps its role (they then see the miss at insert only).
        if roles.contains(Role::Admission) && matches!(self.admission, AdmissionRole::Native(..)) {
            self.admission = AdmissionRole::Plugin(slot);
        }
        self.release_unused(&old);
    }
}
