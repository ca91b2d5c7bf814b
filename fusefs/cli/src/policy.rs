//! `kplugfs policy`: the policy plugins built into this binary (`kplug-catalog`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
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
        }
    }
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
