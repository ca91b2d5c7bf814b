//! Reading `MOUNT/.kplug/stats`: the document as the daemon wrote it, and the same parsed
//! into the daemon's typed schema, with a one-line error for anything that is not a kplugfs
//! mount with a control plane, or for a document the schema does not accept.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use kplug_daemon::monitor::schema::Stats;
use kplug_daemon::mount::{FS_SUBTYPE, mount_at};

/// One snapshot of `.kplug/stats`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The document, byte for byte (`--json` prints it).
    pub text: String,
    /// The document, parsed.
    pub stats: Stats,
}

/// Read and parse `MOUNT/.kplug/stats`.
pub fn read(mnt: &Path) -> Result<Snapshot> {
    let canon = std::fs::canonicalize(mnt).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("{} does not exist", mnt.display()),
        _ => anyhow!("{}: {e}", mnt.display()),
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
    parse(&path, text)
}

/// Parse the bytes of `path` (a `.kplug/stats`).
pub fn parse(path: &Path, text: Vec<u8>) -> Result<Snapshot> {
    let text = String::from_utf8(text)
        .map_err(|_| anyhow!("{} is not valid JSON: not UTF-8", path.display()))?;
    let stats = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} does not parse as kplugfs statistics ({e}): is the daemon of this mount a different kplugfs version?",
            path.display()
        )
    })?;
    Ok(Snapshot { text, stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_parses_and_keeps_its_text() {
        let stats = Stats {
            uptime_ms: 7,
            ..Default::default()
        };
        let text = kplug_daemon::monitor::schema::to_text(&stats);
        let snap = parse(Path::new("/m/.kplug/stats"), text.clone().into_bytes()).unwrap();
        assert_eq!(snap.text, text);
        assert_eq!(snap.stats, stats);
    }

    #[test]
    fn a_renamed_key_is_an_error_naming_the_file() {
        let text = kplug_daemon::monitor::schema::to_text(&Stats::default())
            .replace("\"hits\"", "\"cache_hits\"");
        let err = parse(Path::new("/m/.kplug/stats"), text.into_bytes()).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.starts_with("/m/.kplug/stats does not parse"), "{err}");
        assert!(err.contains("hits"), "{err}");
        let err = parse(Path::new("/m/.kplug/stats"), b"{".to_vec()).unwrap_err();
        assert!(err.to_string().contains("/m/.kplug/stats"), "{err}");
    }
}
