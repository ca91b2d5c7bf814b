//! The FUSE per-operation table of the monitoring plane: one [`OpGuard`] per callback times
//! the request and counts its errors and bytes, on the sharded primitives of `kplug-metrics`
//! (see that crate for why they are sharded and how percentiles are estimated).

use std::sync::Arc;
use std::time::Instant;

use kplug_abi::probe::{Event, Kind};

use super::probes::ProbeBus;

pub use kplug_metrics::{Counter, Histogram, HistogramSnapshot, LatencyUs};

/// The first inode of the virtual trees (`fs::VIRTUAL_BASE`, repeated here so that the
/// monitoring plane does not import the tree it measures; `control/probes.rs` checks both).
pub const VIRTUAL_BASE: u64 = 1 << 63;

macro_rules! fuse_ops {
    ($($variant:ident => $name:literal,)*) => {
        /// A FUSE operation, as counted in `.kplug/stats` (`fuse.<name>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum FuseOp {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl FuseOp {
            /// Every operation, in declaration order.
            pub const ALL: &[FuseOp] = &[$(FuseOp::$variant,)*];

            /// The name used in logs and in `.kplug/stats`.
            pub fn name(self) -> &'static str {
                match self {
                    $(FuseOp::$variant => $name,)*
                }
            }
        }
    };
}

fuse_ops! {
    Lookup => "lookup",
    Forget => "forget",
    Getattr => "getattr",
    Setattr => "setattr",
    Readlink => "readlink",
    Mknod => "mknod",
    Mkdir => "mkdir",
    Unlink => "unlink",
    Rmdir => "rmdir",
    Symlink => "symlink",
    Rename => "rename",
    Link => "link",
    Open => "open",
    Read => "read",
    Write => "write",
    Flush => "flush",
    Release => "release",
    Fsync => "fsync",
    Opendir => "opendir",
    Readdir => "readdir",
    Readdirplus => "readdirplus",
    Releasedir => "releasedir",
    Fsyncdir => "fsyncdir",
    Statfs => "statfs",
    Setxattr => "setxattr",
    Getxattr => "getxattr",
    Listxattr => "listxattr",
    Removexattr => "removexattr",
    Access => "access",
    Create => "create",
    Fallocate => "fallocate",
    Lseek => "lseek",
    CopyFileRange => "copy_file_range",
}

/// Counters of one FUSE operation.
#[derive(Debug, Default)]
pub struct OpMetrics {
    /// Latency of every request, from the callback's entry to its reply (the count is the
    /// number of requests).
    pub latency: Histogram,
    /// Requests answered with an error.
    pub errors: Counter,
    /// Data bytes moved (read: bytes returned; write: bytes written; others: 0).
    pub bytes: Counter,
}

/// Per-operation FUSE metrics of a mount, and the mount's probes (every request is an
/// event for them, `probes.rs`).
#[derive(Debug)]
pub struct FuseMetrics {
    ops: Box<[OpMetrics]>,
    probes: Arc<ProbeBus>,
}

impl Default for FuseMetrics {
    fn default() -> Self {
        Self {
            ops: FuseOp::ALL.iter().map(|_| OpMetrics::default()).collect(),
            probes: Arc::default(),
        }
    }
}

impl FuseMetrics {
    /// The counters of `op`.
    #[inline]
    pub fn op(&self, op: FuseOp) -> &OpMetrics {
        &self.ops[op as usize]
    }

    /// The mount's probes.
    pub fn probes(&self) -> &Arc<ProbeBus> {
        &self.probes
    }

    /// Start timing a request of `op`; the guard records it when dropped.
    #[inline]
    pub fn start(&self, op: FuseOp) -> OpGuard<'_> {
        OpGuard {
            m: self.op(op),
            op,
            start: Instant::now(),
            failed: false,
            probes: &self.probes,
            event: Event {
                kind: Kind::Fuse as u8,
                op: op as u8,
                uid: u32::MAX,
                ..Event::default()
            },
        }
    }

    /// A snapshot of every operation seen at least once: `(name, requests, errors, bytes,
    /// latency)`.
    pub fn snapshot(&self) -> Vec<OpSnapshot> {
        FuseOp::ALL
            .iter()
            .map(|&op| {
                let m = self.op(op);
                let latency = m.latency.snapshot();
                OpSnapshot {
                    op,
                    count: latency.count(),
                    errors: m.errors.get(),
                    bytes: m.bytes.get(),
                    latency,
                }
            })
            .filter(|s| s.count > 0)
            .collect()
    }
}

