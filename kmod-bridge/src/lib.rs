//! Forwards prefetch hints to the kernel page cache of backing files.
//!
//! kplugfs serves reads from backing files; its prefetch plugins predict which
//! byte ranges will be read next.  A prediction is only worth something if the
//! backing file's pages are in the page cache by the time the FUSE read
//! arrives, so each hint becomes "(backing fd, offset, length): start reading
//! this now".  This crate is the one place that turns such a hint into a
//! kernel call.
//!
//! [`HintSink`] picks a backend at run time ([`Mode`], the mount flag
//! `--kernel-hints auto|kmod|syscall|off`):
//!
//! * `kmod`: the `kplug_bridge` kernel module (`kmod-bridge/kmod/`), through
//!   `/dev/kplug_bridge`.  It validates the fd against the caller's own file
//!   table, clamps the range and issues readahead in chunks sized by the
//!   device's own limits, which userspace cannot see.
//! * `syscall`: `readahead(2)`, falling back to
//!   `posix_fadvise(POSIX_FADV_WILLNEED)` where `readahead` is unavailable
//!   (seccomp).  Both are a single `vfs_fadvise()` in the kernel, which
//!   silently truncates a request to `max(io_pages, ra_pages)` pages, so the
//!   sink chunks the range itself (see [`Options::syscall_chunk`]).
//! * `auto`: the module when its device is present and speaks our ABI
//!   version, else `syscall`.
//! * `off`: hints are counted and dropped.
//!
//! Hints are advisory: an error never affects a read, it is counted and
//! returned so the caller can log it.  The ABI is mirrored in [`uapi`] from
//! `include/uapi/linux/kplug_bridge.h`; [`residency`] measures what is
//! resident (for tests and diagnostics).
//!
//! The host kernel of our development machines cannot load modules: the
//! module is tested in a qemu guest by `kmod-bridge/vm-test`; `cargo test`
//! covers the syscall backend against the real page cache.

mod error;
mod kmod;
pub mod residency;
mod sink;
mod syscall;
pub mod uapi;

pub use error::Error;
pub use sink::{Backend, HintSink, HintStats, Mode, Options, ParseModeError};
