//! `kplugfs trace`: summarise, convert and replay I/O traces (see `docs/traces.md`).
//!
//! - `info` streams a trace through [`TraceStats`] and prints the [`TraceInfo`], as text or as
//!   one JSON object.
//! - `convert` reads any format and writes one of those [`TraceWriter`] supports, into a
//!   temporary file renamed over the output only when the whole trace was written.
//! - `replay` issues a trace's requests against a directory, normally a kplugfs mount, and
//!   reports throughput, latency percentiles and the block cache's hit ratio.
//!
//! ## How replay maps a trace onto files
//!
//! A trace addresses disks (or LUNs, or files) that do not exist where it is replayed. The
//! replay builds a *scratch* directory `MOUNT/.kplugfs-replay/` of `--files` files and maps
//! the trace into it:
//!
//! 1. Each request is cut at `--block-size` boundaries of its stream's address space: block
//!    `(stream, offset / B)`. Requests without a byte offset (txt, lirs, oracle object traces)
//!    read their object as one whole block `(stream, id)`.
//! 2. Blocks get *slots* in order of first access: slot 0 for the first block the trace
//!    touches, 1 for the next new one, and so on. Reuse is thus kept exactly (the same block
//!    always lands on the same slot) while the multi-terabyte, mostly empty address spaces of
//!    real block traces shrink to their working set; blocks first touched in sequence get
//!    consecutive slots, so sequential runs stay sequential.
//! 3. At most `--max-size / B` slots exist: beyond that, slot numbers wrap (`slot mod max`),
//!    so distinct blocks may share a slot (the summary says when that happened).
//! 4. Slots fill the files in order, `ceil(slots / files)` per file: slot `s` is at byte
//!    `(s mod per_file) * B` of file `s / per_file`. A request becomes one read per run of
//!    contiguous slots (normally exactly one).
//!
//! The files are filled with a pattern that is a function of (file, offset) alone, so every
//! read is verified without keeping a copy, and trace *writes* write the very bytes the
//! pattern already has there: they exercise the write path (and the cache's invalidation)
//! without changing what later reads must return. Only the scratch files are ever written.
//!
//! Requests run as fast as the mount answers (trace timestamps are not honoured), in trace
//! order with one thread; with `--threads N` workers take the next request in trace order.
//! By default the kernel page cache is kept out of the way: the scratch files are opened with
//! `posix_fadvise(RANDOM)` (no kernel readahead) and the pages a request touched are dropped
//! after it (`posix_fadvise(DONTNEED)`), so every request reaches the daemon's block cache as
//! the trace issued it, and prefetching is left to the mount's prefetch policy
//! (`--keep-page-cache` turns both off: the kernel then answers what it has cached). The
//! hit ratio is the change of `cache.hits`/`cache.misses` in `MOUNT/.kplug/status` over the
//! replay: block accesses of the daemon, prefetch-served reads included; on a directory
//! without `.kplug/status` (a plain directory, or a mount with `--cache-size 0`) it is n/a.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kplug_traces::replay::{Job, Plan, Seg, fill_pattern};
use kplug_traces::{Format, Op, ReadOptions, TraceInfo, TraceReader, TraceStats, TraceWriter};
use parking_lot::Mutex;
use serde::Serialize;

use crate::parse_size;

