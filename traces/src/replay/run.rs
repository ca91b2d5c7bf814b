//! [`replay`]: a whole replay, from the trace file to the [`ReplaySummary`].
//!
//! Design: the steps in order, each in its own file (map the trace: `plan.rs`; make the
//! scratch files: `scratch.rs`; issue the requests: `worker.rs`), and the block cache's
//! figures read through the caller's probe just before mapping and just after the last
//! request, so that neither mapping nor file creation nor the removal of the scratch files
//! counts in the hit ratio. The probe answers `Ok(None)` where there is no cache to read, and
//! an error where there is one it cannot read. The scratch directory is removed (unless kept)
//! whether or not the requests succeeded; an error removing it is reported first, then a
//! request's, then the probe's.

use std::error::Error;
use std::fs;
use std::io;
use std::path::PathBuf;

use super::plan::{Plan, PlanError};
use super::scratch::{SCRATCH_DIR, ScratchError, prepare_scratch, remove_scratch};
use super::summary::{CacheDelta, CacheFigures, Latency, ReplaySummary, ScratchInfo};
use super::worker::{RequestError, WorkerOptions, run_jobs};
use crate::Format;
use crate::progress::{Progress, ReadError, open_trace};

/// The mapping granularity when neither the options nor the cache give one.
pub const DEFAULT_BLOCK_SIZE: u64 = 128 << 10;

/// What to replay, where and how (`kplugfs trace replay`'s options).
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The trace.
    pub trace: PathBuf,
    /// Its format.
    pub format: Format,
    /// The directory to replay in.
    pub mount: PathBuf,
    /// Scratch files.
    pub files: u32,
    /// Mapping block size (`None`: the cache's block size, else [`DEFAULT_BLOCK_SIZE`]).
    pub block_size: Option<u64>,
    /// Cap on the scratch files' total size.
    pub max_size: u64,
    /// Worker threads.
    pub threads: usize,
    /// Only the first N requests.
    pub limit: Option<u64>,
    /// Leave the trace's writes out.
    pub skip_writes: bool,
    /// Drop what each request read from the kernel page cache (and no kernel readahead).
    pub drop_page_cache: bool,
    /// Keep the scratch files.
    pub keep: bool,
}

