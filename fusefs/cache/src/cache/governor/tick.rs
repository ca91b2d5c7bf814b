//! Ticking the governor and applying what it asks for: `kplug_tick` with each candidate's
//! counters and divergence, then its activations (an eviction candidate by its weight, the
//! other roles by installing an instance, its spare if one is ready) and its weights; making
//! spares outside the embedder's lock ([`SpareRequests`], [`Spares`]); and when a governor
//! faults, the hand-over of eviction to the candidate it followed ([`CacheCore::materialize`]).

use crate::cache::CacheCore;
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::EvictionRole;
use kplug_abi::Role;
use kplug_engine::hash::FastMap;
use kplug_engine::{CompiledPlugin, Plugin, StatusHandle};

use super::{Governor, adopt, make_instance};

/// The spares a governor's admission and prefetch candidates lack (each was installed by an
/// activation): made with [`SpareRequests::make`] outside the embedder's lock, handed back
/// with [`CacheCore::give_spares`].
#[derive(Debug)]
pub struct SpareRequests {
    governor: Option<StatusHandle>,
    capacity: u64,
    wanted: Vec<Wanted>,
}

/// A spare wanted: the candidate's index, its module and its parameters.
type Wanted = (usize, CompiledPlugin, Vec<(String, String)>);

/// Spares made for a governor's candidates.
pub struct Spares {
    governor: Option<StatusHandle>,
    made: Vec<(usize, Result<Plugin, String>)>,
}