/// `kplugfs trace ...`.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Start recording every data access of a mounted kplugfs (file, offset, length,
    /// read/write, time, hit/miss, prefetch/demand) into FILE, in kplug format; returns at once.
    ///
    /// Example: kplugfs trace record /mnt/data --out /var/tmp/run.kplug
    Record {
        /// The kplugfs mount point.
        mount: PathBuf,
        /// The trace file to write (created or replaced; its directory must exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Stop the recording of a mount and finish its file; prints what was recorded.
    Stop {
        /// The kplugfs mount point.
        mount: PathBuf,
    },
    /// Summarise a trace: requests, unique ids, reads and writes, bytes, request sizes,
    /// sequentiality.
    ///
    /// Example: kplugfs trace info traces/data/cloudPhysicsIO.vscsi --json
    Info {
        /// The trace file.
        trace: PathBuf,
        /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug.
        #[arg(long, default_value = "auto")]
        format: Format,
        /// One JSON object (every TraceInfo field, plus file, format and skipped).
        #[arg(long)]
        json: bool,
    },
    /// Convert a trace to another format (writers: txt, lirs, csv, oracle, kplug).
    ///
    /// The output appears only once the whole trace converted; on an error it is not created.
    /// Example: kplugfs trace convert traces/data/cloudPhysicsIO.vscsi /tmp/cp.kplug --to kplug
    Convert {
        /// The input trace.
        input: PathBuf,
        /// The output file (replaced if it exists).
        output: PathBuf,
        /// Output format: txt, lirs, csv, oracle or kplug.
        #[arg(long)]
        to: Format,
        /// Input format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug.
        #[arg(long, default_value = "auto")]
        format: Format,
    },
    /// Replay a trace's requests against a mounted kplugfs (or any directory) and report
    /// throughput, latency percentiles and the block cache's hit ratio.
    ///
    /// The trace is mapped onto scratch files in MOUNT/.kplugfs-replay/ (created first, filled
    /// with a verifiable pattern, removed afterwards unless --keep): every read is checked and
    /// writes only ever go to those files. See docs/traces.md for the mapping.
    ///
    /// Example: kplugfs trace replay traces/data/cloudPhysicsIO.vscsi --mount /mnt/data
    ///          --limit 20000 --max-size 256MiB
    Replay {
        /// The trace file.
        trace: PathBuf,
        /// The directory to replay in: a kplugfs mount point (or a plain directory, without
        /// hit ratio).
        #[arg(long)]
        mount: PathBuf,
        /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug.
        #[arg(long, default_value = "auto")]
        format: Format,
        /// Scratch files the trace's blocks are spread over.
        #[arg(long, default_value_t = 16)]
        files: u32,
        /// Mapping granularity (default: the mount's cache block size, else 128KiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        block_size: Option<u64>,
        /// Most bytes of scratch files; a larger working set wraps around (blocks share slots).
        #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1GiB")]
        max_size: u64,
        /// Worker threads issuing requests (1 keeps the trace's exact order).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Replay only the first N requests.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Do not issue the trace's writes (by default they rewrite the scratch files'
        /// pattern bytes).
        #[arg(long)]
        skip_writes: bool,
        /// Let the kernel page cache answer and read ahead (by default kernel readahead is off
        /// for the scratch files and what a request touched is dropped after it, so every
        /// request reaches the daemon's block cache).
        #[arg(long)]
        keep_page_cache: bool,
        /// Keep the scratch files (a later replay with the same layout reuses them).
        #[arg(long)]
        keep: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `kplugfs trace` subcommand.
/// Write one command to `MOUNT/.kplug/trace`; the daemon answers at close().
fn trace_control(mount: &Path, command: &str) -> Result<()> {
    let ctl = mount.join(".kplug/trace");
    if !ctl.exists() {
        anyhow::bail!(
            "{} is not a kplugfs mount with a block cache (no {})",
            mount.display(),
            ctl.display()
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&ctl)
        .with_context(|| format!("opening {}", ctl.display()))?;
    f.write_all(command.as_bytes())
        .with_context(|| format!("writing {}", ctl.display()))?;
    // The daemon acts on close(): its error is the command's.
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    if unsafe { libc::close(fd) } != 0 {
        let e = io::Error::last_os_error();
        anyhow::bail!("{command:?} refused by the mount ({e}); the daemon's log says why");
    }
    Ok(())
}

fn recorder_state(mount: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read(mount.join(".kplug/trace")).context("reading .kplug/trace")?;
    Ok(serde_json::from_slice(&text)?)
}

pub fn run(cmd: TraceCommand) -> Result<()> {
    match cmd {
        TraceCommand::Record { mount, out } => {
            let parent = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let dir = std::fs::canonicalize(parent)
                .with_context(|| format!("directory of {}", out.display()))?;
            let file = out
                .file_name()
                .with_context(|| format!("{} names no file", out.display()))?;
            let abs = dir.join(file);
            if abs.starts_with(std::fs::canonicalize(&mount).unwrap_or_else(|_| mount.clone())) {
                anyhow::bail!("the trace must not be written inside the mount it records");
            }
            trace_control(&mount, &format!("start {}\n", abs.display()))?;
            eprintln!(
                "recording {} into {} (stop with: kplugfs trace stop {})",
                mount.display(),
                abs.display(),
                mount.display()
            );
            Ok(())
        }
        TraceCommand::Stop { mount } => {
            if recorder_state(&mount).is_ok_and(|st| st["recording"] == false) {
                bail!("no recording in progress on {}", mount.display());
            }
            trace_control(&mount, "stop\n")?;
            let st = recorder_state(&mount)?;
            println!(
                "recorded {} accesses into {} ({} dropped)",
                st["records"],
                st["file"].as_str().unwrap_or("?"),
                st["dropped"]
            );
            Ok(())
        }
        TraceCommand::Info {
            trace,
            format,
            json,
        } => {
            let bar = bytes_bar(&trace, "reading");
            let (info, detected, skipped) = info(&trace, format, &bar)?;
            bar.finish_and_clear();
            let mut out = io::stdout().lock();
            if json {
                let mut v = serde_json::to_value(&info)?;
                v["file"] = trace.display().to_string().into();
                v["format"] = detected.name().into();
                v["skipped"] = skipped.into();
                writeln!(out, "{v}")?;
            } else {
                write!(out, "{}", info_text(&trace, detected, skipped, &info))?;
            }
            Ok(())
        }
        TraceCommand::Convert {
            input,
            output,
            to,
            format,
        } => {
            let bar = bytes_bar(&input, "converting");
            let report = convert(&input, &output, format, to, &bar)?;
            bar.finish_and_clear();
            eprintln!(
                "converted {} requests: {} ({}) -> {} ({})",
                thousands(report.requests),
                input.display(),
                report.from,
                output.display(),
                report.to
            );
            for note in conversion_notes(report.from, report.to) {
                eprintln!("note: {note}");
            }
            Ok(())
        }
        TraceCommand::Replay {
            trace,
            mount,
            format,
            files,
            block_size,
            max_size,
            threads,
            limit,
            skip_writes,
            keep_page_cache,
            keep,
            json,
        } => {
            let args = ReplayArgs {
                trace,
                format,
                mount,
                files,
                block_size,
                max_size,
                threads,
                limit,
                skip_writes,
                drop_page_cache: !keep_page_cache,
                keep,
            };
            let summary = replay(&args, true)?;
            let mut out = io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&summary)?)?;
            } else {
                write!(out, "{}", summary.to_text())?;
            }
            out.flush()?;
            if summary.mismatches > 0 {
                bail!(
                    "{} of {} reads returned wrong bytes; first: {}",
                    summary.mismatches,
                    summary.reads,
                    summary.first_mismatch.as_deref().unwrap_or("?")
                );
            }
            Ok(())
        }
    }
}

