//! Why a hint sink could not be built.

use std::io;
use std::path::PathBuf;

/// Why a sink could not be built (only `Mode::Kmod` can fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device could not be opened (module not loaded: ENOENT).
    #[error("cannot open {}: {source}", path.display())]
    Device {
        /// Device path tried.
        path: PathBuf,
        /// The open error.
        source: io::Error,
    },
    /// `KPLUG_IOC_VERSION` failed (not our device?).
    #[error("{}: version query failed: {source}", path.display())]
    Version {
        /// Device path.
        path: PathBuf,
        /// The ioctl error.
        source: io::Error,
    },
    /// The module speaks another ABI version.
    #[error("{}: kernel module ABI version {found}, this build needs {expected}", path.display())]
    AbiMismatch {
        /// Device path.
        path: PathBuf,
        /// Version the module reported.
        found: u32,
        /// `uapi::KPLUG_BRIDGE_VERSION`.
        expected: u32,
    },
}
