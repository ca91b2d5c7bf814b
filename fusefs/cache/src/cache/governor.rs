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
//! Admission and prefetch candidates have no shadow: activating one instantiates it and
//! installs it for that role.
//!
//! Ticks come every `tick_every` demand requests (the simulator: deterministic) or from the
//! embedder's timer ([`CacheCore::governor_tick`], the mount). A governor that faults
//! (trap, timeout, `kplug_tick` not returning 0) or is removed is dropped with its shadows;
//! the eviction candidate it followed then serves the cache directly: its shadow's instance
//! is reconciled with the resident set (blocks only one side holds are dropped) and
//! installed.

use std::collections::VecDeque;

use crate::builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch};
use crate::error::InstallError;
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::EvictionRole;
use kplug_abi::{Role, RoleSet};
use kplug_engine::CompiledPlugin;
use kplug_engine::Plugin;
use kplug_engine::hash::{FastMap, FastSet};
use kplug_engine::parse_params;

use super::{ActivePolicy, CacheCore, CoreConfig};

/// One registered candidate.
pub(crate) struct Candidate {
    spec: String,
    role: Role,
    compiled: CompiledPlugin,
    params: Vec<(String, String)>,
    /// Eviction candidates: the shadow while not serving.
    shadow: Option<Box<CacheCore<()>>>,
    hits: u64,
    requests: u64,
}

/// Keys of a shadow sampled to estimate `candidate_divergence` at each tick, for governors
/// that import it (an estimate within a few percent; the simulator ticks every 100
/// requests).
const DIVERGENCE_SAMPLE: usize = 256;

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

/// The eviction vote: every resident block sits in the bucket of its *holder mask* (bit
/// `b` set when eviction candidate `by_bit[b]`'s shadow holds it), in the order it entered
/// that bucket. The victim comes from the non-empty buckets whose holders weigh least, then
/// hold fewest, and is the oldest of their heads. A block changes bucket only when a shadow
/// takes or drops it (at most two per shadow per request), so the cost is O(candidates)
/// per request plus a sort of the buckets when the weights change. Entries left behind in a bucket's queue are stale and
/// skipped; a bucket's queue is purged when it holds more than twice its live blocks.
#[derive(Default)]
struct Votes {
    seq: u64,
    of: FastMap<u64, (u64, u64)>,
    buckets: FastMap<u64, Bucket>,
    /// (weight, holders, mask) of every bucket, lightest first.
    order: Vec<(f64, u32, u64)>,
    dirty: bool,
}

#[derive(Default)]
struct Bucket {
    queue: VecDeque<(u64, u64)>,
    live: usize,
}

impl Votes {
    fn mask(&self, key: u64) -> Option<u64> {
        self.of.get(&key).map(|e| e.0)
    }

    fn set(&mut self, key: u64, mask: u64) {
        if let Some(&(m, _)) = self.of.get(&key) {
            if m == mask {
                return;
            }
            self.buckets.get_mut(&m).expect("bucket of a block").live -= 1;
        }
        self.seq += 1;
        self.of.insert(key, (mask, self.seq));
        if !self.buckets.contains_key(&mask) {
            self.dirty = true;
        }
        let b = self.buckets.entry(mask).or_default();
        b.queue.push_back((self.seq, key));
        b.live += 1;
        if b.queue.len() > 2 * b.live + 64 {
            let of = &self.of;
            b.queue.retain(|(s, k)| of.get(k) == Some(&(mask, *s)));
        }
    }

    fn drop(&mut self, key: u64) {
        if let Some((m, _)) = self.of.remove(&key) {
            self.buckets.get_mut(&m).expect("bucket of a block").live -= 1;
        }
    }

