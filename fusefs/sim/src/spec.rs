//! Policy specs: `NAME[+NAME...]` resolved to components (a plugin compiled once per run, or
//! a native built-in), parameters from `--param NAME:key=value`, and the cache core one
//! (spec, size) pair replays on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use kplug_abi::Role;
use kplug_cache::{BuiltinEviction, BuiltinPrefetch, CacheCore, CoreConfig};
use kplug_engine::{CompiledPlugin, PluginEngine};

use crate::default_tick_every;

/// Compiles the candidates a governor names, once per name for the whole run.
pub(crate) struct Candidates<'a> {
    pub(crate) engine: &'a PluginEngine,
    pub(crate) cache: Mutex<HashMap<String, CompiledPlugin>>,
}

impl Candidates<'_> {
    fn resolve(&self, name: &str) -> std::result::Result<CompiledPlugin, String> {
        if let Some(c) = self.cache.lock().unwrap().get(name) {
            return Ok(c.clone());
        }
        let (n, bytes) = kplug_catalog::load(name).map_err(|e| e.to_string())?;
        let c = self.engine.compile(&n, &bytes).map_err(|e| e.to_string())?;
        self.cache
            .lock()
            .unwrap()
            .insert(name.to_string(), c.clone());
        Ok(c)
    }
}

/// One component of a policy spec.
#[derive(Debug, Clone)]
pub(crate) enum Component {
    Native(String),
    Plugin {
        name: String,
        compiled: CompiledPlugin,
    },
}

pub(crate) fn parse_params(params: &[String]) -> Result<HashMap<String, Vec<(String, String)>>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for p in params {
        let (name, kv) = p
            .split_once(':')
            .with_context(|| format!("--param {p:?}: expected NAME:key=value"))?;
        for (k, v) in
            kplug_engine::parse_params(kv).map_err(|e| anyhow::anyhow!("--param {p:?}: {e}"))?
        {
            out.entry(name.to_string())
                .or_default()
                .push((k.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

pub(crate) fn components(
    engine: &PluginEngine,
    spec: &str,
    cache: &mut BTreeMap<String, Component>,
) -> Result<Vec<Component>> {
    let mut out = Vec::new();
    for part in spec.split('+').map(str::trim) {
        if part.is_empty() {
            bail!("empty component in policy spec {spec:?}");
        }
        if let Some(native) = part.strip_prefix("builtin:") {
            if !["lru", "readahead", "admit-all", "none"].contains(&native) {
                bail!(
                    "unknown native policy {part:?} (builtin:lru, builtin:readahead, builtin:admit-all, builtin:none)"
                );
            }
            out.push(Component::Native(native.to_string()));
            continue;
        }
        if let Some(c) = cache.get(part) {
            out.push(c.clone());
            continue;
        }
        let (name, bytes) = kplug_catalog::load(part)?;
        let compiled = engine
            .compile(&name, &bytes)
            .map_err(|e| anyhow::anyhow!("policy {part}: {e}"))?;
        let c = Component::Plugin { name, compiled };
        cache.insert(part.to_string(), c.clone());
        out.push(c);
    }
    Ok(out)
}

/// Build a core of `capacity` objects running `spec`'s components.
pub(crate) fn build_core(
    comps: &[Component],
    capacity: u64,
    params: &HashMap<String, Vec<(String, String)>>,
    candidates: &Candidates<'_>,
    tick_every: Option<u64>,
) -> Result<(CacheCore<()>, bool)> {
    let tick_every = tick_every.unwrap_or_else(|| default_tick_every(capacity));
    let mut config = CoreConfig {
        index_files: false,
        prefetch: BuiltinPrefetch::None,
        ..CoreConfig::default()
    };
    let mut prefetching = false;
    for c in comps {
        if let Component::Native(n) = c {
            match n.as_str() {
                "lru" => config.eviction = BuiltinEviction::Lru,
                "readahead" => {
                    config.prefetch = BuiltinPrefetch::default();
                    prefetching = true;
                }
                _ => {}
            }
        }
    }
    let mut core = CacheCore::new(capacity, config);
    // Plugins reading `now_ns` see 1 µs per request: simulations are reproducible.
    core.figures().use_logical_clock();
    for c in comps {
        if let Component::Plugin { name, compiled } = c {
            let p: Vec<(&str, &str)> = params
                .get(name)
                .map(|v| v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default();
            let plugin = compiled
                .instantiate(&p, capacity)
                .map_err(|e| anyhow::anyhow!("policy {name}: {e}"))?;
            if plugin.is_governor() {
                core.install_governor(plugin, &|n| candidates.resolve(n), tick_every.max(1))
                    .map_err(|e| anyhow::anyhow!("policy {name}: {e}"))?;
                continue;
            }
            let roles = plugin.roles();
            prefetching |= roles.contains(Role::Prefetch);
            core.install_plugin(plugin, roles)
                .map_err(|e| anyhow::anyhow!("policy {name}: {e}"))?;
        }
    }
    Ok((core, prefetching))
}
