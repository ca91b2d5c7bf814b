//! The one error type of this crate.
//!
//! Every error names the file (or the name given to a stream), where in it the problem is (a
//! 1-based line for text formats, a 1-based record plus its byte offset for binary ones, or the
//! header) and a reason written for a person who has to fix the trace. Reasons are strings:
//! callers branch on the variant and the [`Location`], not on the wording.

use std::{fmt, io, path::PathBuf};

use crate::Format;

/// Where in a trace an error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The file header (csv/systor header line, kplug header, vscsi version probe).
    Header,
    /// A 1-based line of a text trace (skipped lines count).
    Line(u64),
    /// A 1-based record of a binary trace (skipped records count) and its byte offset.
    Record {
        /// 1-based record number.
        index: u64,
        /// Byte offset of the record's first byte in the file.
        byte: u64,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => f.write_str("header"),
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record { index, byte } => write!(f, "record {index} (byte {byte})"),
        }
    }
}

/// Errors from opening, reading, splitting and writing traces.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The operating system failed to open, read or write the file.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file (or stream name).
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The content does not follow the format.
    #[error("{}: {location}: {reason}", file.display())]
    Parse {
        /// The file (or stream name).
        file: PathBuf,
        /// Where the bad content is.
        location: Location,
        /// What is wrong with it.
        reason: String,
    },
    /// `Format::Auto` could not decide.
    #[error(
        "{}: cannot tell the trace format: {reason}; name one of: {}",
        file.display(),
        Format::NAMES.join(", ")
    )]
    UnknownFormat {
        /// The file (or stream name).
        file: PathBuf,
        /// What the sniffing saw.
        reason: String,
    },
    /// A request cannot be expressed in the output format.
    #[error("{}: request {index}: cannot write as {format}: {reason}", file.display())]
    Unwritable {
        /// The output file (or stream name).
        file: PathBuf,
        /// 1-based number of the request handed to the writer.
        index: u64,
        /// The output format.
        format: Format,
        /// What does not fit.
        reason: String,
    },
    /// A request cannot be split into blocks.
    #[error("request {index}: cannot split into blocks: {reason}")]
    Split {
        /// 1-based number of the request within the split stream.
        index: u64,
        /// Why.
        reason: String,
    },
    /// An option or format was used where it has no meaning (e.g. a writer for `msr`).
    #[error("{0}")]
    Usage(String),
}

impl TraceError {
    /// The location of a [`TraceError::Parse`], if this is one.
    pub fn location(&self) -> Option<Location> {
        match self {
            TraceError::Parse { location, .. } => Some(*location),
            _ => None,
        }
    }
}
