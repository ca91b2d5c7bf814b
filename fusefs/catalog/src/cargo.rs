//! Building policy crates to `.wasm` modules with cargo: one policy crate for a user or a test
//! ([`build_policy`]), or the whole `policies/` workspace for this crate's build script, which
//! includes this file (`#[path]`) so both builds run the same command.
//!
//! Runs `cargo build --release --target wasm32-unknown-unknown` on a manifest with an explicit
//! `--target-dir`. The target dir must differ from the calling cargo's: a build script or test
//! that invokes cargo on the same target dir waits forever on the directory lock held by its
//! parent. Variables a parent cargo exports for its own build (encoded RUSTFLAGS, a target
//! override, its jobserver) are removed so the child builds exactly what its manifest says.
//! Policies are built with WebAssembly SIMD (`+simd128`), which wasmtime supports by default.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every policy is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Building a policy crate to `.wasm` failed.
#[derive(Debug)]
pub enum BuildError {
    /// cargo could not be run.
    Spawn(std::io::Error),
    /// cargo ran and failed (its exit status and stderr).
    Cargo(std::process::ExitStatus, String),
    /// The crate's manifest could not be read or names no package.
    Manifest(String),
    /// cargo succeeded but the artifact is missing.
    MissingArtifact(PathBuf),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Spawn(e) => write!(
                f,
                "running cargo: {e} (is Rust installed? https://rustup.rs, then \
                 `rustup target add {WASM_TARGET}`)"
            ),
            BuildError::Cargo(status, stderr) if stderr.is_empty() => {
                write!(f, "cargo build failed ({status}): its errors are above")
            }
            BuildError::Cargo(status, stderr) => {
                write!(f, "cargo build failed ({status}):\n{stderr}")?;
                if stderr.contains(WASM_TARGET) && stderr.contains("target may not be installed") {
                    write!(f, "\n(install it with `rustup target add {WASM_TARGET}`)")?;
                }
                Ok(())
            }
            BuildError::Manifest(m) => write!(f, "manifest {m}: no [package] name found"),
            BuildError::MissingArtifact(p) => write!(
                f,
                "cargo succeeded but {} does not exist (is crate-type cdylib set?)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// `cargo build --release --target wasm32-unknown-unknown --manifest-path MANIFEST
/// --target-dir TARGET_DIR`, cleaned of what a parent cargo exported. Uses `$CARGO` if set.
pub fn wasm_build_command(manifest: &Path, target_dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        WASM_TARGET,
        "--manifest-path",
    ])
    .arg(manifest)
    .arg("--target-dir")
    .arg(target_dir)
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_BUILD_TARGET")
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_MAKEFLAGS")
    // WebAssembly SIMD (128-bit; wasmtime compiles it to SSE/AVX): the byte searches of
    // transforms (memchr) run 16 bytes at a time instead of one.
    .env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
        "-C target-feature=+simd128",
    );
    cmd
}

/// Where cargo puts the module of package `package` built into `target_dir`.
pub fn artifact_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Builds the policy crate in `crate_dir` (which holds its `Cargo.toml`) for
/// `wasm32-unknown-unknown` in release mode into `target_dir`, and returns the path of the
/// `.wasm` artifact. cargo's output is captured (and returned in an error).
pub fn build_policy(crate_dir: &Path, target_dir: &Path) -> Result<PathBuf, BuildError> {
    build(crate_dir, target_dir, false)
}

/// [`build_policy`] with cargo's progress and diagnostics shown on this process's stderr
/// (its stdout too, so a caller's stdout carries only its own answer): `kplugfs policy
/// build`.
pub fn build_policy_showing_progress(
    crate_dir: &Path,
    target_dir: &Path,
) -> Result<PathBuf, BuildError> {
    build(crate_dir, target_dir, true)
}

/// The package name of the crate in `crate_dir`.
pub fn package_name(crate_dir: &Path) -> Result<String, BuildError> {
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| BuildError::Manifest(format!("{}: {e}", manifest.display())))?;
    manifest_field(&text, "name")
        .ok_or_else(|| BuildError::Manifest(manifest.display().to_string()))
}

fn build(crate_dir: &Path, target_dir: &Path, show: bool) -> Result<PathBuf, BuildError> {
    let manifest = crate_dir.join("Cargo.toml");
    let name = package_name(crate_dir)?;
    let mut cmd = wasm_build_command(&manifest, target_dir);
    if show {
        use std::os::fd::AsFd;
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(BuildError::Spawn)?;
        cmd.stdout(stderr);
        let status = cmd.status().map_err(BuildError::Spawn)?;
        if !status.success() {
            return Err(BuildError::Cargo(status, String::new()));
        }
    } else {
        let out = cmd.output().map_err(BuildError::Spawn)?;
        if !out.status.success() {
            return Err(BuildError::Cargo(
                out.status,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    let artifact = artifact_path(target_dir, &name);
    if !artifact.exists() {
        return Err(BuildError::MissingArtifact(artifact));
    }
    Ok(artifact)
}

/// Makes sure the toolchain that builds in `crate_dir` has the wasm32 target: asks rustup
/// and, if the target is missing, runs `rustup target add wasm32-unknown-unknown` (its
/// output on stderr). Returns whether it installed it. Without rustup nothing is checked
/// (the toolchain may carry the target; if not, cargo's error says so).
pub fn ensure_wasm_target(crate_dir: &Path) -> Result<bool, String> {
    let rustup = || {
        let mut c = Command::new("rustup");
        // In the crate's directory: a rust-toolchain file there picks the toolchain.
        c.current_dir(crate_dir);
        c
    };
    let listed = match rustup().args(["target", "list", "--installed"]).output() {
        Ok(out) if out.status.success() => out,
        // No rustup (a distribution's Rust): let cargo tell.
        _ => return Ok(false),
    };
    if String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(false);
    }
    eprintln!("installing the {WASM_TARGET} target: rustup target add {WASM_TARGET}");
    let status = {
        use std::os::fd::AsFd;
        let mut c = rustup();
        c.args(["target", "add", WASM_TARGET]);
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            c.stdout(fd);
        }
        c.status()
    };
    match status {
        Ok(s) if s.success() => Ok(true),
        Ok(s) => Err(format!("`rustup target add {WASM_TARGET}` failed ({s})")),
        Err(e) => Err(format!("running rustup: {e}")),
    }
}

/// A `key = "value"` field of the `[package]` table of a manifest.
pub fn manifest_field(manifest: &str, key: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(rest) = line.strip_prefix(key)
            && let Some(v) = rest.trim_start().strip_prefix('=')
        {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::manifest_field;

    #[test]
    fn finds_package_fields() {
        let m = "[lib]\nname = \"x\"\n[package]\nversion = \"1\"\nname = \"kplug-policy-lru\"\n[dependencies]\nname = \"y\"\n";
        assert_eq!(
            manifest_field(m, "name").as_deref(),
            Some("kplug-policy-lru")
        );
        assert_eq!(manifest_field(m, "version").as_deref(), Some("1"));
        assert_eq!(
            manifest_field("[dependencies]\nname = \"y\"\n", "name"),
            None
        );
    }
}
