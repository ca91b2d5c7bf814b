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
//! ```
//!
//! Everything is read from `.kplug/stats` (the history database's path too, from
//! `history.path`); the rendering functions are pure so the tests check their output.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::plot::{Anchor, Canvas, PALETTE, PLOT_H, PLOT_W, Raster, Svg, fmt_tick, nice_step};
use kplug_daemon::monitor::history::{HistoryDb, Sample};
use kplug_daemon::mount::{FS_SUBTYPE, mount_at};

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
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Read history from this database (no mount needed).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
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
    if args.watch {
        return watch(mnt, args.interval);
    }
    let doc = read_stats(mnt)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        out.write_all(summary(mnt, &doc, None).as_bytes())?;
    }
    Ok(())
}

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

fn u(doc: &Value, ptr: &str) -> u64 {
    doc.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

/// `a / (a + b)` as a percentage, or `-` when both are 0.
fn pct(a: u64, b: u64) -> String {
    if a + b == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / (a + b) as f64)
    }
}

/// Bytes in binary units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn lat(doc: &Value, ptr: &str) -> String {
    let l = |k: &str| u(doc, &format!("{ptr}/{k}"));
    format!(
        "p50 {}us  p90 {}us  p99 {}us  max {}us",
        l("p50"),
        l("p90"),
        l("p99"),
        l("max")
    )
}

