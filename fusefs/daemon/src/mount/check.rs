//! What `kplugfs mount` checks before touching the kernel (so bad input gets a one-line
//! error and leaves nothing mounted), and reading the mount table.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{MountArgs, MountSource};

/// One entry of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount point (unescaped).
    pub mountpoint: PathBuf,
    /// Filesystem type (e.g. `fuse.kplugfs`).
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// The per-mount options (`rw,nosuid,nodev,relatime`).
    pub options: String,
}

/// Decode the octal escapes (`\040`) of mountinfo fields.
fn unescape(s: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// The mounts of this process's namespace.
pub fn mounts() -> Result<Vec<MountInfo>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ').skip(4);
    let mountpoint = l.next()?;
    let options = l.next()?.to_string();
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape(r.next()?).to_string_lossy().into_owned();
    Some(MountInfo {
        mountpoint: PathBuf::from(unescape(mountpoint)),
        fstype,
        source,
        options,
    })
}

/// The mount whose mount point is exactly `path`, if any (the last one: the visible one).
pub fn mount_at(path: &Path) -> Result<Option<MountInfo>> {
    Ok(mounts()?.into_iter().rev().find(|m| m.mountpoint == path))
}

/// The kplugfs mount at `mountpoint` (canonicalized when it can be): its path and its
/// mount-table entry, or a one-line error saying it is no mount point or another
/// filesystem's (`kplugfs umount` and remount).
pub fn kplugfs_mount_at(mountpoint: &Path) -> Result<(PathBuf, MountInfo)> {
    let mp = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let Some(m) = mount_at(&mp)? else {
        bail!("{} is not a mount point", mp.display());
    };
    if m.fstype != format!("fuse.{}", super::FS_SUBTYPE) {
        bail!(
            "{} is a {} mount, not a kplugfs mount",
            mp.display(),
            m.fstype
        );
    }
    Ok((mp, m))
}

fn canonical_dir(path: &Path, what: &str) -> Result<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{what} {} does not exist", path.display()),
        _ => anyhow::anyhow!("{what} {}: {e}", path.display()),
    })?;
    if !meta.is_dir() {
        bail!("{what} {} is not a directory", path.display());
    }
    std::fs::canonicalize(path).with_context(|| format!("resolving {what} {}", path.display()))
}

/// Check the arguments of a mount; returns the source (a directory canonicalised) and the
/// canonical mountpoint.
pub fn validate(args: &MountArgs) -> Result<(MountSource, PathBuf)> {
    let source = match &args.source {
        MountSource::Dir(dir) => MountSource::Dir(canonical_dir(dir, "backing directory")?),
        MountSource::Store(url) => {
            kplug_store::Location::parse(url)?;
            MountSource::Store(url.clone())
        }
    };
    let mountpoint = canonical_dir(&args.mountpoint, "mountpoint")?;
    if mount_at(&mountpoint)?.is_some() {
        bail!(
            "mountpoint {} is already a mount point (umount it first)",
            mountpoint.display()
        );
    }
    if let MountSource::Dir(backing) = &source {
        check_backing(backing, &mountpoint)?;
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                bail!("/dev/fuse does not exist: load the fuse module (modprobe fuse)")
            }
            std::io::ErrorKind::PermissionDenied => bail!("no permission to open /dev/fuse: {e}"),
            _ => bail!("cannot open /dev/fuse: {e}"),
        }
    }
    if args.cache_size > 0 && (args.block_size < 4096 || !args.block_size.is_power_of_two()) {
        bail!(
            "--block-size must be a power of two of at least 4KiB (got {})",
            args.block_size
        );
    }
    if args.cache_size > 0 && args.cache_size < args.block_size {
        bail!(
            "--cache-size {} is smaller than one block ({} bytes)",
            args.cache_size,
            args.block_size
        );
    }
    if !args.history_period.is_zero() && args.history_retention.is_zero() {
        bail!(
            "--history-retention must be more than 0 (use --history-period 0 to turn history off)"
        );
    }
    if !nix::unistd::geteuid().is_root()
        && which("fusermount3").is_none()
        && which("fusermount").is_none()
    {
        bail!(
            "permission denied: mounting needs root, or fusermount3 (apt install fuse3) for a user mount"
        );
    }
    Ok((source, mountpoint))
}

/// A backing directory must not contain the mountpoint nor be inside it, and must be
/// readable.
fn check_backing(backing: &Path, mountpoint: &Path) -> Result<()> {
    if backing.starts_with(mountpoint) {
        bail!(
            "backing directory {} is inside the mountpoint {}: the filesystem would read itself",
            backing.display(),
            mountpoint.display()
        );
    }
    if mountpoint.starts_with(backing) {
        bail!(
            "mountpoint {} is inside the backing directory {}: the filesystem would read itself",
            mountpoint.display(),
            backing.display()
        );
    }
    if !nix::unistd::geteuid().is_root()
        && nix::unistd::access(
            backing,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_err()
    {
        bail!(
            "permission denied: cannot read backing directory {}",
            backing.display()
        );
    }
    Ok(())
}

pub(super) fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// A mount's filesystem: the router over the passthrough, and its control plane (absent
/// with `--cache-size 0`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::StoreArgs;
    use std::time::Duration;

    #[test]
    fn mountinfo_lines_parse_and_unescape() {
        let l = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - fuse.kplugfs /back\\040dir rw";
        let m = parse_mountinfo_line(l).unwrap();
        assert_eq!(m.mountpoint, PathBuf::from("/mnt/with space"));
        assert_eq!(m.fstype, "fuse.kplugfs");
        assert_eq!(m.source, "/back dir");
    }

    fn args(b: &Path, m: &Path) -> MountArgs {
        MountArgs {
            source: MountSource::Dir(b.into()),
            store: StoreArgs::default(),
            read_only: false,
            mountpoint: m.into(),
            foreground: true,
            backend_latency: Duration::ZERO,
            threads: 1,
            attr_timeout: Duration::from_secs(1),
            allow_other: false,
            log_file: None,
            cache_size: 256 << 20,
            block_size: 128 << 10,
            prefetch_threads: 2,
            readahead_blocks: 64,
            kernel_hints: kplug_bridge::Mode::Off,
            kernel_cache: true,
            history_period: Duration::ZERO,
            history_db: None,
            history_retention: crate::monitor::history::DEFAULT_RETENTION,
            engine: kplug_engine::EngineConfig::default(),
            plugins: Vec::new(),
            keep_plugins: false,
            state_dir: None,
            strict_plugins: false,
            metrics_addr: None,
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path().join("b");
        let m = t.path().join("m");
        let err = validate(&args(&b, &m)).unwrap_err().to_string();
        assert!(
            err.contains("backing directory") && err.contains("does not exist"),
            "{err}"
        );
        std::fs::create_dir(&b).unwrap();
        let err = validate(&args(&b, &m)).unwrap_err().to_string();
        assert!(
            err.contains("mountpoint") && err.contains("does not exist"),
            "{err}"
        );
        std::fs::write(&m, b"").unwrap();
        let err = validate(&args(&b, &m)).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_file(&m).unwrap();
        std::fs::create_dir(&m).unwrap();
        let inner = m.join("inner");
        std::fs::create_dir(&inner).unwrap();
        let err = validate(&args(&inner, &m)).unwrap_err().to_string();
        assert!(err.contains("inside the mountpoint"), "{err}");
        let err = validate(&args(t.path(), &m)).unwrap_err().to_string();
        assert!(err.contains("inside the backing directory"), "{err}");
        let err = validate(&args(&b, Path::new("/proc")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already a mount point"), "{err}");
    }
}
