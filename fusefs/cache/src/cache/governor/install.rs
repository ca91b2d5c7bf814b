//! Installing and removing a governor: each candidate spec the governor registered is
//! resolved into a compiled module, checked, and (for eviction) given a shadow cache seeded
//! with the resident set; the holder-mask bits are assigned; what the governor asked for
//! while loading is applied. Also the queries on the governor (its name, its candidates).

use crate::builtin::{BuiltinAdmission, BuiltinEviction, BuiltinPrefetch};
use crate::cache::{CacheCore, CoreConfig};
use crate::error::InstallError;
use kplug_abi::Role;
use kplug_engine::CompiledPlugin;
use kplug_engine::Plugin;
use kplug_engine::parse_params;

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

    /// The governor's name, if one is installed.
    pub fn governor_name(&self) -> Option<&str> {
        self.governor.as_ref().map(|g| g.plugin.name())
    }
}
