//! Building a policy written in C (against the C SDK, `plugin-sdk/c/kplug.h`) to a `.wasm`
//! module with clang: what the tests of the C SDK run, and what a user's build would.
//!
//! The command is the one `kplug.h` documents: `clang --target=wasm32-unknown-unknown -O2
//! -ffreestanding -nostdlib -Wl,--no-entry`, warnings as errors. There is no libc or WASI
//! for a plugin, so the source is freestanding C; `wasm-ld` (from lld) links it, exporting
//! the functions `kplug.h` marks `export_name` and importing only what the plugin calls.
//! `scripts/setup.sh` installs clang and lld.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Building a C policy failed.
#[derive(Debug, thiserror::Error)]
pub enum CBuildError {
    /// clang could not be run (not installed).
    #[error("running clang: {0} (install clang and lld, e.g. scripts/setup.sh)")]
    NoClang(std::io::Error),
    /// clang ran and failed.
    #[error("clang failed ({status}):\n{stderr}{hint}")]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its diagnostics.
        stderr: String,
        /// A hint when the linker is what is missing.
        hint: &'static str,
    },
}

impl CBuildError {
    /// Whether the toolchain (clang, or lld's wasm-ld) is missing, rather than the source
    /// being wrong.
    pub fn toolchain_missing(&self) -> bool {
        match self {
            CBuildError::NoClang(_) => true,
            CBuildError::Failed { hint, .. } => !hint.is_empty(),
        }
    }
}

/// The clang command building `source` (with `include_dir` holding `kplug.h`) to `out`.
pub fn clang_command(source: &Path, include_dir: &Path, out: &Path) -> Command {
    let clang = std::env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    let mut cmd = Command::new(clang);
    cmd.args([
        "--target=wasm32-unknown-unknown",
        "-O2",
        "-ffreestanding",
        "-nostdlib",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wl,--no-entry",
    ])
    .arg("-I")
    .arg(include_dir)
    .arg("-o")
    .arg(out)
    .arg(source);
    cmd
}

/// Builds the C policy `source` to the module `out` (with `include_dir` holding `kplug.h`,
/// normally `plugin-sdk/c`) and returns `out`.
pub fn build_c_policy(
    source: &Path,
    include_dir: &Path,
    out: &Path,
) -> Result<PathBuf, CBuildError> {
    let res = clang_command(source, include_dir, out)
        .output()
        .map_err(CBuildError::NoClang)?;
    if !res.status.success() {
        let stderr = String::from_utf8_lossy(&res.stderr).into_owned();
        let hint = if stderr.contains("wasm-ld") && stderr.contains("exist") {
            "\n(wasm-ld is missing: install lld)"
        } else {
            ""
        };
        return Err(CBuildError::Failed {
            status: res.status,
            stderr,
            hint,
        });
    }
    Ok(out.to_path_buf())
}
