//! `kplugfs stats MOUNT --probe NAME [--watch]`: the report of a probe plugin (ABI 1.5), read
//! from `MOUNT/.kplug/probes/NAME` as its report hook writes it; with `--watch`, again every
//! interval (the screen cleared between two), until Ctrl-C or until the probe or the mount
//! goes away.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

/// The report of probe `name` of the mount at `mnt`.
pub fn read(mnt: &Path, name: &str) -> Result<String> {
    let dir = mnt.join(".kplug/probes");
    if !dir.is_dir() {
        bail!(
            "{} is not a kplugfs mount with probes (no {})",
            mnt.display(),
            dir.display()
        );
    }
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut loaded: Vec<String> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            loaded.sort();
            let loaded = if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            };
            bail!(
                "no probe {name} in {} (loaded: {loaded}); drop NAME.wasm into .kplug/plugins/ to load one",
                mnt.display()
            )
        }
        Err(e) => bail!(
            "probe {name} gave no report ({e}): it was disabled, see {}",
            mnt.join(".kplug/status").display()
        ),
    }
}

/// Print the report once, or every `interval` with `watch`.
pub fn run(mnt: &Path, name: &str, watch: Option<Duration>) -> Result<()> {
    let Some(interval) = watch else {
        let text = read(mnt, name)?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.is_empty() && !text.ends_with('\n') {
            writeln!(out)?;
        }
        return Ok(());
    };
    loop {
        let text = read(mnt, name)?;
        let mut out = std::io::stdout().lock();
        // Clear the screen, then the report and when it was read.
        write!(out, "\x1b[2J\x1b[H")?;
        writeln!(
            out,
            "{} .kplug/probes/{name} (every {}; Ctrl-C ends)\n",
            mnt.display(),
            humantime::format_duration(interval)
        )?;
        out.write_all(text.as_bytes())?;
        out.flush()?;
        drop(out);
        std::thread::sleep(interval);
    }
}
