//! Builds every policy plugin in `policies/` to WebAssembly and embeds the modules in this
//! crate (`kplug_catalog::all()`: `kplugfs policy list|export`, `kplugfs sim --policy NAME`,
//! governors' candidates).
//!
//! The policies are a cargo workspace of their own, built for `wasm32-unknown-unknown` with a
//! nested cargo into a target directory under OUT_DIR (a separate directory, so the outer
//! cargo's lock is never waited on), with the same command as `build_policy`
//! (`src/cargo.rs`, included below). Needs `rustup target add wasm32-unknown-unknown`
//! (scripts/setup.sh does it).

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/cargo.rs"]
mod cargo;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..");
    let policies = root.join("policies");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let members = workspace_members(&policies.join("Cargo.toml"));
    // Name every source file: a directory in rerun-if-changed is not always rescanned.
    let mut watched = vec![
        policies.join("Cargo.toml"),
        root.join("plugin-sdk/Cargo.toml"),
        root.join("plugin-sdk/abi/Cargo.toml"),
    ];
    watched.extend(rs_files(&root.join("plugin-sdk/src")));
    watched.extend(rs_files(&root.join("plugin-sdk/abi/src")));
    for dir in &members {
        watched.push(policies.join(dir).join("Cargo.toml"));
        watched.extend(rs_files(&policies.join(dir).join("src")));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let target = out.join("policies-target");
    let mut cmd = cargo::wasm_build_command(&policies.join("Cargo.toml"), &target);
    cmd.arg("--workspace");
    let status = cmd.status().expect("run cargo for the policies");
    if !status.success() {
        panic!(
            "building the policy plugins failed (is the wasm32 target installed? \
             `rustup target add {}`, or run scripts/setup.sh)",
            cargo::WASM_TARGET
        );
    }
    let mut code =
        String::from("/// Policies built from `policies/`: (name, description, wasm bytes).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &str, &[u8])] = &[\n");
    for dir in members {
        let manifest = std::fs::read_to_string(policies.join(&dir).join("Cargo.toml")).unwrap();
        let package = cargo::manifest_field(&manifest, "name").expect("package name");
        let description = cargo::manifest_field(&manifest, "description").unwrap_or_default();
        let wasm = cargo::artifact_path(&target, &package);
        assert!(wasm.exists(), "{} missing after the build", wasm.display());
        // Relative to OUT_DIR, so the target directory can be moved.
        let rel = wasm.strip_prefix(&out).expect("under OUT_DIR");
        code.push_str(&format!(
            "    ({dir:?}, {description:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/\", {:?}))),\n",
            rel.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("embedded_policies.rs"), code).unwrap();
}

/// The `.rs` files directly in `dir`.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect()
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
