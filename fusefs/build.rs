//! Builds every policy plugin in `policies/` to WebAssembly and embeds the modules in the
//! `kplugfs` binary (`kplugfs policy list|export`, `kplugfs sim --policy NAME`).
//!
//! The policies are a cargo workspace of their own, built for `wasm32-unknown-unknown` with
//! a nested cargo into a target directory under OUT_DIR (a separate directory, so the outer
//! cargo's lock is never waited on). Needs `rustup target add wasm32-unknown-unknown`
//! (scripts/setup.sh does it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let policies = root.join("policies");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", policies.display());
    // Every SDK source file (a directory's mtime changes only when entries come or go).
    for entry in std::fs::read_dir(root.join("plugin-sdk/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("plugin-sdk/Cargo.toml").display()
    );

    let members = workspace_members(&policies.join("Cargo.toml"));
    // Name every source file: a directory in rerun-if-changed is not always rescanned.
    println!(
        "cargo:rerun-if-changed={}",
        policies.join("Cargo.toml").display()
    );
    for dir in &members {
        println!(
            "cargo:rerun-if-changed={}",
            policies.join(dir).join("Cargo.toml").display()
        );
        for entry in std::fs::read_dir(policies.join(dir).join("src"))
            .into_iter()
            .flatten()
            .flatten()
        {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    for entry in std::fs::read_dir(root.join("plugin-sdk/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    let target = out.join("policies-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--workspace",
            "--manifest-path",
        ])
        .arg(policies.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("run cargo for the policies");
    if !status.success() {
        panic!(
            "building the policy plugins failed (is the wasm32 target installed? \
             `rustup target add wasm32-unknown-unknown`, or run scripts/setup.sh)"
        );
    }
    let mut code =
        String::from("/// Policies built from `policies/`: (name, description, wasm bytes).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &str, &[u8])] = &[\n");
    for dir in members {
        let manifest = std::fs::read_to_string(policies.join(&dir).join("Cargo.toml")).unwrap();
        let package = field(&manifest, "name").expect("package name");
        let description = field(&manifest, "description").unwrap_or_default();
        let wasm = target
            .join("wasm32-unknown-unknown/release")
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(wasm.exists(), "{} missing after the build", wasm.display());
        // Relative to OUT_DIR, so the target directory can be moved.
        let rel = format!(
            "/policies-target/wasm32-unknown-unknown/release/{}.wasm",
            package.replace('-', "_")
        );
        code.push_str(&format!(
            "    ({dir:?}, {description:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), {rel:?}))),\n"
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("embedded_policies.rs"), code).unwrap();
}

/// The `members = [...]` list of the policies workspace (comments allowed inside).
fn workspace_members(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("policies/Cargo.toml");
    let start = text
        .find("\nmembers")
        .expect("a members list in policies/Cargo.toml");
    let open = start + text[start..].find('[').unwrap();
    let close = open + text[open..].find(']').unwrap();
    let mut out = Vec::new();
    for line in text[open + 1..close].lines() {
        let line = line.split('#').next().unwrap_or("");
        out.extend(line.split('"').skip(1).step_by(2).map(str::to_string));
    }
    out
}

/// A `key = "value"` field of the `[package]` table.
fn field(manifest: &str, key: &str) -> Option<String> {
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
