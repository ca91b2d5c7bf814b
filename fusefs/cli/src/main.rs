//! The `kplugfs` command line: arguments, progress bars and rendering over the libraries
//! (`kplug-daemon` mounts and serves, `kplug-sim` replays, `kplug-catalog` carries the
//! policies, `kplug-traces` reads, converts and replays traces). One file (or folder) per
//! subcommand; started as `mount.fuse.kplugfs` it is mount(8)'s helper (`helper.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};

mod helper;
mod mount;
mod plot;
mod policy;
mod sim;
mod stats;
mod trace;

/// kplugfs: a FUSE passthrough filesystem whose caching, prefetch and eviction policies are
/// WebAssembly plugins you can swap into the live mount.
#[derive(Debug, Parser)]
#[command(name = "kplugfs", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount SOURCE (a directory, or an object store: s3://BUCKET[/PREFIX]) at MOUNTPOINT.
    /// Returns once the mount is ready; the daemon runs in the background (use --foreground
    /// to keep it attached).
    ///
    /// Examples: kplugfs mount /srv/data /mnt/data --backend-latency 2ms
    ///           kplugfs mount s3://bucket/prefix /mnt/data --endpoint http://127.0.0.1:7480
    ///
    /// Also mount(8)'s helper (/sbin/mount.fuse.kplugfs, a link to this binary): `mount -t
    /// fuse.kplugfs SRC DIR -o OPTIONS`, /etc/fstab, systemd units, `mount -o remount,ro DIR`
    /// (docs/operating.md).
    Mount(Box<mount::MountCmd>),
    /// Show the statistics of a live mount (.kplug/stats), live with --watch, or its history.
    ///
    /// Examples: kplugfs stats /mnt/data --watch
    ///           kplugfs stats /mnt/data --history --since 10m --plot hist.svg
    Stats(stats::StatsArgs),
    /// Unmount a kplugfs mount; the daemon exits. Plain `umount MOUNTPOINT` works too.
    Umount {
        /// The mount point.
        mountpoint: std::path::PathBuf,
    },
    /// Replay a trace through policy plugins without FUSE (libCacheSim's object mode).
    ///
    /// Example: kplugfs sim --trace traces/data/cloudPhysicsIO.vscsi --policy lru,fifo
    ///          --cache-size 0.01,0.05,0.1,0.25
    Sim(sim::SimCmd),
    /// The policy plugins built into this binary.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Summarise, convert and replay I/O traces (see docs/traces.md).
    Trace {
        #[command(subcommand)]
        command: trace::TraceCommand,
    },
}

/// A duration argument (`2ms`, `500us`, `1s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 2ms, 500us, 1s)"))
}

/// A byte-size argument (`4096`, `128KiB`, `256MiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    kplug_daemon::mount::parse_size(s)
}

pub(crate) fn init_logging(verbose: u8, log_file: Option<&Path>) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if let Some(path) = log_file {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => {
                let _ = builder
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .try_init();
                return;
            }
            Err(e) => eprintln!("kplugfs: cannot open log file {}: {e}", path.display()),
        }
    }
    let _ = builder.with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.first().is_some_and(|a| helper::invoked_as_helper(a)) {
        return helper::main(argv);
    }
    // Without /sbin/mount.fuse.kplugfs, mount(8) falls back to fuse3's `mount.fuse`, which runs
    // `kplugfs SRC DIR -o OPTS`: the helper's call under kplugfs's own name.
    if helper::is_fuse_call(&argv) {
        return helper::main(argv);
    }
    // `-o` mount options are the long options they name (mount.rs).
    let args = match mount::expand_options(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kplugfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    let verbose = cli.verbose;
    // A mount sets up logging itself, once it knows where its daemon logs.
    if !matches!(cli.command, Command::Mount(_)) {
        init_logging(verbose, None);
    }
    let result = match cli.command {
        Command::Mount(cmd) => cmd.run(|log| init_logging(verbose, log)),
        Command::Stats(args) => stats::run(&args),
        Command::Umount { mountpoint } => kplug_daemon::mount::umount(&mountpoint),
        Command::Sim(cmd) => cmd.run(),
        Command::Policy { command } => command.run(),
        Command::Trace { command } => trace::run(command),
    };
    // What this process compiled is kept for the next (the compiled-module cache's disk
    // writes run in the background).
    let left = kplug_engine::modcache::wait_for_writes(std::time::Duration::from_secs(10));
    if left > 0 {
        tracing::debug!("module cache: exiting with {left} write(s) not done");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kplugfs: {}", kplug_daemon::error::report(&e));
            ExitCode::FAILURE
        }
    }
}
