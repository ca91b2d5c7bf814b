//! `kplugfs mount`: the mount's options, turned into the daemon's [`MountArgs`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use kplug_daemon::mount::{self, MountArgs, MountSource, PluginSpec, StoreArgs};
use kplug_store::StoreOptions;

use crate::parse_duration;

/// The arguments of `kplugfs mount`.
#[derive(Debug, clap::Args)]
pub struct MountCmd {
    /// What the mount exposes: a directory, or an object store as s3://BUCKET[/PREFIX]
    /// (gs://BUCKET[/PREFIX] and az://CONTAINER[/PREFIX] likewise), with credentials and
    /// endpoint from the AWS variables and ~/.aws files (see the object-store options).
    #[arg(value_name = "SOURCE")]
    backing_dir: std::ffi::OsString,
    /// An existing, empty-or-not directory to mount on (not already a mount point).
    mountpoint: PathBuf,
    /// Stay in the foreground (for tests, systemd and debugging); Ctrl-C unmounts.
    #[arg(short, long)]
    foreground: bool,
    /// Emulated delay added to every backend data read, e.g. `2ms`, to model a remote
    /// store in benchmarks. An emulation: it only sleeps.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    backend_latency: Duration,
    /// FUSE worker threads: a slow read of one file does not stall the others.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// How long the kernel caches names and attributes (changes made directly in the
    /// backing dir show through the mount after at most this long).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    attr_timeout: Duration,
    /// Only the mounting user may use the mount (default when root: everyone may, with
    /// normal permission checks).
    #[arg(long)]
    private: bool,
    /// Write the daemon's log here (default: discarded in background mode, stderr with
    /// --foreground).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Capacity of the user-space block cache (e.g. 256MiB, 1GiB). 0 turns the cache and
    /// the .kplug control directory off: a pure passthrough.
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size, default_value = "256MiB")]
    cache_size: u64,
    /// Block size of the cache: the unit of caching, eviction and prefetch decisions
    /// (a power of two, at least 4KiB). See docs/block-cache.md for the default.
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size, default_value = "128KiB")]
    block_size: u64,
    /// Threads reading prefetched blocks: how many backend reads prefetch keeps in
    /// flight (raise it for a slow, parallel store) [default: 2 for a directory, 32 for an
    /// object store]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    prefetch_threads: Option<u64>,
    /// Largest window of the built-in readahead: how far ahead of a sequential reader it
    /// fetches (a remote store needs its bandwidth x round-trip time in flight) [default:
    /// 64 blocks (8MiB at the default block size) for a directory, 64MiB for an object store];
    /// 0 turns it off
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size)]
    readahead: Option<u64>,
    /// Refuse every change through the mount (EROFS).
    #[arg(long)]
    read_only: bool,
    /// Forward prefetch hints to the backing files' kernel page cache: through the
    /// kplug_bridge module (kmod), readahead(2) (syscall), whichever works (auto), or not.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    kernel_hints: kplug_bridge::Mode,
    /// Drop the kernel's cached pages of a file at every open, so every read reaches the
    /// daemon and its block cache (by default pages are kept while the file is unchanged).
    #[arg(long)]
    no_kernel_cache: bool,
    /// Write a snapshot of .kplug/stats to the history database every DURATION (0
    /// disables history). See docs/METRICS.md.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    history_period: Duration,
    /// The history database (default: /var/lib/kplugfs/history/<mountpoint with / as
    /// _>.db for root, ~/.local/state/kplugfs/history/... or $XDG_STATE_HOME otherwise).
    #[arg(long, value_name = "PATH")]
    history_db: Option<PathBuf>,
    /// Delete history rows older than DURATION.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
    history_retention: Duration,
    /// Per-call deadline of plugin hooks: a call that has run this long and used about as
    /// much CPU is interrupted and its plugin disabled (whole milliseconds, at least 2ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_hook_deadline, default_value = "2ms")]
    hook_deadline: Duration,
    /// CPU a plugin's slow calls (still running 1 ms after they began) may use per second
    /// before the plugin is disabled as too slow: what a legal but slow plugin may cost all
    /// readers together. 0 means no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10ms")]
    hook_budget: Duration,
    /// How a plugin whose module the mount has never compiled is loaded. `tiered`: it serves
    /// within milliseconds from baseline code (Winch) and is swapped to optimized code
    /// (Cranelift, compiled in the background) when that is ready. `optimized`: its load waits
    /// for the optimized code (10-40 ms per policy). Modules compiled before load optimized
    /// either way.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = PluginCode::Tiered)]
    plugin_code: PluginCode,
    /// Load a policy plugin at mount time, with parameters if given (`,` or `:` between
    /// them; in `-o plugin=...` only `:`). Repeatable. Also `-o plugin=PATH.wasm`.
    #[arg(long, value_name = "PATH.wasm[:key=value,...]", value_parser = PluginSpec::parse_plugin, help_heading = "Plugins")]
    plugin: Vec<PluginSpec>,
    /// Load a policy built into the binary (kplugfs policy list) at mount time, e.g.
    /// `--policy maxsize:bytes=1048576`. Repeatable. Also `-o policy=NAME`.
    #[arg(long, value_name = "NAME[:key=value,...]", value_parser = PluginSpec::parse_policy, help_heading = "Plugins")]
    policy: Vec<PluginSpec>,
    /// Where the plugin files dropped into .kplug/plugins/ are kept, to be loaded again at
    /// the next mount (default: /var/lib/kplugfs/mounts/<mountpoint with / as _>/ for root,
    /// ~/.local/state/kplugfs/mounts/... or $XDG_STATE_HOME otherwise).
    #[arg(long, value_name = "DIR", help_heading = "Plugins")]
    state_dir: Option<PathBuf>,
    /// Do not keep the plugin files dropped into the mount, nor load kept ones.
    #[arg(long, help_heading = "Plugins")]
    no_keep_plugins: bool,
    /// Fail the mount when a mount-time plugin (chosen or kept) cannot be loaded (default:
    /// report it and serve with the built-ins in its roles).
    #[arg(long, help_heading = "Plugins")]
    strict_plugins: bool,
    /// Serve .kplug/metrics (the Prometheus text format) on http://ADDR/metrics: HOST:PORT,
    /// or :PORT / PORT for the loopback interface.
    #[arg(long, value_name = "HOST:PORT", value_parser = kplug_daemon::monitor::serve::parse_addr)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Mount options, comma-separated, as mount(8) and /etc/fstab pass them: every long
    /// option above as NAME=VALUE or NAME (`_` or `-`), plus ro and rw; the generic options
    /// (defaults, auto, noauto, user, nofail, _netdev, nosuid, nodev, noexec, x-*, ...)
    /// are accepted and ignored. E.g. -o ro,cache_size=1GiB,policy=lru
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    #[command(flatten)]
    store: StoreCmd,
}

