//! `kplugfs policy new NAME`: a ready-to-build policy crate, written from a template.
//!
//! The crate must build wherever the user runs the command: outside any checkout of this
//! repository and without network access to anything but what cargo already has. So the
//! guest SDK travels inside the binary: the sources of `kplug-sdk` and `kplug-abi` are
//! embedded here (`include_str!`) and written *next to* the new crate, as a path dependency
//! (`NAME/kplug-sdk/`, with the ABI at `NAME/kplug-sdk/abi/`, the repository's own layout):
//! the policy builds against exactly the ABI of the kplugfs that wrote it. The manifests of
//! the vendored crates are the repository's with their `workspace = true` fields resolved
//! from the root manifest, and `NAME/Cargo.lock` is the one the `policies/` workspace builds
//! with (minus its own policies), so the one registry crate the SDK uses (`dlmalloc`) is
//! resolved to the version the project tests, from cargo's cache when it is there.
//!
//! The crate is its own workspace (`[workspace]` in its manifest), so it builds the same
//! inside another workspace's tree. Its `src/lib.rs` is a working LRU over the SDK's
//! `KeyList` with a native unit test: the smallest policy worth starting from.
//!
//! `kplugfs policy new NAME --lang c` writes a C policy instead ([`new_c_policy`]): `NAME.c`
//! (the LRU of `policies/c/lru.c`) beside `kplug.h` as this binary's ABI generates it.

use std::path::{Path, PathBuf};

/// A new policy crate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The name is not usable as a crate name.
    #[error("invalid policy name {name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The directory exists: nothing is overwritten.
    #[error("{} already exists: choose another name or remove it", .0.display())]
    Exists(PathBuf),
    /// Writing failed (what was written is removed again).
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The SDK's sources, as `(path under kplug-sdk/, contents)`.
const SDK_SOURCES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../../plugin-sdk/src/lib.rs")),
    (
        "src/collections.rs",
        include_str!("../../../plugin-sdk/src/collections.rs"),
    ),
    (
        "src/export.rs",
        include_str!("../../../plugin-sdk/src/export.rs"),
    ),
    (
        "src/governor.rs",
        include_str!("../../../plugin-sdk/src/governor.rs"),
    ),
    (
        "src/host.rs",
        include_str!("../../../plugin-sdk/src/host.rs"),
    ),
    (
        "src/transform.rs",
        include_str!("../../../plugin-sdk/src/transform.rs"),
    ),
    (
        "abi/src/lib.rs",
        include_str!("../../../plugin-sdk/abi/src/lib.rs"),
    ),
    (
        "abi/src/c.rs",
        include_str!("../../../plugin-sdk/abi/src/c.rs"),
    ),
    (
        "src/probe.rs",
        include_str!("../../../plugin-sdk/src/probe.rs"),
    ),
    (
        "abi/src/probe.rs",
        include_str!("../../../plugin-sdk/abi/src/probe.rs"),
    ),
];

const SDK_MANIFEST: &str = include_str!("../../../plugin-sdk/Cargo.toml");
const ABI_MANIFEST: &str = include_str!("../../../plugin-sdk/abi/Cargo.toml");
const ROOT_MANIFEST: &str = include_str!("../../../Cargo.toml");
const POLICIES_LOCK: &str = include_str!("../../../policies/Cargo.lock");

/// The module docs of the new crate's `src/lib.rs`; the code after them is the shipped SDK LRU
/// ([`LRU_RS`]), so a new policy starts from the one the golden tests check.
const LIB_RS_DOCS: &str =
    "//! NAME: a kplugfs cache policy plugin (eviction: least recently used), written by
//! `kplugfs policy new` from kplugfs's own `policies/lru`. Build it with `kplugfs policy build
//! DIR`, then drop the .wasm into a mount's `.kplug/plugins/` or try it in the simulator:
//! `kplugfs sim --trace TRACE --policy DIR/NAME.wasm,lru`.
//!
//! The hooks and what the host promises are in the SDK's docs (`cargo doc --open -p
//! kplug-sdk`) and kplugfs's docs/plugin-abi.md. Parameters: none (add them in
//! `Plugin::set_param`).
";

/// The shipped LRU written with the SDK (policies/lru), with its unit test.
const LRU_RS: &str = include_str!("../../../policies/lru/src/lib.rs");

/// `src/lib.rs` of the crate `name`: [`LIB_RS_DOCS`], then [`LRU_RS`] without its own module
/// docs.
fn lib_rs(name: &str) -> String {
    let code = LRU_RS
        .lines()
        .skip_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    format!("{}{code}\n", LIB_RS_DOCS.replace("NAME", name))
}

