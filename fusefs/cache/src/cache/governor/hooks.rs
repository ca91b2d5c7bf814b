//! What the core (`cache.rs`) calls into the governor on each event: a demand request (the
//! shadows are fed and a tick may come), a prefetched block, an insertion, a block leaving,
//! an invalidation, room needed (the vote's victim), another policy taking a role, a
//! candidate's instance faulting (serving, or in its shadow); and which policy serves while
//! the cache votes.

use crate::cache::{ActivePolicy, CacheCore};
use kplug_abi::{Role, RoleSet};
use kplug_engine::HookFault;

impl<V> CacheCore<V> {
    /// Another policy (a plugin dropped by the operator, a built-in) takes `roles`: no
    /// candidate serves them any more. A governor's own activations set the candidate as
    /// serving after this.
    pub(in crate::cache) fn governor_loses(&mut self, roles: RoleSet) {
        if let Some(g) = self.governor.as_mut() {
            for r in roles.iter() {
                g.live[r as usize] = None;
            }
            if roles.contains(Role::Eviction) {
                g.stop_voting();
                g.overridden = true;
            }
        }
    }

    /// The plugin serving the roles marked in `served` (by role number) faulted: if it was a
    /// candidate's instance, that candidate is out for good and no candidate serves the role.
    pub(in crate::cache) fn candidate_faulted(&mut self, served: [bool; 3], fault: &HookFault) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for r in [Role::Admission, Role::Prefetch] {
            if served[r as usize]
                && let Some(i) = g.live[r as usize].take()
            {
                g.candidates[i].fail(fault.to_string());
            }
        }
    }

    /// After the shadows handled an event: a candidate whose shadow's instance faulted is out
    /// for good (the shadow goes on with its built-in, so the holder masks stay right) and
    /// weighs 0 from now; its fault counts in the cache's.
    pub(in crate::cache) fn note_shadow_faults(&mut self) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        let mut lost = Vec::new();
        for (i, c) in g.candidates.iter_mut().enumerate() {
            if c.error.is_none() && c.shadow.as_ref().is_some_and(|s| s.stats.faults > 0) {
                let why = c.status.as_ref().and_then(|s| s.error());
                c.fail(why.unwrap_or_else(|| "faulted in its shadow cache".into()));
                lost.push((i, 0.0));
            }
        }
        if !lost.is_empty() {
            self.stats.faults += lost.len() as u64;
            self.reweigh(&lost);
        }
    }

    /// The eviction policy serving while the cache votes: the heaviest candidate's.
    pub(in crate::cache) fn followed_policy(&self) -> Option<ActivePolicy> {
        let g = self.governor.as_ref()?;
        g.votes.as_ref()?;
        let s = g.candidates[g.live[Role::Eviction as usize]?]
            .shadow
            .as_ref()?;
        Some(s.policy(Role::Eviction))
    }

    /// Feed a demand request to the shadows and tick when due. Called by `touch`, before the
    /// cache makes room for a missed block, so the holder masks are up to date.
    pub(in crate::cache) fn observe_for_governor(&mut self, key: u64, hit: bool) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for c in g.candidates.iter_mut() {
            let Some(s) = c.shadow.as_mut() else {
                continue;
            };
            c.hits += s.request(key, || ()) as u64;
            c.requests += 1;
        }
        g.note_evictions(&self.map);
        if hit {
            g.revote(key);
        }
        self.note_shadow_faults();
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        if g.tick_every > 0 {
            g.since_tick += 1;
            if g.since_tick >= g.tick_every {
                g.since_tick = 0;
                self.governor_tick();
            }
        }
    }

    /// A prefetched block is about to be inserted: the shadows take it too.
    pub(in crate::cache) fn prefetch_for_governor(&mut self, key: u64) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for c in g.candidates.iter_mut() {
            if let Some(s) = c.shadow.as_mut() {
                s.insert(key, ());
            }
        }
        g.note_evictions(&self.map);
        self.note_shadow_faults();
    }

    /// `key` was just inserted: it joins its holders' bucket.
    pub(in crate::cache) fn inserted_for_governor(&mut self, key: u64) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        g.revote(key);
    }

    /// `key` left the cache (evicted or invalidated).
    pub(in crate::cache) fn dropped_for_governor(&mut self, key: u64) {
        if let Some(v) = self.governor.as_mut().and_then(|g| g.votes.as_mut()) {
            v.drop(key);
        }
    }

    /// An invalidation: every shadow applies it too (`remove` or `remove_file`), whether the
    /// cache holds the blocks or not, so no shadow counts a hit on data that changed. A
    /// shadow's invalidation is not an eviction (the cache drops the blocks it holds itself,
    /// and their masks go with them), but the hits a shadow's batched plugin had waiting are
    /// delivered first, and the victims it names while taking them are: they lose its bit.
    pub(in crate::cache) fn invalidate_in_shadows(
        &mut self,
        mut f: impl FnMut(&mut CacheCore<()>),
    ) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for c in &mut g.candidates {
            if let Some(s) = c.shadow.as_mut() {
                f(s);
            }
        }
        g.note_evictions(&self.map);
        self.note_shadow_faults();
    }

    /// The vote's victim, when the cache votes.
    pub(in crate::cache) fn vote_victim(&mut self) -> Option<u64> {
        let g = self.governor.as_mut()?;
        let mut v = g.votes.take()?;
        let k = v.victim(|m| g.weight_of(m));
        g.votes = Some(v);
        if k.is_none() {
            tracing::error!("the eviction vote found no resident block; the built-in evicts");
        }
        k
    }
}
