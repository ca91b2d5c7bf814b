//! Mounting and unmounting: argument checks, the background daemon, signals.
//!
//! `kplugfs mount` checks everything it can *before* touching the kernel (`check.rs`), so bad
//! input gets a one-line error and leaves nothing mounted: the backing directory must exist
//! and be a
//! directory, the mountpoint must exist, be a directory and not already be a mount, neither
//! may contain the other (a backing dir inside the mountpoint would make the filesystem
//! read itself), `/dev/fuse` must open, and an unprivileged user needs `fusermount3`.
//!
//! Without `--foreground` the command forks *before any thread exists*; the child mounts and
//! reports through a pipe (`ok` or the error), and the parent exits 0 only once the mount is
//! in place. The daemon blocks SIGINT/SIGTERM/SIGHUP in every thread and one thread waits
//! for them and unmounts, so a killed daemon never leaves a dead mount behind. A plain
//! `umount MOUNTPOINT` ends the FUSE session and the daemon exits by itself, and never
//! unmounts the directory again on its way out: another mount may already stand there
//! (`serve`).
//!
//! **Plugins at mount time.** Before the kernel sees the mount, the daemon loads the plugin
//! files kept in the mount's state directory (`control/persist.rs`) and then those of
//! `--plugin`/`--policy` (`plugins.rs`). A file refused is reported on `kplugfs mount`'s
//! stderr and in `.kplug/status`, and the mount comes up with the built-ins in its roles;
//! with `--strict-plugins` the mount fails instead.
//!
//! **mount(8).** `mount -t fuse.kplugfs SRC DIR -o OPTS`, an /etc/fstab line and a systemd
//! `.mount` unit run the helper `/sbin/mount.fuse.kplugfs` (a symlink to `kplugfs`, which
//! answers to that name: the CLI's `helper.rs`). Its mount is this one (it returns once the
//! mount is ready); its `-o remount,...` is `remount.rs`, which changes the live mount's
//! flags in the kernel and starts no daemon.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fuser::{Config, MountOption, SessionACL};

use crate::control::Control;
use crate::fuse::FuseAdapter;

mod build;
mod check;
mod plugins;
mod remount;

pub use build::{BridgeHints, Built, build_fs};
use check::which;
pub use check::{MountInfo, mount_at, mounts, validate};
pub use plugins::{PluginSource, PluginSpec};
pub use remount::{remount, remount_flags};

/// The filesystem type kplugfs mounts show in /proc/mounts (`fuse.kplugfs`).
pub const FS_SUBTYPE: &str = "kplugfs";

/// Everything `kplugfs mount` needs.
#[derive(Debug, Clone)]
pub struct MountArgs {
    /// What to expose: a directory, or an object store.
    pub source: MountSource,
    /// How an object-store source is reached and shown (ignored for a directory).
    pub store: StoreArgs,
    /// Mount read-only: the kernel refuses every change (EROFS); `mount -o remount,rw`
    /// lifts it (remount.rs).
    pub read_only: bool,
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
    /// Largest window of the built-in readahead, in blocks (also the most blocks one access
    /// may ask to prefetch, if more than the core's default budget).
    pub readahead_blocks: u64,
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
    /// The plugins' limits: per-call deadline, slow-call budget, memory (docs/plugin-abi.md).
    pub engine: kplug_engine::EngineConfig,
    /// Plugins to load before the mount appears (`--plugin`, `--policy`).
    pub plugins: Vec<PluginSpec>,
    /// Keep the plugin files dropped into the mount, and load them at the next mount.
    pub keep_plugins: bool,
    /// Where they are kept (default: [`crate::control::persist::default_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Fail the mount when a plugin cannot be loaded at mount time.
    pub strict_plugins: bool,
    /// Serve `.kplug/metrics` on `http://ADDR/metrics`.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// What a mount exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A backing directory (the passthrough).
    Dir(PathBuf),
    /// An object store: `s3://BUCKET[/PREFIX]`, `gs://...`, `az://...`.
    Store(String),
}

impl MountSource {
    /// A directory path, or a store URL (`s3://`, `gs://`, `az://`).
    pub fn parse(arg: &std::ffi::OsStr) -> MountSource {
        match arg.to_str() {
            Some(s) if kplug_store::Location::is_store(s) => MountSource::Store(s.to_string()),
            _ => MountSource::Dir(arg.into()),
        }
    }

    /// As shown in `/proc/mounts` and logs.
    pub fn display(&self) -> String {
        match self {
            MountSource::Dir(p) => p.display().to_string(),
            MountSource::Store(u) => u.clone(),
        }
    }
}

