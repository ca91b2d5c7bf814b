//! The governor role (ABI 1.1): a plugin that, on a tick, picks which candidate policy
//! serves a role of the cache.
//!
//! While loading, the governor registers candidates (`kplug.add_candidate(role, spec)`,
//! spec = `name` or `name:key=value;key=value`); [`CacheCore::install_governor`] resolves
//! each name to a compiled module through the embedder (the mount and the simulator resolve
//! the policies the binary carries). Every **eviction** candidate runs a *shadow cache*: a
//! `CacheCore<()>` of the same capacity, seeded with the resident blocks and fed every
//! demand request, every prefetched block and every invalidation, so it is at all times
//! the cache that candidate alone would have made. `candidate_hits`/`candidate_requests`
//! are exactly the hits that fixed policy would have had. The shadows hold keys only.
//!
//! **Serving eviction by a vote of the shadows.** Activating eviction candidate *j* does not
//! move a policy instance into the cache (that would corrupt *j*'s history, or the other
//! candidates' if they were then fed the cache's set). Each eviction candidate has a weight
//! (`set_weight`, ABI 1.2; `activate(j)` is 1 for *j*, 0 for the others), each resident block
//! a *holder mask* (the candidates whose shadow holds it, kept up to date from the shadows'
//! insertions and evictions), and to make room the cache evicts the oldest block among those
//! whose holders weigh least ([`Votes`]). With one weight the cache *follows* *j*'s shadow:
//! it evicts first what *j* does not hold, the blocks fewest other candidates hold first,
//! then the longest dropped.
//! Such a block always exists when a full cache misses: the shadow has just taken the missed
//! block, so it cannot also hold every resident one. Once caught up the cache holds exactly
//! *j*'s set and stays so: the cache is *j*. A switch evicts nothing eagerly; blocks the old
//! policy kept stay resident, and can hit, until room is needed. What a switch costs is the
//! blocks *j* holds and the cache does not, fetched again when asked for
//! (`candidate_divergence` estimates their number). Underneath, the configured built-in
//! eviction policy tracks the resident set: it is the fallback if the vote finds no block (a
//! host bug, logged) and serves when every weight is 0.
//!
//! Admission and prefetch candidates have no shadow: activating one installs an instance for
//! that role. The instance is made beforehand, outside the embedder's lock (a *spare*: made
//! when the governor is prepared, and again after each activation by
//! [`CacheCore::spare_requests`] and [`CacheCore::give_spares`]), so an activation never runs
//! a plugin's `kplug_init` while readers wait; without a spare (the simulator) it is made on
//! the spot.
//!
//! **Preparing.** [`PreparedGovernor::new`] resolves and instantiates the candidates and seeds
//! the shadows from a snapshot of the resident set, outside any lock around the core (a
//! governor with thirty-two candidates whose `kplug_init` takes 300 ms each would otherwise
//! hold every reader for ten seconds); [`CacheCore::install_prepared_governor`] installs it in
//! a moment, retiring the governor it replaces (`CacheCore::retire`).
//!
//! **A candidate that faults** (its instance serving a role, or in its shadow) is out for
//! good: the role returns to the built-in, `active` no longer names it, its figures read -1,
//! an activation or weight for it is ignored, and its fault shows in
//! [`CacheCore::candidates`] and counts in the cache's faults. Candidate instances are
//! marked as owned by their governor (`StatusHandle::owner`) and share its slow-call budget.
//!
//! Ticks come every `tick_every` demand requests (the simulator: deterministic) or from the
//! embedder's timer ([`CacheCore::governor_tick`], the mount). A governor that faults
//! (trap, timeout, `kplug_tick` not returning 0) or is removed is dropped with its shadows;
//! the eviction candidate it followed then serves the cache directly: its shadow's instance
//! is reconciled with the resident set (blocks only one side holds are dropped) and
//! installed.
//!
//! Files: this one holds the types (a [`Governor`], its [`Candidate`]s) and the governor's
//! own bookkeeping of the vote (weights, holder masks, who serves); `votes.rs` the vote's
//! buckets ([`Votes`]); `install.rs` installing and removing a governor and resolving its
//! candidates into shadows; `hooks.rs` what the core calls on each request, insertion,
//! eviction and invalidation; `tick.rs` the tick, the activations and weights it applies and
//! the hand-over when a governor goes; `invariants.rs` the check the tests run after every
//! op. The children reach the core's private fields as descendants of `cache`.