    /// The block to evict, forgotten: from the lightest non-empty buckets, those held by
    /// the fewest candidates (with one candidate weighing, the others' agreement breaks the
    /// tie: a block nobody holds goes before one that four policies keep), and among those
    /// the oldest.
    fn victim(&mut self, weight: impl Fn(u64) -> f64) -> Option<u64> {
        if self.dirty {
            let mut order: Vec<(f64, u32, u64)> = self
                .buckets
                .keys()
                .map(|m| (weight(*m), m.count_ones(), *m))
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            self.order = order;
            self.dirty = false;
        }
        let mut i = 0;
        while i < self.order.len() {
            let (w, n) = (self.order[i].0, self.order[i].1);
            // The oldest live head among the buckets of that weight and holder count.
            let mut best: Option<(u64, u64)> = None;
            while i < self.order.len() && self.order[i].0 == w && self.order[i].1 == n {
                let m = self.order[i].2;
                i += 1;
                let b = self.buckets.get_mut(&m).expect("ordered bucket");
                if b.live == 0 {
                    b.queue.clear();
                    continue;
                }
                // Stale heads go; a live bucket has a valid entry.
                while let Some(&(s, k)) = b.queue.front() {
                    if self.of.get(&k) == Some(&(m, s)) {
                        break;
                    }
                    b.queue.pop_front();
                }
                let (s, _) = *b.queue.front().expect("a live bucket has a valid entry");
                if best.is_none_or(|(bs, _)| s < bs) {
                    best = Some((s, m));
                }
            }
            if let Some((_, m)) = best {
                let b = self.buckets.get_mut(&m).expect("ordered bucket");
                let (_, k) = b.queue.pop_front().expect("checked");
                self.of.remove(&k);
                b.live -= 1;
                return Some(k);
            }
        }
        None
    }
}

