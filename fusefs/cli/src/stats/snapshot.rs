//! Reading `MOUNT/.kplug/stats`, with a one-line error for anything that is not a kplugfs
//! mount with a control plane.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kplug_daemon::mount::{FS_SUBTYPE, mount_at};
use serde_json::Value;

/// Read and parse `MOUNT/.kplug/stats`, with a one-line error for anything that is not a
/// kplugfs mount with a control plane.
pub fn read_stats(mnt: &Path) -> Result<Value> {
    let canon = std::fs::canonicalize(mnt).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{} does not exist", mnt.display()),
        _ => anyhow::anyhow!("{}: {e}", mnt.display()),
    })?;
    match mount_at(&canon)? {
        Some(m) if m.fstype == format!("fuse.{FS_SUBTYPE}") => {}
        _ => bail!(
            "{} is not a kplugfs mount (give the mount point of a kplugfs mount)",
            mnt.display()
        ),
    }
    let path = canon.join(".kplug/stats");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is a kplugfs mount without a block cache (--cache-size 0): it keeps no statistics",
            mnt.display()
        ),
        Err(e) => bail!("reading {}: {e}", path.display()),
    };
    serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