use crate::error::InstallError;
pub use install::PreparedGovernor;
use kplug_abi::{Role, RoleSet};
use kplug_engine::CompiledPlugin;
use kplug_engine::{Plugin, StatusHandle};
pub use tick::{SpareRequests, Spares};

use super::CacheCore;
use super::table::BlockTable;
use votes::Votes;

mod hooks;
mod install;
mod invariants;
mod tick;
mod votes;

/// One registered candidate.
pub(crate) struct Candidate {
    spec: String,
    role: Role,
    compiled: CompiledPlugin,
    params: Vec<(String, String)>,
    /// Eviction candidates: the shadow while not serving.
    shadow: Option<Box<CacheCore<()>>>,
    /// Eviction candidates: the status of the shadow's instance.
    status: Option<StatusHandle>,
    /// Admission and prefetch candidates: an instance made outside the lock, installed at the
    /// next activation.
    spare: Option<Plugin>,
    hits: u64,
    requests: u64,
    /// Why the candidate is out for good (it faulted), if it is.
    error: Option<String>,
}

/// An installed governor and its candidates.
pub(crate) struct Governor {
    plugin: Plugin,
    candidates: Vec<Candidate>,
    /// The candidate serving each role (by [`Role`] index), if any. For eviction: the
    /// candidate of highest weight while the cache votes.
    live: [Option<usize>; 3],
    /// Eviction weight per candidate (0 for other roles).
    weights: Vec<f64>,
    /// The operator dropped an eviction policy over the governor: its weights are ignored
    /// until it activates an eviction candidate again.
    overridden: bool,
    /// Bit of each eviction candidate in a block's holder mask, and the reverse.
    bit: Vec<Option<u32>>,
    by_bit: Vec<usize>,
    /// The holder masks of the resident blocks, while the cache votes (a weight is > 0).
    votes: Option<Votes>,
    tick_every: u64,
    since_tick: u64,
}

/// A candidate's figures and identity, for status and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateInfo {
    /// The spec the governor registered.
    pub spec: String,
    /// The role it is a candidate for.
    pub role: Role,
    /// Demand hits counted for it (shadow or live).
    pub hits: u64,
    /// Demand requests counted for it.
    pub requests: u64,
    /// Whether it serves its role now.
    pub active: bool,
    /// Why it is out for good: the fault of its instance (serving, in its shadow, or while
    /// being made); `None` while it is healthy.
    pub error: Option<String>,
}

impl Governor {
    /// The eviction plugin serving the cache faulted: no candidate serves eviction now.
    pub(super) fn eviction_lost(&mut self) {
        self.stop_voting();
    }

    fn stop_voting(&mut self) {
        self.live[Role::Eviction as usize] = None;
        self.weights.iter_mut().for_each(|w| *w = 0.0);
        self.votes = None;
    }

    /// The weight of the holders in `mask`.
    fn weight_of(&self, mask: u64) -> f64 {
        let mut w = 0.0;
        let mut m = mask;
        while m != 0 {
            let b = m.trailing_zeros();
            w += self.weights[self.by_bit[b as usize]];
            m &= m - 1;
        }
        w
    }

    /// The holder mask of `key` now.
    fn holders(&self, key: u64) -> u64 {
        let mut mask = 0;
        for (i, c) in self.candidates.iter().enumerate() {
            if let (Some(b), Some(s)) = (self.bit[i], c.shadow.as_ref())
                && s.contains(key)
            {
                mask |= 1 << b;
            }
        }
        mask
    }