// -------------------------------------------------------------------------------------------
// Progress and number formatting
// -------------------------------------------------------------------------------------------

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn bar(len: u64, template: &str) -> ProgressBar {
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template(template)
            .expect("template")
            .progress_chars("=> "),
    )
}

/// A bar over the bytes of `path` (for wrapping its reader).
fn bytes_bar(path: &Path, msg: &'static str) -> ProgressBar {
    let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let b = bar(
        len,
        "{msg:>10} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    );
    b.set_message(msg);
    b
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit: `512 B`, `4 KiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

// -------------------------------------------------------------------------------------------
// info
// -------------------------------------------------------------------------------------------

fn open_trace(
    path: &Path,
    format: Format,
    bar: &ProgressBar,
) -> Result<TraceReader<impl io::Read>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let opts = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    Ok(TraceReader::with_options(bar.wrap_read(file), path, &opts)?)
}

/// Summarises the trace at `path`: its [`TraceInfo`], the format read and the records skipped
/// by specification.
pub fn info(path: &Path, format: Format, bar: &ProgressBar) -> Result<(TraceInfo, Format, u64)> {
    let mut reader = open_trace(path, format, bar)?;
    let detected = reader.format();
    let mut stats = TraceStats::new();
    for r in reader.by_ref() {
        stats.add(&r?);
    }
    Ok((stats.finish(), detected, reader.skipped()))
}

/// The text `kplugfs trace info` prints.
pub fn info_text(path: &Path, format: Format, skipped: u64, i: &TraceInfo) -> String {
    let pct = |n: u64| {
        if i.requests == 0 {
            0.0
        } else {
            100.0 * n as f64 / i.requests as f64
        }
    };
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "trace         {} ({format})", path.display());
    let _ = writeln!(w, "requests      {}", thousands(i.requests));
    if skipped > 0 {
        let _ = writeln!(
            w,
            "skipped       {} (by the format's rules)",
            thousands(skipped)
        );
    }
    let _ = writeln!(w, "unique ids    {}", thousands(i.unique_ids));
    let _ = writeln!(
        w,
        "reads         {} ({:.1}%), {}",
        thousands(i.reads),
        pct(i.reads),
        human_bytes(i.read_bytes)
    );
    let _ = writeln!(
        w,
        "writes        {} ({:.1}%), {}",
        thousands(i.writes),
        pct(i.writes),
        human_bytes(i.write_bytes)
    );
    let _ = writeln!(
        w,
        "bytes         {} ({}); working set {} (first-seen size of each id)",
        human_bytes(i.bytes),
        thousands(i.bytes),
        human_bytes(i.unique_bytes)
    );
    match i.sequentiality {
        Some(f) => {
            let _ = writeln!(
                w,
                "sequential    {:.1}% ({} requests continue the previous request of their stream; {} stream{})",
                100.0 * f,
                thousands(i.sequential_requests),
                thousands(i.streams),
                if i.streams == 1 { "" } else { "s" }
            );
        }
        None => {
            let _ = writeln!(w, "sequential    n/a (the format has no byte offsets)");
        }
    }
    if i.hits > 0 || i.prefetches > 0 || format == Format::Kplug {
        let _ = writeln!(
            w,
            "recorded      {} hits ({:.1}%), {} prefetches",
            thousands(i.hits),
            pct(i.hits),
            thousands(i.prefetches)
        );
    }
    if i.duration_ns > 0 {
        let _ = writeln!(
            w,
            "duration      {}",
            humantime::format_duration(Duration::from_secs(i.duration_ns / 1_000_000_000))
        );
    }
    if !i.size_histogram.is_empty() {
        let _ = writeln!(w, "request sizes");
        let max = i.size_histogram.iter().map(|b| b.count).max().unwrap_or(1);
        for b in &i.size_histogram {
            let range = if b.min == b.max {
                human_bytes(b.min)
            } else {
                format!("{} - {}", human_bytes(b.min), human_bytes(b.max + 1))
            };
            let bar_len = ((b.count as f64 / max as f64) * 30.0).ceil() as usize;
            let _ = writeln!(
                w,
                "  {range:>19}  {:>12}  {:>5.1}%  {}",
                thousands(b.count),
                pct(b.count),
                "#".repeat(bar_len)
            );
        }
    }
    s
}

// -------------------------------------------------------------------------------------------
// convert
// -------------------------------------------------------------------------------------------

/// What [`convert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertReport {
    /// Requests written.
    pub requests: u64,
    /// The input's format (detected for `auto`).
    pub from: Format,
    /// The output format.
    pub to: Format,
}

/// What a conversion drops, for the notes `convert` prints.
pub fn conversion_notes(from: Format, to: Format) -> Vec<&'static str> {
    let has_offsets = matches!(
        from,
        Format::Csv | Format::Vscsi | Format::Msr | Format::Systor | Format::Kplug
    );
    let mut notes = Vec::new();
    match to {
        Format::Txt | Format::Lirs => notes.push("txt/lirs keep the ids only"),
        Format::Csv if from != Format::Csv => {
            notes.push("csv stores whole seconds and 512-byte sectors (lbn = offset / 512)")
        }
        Format::Oracle => notes.push(
            "oracleGeneral stores whole seconds, ids and sizes (no offsets, ops or streams); \
             next-access fields were computed",
        ),
        Format::Kplug if has_offsets && from != Format::Kplug => notes.push(
            "kplug stores (stream, offset): reading it back gives id = stream, so `trace info` \
             counts streams as unique ids (convert onward to csv to get lbn ids back)",
        ),
        _ => {}
    }
    notes
}

/// Converts `input` (of `format`) to `output` in format `to`. The output is written to a
/// temporary file next to it and renamed into place only on success.
pub fn convert(
    input: &Path,
    output: &Path,
    format: Format,
    to: Format,
    bar: &ProgressBar,
) -> Result<ConvertReport> {
    if to == Format::Auto {
        bail!("--to needs a format to write: txt, lirs, csv, oracle or kplug");
    }
    if !to.has_writer() {
        bail!(
            "cannot convert to {to}: kplugfs writes txt, lirs, csv, oracle and kplug \
             (vscsi, msr and systor can be read, not written)"
        );
    }
    if let (Ok(a), Ok(b)) = (fs::canonicalize(input), fs::canonicalize(output))
        && a == b
    {
        bail!(
            "the output {} is the input; pick another file",
            output.display()
        );
    }
    let mut reader = open_trace(input, format, bar)?;
    let from = reader.format();
    let name = output
        .file_name()
        .with_context(|| format!("{} is not a file name", output.display()))?;
    let tmp = output.with_file_name(format!(
        ".{}.kplugfs-partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<u64> {
        let mut w = TraceWriter::create(&tmp, to)?;
        // Error messages name the real output, not the temporary file.
        let mut n = 0;
        if to == Format::Oracle {
            // oracleGeneral's next-access field needs the whole trace.
            let mut all = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
            kplug_traces::fill_next_access(&mut all);
            for r in &all {
                w.write(r).map_err(|e| rename_err(e, &tmp, output))?;
                n += 1;
            }
        } else {
            for r in reader.by_ref() {
                w.write(&r?).map_err(|e| rename_err(e, &tmp, output))?;
                n += 1;
            }
        }
        w.finish().map_err(|e| rename_err(e, &tmp, output))?;
        Ok(n)
    })();
    match result {
        Ok(requests) => {
            fs::rename(&tmp, output).with_context(|| {
                format!("cannot move {} to {}", tmp.display(), output.display())
            })?;
            Ok(ConvertReport { requests, from, to })
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e.context(format!(
                "converting {} to {to} failed; {} was not written",
                input.display(),
                output.display()
            )))
        }
    }
}

