//! The probe role (ABI 1.5; policy events and the subtree filter 1.7): the events the host delivers to a probe plugin, as stable
//! little-endian structs in its memory.
//!
//! A probe never sits on the request path: the host checks the probe's filter (event kinds,
//! a uid) where the event happens, pushes a copy into the probe's bounded ring (dropped and
//! counted when full), and a host thread delivers the ring in batches of at most
//! [`PROBE_BATCH_EVENTS`] through the buffer the probe exports (`kplug_probe_buf`), one
//! `kplug_probe_events(n)` call per batch. The probe keeps its own aggregates and writes a
//! report when asked (`kplug_probe_report`).
//!
//! Every event is [`PROBE_EVENT_BYTES`] bytes, laid out as [`Event`] documents, version
//! [`PROBE_EVENT_VERSION`]. A later version may only fill reserved bytes or add kinds; a probe
//! should skip events whose kind it does not know.

/// Bytes of one event in the buffer.
pub const PROBE_EVENT_BYTES: usize = 64;
/// Version of the event layout, in the first two bytes of each event.
pub const PROBE_EVENT_VERSION: u16 = 1;
/// Most events one `kplug_probe_events` call delivers (the buffer holds this many: 16 KiB).
pub const PROBE_BATCH_EVENTS: usize = 256;
/// Events a probe's ring holds on the host before new ones are dropped (and counted): at
/// a million events a second and a delivery every 10 ms, room for a burst of 64 batches.
pub const PROBE_RING_EVENTS: usize = 16 * 1024;
/// Largest report a probe may return, in bytes.
pub const MAX_PROBE_REPORT_BYTES: usize = 1 << 20;
/// Most figures one probe may publish (`publish`).
pub const MAX_PROBE_FIGURES: usize = 32;
/// Longest figure name, in bytes.
pub const MAX_FIGURE_NAME: usize = 64;

/// The kinds of events (byte 2 of an event); a filter is a mask of `1 << kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A FUSE request, when it is answered: `op` the operation (see [`FUSE_OPS`]), `ino`,
    /// `offset` and `length` of a read or write (0 for other operations), `latency_ns` from the
    /// callback's entry to the reply, `result` 0 or the errno, `uid`/`pid` of the caller.
    Fuse = 1,
    /// A block of the data cache asked for by a read: `op` 1 hit, 0 miss, 2 miss joining a
    /// fetch already in flight (a prefetch or another reader's); `ino`, `offset` = the block's
    /// index, `length` = block size, `latency_ns` the time the reader waited for the block
    /// (0 for a hit), `result` 0 or the errno of a failed fetch.
    Cache = 2,
    /// A read from the backend (backing file or object store): `op` 0 demand, 1 prefetch;
    /// `ino`, `offset` and `length` the byte range asked for, `bytes` got, `latency_ns`,
    /// `result` 0 or the errno; `pid` holds the read's **retries**: its requests to the store
    /// that failed in a way the client retries (a timeout, a 5xx, 503 SlowDown), each followed
    /// by another attempt unless the call's retry time ran out (0 for a local file).
    Backend = 3,
    /// A decision of the cache's policies (ABI 1.7), on block `offset` of `ino`: `op`
    /// [`POLICY_ADMIT`] or [`POLICY_REFUSE`] (the admission policy on a block fetched;
    /// `bytes` 1 when the block came from a prefetch), [`POLICY_EVICT`] (the eviction
    /// policy's victim; `bytes` 1 when it was prefetched and never read: a wasted prefetch),
    /// [`POLICY_PREFETCH`] (the prefetch policy's blocks `offset..offset + length` sent to
    /// the backend), [`POLICY_PREFETCH_USED`] (the first read of a prefetched block).
    /// `uid` is `u32::MAX`, `latency_ns` 0.
    Policy = 4,
}

impl Kind {
    /// Every kind, in number order.
    pub const ALL: [Kind; 4] = [Kind::Fuse, Kind::Cache, Kind::Backend, Kind::Policy];

    /// The kind numbered `n`.
    pub fn from_u8(n: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == n)
    }

    /// Its bit in a filter mask.
    pub fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Its name in docs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fuse => "fuse",
            Kind::Cache => "cache",
            Kind::Backend => "backend",
            Kind::Policy => "policy",
        }
    }
}

/// Every kind's bit: the filter of a probe that did not choose.
pub const ALL_KINDS: u32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4);

/// The FUSE operations by their `op` number in a [`Kind::Fuse`] event (stable: new ones are
/// appended).
pub const FUSE_OPS: &[&str] = &[
    "lookup",
    "forget",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
    "fallocate",
    "lseek",
    "copy_file_range",
];

/// `op` of a FUSE read.
pub const FUSE_READ: u8 = 13;
/// `op` of a FUSE write.
pub const FUSE_WRITE: u8 = 14;
/// `op` of a cache miss, hit, and a miss that joined a fetch in flight.
pub const CACHE_MISS: u8 = 0;
/// See [`CACHE_MISS`].
pub const CACHE_HIT: u8 = 1;
/// See [`CACHE_MISS`].
pub const CACHE_JOINED: u8 = 2;
/// `op` of a demand read and of a prefetch read from the backend.
pub const BACKEND_DEMAND: u8 = 0;
/// See [`BACKEND_DEMAND`].
pub const BACKEND_PREFETCH: u8 = 1;
/// `op` of a [`Kind::Policy`] event: a fetched block admitted into the cache.
pub const POLICY_ADMIT: u8 = 0;
/// A fetched block the admission policy refused. See [`Kind::Policy`].
pub const POLICY_REFUSE: u8 = 1;
/// A block the eviction policy chose to evict. See [`Kind::Policy`].
pub const POLICY_EVICT: u8 = 2;
/// Blocks the prefetch policy asked for, sent to the backend. See [`Kind::Policy`].
pub const POLICY_PREFETCH: u8 = 3;
/// The first read of a block a prefetch brought in. See [`Kind::Policy`].
pub const POLICY_PREFETCH_USED: u8 = 4;
/// The names of the [`Kind::Policy`] ops, by number.
pub const POLICY_OPS: &[&str] = &["admit", "refuse", "evict", "prefetch", "prefetch-used"];