/// Mount options that mean nothing to kplugfs itself (mount(8), fstab and systemd pass
/// them; the kernel applies the ones it knows to every FUSE mount).
const GENERIC_OPTIONS: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "diratime",
    "nodiratime",
    "lazytime",
    "sync",
    "async",
    "rw",
    "allow_other",
    "default_permissions",
    // fuse3's mount.fuse names the type it was asked for (kplugfs sets its own subtype).
    "subtype",
];

/// Turn the mount options of `kplugfs mount ... -o a,b=c` into the long options they stand
/// for (`--a --b=c`), so every option has exactly one parser: clap's. Arguments of other
/// subcommands are left alone.
pub fn expand_options(args: Vec<std::ffi::OsString>) -> Result<Vec<std::ffi::OsString>, String> {
    let is_mount = args
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "mount");
    if !is_mount {
        return Ok(args);
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let opts = if s == "-o" {
            it.next()
                .ok_or("-o needs a value (e.g. -o ro,cache_size=1GiB)")?
                .to_string_lossy()
                .into_owned()
        } else if let Some(rest) = s.strip_prefix("-o").filter(|r| !r.is_empty()) {
            rest.to_string()
        } else {
            out.push(a);
            continue;
        };
        out.extend(option_flags(&opts, false)?.flags);
    }
    Ok(out)
}

/// What a list of mount options stands for.
#[derive(Debug, Default, PartialEq)]
pub struct OptionFlags {
    /// The long options of `kplugfs mount`.
    pub flags: Vec<std::ffi::OsString>,
    /// Options left out because they are unknown (`sloppy` only).
    pub ignored: Vec<String>,
}