/// What the shadows use besides the candidate: no prefetch, no file index.
fn shadow_config() -> CoreConfig {
    CoreConfig {
        index_files: false,
        eviction: BuiltinEviction::Lru,
        admission: BuiltinAdmission::AdmitAll,
        prefetch: BuiltinPrefetch::None,
        ..CoreConfig::default()
    }
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
    fn note_evictions<V>(&mut self, map: &FastMap<u64, super::Entry<V>>) {
        for (i, c) in self.candidates.iter_mut().enumerate() {
            let (Some(bit), Some(s)) = (self.bit[i], c.shadow.as_mut()) else {
                continue;
            };
            let Some(log) = s.evicted_log.as_mut() else {
                continue;
            };
            if let Some(v) = self.votes.as_mut() {
                for k in log.iter() {
                    if map.contains_key(k)
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

impl<V> CacheCore<V> {
    /// Another policy (a plugin dropped by the operator, a built-in) takes `roles`: no
    /// candidate serves them any more. A governor's own activations set the candidate as
    /// serving after this.
    pub(super) fn governor_loses(&mut self, roles: RoleSet) {
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
}

impl Candidate {
    /// The roles an eviction candidate serves: eviction, and admission too if it has it
    /// (ARC and LIRS learn the incoming key in `kplug_admit`, as libCacheSim's `find`).
    fn eviction_roles(&self) -> RoleSet {
        let mut r = RoleSet::from(Role::Eviction);
        if self.compiled.roles().contains(Role::Admission) {
            r = r.with(Role::Admission);
        }
        r
    }

    fn instantiate(&self, capacity: u64) -> Result<Plugin, InstallError> {
        let p: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.compiled
            .instantiate(&p, capacity)
            .map_err(|e| InstallError::Candidate {
                spec: self.spec.clone(),
                reason: e.to_string(),
            })
    }
}

impl<V> CacheCore<V> {
    /// Install a governor plugin. `resolve` turns a candidate's policy name into a compiled
    /// module; `tick_every` > 0 ticks the governor every that many demand requests (0: only
    /// [`governor_tick`](Self::governor_tick) ticks it). An activation the governor asked for
    /// while loading is applied now.
    pub fn install_governor(
        &mut self,
        mut plugin: Plugin,
        resolve: &dyn Fn(&str) -> Result<CompiledPlugin, String>,
        tick_every: u64,
    ) -> Result<(), InstallError> {
        if !plugin.is_governor() {
            return Err(InstallError::NotGovernor(plugin.name().to_string()));
        }
        let resident = self.resident_keys();
        let mut candidates = Vec::new();
        for (role, spec) in plugin.candidate_specs() {
            let (name, params) = match spec.split_once(':') {
                Some((n, p)) => (n, p.replace(';', ",")),
                None => (spec.as_str(), String::new()),
            };
            let bad = |reason: String| InstallError::Candidate {
                spec: spec.clone(),
                reason,
            };
            let params: Vec<(String, String)> = parse_params(&params)
                .map_err(|e| bad(e.to_string()))?
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let compiled = resolve(name).map_err(bad)?;
            if !compiled.roles().contains(role) {
                return Err(bad(format!("{name} is not a {role} policy")));
            }
            let mut c = Candidate {
                spec: spec.clone(),
                role,
                compiled,
                params,
                shadow: None,
                hits: 0,
                requests: 0,
            };
            if role == Role::Eviction {
                let mut shadow = CacheCore::new(self.capacity, shadow_config());
                shadow.install_plugin(c.instantiate(self.capacity)?, c.eviction_roles())?;
                // A governor installed on a warm cache: every shadow starts from the
                // resident set, least recently used first.
                for &k in &resident {
                    shadow.insert(k, ());
                }
                shadow.evicted_log = Some(Vec::new());
                c.shadow = Some(Box::new(shadow));
            } else {
                // Instantiated once now so a bad parameter is refused at install.
                c.instantiate(self.capacity)?;
            }
            candidates.push(c);
        }
        plugin.attach_figures(self.figures.clone());
        if plugin.wants_sequentiality() {
            self.figures.set_track_sequentiality(true);
        }
        plugin.mark_installed();
        let pending = plugin.take_activations();
        let weights = plugin.take_weights();
        let mut bit = Vec::new();
        let mut by_bit = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            bit.push((c.role == Role::Eviction).then(|| {
                by_bit.push(i);
                by_bit.len() as u32 - 1
            }));
        }
        self.governor = Some(Box::new(Governor {
            plugin,
            weights: vec![0.0; candidates.len()],
            overridden: false,
            candidates,
            live: [None; 3],
            bit,
            by_bit,
            votes: None,
            tick_every,
            since_tick: 0,
        }));
        self.apply_choices(pending, weights);
        Ok(())
    }

    /// Drop the governor and its shadows; the policies serving stay (the eviction candidate
    /// followed is installed in the cache).
    pub fn remove_governor(&mut self) -> Option<String> {
        let g = self.governor.take()?;
        g.plugin.mark_disabled("removed");
        let name = g.plugin.name().to_string();
        self.materialize(g);
        Some(name)
    }

    /// The governor's candidates (empty without a governor).
    pub fn candidates(&self) -> Vec<CandidateInfo> {
        let Some(g) = &self.governor else {
            return Vec::new();
        };
        g.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| CandidateInfo {
                spec: c.spec.clone(),
                role: c.role,
                hits: c.hits,
                requests: c.requests,
                active: g.live[c.role as usize] == Some(i),
            })
            .collect()
    }

    /// Checks the governor's bookkeeping against the cache (for tests): the cache is within
    /// capacity and, while it votes, every resident block and only those sits in the bucket
    /// of its current holders, and the buckets' live counts add up.
    #[doc(hidden)]
    pub fn check_governor_invariants(&self) -> Result<(), String> {
        if self.map.len() as u64 > self.capacity {
            return Err(format!(
                "{} blocks in a cache of {}",
                self.map.len(),
                self.capacity
            ));
        }
        let Some(g) = &self.governor else {
            return Ok(());
        };
        let Some(v) = &g.votes else {
            return Ok(());
        };
        if v.of.len() != self.map.len() {
            return Err(format!(
                "{} masks for {} blocks",
                v.of.len(),
                self.map.len()
            ));
        }
        for k in self.map.keys() {
            let (m, _) = v.of.get(k).ok_or(format!("block {k:#x} has no mask"))?;
            if *m != g.holders(*k) {
                return Err(format!(
                    "block {k:#x}: mask {m:#b}, holders {:#b}",
                    g.holders(*k)
                ));
            }
        }
        let live: usize = v.buckets.values().map(|b| b.live).sum();
        if live != v.of.len() {
            return Err(format!(
                "buckets count {live} live blocks, {} masks",
                v.of.len()
            ));
        }
        Ok(())
    }

    /// The governor's name, if one is installed.
    pub fn governor_name(&self) -> Option<&str> {
        self.governor.as_ref().map(|g| g.plugin.name())
    }

    /// The eviction policy serving while the cache votes: the heaviest candidate's.
    pub(super) fn followed_policy(&self) -> Option<ActivePolicy> {
        let g = self.governor.as_ref()?;
        g.votes.as_ref()?;
        let s = g.candidates[g.live[Role::Eviction as usize]?]
            .shadow
            .as_ref()?;
        Some(s.policy(Role::Eviction))
    }

    /// Feed a demand request to the shadows and tick when due. Called by `touch`, before the
    /// cache makes room for a missed block, so the holder masks are up to date.
    pub(super) fn observe_for_governor(&mut self, key: u64, hit: bool) {
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
        if g.tick_every > 0 {
            g.since_tick += 1;
            if g.since_tick >= g.tick_every {
                g.since_tick = 0;
                self.governor_tick();
            }
        }
    }

    /// A prefetched block is about to be inserted: the shadows take it too.
    pub(super) fn prefetch_for_governor(&mut self, key: u64) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for c in g.candidates.iter_mut() {
            if let Some(s) = c.shadow.as_mut() {
                s.insert(key, ());
            }
        }
        g.note_evictions(&self.map);
    }

    /// `key` was just inserted: it joins its holders' bucket.
    pub(super) fn inserted_for_governor(&mut self, key: u64) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        g.revote(key);
    }

    /// `key` left the cache (evicted or invalidated).
    pub(super) fn dropped_for_governor(&mut self, key: u64) {
        if let Some(v) = self.governor.as_mut().and_then(|g| g.votes.as_mut()) {
            v.drop(key);
        }
    }

    /// An invalidation: every shadow applies it too (`remove` or `remove_file`), whether the
    /// cache holds the blocks or not, so no shadow counts a hit on data that changed. A
    /// shadow's invalidation is not an eviction: its log stays empty, and the cache drops the
    /// blocks it holds itself (their masks go with them).
    pub(super) fn invalidate_in_shadows(&mut self, mut f: impl FnMut(&mut CacheCore<()>)) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        for c in &mut g.candidates {
            if let Some(s) = c.shadow.as_mut() {
                f(s);
            }
        }
    }

    /// The vote's victim, when the cache votes.
    pub(super) fn vote_victim(&mut self) -> Option<u64> {
        let g = self.governor.as_mut()?;
        let mut v = g.votes.take()?;
        let k = v.victim(|m| g.weight_of(m));
        g.votes = Some(v);
        if k.is_none() {
            tracing::error!("the eviction vote found no resident block; the built-in evicts");
        }
        k
    }

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
    fn apply_choices(&mut self, pending: Vec<usize>, weights: Vec<(usize, f64)>) {
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
    fn materialize(&mut self, mut g: Box<Governor>) {
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
        if p.wants_sequentiality() {
            self.figures.set_track_sequentiality(true);
        }
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

#[cfg(test)]
mod tests {
    use super::Votes;

    #[test]
    fn the_vote_evicts_the_lightest_holders_oldest_first() {
        // Two candidates: bit 0 weighs 1, bit 1 weighs 0.25.
        let weight = |m: u64| (m & 1) as f64 + ((m >> 1) & 1) as f64 * 0.25;
        let mut v = Votes::default();
        v.set(10, 0b11);
        v.set(11, 0b01);
        v.set(12, 0b10);
        v.set(13, 0b00);
        v.set(14, 0b10);
        // Held by nobody first, then by the light candidate (oldest first), then the heavy.
        assert_eq!(v.victim(weight), Some(13));
        assert_eq!(v.victim(weight), Some(12));
        // A block that changes holders moves to the back of its new bucket.
        v.set(11, 0b10);
        assert_eq!(v.victim(weight), Some(14));
        assert_eq!(v.victim(weight), Some(11));
        v.drop(10);
        assert_eq!(v.victim(weight), None);
    }

    #[test]
    fn equal_weights_go_by_holder_count_then_age() {
        // activate(j): every mask without j's bit weighs 0. Blocks fewer candidates hold go
        // first; among as many holders, oldest first whatever the masks.
        let weight = |_m: u64| 0.0;
        let mut v = Votes::default();
        v.set(20, 0b100);
        v.set(21, 0b010);
        v.set(22, 0b000);
        v.set(23, 0b110);
        v.set(24, 0b100);
        assert_eq!(v.victim(weight), Some(22));
        assert_eq!(v.victim(weight), Some(20));
        assert_eq!(v.victim(weight), Some(21));
        assert_eq!(v.victim(weight), Some(24));
        assert_eq!(v.victim(weight), Some(23));
        assert_eq!(v.victim(weight), None);
    }

    #[test]
    fn stale_entries_are_purged() {
        let mut v = Votes::default();
        for round in 0..1000u64 {
            v.set(1, round % 2);
            v.set(2, 1 - round % 2);
        }
        assert!(v.buckets.values().all(|b| b.queue.len() <= 2 * b.live + 65));
        assert_eq!(v.of.len(), 2);
    }
}