/// One event, version 1. In memory, little-endian, [`PROBE_EVENT_BYTES`] bytes:
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | u16 | version (1) |
/// | 2 | u8 | kind ([`Kind`]) |
/// | 3 | u8 | op (per kind) |
/// | 4 | u32 | result: 0, or the errno |
/// | 8 | u64 | time_ns: when it ended, monotonic ns since the mount started |
/// | 16 | u64 | ino: the FUSE inode |
/// | 24 | u64 | offset |
/// | 32 | u64 | length |
/// | 40 | u64 | latency_ns |
/// | 48 | u32 | uid (`u32::MAX` where not known) |
/// | 52 | u32 | pid (0 where not known); a backend event's retries |
/// | 56 | u64 | bytes: bytes moved (a backend read's bytes got, a FUSE read's bytes returned) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// [`Kind`] number.
    pub kind: u8,
    /// Operation, per kind.
    pub op: u8,
    /// 0, or the errno.
    pub result: u32,
    /// When it ended, ns since the mount started.
    pub time_ns: u64,
    /// FUSE inode.
    pub ino: u64,
    /// Byte offset (a block index for cache events).
    pub offset: u64,
    /// Length asked for.
    pub length: u64,
    /// Latency in ns.
    pub latency_ns: u64,
    /// Caller's uid.
    pub uid: u32,
    /// Caller's pid; for a [`Kind::Backend`] event, the requests the store client retried
    /// (see [`Event::retries`]).
    pub pid: u32,
    /// Bytes moved.
    pub bytes: u64,
}

impl Event {
    /// The event's bytes.
    pub fn encode(&self) -> [u8; PROBE_EVENT_BYTES] {
        let mut b = [0u8; PROBE_EVENT_BYTES];
        b[0..2].copy_from_slice(&PROBE_EVENT_VERSION.to_le_bytes());
        b[2] = self.kind;
        b[3] = self.op;
        b[4..8].copy_from_slice(&self.result.to_le_bytes());
        b[8..16].copy_from_slice(&self.time_ns.to_le_bytes());
        b[16..24].copy_from_slice(&self.ino.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.length.to_le_bytes());
        b[40..48].copy_from_slice(&self.latency_ns.to_le_bytes());
        b[48..52].copy_from_slice(&self.uid.to_le_bytes());
        b[52..56].copy_from_slice(&self.pid.to_le_bytes());
        b[56..64].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }

    /// The event in `b` (at least [`PROBE_EVENT_BYTES`] long), if its version is known.
    pub fn decode(b: &[u8]) -> Option<Event> {
        let b = b.get(..PROBE_EVENT_BYTES)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        if u16::from_le_bytes([b[0], b[1]]) != PROBE_EVENT_VERSION {
            return None;
        }
        Some(Event {
            kind: b[2],
            op: b[3],
            result: u32_at(4),
            time_ns: u64_at(8),
            ino: u64_at(16),
            offset: u64_at(24),
            length: u64_at(32),
            latency_ns: u64_at(40),
            uid: u32_at(48),
            pid: u32_at(52),
            bytes: u64_at(56),
        })
    }

    /// Its [`Kind`], if known.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind)
    }

    /// The requests a [`Kind::Backend`] read retried (the `pid` field of that kind).
    pub fn retries(&self) -> u32 {
        self.pid
    }
}

/// Packs a report's place in memory as `kplug_probe_report` returns it.
pub fn pack_report(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Splits what `kplug_probe_report` returned into `(ptr, len)`.
pub fn unpack_report(word: i64) -> (u32, u32) {
    ((word as u64 >> 32) as u32, word as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let e = Event {
            kind: Kind::Backend as u8,
            op: BACKEND_PREFETCH,
            result: 5,
            time_ns: 1,
            ino: u64::MAX,
            offset: 3,
            length: 4,
            latency_ns: 6,
            uid: 7,
            pid: 8,
            bytes: 9,
        };
        let b = e.encode();
        assert_eq!(&b[0..2], &[1, 0]);
        assert_eq!(b[2], 3);
        assert_eq!(Event::decode(&b), Some(e));
        assert_eq!(Event::decode(&b[..63]), None);
        let mut v2 = b;
        v2[0] = 2;
        assert_eq!(Event::decode(&v2), None);
        assert_eq!(FUSE_OPS[FUSE_READ as usize], "read");
        assert_eq!(FUSE_OPS[FUSE_WRITE as usize], "write");
        assert_eq!(POLICY_OPS[POLICY_PREFETCH_USED as usize], "prefetch-used");
        assert_eq!(POLICY_OPS[POLICY_EVICT as usize], "evict");
        assert_eq!(
            unpack_report(pack_report(0xdead_beef, 77)),
            (0xdead_beef, 77)
        );
        assert_eq!(
            Kind::ALL.iter().fold(0, |m, k| m | k.bit()),
            ALL_KINDS,
            "every kind in the mask"
        );
    }
}
