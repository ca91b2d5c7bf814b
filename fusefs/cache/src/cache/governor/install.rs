//! Preparing, installing and removing a governor: each candidate spec the governor
//! registered is resolved into a compiled module, checked, instantiated and (for eviction)
//! given a shadow cache seeded with the resident set, all before the core is touched
//! ([`PreparedGovernor`]); installing assigns the holder-mask bits and applies what the
//! governor asked for while loading. Also the queries on the governor (its name, its
//! candidates).

use crate::builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch};
use crate::cache::{CacheCore, CoreConfig};
use crate::error::InstallError;
use kplug_abi::Role;
use kplug_engine::parse_params;
use kplug_engine::{CompiledPlugin, Plugin, StatusHandle};

use super::{Candidate, CandidateInfo, Governor};

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

/// A governor with its candidates resolved, instantiated and seeded, ready to be installed
/// with [`CacheCore::install_prepared_governor`]. Made with no lock held around the core:
/// this is where the candidates' `kplug_init` and the shadows' replays run.
pub struct PreparedGovernor {
    plugin: Plugin,
    candidates: Vec<Candidate>,
}

impl std::fmt::Debug for PreparedGovernor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedGovernor")
            .field("plugin", &self.plugin)
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

impl PreparedGovernor {
    /// Resolve the candidates `plugin` registered (`resolve` turns a policy name into a
    /// compiled module), instantiate each for a cache of `capacity` blocks, and seed every
    /// eviction candidate's shadow with `resident` (the cache's keys, least recently used
    /// first).
    pub fn new(
        plugin: Plugin,
        resolve: &dyn Fn(&str) -> Result<CompiledPlugin, String>,
        capacity: u64,
        resident: &[u64],
    ) -> Result<Self, InstallError> {
        Self::new_with(plugin, resolve, capacity, resident, &mut |_, _| {})
    }

    /// [`PreparedGovernor::new`], calling `progress(told, total)` with the blocks the shadows
    /// were told so far and all they will be (the resident blocks once per eviction
    /// candidate), first with `told` 0, then after every
    /// [`Prepared::PROGRESS_EVERY`](crate::Prepared::PROGRESS_EVERY) of them: the seeding
    /// grows with the cache.
    pub fn new_with(
        plugin: Plugin,
        resolve: &dyn Fn(&str) -> Result<CompiledPlugin, String>,
        capacity: u64,
        resident: &[u64],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, InstallError> {
        if !plugin.is_governor() {
            return Err(InstallError::NotGovernor(plugin.name().to_string()));
        }
        let specs = plugin.candidate_specs();
        let shadows = specs
            .iter()
            .filter(|(role, _)| *role == Role::Eviction)
            .count();
        let total = shadows * resident.len();
        let mut told = 0;
        progress(0, total);
        let mut candidates = Vec::new();
        for (role, spec) in specs {
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
                status: None,
                spare: None,
                hits: 0,
                requests: 0,
                error: None,
            };
            let instance = c.instantiate(capacity, &plugin)?;
            if role == Role::Eviction {
                let mut shadow = CacheCore::new(capacity, shadow_config());
                c.status = Some(instance.status());
                shadow.install_plugin(instance, c.eviction_roles())?;
                // A governor installed on a warm cache: every shadow starts from the
                // resident set, least recently used first.
                for &k in resident {
                    shadow.insert(k, ());
                    told += 1;
                    if told % crate::Prepared::PROGRESS_EVERY == 0 {
                        progress(told, total);
                    }
                }
                shadow.evicted_log = Some(Vec::new());
                c.shadow = Some(Box::new(shadow));
            } else {
                // Made now, so a bad parameter is refused here and the first activation
                // runs no `kplug_init`.
                c.spare = Some(instance);
            }
            candidates.push(c);
        }
        Ok(PreparedGovernor { plugin, candidates })
    }

    /// The governor's status.
    pub fn status(&self) -> StatusHandle {
        self.plugin.status()
    }
}