    /// While the cache votes: `key` (resident) goes to the bucket of its holders now.
    fn revote(&mut self, key: u64) {
        if let Some(mut v) = self.votes.take() {
            v.set(key, self.holders(key));
            self.votes = Some(v);
        }
    }

    /// After every shadow handled an event: blocks a shadow dropped lose its bit.
    fn note_evictions<V>(&mut self, map: &BlockTable<super::Entry<V>>) {
        for (i, c) in self.candidates.iter_mut().enumerate() {
            let (Some(bit), Some(s)) = (self.bit[i], c.shadow.as_mut()) else {
                continue;
            };
            let Some(log) = s.evicted_log.as_mut() else {
                continue;
            };
            if let Some(v) = self.votes.as_mut() {
                for k in log.iter() {
                    if map.contains_key(*k)
                        && let Some(m) = v.mask(*k)
                    {
                        v.set(*k, m & !(1 << bit));
                    }
                }
            }
            log.clear();
        }
    }

    /// Start (or restart) the vote: every resident block goes to its holders' bucket, least
    /// recently used first.
    fn start_voting(&mut self, resident: &[u64]) {
        let mut v = Votes::default();
        for &k in resident {
            v.set(k, self.holders(k));
        }
        self.votes = Some(v);
    }

    /// Apply `activate(j)` (weight 1 for `j`, 0 for the others) or a list of weights.
    fn reweigh(&mut self, weights: &[(usize, f64)], resident: &[u64]) -> bool {
        for &(i, w) in weights {
            self.weights[i] = w;
        }
        let top = (0..self.weights.len())
            .filter(|i| self.weights[*i] > 0.0)
            .max_by(|a, b| self.weights[*a].total_cmp(&self.weights[*b]).then(b.cmp(a)));
        let Some(top) = top else {
            let changed = self.live[Role::Eviction as usize].is_some();
            self.stop_voting();
            return changed;
        };
        match self.votes.as_mut() {
            Some(v) => v.dirty = true,
            None => self.start_voting(resident),
        }
        let changed = self.live[Role::Eviction as usize] != Some(top);
        self.live[Role::Eviction as usize] = Some(top);
        changed
    }
}

impl Candidate {
    /// The roles an eviction candidate serves: eviction, and admission too if it has it (a
    /// 1.0 plugin that learns the incoming key in `kplug_admit`, as ARC and LIRS did before
    /// the batched hooks of ABI 1.4 gave it to `kplug_evict_miss`).
    fn eviction_roles(&self) -> RoleSet {
        let mut r = RoleSet::from(Role::Eviction);
        if self.compiled.roles().contains(Role::Admission) {
            r = r.with(Role::Admission);
        }
        r
    }

    /// A new instance for a cache of `capacity` blocks, owned by `governor` and sharing its
    /// slow-call budget.
    fn instantiate(&self, capacity: u64, governor: &Plugin) -> Result<Plugin, InstallError> {
        let mut p = make_instance(&self.compiled, &self.params, capacity).map_err(|reason| {
            InstallError::Candidate {
                spec: self.spec.clone(),
                reason,
            }
        })?;
        adopt(&mut p, governor);
        Ok(p)
    }

    /// The candidate faulted: it is out for good.
    fn fail(&mut self, error: String) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self.spare = None;
    }
}

/// An instance of a candidate's module with its parameters (no lock needed).
fn make_instance(
    compiled: &CompiledPlugin,
    params: &[(String, String)],
    capacity: u64,
) -> Result<Plugin, String> {
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    compiled
        .instantiate(&p, capacity)
        .map_err(|e| e.to_string())
}

/// Make `p` a candidate instance of `governor`: owned by it, charged to its budget.
fn adopt(p: &mut Plugin, governor: &Plugin) {
    p.status().set_owner(&governor.status());
    p.share_budget(governor);
}
