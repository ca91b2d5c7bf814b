//! How the whole-file operations ([`crate::convert`], [`crate::replay`]) report how far they
//! got, and the reading of a trace file under that report.
//!
//! Design: an operation announces each [`Stage`] with its total, then counts units done, and
//! says when the stage is complete; the caller decides what to draw (`kplugfs trace` turns
//! each stage into an indicatif bar; tests pass `()`, which reports nothing). This crate thus
//! stays free of terminal code. A trace file is read through [`ProgressRead`], which counts
//! the bytes its reader pulls: the readers pull 64 KiB at a time, so the hook is called once
//! per buffer, not once per request.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::{Format, ReadOptions, TraceError, TraceReader};

/// A stage of a long operation, and the unit its progress counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading a trace file (summarising, converting or mapping it): bytes of the file.
    ReadTrace,
    /// Creating a replay's scratch files: bytes written.
    CreateScratch,
    /// Issuing a replay's requests: requests.
    Replay,
}

/// Where a long operation reports its progress. Called from the operation's threads (a
/// replay's workers count requests concurrently), hence `Sync`.
pub trait Progress: Sync {
    /// `stage` begins, with `total` units of work (`0` when unknown).
    fn begin(&self, stage: Stage, total: u64);
    /// `n` more units of the current stage are done.
    fn inc(&self, n: u64);
    /// The current stage is complete. Not called when the operation fails.
    fn finish(&self);
}

/// No progress reporting.
impl Progress for () {
    fn begin(&self, _: Stage, _: u64) {}
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}

/// A reader that reports the bytes it reads to a [`Progress`].
pub struct ProgressRead<'p, R, P: ?Sized> {
    inner: R,
    progress: &'p P,
}

impl<'p, R: Read, P: Progress + ?Sized> ProgressRead<'p, R, P> {
    /// Reads `inner`, counting into `progress`.
    pub fn new(inner: R, progress: &'p P) -> Self {
        ProgressRead { inner, progress }
    }
}

impl<R: Read, P: Progress + ?Sized> Read for ProgressRead<'_, R, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Why a trace file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file did not open.
    #[error("cannot open {}", path.display())]
    Open {
        /// The trace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Its content did not read (detection, header or a record).
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// A reader of the trace at `path` (`format`, or detected for [`Format::Auto`]) whose bytes
/// count as the stage [`Stage::ReadTrace`] of `progress`, begun here with the file's size.
/// The caller says [`Progress::finish`] once it has read what it needs.
pub fn open_trace<'p, P: Progress + ?Sized>(
    path: &Path,
    format: Format,
    progress: &'p P,
) -> Result<TraceReader<ProgressRead<'p, File, P>>, ReadError> {
    progress.begin(Stage::ReadTrace, fs::metadata(path).map_or(0, |m| m.len()));
    let file = File::open(path).map_err(|source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let opts = ReadOptions {
        format,
        ..ReadOptions::default()
    };
    Ok(TraceReader::with_options(
        ProgressRead::new(file, progress),
        path,
        &opts,
    )?)
}

/// What an operation reported, for tests: consecutive increments are added up.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Begin(Stage, u64),
    Done(u64),
    Finish,
}

/// Records every report, for tests checking what an operation reports.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Log(std::sync::Mutex<Vec<Event>>);

#[cfg(test)]
impl Log {
    pub(crate) fn events(self) -> Vec<Event> {
        self.0.into_inner().unwrap()
    }
}

#[cfg(test)]
impl Progress for Log {
    fn begin(&self, stage: Stage, total: u64) {
        self.0.lock().unwrap().push(Event::Begin(stage, total));
    }
    fn inc(&self, n: u64) {
        let mut v = self.0.lock().unwrap();
        match v.last_mut() {
            Some(Event::Done(done)) => *done += n,
            _ => v.push(Event::Done(n)),
        }
    }
    fn finish(&self) {
        self.0.lock().unwrap().push(Event::Finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_trace_counts_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let text: String = (0..50_000).map(|i| format!("{i}\n")).collect();
        fs::write(&path, &text).unwrap();
        let log = Log::default();
        let reader = open_trace(&path, Format::Auto, &log).unwrap();
        assert_eq!(reader.format(), Format::Txt);
        assert_eq!(reader.count(), 50_000);
        let len = text.len() as u64;
        assert_eq!(
            log.events(),
            [Event::Begin(Stage::ReadTrace, len), Event::Done(len)]
        );
    }

    #[test]
    fn open_errors_name_the_file() {
        let Err(e) = open_trace(Path::new("/nonexistent/t"), Format::Auto, &()) else {
            panic!("opened")
        };
        assert!(
            matches!(&e, ReadError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert_eq!(e.to_string(), "cannot open /nonexistent/t");
    }
}