/// The object-store side of a mount: the client and how objects are shown.
#[derive(Debug, Clone, Default)]
pub struct StoreArgs {
    /// Endpoint, region, profile, timeouts.
    pub options: kplug_store::StoreOptions,
    /// Owner of every file (default: the mounting user).
    pub uid: Option<u32>,
    /// Group of every file (default: the mounting user's group).
    pub gid: Option<u32>,
    /// Permission bits of files.
    pub file_mode: u16,
    /// Permission bits of directories.
    pub dir_mode: u16,
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

fn fuse_config(source: &MountSource, args: &MountArgs) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(source.display()),
        MountOption::DefaultPermissions,
    ];
    if args.read_only {
        config.mount_options.push(MountOption::RO);
    }
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

/// Load the mount-time plugins (kept, then chosen). Returns the warnings to report, or the
/// error that stops a `--strict-plugins` mount.
fn load_plugins(
    control: Option<&Arc<Control>>,
    args: &MountArgs,
    mountpoint: &Path,
) -> Result<Vec<String>, String> {
    let Some(control) = control else {
        if !args.plugins.is_empty() {
            return Err("--plugin and --policy need the block cache (not --cache-size 0)".into());
        }
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    let state = if args.keep_plugins {
        let dir = args
            .state_dir
            .clone()
            .unwrap_or_else(|| crate::control::persist::default_dir(mountpoint));
        match crate::control::persist::StateDir::open(&dir) {
            Ok(s) => Some(s),
            Err(e) => {
                warnings.push(format!(
                    "plugins dropped into the mount will not be kept: cannot create {}: {e}",
                    dir.display()
                ));
                None
            }
        }
    } else {
        None
    };
    let mut failures = Vec::new();
    let mut chosen = Vec::new();
    for spec in &args.plugins {
        match spec.files() {
            Ok(files) => chosen.extend(files),
            Err(e) => failures.push(e),
        }
    }
    failures.extend(control.load_at_mount(state, chosen));
    if args.strict_plugins && !failures.is_empty() {
        return Err(format!(
            "--strict-plugins: not mounting: {}",
            failures.join("; ")
        ));
    }
    warnings.extend(
        failures
            .into_iter()
            .map(|f| format!("{f} (the mount serves with the built-ins in its roles)")),
    );
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(warnings)
}

/// Bind and start the `--metrics-addr` endpoint, if asked for.
fn start_metrics(control: Option<&Arc<Control>>, args: &MountArgs) -> Result<(), String> {
    let Some(addr) = args.metrics_addr else {
        return Ok(());
    };
    let Some(control) = control else {
        return Err("--metrics-addr needs the block cache (not --cache-size 0)".into());
    };
    let server = crate::monitor::serve::MetricsServer::bind(addr)?;
    let control = Arc::downgrade(control);
    server
        .spawn(move || control.upgrade().map(|c| c.stats()))
        .map_err(|e| format!("--metrics-addr: cannot start its thread: {e}"))?;
    tracing::info!(%addr, "metrics endpoint: http://{addr}/metrics");
    Ok(())
}

/// Mount and serve until unmounted. Calls `ready` once the mount is in place, with the
/// warnings to show.
fn serve(
    args: &MountArgs,
    source: &MountSource,
    mountpoint: &Path,
    ready: impl FnOnce(Result<Vec<String>, String>),
) -> Result<()> {
    let sigs = block_signals();
    // Objects created through the mount get exactly the mode the caller asked for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let built = match build_fs(source, args) {
        Ok(b) => b,
        Err(e) => {
            ready(Err(crate::error::report(&e)));
            return Err(e);
        }
    };
    // The control plane lives as long as this function serves (the history thread holds
    // only a weak reference to it).
    let control = built.control;
    let warnings = match load_plugins(control.as_ref(), args, mountpoint) {
        Ok(w) => w,
        Err(e) => {
            ready(Err(e.clone()));
            bail!(e);
        }
    };
    start_history(control.as_ref(), args, mountpoint);
    if let Err(e) = start_metrics(control.as_ref(), args) {
        ready(Err(e.clone()));
        bail!(e);
    }
    let adapter = FuseAdapter::new(built.fs);
    let pages = adapter.page_slot();
    let session = match fuser::Session::new(adapter, mountpoint, &fuse_config(source, args)) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("mounting {} failed: {e}", mountpoint.display());
            ready(Err(msg.clone()));
            bail!(msg);
        }
    };
    pages.connect(session.notifier())?;
    // The connection to the kernel: whether this mount still stands.
    let connection = std::os::fd::AsFd::as_fd(&session)
        .try_clone_to_owned()
        .context("duplicating /dev/fuse")?;
    let at = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("kplugfs-signals".into())
        .spawn(move || {
            if let Ok(sig) = sigs.wait() {
                if !still_mounted(&connection) {
                    tracing::info!("received {sig:?}, already unmounted");
                    return;
                }
                tracing::info!("received {sig:?}, unmounting");
                if let Err(e) = unmount_path(&at) {
                    tracing::warn!("unmount after {sig:?} failed: {e:#}");
                }
            }
        })?;
    tracing::info!(source = %source.display(), mountpoint = %mountpoint.display(), "mounted");
    ready(Ok(warnings));
    // This daemon never unmounts by path once the kernel has ended its session. fuser 0.18
    // would, when its handle of the mount drops: it reads the connection's POLLERR as "still
    // mounted" (fixed upstream in cberner/fuser#703, not released), so if another filesystem
    // was mounted on the same directory meanwhile (`umount` then `mount` while this daemon
    // was still exiting) that one would be unmounted. `spawn` moves the handle out of the
    // session into the `BackgroundSession`; the loop's thread is joined through its `guard`
    // (swapped for one that is done) and the rest is forgotten: the process exits right
    // after. Unmounting on a signal is `unmount_path`, only while the connection stands.
    let mut background = session.spawn().context("starting the FUSE session")?;
    let done = std::thread::spawn(|| Ok(()));
    let ended = std::mem::replace(&mut background.guard, done)
        .join()
        .map_err(|_| anyhow::anyhow!("the FUSE session's thread panicked"))?;
    std::mem::forget(background);
    match ended {
        Ok(()) => {}
        // The kernel ends the session with ENODEV when the filesystem is unmounted.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
        Err(e) => return Err(e).context("FUSE session"),
    }
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted, exiting");
    Ok(())
}

