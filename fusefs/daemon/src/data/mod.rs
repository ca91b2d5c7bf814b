//! The data path: every read of file data goes through a [`DataCache`].
//!
//! The filesystem core never reads file data itself; it asks its `DataCache` for
//! `(file, offset, len)` and tells it when data changes through the mount (write, truncate,
//! copy_file_range, fallocate) so cached copies are dropped. Writes themselves are
//! write-through and go straight to the backing file: when `write()` returns, the bytes are
//! in the backing file, and only then is the cache told.
//!
//! [`Passthrough`] is the simplest cache: none at all, every read goes to the [`Backend`].
//! The block cache driven by WebAssembly plugins implements the same trait.
//!
//! A file's bytes come from a [`Source`]: a backing file of the passthrough
//! ([`FileSource`]), or an object of a store. The [`Backend`] is the only code that reads
//! them, counting and timing every read, so it is also where `--backend-latency` lives: an
//! *emulated* delay added to each backend data read, to model a remote store in benchmarks.
//! It delays the calling thread only; other requests keep being served by the other FUSE
//! worker threads.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::fs::sys;
use crate::monitor::metrics::{Counter, Histogram, HistogramSnapshot};

pub mod blockcache;
pub mod scopes;
pub mod sync;

/// The bytes of one open file, wherever they are: a backing file of the passthrough, an
/// object of a store. The data cache reads through it and keeps a clone for prefetches.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Read up to `len` bytes at `offset`; fewer only at end of file.
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;

    /// The file's size now.
    fn size(&self) -> Result<u64>;

    /// The descriptor of the local file holding the bytes, if there is one: where the kernel
    /// bridge sends readahead hints.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// How many bytes one backend read should fetch when it can choose (prefetching a run of
    /// blocks): a local file reads block by block, so a window is fetched by the prefetch
    /// threads in parallel; a remote store amortises its per-request latency over larger
    /// reads.
    fn preferred_read(&self) -> u64 {
        0
    }

    /// The file's path from the mount's root (`/`-separated, no leading `/`), if known:
    /// what plugins match their path patterns against (ABI 1.3). Asked only while a plugin
    /// wants it.
    fn path(&self) -> Option<Arc<str>> {
        None
    }

    /// The requests the backend's client retried during this thread's last
    /// [`read_at`](Source::read_at) (an object store's; 0 for a local file): what a probe's
    /// backend event reports (ABI 1.7).
    fn last_retries(&self) -> u32 {
        0
    }
}

/// A backing file of the passthrough, read with `pread`.
#[derive(Debug, Clone)]
pub struct FileSource {
    fd: Arc<OwnedFd>,
    /// The backing root, to name the file from (`None`: nameless).
    root: Option<Arc<Path>>,
    /// The name, found at the first question (one `readlink` of the descriptor).
    path: Arc<OnceLock<Option<Arc<str>>>>,
}

impl FileSource {
    /// The file open at `fd`, without a name.
    pub fn new(fd: Arc<OwnedFd>) -> Self {
        FileSource {
            fd,
            root: None,
            path: Arc::default(),
        }
    }

    /// The file open at `fd`, named by its path under `root` (absolute, without symlinks).
    pub fn under(fd: Arc<OwnedFd>, root: Arc<Path>) -> Self {
        FileSource {
            root: Some(root),
            ..FileSource::new(fd)
        }
    }
}

impl Source for FileSource {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = sys::pread_full(self.fd.as_raw_fd(), &mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn size(&self) -> Result<u64> {
        Ok(sys::fstat(self.fd.as_fd())?.st_size as u64)
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    /// Where the descriptor's file is now (`/proc/self/fd`), under the backing root; `None`
    /// for a file removed since its open or outside the root.
    fn path(&self) -> Option<Arc<str>> {
        self.path
            .get_or_init(|| {
                let rel = sys::path_under(self.fd.as_fd(), self.root.as_ref()?)?;
                (!rel.is_empty()).then_some(rel)
            })
            .clone()
    }
}

/// A file the data path reads from: its FUSE inode number and where its bytes are.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a> {
    /// FUSE inode number (stable for the life of the mount).
    pub ino: u64,
    /// The file's bytes.
    pub source: &'a Arc<dyn Source>,
}

/// What the filesystem core needs from a data cache.
pub trait DataCache: Send + Sync {
    /// Read up to `len` bytes at `offset`; fewer only at end of file.
    fn read(&self, file: FileRef<'_>, offset: u64, len: u32) -> Result<Vec<u8>>;

    /// Data of `ino` in `[offset, offset + len)` changed through the mount.
    fn invalidate(&self, ino: u64, offset: u64, len: u64);

    /// A write of `[offset, offset + len)` of `ino` is about to reach the backing file. Until
    /// the matching [`write_end`](DataCache::write_end), a cache must not serve that file's
    /// data from before the write: a read handled meanwhile would put old bytes into the
    /// kernel's page cache after the writer's `write()` returned.
    fn write_begin(&self, _ino: u64, _offset: u64, _len: u64) {}

    /// The write announced by [`write_begin`](DataCache::write_begin) is done (or failed).
    fn write_end(&self, ino: u64, offset: u64, len: u64) {
        self.invalidate(ino, offset, len);
    }

    /// All cached data of `ino` is stale (truncate, open of a file changed behind the mount,
    /// last link removed).
    fn invalidate_file(&self, ino: u64);

    /// A short name for logs and status (`passthrough`, `block-cache`).
    fn name(&self) -> &'static str;
}

/// Reads backing file data, with an optional emulated latency.
#[derive(Debug, Default)]
pub struct Backend {
    latency: Duration,
    /// Successful data reads, bytes they returned, and their latency (the emulated delay
    /// included): sharded, since demand and prefetch threads read at once.
    reads: Counter,
    bytes: Counter,
    read_latency: Histogram,
}

impl Backend {
    /// A backend adding `latency` to every data read (zero for none).
    pub fn new(latency: Duration) -> Self {
        Self {
            latency,
            ..Default::default()
        }
    }

    /// Read up to `len` bytes at `offset` from `source`, counted and timed.
    pub fn read(&self, source: &dyn Source, offset: u64, len: usize) -> Result<Vec<u8>> {
        let start = Instant::now();
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        let buf = source.read_at(offset, len)?;
        self.read_latency.record_duration(start.elapsed());
        self.reads.inc();
        self.bytes.add(buf.len() as u64);
        Ok(buf)
    }

    /// The emulated latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Data reads issued so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Latencies of the data reads so far (ns, emulated delay included).
    pub fn read_latency(&self) -> HistogramSnapshot {
        self.read_latency.snapshot()
    }
}

/// No cache: every read goes to the backend.
#[derive(Debug)]
pub struct Passthrough {
    backend: Arc<Backend>,
}

impl Passthrough {
    /// A pass-through over `backend`.
    pub fn new(backend: Arc<Backend>) -> Self {
        Self { backend }
    }
}

impl DataCache for Passthrough {
    fn read(&self, file: FileRef<'_>, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.backend.read(&**file.source, offset, len as usize)
    }

    fn invalidate(&self, _ino: u64, _offset: u64, _len: u64) {}

    fn invalidate_file(&self, _ino: u64) {}

    fn name(&self) -> &'static str {
        "passthrough"
    }
}