const README: &str = "# NAME

A kplugfs cache policy plugin (LRU eviction to start from), written by `kplugfs policy new NAME`.

    kplugfs policy build NAME        # -> NAME/NAME.wasm (prints the path)
    kplugfs sim --trace TRACE --policy NAME/NAME.wasm,lru --cache-size 0.01,0.1
    cp NAME/NAME.wasm /mnt/data/.kplug/plugins/

`cargo test` runs the unit tests natively. `kplug-sdk/` is the guest SDK of the kplugfs that
wrote this crate (ABI VERSION), vendored so the crate builds anywhere; the hooks, roles and limits
are in kplugfs's docs/plugin-abi.md and the SDK's docs (`cargo doc --open -p kplug-sdk`).
";

/// Checks `name` against cargo's rules for a package name (ASCII here), and refuses the
/// names of the vendored SDK crates.
pub fn validate_name(name: &str) -> Result<(), TemplateError> {
    let bad = |why| {
        Err(TemplateError::BadName {
            name: name.to_string(),
            why,
        })
    };
    let Some(first) = name.chars().next() else {
        return bad("it is empty");
    };
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad(
            "use only ASCII letters, digits, `-` and `_` (it names a directory and a crate)",
        );
    }
    if !first.is_ascii_alphabetic() {
        return bad("it must start with a letter");
    }
    const KEYWORDS: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
        "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
        "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
        "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    if KEYWORDS.contains(&name) {
        return bad("it is a Rust keyword");
    }
    const RESERVED: &[&str] = &[
        "alloc",
        "core",
        "std",
        "test",
        "proc_macro",
        "proc-macro",
        "build",
        "deps",
        "examples",
        "incremental",
        "target",
        "con",
        "prn",
        "aux",
        "nul",
        "com1",
        "lpt1",
    ];
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return bad("cargo reserves it");
    }
    let underscored = name.replace('-', "_");
    if underscored == "kplug_sdk" || underscored == "kplug_abi" {
        return bad("the SDK's crates are vendored under that name");
    }
    Ok(())
}

/// Writes the policy crate `NAME` into `parent/NAME` (which must not exist) and returns its
/// directory. On failure nothing of it is left behind.
pub fn new_policy(parent: &Path, name: &str) -> Result<PathBuf, TemplateError> {
    validate_name(name)?;
    write_dir(parent, name, files(name))
}

/// Writes the C policy `NAME` into `parent/NAME` (which must not exist): `NAME.c`, the LRU
/// of `policies/c/lru.c`, and `kplug.h`, the C SDK's header as this binary's ABI generates
/// it (`kplug_abi::c`). `kplugfs policy build` builds it with clang.
pub fn new_c_policy(parent: &Path, name: &str) -> Result<PathBuf, TemplateError> {
    validate_name(name)?;
    write_dir(parent, name, c_files(name))
}

/// The files of the C policy `name`, as `(path relative to its directory, contents)`.
pub fn c_files(name: &str) -> Vec<(String, String)> {
    let version = format!("{}.{}", kplug_abi::ABI_MAJOR, kplug_abi::ABI_MINOR);
    vec![
        (
            format!("{name}.c"),
            format!(
                "/* {name}.c: written by `kplugfs policy new {name} --lang c` from kplugfs's\n \
                 * policies/c/lru.c; build it with `kplugfs policy build {name}`. */\n\n{LRU_C}"
            ),
        ),
        ("kplug.h".to_string(), kplug_abi::c::CHeader.to_string()),
        (
            "README.md".to_string(),
            C_README.replace("NAME", name).replace("VERSION", &version),
        ),
        (".gitignore".to_string(), "/*.wasm\n".to_string()),
    ]
}

const LRU_C: &str = include_str!("../../../policies/c/lru.c");

const C_README: &str = "# NAME

A kplugfs cache policy plugin in C (LRU eviction to start from), written by
`kplugfs policy new NAME --lang c`.

    kplugfs policy build NAME        # clang -> NAME/NAME.wasm (prints the path)
    kplugfs sim --trace TRACE --policy NAME/NAME.wasm,lru --cache-size 0.01,0.1
    cp NAME/NAME.wasm /mnt/data/.kplug/plugins/

`kplug.h` is the C SDK of the kplugfs that wrote this directory (ABI VERSION): every import
and export with its signature. Freestanding C: no libc, memory from static data or above
`__heap_base`. Needs clang and lld (wasm-ld). The contract of each hook is kplugfs's
docs/plugin-abi.md.
";

