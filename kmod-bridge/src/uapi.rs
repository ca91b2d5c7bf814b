//! Mirror of `include/uapi/linux/kplug_bridge.h` (ABI version 1).
//!
//! The header is the source of truth; this file copies its structs field for
//! field as `#[repr(C)]` and pins each size with a compile-time assertion, and
//! the ioctl numbers are checked against the values the C compiler computes
//! (see the tests).  All fields are fixed width, so there is no 32/64-bit
//! variant.  Any change here needs the header changed first and
//! `KPLUG_BRIDGE_VERSION` bumped.

use std::mem::size_of;

/// ABI version this crate speaks; `KPLUG_IOC_VERSION` must report it.
pub const KPLUG_BRIDGE_VERSION: u32 = 1;
/// Device node created by the module.
pub const KPLUG_BRIDGE_DEVICE: &str = "/dev/kplug_bridge";
/// Per-call cap on the clamped length (64 MiB); longer hints are clamped.
pub const KPLUG_HINT_MAX_LENGTH: u64 = 64 << 20;
/// Return only once the whole range is resident.
pub const KPLUG_HINT_WAIT: u32 = 1 << 0;
/// Test-only: one un-chunked readahead call (needs `allow_debug=1`).
pub const KPLUG_HINT_DEBUG_NOCHUNK: u32 = 1 << 31;
/// ioctl type byte.
pub const KPLUG_IOC_MAGIC: u8 = 0xE9;

/// `struct kplug_version`, filled by `KPLUG_IOC_VERSION`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KplugVersion {
    /// `KPLUG_BRIDGE_VERSION` of the loaded module.
    pub version: u32,
    /// Hint flags the module accepts.
    pub flags: u32,
    /// `KPLUG_HINT_MAX_LENGTH` of the loaded module.
    pub max_length: u64,
}

/// `struct kplug_hint`, argument of `KPLUG_IOC_HINT`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KplugHint {
    /// In: backing file, open for reading by the caller.
    pub fd: i32,
    /// In: `KPLUG_HINT_*`.
    pub flags: u32,
    /// In: byte offset.
    pub offset: u64,
    /// In: byte length.
    pub length: u64,
    /// Out: bytes of the clamped range submitted.
    pub bytes_requested: u64,
    /// Out: with `KPLUG_HINT_WAIT`, bytes known resident.
    pub bytes_resident: u64,
    /// Out: readahead calls issued.
    pub chunks: u32,
    /// In: must be 0.
    pub reserved: u32,
}

/// `struct kplug_stats`, filled by `KPLUG_IOC_STATS`; module-wide since load.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KplugStats {
    /// Successful `KPLUG_IOC_HINT` calls.
    pub hints: u64,
    /// Sum of their `bytes_requested`.
    pub bytes_requested: u64,
    /// Sum of their `bytes_resident`.
    pub bytes_waited: u64,
    /// Readahead calls issued.
    pub chunks: u64,
    /// Refused for bad input (EBADF, EISDIR, EINVAL, EFAULT).
    pub rejected: u64,
    /// Refused with EAGAIN by the `max_inflight` cap.
    pub throttled: u64,
    /// Failed after validation (EINTR, EIO, EOPNOTSUPP, ...).
    pub errors: u64,
    /// Always 0.
    pub reserved: u64,
}

const _: () = assert!(size_of::<KplugVersion>() == 16);
const _: () = assert!(size_of::<KplugHint>() == 48);
const _: () = assert!(size_of::<KplugStats>() == 64);

/// `_IOR(KPLUG_IOC_MAGIC, 0, struct kplug_version)`.
pub const KPLUG_IOC_VERSION: u64 =
    nix::request_code_read!(KPLUG_IOC_MAGIC, 0, size_of::<KplugVersion>()) as u64;
/// `_IOWR(KPLUG_IOC_MAGIC, 1, struct kplug_hint)`.
pub const KPLUG_IOC_HINT: u64 =
    nix::request_code_readwrite!(KPLUG_IOC_MAGIC, 1, size_of::<KplugHint>()) as u64;
/// `_IOR(KPLUG_IOC_MAGIC, 2, struct kplug_stats)`.
pub const KPLUG_IOC_STATS: u64 =
    nix::request_code_read!(KPLUG_IOC_MAGIC, 2, size_of::<KplugStats>()) as u64;

nix::ioctl_read!(
    /// `KPLUG_IOC_VERSION` on an open `/dev/kplug_bridge`.
    ioc_version, KPLUG_IOC_MAGIC, 0, KplugVersion
);
nix::ioctl_readwrite!(
    /// `KPLUG_IOC_HINT` on an open `/dev/kplug_bridge`.
    ioc_hint, KPLUG_IOC_MAGIC, 1, KplugHint
);
nix::ioctl_read!(
    /// `KPLUG_IOC_STATS` on an open `/dev/kplug_bridge`.
    ioc_stats, KPLUG_IOC_MAGIC, 2, KplugStats
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by a C program including the header (x86-64, arm64 and
    /// every architecture using the generic ioctl encoding).
    #[test]
    fn ioctl_numbers_match_the_c_header() {
        assert_eq!(KPLUG_IOC_VERSION, 0x8010_e900);
        assert_eq!(KPLUG_IOC_HINT, 0xc030_e901);
        assert_eq!(KPLUG_IOC_STATS, 0x8040_e902);
    }

    #[test]
    fn header_constants_match() {
        let header = include_str!("../include/uapi/linux/kplug_bridge.h");
        assert!(header.contains("#define KPLUG_BRIDGE_VERSION\t1\n"));
        assert!(header.contains("#define KPLUG_HINT_MAX_LENGTH\t(64ULL << 20)"));
        assert!(header.contains("#define KPLUG_IOC_MAGIC\t\t0xE9"));
        assert!(header.contains("#define KPLUG_HINT_WAIT\t\t(1U << 0)"));
        assert!(header.contains("#define KPLUG_HINT_DEBUG_NOCHUNK (1U << 31)"));
    }
}
