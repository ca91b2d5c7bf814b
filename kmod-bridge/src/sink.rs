//! `HintSink`: one object the filesystem calls for every prefetch hint.
//!
//! The backend is chosen once, at construction, from [`Mode`] (the mount
//! flag `--kernel-hints auto|kmod|syscall|off`) and never changes afterwards,
//! except that the syscall backend may step down from `readahead(2)` to
//! `posix_fadvise` if the former is refused (reported by [`HintSink::backend`]).
//!
//! `hint` takes `&self` and only touches atomics and an fd, so one sink is
//! shared by every FUSE worker thread (it is `Send + Sync`; the device fd is
//! used concurrently, and the kernel module has its own in-flight cap).
//! Counters are relaxed atomics: each is exact on its own, a [`HintStats`]
//! snapshot is not one instant across counters, which is fine for metrics.
//!
//! Every backend reports the same thing for the same hint: the number of
//! bytes of `[offset, offset + len)` that lie before EOF and were submitted
//! for readahead, so callers and metrics need not care which one ran.  An
//! error is returned (and counted) but never retried: a hint is advice, and a
//! late hint is worth little.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::kmod::{KmodDevice, Outcome};
use crate::syscall::SyscallHints;
use crate::uapi;

/// Which backend to use, as given by `--kernel-hints`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The kernel module if `/dev/kplug_bridge` opens and speaks our ABI,
    /// else `Syscall`.
    #[default]
    Auto,
    /// The kernel module; construction fails if it is unavailable.
    Kmod,
    /// `readahead(2)`, falling back to `posix_fadvise(WILLNEED)`.
    Syscall,
    /// Drop every hint (counted as `dropped`).
    Off,
}

impl Mode {
    /// The accepted spellings, for CLI help and value lists.
    pub const NAMES: [&'static str; 4] = ["auto", "kmod", "syscall", "off"];
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Kmod => "kmod",
            Mode::Syscall => "syscall",
            Mode::Off => "off",
        })
    }
}

/// A `--kernel-hints` value that is not one of [`Mode::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid kernel hint mode {0:?}: expected one of auto, kmod, syscall, off")]
pub struct ParseModeError(pub String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Mode::Auto),
            "kmod" => Ok(Mode::Kmod),
            "syscall" => Ok(Mode::Syscall),
            "off" => Ok(Mode::Off),
            _ => Err(ParseModeError(s.to_owned())),
        }
    }
}

/// The backend actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `KPLUG_IOC_HINT` on the module's device.
    Kmod,
    /// `readahead(2)`.
    Readahead,
    /// `posix_fadvise(POSIX_FADV_WILLNEED)` (readahead(2) was refused).
    Fadvise,
    /// Hints are dropped.
    Off,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Kmod => "kmod",
            Backend::Readahead => "readahead",
            Backend::Fadvise => "fadvise",
            Backend::Off => "off",
        })
    }
}

/// Construction options; `Default` is what production uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The module's device node.
    pub device: PathBuf,
    /// Bytes per `readahead(2)` call of the syscall backend, rounded up to a
    /// page multiple.  128 KiB: the kernel's default readahead window, below
    /// which the kernel's per-call truncation never bites (see `syscall.rs`).
    pub syscall_chunk: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            device: PathBuf::from(uapi::KPLUG_BRIDGE_DEVICE),
            syscall_chunk: 128 << 10,
        }
    }
}

/// A snapshot of the sink's counters (since construction).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HintStats {
    /// Hints forwarded successfully (including those that were all past EOF).
    pub hints: u64,
    /// Bytes submitted for readahead (after clamping to EOF).
    pub bytes_requested: u64,
    /// Readahead calls made in the kernel (syscalls, or the module's chunks).
    pub chunks: u64,
    /// Hints that returned an error.
    pub errors: u64,
    /// Hints dropped because the mode is `Off`.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    hints: AtomicU64,
    bytes_requested: AtomicU64,
    chunks: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

enum Imp {
    Kmod(KmodDevice),
    Syscall(SyscallHints),
    Off,
}

/// Forwards prefetch hints to the kernel page cache; see the crate docs.
pub struct HintSink {
    imp: Imp,
    counters: Counters,
}