fn write_dir(
    parent: &Path,
    name: &str,
    files: Vec<(String, String)>,
) -> Result<PathBuf, TemplateError> {
    let dir = parent.join(name);
    if let Err(source) = std::fs::create_dir(&dir) {
        return Err(if source.kind() == std::io::ErrorKind::AlreadyExists {
            TemplateError::Exists(dir)
        } else {
            TemplateError::Io { path: dir, source }
        });
    }
    let written = files.into_iter().try_for_each(|(rel, text)| {
        let path = dir.join(&rel);
        let parent = path.parent().expect("a file under the crate");
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| TemplateError::Io { path, source })
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Every file of the crate `name`, as `(path relative to it, contents)`.
pub fn files(name: &str) -> Vec<(String, String)> {
    let version = format!("{}.{}", kplug_abi::ABI_MAJOR, kplug_abi::ABI_MINOR);
    let mut v = vec![
        ("Cargo.toml".to_string(), crate_manifest(name)),
        ("Cargo.lock".to_string(), lockfile(name)),
        ("src/lib.rs".to_string(), lib_rs(name)),
        (
            "README.md".to_string(),
            README.replace("NAME", name).replace("VERSION", &version),
        ),
        (".gitignore".to_string(), "/target\n/*.wasm\n".to_string()),
        (
            "kplug-sdk/Cargo.toml".to_string(),
            vendored_manifest(SDK_MANIFEST),
        ),
        (
            "kplug-sdk/abi/Cargo.toml".to_string(),
            vendored_manifest(ABI_MANIFEST),
        ),
    ];
    for (rel, text) in SDK_SOURCES {
        v.push((format!("kplug-sdk/{rel}"), text.to_string()));
    }
    v
}

fn crate_manifest(name: &str) -> String {
    let edition = workspace_field("package", "edition");
    format!(
        r#"[package]
name = "{name}"
description = "A kplugfs cache policy plugin (written by `kplugfs policy new`)."
version = "0.1.0"
edition = "{edition}"
publish = false

[lib]
# cdylib: the .wasm module; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The guest SDK of the kplugfs that wrote this crate, vendored (kplug-sdk/): builds offline.
kplug-sdk = {{ path = "kplug-sdk", default-features = false, features = ["dlmalloc", "panic-handler"] }}

# A workspace of its own, wherever the directory is. The vendored SDK is left out of it, so
# cargo resolves only the features used (Cargo.lock covers them: nothing to download).
[workspace]
exclude = ["kplug-sdk"]

[profile.release]
# Hooks run millions of times per second: speed, and LTO so the SDK inlines into the exports.
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
debug = false
strip = true
"#
    )
}

/// A value of `[workspace.<table>]` in the root manifest: `key = VALUE` (VALUE as written).
fn workspace_field(table: &str, key: &str) -> String {
    let header = format!("[workspace.{table}]");
    let mut inside = false;
    for line in ROOT_MANIFEST.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside
            && let Some(rest) = line.strip_prefix(key)
            && let Some(v) = rest.trim_start().strip_prefix('=')
        {
            return v.trim().trim_matches('"').to_string();
        }
    }
    panic!("the root Cargo.toml has no {key} in [workspace.{table}]")
}

/// A vendored SDK crate's manifest: `field.workspace = true` becomes the root manifest's
/// value, `dep = { workspace = true, ... }` the root's spec for it (a path for the ABI).
fn vendored_manifest(manifest: &str) -> String {
    let mut out = String::new();
    for line in manifest.lines() {
        let t = line.trim();
        if let Some(field) = t.strip_suffix(".workspace = true") {
            out.push_str(&format!(
                "{field} = \"{}\"\n",
                workspace_field("package", field)
            ));
        } else if let Some((dep, spec)) = t.split_once(" = {")
            && spec.contains("workspace = true")
        {
            let extra: Vec<&str> = spec
                .trim_end_matches('}')
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "workspace = true")
                .collect();
            let base = if dep == "kplug-abi" {
                "{ path = \"abi\" }".to_string()
            } else {
                workspace_field("dependencies", dep)
            };
            let base = base.trim().trim_end_matches('}').trim_end();
            let mut spec = base.to_string();
            for e in extra {
                spec.push_str(", ");
                spec.push_str(e);
            }
            out.push_str(&format!("{dep} = {spec} }}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The packages of `policies/Cargo.lock` the SDK needs (the SDK and what it depends on, not
/// the shipped policies nor their own dependencies, such as `gunzip`'s `miniz_oxide`), plus
/// the new package, in cargo's order (by name): what cargo itself would write, so the first
/// build leaves it as it is.
fn lockfile(name: &str) -> String {
    let mut blocks = POLICIES_LOCK.split("\n[[package]]\n");
    let header = blocks.next().unwrap_or_default().trim_end();
    let all: Vec<&str> = blocks.map(str::trim_end).collect();
    let name_of = |b: &str| -> String {
        b.lines()
            .next()
            .and_then(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"').to_string())
            .unwrap_or_default()
    };
    // A dependency line is ` "NAME",` or ` "NAME VERSION",`.
    let deps_of = |b: &str| -> Vec<String> {
        b.split("dependencies = [")
            .nth(1)
            .map(|d| {
                d.lines()
                    .filter_map(|l| l.trim().strip_prefix('"'))
                    .map(|l| l.split(['"', ' ']).next().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut keep = vec!["kplug-sdk".to_string()];
    let mut i = 0;
    while i < keep.len() {
        if let Some(b) = all.iter().find(|b| name_of(b) == keep[i]) {
            for d in deps_of(b) {
                if !keep.contains(&d) {
                    keep.push(d);
                }
            }
        }
        i += 1;
    }
    let mut packages: Vec<String> = all
        .iter()
        .filter(|b| keep.contains(&name_of(b)))
        .map(|b| b.to_string())
        .collect();
    packages.push(format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\ndependencies = [\n \"kplug-sdk\",\n]"
    ));
    packages.sort_by(|a, b| a.lines().next().cmp(&b.lines().next()));
    let mut out = format!("{header}\n");
    for p in packages {
        out.push_str("\n[[package]]\n");
        out.push_str(&p);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo_rules() {
        for ok in ["demo", "my-lru", "lru_2", "A1"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "1lru",
            "-x",
            "_x",
            "a b",
            "a/b",
            "..",
            "café",
            "fn",
            "test",
            "std",
            "kplug-sdk",
            "kplug_abi",
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid policy name") && !e.contains('\n'),
                "{e}"
            );
        }
        validate_name(&"x".repeat(64)).unwrap();
        assert!(validate_name(&"x".repeat(65)).is_err());
    }

    /// Every source file of the SDK and the ABI is vendored, and the vendored manifests no
    /// longer point into a workspace.
    #[test]
    fn the_template_vendors_the_whole_sdk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut on_disk = Vec::new();
        for (dir, prefix) in [
            ("plugin-sdk/src", "src/"),
            ("plugin-sdk/abi/src", "abi/src/"),
        ] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let n = e.unwrap().file_name().into_string().unwrap();
                on_disk.push(format!("{prefix}{n}"));
            }
        }
        let mut vendored: Vec<String> = SDK_SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        on_disk.sort();
        vendored.sort();
        assert_eq!(vendored, on_disk, "add the new SDK file to SDK_SOURCES");
        for (rel, text) in files("demo") {
            if rel.ends_with("Cargo.toml") {
                assert!(
                    !text.contains(".workspace") && !text.contains("workspace = true"),
                    "{rel}:\n{text}"
                );
            }
        }
        let sdk = vendored_manifest(SDK_MANIFEST);
        assert!(sdk.contains("kplug-abi = { path = \"abi\" }"), "{sdk}");
        assert!(sdk.contains("dlmalloc = { version = "), "{sdk}");
        assert!(sdk.contains("optional = true }"), "{sdk}");
        let lock = lockfile("demo");
        assert!(lock.contains("name = \"dlmalloc\"") && !lock.contains("kplug-policy-"));
    }

    #[test]
    fn the_c_template_carries_the_generated_header() {
        let t = tempfile::tempdir().unwrap();
        let dir = new_c_policy(t.path(), "clru").unwrap();
        let h = std::fs::read_to_string(dir.join("kplug.h")).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-sdk/c/kplug.h");
        assert_eq!(h, std::fs::read_to_string(repo).unwrap());
        let c = std::fs::read_to_string(dir.join("clru.c")).unwrap();
        assert!(c.contains("#include \"kplug.h\"") && c.contains("kplug_evict_victim"));
        assert!(matches!(
            new_c_policy(t.path(), "clru"),
            Err(TemplateError::Exists(_))
        ));
    }

    #[test]
    fn refuses_an_existing_directory_and_leaves_it_alone() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("demo")).unwrap();
        std::fs::write(t.path().join("demo/keep"), "x").unwrap();
        let e = new_policy(t.path(), "demo").unwrap_err().to_string();
        assert!(
            e.ends_with("already exists: choose another name or remove it"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(t.path().join("demo")).unwrap().count(), 1);
        let dir = new_policy(t.path(), "other").unwrap();
        assert!(dir.join("kplug-sdk/abi/src/lib.rs").is_file());
        assert!(
            std::fs::read_to_string(dir.join("src/lib.rs"))
                .unwrap()
                .contains("export_plugin!")
        );
    }
}
