//! One error type for the whole filesystem core.
//!
//! Every fallible operation of the core returns [`FsError`], which carries the errno the
//! kernel will see, a human message for the log, an optional source, and the level at which
//! it deserves to be logged. An expected outcome (ENOENT from a lookup, EEXIST from an
//! exclusive create) is logged at `debug` so a busy mount does not flood the log; anything
//! unexpected (EIO from the backing store) is logged at `warn`. The FUSE adapter turns the
//! error into a reply with one macro, so no callback has its own error handling.

use std::fmt;
use std::io;

/// How loudly an error should be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine outcome of a syscall (ENOENT, EEXIST, ENOTEMPTY, ENODATA...).
    Debug,
    /// Something a user or operator should see.
    Warn,
}

/// An error with an errno, a message and a log level.
#[derive(Debug)]
pub struct FsError {
    errno: i32,
    message: String,
    source: Option<io::Error>,
    level: Level,
}

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, FsError>;

impl FsError {
    /// A new error with an explicit errno and message.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        let level = level_for(errno);
        Self {
            errno,
            message: message.into(),
            source: None,
            level,
        }
    }

    /// The errno returned to the kernel.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The message alone (no errno).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How loudly this error should be logged.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Log it at `level` whatever its errno (an unsupported operation a user should hear
    /// about, say).
    pub fn at(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Prefix the message with context (the operation and its arguments).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

/// Errnos that are an ordinary answer rather than a fault of the filesystem.
fn level_for(errno: i32) -> Level {
    match errno {
        libc::ENOENT
        | libc::EEXIST
        | libc::ENOTEMPTY
        | libc::ENODATA
        | libc::ERANGE
        | libc::EACCES
        | libc::EPERM
        | libc::ENOTDIR
        | libc::EISDIR
        | libc::EINVAL
        | libc::ENAMETOOLONG
        | libc::ELOOP
        | libc::EXDEV
        | libc::EOPNOTSUPP
        | libc::ENOSYS
        | libc::ENXIO
        | libc::EBADF
        | libc::EMLINK
        | libc::EFBIG
        | libc::ENOSPC
        | libc::EROFS
        | libc::ETXTBSY
        | libc::EBUSY => Level::Debug,
        _ => Level::Warn,
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        Self {
            errno,
            message: e.kind().to_string(),
            source: Some(e),
            level: level_for(errno),
        }
    }
}

impl From<kplug_store::StoreError> for FsError {
    fn from(e: kplug_store::StoreError) -> Self {
        FsError::new(e.errno(), e.to_string())
    }
}

impl From<nix::Error> for FsError {
    fn from(e: nix::Error) -> Self {
        io::Error::from_raw_os_error(e as i32).into()
    }
}

/// Build an [`FsError`] from an errno constant and a format string:
/// `fs_err!(libc::ENOENT, "no entry {name:?}")`.
#[macro_export]
macro_rules! fs_err {
    ($errno:expr, $($arg:tt)*) => {
        $crate::error::FsError::new($errno, format!($($arg)*))
    };
}

/// `e` and its causes on one line, `outer: cause: cause`, as `{:#}` prints them, without
/// a cause its outer message already ends with: several error types (the trace readers',
/// the catalog's, the kernel bridge's) say their `io::Error` in their own message and also
/// give it as their source, which `{:#}` alone would print twice ("No such file or
/// directory (os error 2): No such file or directory (os error 2)").
pub fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cause said in the message above it is not said again; every other one is.
    #[test]
    fn report_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading x.wasm: {source}")]
        struct Says {
            source: io::Error,
        }
        let gone = || io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(Says { source: gone() }).context("policy x");
        assert_eq!(report(&e), format!("policy x: reading x.wasm: {}", gone()));
        let e = anyhow::Error::new(gone()).context("cannot open x");
        assert_eq!(report(&e), format!("cannot open x: {}", gone()));
    }

    #[test]
    fn io_error_keeps_errno_and_level() {
        let e: FsError = io::Error::from_raw_os_error(libc::ENOENT).into();
        assert_eq!(e.errno(), libc::ENOENT);
        assert_eq!(e.level(), Level::Debug);
        let e: FsError = io::Error::from_raw_os_error(libc::EIO).into();
        assert_eq!(e.level(), Level::Warn);
        let e: FsError = io::Error::other("weird").into();
        assert_eq!(e.errno(), libc::EIO);
    }

    #[test]
    fn context_prefixes_message() {
        let e = fs_err!(libc::EBADF, "handle {}", 7).context("read");
        assert_eq!(e.to_string(), "read: handle 7 (errno 9)");
    }
}