impl HintSink {
    /// A sink for `mode` with default [`Options`].
    pub fn new(mode: Mode) -> Result<Self, Error> {
        Self::with_options(mode, Options::default())
    }

    /// A sink for `mode`.  Only `Mode::Kmod` can fail; `Mode::Auto` logs why
    /// it fell back to the syscall backend.
    pub fn with_options(mode: Mode, options: Options) -> Result<Self, Error> {
        let syscall = || Imp::Syscall(SyscallHints::new(options.syscall_chunk));
        let imp = match mode {
            Mode::Off => Imp::Off,
            Mode::Syscall => syscall(),
            Mode::Kmod => Imp::Kmod(KmodDevice::open(&options.device)?),
            Mode::Auto => match KmodDevice::open(&options.device) {
                Ok(dev) => Imp::Kmod(dev),
                Err(Error::Device { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    tracing::debug!("kernel hints: no kplug_bridge module, using readahead(2)");
                    syscall()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kernel hints: kplug_bridge unusable, using readahead(2)");
                    syscall()
                }
            },
        };
        let sink = Self {
            imp,
            counters: Counters::default(),
        };
        if let Imp::Kmod(dev) = &sink.imp {
            tracing::info!(device = %dev.path().display(), "kernel hints: using kplug_bridge");
        }
        Ok(sink)
    }

    /// Ask the kernel to start reading `[offset, offset + len)` of the file
    /// behind `fd` (which must be open for reading) into the page cache.
    /// Returns the bytes submitted: the part of the range before EOF (0 when
    /// `len` is 0, the range is past EOF, or the mode is `Off`).  Does not
    /// wait for the reads.
    ///
    /// Errors: EBADF (fd not open for reading), EISDIR, EINVAL (not a regular
    /// file), EAGAIN (the module's in-flight cap), or an I/O error.
    pub fn hint(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<u64> {
        let res = match &self.imp {
            Imp::Kmod(dev) => dev.hint(fd, offset, len, 0),
            Imp::Syscall(sys) => sys.hint(fd, offset, len),
            Imp::Off => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(0);
            }
        };
        let c = &self.counters;
        match res {
            Ok(Outcome { bytes, chunks }) => {
                c.hints.fetch_add(1, Ordering::Relaxed);
                c.bytes_requested.fetch_add(bytes, Ordering::Relaxed);
                c.chunks.fetch_add(chunks, Ordering::Relaxed);
                Ok(bytes)
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(error = %e, offset, len, "kernel hint failed");
                Err(e)
            }
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match &self.imp {
            Imp::Kmod(_) => Backend::Kmod,
            Imp::Syscall(sys) if sys.uses_fadvise() => Backend::Fadvise,
            Imp::Syscall(_) => Backend::Readahead,
            Imp::Off => Backend::Off,
        }
    }

    /// This sink's counters.
    pub fn stats(&self) -> HintStats {
        let c = &self.counters;
        HintStats {
            hints: c.hints.load(Ordering::Relaxed),
            bytes_requested: c.bytes_requested.load(Ordering::Relaxed),
            chunks: c.chunks.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// The module's own, system-wide counters (`KPLUG_IOC_STATS`); `None`
    /// unless the backend is `Kmod`.
    pub fn kernel_stats(&self) -> Option<io::Result<uapi::KplugStats>> {
        match &self.imp {
            Imp::Kmod(dev) => Some(dev.stats()),
            _ => None,
        }
    }
}

impl fmt::Debug for HintSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HintSink")
            .field("backend", &self.backend())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_the_mount_flag_values() {
        for name in Mode::NAMES {
            let mode: Mode = name.parse().unwrap();
            assert_eq!(mode.to_string(), name);
        }
        assert_eq!("KMOD".parse::<Mode>(), Ok(Mode::Kmod));
        let err = "fast".parse::<Mode>().unwrap_err();
        assert_eq!(err, ParseModeError("fast".into()));
        assert!(err.to_string().contains("auto, kmod, syscall, off"));
        assert_eq!(Mode::default(), Mode::Auto);
    }

    #[test]
    fn sink_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HintSink>();
    }
}
