//! `kplugfs trace record` and `kplugfs trace stop`: commands to a mount's recorder through
//! `MOUNT/.kplug/trace` (the recorder itself is the daemon's, `monitor/recorder.rs`).
//!
//! Design: a command is one write to the control file, and the daemon answers at `close()`,
//! so the file is closed by hand to see that answer; what was recorded is read back from the
//! same file.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Write one command to `MOUNT/.kplug/trace`; the daemon answers at close().
fn trace_control(mount: &Path, command: &str) -> Result<()> {
    let ctl = mount.join(".kplug/trace");
    if !ctl.exists() {
        anyhow::bail!(
            "{} is not a kplugfs mount with a block cache (no {})",
            mount.display(),
            ctl.display()
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&ctl)
        .with_context(|| format!("opening {}", ctl.display()))?;
    f.write_all(command.as_bytes())
        .with_context(|| format!("writing {}", ctl.display()))?;
    // The daemon acts on close(): its error is the command's.
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` was taken out of the `File`, which no longer closes it.
    if unsafe { libc::close(fd) } != 0 {
        let e = io::Error::last_os_error();
        anyhow::bail!("{command:?} refused by the mount ({e}); the daemon's log says why");
    }
    Ok(())
}

fn recorder_state(mount: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(mount.join(".kplug/trace")).context("reading .kplug/trace")?;
    Ok(serde_json::from_slice(&text)?)
}

/// `kplugfs trace record MOUNT --out OUT`.
pub fn record(mount: &Path, out: &Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir =
        std::fs::canonicalize(parent).with_context(|| format!("directory of {}", out.display()))?;
    let file = out
        .file_name()
        .with_context(|| format!("{} names no file", out.display()))?;
    let abs = dir.join(file);
    if abs.starts_with(std::fs::canonicalize(mount).unwrap_or_else(|_| mount.to_path_buf())) {
        anyhow::bail!("the trace must not be written inside the mount it records");
    }
    trace_control(mount, &format!("start {}\n", abs.display()))?;
    eprintln!(
        "recording {} into {} (stop with: kplugfs trace stop {})",
        mount.display(),
        abs.display(),
        mount.display()
    );
    Ok(())
}

/// `kplugfs trace stop MOUNT`.
pub fn stop(mount: &Path) -> Result<()> {
    if recorder_state(mount).is_ok_and(|st| st["recording"] == false) {
        bail!("no recording in progress on {}", mount.display());
    }
    trace_control(mount, "stop\n")?;
    let st = recorder_state(mount)?;
    println!(
        "recorded {} accesses into {} ({} dropped)",
        st["records"],
        st["file"].as_str().unwrap_or("?"),
        st["dropped"]
    );
    Ok(())
}