/// Why a replay did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The replay directory cannot be used.
    #[error("--mount {}: cannot use it as the replay directory", dir.display())]
    Mount {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The replay directory is not a directory.
    #[error("--mount {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// No worker thread asked for.
    #[error("--threads must be at least 1")]
    NoThreads,
    /// The trace did not open.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The trace could not be mapped.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The scratch directory could not be made or removed.
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    /// A request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The caller's probe could not read the block cache's figures.
    #[error("cannot read the block cache's figures")]
    Cache(#[source] Box<dyn Error + Send + Sync>),
}

/// Replays `opts.trace` in `opts.mount`, reporting each stage to `progress`; `cache` reads
/// the block cache's figures (`Ok(None)` when there is no cache to read), once before and
/// once after the requests.
pub fn replay(
    opts: &ReplayOptions,
    progress: &impl Progress,
    mut cache: impl FnMut() -> Result<Option<CacheFigures>, Box<dyn Error + Send + Sync>>,
) -> Result<ReplaySummary, ReplayError> {
    let mount = &opts.mount;
    let md = fs::metadata(mount).map_err(|source| ReplayError::Mount {
        dir: mount.clone(),
        source,
    })?;
    if !md.is_dir() {
        return Err(ReplayError::NotADirectory(mount.clone()));
    }
    if opts.threads == 0 {
        return Err(ReplayError::NoThreads);
    }
    let before = cache().map_err(ReplayError::Cache)?;
    let block_size = opts
        .block_size
        .or(before.map(|c| c.block_size))
        .unwrap_or(DEFAULT_BLOCK_SIZE);
    let reader = open_trace(&opts.trace, opts.format, progress)?;
    let plan = Plan::build(reader, opts.limit, opts.files, block_size, opts.max_size)?;
    progress.finish();
    let dir = mount.join(SCRATCH_DIR);
    let reused = prepare_scratch(&dir, &plan, progress)?;
    let workers = WorkerOptions {
        threads: opts.threads,
        write: !opts.skip_writes,
        drop_pages: opts.drop_page_cache,
    };
    let result = run_jobs(&plan, &dir, workers, progress);
    let after = cache();
    if !opts.keep {
        remove_scratch(&dir)?;
    }
    let run = result?;
    let after = after.map_err(ReplayError::Cache)?;
    let secs = run.elapsed.as_secs_f64().max(1e-9);
    let requests = run.reads + run.writes;
    Ok(ReplaySummary {
        trace: opts.trace.clone(),
        format: plan.format,
        mount: mount.clone(),
        requests,
        reads: run.reads,
        writes: run.writes,
        skipped_writes: run.skipped_writes,
        empty_requests: plan.empty,
        bytes_read: run.bytes_read,
        bytes_written: run.bytes_written,
        seconds: run.elapsed.as_secs_f64(),
        requests_per_sec: requests as f64 / secs,
        mib_per_sec: (run.bytes_read + run.bytes_written) as f64 / secs / f64::from(1 << 20),
        latency: Latency::from_sorted(&run.latencies_ns),
        cache: CacheDelta::between(before, after),
        verified_reads: run.reads,
        mismatches: run.mismatches,
        first_mismatch: run.first_mismatch,
        threads: opts.threads,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::progress::{Event, Log, Stage};
    use crate::replay::{fill_pattern, scratch_file};
    use crate::{Flags, Op, Request, TraceWriter};

    /// 300 requests over two streams: reads and writes of 1 to 12 KiB, some reused, some
    /// sequential, every 50th of size 0.
    fn write_trace(path: &Path) {
        let mut w = TraceWriter::create(path, Format::Kplug).unwrap();
        for i in 0..300u64 {
            let stream = i % 2;
            let offset = (i * 7 % 40) * 4096 + (i % 5) * 100;
            w.write(&Request {
                time: i * 1000,
                id: stream,
                offset: Some(offset),
                size: if i % 50 == 7 { 0 } else { 1024 * (1 + i % 12) },
                op: if i % 3 == 0 { Op::Write } else { Op::Read },
                stream,
                flags: Flags::NONE,
                next_access: None,
            })
            .unwrap();
        }
        w.finish().unwrap();
    }

    struct Setup {
        _root: tempfile::TempDir,
        opts: ReplayOptions,
    }

    fn setup() -> Setup {
        let root = tempfile::tempdir().unwrap();
        let trace = root.path().join("t.kplug");
        write_trace(&trace);
        let mount = root.path().join("mnt");
        fs::create_dir(&mount).unwrap();
        let opts = ReplayOptions {
            trace,
            format: Format::Auto,
            mount,
            files: 4,
            block_size: None,
            max_size: 1 << 30,
            threads: 1,
            limit: None,
            skip_writes: false,
            drop_page_cache: true,
            keep: false,
        };
        Setup { _root: root, opts }
    }

    #[test]
    fn a_replay_in_a_plain_directory() {
        let s = setup();
        let log = Log::default();
        let r = replay(&s.opts, &log, || Ok(None)).unwrap();
        assert_eq!(r.format, Format::Kplug);
        assert_eq!(
            (r.requests, r.reads, r.writes, r.empty_requests),
            (294, 196, 98, 6)
        );
        assert_eq!((r.verified_reads, r.mismatches), (196, 0));
        assert_eq!(r.first_mismatch, None);
        assert!(r.bytes_read > 0 && r.bytes_written > 0);
        assert!(r.cache.is_none());
        assert_eq!(r.scratch.block_size, DEFAULT_BLOCK_SIZE);
        assert!(!r.scratch.reused && !r.scratch.wrapped);
        let l = r.latency.unwrap();
        assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.max_us);
        assert!(!r.scratch.dir.exists(), "removed");
        let trace_len = fs::metadata(&s.opts.trace).unwrap().len();
        let scratch_len = u64::from(r.scratch.files) * r.scratch.file_size;
        assert_eq!(
            log.events(),
            [
                Event::Begin(Stage::ReadTrace, trace_len),
                Event::Done(trace_len),
                Event::Finish,
                Event::Begin(Stage::CreateScratch, scratch_len),
                Event::Done(scratch_len),
                Event::Finish,
                Event::Begin(Stage::Replay, 294),
                Event::Done(294),
                Event::Finish,
            ]
        );
    }

    #[test]
    fn the_probe_gives_the_block_size_and_the_hit_ratio() {
        let s = setup();
        let mut calls = 0;
        let probe = || {
            calls += 1;
            Ok(Some(CacheFigures {
                hits: 100 * calls,
                misses: 10 + calls,
                block_size: 4096,
            }))
        };
        let r = replay(&s.opts, &(), probe).unwrap();
        assert_eq!(calls, 2, "before and after");
        assert_eq!(r.scratch.block_size, 4096);
        let c = r.cache.unwrap();
        assert_eq!((c.hits, c.misses), (100, 1));
        // --block-size wins over the cache's.
        let opts = ReplayOptions {
            block_size: Some(8192),
            ..s.opts.clone()
        };
        let r = replay(&opts, &(), || Ok(None)).unwrap();
        assert_eq!(r.scratch.block_size, 8192);
    }

    #[test]
    fn a_probe_error_stops_the_replay_and_removes_the_scratch_files() {
        let s = setup();
        let e = replay(&s.opts, &(), || Err("unreadable".into())).unwrap_err();
        assert!(matches!(e, ReplayError::Cache(_)));
        assert_eq!(fs::read_dir(&s.opts.mount).unwrap().count(), 0);
        let mut calls = 0;
        let after_fails = || {
            calls += 1;
            if calls == 1 {
                Ok(None)
            } else {
                Err("gone".into())
            }
        };
        let e = replay(&s.opts, &(), after_fails).unwrap_err();
        assert_eq!(e.source().unwrap().to_string(), "gone");
        assert_eq!(fs::read_dir(&s.opts.mount).unwrap().count(), 0);
    }

    #[test]
    fn threads_limit_and_skipped_writes() {
        let s = setup();
        let one = replay(&s.opts, &(), || Ok(None)).unwrap();
        let opts = ReplayOptions {
            threads: 4,
            ..s.opts.clone()
        };
        let four = replay(&opts, &(), || Ok(None)).unwrap();
        assert_eq!(
            (four.reads, four.writes, four.bytes_read, four.bytes_written),
            (one.reads, one.writes, one.bytes_read, one.bytes_written)
        );
        assert_eq!(four.mismatches, 0);
        let opts = ReplayOptions {
            skip_writes: true,
            limit: Some(30),
            ..s.opts.clone()
        };
        let r = replay(&opts, &(), || Ok(None)).unwrap();
        assert_eq!((r.reads, r.writes, r.skipped_writes), (19, 0, 10));
        assert_eq!((r.empty_requests, r.bytes_written), (1, 0));
    }

    #[test]
    fn writes_keep_the_pattern_and_kept_files_are_reused() {
        let s = setup();
        let opts = ReplayOptions {
            keep: true,
            ..s.opts.clone()
        };
        let r = replay(&opts, &(), || Ok(None)).unwrap();
        assert!(r.writes > 0);
        for i in 0..r.scratch.files {
            let mut want = vec![0u8; r.scratch.file_size as usize];
            fill_pattern(i, 0, &mut want);
            assert!(fs::read(scratch_file(&r.scratch.dir, i)).unwrap() == want);
        }
        let log = Log::default();
        let again = replay(&opts, &log, || Ok(None)).unwrap();
        assert!(again.scratch.reused);
        assert!(
            !log.events()
                .iter()
                .any(|e| matches!(e, Event::Begin(Stage::CreateScratch, _)))
        );
    }

    #[test]
    fn wrong_bytes_are_counted_and_described() {
        let s = setup();
        let opts = ReplayOptions {
            keep: true,
            skip_writes: true,
            ..s.opts.clone()
        };
        let r = replay(&opts, &(), || Ok(None)).unwrap();
        let f0 = scratch_file(&r.scratch.dir, 0);
        fs::write(&f0, vec![0u8; r.scratch.file_size as usize]).unwrap();
        let opts = ReplayOptions {
            keep: false,
            ..opts
        };
        let r = replay(&opts, &(), || Ok(None)).unwrap();
        assert!(r.scratch.reused);
        assert!(r.mismatches > 0 && r.mismatches < r.reads);
        assert_eq!(r.verified_reads, r.reads);
        let why = r.first_mismatch.unwrap();
        assert!(
            why.contains(": f0000 at ") && why.contains(", want 0x"),
            "{why}"
        );
        assert!(!r.scratch.dir.exists());
    }

    #[test]
    fn bad_options_are_refused_before_anything_is_written() {
        let s = setup();
        let with = |f: &dyn Fn(&mut ReplayOptions)| {
            let mut o = s.opts.clone();
            f(&mut o);
            replay(&o, &(), || Ok(None)).unwrap_err()
        };
        let e = with(&|o| o.mount = o.mount.join("missing"));
        assert!(matches!(e, ReplayError::Mount { .. }));
        assert!(
            e.to_string()
                .ends_with("mnt/missing: cannot use it as the replay directory")
        );
        let e = with(&|o| o.mount = o.trace.clone());
        assert!(matches!(e, ReplayError::NotADirectory(_)));
        let e = with(&|o| o.threads = 0);
        assert!(matches!(e, ReplayError::NoThreads));
        let e = with(&|o| o.trace = o.trace.with_extension("nope"));
        assert!(matches!(e, ReplayError::Read(ReadError::Open { .. })));
        let e = with(&|o| o.files = 0);
        assert!(matches!(e, ReplayError::Plan(PlanError::NoFiles)));
        assert_eq!(fs::read_dir(&s.opts.mount).unwrap().count(), 0);
    }
}
