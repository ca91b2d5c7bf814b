//! Recording a live mount's data accesses into a kplug trace (`kplugfs trace record`).
//!
//! The data path calls [`Recorder::record`] for every demand read (at FUSE-request
//! granularity, flagged HIT when every block it touched was cached), every write, and every
//! block the prefetcher fetched (flagged PREFETCH). When no recording is on, that costs one
//! relaxed atomic load. When one is on, the record (32 bytes) goes into a bounded channel
//! and a writer thread drains it every 5 ms into the file through a buffered
//! `kplug_traces::TraceWriter`: the data path never waits for the disk, and never wakes the
//! writer (no syscall per record). If the writer falls behind by more than
//! `QUEUE_RECORDS`, records are dropped and counted (shown by `cat MOUNT/.kplug/trace`), so
//! recording can never slow the mount down by more than the cost of the channel.
//!
//! The format is kplug's own binary trace (docs/traces.md): fixed 32-byte little-endian
//! records, readable by `kplugfs trace info` and replayable by `kplugfs sim`. Binary instead
//! of SQLite because a record is one `memcpy` into a buffer: SQLite costs an insert (a few
//! microseconds) per access, as much as a FUSE round trip.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Sender, TrySendError};
use kplug_traces::{Flags, Format, Op, Request, TraceWriter};
use parking_lot::Mutex;
use serde::Serialize;

/// Records buffered between the data path and the writer thread before new ones are dropped
/// (2 MiB of records: a second of a very busy mount).
pub const QUEUE_RECORDS: usize = 1 << 16;

/// How often the writer thread drains the queue: a full queue takes 64 Ki records, so at
/// 5 ms even 10 million records/s would not overflow it.
const DRAIN_PERIOD: std::time::Duration = std::time::Duration::from_millis(5);

struct Session {
    tx: Sender<Request>,
    path: PathBuf,
    writer: std::thread::JoinHandle<Result<u64, String>>,
}

/// What `cat MOUNT/.kplug/trace` shows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecorderState {
    /// A recording is in progress.
    pub recording: bool,
    /// The file of the current (or last) recording.
    pub file: Option<String>,
    /// Records taken by the current (or last) recording.
    pub records: u64,
    /// Records dropped because the writer fell behind.
    pub dropped: u64,
    /// Why the last recording failed, if it did.
    pub error: Option<String>,
}

/// The mount's recorder. See the module docs.
#[derive(Default)]
pub struct Recorder {
    on: AtomicBool,
    session: Mutex<Option<Session>>,
    records: AtomicU64,
    dropped: AtomicU64,
    last: Mutex<(Option<String>, Option<String>)>,
    /// The cache's block size, written into each trace's header (0: unknown).
    block_size: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("on", &self.on.load(Ordering::Relaxed))
            .finish()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// A recorder that records nothing yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A recorder for a cache of `block_size`-byte blocks: the traces it writes say so, and
    /// replay per block by default.
    pub fn with_block_size(block_size: u64) -> Arc<Self> {
        let r = Self::default();
        r.block_size.store(block_size, Ordering::Relaxed);
        Arc::new(r)
    }

    /// True while recording.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Record one access of `file` (its inode number): `[offset, offset + len)`.
    #[inline]
    pub fn record(&self, file: u64, offset: u64, len: u64, op: Op, hit: bool, prefetch: bool) {
        if !self.is_on() {
            return;
        }
        self.record_slow(file, offset, len, op, hit, prefetch);
    }

