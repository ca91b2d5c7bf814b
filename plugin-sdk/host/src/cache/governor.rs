//! The governor role (ABI 1.1): a plugin that, on a tick, picks which candidate policy
//! serves a role of the cache.
//!
//! While loading, the governor registers candidates (`kplug.add_candidate(role, spec)`,
//! spec = `name` or `name:key=value;key=value`); [`CacheCore::install_governor`] resolves
//! each name to a compiled module through the embedder (the mount and the simulator resolve
//! the policies the binary carries). Every **eviction** candidate runs a *shadow cache*: a
//! `CacheCore<()>` of the same capacity fed every demand request's key, so the governor can
//! compare what each policy would have hit (`candidate_hits`, `candidate_requests`). The
//! shadows hold keys only, never data.
//!
//! **Switching eviction without losing the new policy's history.** Activating eviction
//! candidate *j* does not start *j* from scratch: the cache adopts *j*'s shadow instance,
//! whose state reflects the whole request stream under *j*. The two are reconciled: blocks
//! the cache holds that *j* does not are evicted, and blocks *j* holds that the cache does
//! not are removed from *j* (`kplug_evict_remove`), so afterwards *j* tracks exactly the
//! resident set and from then on the cache behaves like *j* except for blocks it must fetch
//! again. The policy that served before becomes its candidate's shadow, with the resident set
//! as its keys, so its history is kept too. A shadow that has seen nothing while the cache
//! holds blocks (a governor installed on a warm cache) is instead instantiated afresh and
//! seeded with the resident blocks, like any plugin swap.
//!
//! Admission and prefetch candidates have no shadow: activating one instantiates it and
//! installs it for that role.
//!
//! Ticks come every `tick_every` demand requests (the simulator: deterministic) or from the
//! embedder's timer ([`CacheCore::governor_tick`], the mount). A governor that faults
//! (trap, timeout, `kplug_tick` not returning 0) is dropped with its shadows; the policies
//! serving stay as they are.

use crate::abi::Role;
use crate::abi::RoleSet;
use crate::builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch};
use crate::engine::CompiledPlugin;
use crate::error::InstallError;
use crate::hash::FastSet;
use crate::instance::Plugin;
use crate::registry::parse_params;
use crate::roles::admission::AdmissionRole;
use crate::roles::eviction::EvictionRole;

use super::{CacheCore, CoreConfig};

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

/// An installed governor and its candidates.
pub(crate) struct Governor {
    plugin: Plugin,
    candidates: Vec<Candidate>,
    /// The candidate serving each role (by [`Role`] index), if any.
    live: [Option<usize>; 3],
    tick_every: u64,
    since_tick: u64,
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
    /// The eviction candidate serving was disabled (it faulted): none serves now.
    pub(super) fn eviction_lost(&mut self) {
        self.live[Role::Eviction as usize] = None;
    }
}