/// A writer error mentions the temporary file; say the output's name instead.
fn rename_err(e: kplug_traces::TraceError, tmp: &Path, output: &Path) -> anyhow::Error {
    let msg = e
        .to_string()
        .replace(&tmp.display().to_string(), &output.display().to_string());
    anyhow::anyhow!(msg)
}

// -------------------------------------------------------------------------------------------
// replay: the mapping
// -------------------------------------------------------------------------------------------

/// The name of the scratch directory inside the mount.
pub const SCRATCH_DIR: &str = ".kplugfs-replay";
const MANIFEST: &str = "layout.json";
const PATTERN_VERSION: u32 = 1;

// -------------------------------------------------------------------------------------------
// replay: running it
// -------------------------------------------------------------------------------------------

/// Options of [`replay`].
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// The trace.
    pub trace: PathBuf,
    /// Its format.
    pub format: Format,
    /// The directory to replay in.
    pub mount: PathBuf,
    /// Scratch files.
    pub files: u32,
    /// Mapping block size (`None`: the mount's cache block size, else 128 KiB).
    pub block_size: Option<u64>,
    /// Cap on the scratch files' total size.
    pub max_size: u64,
    /// Worker threads.
    pub threads: usize,
    /// Only the first N requests.
    pub limit: Option<u64>,
    /// Leave the trace's writes out.
    pub skip_writes: bool,
    /// Drop what each request read from the kernel page cache.
    pub drop_page_cache: bool,
    /// Keep the scratch files.
    pub keep: bool,
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest request.
    pub max_us: f64,
}

