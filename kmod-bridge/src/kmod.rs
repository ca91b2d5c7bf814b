//! The kernel-module backend: `KPLUG_IOC_HINT` on `/dev/kplug_bridge`.
//!
//! Opening checks the ABI version once (`KPLUG_IOC_VERSION`); a module
//! speaking another version is treated like an absent one.  The module clamps
//! each call to `max_length` (64 MiB), so a longer hint is issued as several
//! ioctls, each continuing where the previous one stopped; a call that
//! requests less than it could means EOF was reached.  Validation of the fd
//! (caller's own, readable, regular file) happens in the kernel; we pass
//! errors through unchanged, including EAGAIN from the module's in-flight cap
//! (the hint is dropped, not retried: a late hint is worth little).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::uapi::{self, KplugHint, KplugStats, KplugVersion};

/// What one hint did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outcome {
    /// Bytes of the clamped range submitted for readahead.
    pub(crate) bytes: u64,
    /// Readahead calls made in the kernel.
    pub(crate) chunks: u64,
}

pub(crate) struct KmodDevice {
    file: File,
    path: PathBuf,
    max_length: u64,
}

impl KmodDevice {
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|source| Error::Device {
            path: path.to_owned(),
            source,
        })?;
        let mut v = KplugVersion::default();
        // SAFETY: `v` is a valid, writable struct of the size encoded in the
        // ioctl number.
        unsafe { uapi::ioc_version(file.as_raw_fd(), &mut v) }.map_err(|e| Error::Version {
            path: path.to_owned(),
            source: e.into(),
        })?;
        if v.version != uapi::KPLUG_BRIDGE_VERSION {
            return Err(Error::AbiMismatch {
                path: path.to_owned(),
                found: v.version,
                expected: uapi::KPLUG_BRIDGE_VERSION,
            });
        }
        // A module reporting 0 would make us loop forever; trust our header.
        let max_length = match v.max_length {
            0 => uapi::KPLUG_HINT_MAX_LENGTH,
            n => n,
        };
        Ok(Self {
            file,
            path: path.to_owned(),
            max_length,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn hint(
        &self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: u64,
        flags: u32,
    ) -> io::Result<Outcome> {
        let mut out = Outcome::default();
        let end = offset.saturating_add(len);
        let mut pos = offset;
        while pos < end {
            let want = end - pos;
            let mut h = KplugHint {
                fd: fd.as_raw_fd(),
                flags,
                offset: pos,
                length: want,
                ..KplugHint::default()
            };
            // SAFETY: `h` is a valid, writable struct of the size encoded in
            // the ioctl number.
            unsafe { uapi::ioc_hint(self.file.as_raw_fd(), &mut h) }.map_err(io::Error::from)?;
            out.bytes += h.bytes_requested;
            out.chunks += u64::from(h.chunks);
            if h.bytes_requested == 0 || h.bytes_requested < want.min(self.max_length) {
                break; // reached EOF
            }
            pos += h.bytes_requested;
        }
        Ok(out)
    }

    pub(crate) fn stats(&self) -> io::Result<KplugStats> {
        let mut s = KplugStats::default();
        // SAFETY: `s` is a valid, writable struct of the size encoded in the
        // ioctl number.
        unsafe { uapi::ioc_stats(self.file.as_raw_fd(), &mut s) }.map_err(io::Error::from)?;
        Ok(s)
    }
}