impl<V> CacheCore<V> {
    /// Another policy (a plugin dropped by the operator, a built-in) takes `roles`: no
    /// candidate serves them any more, and the one that did is not taken back as a shadow.
    /// A governor's own activations set the candidate as serving after this.
    pub(super) fn governor_loses(&mut self, roles: RoleSet) {
        if let Some(g) = self.governor.as_mut() {
            for r in roles.iter() {
                g.live[r as usize] = None;
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
        let pending = plugin.take_activation();
        self.governor = Some(Box::new(Governor {
            plugin,
            candidates,
            live: [None; 3],
            tick_every,
            since_tick: 0,
        }));
        if let Some(i) = pending {
            self.activate_candidate(i);
        }
        Ok(())
    }

    /// Drop the governor and its shadows; the policies serving stay.
    pub fn remove_governor(&mut self) -> Option<String> {
        let g = self.governor.take()?;
        g.plugin.mark_disabled("removed");
        Some(g.plugin.name().to_string())
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

    /// The governor's name, if one is installed.
    pub fn governor_name(&self) -> Option<&str> {
        self.governor.as_ref().map(|g| g.plugin.name())
    }

    /// Feed a demand request to the shadows and tick when due. Called by `touch`.
    pub(super) fn observe_for_governor(&mut self, key: u64, hit: bool) {
        let Some(g) = self.governor.as_mut() else {
            return;
        };
        let live = g.live[Role::Eviction as usize];
        for (i, c) in g.candidates.iter_mut().enumerate() {
            if c.role != Role::Eviction {
                continue;
            }
            let h = if live == Some(i) {
                hit
            } else if let Some(s) = c.shadow.as_mut() {
                s.request(key, || ())
            } else {
                continue;
            };
            c.hits += h as u64;
            c.requests += 1;
        }
        if g.tick_every > 0 {
            g.since_tick += 1;
            if g.since_tick >= g.tick_every {
                g.since_tick = 0;
                self.governor_tick();
            }
        }
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
        let live = g.live[Role::Eviction as usize];
        let divergence = g
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if live == Some(i) {
                    return Some(0);
                }
                let s = c.shadow.as_ref()?;
                let sample = s.map.keys().take(1024);
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
                if let Some(i) = g.plugin.take_activation() {
                    self.activate_candidate(i);
                }
            }
            Err(f) => {
                self.stats.faults += 1;
                tracing::warn!(plugin = g.plugin.name(), "governor disabled: {f}");
                g.plugin.mark_failed(&f);
                self.governor = None;
            }
        }
    }

    /// Make candidate `i` serve its role. Failures are logged; the role keeps its policy.
    fn activate_candidate(&mut self, i: usize) {
        let Some(mut g) = self.governor.take() else {
            return;
        };
        let role = g.candidates[i].role;
        if g.live[role as usize] != Some(i) {
            let result = match role {
                Role::Eviction => self.switch_eviction(&mut g, i),
                _ => g.candidates[i]
                    .instantiate(self.capacity)
                    .and_then(|p| self.install_plugin(p, role.into())),
            };
            match result {
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

    /// Eviction switch to candidate `j` (see the module docs).
    fn switch_eviction(&mut self, g: &mut Governor, j: usize) -> Result<(), InstallError> {
        let before = self.resident_keys();
        let old_live = g.live[Role::Eviction as usize];
        let fresh = g.candidates[j]
            .shadow
            .as_ref()
            .is_none_or(|s| s.is_empty() && !before.is_empty());
        if fresh {
            let p = g.candidates[j].instantiate(self.capacity)?;
            let old = self.take_eviction_plugin();
            self.install_plugin(p, g.candidates[j].eviction_roles())?;
            g.candidates[j].shadow = None;
            self.shadow_from(g, old_live, old, &before);
            return Ok(());
        }
        let mut shadow = g.candidates[j].shadow.take().expect("checked");
        let keys = shadow.resident_keys();
        let mut p = shadow
            .take_eviction_plugin()
            .expect("a shadow runs its candidate");
        // The candidate forgets what the cache does not hold (before any change here, so
        // a fault leaves the cache as it was).
        let resident = self.map.len() as u64;
        for k in keys.iter().filter(|k| !self.map.contains_key(k)) {
            if let Err(f) = p.evict_remove(*k, resident) {
                p.mark_failed(&f);
                return Err(InstallError::Fault(f.fault));
            }
        }
        // The cache drops what the candidate does not hold.
        let theirs: FastSet<u64> = keys.into_iter().collect();
        for k in before.iter().filter(|k| !theirs.contains(k)) {
            self.evict(*k);
        }
        let old = self.take_eviction_plugin();
        p.attach_figures(self.figures.clone());
        p.mark_installed();
        let slot = self.plugins.add(p);
        self.eviction = EvictionRole::Plugin(slot);
        if g.candidates[j].eviction_roles().contains(Role::Admission) {
            self.admission = AdmissionRole::Plugin(slot);
        }
        self.shadow_from(g, old_live, old, &before);
        Ok(())
    }

    /// The plugin that served eviction becomes its candidate's shadow again, holding the
    /// blocks that were resident when it stopped serving (its state tracks exactly those).
    fn shadow_from(
        &mut self,
        g: &mut Governor,
        old_live: Option<usize>,
        old: Option<Plugin>,
        keys: &[u64],
    ) {
        let Some(p) = old else {
            return;
        };
        let Some(i) = old_live else {
            // A policy the governor did not install (dropped by the operator) gives way.
            p.mark_disabled("replaced by the governor's choice");
            return;
        };
        let mut s = CacheCore::new(self.capacity, shadow_config());
        let admits = g.candidates[i].eviction_roles().contains(Role::Admission);
        s.adopt(p, keys, admits);
        g.candidates[i].shadow = Some(Box::new(s));
    }
}

impl CacheCore<()> {
    /// Take `keys` (least recently used first) as resident and `p` as the eviction policy
    /// that already tracks exactly them (no replay).
    fn adopt(&mut self, mut p: Plugin, keys: &[u64], admits: bool) {
        for &k in keys {
            self.seq += 1;
            self.map.insert(
                k,
                super::Entry {
                    value: (),
                    last_access: self.seq,
                    prefetched: false,
                },
            );
        }
        p.attach_figures(self.figures.clone());
        let slot = self.plugins.add(p);
        self.eviction = EvictionRole::Plugin(slot);
        if admits {
            self.admission = AdmissionRole::Plugin(slot);
        }
    }
}