/// The block cache's counters over the replay.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CacheDelta {
    /// Block hits during the replay.
    pub hits: u64,
    /// Block misses during the replay.
    pub misses: u64,
    /// hits / (hits + misses), `None` without accesses.
    pub hit_ratio: Option<f64>,
}

/// The scratch layout.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScratchInfo {
    /// The scratch directory.
    pub dir: PathBuf,
    /// Files.
    pub files: u32,
    /// Bytes per file.
    pub file_size: u64,
    /// Mapping block size.
    pub block_size: u64,
    /// Distinct blocks of the trace.
    pub unique_blocks: u64,
    /// Slots (blocks of scratch space).
    pub slots: u64,
    /// Whether blocks shared slots (working set above `--max-size`).
    pub wrapped: bool,
    /// Whether existing scratch files were reused.
    pub reused: bool,
}

/// What `kplugfs trace replay` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    /// The trace file.
    pub trace: PathBuf,
    /// Its format.
    pub format: Format,
    /// The replay directory.
    pub mount: PathBuf,
    /// Requests issued.
    pub requests: u64,
    /// Reads issued.
    pub reads: u64,
    /// Writes issued.
    pub writes: u64,
    /// Trace writes left out (`--skip-writes`).
    pub skipped_writes: u64,
    /// Size-0 requests (nothing to issue).
    pub empty_requests: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall time of the replay (file creation excluded), s.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// MiB (read + written) per second.
    pub mib_per_sec: f64,
    /// Per-request latency.
    pub latency: Option<Latency>,
    /// Block cache counters, `None` when the directory has no `.kplug/status`.
    pub cache: Option<CacheDelta>,
    /// Reads whose bytes were checked (all of them).
    pub verified_reads: u64,
    /// Reads that returned wrong bytes (or too few).
    pub mismatches: u64,
    /// The first wrong read.
    pub first_mismatch: Option<String>,
    /// Worker threads.
    pub threads: usize,
    /// The scratch layout.
    pub scratch: ScratchInfo,
}

