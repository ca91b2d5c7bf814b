//! Plugins chosen at mount time: `--plugin PATH.wasm[:key=value,...]` and
//! `--policy NAME[:key=value,...]` (a policy built into the binary).
//!
//! A spec is parsed (and a relative path made absolute) before the daemon forks, so bad
//! syntax or an unknown policy name is a one-line error and nothing is mounted. Its files
//! are read in the daemon, just before mounting, and handed to the control plane as the
//! files `NAME.wasm` and (with parameters) `NAME.params` of `.kplug/plugins/`, exactly as if
//! dropped there: a file that cannot be read or a module that is refused is a failure the
//! mount reports, and then either ignores (the role stays on its built-in) or, with
//! `--strict-plugins`, refuses to mount over.
//!
//! Parameters are separated by `,` or `:` (in `-o plugin=...` only `:` works, since `,`
//! separates mount options).

use std::path::PathBuf;

use crate::control::parse_params_text;

/// Where a mount-time plugin's module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` file (absolute path).
    File(PathBuf),
    /// A policy built into the binary (`kplugfs policy list`).
    Builtin(String),
}

/// One `--plugin` or `--policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The plugin's name: its file in `.kplug/plugins/` is `NAME.wasm`.
    pub name: String,
    /// Its module.
    pub source: PluginSource,
    /// Its parameters (none: a kept `NAME.params`, if any, applies).
    pub params: Vec<(String, String)>,
}

fn parse_params(text: &str) -> Result<Vec<(String, String)>, String> {
    parse_params_text(text.replace(':', ",").as_bytes())
}

impl PluginSpec {
    /// `PATH.wasm[:key=value,...]`.
    pub fn parse_plugin(arg: &str) -> Result<Self, String> {
        let (path, params) = match arg.find(".wasm:") {
            Some(i) => (&arg[..i + 5], &arg[i + 6..]),
            None => (arg, ""),
        };
        if !path.ends_with(".wasm") {
            return Err(format!(
                "{arg:?} is not PATH.wasm[:key=value,...] (the module's file name ends in .wasm)"
            ));
        }
        let path = std::path::absolute(path).map_err(|e| format!("{path}: {e}"))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty() && !s.starts_with('.'))
            .ok_or_else(|| format!("{arg:?}: the file name is not a usable plugin name"))?
            .to_string();
        Ok(Self {
            name,
            source: PluginSource::File(path),
            params: parse_params(params).map_err(|e| format!("{arg:?}: {e}"))?,
        })
    }

    /// `NAME[:key=value,...]`, NAME a policy of `kplugfs policy list`.
    pub fn parse_policy(arg: &str) -> Result<Self, String> {
        let (name, params) = arg.split_once(':').unwrap_or((arg, ""));
        if kplug_catalog::find(name).is_none() {
            let known: Vec<&str> = kplug_catalog::all().iter().map(|e| e.name).collect();
            return Err(format!(
                "no policy named {name:?} in this binary (kplugfs policy list: {})",
                known.join(", ")
            ));
        }
        Ok(Self {
            name: name.to_string(),
            source: PluginSource::Builtin(name.to_string()),
            params: parse_params(params).map_err(|e| format!("{arg:?}: {e}"))?,
        })
    }

    /// The files this spec puts into `.kplug/plugins/`, parameters first.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        let wasm = match &self.source {
            PluginSource::File(p) => std::fs::read(p)
                .map_err(|e| format!("--plugin {}: cannot read it: {e}", p.display()))?,
            PluginSource::Builtin(n) => kplug_catalog::find(n)
                .ok_or_else(|| format!("--policy {n}: not in this binary"))?
                .wasm
                .to_vec(),
        };
        let mut files = Vec::new();
        if !self.params.is_empty() {
            let text: String = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            files.push((format!("{}.params", self.name), text.into_bytes()));
        }
        files.push((format!("{}.wasm", self.name), wasm));
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_specs_parse_path_and_params() {
        let s = PluginSpec::parse_plugin("/p/max.size.wasm:bytes=4096,x=1:y=2").unwrap();
        assert_eq!(s.name, "max.size");
        assert_eq!(s.source, PluginSource::File("/p/max.size.wasm".into()));
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(s.params, [kv("bytes", "4096"), kv("x", "1"), kv("y", "2")]);
        let rel = PluginSpec::parse_plugin("lru.wasm").unwrap();
        assert!(matches!(rel.source, PluginSource::File(p) if p.is_absolute()));
        assert!(rel.params.is_empty());
        assert!(
            PluginSpec::parse_plugin("/p/lru")
                .unwrap_err()
                .contains(".wasm")
        );
        assert!(
            PluginSpec::parse_plugin("/p/lru.wasm:oops")
                .unwrap_err()
                .contains("key=value")
        );
    }

    #[test]
    fn policy_specs_name_a_builtin() {
        let s = PluginSpec::parse_policy("lru").unwrap();
        assert_eq!(s.source, PluginSource::Builtin("lru".into()));
        let files = s.files().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "lru.wasm");
        assert!(files[0].1.starts_with(b"\0asm"));
        let p = PluginSpec::parse_policy("maxsize:bytes=1000").unwrap();
        assert_eq!(
            p.files().unwrap()[0],
            ("maxsize.params".into(), b"bytes=1000\n".to_vec())
        );
        let e = PluginSpec::parse_policy("nosuch").unwrap_err();
        assert!(e.contains("lru"), "{e}");
    }
}