/// Whether the mount of the FUSE connection `fd` still stands: a poll asking for no event
/// reports POLLERR once the kernel has ended the connection (unmounted or aborted), as
/// libfuse's `fuse_kern_unmount` checks before unmounting.
fn still_mounted(fd: &impl std::os::fd::AsFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::empty())];
        match poll(&mut p, PollTimeout::ZERO) {
            Ok(0) => return true,
            Ok(_) => {
                return !p[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLERR));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            // Cannot tell: unmount, as before this check.
            Err(_) => return true,
        }
    }
}

/// `kplugfs mount`: validate, then serve in the foreground or in a background daemon.
pub fn mount(args: &MountArgs, init_logging: impl FnOnce(Option<&Path>)) -> Result<()> {
    let (source, mountpoint) = validate(args)?;
    if args.foreground {
        init_logging(args.log_file.as_deref());
        return serve(args, &source, &mountpoint, |r| {
            for w in r.unwrap_or_default() {
                eprintln!("kplugfs: warning: {w}");
            }
        });
    }
    let (rfd, wfd) = nix::unistd::pipe().context("pipe")?;
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(wfd);
            let mut r = std::fs::File::from(rfd);
            let mut msg = String::new();
            let _ = r.read_to_string(&mut msg);
            match msg.strip_prefix("ok") {
                Some(warnings) => {
                    for w in warnings.lines().filter(|l| !l.is_empty()) {
                        eprintln!("kplugfs: warning: {w}");
                    }
                    Ok(())
                }
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
            let result = serve(args, &source, &mountpoint, |r| {
                if let Some(mut w) = w.take() {
                    let _ = match r {
                        Ok(warnings) => {
                            let lines: Vec<String> =
                                warnings.iter().map(|w| w.replace('\n', " ")).collect();
                            w.write_all(format!("ok\n{}", lines.join("\n")).as_bytes())
                        }
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
    let (mp, _) = check::kplugfs_mount_at(mountpoint)?;
    unmount_path(&mp)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount_at(&mp)?.is_some_and(|m| m.fstype == format!("fuse.{FS_SUBTYPE}")) {
        if Instant::now() > deadline {
            bail!("{} is still mounted 10 s after umount", mp.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Unmounts whatever is mounted on `mp` (root: umount(2); otherwise `fusermount3 -u`).
fn unmount_path(mp: &Path) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        // Busy is retried for a moment, as for a remount: a file closed just before keeps
        // the mount busy until the daemon has answered its (asynchronous) RELEASE.
        match remount::retry_busy(|| nix::mount::umount2(mp, nix::mount::MntFlags::empty())) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => bail!(
                "{} is busy (files open or a process inside it)",
                mp.display()
            ),
            Err(e) => bail!("umount {}: {e}", mp.display()),
        }
    } else {
        let prog = if which("fusermount3").is_some() {
            "fusermount3"
        } else {
            "fusermount"
        };
        let st = std::process::Command::new(prog)
            .arg("-u")
            .arg(mp)
            .status()
            .with_context(|| format!("running {prog}"))?;
        if !st.success() {
            bail!("{prog} -u {} failed", mp.display());
        }
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
}