/// The long options that the comma-separated mount options `opts` stand for. An option that
/// is neither generic nor a long option of `kplugfs mount` is an error naming it, or, when
/// `sloppy` (mount(8)'s `-s`), left out and listed in `ignored`.
pub fn option_flags(opts: &str, sloppy: bool) -> Result<OptionFlags, String> {
    let known: Vec<String> = <MountCmd as clap::Args>::augment_args(clap::Command::new("mount"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let mut out = OptionFlags::default();
    for item in opts.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        if GENERIC_OPTIONS.contains(&key) || key.starts_with("x-") || key == "comment" {
            continue;
        }
        let flag = match key {
            "ro" => "read-only".to_string(),
            k => k.replace('_', "-"),
        };
        if key == "remount" {
            return Err(
                "remount is mount(8)'s: mount -o remount,ro MOUNTPOINT (docs/operating.md)".into(),
            );
        }
        if !known.contains(&flag) {
            if sloppy {
                out.ignored.push(item.to_string());
                continue;
            }
            return Err(format!(
                "unknown mount option {key:?} (kplugfs mount has no --{flag}; see kplugfs mount --help)"
            ));
        }
        out.flags.push(match value {
            Some(v) => format!("--{flag}={v}").into(),
            None => format!("--{flag}").into(),
        });
    }
    Ok(out)
}

/// The options of an object-store source.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Object store (s3://, gs://, az://)")]
struct StoreCmd {
    /// The store's endpoint (an S3-compatible server, e.g. http://127.0.0.1:7480); default:
    /// AWS_ENDPOINT_URL, the profile's endpoint_url, or the provider's.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The region; default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, or us-east-1.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// The profile of ~/.aws/credentials and ~/.aws/config (default: AWS_PROFILE, or
    /// "default"); environment variables win over it.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Owner of every file and directory (default: the mounting user).
    #[arg(long, value_name = "UID")]
    uid: Option<u32>,
    /// Group of every file and directory (default: the mounting user's group).
    #[arg(long, value_name = "GID")]
    gid: Option<u32>,
    /// Permission bits of files, in octal.
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "644")]
    file_mode: u16,
    /// Permission bits of directories, in octal.
    #[arg(long, value_name = "MODE", value_parser = parse_mode, default_value = "755")]
    dir_mode: u16,
    /// Time one request may take, its body included, before it is retried.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    request_timeout: Duration,
    /// No request is retried once this long has passed since a call's first attempt: a
    /// call fails (a read with EIO) within about this plus --request-timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    retry_timeout: Duration,
}

/// A hook deadline: whole milliseconds (deadlines count the engine's 1 ms ticks), at least 2.
/// `--plugin-code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PluginCode {
    Tiered,
    Optimized,
}

fn parse_hook_deadline(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(2) || d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{s:?}: a hook deadline is a whole number of milliseconds, at least 2ms"
        ));
    }
    Ok(d)
}

/// Octal permission bits (`644`, `0755`).
fn parse_mode(s: &str) -> Result<u16, String> {
    match u16::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "{s:?} is not octal permission bits (e.g. 644, 0755)"
        )),
    }
}

impl MountCmd {
    /// What the daemon is asked to do.
    fn into_args(self) -> MountArgs {
        let source = MountSource::parse(&self.backing_dir);
        let store_default = matches!(source, MountSource::Store(_));
        MountArgs {
            source,
            store: StoreArgs {
                options: StoreOptions {
                    endpoint: self.store.endpoint,
                    region: self.store.region,
                    profile: self.store.profile,
                    request_timeout: self.store.request_timeout,
                    retry_timeout: self.store.retry_timeout,
                    ..StoreOptions::default()
                },
                uid: self.store.uid,
                gid: self.store.gid,
                file_mode: self.store.file_mode,
                dir_mode: self.store.dir_mode,
            },
            read_only: self.read_only,
            mountpoint: self.mountpoint,
            foreground: self.foreground,
            backend_latency: self.backend_latency,
            threads: self.threads,
            attr_timeout: self.attr_timeout,
            allow_other: !self.private && nix::unistd::geteuid().is_root(),
            log_file: self.log_file,
            cache_size: self.cache_size,
            block_size: self.block_size,
            // A remote store's throughput is its concurrency: tens of requests in flight.
            prefetch_threads: self
                .prefetch_threads
                .unwrap_or(if store_default { 32 } else { 2 })
                as usize,
            readahead_blocks: match self.readahead {
                Some(bytes) => bytes.div_ceil(self.block_size.max(1)),
                None if store_default => (64u64 << 20).div_ceil(self.block_size.max(1)),
                None => 64,
            },
            kernel_hints: self.kernel_hints,
            kernel_cache: !self.no_kernel_cache,
            history_period: self.history_period,
            history_db: self.history_db,
            history_retention: self.history_retention,
            engine: kplug_engine::EngineConfig {
                hook_deadline_ticks: self.hook_deadline.as_millis() as u64,
                slow_budget: self.hook_budget,
                baseline_tier: self.plugin_code == PluginCode::Tiered,
                ..kplug_engine::EngineConfig::default()
            },
            plugins: self.plugin.into_iter().chain(self.policy).collect(),
            keep_plugins: !self.no_keep_plugins,
            state_dir: self.state_dir.map(|d| std::path::absolute(&d).unwrap_or(d)),
            strict_plugins: self.strict_plugins,
            metrics_addr: self.metrics_addr,
        }
    }

    /// Mount; `init_logging` sets up the daemon's log (its file, if any).
    pub fn run(self, init_logging: impl FnOnce(Option<&Path>)) -> anyhow::Result<()> {
        mount::mount(&self.into_args(), init_logging)
    }
}