/// One operation's counters at one point in time.
#[derive(Debug, Clone)]
pub struct OpSnapshot {
    /// The operation.
    pub op: FuseOp,
    /// Requests.
    pub count: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Data bytes moved.
    pub bytes: u64,
    /// Latencies in ns.
    pub latency: HistogramSnapshot,
}

/// Times one FUSE request: created at the callback's entry, records the latency (and the
/// error, if [`OpGuard::fail`] was called) when dropped, after the reply.
#[derive(Debug)]
#[must_use = "the request is recorded when the guard drops"]
pub struct OpGuard<'a> {
    m: &'a OpMetrics,
    op: FuseOp,
    start: Instant,
    failed: bool,
    probes: &'a ProbeBus,
    /// What probes see of the request (filled in only as far as the callback knows it).
    event: Event,
}

impl OpGuard<'_> {
    /// The request is from `uid`, process `pid`.
    #[inline]
    pub fn by(mut self, uid: u32, pid: u32) -> Self {
        self.event.uid = uid;
        self.event.pid = pid;
        self
    }

    /// The request is on inode `ino` (for an operation on a name, its directory's).
    #[inline]
    pub fn on(mut self, ino: u64) -> Self {
        self.event.ino = ino;
        self
    }

    /// The request reads or writes `len` bytes of `ino` at `offset`.
    #[inline]
    pub fn at(&mut self, ino: u64, offset: u64, len: u64) {
        self.event.ino = ino;
        self.event.offset = offset;
        self.event.length = len;
    }

    /// The operation timed.
    pub fn op(&self) -> FuseOp {
        self.op
    }

    /// The request failed.
    #[inline]
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// Count `n` data bytes moved by this request.
    #[inline]
    pub fn bytes(&mut self, n: u64) {
        self.m.bytes.add(n);
        self.event.bytes = n;
    }

    /// The request failed with `errno` (for probes; [`OpGuard::fail`] counts it).
    #[inline]
    pub fn errno(&mut self, errno: i32) {
        self.event.result = errno as u32;
    }
}

impl Drop for OpGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let latency = self.start.elapsed();
        self.m.latency.record_duration(latency);
        if self.failed {
            self.m.errors.inc();
        }
        // With no probe taking FUSE events, this is the whole cost: one relaxed load. Requests to the
        // `.kplug` trees are not events (reading a probe's report would feed it).
        if self.probes.enabled(Kind::Fuse) && self.event.ino < VIRTUAL_BASE {
            self.event.latency_ns = latency.as_nanos() as u64;
            // When it ended, from the clock read above (a second read would cost ~20 ns).
            self.event.time_ns = self.probes.ns_at(self.start + latency).max(1);
            self.probes.emit(self.event, || None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn op_guard_records_latency_errors_and_bytes() {
        let m = FuseMetrics::default();
        {
            let mut g = m.start(FuseOp::Read);
            g.bytes(4096);
            std::thread::sleep(Duration::from_millis(2));
        }
        {
            let mut g = m.start(FuseOp::Read);
            g.fail();
        }
        let _ = m.start(FuseOp::Lookup);
        let snap = m.snapshot();
        let names: Vec<_> = snap.iter().map(|s| s.op.name()).collect();
        assert_eq!(names, ["lookup", "read"]);
        let read = &snap[1];
        assert_eq!((read.count, read.errors, read.bytes), (2, 1, 4096));
        assert!(read.latency.max >= 2_000_000, "{:?}", read.latency.max);
    }

    #[test]
    fn op_names_are_unique() {
        let mut names: Vec<_> = FuseOp::ALL.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FuseOp::ALL.len());
    }
}