    #[cold]
    fn record_slow(&self, file: u64, offset: u64, len: u64, op: Op, hit: bool, prefetch: bool) {
        let mut flags = Flags::NONE;
        if hit {
            flags = flags | Flags::HIT;
        }
        if prefetch {
            flags = flags | Flags::PREFETCH;
        }
        let req = Request {
            time: now_ns(),
            id: file,
            offset: Some(offset),
            size: len.min(u32::MAX as u64),
            op,
            stream: file,
            flags,
            next_access: None,
        };
        let g = self.session.lock();
        let Some(s) = g.as_ref() else { return };
        match s.tx.try_send(req) {
            Ok(()) => {
                self.records.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Start recording into `path` (created, truncated). Fails if a recording is on.
    pub fn start(&self, path: &Path) -> Result<(), String> {
        let mut g = self.session.lock();
        if g.is_some() {
            return Err("a recording is already in progress (kplugfs trace stop first)".into());
        }
        if !path.is_absolute() {
            return Err(format!("{} is not an absolute path", path.display()));
        }
        // The daemon runs with umask 0: give the trace the usual 0644 explicitly.
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            0o644,
        )
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let block_size = u32::try_from(self.block_size.load(Ordering::Relaxed)).unwrap_or(0);
        let mut writer = TraceWriter::with_block_size(file, path, Format::Kplug, block_size)
            .map_err(|e| e.to_string())?;
        let (tx, rx) = crossbeam::channel::bounded::<Request>(QUEUE_RECORDS);
        let handle = std::thread::Builder::new()
            .name("kplugfs-trace".into())
            .spawn(move || {
                // Drain in batches on a timer instead of blocking on the channel: a receiver
                // blocked in `recv` makes every `try_send` on the data path wake it (a futex
                // syscall per record, measured at ~2 us per 4 KiB read on 2 cores).
                loop {
                    loop {
                        match rx.try_recv() {
                            Ok(r) => writer.write(&r).map_err(|e| e.to_string())?,
                            Err(crossbeam::channel::TryRecvError::Empty) => break,
                            Err(crossbeam::channel::TryRecvError::Disconnected) => {
                                return writer.finish().map(|_| 0).map_err(|e| e.to_string());
                            }
                        }
                    }
                    std::thread::sleep(DRAIN_PERIOD);
                }
            })
            .map_err(|e| e.to_string())?;
        self.records.store(0, Ordering::Relaxed);
        self.dropped.store(0, Ordering::Relaxed);
        *self.last.lock() = (Some(path.display().to_string()), None);
        *g = Some(Session {
            tx,
            path: path.to_path_buf(),
            writer: handle,
        });
        self.on.store(true, Ordering::Relaxed);
        tracing::info!(file = %path.display(), "trace recording started");
        Ok(())
    }

    /// Stop recording and finish the file. Fails if no recording is on or writing failed.
    pub fn stop(&self) -> Result<RecorderState, String> {
        let session = self
            .session
            .lock()
            .take()
            .ok_or_else(|| "no recording in progress".to_string())?;
        self.on.store(false, Ordering::Relaxed);
        let Session { tx, path, writer } = session;
        drop(tx);
        let result = writer
            .join()
            .map_err(|_| "the trace writer panicked".to_string())
            .and_then(|r| r);
        let error = result.err();
        *self.last.lock() = (Some(path.display().to_string()), error.clone());
        tracing::info!(file = %path.display(), records = self.records.load(Ordering::Relaxed), "trace recording stopped");
        match error {
            Some(e) => Err(format!("writing {}: {e}", path.display())),
            None => Ok(self.state()),
        }
    }

    /// The state shown by `.kplug/trace`.
    pub fn state(&self) -> RecorderState {
        let (file, error) = self.last.lock().clone();
        RecorderState {
            recording: self.is_on(),
            file,
            records: self.records.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_kplug_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.kplug");
        let r = Recorder::new();
        r.record(1, 0, 4096, Op::Read, false, false); // not recording: ignored
        r.start(&path).unwrap();
        assert!(r.start(&path).is_err());
        r.record(7, 0, 4096, Op::Read, false, false);
        r.record(7, 4096, 4096, Op::Read, true, false);
        r.record(7, 8192, 131072, Op::Read, false, true);
        r.record(9, 100, 10, Op::Write, false, false);
        let st = r.stop().unwrap();
        assert_eq!((st.records, st.dropped, st.recording), (4, 0, false));
        assert!(r.stop().is_err());
        let got: Vec<Request> = kplug_traces::open(&path, Format::Kplug)
            .unwrap()
            .map(|x| x.unwrap())
            .collect();
        assert_eq!(got.len(), 4);
        assert_eq!(
            (got[0].id, got[0].offset, got[0].size, got[0].op),
            (7, Some(0), 4096, Op::Read)
        );
        assert_eq!(got[1].flags, Flags::HIT);
        assert_eq!(got[2].flags, Flags::PREFETCH);
        assert_eq!((got[3].id, got[3].op), (9, Op::Write));
        assert!(got.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(Recorder::new().start(Path::new("relative.kplug")).is_err());
        assert!(
            Recorder::new()
                .start(&dir.path().join("missing/dir/t.kplug"))
                .is_err()
        );
    }
}
