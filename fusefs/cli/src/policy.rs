//! `kplugfs policy`: the policy plugins built into this binary, and writing new ones
//! (`kplug-catalog`: `template` writes a crate, `build_policy_showing_progress` builds one).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kplug_engine::{EngineConfig, PluginEngine};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Print each built-in policy's name, roles and description.
    List,
    /// Write a built-in policy's .wasm to DEST (a file, or a directory that gets NAME.wasm),
    /// ready to copy into MOUNT/.kplug/plugins/.
    ///
    /// Example: kplugfs policy export lru /tmp && cp /tmp/lru.wasm /mnt/data/.kplug/plugins/
    Export {
        /// Policy name (see `kplugfs policy list`).
        name: String,
        /// Destination file or directory.
        dest: PathBuf,
    },
    /// Write a new policy crate into ./NAME: an LRU using the Rust SDK (vendored into
    /// NAME/kplug-sdk, so it builds offline), ready for `kplugfs policy build NAME`.
    ///
    /// Example: kplugfs policy new mylru && kplugfs policy build mylru
    New {
        /// The policy's name: a crate name (letters, digits, - and _, starting with a letter).
        name: String,
        /// `rust` (a crate with the SDK) or `c` (NAME/NAME.c and the C SDK's kplug.h).
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
    },
    /// Build the policy in DIR to DIR/NAME.wasm and print that path (one line).
    ///
    /// A crate (DIR/Cargo.toml): `cargo build --release --target wasm32-unknown-unknown`
    /// (progress on stderr), installing the target with rustup if it is missing; target
    /// directory $CARGO_TARGET_DIR, else DIR/target. A C policy (one DIR/NAME.c, no
    /// Cargo.toml): clang to wasm32 with DIR on the include path (for kplug.h).
    Build {
        /// The crate's directory (holding its Cargo.toml).
        dir: PathBuf,
    },
}

impl PolicyCommand {
    /// Run it.
    pub fn run(self) -> Result<()> {
        match self {
            PolicyCommand::List => list(&mut std::io::stdout().lock()),
            PolicyCommand::Export { name, dest } => {
                println!("{}", kplug_catalog::export(&name, &dest)?.display());
                Ok(())
            }
            PolicyCommand::New { name, lang } => {
                let (dir, what) = match lang {
                    Lang::Rust => (
                        kplug_catalog::template::new_policy(Path::new("."), &name)?,
                        "policy crate",
                    ),
                    Lang::C => (
                        kplug_catalog::template::new_c_policy(Path::new("."), &name)?,
                        "C policy",
                    ),
                };
                eprintln!(
                    "wrote the {what} {} (an LRU to start from); build it with: \
                     kplugfs policy build {name}",
                    dir.display()
                );
                Ok(())
            }
            PolicyCommand::Build { dir } => {
                println!("{}", build(&dir)?.display());
                Ok(())
            }
        }
    }
}

/// The language of `kplugfs policy new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate using the SDK.
    Rust,
    /// C with kplug.h.
    C,
}

/// `kplugfs policy build DIR`: the path of DIR/NAME.wasm once built.
fn build(dir: &Path) -> Result<PathBuf> {
    if !dir.join("Cargo.toml").is_file() {
        let sources: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "c") && p.is_file())
            .collect();
        match sources.as_slice() {
            [source] => return build_c(dir, source),
            [] => bail!(
                "{} is not a policy (no Cargo.toml and no .c file; `kplugfs policy new NAME` \
                 writes one)",
                dir.display()
            ),
            _ => bail!(
                "{} has {} .c files: `kplugfs policy build` compiles a C policy of one file \
                 (use clang for more, see docs/writing-policies.md)",
                dir.display(),
                sources.len()
            ),
        }
    }
    let name = kplug_catalog::package_name(dir)?;
    kplug_catalog::ensure_wasm_target(dir).map_err(anyhow::Error::msg)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let artifact = kplug_catalog::build_policy_showing_progress(dir, &target)?;
    let out = dir.join(format!("{name}.wasm"));
    std::fs::copy(&artifact, &out)
        .with_context(|| format!("copying {} to {}", artifact.display(), out.display()))?;
    Ok(out)
}

/// Name, roles and description of every built-in policy, as a table.
fn list(out: &mut impl Write) -> Result<()> {
    let engine = PluginEngine::new(EngineConfig::default())?;
    let rows: Vec<(String, String, String)> = kplug_catalog::all()
        .into_iter()
        .map(|e| {
            let roles = kplug_catalog::roles(&engine, e.name, e.wasm)
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

/// A C policy: `clang` on DIR/NAME.c with DIR on the include path, to DIR/NAME.wasm.
fn build_c(dir: &Path, source: &Path) -> Result<PathBuf> {
    let stem = source.file_stem().unwrap_or_default().to_string_lossy();
    let out = dir.join(format!("{stem}.wasm"));
    eprintln!("building {} with clang", source.display());
    match kplug_catalog::build_c_policy(source, dir, &out) {
        Ok(out) => Ok(out),
        // clang's diagnostics in full, then the one-line error.
        Err(kplug_catalog::CBuildError::Failed {
            status,
            stderr,
            hint,
        }) => {
            eprint!("{stderr}");
            bail!(
                "clang failed ({status}): its errors are above{}",
                hint.replace('\n', " ")
            )
        }
        Err(e) => Err(e.into()),
    }
}
