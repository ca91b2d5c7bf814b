//! The policy plugins built into kplugfs, and building new ones.
//!
//! `build.rs` compiles every crate of the `policies/` workspace to WebAssembly and embeds the
//! modules, so the binary carries its policies: [`all`] and [`find`] list them (`kplugfs
//! policy list`), [`export`] writes one to a file (`kplugfs policy export NAME DIR`), [`load`]
//! resolves a name or a `.wasm` path (`kplugfs sim --policy`), and the mount and the
//! simulator resolve a governor's candidates through [`find`]. [`build_policy`] builds any
//! policy crate with cargo (tests, benches, `kplugfs policy build`), [`build_c_policy`] a
//! policy written in C with clang, and [`template`] writes a new policy crate (`kplugfs
//! policy new`).

use std::path::{Path, PathBuf};

use kplug_abi::Role;
use kplug_engine::{LoadError, PluginEngine};

mod cargo;
mod clang;
pub mod template;

pub use cargo::{
    BuildError, WASM_TARGET, build_policy, build_policy_showing_progress, ensure_wasm_target,
    package_name,
};
pub use clang::{CBuildError, build_c_policy, clang_command};

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

/// Why a policy could not be found, written or compiled.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No built-in policy has that name (and it is not a path to a file).
    #[error("no built-in policy named {name:?} (built-in: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// Reading or writing a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// `reading` or `writing`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The destination's directory does not exist.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The module was refused by the engine.
    #[error("policy {name}: {source}")]
    Invalid {
        /// The policy.
        name: String,
        /// Why.
        source: LoadError,
    },
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

fn unknown(name: &str) -> CatalogError {
    let names: Vec<_> = all().iter().map(|e| e.name).collect();
    CatalogError::Unknown {
        name: name.to_string(),
        known: names.join(", "),
    }
}

/// The roles a module implements, probed from its exports: `eviction`, `admission`,
/// `prefetch`, `governor` for a module exporting `kplug_tick`, `probe` for one exporting the
/// probe hooks (ABI 1.5), and `transform` for a data-path plugin (ABI 1.6, served as a view).
pub fn roles(
    engine: &PluginEngine,
    name: &str,
    wasm: &[u8],
) -> Result<Vec<&'static str>, CatalogError> {
    let c = engine
        .compile(name, wasm)
        .map_err(|source| CatalogError::Invalid {
            name: name.to_string(),
            source,
        })?;
    let mut r: Vec<&'static str> = c.roles().iter().map(Role::name).collect();
    if c.is_governor() {
        r.push("governor");
    }
    if c.is_transform() {
        r.push("transform");
    }
    if c.is_probe() {
        r.push("probe");
    }
    Ok(r)
}

/// Write the module of built-in policy `name` to `dest` (a file, or a directory that receives
/// `NAME.wasm`). Returns the path written.
pub fn export(name: &str, dest: &Path) -> Result<PathBuf, CatalogError> {
    let e = find(name).ok_or_else(|| unknown(name))?;
    let path = if dest.is_dir() {
        dest.join(format!("{name}.wasm"))
    } else {
        dest.to_path_buf()
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(CatalogError::NotADirectory(parent.to_path_buf()));
    }
    std::fs::write(&path, e.wasm).map_err(|source| CatalogError::Io {
        what: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The name and bytes of a policy given by built-in name or by path to a `.wasm` file.
pub fn load(name_or_path: &str) -> Result<(String, Vec<u8>), CatalogError> {
    if let Some(e) = find(name_or_path) {
        return Ok((e.name.to_string(), e.wasm.to_vec()));
    }
    let p = Path::new(name_or_path);
    if p.extension().is_some_and(|x| x == "wasm") || p.exists() {
        let bytes = std::fs::read(p).map_err(|source| CatalogError::Io {
            what: "reading",
            path: p.to_path_buf(),
            source,
        })?;
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
    use kplug_engine::EngineConfig;

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
