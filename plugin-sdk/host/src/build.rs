//! Building a policy crate to a `.wasm` module, for tests, benches, the
//! simulator and a future `build.rs`.
//!
//! Runs `cargo build --release --target wasm32-unknown-unknown` on the crate's
//! manifest with an explicit `--target-dir`. The target dir must differ from
//! the calling cargo's: a build script or test that invokes cargo on the same
//! target dir waits forever on the directory lock held by its parent. Variables
//! a parent cargo exports for its own build (encoded RUSTFLAGS, a target
//! override) are removed so the child builds exactly what its manifest says.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BuildError;

/// Builds the policy crate in `crate_dir` (which holds its `Cargo.toml`) for
/// `wasm32-unknown-unknown` in release mode into `target_dir`, and returns
/// the path of the `.wasm` artifact. Uses `$CARGO` if set, else `cargo`.
pub fn build_policy(crate_dir: &Path, target_dir: &Path) -> Result<PathBuf, BuildError> {
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| BuildError::Manifest(format!("{}: {e}", manifest.display())))?;
    let name =
        package_name(&text).ok_or_else(|| BuildError::Manifest(manifest.display().to_string()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()?;
    if !out.status.success() {
        return Err(BuildError::Cargo {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let artifact = target_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !artifact.exists() {
        return Err(BuildError::MissingArtifact(artifact));
    }
    Ok(artifact)
}

/// The `name` of the `[package]` section of a manifest.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let v = rest.trim_start().strip_prefix('=')?.trim();
            return Some(v.trim_matches('"').to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::package_name;

    #[test]
    fn finds_package_name() {
        let m = "[lib]\nname = \"x\"\n[package]\nversion = \"1\"\nname = \"kplug-policy-lru\"\n[dependencies]\nname = \"y\"\n";
        assert_eq!(package_name(m).as_deref(), Some("kplug-policy-lru"));
        assert_eq!(package_name("[dependencies]\nname = \"y\"\n"), None);
    }
}
