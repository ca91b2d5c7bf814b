//! The policy plugins built into the binary (from `policies/`, see `build.rs`):
//! `kplugfs policy list`, `kplugfs policy export`, and policy names in `kplugfs sim`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kplug_host::{EngineConfig, PluginEngine, Role};

include!(concat!(env!("OUT_DIR"), "/embedded_policies.rs"));

/// A built-in policy plugin.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// Its name (the directory under `policies/`).
    pub name: &'static str,
    /// One-line description (the crate's description).
    pub description: &'static str,
    /// The module.
    pub wasm: &'static [u8],
}

/// Every built-in policy plugin, sorted by name.
pub fn all() -> Vec<Embedded> {
    let mut v: Vec<Embedded> = EMBEDDED
        .iter()
        .map(|&(name, description, wasm)| Embedded {
            name,
            description,
            wasm,
        })
        .collect();
    v.sort_by_key(|e| e.name);
    v
}

/// The built-in policy called `name`.
pub fn find(name: &str) -> Option<Embedded> {
    all().into_iter().find(|e| e.name == name)
}

fn unknown(name: &str) -> anyhow::Error {
    let names: Vec<_> = all().iter().map(|e| e.name).collect();
    anyhow::anyhow!(
        "no built-in policy named {name:?} (built-in: {})",
        names.join(", ")
    )
}

/// The roles a module implements, probed from its exports: `eviction`, `admission`,
/// `prefetch`, and `governor` for a module exporting `kplug_tick`.
pub fn roles(engine: &PluginEngine, name: &str, wasm: &[u8]) -> Result<Vec<&'static str>> {
    let c = engine
        .compile(name, wasm)
        .with_context(|| format!("policy {name}"))?;
    let mut r: Vec<&'static str> = c.roles().iter().map(Role::name).collect();
    if c.is_governor() {
        r.push("governor");
    }
    Ok(r)
}

/// `kplugfs policy list`: name, roles and description of every built-in policy.
pub fn list(out: &mut impl std::io::Write) -> Result<()> {
    let engine = PluginEngine::new(EngineConfig::default())?;
    let rows: Vec<(String, String, String)> = all()
        .into_iter()
        .map(|e| {
            let roles = roles(&engine, e.name, e.wasm)
                .map(|r| r.join(","))
                .unwrap_or_else(|err| format!("invalid: {err}"));
            (e.name.to_string(), roles, e.description.to_string())
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(5).max(5);
    writeln!(out, "{:w0$}  {:w1$}  DESCRIPTION", "NAME", "ROLES")?;
    for (n, r, d) in rows {
        writeln!(out, "{n:w0$}  {r:w1$}  {d}")?;
    }
    Ok(())
}

/// `kplugfs policy export NAME DEST`: write the module to DEST (a file, or a directory that
/// receives `NAME.wasm`). Returns the path written.
pub fn export(name: &str, dest: &Path) -> Result<PathBuf> {
    let e = find(name).ok_or_else(|| unknown(name))?;
    let path = if dest.is_dir() {
        dest.join(format!("{name}.wasm"))
    } else {
        dest.to_path_buf()
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!("{} is not a directory", parent.display());
    }
    std::fs::write(&path, e.wasm).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The bytes of a policy given by built-in name or by path to a `.wasm` file.
pub fn load(name_or_path: &str) -> Result<(String, Vec<u8>)> {
    if let Some(e) = find(name_or_path) {
        return Ok((e.name.to_string(), e.wasm.to_vec()));
    }
    let p = Path::new(name_or_path);
    if p.extension().is_some_and(|x| x == "wasm") || p.exists() {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name_or_path.into());
        return Ok((name, bytes));
    }
    Err(unknown(name_or_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policies_are_valid_modules_with_roles() {
        let engine = PluginEngine::new(EngineConfig::default()).unwrap();
        assert!(!all().is_empty());
        for e in all() {
            let r = roles(&engine, e.name, e.wasm).unwrap();
            assert!(!r.is_empty(), "{} implements no role", e.name);
            assert!(!e.description.is_empty(), "{} has no description", e.name);
        }
        assert!(find("lru").is_some());
    }

    #[test]
    fn export_writes_the_module_and_names_unknown_policies() {
        let dir = tempfile::tempdir().unwrap();
        let p = export("lru", dir.path()).unwrap();
        assert_eq!(p, dir.path().join("lru.wasm"));
        assert_eq!(std::fs::read(&p).unwrap(), find("lru").unwrap().wasm);
        let err = export("nope", dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("no built-in policy") && err.contains("lru"),
            "{err}"
        );
        assert!(export("lru", &dir.path().join("missing/x.wasm")).is_err());
    }
}