impl ReplaySummary {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "replayed      {} requests of {} ({}) in {}",
            thousands(self.requests),
            self.trace.display(),
            self.format,
            self.mount.display()
        );
        let _ = writeln!(
            w,
            "              {} reads ({}), {} writes ({}){}{}; {} thread{}",
            thousands(self.reads),
            human_bytes(self.bytes_read),
            thousands(self.writes),
            human_bytes(self.bytes_written),
            if self.skipped_writes > 0 {
                format!(", {} writes skipped", thousands(self.skipped_writes))
            } else {
                String::new()
            },
            if self.empty_requests > 0 {
                format!(", {} empty requests", thousands(self.empty_requests))
            } else {
                String::new()
            },
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
        let sc = &self.scratch;
        let _ = writeln!(
            w,
            "scratch       {} files x {} in {}{} ({} blocks of {}{})",
            sc.files,
            human_bytes(sc.file_size),
            sc.dir.display(),
            if sc.reused { ", reused" } else { "" },
            thousands(sc.unique_blocks),
            human_bytes(sc.block_size),
            if sc.wrapped {
                format!(
                    ", wrapped onto {} slots by --max-size: blocks share slots",
                    thousands(sc.slots)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            w,
            "throughput    {:.0} requests/s, {:.1} MiB/s ({:.2} s)",
            self.requests_per_sec, self.mib_per_sec, self.seconds
        );
        if let Some(l) = &self.latency {
            let us = |v: f64| human_duration_ns((v * 1000.0) as u64);
            let _ = writeln!(
                w,
                "latency       p50 {}  p90 {}  p99 {}  max {}",
                us(l.p50_us),
                us(l.p90_us),
                us(l.p99_us),
                us(l.max_us)
            );
        }
        match &self.cache {
            Some(c) => {
                let ratio = c
                    .hit_ratio
                    .map_or("n/a (no block accesses)".to_string(), |r| {
                        format!("{:.1}%", r * 100.0)
                    });
                let _ = writeln!(
                    w,
                    "hit ratio     {ratio} ({} block hits, {} misses in .kplug/status)",
                    thousands(c.hits),
                    thousands(c.misses)
                );
            }
            None => {
                let _ = writeln!(
                    w,
                    "hit ratio     n/a ({} has no .kplug/status: not a kplugfs mount, or its cache is off)",
                    self.mount.display()
                );
            }
        }
        if self.mismatches == 0 {
            let _ = writeln!(
                w,
                "verified      all {} reads returned the expected bytes",
                thousands(self.verified_reads)
            );
        } else {
            let _ = writeln!(
                w,
                "WRONG DATA    {} of {} reads; first: {}",
                thousands(self.mismatches),
                thousands(self.verified_reads),
                self.first_mismatch.as_deref().unwrap_or("?")
            );
        }
        s
    }
}

/// `(hits, misses, block_size)` from `MOUNT/.kplug/status`, if there is one.
fn cache_status(mount: &Path) -> Option<(u64, u64, u64)> {
    let text = fs::read(mount.join(".kplug/status")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let c = &v["cache"];
    Some((
        c["hits"].as_u64()?,
        c["misses"].as_u64()?,
        c["block_size"].as_u64()?,
    ))
}

#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
struct Manifest {
    pattern: u32,
    files: u32,
    file_size: u64,
}

fn scratch_file(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("f{i:04}"))
}

/// Creates (or reuses) the scratch files of `plan` in `dir`. Returns whether they were
/// reused.
fn prepare_scratch(dir: &Path, plan: &Plan, progress: bool) -> Result<bool> {
    let want = Manifest {
        pattern: PATTERN_VERSION,
        files: plan.files,
        file_size: plan.file_size,
    };
    let manifest = dir.join(MANIFEST);
    if dir.exists() {
        let Ok(text) = fs::read(&manifest) else {
            bail!(
                "{} exists but was not made by `kplugfs trace replay` (no {MANIFEST}); \
                 move it away first",
                dir.display()
            );
        };
        let have: Option<Manifest> = serde_json::from_slice(&text).ok();
        let complete = (0..plan.files)
            .all(|i| fs::metadata(scratch_file(dir, i)).is_ok_and(|m| m.len() == plan.file_size));
        if have.as_ref() == Some(&want) && complete {
            return Ok(true);
        }
        remove_scratch(dir)?;
    }
    fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let total = u64::from(plan.files) * plan.file_size;
    let bar = bar(
        total,
        "{msg:>10} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    );
    if !progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_message("creating");
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..plan.files {
        let path = scratch_file(dir, i);
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut off = 0;
        while off < plan.file_size {
            let n = (plan.file_size - off).min(buf.len() as u64) as usize;
            fill_pattern(i, off, &mut buf[..n]);
            f.write_all_at(&buf[..n], off)
                .with_context(|| format!("cannot write {}", path.display()))?;
            off += n as u64;
            bar.inc(n as u64);
        }
        f.sync_all()
            .with_context(|| format!("cannot sync {}", path.display()))?;
    }
    bar.finish_and_clear();
    fs::write(&manifest, serde_json::to_vec(&want)?)
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    Ok(false)
}

/// Removes a scratch directory made by [`prepare_scratch`]: only its own files.
fn remove_scratch(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name == MANIFEST
            || (name.len() == 5
                && name.starts_with('f')
                && name[1..].bytes().all(|b| b.is_ascii_digit()));
        if ours {
            fs::remove_file(e.path())
                .with_context(|| format!("cannot remove {}", e.path().display()))?;
        }
    }
    fs::remove_dir(dir).with_context(|| {
        format!(
            "cannot remove {} (files other than the replay's are in it?)",
            dir.display()
        )
    })
}

struct WorkerOut {
    latencies_ns: Vec<u64>,
    reads: u64,
    writes: u64,
    skipped_writes: u64,
    bytes_read: u64,
    bytes_written: u64,
    mismatches: u64,
}

/// Replays `args.trace` in `args.mount`; `progress` shows bars on stderr (when it is a
/// terminal).
pub fn replay(args: &ReplayArgs, progress: bool) -> Result<ReplaySummary> {
    let mount = &args.mount;
    let md = fs::metadata(mount).with_context(|| {
        format!(
            "--mount {}: cannot use it as the replay directory",
            mount.display()
        )
    })?;
    if !md.is_dir() {
        bail!("--mount {}: not a directory", mount.display());
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let status_before = cache_status(mount);
    let block_size = args
        .block_size
        .or(status_before.map(|s| s.2))
        .unwrap_or(128 << 10);
    let read_bar = bytes_bar(&args.trace, "mapping");
    if !progress {
        read_bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let reader = open_trace(&args.trace, args.format, &read_bar)?;
    let plan = Plan::build(reader, args.limit, args.files, block_size, args.max_size)?;
    read_bar.finish_and_clear();
    let dir = mount.join(SCRATCH_DIR);
    let reused = prepare_scratch(&dir, &plan, progress)?;
    let result = run_jobs(args, &plan, &dir, progress);
    let status_after = cache_status(mount);
    if !args.keep {
        remove_scratch(&dir)?;
    }
    let (outs, elapsed, first_mismatch) = result?;
    let mut lat: Vec<u64> = Vec::with_capacity(plan.jobs.len());
    let mut sum = WorkerOut {
        latencies_ns: Vec::new(),
        reads: 0,
        writes: 0,
        skipped_writes: 0,
        bytes_read: 0,
        bytes_written: 0,
        mismatches: 0,
    };
    for o in outs {
        lat.extend(o.latencies_ns);
        sum.reads += o.reads;
        sum.writes += o.writes;
        sum.skipped_writes += o.skipped_writes;
        sum.bytes_read += o.bytes_read;
        sum.bytes_written += o.bytes_written;
        sum.mismatches += o.mismatches;
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let latency = (!lat.is_empty()).then(|| Latency {
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: *lat.last().unwrap() as f64 / 1000.0,
    });
    let cache = match (status_before, status_after) {
        (Some((h0, m0, _)), Some((h1, m1, _))) => {
            let hits = h1.saturating_sub(h0);
            let misses = m1.saturating_sub(m0);
            Some(CacheDelta {
                hits,
                misses,
                hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
            })
        }
        _ => None,
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    let requests = sum.reads + sum.writes;
    Ok(ReplaySummary {
        trace: args.trace.clone(),
        format: plan.format,
        mount: mount.clone(),
        requests,
        reads: sum.reads,
        writes: sum.writes,
        skipped_writes: sum.skipped_writes,
        empty_requests: plan.empty,
        bytes_read: sum.bytes_read,
        bytes_written: sum.bytes_written,
        seconds: elapsed.as_secs_f64(),
        requests_per_sec: requests as f64 / secs,
        mib_per_sec: (sum.bytes_read + sum.bytes_written) as f64 / secs / f64::from(1 << 20),
        latency,
        cache,
        verified_reads: sum.reads,
        mismatches: sum.mismatches,
        first_mismatch,
        threads: args.threads,
        scratch: ScratchInfo {
            dir,
            files: plan.files,
            file_size: plan.file_size,
            block_size: plan.block_size,
            unique_blocks: plan.unique_blocks,
            slots: plan.slots,
            wrapped: plan.wrapped,
            reused,
        },
    })
}

type JobsResult = (Vec<WorkerOut>, Duration, Option<String>);

fn run_jobs(args: &ReplayArgs, plan: &Plan, dir: &Path, progress: bool) -> Result<JobsResult> {
    let bar = bar(
        plan.jobs.len() as u64,
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
    );
    if !progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_message("replaying");
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let first_mismatch: Mutex<Option<String>> = Mutex::new(None);
    let start = Instant::now();
    let outs: Vec<WorkerOut> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut w = Worker {
                        dir,
                        files: (0..plan.files).map(|_| None).collect(),
                        write: !args.skip_writes,
                        drop_pages: args.drop_page_cache,
                        buf: Vec::new(),
                        want: Vec::new(),
                        out: WorkerOut {
                            latencies_ns: Vec::with_capacity(plan.jobs.len() / args.threads + 1),
                            reads: 0,
                            writes: 0,
                            skipped_writes: 0,
                            bytes_read: 0,
                            bytes_written: 0,
                            mismatches: 0,
                        },
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = plan.jobs.get(i) else { break };
                        match w.run(i, job, plan.segs(job)) {
                            Ok(None) => {}
                            Ok(Some(bad)) => {
                                first_mismatch.lock().get_or_insert(bad);
                            }
                            Err(e) => {
                                first_error.lock().get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        bar.inc(1);
                    }
                    w.out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| h.join().expect("replay worker panicked"))
            .collect()
    });
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner() {
        return Err(e);
    }
    Ok((outs, elapsed, first_mismatch.into_inner()))
}

struct Worker<'a> {
    dir: &'a Path,
    files: Vec<Option<File>>,
    write: bool,
    drop_pages: bool,
    buf: Vec<u8>,
    want: Vec<u8>,
    out: WorkerOut,
}

impl Worker<'_> {
    fn file(&mut self, i: u32) -> Result<&File> {
        let slot = &mut self.files[i as usize];
        if slot.is_none() {
            let path = scratch_file(self.dir, i);
            let f = OpenOptions::new()
                .read(true)
                .write(self.write)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if self.drop_pages {
                // No kernel readahead either: the daemon sees exactly the trace's requests.
                // SAFETY: an open descriptor; advice never touches memory.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
            }
            *slot = Some(f);
        }
        Ok(slot.as_ref().expect("opened"))
    }

    /// Issues job `i`; `Ok(Some(why))` when a read returned wrong bytes.
    fn run(&mut self, i: usize, job: &Job, segs: &[Seg]) -> Result<Option<String>> {
        if job.op == Op::Write && !self.write {
            self.out.skipped_writes += 1;
            return Ok(None);
        }
        let mut bad = None;
        let t0 = Instant::now();
        for seg in segs {
            let len = seg.len as usize;
            if self.buf.len() < len {
                self.buf.resize(len, 0);
                self.want.resize(len, 0);
            }
            match job.op {
                Op::Read => {
                    let mut buf = std::mem::take(&mut self.buf);
                    let got = pread_full(self.file(seg.file)?, &mut buf[..len], seg.offset);
                    self.buf = buf;
                    let got = got.with_context(|| {
                        format!(
                            "request {}: read of f{:04} at {}",
                            i + 1,
                            seg.file,
                            seg.offset
                        )
                    })?;
                    self.out.bytes_read += got as u64;
                    fill_pattern(seg.file, seg.offset, &mut self.want[..len]);
                    if bad.is_none() {
                        if got < len {
                            bad = Some(format!(
                                "request {}: f{:04} at {}: {got} of {len} bytes (early end of file)",
                                i + 1,
                                seg.file,
                                seg.offset
                            ));
                        } else if self.buf[..len] != self.want[..len]
                            && let Some(at) = (0..len).find(|&k| self.buf[k] != self.want[k])
                        {
                            bad = Some(format!(
                                "request {}: f{:04} at {}: byte {} is {:#04x}, want {:#04x}",
                                i + 1,
                                seg.file,
                                seg.offset,
                                seg.offset + at as u64,
                                self.buf[at],
                                self.want[at]
                            ));
                        }
                    }
                }
                Op::Write => {
                    fill_pattern(seg.file, seg.offset, &mut self.want[..len]);
                    let want = std::mem::take(&mut self.want);
                    let r = self.file(seg.file)?.write_all_at(&want[..len], seg.offset);
                    self.want = want;
                    r.with_context(|| {
                        format!(
                            "request {}: write of f{:04} at {}",
                            i + 1,
                            seg.file,
                            seg.offset
                        )
                    })?;
                    self.out.bytes_written += seg.len;
                }
            }
        }
        self.out.latencies_ns.push(t0.elapsed().as_nanos() as u64);
        match job.op {
            Op::Read => self.out.reads += 1,
            Op::Write => self.out.writes += 1,
        }
        if self.drop_pages {
            for seg in segs {
                let f = self.file(seg.file)?;
                // SAFETY: an open descriptor; advice never touches memory.
                unsafe {
                    libc::posix_fadvise(
                        f.as_raw_fd(),
                        seg.offset as libc::off_t,
                        seg.len as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    );
                }
            }
        }
        if bad.is_some() {
            self.out.mismatches += 1;
        }
        Ok(bad)
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn pread_full(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(113_872), "113,872");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
