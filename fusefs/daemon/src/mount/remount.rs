//! `mount -o remount,ro|rw MOUNTPOINT` of a live kplugfs mount.
//!
//! mount(8) does not remount a `fuse.kplugfs` filesystem itself: it runs the helper
//! (`mount.fuse.kplugfs SRC DIR -o remount,ro,...`) with the mount's current options merged
//! with the new ones, so the helper must do it, and must not start a second daemon. The
//! change is the kernel's: one `mount(2)` with `MS_REMOUNT` and the generic flags the
//! options name. The kernel's FUSE code accepts a read-only switch of the superblock without
//! asking the daemon (it syncs the filesystem and flips the flag), and from then on the VFS
//! refuses every change with EROFS before a request reaches the daemon (the `.kplug`
//! control files included: they live in the same superblock); `remount,rw` makes it
//! writable again. Switching to read-only fails with EBUSY while a file is open for
//! writing, as on any filesystem, and briefly after a removed file's last close (see
//! [`BUSY_RETRY`]): that case is retried.
//!
//! The daemon keeps no read-only state of its own (a `ro` mount is read-only by the same
//! kernel flag), so there is nothing to tell it. The kplugfs-specific options
//! (`cache_size=`, `plugin=`, ...) cannot change on a live mount; on a remount they are the
//! ones mount(8) repeats from fstab and are ignored.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use nix::mount::MsFlags;

use super::check::kplugfs_mount_at;

/// How long a read-only switch is retried while the kernel says the filesystem is busy.
/// The kernel refuses it while a removed file's inode is still alive, and with FUSE that
/// outlives the last `close()` by the daemon's answer to the (asynchronous) RELEASE: a file
/// closed and removed just before `remount,ro` makes it busy for about a request's round
/// trip. A file really open for writing stays busy, and costs this long before the error.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// Run `op` (a remount or an unmount) again while the kernel answers EBUSY, for up to
/// [`BUSY_RETRY`], pausing 5 ms and doubling to 100 ms; its last answer.
pub(super) fn retry_busy(mut op: impl FnMut() -> nix::Result<()>) -> nix::Result<()> {
    let deadline = Instant::now() + BUSY_RETRY;
    let mut pause = Duration::from_millis(5);
    loop {
        match op() {
            Err(nix::errno::Errno::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// The `mount(2)` flags of a remount with `options` (comma-separated, as mount(8) passes
/// them) over the mount's `current` per-mount options (as /proc/self/mountinfo shows
/// them): `ro`/`rw` and the per-mount flags (`nosuid`, `nodev`, `noexec`, the atime family,
/// `sync`, `dirsync`, `lazytime`); a flag not named keeps its current state (mount(8) passes
/// the fstab line's options, which need not repeat the `nosuid,nodev` every FUSE mount
/// starts with); the last of `ro`/`rw` wins. Any other option is ignored.
pub fn remount_flags(current: &str, options: &str) -> MsFlags {
    let mut flags = MsFlags::MS_REMOUNT;
    for opt in current.split(',').chain(options.split(',')).map(str::trim) {
        let (set, clear) = match opt {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            // One atime mode at a time; none named keeps the mount's own.
            "noatime" => (
                MsFlags::MS_NOATIME,
                MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME,
            ),
            "relatime" => (
                MsFlags::MS_RELATIME,
                MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME,
            ),
            "strictatime" => (
                MsFlags::MS_STRICTATIME,
                MsFlags::MS_NOATIME | MsFlags::MS_RELATIME,
            ),
            _ => (MsFlags::empty(), MsFlags::empty()),
        };
        flags = (flags - clear) | set;
    }
    flags
}

/// Remount the kplugfs mount at `mountpoint` with `options` (see [`remount_flags`]).
/// Errors are one line: not a kplugfs mount, not root, busy.
pub fn remount(mountpoint: &Path, options: &str) -> Result<()> {
    let (mp, m) = kplugfs_mount_at(mountpoint).map_err(|e| anyhow!("remount: {e}"))?;
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "remount: only root can remount {} (mount(8) runs this helper as root)",
            mp.display()
        );
    }
    let flags = remount_flags(&m.options, options);
    match retry_busy(|| nix::mount::mount(None::<&str>, &mp, None::<&str>, flags, None::<&str>)) {
        Ok(()) => {}
        Err(nix::errno::Errno::EBUSY) => bail!(
            "remount: {} is busy (a file is open for writing, or a removed file is still open)",
            mp.display()
        ),
        Err(e) => bail!("remount {}: {e}", mp.display()),
    }
    tracing::info!(mountpoint = %mp.display(), options, "remounted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remount_options_become_flags_and_the_last_of_ro_rw_wins() {
        let f = remount_flags("rw", "rw,nosuid,nodev,relatime,remount,user_id=0,ro");
        assert!(f.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY));
        assert!(f.contains(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME));
        assert!(!f.contains(MsFlags::MS_NOEXEC));
        let f = remount_flags(
            "ro,noexec",
            "ro,remount,rw,cache_size=1GiB,noatime,strictatime",
        );
        assert!(!f.contains(MsFlags::MS_RDONLY));
        assert!(f.contains(MsFlags::MS_STRICTATIME));
        assert!(!f.contains(MsFlags::MS_NOATIME));
        // Flags not named keep their current state.
        assert!(f.contains(MsFlags::MS_NOEXEC));
        assert_eq!(
            remount_flags("rw,nosuid,nodev", "remount,ro"),
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
        assert_eq!(remount_flags("rw", "remount"), MsFlags::MS_REMOUNT);
    }
}
