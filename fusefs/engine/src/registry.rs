//! A small registry of compiled plugins by name, for the mount's control
//! interface and the simulator's command line: add bytes under a name
//! (compiled and validated once), instantiate by name with parameters, and
//! list the status of every instance made, including failed and replaced
//! ones.

use std::collections::BTreeMap;

use crate::engine::{CompiledPlugin, PluginEngine};
use crate::error::LoadError;
use crate::instance::Plugin;
use crate::status::{StatusHandle, StatusSnapshot};

/// Compiled plugins by name, and the status of their instances.
#[derive(Debug)]
pub struct PluginRegistry {
    engine: PluginEngine,
    compiled: BTreeMap<String, CompiledPlugin>,
    instances: Vec<StatusHandle>,
}

/// Instances whose status is kept for display; older ones are forgotten.
const MAX_TRACKED_INSTANCES: usize = 256;

impl PluginRegistry {
    /// An empty registry using `engine`.
    pub fn new(engine: PluginEngine) -> Self {
        PluginRegistry {
            engine,
            compiled: BTreeMap::new(),
            instances: Vec::new(),
        }
    }

    /// Compiles `bytes` and registers it under `name`, replacing any module
    /// of that name (running instances are unaffected).
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, LoadError> {
        let c = self.engine.compile(name, bytes)?;
        self.compiled.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The engine modules are compiled with.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The compiled module registered as `name`.
    pub fn get(&self, name: &str) -> Option<&CompiledPlugin> {
        self.compiled.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.compiled.keys().map(String::as_str)
    }

    /// Instantiates `name` for a cache of `capacity` blocks with `key=value`
    /// parameters and tracks its status.
    pub fn instantiate(
        &mut self,
        name: &str,
        params: &[(&str, &str)],
        capacity: u64,
    ) -> Result<Plugin, LoadError> {
        let c = self
            .compiled
            .get(name)
            .ok_or_else(|| LoadError::UnknownPlugin(name.to_string()))?;
        let p = c.instantiate(params, capacity)?;
        if self.instances.len() >= MAX_TRACKED_INSTANCES {
            self.instances.remove(0);
        }
        self.instances.push(p.status());
        Ok(p)
    }

    /// Status of every tracked instance, oldest first.
    pub fn statuses(&self) -> Vec<StatusSnapshot> {
        self.instances.iter().map(|s| s.snapshot()).collect()
    }
}

/// Parses `key=value,key=value` (empty string: no parameter). Whitespace
/// around keys and values is trimmed.
pub fn parse_params(s: &str) -> Result<Vec<(&str, &str)>, LoadError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| LoadError::Param {
                    key: p.to_string(),
                    reason: "expected key=value".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse() {
        assert_eq!(parse_params("").unwrap(), vec![]);
        assert_eq!(
            parse_params("a=1, b = x=y").unwrap(),
            vec![("a", "1"), ("b", "x=y")]
        );
        assert!(
            matches!(parse_params("a=1,oops"), Err(LoadError::Param { key, .. }) if key == "oops")
        );
    }
}