impl SpareRequests {
    /// Whether no spare is wanted.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Make the spares (each candidate's `kplug_init` runs here).
    pub fn make(self) -> Spares {
        Spares {
            governor: self.governor,
            made: self
                .wanted
                .into_iter()
                .map(|(i, compiled, params)| (i, make_instance(&compiled, &params, self.capacity)))
                .collect(),
        }
    }
}

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
            .map(|c| {
                (c.role == Role::Eviction && c.error.is_none()).then_some((c.hits, c.requests))
            })
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

    /// Make candidate `i` serve its role. A candidate that faulted stays out; a failure to
    /// install puts it out and the role keeps its policy.
    fn activate_candidate(&mut self, i: usize) {
        let Some(mut g) = self.governor.take() else {
            return;
        };
        let role = g.candidates[i].role;
        if g.candidates[i].error.is_some() {
            self.governor = Some(g);
            return;
        }
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
            // The spare made outside the lock; made here only when there is none (the
            // simulator, or right after a failed refill).
            let instance = match g.candidates[i].spare.take() {
                Some(p) => Ok(p),
                None => g.candidates[i].instantiate(self.capacity, &g.plugin),
            };
            match instance.and_then(|p| self.install_plugin(p, role.into())) {
                Ok(()) => {
                    g.live[role as usize] = Some(i);
                    self.stats.policy_switches += 1;
                }
                Err(e) => {
                    tracing::warn!(
                        governor = g.plugin.name(),
                        candidate = g.candidates[i].spec,
                        "activation failed: {e}"
                    );
                    self.stats.faults += 1;
                    g.candidates[i].fail(format!("activation failed: {e}"));
                }
            }
        }
        self.governor = Some(g);
    }

    /// The spares the governor's admission and prefetch candidates lack.
    pub fn spare_requests(&self) -> SpareRequests {
        let Some(g) = &self.governor else {
            return SpareRequests {
                governor: None,
                capacity: self.capacity,
                wanted: Vec::new(),
            };
        };
        SpareRequests {
            governor: Some(g.plugin.status()),
            capacity: self.capacity,
            wanted: g
                .candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| c.role != Role::Eviction && c.error.is_none() && c.spare.is_none())
                .map(|(i, c)| (i, c.compiled.clone(), c.params.clone()))
                .collect(),
        }
    }

    /// Hand the spares made by [`SpareRequests::make`] to their candidates (if their governor
    /// is still the one installed). A candidate whose spare could not be made is out.
    pub fn give_spares(&mut self, spares: Spares) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        let same = spares
            .governor
            .as_ref()
            .is_some_and(|s| std::sync::Arc::ptr_eq(s, &g.plugin.status()));
        if !same {
            return;
        }
        for (i, made) in spares.made {
            let Some(c) = g.candidates.get_mut(i) else {
                continue;
            };
            match made {
                Ok(mut p) if c.error.is_none() && c.spare.is_none() => {
                    adopt(&mut p, &g.plugin);
                    c.spare = Some(p);
                }
                Ok(_) => {}
                Err(e) => {
                    self.stats.faults += 1;
                    c.fail(format!("making an instance failed: {e}"));
                }
            }
        }
    }

    /// New eviction weights. When the cache starts voting, a plugin that served eviction in
    /// the cache gives way to the configured built-in, which tracks the resident set.
    pub(super) fn reweigh(&mut self, weights: &[(usize, f64)]) {
        let Some(mut g) = self.governor.take() else {
            return;
        };
        // Only eviction candidates weigh; one that faulted only ever weighs 0.
        let weights: Vec<(usize, f64)> = weights
            .iter()
            .copied()
            .filter(|(i, w)| {
                g.bit.get(*i).is_some_and(|b| b.is_some())
                    && (*w == 0.0 || g.candidates[*i].error.is_none())
            })
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
            self.serve_builtin(self.config.eviction);
            self.release_unused(&old, "replaced");
        }
        self.governor = Some(g);
    }

    /// A governor is going away: the eviction candidate it followed serves the cache
    /// directly. Its shadow's instance forgets the blocks the cache lacks, the cache drops
    /// the orphans, and the instance is installed. If that fails (a fault, or the shadow
    /// fell back to its built-in) the built-in tracking the resident set keeps serving.
    /// What goes (the governor and its shadows, the built-in replaced, the tables built
    /// here: each the size of the resident set) is buried, dropped after the lock by a caller
    /// that defers drops ([`deferring_drops`](CacheCore::deferring_drops)).
    pub(super) fn materialize(&mut self, mut g: Box<Governor>) {
        self.take_over_followed(&mut g);
        self.bury(g);
    }

    fn take_over_followed(&mut self, g: &mut Governor) {
        let Some(j) = g.live[Role::Eviction as usize] else {
            return;
        };
        let roles = g.candidates[j].eviction_roles();
        let Some(mut shadow) = g.candidates[j].shadow.take() else {
            return;
        };
        let taken = shadow.take_eviction_plugin();
        self.bury(shadow);
        let Some((mut p, blocks)) = taken else {
            return;
        };
        let resident = self.map.len() as u64;
        for &(k, h) in blocks.iter().filter(|(k, _)| !self.map.contains_key(*k)) {
            if let Err(f) = p.evict_remove(k, h, resident) {
                self.stats.faults += 1;
                p.mark_failed(&f);
                self.bury(p);
                return;
            }
        }
        let theirs: FastMap<u64, u32> = blocks.into_iter().collect();
        for k in self.resident_keys() {
            if !theirs.contains_key(&k) {
                self.evict(k);
            }
        }
        // The instance knows the blocks by the handles it gave them in the shadow.
        if p.evicts_by_handle() {
            self.handles
                .set_all(&mut self.map, |k| theirs.get(&k).copied().unwrap_or(0));
        }
        self.bury(theirs);
        let old = self.slots();
        p.attach_figures(self.figures.clone());
        p.mark_installed();
        let slot = self.plugins.add(p);
        if let EvictionRole::Native(native, _) =
            std::mem::replace(&mut self.eviction, EvictionRole::Plugin(slot))
        {
            self.bury(native);
        }
        // A 1.0 candidate that learns the missed key in `kplug_admit` takes admission too; an
        // admission plugin the operator installed keeps its role.
        if roles.contains(Role::Admission) && matches!(self.admission, AdmissionRole::Native(..)) {
            self.admission = AdmissionRole::Plugin(slot);
        }
        self.release_unused(&old, "replaced");
    }
}