fn active_line(doc: &Value) -> String {
    ["eviction", "admission", "prefetch"]
        .iter()
        .map(|r| {
            let v = doc
                .pointer(&format!("/active/{r}"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            format!("{r} {v}")
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The readable summary of one snapshot; with `prev` (the snapshot one interval earlier),
/// a first section of rates over that interval.
pub fn summary(mnt: &Path, doc: &Value, prev: Option<&Value>) -> String {
    let mut s = String::new();
    let up = Duration::from_secs(u(doc, "/uptime_ms") / 1000);
    let at = UNIX_EPOCH + Duration::from_millis(u(doc, "/time_unix_ms"));
    let _ = writeln!(
        s,
        "kplugfs stats {}   up {}   at {}",
        mnt.display(),
        humantime::format_duration(up),
        humantime::format_rfc3339_seconds(at)
    );
    if let Some(prev) = prev {
        let d = |p: &str| u(doc, p).saturating_sub(u(prev, p));
        let dt_ms = d("/time_unix_ms").max(1);
        let secs = dt_ms as f64 / 1000.0;
        let _ = writeln!(
            s,
            "last {:.1}s   hit ratio {}   read {:.1} MiB/s ({} req/s)   backend {:.1} MiB/s ({:.0} reads/s)   prefetch accuracy {}",
            secs,
            pct(d("/cache/hits"), d("/cache/misses")),
            mib(d("/fuse/read/bytes")) / secs,
            (d("/fuse/read/count") as f64 / secs).round(),
            mib(d("/backend/bytes")) / secs,
            d("/backend/reads") as f64 / secs,
            pct(d("/prefetch/used_blocks"), d("/prefetch/wasted_blocks")),
        );
    }
    let _ = writeln!(s);
    let (hits, misses) = (u(doc, "/cache/hits"), u(doc, "/cache/misses"));
    let _ = writeln!(
        s,
        "cache      hit ratio {}   hits {hits}   misses {misses}   resident {}/{} blocks of {}   evictions {}   admission refusals {}",
        pct(hits, misses),
        u(doc, "/cache/resident_blocks"),
        u(doc, "/cache/capacity_blocks"),
        human_bytes(u(doc, "/cache/block_size")),
        u(doc, "/cache/evictions"),
        u(doc, "/cache/admission_refusals"),
    );
    let (used, wasted) = (
        u(doc, "/prefetch/used_blocks"),
        u(doc, "/prefetch/wasted_blocks"),
    );
    let _ = writeln!(
        s,
        "prefetch   accuracy {}   issued {}   completed {}   used {used}   wasted {wasted}   dropped {}",
        pct(used, wasted),
        u(doc, "/prefetch/issued_blocks"),
        u(doc, "/prefetch/completed_blocks"),
        u(doc, "/prefetch/dropped_blocks"),
    );
    let _ = writeln!(
        s,
        "backend    reads {}   bytes {}   latency {}",
        u(doc, "/backend/reads"),
        human_bytes(u(doc, "/backend/bytes")),
        lat(doc, "/backend/latency_us"),
    );
    if let Some(h) = doc.get("kernel_hints").filter(|h| !h.is_null()) {
        let _ = writeln!(
            s,
            "hints      {}   forwarded {}   bytes {}   errors {}",
            h["backend"].as_str().unwrap_or("?"),
            u(h, "/forwarded"),
            human_bytes(u(h, "/bytes")),
            u(h, "/errors"),
        );
    }
    let _ = writeln!(s, "policies   {}", active_line(doc));
    if let Some(plugins) = doc.get("plugins").and_then(Value::as_object) {
        for (name, p) in plugins {
            let _ = writeln!(
                s,
                "plugin     {name}: {}   calls {}   faults {}   time in hooks {} us",
                p["state"].as_str().unwrap_or("?"),
                u(p, "/calls"),
                u(p, "/faults"),
                u(p, "/time_ns") / 1000,
            );
        }
    }
    if let Some(fuse) = doc.get("fuse").and_then(Value::as_object) {
        let mut ops: Vec<(&String, &Value)> = fuse.iter().collect();
        ops.sort_by_key(|(name, v)| (std::cmp::Reverse(u(v, "/count")), name.to_string()));
        if !ops.is_empty() {
            let _ = writeln!(s, "\nFUSE ops (top by requests)");
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
                "op", "count", "errors", "p50 us", "p90 us", "p99 us", "max us"
            );
            for (name, v) in ops.iter().take(8) {
                let _ = writeln!(
                    s,
                    "  {:<16} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
                    name,
                    u(v, "/count"),
                    u(v, "/errors"),
                    u(v, "/latency_us/p50"),
                    u(v, "/latency_us/p90"),
                    u(v, "/latency_us/p99"),
                    u(v, "/latency_us/max"),
                );
            }
        }
    }
    if let Some(h) = doc.get("history") {
        let err = h["error"]
            .as_str()
            .map(|e| format!("   DISABLED: {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nhistory    {} every {} ms, {} rows written{err}",
            h["path"].as_str().unwrap_or("?"),
            u(h, "/period_ms"),
            u(h, "/rows_written"),
        );
    }
    s
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn catch_ctrl_c() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// `--watch`: redraw until Ctrl-C (Ok) or until the mount goes away (an error saying so).
fn watch(mnt: &Path, interval: Duration) -> Result<()> {
    let mut prev = read_stats(mnt)?;
    catch_ctrl_c();
    let mut out = std::io::stdout();
    let footer = format!(
        "(every {}; Ctrl-C to stop)",
        humantime::format_duration(interval)
    );
    // Clear the screen and home the cursor, then draw.
    write!(
        out,
        "\x1b[2J\x1b[H{}\n{footer}\n",
        summary(mnt, &prev, None)
    )?;
    out.flush()?;
    let stopped = |out: &mut std::io::Stdout| -> Result<()> {
        writeln!(out, "\nstopped watching {}", mnt.display())?;
        Ok(())
    };
    let mut next = Instant::now();
    loop {
        next += interval;
        loop {
            if STOP.load(Ordering::Relaxed) {
                return stopped(&mut out);
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
        }
        let doc = match read_stats(mnt) {
            Ok(d) => d,
            Err(e) => bail!("{} went away, stopped watching ({e:#})", mnt.display()),
        };
        write!(
            out,
            "\x1b[2J\x1b[H{}\n{footer}\n",
            summary(mnt, &doc, Some(&prev))
        )?;
        out.flush()?;
        prev = doc;
    }
}

// ------------------------------------------------------------------------------------------
// --history

/// Parse `--since`: a duration back from `now`, or an RFC 3339 time. Returns ms since epoch.
pub fn parse_since(s: &str, now: SystemTime) -> Result<u64> {
    let t = if let Ok(d) = humantime::parse_duration(s) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else {
        bail!(
            "--since {s:?}: expected a duration (10m, 2h) or an RFC 3339 time (2026-11-26T18:00:00Z)"
        )
    };
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0))
}

/// Counter changes between samples (or over a bucket of them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// End, ms since the epoch.
    pub end_ms: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses.
    pub misses: u64,
    /// Bytes returned by FUSE reads.
    pub read_bytes: u64,
    /// Backend reads.
    pub backend_reads: u64,
    /// Backend bytes.
    pub backend_bytes: u64,
    /// Prefetched blocks used.
    pub prefetch_used: u64,
    /// Prefetched blocks wasted.
    pub prefetch_wasted: u64,
}

impl Interval {
    /// The change from `a` to `b`; when `b` is from a later mount (counters restarted), its
    /// counters since that mount began.
    pub fn between(a: &Sample, b: &Sample) -> Self {
        let reset = a.started_unix_ms != b.started_unix_ms;
        let d = |x: u64, y: u64| if reset || y < x { y } else { y - x };
        Interval {
            start_ms: a.time_ms,
            end_ms: b.time_ms,
            hits: d(a.cache_hits, b.cache_hits),
            misses: d(a.cache_misses, b.cache_misses),
            read_bytes: d(a.fuse_read_bytes, b.fuse_read_bytes),
            backend_reads: d(a.backend_reads, b.backend_reads),
            backend_bytes: d(a.backend_bytes, b.backend_bytes),
            prefetch_used: d(a.prefetch_used_blocks, b.prefetch_used_blocks),
            prefetch_wasted: d(a.prefetch_wasted_blocks, b.prefetch_wasted_blocks),
        }
    }

    fn merge(&mut self, o: &Interval) {
        self.end_ms = o.end_ms;
        self.hits += o.hits;
        self.misses += o.misses;
        self.read_bytes += o.read_bytes;
        self.backend_reads += o.backend_reads;
        self.backend_bytes += o.backend_bytes;
        self.prefetch_used += o.prefetch_used;
        self.prefetch_wasted += o.prefetch_wasted;
    }

    fn secs(&self) -> f64 {
        (self.end_ms.saturating_sub(self.start_ms) as f64 / 1000.0).max(1e-3)
    }

    /// Hits over accesses, `None` without accesses.
    pub fn hit_ratio(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    /// FUSE read throughput, MiB/s.
    pub fn read_mib_s(&self) -> f64 {
        mib(self.read_bytes) / self.secs()
    }

    /// Backend read throughput, MiB/s.
    pub fn backend_mib_s(&self) -> f64 {
        mib(self.backend_bytes) / self.secs()
    }
}

/// Most rows of the history table: more intervals are merged into this many buckets.
pub const MAX_TABLE_ROWS: usize = 40;

/// The intervals between consecutive samples, merged into at most `max` buckets of equal
/// sample counts.
pub fn intervals(samples: &[Sample], max: usize) -> Vec<Interval> {
    let all: Vec<Interval> = samples
        .windows(2)
        .map(|w| Interval::between(&w[0], &w[1]))
        .collect();
    let per = all.len().div_ceil(max.max(1)).max(1);
    all.chunks(per)
        .map(|c| {
            let mut it = c[0];
            for o in &c[1..] {
                it.merge(o);
            }
            it
        })
        .collect()
}

/// The history table.
pub fn history_table(samples: &[Sample]) -> String {
    let mut s = String::new();
    let rows = intervals(samples, MAX_TABLE_ROWS);
    let per = (samples.len().saturating_sub(1)).div_ceil(MAX_TABLE_ROWS.max(1));
    if per > 1 {
        let _ = writeln!(s, "{} samples, {per} intervals per row", samples.len());
    }
    // Sub-second samples get milliseconds in their time stamps.
    let millis = rows.iter().any(|r| r.end_ms - r.start_ms < 1000);
    let tw = if millis { 24 } else { 20 };
    let _ = writeln!(
        s,
        "{:<tw$} {:>7} {:>9} {:>10} {:>11} {:>13} {:>9}",
        "time (UTC)",
        "span s",
        "hit ratio",
        "read MiB/s",
        "backend r/s",
        "backend MiB/s",
        "prefetch"
    );
    for r in rows {
        let t = UNIX_EPOCH + Duration::from_millis(r.end_ms);
        let t = if millis {
            humantime::format_rfc3339_millis(t).to_string()
        } else {
            humantime::format_rfc3339_seconds(t).to_string()
        };
        let ratio = r
            .hit_ratio()
            .map_or("-".to_string(), |h| format!("{:.1}%", h * 100.0));
        let _ = writeln!(
            s,
            "{:<tw$} {:>7.1} {:>9} {:>10.2} {:>11.1} {:>13.2} {:>9}",
            t,
            r.secs(),
            ratio,
            r.read_mib_s(),
            r.backend_reads as f64 / r.secs(),
            r.backend_mib_s(),
            pct(r.prefetch_used, r.prefetch_wasted),
        );
    }
    s
}

fn run_history(args: &StatsArgs) -> Result<()> {
    let path = match (&args.db, &args.mountpoint) {
        (Some(db), _) => db.clone(),
        (None, Some(mnt)) => {
            let doc = read_stats(mnt)?;
            match doc.pointer("/history/path").and_then(Value::as_str) {
                Some(p) => PathBuf::from(p),
                None => bail!(
                    "{} keeps no history (mounted with --history-period 0); use --db PATH for a database",
                    mnt.display()
                ),
            }
        }
        (None, None) => bail!("give a mount point or --db PATH"),
    };
    let since = match &args.since {
        Some(s) => parse_since(s, SystemTime::now())?,
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
        plot_history(&samples, plot)?;
        println!("{}", plot.display());
    } else {
        print!("{}", history_table(&samples));
    }
    Ok(())
}

/// Most points drawn per series; more samples are merged into this many buckets.
const MAX_PLOT_POINTS: usize = 600;

/// Plot hit ratio (top) and read throughput (bottom) over time to `.svg` or `.png`.
pub fn plot_history(samples: &[Sample], path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = intervals(samples, MAX_PLOT_POINTS);
    if rows.is_empty() {
        bail!("nothing to plot");
    }
    let t0 = samples[0].time_ms;
    let x = |r: &Interval| (r.end_ms.saturating_sub(t0)) as f64 / 1000.0;
    let hit: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.hit_ratio().map(|h| (x(r), h)))
        .collect();
    let read: Vec<(f64, f64)> = rows.iter().map(|r| (x(r), r.read_mib_s())).collect();
    let backend: Vec<(f64, f64)> = rows.iter().map(|r| (x(r), r.backend_mib_s())).collect();
    let title = format!(
        "from {}",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(t0))
    );
    let draw = |c: &mut dyn Canvas| {
        let (left, right) = (70.0, 200.0);
        let w = PLOT_W as f64;
        let pw = w - left - right;
        let x1 = rows.iter().map(x).fold(1.0, f64::max);
        c.text(left + pw / 2.0, 20.0, &title, (0, 0, 0), Anchor::Middle);
        panel(
            c,
            (left, 40.0, pw, 190.0),
            x1,
            Some(1.0),
            "hit ratio",
            &[("hit ratio", &hit)],
        );
        panel(
            c,
            (left, 290.0, pw, 190.0),
            x1,
            None,
            "MiB/s",
            &[("read", &read), ("backend", &backend)],
        );
        c.text(
            left + pw / 2.0,
            PLOT_H as f64 - 15.0,
            "seconds since the first sample",
            (0, 0, 0),
            Anchor::Middle,
        );
    };
    let bytes = match ext.as_str() {
        "svg" => {
            let mut c = Svg::new(PLOT_W, PLOT_H);
            draw(&mut c);
            c.finish().into_bytes()
        }
        "png" => {
            let mut c = Raster::new(PLOT_W, PLOT_H);
            draw(&mut c);
            c.png()
        }
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// One panel: axes, grid, y ticks, x ticks, and each series with its legend entry.
fn panel(
    c: &mut dyn Canvas,
    (left, top, pw, ph): (f64, f64, f64, f64),
    x1: f64,
    y_max: Option<f64>,
    ylabel: &str,
    series: &[(&str, &Vec<(f64, f64)>)],
) {
    let black = (0, 0, 0);
    let hi = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max)
    });
    let ystep = nice_step(hi.max(0.01), 5.0);
    let y1 = ((hi / ystep).ceil() * ystep).max(ystep);
    let px = |x: f64| left + x / x1 * pw;
    let py = |y: f64| top + (1.0 - y / y1) * ph;
    c.y_grid(left, pw, (0.0, y1, ystep), &py);
    let xstep = nice_step(x1, 8.0);
    let mut x = 0.0;
    while x <= x1 + xstep / 2.0 {
        c.line(px(x), top + ph, px(x), top + ph + 5.0, black, 1.0);
        c.text(
            px(x),
            top + ph + 20.0,
            &fmt_tick(x, xstep),
            black,
            Anchor::Middle,
        );
        x += xstep;
    }
    c.line(left, top + ph, left + pw, top + ph, black, 1.5);
    c.line(left, top, left, top + ph, black, 1.5);
    c.text(left, top - 8.0, ylabel, black, Anchor::Middle);
    for (i, (name, pts)) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        c.polyline(&mut pts.iter().map(|&(x, y)| (px(x), py(y))), col);
        if pts.len() <= 60 {
            for &(x, y) in pts.iter() {
                c.dot(px(x), py(y), 2.5, col);
            }
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        c.line(left + pw + 20.0, ly, left + pw + 45.0, ly, col, 2.0);
        c.text(left + pw + 52.0, ly + 4.0, name, black, Anchor::Start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(t: u64, hits: u64, misses: u64, read: u64) -> Sample {
        Sample {
            time_ms: t,
            started_unix_ms: 1000,
            cache_hits: hits,
            cache_misses: misses,
            fuse_read_bytes: read,
            backend_reads: misses,
            backend_bytes: misses << 17,
            prefetch_used_blocks: hits / 2,
            prefetch_wasted_blocks: hits / 4,
            ..Default::default()
        }
    }

    #[test]
    fn intervals_are_deltas_and_merge_into_buckets() {
        let s: Vec<Sample> = (0..=10)
            .map(|i| sample(10_000 + i * 1000, i * 30, i * 10, i << 20))
            .collect();
        let one = intervals(&s, 100);
        assert_eq!(one.len(), 10);
        assert_eq!(one[0].hits, 30);
        assert_eq!(one[0].hit_ratio(), Some(0.75));
        assert!((one[3].read_mib_s() - 1.0).abs() < 1e-9);
        let merged = intervals(&s, 3);
        assert_eq!(merged.len(), 3); // 4 + 4 + 2 intervals
        assert_eq!(merged[0].hits, 120);
        assert_eq!(merged[0].end_ms - merged[0].start_ms, 4000);
        assert_eq!(merged[2].end_ms, 20_000);
        assert_eq!(merged.iter().map(|m| m.misses).sum::<u64>(), 100);
    }

    #[test]
    fn a_restarted_mount_is_a_reset_not_a_negative_rate() {
        let a = sample(5000, 100, 100, 0);
        let mut b = sample(6000, 7, 3, 0);
        b.started_unix_ms = 5500;
        let i = Interval::between(&a, &b);
        assert_eq!((i.hits, i.misses), (7, 3));
    }

    #[test]
    fn since_takes_durations_and_timestamps() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            parse_since("10m", now).unwrap(),
            (1_800_000_000 - 600) * 1000
        );
        let t = parse_since("2026-11-26T18:00:00Z", now).unwrap();
        assert_eq!(t, 1_795_716_000_000);
        let err = parse_since("yesterday-ish", now).unwrap_err().to_string();
        assert!(err.contains("expected a duration"), "{err}");
    }

    #[test]
    fn table_shows_ratio_throughput_and_accuracy() {
        let s = vec![sample(10_000, 0, 0, 0), sample(12_000, 30, 10, 4 << 20)];
        let t = history_table(&s);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("1970-01-01T00:00:12Z"), "{t}");
        // 30/40 hits, 4 MiB in 2 s, 10 backend reads in 2 s, 15/(15+7) prefetch.
        for want in ["75.0%", "2.00", "5.0", "68.2%"] {
            assert!(row.contains(want), "{want} in {row}");
        }
    }

    #[test]
    fn summary_with_previous_shows_interval_rates() {
        let mk = |t: u64, hits: u64, misses: u64, bytes: u64| {
            json!({
                "time_unix_ms": t, "uptime_ms": 3000,
                "cache": {"hits": hits, "misses": misses, "resident_blocks": 3,
                          "capacity_blocks": 8, "block_size": 131072},
                "prefetch": {"used_blocks": 3, "wasted_blocks": 1},
                "backend": {"reads": misses, "bytes": misses << 17,
                            "latency_us": {"p50": 1, "p90": 2, "p99": 3, "max": 4}},
                "fuse": {"read": {"count": 9, "bytes": bytes,
                                  "latency_us": {"p50": 5, "p90": 6, "p99": 7, "max": 8}}},
                "active": {"eviction": "lru", "admission": "builtin:admit-all",
                           "prefetch": "builtin:readahead"},
                "plugins": {"lru": {"state": "active", "calls": 12, "faults": 0,
                                    "time_ns": 5000}},
            })
        };
        let prev = mk(1000, 10, 10, 0);
        let doc = mk(3000, 19, 11, 8 << 20);
        let s = summary(Path::new("/mnt"), &doc, Some(&prev));
        assert!(s.contains("last 2.0s   hit ratio 90.0%"), "{s}");
        assert!(s.contains("read 4.0 MiB/s"), "{s}");
        assert!(s.contains("hit ratio 63.3%"), "{s}");
        assert!(s.contains("resident 3/8 blocks of 128.0 KiB"), "{s}");
        assert!(s.contains("accuracy 75.0%"), "{s}");
        assert!(
            s.contains("eviction lru  admission builtin:admit-all"),
            "{s}"
        );
        assert!(s.contains("plugin     lru: active   calls 12"), "{s}");
        assert!(s.contains("  read "), "{s}");
    }

    #[test]
    fn plots_need_a_known_extension() {
        let dir = tempfile::tempdir().unwrap();
        let s: Vec<Sample> = (0..5)
            .map(|i| sample(i * 1000, i * 3, i, i << 20))
            .collect();
        let svg = dir.path().join("h.svg");
        plot_history(&s, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("hit ratio"),
            "{text}"
        );
        let png = dir.path().join("h.png");
        plot_history(&s, &png).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        let err = plot_history(&s, &dir.path().join("h.jpg")).unwrap_err();
        assert!(err.to_string().contains(".svg or .png"), "{err}");
    }
}
