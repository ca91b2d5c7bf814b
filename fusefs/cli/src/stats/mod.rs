//! `kplugfs stats`: the operator's view of the monitoring plane.
//!
//! ```text
//! kplugfs stats MOUNT                      a readable summary of MOUNT/.kplug/stats
//! kplugfs stats MOUNT --json               the raw snapshot
//! kplugfs stats MOUNT --watch [--interval 1s]
//!                                          redraw every interval with per-interval rates;
//!                                          ends on Ctrl-C or when the mount goes away
//! kplugfs stats MOUNT --history [--since 10m|RFC3339] [--plot FILE.svg|.png]
//! kplugfs stats --db PATH [--since ..] [--plot ..]
//!                                          the history database as a table (or a plot)
//! kplugfs stats MOUNT --probe NAME [--watch]
//!                                          the report of probe plugin NAME (probe.rs)
//! ```
//!
//! Everything is read from `.kplug/stats`, parsed into the daemon's typed schema
//! (`kplug_daemon::monitor::schema::Stats`; the history database's path too, from
//! `history.path`). The files, bottom up: `snapshot.rs` reads and parses the document,
//! `units.rs` formats numbers, `summary.rs` renders a snapshot, `watch.rs` redraws it,
//! `history.rs` turns the history database into intervals and a table, `history_plot.rs`
//! plots them; this file holds the arguments and dispatches. The rendering functions are
//! pure, so the tests check their output.

mod history;
mod history_plot;
mod probe;
mod snapshot;
mod summary;
mod units;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use kplug_daemon::monitor::history::HistoryDb;

use crate::plot::PlotFile;

/// Arguments of `kplugfs stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// The mount point of a kplugfs mount (optional with --db).
    #[arg(required_unless_present = "db")]
    pub mountpoint: Option<PathBuf>,
    /// Print the raw JSON snapshot of MOUNT/.kplug/stats.
    #[arg(long, conflicts_with_all = ["watch", "history", "db"])]
    pub json: bool,
    /// Redraw the summary every --interval with the rates over the last interval, until
    /// Ctrl-C or until the mount goes away.
    #[arg(long, conflicts_with_all = ["history", "db"])]
    pub watch: bool,
    /// Time between two redraws of --watch.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, default_value = "1s")]
    pub interval: Duration,
    /// Print the mount's history (from the database named in .kplug/stats) over time.
    #[arg(long)]
    pub history: bool,
    /// With --history: only samples since DURATION ago (10m, 2h) or since an RFC 3339 time
    /// (2026-11-26T18:00:00Z).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// With --history: plot hit ratio and throughput over time to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE", value_parser = PlotFile::parse)]
    pub plot: Option<PlotFile>,
    /// Read history from this database (no mount needed).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print the report of probe plugin NAME (MOUNT/.kplug/probes/NAME); again every
    /// --interval with --watch.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["json", "history", "db"])]
    pub probe: Option<String>,
}

fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 1s, 5s)"))?;
    if d < Duration::from_millis(10) {
        return Err("the interval must be at least 10ms".into());
    }
    Ok(d)
}

/// Run `kplugfs stats`.
pub fn run(args: &StatsArgs) -> Result<()> {
    let history = args.history || args.db.is_some();
    if !history {
        if args.since.is_some() {
            bail!("--since applies to --history");
        }
        if args.plot.is_some() {
            bail!("--plot applies to --history");
        }
    }
    if history {
        return run_history(args);
    }
    let mnt = args.mountpoint.as_deref().expect("clap requires it");
    if let Some(name) = &args.probe {
        return probe::run(mnt, name, args.watch.then_some(args.interval));
    }
    if args.watch {
        return watch::watch(mnt, args.interval);
    }
    let snap = snapshot::read(mnt)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        // The document as the daemon wrote it.
        out.write_all(snap.text.as_bytes())?;
        if !snap.text.ends_with('\n') {
            writeln!(out)?;
        }
    } else {
        out.write_all(summary::summary(mnt, &snap.stats, None).as_bytes())?;
    }
    Ok(())
}

/// `--history` and `--db`: the table, or the plot.
fn run_history(args: &StatsArgs) -> Result<()> {
    let path = match (&args.db, &args.mountpoint) {
        (Some(db), _) => db.clone(),
        (None, Some(mnt)) => match snapshot::read(mnt)?.stats.history {
            Some(h) => PathBuf::from(h.path),
            None => bail!(
                "{} keeps no history (mounted with --history-period 0); use --db PATH for a database",
                mnt.display()
            ),
        },
        (None, None) => bail!("give a mount point or --db PATH"),
    };
    let since = match &args.since {
        Some(s) => history::parse_since(s, SystemTime::now())?,
        None => 0,
    };
    let db = HistoryDb::open_read(&path)?;
    let samples = db.samples(since)?;
    if samples.len() < 2 {
        bail!(
            "{} has {} sample(s){}: at least 2 are needed",
            path.display(),
            samples.len(),
            if args.since.is_some() {
                " in that time range"
            } else {
                ""
            }
        );
    }
    if let Some(plot) = &args.plot {
        history_plot::plot_history(&samples, plot)?;
        println!("{}", plot.path().display());
    } else {
        print!("{}", history::history_table(&samples));
    }
    Ok(())
}
