//! Mounting and unmounting: argument checks, the background daemon, signals.
//!
//! `kplugfs mount` checks everything it can *before* touching the kernel, so bad input gets
//! a one-line error and leaves nothing mounted: the backing directory must exist and be a
//! directory, the mountpoint must exist, be a directory and not already be a mount, neither
//! may contain the other (a backing dir inside the mountpoint would make the filesystem
//! read itself), `/dev/fuse` must open, and an unprivileged user needs `fusermount3`.
//!
//! Without `--foreground` the command forks *before any thread exists*; the child mounts and
//! reports through a pipe (`ok` or the error), and the parent exits 0 only once the mount is
//! in place. The daemon blocks SIGINT/SIGTERM/SIGHUP in every thread and one thread waits
//! for them and unmounts, so a killed daemon never leaves a dead mount behind. A plain
//! `umount MOUNTPOINT` ends the FUSE session and the daemon exits by itself.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fuser::{Config, MountOption, SessionACL};

use kplug_engine::EngineConfig;

use crate::control::{self, Control, Owner};
use crate::data::blockcache::{BlockCache, BlockCacheConfig};
use crate::data::{Backend, DataCache, Passthrough};
use crate::fs::{FsConfig, KplugFs, LocalFs};
use crate::fuse::FuseAdapter;

/// The filesystem type kplugfs mounts show in /proc/mounts (`fuse.kplugfs`).
pub const FS_SUBTYPE: &str = "kplugfs";

/// Everything `kplugfs mount` needs.
#[derive(Debug, Clone)]
pub struct MountArgs {
    /// The directory to expose.
    pub backing: PathBuf,
    /// Where to mount it.
    pub mountpoint: PathBuf,
    /// Stay attached instead of daemonizing.
    pub foreground: bool,
    /// Emulated delay per backend data read.
    pub backend_latency: Duration,
    /// FUSE worker threads.
    pub threads: usize,
    /// Kernel attribute/entry cache time.
    pub attr_timeout: Duration,
    /// Let other users use the mount (default for root).
    pub allow_other: bool,
    /// Where the daemon writes its log (background mode); stderr when `None` in foreground.
    pub log_file: Option<PathBuf>,
    /// Block cache capacity in bytes; 0 disables the block cache (pure passthrough, no
    /// `.kplug` control directory).
    pub cache_size: u64,
    /// Block cache block size in bytes (a power of two, at least 4 KiB).
    pub block_size: u64,
    /// Threads that run prefetch reads: the prefetch's concurrency against the backend.
    pub prefetch_threads: usize,
    /// Where prefetch hints go in the kernel: the bridge module, readahead(2), or nowhere.
    pub kernel_hints: kplug_bridge::Mode,
    /// Let the kernel keep file pages across opens while a file is unchanged.
    pub kernel_cache: bool,
    /// Time between two history snapshots; zero disables history.
    pub history_period: Duration,
    /// The history database (default: [`crate::monitor::history::default_path`]).
    pub history_db: Option<PathBuf>,
    /// How long history rows are kept.
    pub history_retention: Duration,
}

/// Parse a byte size: `4096`, `128K`, `128KiB`, `256M`, `256MiB`, `1G`, `1GiB` (powers of
/// two: K = 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (examples: 4096, 128KiB, 256MiB, 1GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "bad size unit {u:?} in {s:?} (use K, M, G, T: powers of 1024)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Forwards the block cache's prefetch ranges to the kernel bridge.
pub struct BridgeHints(pub kplug_bridge::HintSink);

impl crate::data::blockcache::HintSink for BridgeHints {
    fn hint(&self, fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: u64) {
        if let Err(e) = self.0.hint(fd, offset, len) {
            tracing::debug!("kernel hint failed: {e}");
        }
    }

    fn stats(&self) -> crate::data::blockcache::HintCounters {
        let s = self.0.stats();
        crate::data::blockcache::HintCounters {
            backend: self.0.backend().to_string(),
            forwarded: s.hints,
            bytes: s.bytes_requested,
            errors: s.errors,
        }
    }
}

/// One entry of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount point (unescaped).
    pub mountpoint: PathBuf,
    /// Filesystem type (e.g. `fuse.kplugfs`).
    pub fstype: String,
    /// Mount source.
    pub source: String,
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
    let mountpoint = left.split(' ').nth(4)?;
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape(r.next()?).to_string_lossy().into_owned();
    Some(MountInfo {
        mountpoint: PathBuf::from(unescape(mountpoint)),
        fstype,
        source,
    })
}