impl<V> CacheCore<V> {
    /// Install a governor plugin: [`PreparedGovernor::new`] and
    /// [`install_prepared_governor`](Self::install_prepared_governor) at once (the simulator
    /// and the tests, where nobody waits for the core).
    pub fn install_governor(
        &mut self,
        plugin: Plugin,
        resolve: &dyn Fn(&str) -> Result<CompiledPlugin, String>,
        tick_every: u64,
    ) -> Result<(), InstallError> {
        let resident = self.resident_keys();
        let prepared = PreparedGovernor::new(plugin, resolve, self.capacity, &resident)?;
        self.install_prepared_governor(prepared, tick_every)
    }

    /// Install a prepared governor. `tick_every` > 0 ticks it every that many demand
    /// requests (0: only [`governor_tick`](Self::governor_tick) ticks it). A governor already
    /// installed is retired first (`retire`: everything it put in service returns to the
    /// built-ins). An activation the governor asked for while loading is applied now.
    pub fn install_prepared_governor(
        &mut self,
        prepared: PreparedGovernor,
        tick_every: u64,
    ) -> Result<(), InstallError> {
        let PreparedGovernor {
            mut plugin,
            candidates,
        } = prepared;
        if !self.fits(plugin.capacity()) {
            return Err(InstallError::CapacityMismatch {
                plugin: plugin.capacity(),
                cache: self.capacity,
            });
        }
        if let Some(old) = self.governor.as_ref().map(|g| g.plugin.status()) {
            self.retire(&old, &format!("replaced by governor {}", plugin.name()));
        }
        plugin.attach_figures(self.figures.clone());
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

    /// Install `prepared`, another instance of the module of the governor serving (a mount's
    /// tier-up of it to optimized code), in its place: as
    /// [`install_prepared_governor`](Self::install_prepared_governor), except that a
    /// candidate that faulted under the serving instance stays out (matched by index, spec
    /// and role). A fault is never undone by a tier-up; a new copy of a governor, installed
    /// with `install_prepared_governor`, starts afresh.
    pub fn replace_governor_instance(
        &mut self,
        mut prepared: PreparedGovernor,
        tick_every: u64,
    ) -> Result<(), InstallError> {
        if let Some(old) = &self.governor {
            for (c, o) in prepared.candidates.iter_mut().zip(&old.candidates) {
                if let Some(error) = &o.error
                    && c.spec == o.spec
                    && c.role == o.role
                {
                    c.fail(error.clone());
                    // As after a fault: its shadow goes on with its built-in.
                    if let Some(shadow) = c.shadow.as_mut() {
                        shadow.set_eviction(shadow_config().eviction);
                    }
                }
            }
        }
        self.install_prepared_governor(prepared, tick_every)
    }

    /// Drop the governor and its shadows as if it had faulted: the policies serving stay
    /// (the eviction candidate followed is installed in the cache). An operator's removal is
    /// [`retire`](Self::retire).
    pub fn remove_governor(&mut self) -> Option<String> {
        let g = self.governor.take()?;
        g.plugin.mark_disabled("removed");
        let name = g.plugin.name().to_string();
        self.materialize(g);
        Some(name)
    }

    /// Drop the governor with its shadows and spares, for `reason`; nothing it chose is
    /// installed in its place (see `retire`).
    pub(in crate::cache) fn drop_governor(&mut self, reason: &str) {
        if let Some(g) = self.governor.take() {
            g.plugin.mark_disabled(reason);
            self.bury(g);
        }
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
                error: c.error.clone(),
            })
            .collect()
    }

    /// The governor's name, if one is installed.
    pub fn governor_name(&self) -> Option<&str> {
        self.governor.as_ref().map(|g| g.plugin.name())
    }

    /// The installed governor's status, if one is installed.
    pub fn governor_status(&self) -> Option<StatusHandle> {
        self.governor.as_ref().map(|g| g.plugin.status())
    }
}
