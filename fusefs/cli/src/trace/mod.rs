//! `kplugfs trace`: summarise, convert, record and replay I/O traces (see `docs/traces.md`).
//!
//! Design: this module is the command line only. What the commands do is `kplug-traces`'s:
//! `info` and `convert` are `kplug_traces::convert`, `replay` is `kplug_traces::replay`
//! (where the mapping of a trace onto scratch files is described), and their progress is
//! drawn by `bars.rs`. What stays here is what needs a mount or a terminal: the recorder's
//! commands (`record.rs`), reading the block cache's figures from `MOUNT/.kplug/status` with
//! the daemon's schema for the replay's hit ratio, and the text output (`render.rs`).

mod bars;
mod record;
mod render;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Subcommand;
use kplug_daemon::monitor::schema::Status;
use kplug_traces::Format;
use kplug_traces::convert::{conversion_notes, convert, info};
use kplug_traces::replay::{CacheFigures, ReplayOptions, replay};

use self::bars::Bars;
use self::render::{info_text, replay_text, thousands};
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
        /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug. A
        /// zstd-compressed trace (.zst) is decompressed as it is read, whatever the format.
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
        /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug. A
        /// zstd-compressed trace (.zst) is decompressed as it is read, whatever the format.
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
pub fn run(cmd: TraceCommand) -> Result<()> {
    match cmd {
        TraceCommand::Record { mount, out } => record::record(&mount, &out),
        TraceCommand::Stop { mount } => record::stop(&mount),
        TraceCommand::Info {
            trace,
            format,
            json,
        } => {
            let report = info(&trace, format, &Bars::new("reading"))?;
            let mut out = io::stdout().lock();
            if json {
                let mut v = serde_json::to_value(&report.info)?;
                v["file"] = trace.display().to_string().into();
                v["format"] = report.format.name().into();
                v["skipped"] = report.skipped.into();
                writeln!(out, "{v}")?;
            } else {
                write!(out, "{}", info_text(&trace, &report))?;
            }
            Ok(())
        }
        TraceCommand::Convert {
            input,
            output,
            to,
            format,
        } => {
            let report = convert(&input, &output, format, to, &Bars::new("converting"))?;
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
            let opts = ReplayOptions {
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
            let summary = replay(&opts, &Bars::new("mapping"), || cache_figures(&opts.mount))?;
            let mut out = io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&summary)?)?;
            } else {
                write!(out, "{}", replay_text(&summary))?;
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

/// The block cache's figures in `MOUNT/.kplug/status`: none where there is no such file (a
/// plain directory, a mount without a block cache), an error where it is not the document
/// this kplugfs writes.
fn cache_figures(
    mount: &Path,
) -> Result<Option<CacheFigures>, Box<dyn std::error::Error + Send + Sync>> {
    let path = mount.join(".kplug/status");
    let Ok(text) = fs::read(&path) else {
        return Ok(None);
    };
    let status: Status = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: {e} (a daemon of another kplugfs version?)",
            path.display()
        )
    })?;
    Ok(Some(CacheFigures {
        hits: status.cache.hits,
        misses: status.cache.misses,
        block_size: status.cache.block_size,
    }))
}