/// The mount whose mount point is exactly `path`, if any (the last one: the visible one).
pub fn mount_at(path: &Path) -> Result<Option<MountInfo>> {
    Ok(mounts()?.into_iter().rev().find(|m| m.mountpoint == path))
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

/// Check the arguments of a mount; returns the canonical (backing, mountpoint).
pub fn validate(args: &MountArgs) -> Result<(PathBuf, PathBuf)> {
    let backing = canonical_dir(&args.backing, "backing directory")?;
    let mountpoint = canonical_dir(&args.mountpoint, "mountpoint")?;
    if mount_at(&mountpoint)?.is_some() {
        bail!(
            "mountpoint {} is already a mount point (umount it first)",
            mountpoint.display()
        );
    }
    if backing.starts_with(&mountpoint) {
        bail!(
            "backing directory {} is inside the mountpoint {}: the filesystem would read itself",
            backing.display(),
            mountpoint.display()
        );
    }
    if mountpoint.starts_with(&backing) {
        bail!(
            "mountpoint {} is inside the backing directory {}: the filesystem would read itself",
            mountpoint.display(),
            backing.display()
        );
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
    if !nix::unistd::geteuid().is_root()
        && nix::unistd::access(
            &backing,
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_err()
    {
        bail!(
            "permission denied: cannot read backing directory {}",
            backing.display()
        );
    }
    Ok((backing, mountpoint))
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// A mount's filesystem: the router over the passthrough, and its control plane (absent
/// with `--cache-size 0`).
pub struct Built {
    /// The filesystem the FUSE adapter serves.
    pub fs: Arc<KplugFs>,
    /// `.kplug/`, when the mount has a block cache.
    pub control: Option<Arc<Control>>,
}

/// Build the filesystem of a mount of `backing`.
pub fn build_fs(backing: &Path, args: &MountArgs) -> Result<Built> {
    let backend = Arc::new(Backend::new(args.backend_latency));
    let config = FsConfig {
        kernel_cache: args.kernel_cache,
        attr_ttl: args.attr_timeout,
    };
    let local = |data: Arc<dyn DataCache>| -> Result<Arc<LocalFs>> {
        Ok(Arc::new(
            LocalFs::new(backing, data, config.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
        ))
    };
    if args.cache_size == 0 {
        let main = local(Arc::new(Passthrough::new(backend)))?;
        return Ok(Built {
            fs: Arc::new(KplugFs::new(main, args.attr_timeout)),
            control: None,
        });
    }
    let hints: Option<Arc<dyn crate::data::blockcache::HintSink>> = match args.kernel_hints {
        kplug_bridge::Mode::Off => None,
        mode => {
            let sink = kplug_bridge::HintSink::new(mode)
                .with_context(|| format!("--kernel-hints {mode}"))?;
            tracing::info!(backend = ?sink.backend(), "kernel hints");
            Some(Arc::new(BridgeHints(sink)))
        }
    };
    let cache = BlockCache::new(
        backend,
        BlockCacheConfig {
            block_size: args.block_size,
            capacity_bytes: args.cache_size,
            prefetch_threads: args.prefetch_threads,
            ..Default::default()
        },
        hints,
    );
    let owner = Owner {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
    };
    let mut fs = KplugFs::new(local(cache.clone())?, args.attr_timeout);
    let control = control::mount(&mut fs, cache, owner, EngineConfig::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Built {
        fs: Arc::new(fs),
        control: Some(control),
    })
}

fn fuse_config(backing: &Path, args: &MountArgs) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(backing.display().to_string()),
        MountOption::DefaultPermissions,
    ];
    // The kernel takes the subtype as a mount option (so /proc/mounts says `fuse.kplugfs`);
    // fusermount3 takes it as its own option.
    config
        .mount_options
        .push(if nix::unistd::geteuid().is_root() {
            MountOption::CUSTOM(format!("subtype={FS_SUBTYPE}"))
        } else {
            MountOption::Subtype(FS_SUBTYPE.into())
        });
    if args.allow_other {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(args.threads.max(1));
    config.clone_fd = true;
    config
}

/// Block the termination signals in this thread (and every thread it spawns later).
fn block_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    let _ = set.thread_block();
    set
}

/// Start the history thread when the mount has a control plane and a history period.
/// Failing to start it is logged, never fatal.
fn start_history(control: Option<&Arc<Control>>, args: &MountArgs, mountpoint: &Path) {
    let Some(control) = control else { return };
    if args.history_period.is_zero() {
        return;
    }
    let config = crate::monitor::history::HistoryConfig {
        path: args
            .history_db
            .clone()
            .unwrap_or_else(|| crate::monitor::history::default_path(mountpoint)),
        period: args.history_period,
        retention: args.history_retention,
    };
    let state = Arc::new(crate::monitor::history::HistoryState::new(config));
    control.attach_history(state.clone());
    let control = Arc::downgrade(control);
    let source = move || control.upgrade().map(|c| c.stats());
    if let Err(e) = crate::monitor::history::spawn(source, state) {
        tracing::error!("history disabled: cannot start its thread: {e}");
    }
}

/// Mount and serve until unmounted. Calls `ready` once the mount is in place.
fn serve(
    args: &MountArgs,
    backing: &Path,
    mountpoint: &Path,
    ready: impl FnOnce(Result<(), String>),
) -> Result<()> {
    let sigs = block_signals();
    // Objects created through the mount get exactly the mode the caller asked for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let built = match build_fs(backing, args) {
        Ok(b) => b,
        Err(e) => {
            ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    // The control plane lives as long as this function serves (the history thread holds
    // only a weak reference to it).
    let control = built.control;
    start_history(control.as_ref(), args, mountpoint);
    let adapter = FuseAdapter::new(built.fs);
    let pages = adapter.page_slot();
    let mut session = match fuser::Session::new(adapter, mountpoint, &fuse_config(backing, args)) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("mounting {} failed: {e}", mountpoint.display());
            ready(Err(msg.clone()));
            bail!(msg);
        }
    };
    pages.connect(session.notifier())?;
    let mut unmounter = session.unmount_callable();
    std::thread::Builder::new()
        .name("kplugfs-signals".into())
        .spawn(move || {
            if let Ok(sig) = sigs.wait() {
                tracing::info!("received {sig:?}, unmounting");
                if let Err(e) = unmounter.unmount() {
                    tracing::warn!("unmount after {sig:?} failed: {e}");
                }
            }
        })?;
    tracing::info!(backing = %backing.display(), mountpoint = %mountpoint.display(), "mounted");
    ready(Ok(()));
    match session.run() {
        Ok(()) => {}
        // The kernel ends the session with ENODEV when the filesystem is unmounted.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
        Err(e) => return Err(e).context("FUSE session"),
    }
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted, exiting");
    Ok(())
}

/// `kplugfs mount`: validate, then serve in the foreground or in a background daemon.
pub fn mount(args: &MountArgs, init_logging: impl FnOnce(Option<&Path>)) -> Result<()> {
    let (backing, mountpoint) = validate(args)?;
    if args.foreground {
        init_logging(args.log_file.as_deref());
        return serve(args, &backing, &mountpoint, |_| {});
    }
    let (rfd, wfd) = nix::unistd::pipe().context("pipe")?;
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(wfd);
            let mut r = std::fs::File::from(rfd);
            let mut msg = String::new();
            let _ = r.read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if msg.is_empty() => {
                    bail!("the kplugfs daemon exited before the mount was ready")
                }
                None => bail!("{}", msg.trim_start_matches("err ").trim_end()),
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(rfd);
            let _ = nix::unistd::setsid();
            redirect_stdio();
            init_logging(args.log_file.as_deref());
            let mut w = Some(std::fs::File::from(wfd));
            let result = serve(args, &backing, &mountpoint, |r| {
                if let Some(mut w) = w.take() {
                    let _ = match r {
                        Ok(()) => w.write_all(b"ok"),
                        Err(e) => w.write_all(format!("err {e}").as_bytes()),
                    };
                }
            });
            if let Err(e) = &result {
                tracing::error!("{e:#}");
            }
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
    }
}

fn redirect_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// `kplugfs umount`: unmount a kplugfs mount and wait until it is gone.
pub fn umount(mountpoint: &Path) -> Result<()> {
    let mp = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let Some(m) = mount_at(&mp)? else {
        bail!("{} is not a mount point", mp.display());
    };
    if m.fstype != format!("fuse.{FS_SUBTYPE}") {
        bail!(
            "{} is a {} mount, not a kplugfs mount",
            mp.display(),
            m.fstype
        );
    }
    if nix::unistd::geteuid().is_root() {
        nix::mount::umount2(&mp, nix::mount::MntFlags::empty()).map_err(|e| match e {
            nix::errno::Errno::EBUSY => anyhow::anyhow!(
                "{} is busy (files open or a process inside it)",
                mp.display()
            ),
            e => anyhow::anyhow!("umount {}: {e}", mp.display()),
        })?;
    } else {
        let prog = if which("fusermount3").is_some() {
            "fusermount3"
        } else {
            "fusermount"
        };
        let st = std::process::Command::new(prog)
            .arg("-u")
            .arg(&mp)
            .status()
            .with_context(|| format!("running {prog}"))?;
        if !st.success() {
            bail!("{prog} -u {} failed", mp.display());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount_at(&mp)?.is_some_and(|m| m.fstype == format!("fuse.{FS_SUBTYPE}")) {
        if Instant::now() > deadline {
            bail!("{} is still mounted 10 s after umount", mp.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("128KiB"), Ok(128 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert!(parse_size("12XB").unwrap_err().contains("unit"));
        assert!(parse_size("lots").is_err());
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
    }

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
            backing: b.into(),
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
            kernel_hints: kplug_bridge::Mode::Off,
            kernel_cache: true,
            history_period: Duration::ZERO,
            history_db: None,
            history_retention: crate::monitor::history::DEFAULT_RETENTION,
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
