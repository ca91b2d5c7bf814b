//! The `kplugfs` command line: a thin layer over the library.

// The `shuttle` feature swaps the block cache's locks for a test scheduler's: never in the binary.
#[cfg(feature = "shuttle")]
compile_error!(
    "the `shuttle` feature is for tests/shuttle only: run `cargo test -p kplugfs-shuttle` on \
     its own and exclude it from workspace-wide builds (`--exclude kplugfs-shuttle`)"
);

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use kplugfs::mount::{self, MountArgs};

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
    /// Mount BACKING_DIR at MOUNTPOINT. Returns once the mount is ready; the daemon runs in
    /// the background (use --foreground to keep it attached).
    ///
    /// Example: kplugfs mount /srv/data /mnt/data --backend-latency 2ms
    Mount {
        /// The directory whose contents the mount exposes.
        backing_dir: PathBuf,
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
        #[arg(long, value_name = "SIZE", value_parser = mount::parse_size, default_value = "256MiB")]
        cache_size: u64,
        /// Block size of the cache: the unit of caching, eviction and prefetch decisions
        /// (a power of two, at least 4KiB). See docs/block-cache.md for the default.
        #[arg(long, value_name = "SIZE", value_parser = mount::parse_size, default_value = "128KiB")]
        block_size: u64,
        /// Threads reading prefetched blocks: how many backend reads prefetch keeps in
        /// flight (raise it for a slow, parallel store).
        #[arg(long, value_name = "N", default_value_t = 2,
              value_parser = clap::value_parser!(u64).range(1..=256))]
        prefetch_threads: u64,
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
    },
    /// Show the statistics of a live mount (.kplug/stats), live with --watch, or its history.
    ///
    /// Examples: kplugfs stats /mnt/data --watch
    ///           kplugfs stats /mnt/data --history --since 10m --plot hist.svg
    Stats(kplugfs::stats_cmd::StatsArgs),
    /// Unmount a kplugfs mount; the daemon exits. Plain `umount MOUNTPOINT` works too.
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// Replay a trace through policy plugins without FUSE (libCacheSim's object mode).
    ///
    /// Example: kplugfs sim --trace traces/data/cloudPhysicsIO.vscsi --policy lru,fifo
    ///          --cache-size 0.01,0.05,0.1,0.25
    Sim {
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug.
        #[arg(long, default_value = "auto")]
        format: kplug_traces::Format,
        /// Policies, comma-separated: a built-in plugin name, a path to a .wasm file, or
        /// builtin:lru for the host's native LRU; combine roles with +, e.g. lru+readahead.
        #[arg(long, value_delimiter = ',', required = true)]
        policy: Vec<String>,
        /// Cache sizes as fractions of the trace's unique ids (floor(unique x F)).
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "cache_objects",
            required_unless_present = "cache_objects"
        )]
        cache_size: Vec<f64>,
        /// Cache sizes as object counts.
        #[arg(long, value_delimiter = ',')]
        cache_objects: Vec<u64>,
        /// Expand each request of a block trace into the BYTES-sized blocks it touches.
        #[arg(long, value_name = "BYTES", value_parser = mount::parse_size)]
        split_blocks: Option<u64>,
        /// A plugin parameter, NAME:key=value (repeatable); NAME is a policy of --policy (the
        /// file stem for a .wasm path). A governor's candidates take theirs in its spec.
        #[arg(long)]
        param: Vec<String>,
        /// One JSON object per line per (policy, size).
        #[arg(long)]
        json: bool,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Also draw miss-ratio curves (one line per policy over the cache sizes) to FILE.svg
        /// or FILE.png.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Demand requests between two ticks of a governor policy (e.g. `adaptive`) [default:
        /// 100, or the cache size in blocks or objects when smaller]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        tick_every: Option<u64>,
    },
    /// The policy plugins built into this binary.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Summarise, convert and replay I/O traces (see docs/traces.md).
    Trace {
        #[command(subcommand)]
        command: kplugfs::trace_cmd::TraceCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print each built-in policy's name, roles and description.
    List,
    /// Write a built-in policy's .wasm to DEST (a file, or a directory that gets NAME.wasm),
    /// ready to copy into MOUNT/.kplug/plugins/.
    ///
    /// Example: kplugfs policy export lru /tmp && cp /tmp/lru.wasm /mnt/data/.kplug/plugins/
    Export {
        /// Policy name (see `kplugfs policy list`).
        name: String,
        /// Destination file or directory.
        dest: PathBuf,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 2ms, 500us, 1s)"))
}

fn init_logging(verbose: u8, log_file: Option<&Path>) {
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

fn run_sim(
    args: &kplugfs::sim::SimArgs,
    json: bool,
    plot: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_message("reading");
    let trace = kplugfs::sim::load_trace(&args.trace, args.format, args.split_blocks, &bar)?;
    bar.set_message("replaying");
    let results = kplugfs::sim::run(args, &trace, &bar)?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if json {
        use std::io::Write;
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        kplugfs::sim::print_table(&mut out, &trace, &results)?;
    }
    if let Some(path) = plot {
        kplugfs::sim::plot(&results, path)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let result = match cli.command {
        Command::Mount {
            backing_dir,
            mountpoint,
            foreground,
            backend_latency,
            threads,
            attr_timeout,
            private,
            log_file,
            cache_size,
            block_size,
            prefetch_threads,
            kernel_hints,
            no_kernel_cache,
            history_period,
            history_db,
            history_retention,
        } => {
            let args = MountArgs {
                backing: backing_dir,
                mountpoint,
                foreground,
                backend_latency,
                threads,
                attr_timeout,
                allow_other: !private && nix::unistd::geteuid().is_root(),
                log_file,
                cache_size,
                block_size,
                prefetch_threads: prefetch_threads as usize,
                kernel_hints,
                kernel_cache: !no_kernel_cache,
                history_period,
                history_db,
                history_retention,
            };
            mount::mount(&args, |log| init_logging(verbose, log))
        }
        Command::Stats(args) => {
            init_logging(verbose, None);
            kplugfs::stats_cmd::run(&args)
        }
        Command::Umount { mountpoint } => {
            init_logging(verbose, None);
            mount::umount(&mountpoint)
        }
        Command::Sim {
            trace,
            format,
            policy,
            cache_size,
            cache_objects,
            split_blocks,
            param,
            json,
            jobs,
            plot,
            tick_every,
        } => {
            init_logging(verbose, None);
            let args = kplugfs::sim::SimArgs {
                trace,
                format,
                policies: policy,
                fractions: cache_size,
                objects: cache_objects,
                split_blocks,
                params: param,
                jobs: jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                tick_every,
            };
            run_sim(&args, json, plot.as_deref())
        }
        Command::Policy { command } => {
            init_logging(verbose, None);
            match command {
                PolicyCommand::List => kplugfs::policies::list(&mut std::io::stdout().lock()),
                PolicyCommand::Export { name, dest } => kplugfs::policies::export(&name, &dest)
                    .map(|p| {
                        println!("{}", p.display());
                    }),
            }
        }
        Command::Trace { command } => {
            init_logging(verbose, None);
            kplugfs::trace_cmd::run(command)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kplugfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
