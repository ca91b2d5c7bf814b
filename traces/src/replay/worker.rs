//! Issuing a [`Plan`]'s requests against its scratch files and checking every byte read.
//!
//! Design: `threads` scoped workers take the next job from one atomic counter, so with one
//! worker the trace's order is kept exactly and with more they still start requests in trace
//! order. Each worker opens the files it touches lazily (with `posix_fadvise(RANDOM)` when the
//! page cache is kept out of the way, so the kernel reads nothing ahead), times each request
//! over all its segments, and compares what it read with [`fill_pattern`] in its own
//! buffers; counters are per worker and added up at the end, so workers share nothing but the
//! job counter and the first error or mismatch. A wrong read is counted and
//! described, not an error: the replay goes on and the summary reports it. An I/O error stops
//! every worker after its current request.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::pattern::fill_pattern;
use super::plan::{Job, Plan, Seg};
use super::scratch::scratch_file;
use crate::Op;
use crate::progress::{Progress, Stage};

/// An I/O error of a replay's request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A scratch file did not open.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A read failed.
    #[error("request {request}: read of f{file:04} at {offset}")]
    Read {
        /// 1-based request number among the plan's jobs.
        request: usize,
        /// Scratch file index.
        file: u32,
        /// Offset in it.
        offset: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A write failed.
    #[error("request {request}: write of f{file:04} at {offset}")]
    Write {
        /// 1-based request number among the plan's jobs.
        request: usize,
        /// Scratch file index.
        file: u32,
        /// Offset in it.
        offset: u64,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// How the workers issue requests.
#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Issue the trace's writes (else count them as skipped).
    pub write: bool,
    /// No kernel readahead, and drop what each request touched from the page cache.
    pub drop_pages: bool,
}

/// What the workers did, added up.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Every request's latency, ns, sorted.
    pub latencies_ns: Vec<u64>,
    pub reads: u64,
    pub writes: u64,
    pub skipped_writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Reads that returned wrong bytes (or too few).
    pub mismatches: u64,
    /// The first of them, described.
    pub first_mismatch: Option<String>,
    /// Wall time from the first request to the last.
    pub elapsed: Duration,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.latencies_ns.extend(o.latencies_ns);
        self.reads += o.reads;
        self.writes += o.writes;
        self.skipped_writes += o.skipped_writes;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.mismatches += o.mismatches;
    }
}

/// Runs every job of `plan` against the scratch files in `dir`; the requests done are the
/// stage [`Stage::Replay`] of `progress`.
pub(super) fn run_jobs(
    plan: &Plan,
    dir: &Path,
    opts: WorkerOptions,
    progress: &impl Progress,
) -> Result<Totals, RequestError> {
    progress.begin(Stage::Replay, plan.jobs.len() as u64);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<RequestError>> = Mutex::new(None);
    let first_mismatch: Mutex<Option<String>> = Mutex::new(None);
    let start = Instant::now();
    let outs: Vec<Totals> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..opts.threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut w = Worker {
                        dir,
                        files: (0..plan.files).map(|_| None).collect(),
                        write: opts.write,
                        drop_pages: opts.drop_pages,
                        buf: Vec::new(),
                        want: Vec::new(),
                        out: Totals {
                            latencies_ns: Vec::with_capacity(plan.jobs.len() / opts.threads + 1),
                            ..Totals::default()
                        },
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = plan.jobs.get(i) else { break };
                        match w.run(i, job, plan.segs(job)) {
                            Ok(None) => {}
                            Ok(Some(bad)) => {
                                lock(&first_mismatch).get_or_insert(bad);
                            }
                            Err(e) => {
                                lock(&first_error).get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        progress.inc(1);
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
    progress.finish();
    if let Some(e) = into_inner(first_error) {
        return Err(e);
    }
    let mut sum = Totals::default();
    for o in outs {
        sum.add(o);
    }
    sum.latencies_ns.sort_unstable();
    sum.first_mismatch = into_inner(first_mismatch);
    sum.elapsed = elapsed;
    Ok(sum)
}

/// The mutexes guard one `Option` set once: a worker that panicked holding one left it
/// consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

struct Worker<'a> {
    dir: &'a Path,
    files: Vec<Option<File>>,
    write: bool,
    drop_pages: bool,
    buf: Vec<u8>,
    want: Vec<u8>,
    out: Totals,
}

impl Worker<'_> {
    fn file(&mut self, i: u32) -> Result<&File, RequestError> {
        let slot = &mut self.files[i as usize];
        if slot.is_none() {
            let path = scratch_file(self.dir, i);
            let f = OpenOptions::new()
                .read(true)
                .write(self.write)
                .open(&path)
                .map_err(|source| RequestError::Open {
                    path: path.clone(),
                    source,
                })?;
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
    fn run(&mut self, i: usize, job: &Job, segs: &[Seg]) -> Result<Option<String>, RequestError> {
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
                    let got = got.map_err(|source| RequestError::Read {
                        request: i + 1,
                        file: seg.file,
                        offset: seg.offset,
                        source,
                    })?;
                    self.out.bytes_read += got as u64;
                    fill_pattern(seg.file, seg.offset, &mut self.want[..len]);
                    if bad.is_none() {
                        bad = self.check(i, seg, got);
                    }
                }
                Op::Write => {
                    fill_pattern(seg.file, seg.offset, &mut self.want[..len]);
                    let want = std::mem::take(&mut self.want);
                    let r = self.file(seg.file)?.write_all_at(&want[..len], seg.offset);
                    self.want = want;
                    r.map_err(|source| RequestError::Write {
                        request: i + 1,
                        file: seg.file,
                        offset: seg.offset,
                        source,
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

    /// Compares the `got` bytes read for `seg` of job `i` (in `buf`) with the pattern (in
    /// `want`): `Some(why)` when they differ.
    fn check(&self, i: usize, seg: &Seg, got: usize) -> Option<String> {
        let len = seg.len as usize;
        if got < len {
            return Some(format!(
                "request {}: f{:04} at {}: {got} of {len} bytes (early end of file)",
                i + 1,
                seg.file,
                seg.offset
            ));
        }
        if self.buf[..len] == self.want[..len] {
            return None;
        }
        let at = (0..len).find(|&k| self.buf[k] != self.want[k])?;
        Some(format!(
            "request {}: f{:04} at {}: byte {} is {:#04x}, want {:#04x}",
            i + 1,
            seg.file,
            seg.offset,
            seg.offset + at as u64,
            self.buf[at],
            self.want[at]
        ))
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
