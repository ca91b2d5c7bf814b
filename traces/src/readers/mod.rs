//! One streaming reader per format, plus the helpers they share.
//!
//! Each reader owns an [`Input`] and turns records or lines into [`crate::Request`]s. They are
//! crate-private: callers see them through [`crate::TraceReader`], which dispatches with a
//! `match` (no virtual call per record). All readers fuse after their first error.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use crate::{
    Location, TraceError,
    input::{Input, LineError},
};

pub(crate) mod csv;
pub(crate) mod msr;
pub(crate) mod oracle;
pub(crate) mod systor;
pub(crate) mod text;
pub(crate) mod vscsi;

pub(crate) fn parse_err(file: &Path, location: Location, reason: impl Into<String>) -> TraceError {
    TraceError::Parse {
        file: file.to_path_buf(),
        location,
        reason: reason.into(),
    }
}

pub(crate) fn io_err(file: &Path, source: std::io::Error) -> TraceError {
    TraceError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// The next `N`-byte record (1-based number `index`), `Ok(None)` at a clean end of input, or an
/// error for a read failure or a file that ends inside the record. Does not consume it.
#[inline]
pub(crate) fn next_record<'a, R: Read, const N: usize>(
    input: &'a mut Input<R>,
    file: &Path,
    index: u64,
) -> Result<Option<&'a [u8; N]>, TraceError> {
    let at = input.position();
    let buf = input.fill(N).map_err(|e| io_err(file, e))?;
    match buf.first_chunk::<N>() {
        Some(rec) => Ok(Some(rec)),
        None if buf.is_empty() => Ok(None),
        None => Err(parse_err(
            file,
            Location::Record { index, byte: at },
            format!(
                "truncated record: the file ends {} bytes into this {N}-byte record",
                buf.len()
            ),
        )),
    }
}

/// The next line (1-based number `line`), without its line ending.
#[inline]
pub(crate) fn next_line<'a, R: Read>(
    input: &'a mut Input<R>,
    file: &Path,
    line: u64,
) -> Result<Option<&'a [u8]>, TraceError> {
    input.next_line().map_err(|e| match e {
        LineError::Io(e) => io_err(file, e),
        LineError::TooLong => parse_err(
            file,
            Location::Line(line),
            format!(
                "line longer than {} bytes (is this a text trace?)",
                crate::input::CAPACITY
            ),
        ),
    })
}

/// State every reader has: its input, its name, and whether it has stopped.
pub(crate) struct Source<R> {
    pub(crate) input: Input<R>,
    pub(crate) file: PathBuf,
    pub(crate) done: bool,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(input: Input<R>, file: PathBuf) -> Self {
        Source {
            input,
            file,
            done: false,
        }
    }

    /// Records `r` as this reader's last item if it is an error.
    #[inline]
    pub(crate) fn fuse<T>(
        &mut self,
        r: Result<Option<T>, TraceError>,
    ) -> Option<Result<T, TraceError>> {
        match r {
            Ok(Some(v)) => Some(Ok(v)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
