//! Open files of an object-store mount: reads through the data cache from the version open
//! saw, and writes streamed to a new version of the object that appears at close.
//!
//! A handle reads its version only while that version is the one the data cache holds for
//! the file: once a newer version is opened (or written) through the mount, older handles'
//! reads fail with EIO, checked before and after each read, so neither the block cache nor
//! the kernel's page cache (one per inode) ever mixes bytes of two versions. While a handle
//! writes a new version, its node counts it (`Node::writing`): the name stays, listed and
//! found, though the store does not have it before the upload ends.

use std::sync::atomic::Ordering;

use kplug_store::{StoreError, Upload};

use super::*;
use crate::data::{FileRef, Source};

/// Bytes one backend read fetches when the data cache can choose (a prefetched run): large
/// enough that a request's round trip is small next to its transfer, small enough that a
/// run's first block is not long in coming.
const OBJECT_READ_BYTES: u64 = 8 << 20;

/// An object at one version, as the data cache reads it.
#[derive(Debug)]
pub struct ObjectSource {
    store: Arc<Store>,
    /// The key from the mount's root: also the file's path.
    key: Arc<str>,
    etag: Option<String>,
    size: u64,
}

impl Source for ObjectSource {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        match self
            .store
            .get_range(&self.key, offset..end, self.etag.as_deref())
        {
            Ok(b) => Ok(b.to_vec()),
            Err(StoreError::Changed(what)) => Err(FsError::new(
                libc::EIO,
                format!("{what}: replaced while open; reopen the file to read the new version"),
            )
            .at(Level::Warn)),
            // read(2) has no ENOENT: the object was deleted while open.
            Err(StoreError::NotFound(what)) => {
                Err(FsError::new(libc::EIO, format!("{what}: deleted while open")).at(Level::Warn))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn size(&self) -> Result<u64> {
        Ok(self.size)
    }

    fn preferred_read(&self) -> u64 {
        OBJECT_READ_BYTES
    }

    fn path(&self) -> Option<Arc<str>> {
        Some(self.key.clone())
    }

    fn last_retries(&self) -> u32 {
        kplug_store::last_call_retries()
    }
}

/// What a handle writes.
#[derive(Debug)]
enum Writing {
    /// Opened for reading, or for writing without `O_TRUNC` on an existing object: no write
    /// is possible (until a truncation to 0 starts a new version).
    None,
    /// A new version, being written.
    Upload(Upload),
    /// Written and closed (visible), or failed: no more writes.
    Done,
}

/// An open file.
#[derive(Debug)]
pub struct OpenObject {
    /// Its inode.
    pub ino: u64,
    /// The version it reads.
    source: Arc<dyn Source>,
    /// That version's ETag.
    etag: Option<String>,
    /// Whether it was opened for writing.
    write_mode: bool,
    /// The process (thread group) that opened it.
    opener: u32,
    writing: Mutex<Writing>,
}

impl OpenObject {
    /// Whether a new version is being written through it.
    pub fn writing(&self) -> bool {
        matches!(*self.writing.lock(), Writing::Upload(_))
    }
}

/// The process (thread group) of thread `tid`: FUSE requests carry the calling thread's id.
/// `tid` itself when /proc does not say (the thread is gone).
fn process_of(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

impl ObjectFs {
    fn handle(&self, fh: u64) -> Result<Arc<OpenObject>> {
        self.files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| fs_err!(libc::EBADF, "unknown file handle {fh}"))
    }

    fn register(&self, f: OpenObject) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.nodes.lock().opened(f.ino, 1);
        self.files.lock().insert(fh, Arc::new(f));
        fh
    }

    fn upload(&self, ino: u64) -> Result<Upload> {
        Ok(Upload::new(self.store.clone(), self.key(ino)?)?)
    }

    /// A handle starts writing a new version of `ino` (`delta` 1) or is done with it (-1).
    fn writing(&self, ino: u64, delta: i32) {
        if let Some(n) = self.nodes.lock().get_mut(ino) {
            n.writing = n.writing.saturating_add_signed(delta);
        }
    }

    /// Whether `f` still reads the version the data cache holds for its file (see the
    /// module note): EIO once a newer one was opened or written through the mount.
    fn still_current(&self, f: &OpenObject) -> Result<()> {
        match self.nodes.lock().get(f.ino) {
            Some(n) if n.cached_etag != f.etag => Err(FsError::new(
                libc::EIO,
                format!(
                    "{}: a newer version was opened since; reopen the file to read it",
                    n.name
                ),
            )
            .at(Level::Warn)),
            _ => Ok(()),
        }
    }

    /// Open `ino`: its attributes are asked again unless fresh, and the version seen is the
    /// one read (blocks cached for another version are dropped).
    pub(super) fn open(&self, ino: u64, flags: i32, pid: u32) -> Result<Opened> {
        let n = self.node(ino)?;
        if n.kind == NodeKind::Dir {
            return Err(fs_err!(libc::EISDIR, "a directory"));
        }
        let write_mode = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if write_mode && flags & libc::O_APPEND != 0 {
            return Err(unsupported(libc::EPERM, "append"));
        }
        if n.writing == 0 && n.parent != 0 && n.seen.elapsed() >= self.config.attr_ttl {
            let parent = n.parent;
            if self.probe_file(parent, &n.name)? != Some(ino) {
                return Err(fs_err!(libc::ESTALE, "{} changed or was deleted", n.name));
            }
        }
        let truncate = write_mode && flags & libc::O_TRUNC != 0;
        let (keep_cache, source, etag) = {
            let mut nodes = self.nodes.lock();
            let key = nodes.key(ino).unwrap_or_default();
            let n = nodes.get_mut(ino).expect("checked above");
            let same = n.cached_etag.is_some() && n.cached_etag == n.etag;
            if !same && !truncate {
                self.data.invalidate_file(ino);
                n.cached_etag = n.etag.clone();
            }
            let source: Arc<dyn Source> = Arc::new(ObjectSource {
                store: self.store.clone(),
                key: key.into(),
                etag: n.etag.clone(),
                size: n.size,
            });
            (same, source, n.etag.clone())
        };
        let writing = if truncate {
            Writing::Upload(self.upload(ino)?)
        } else {
            Writing::None
        };
        let fh = self.register(OpenObject {
            ino,
            source,
            etag,
            write_mode,
            opener: process_of(pid),
            writing: Mutex::new(writing),
        });
        if truncate {
            self.writing(ino, 1);
            self.written(ino, 0);
        }
        Ok(Opened {
            fh,
            keep_cache: keep_cache && self.config.kernel_cache && !write_mode,
            direct_io: false,
        })
    }

    /// What `name` in `parent` is now, as [`names`](super::names) records it.
    fn probe_file(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        let pkey = self.key(parent)?;
        let (object, _) = self.store.probe(&format!("{pkey}{name}"))?;
        let mut nodes = self.nodes.lock();
        Ok(object.map(|info| nodes.upsert_object(parent, name, &info)))
    }

    /// The node of a file being written reflects what was written so far.
    fn written(&self, ino: u64, size: u64) {
        if let Some(n) = self.nodes.lock().get_mut(ino) {
            n.size = size;
            n.mtime = SystemTime::now();
        }
    }

    /// Create `name` in `parent` and open it for writing: an empty new version, visible at
    /// close.
    pub(super) fn create(
        &self,
        parent: u64,
        name: &OsStr,
        flags: i32,
        pid: u32,
    ) -> Result<(Entry, Opened)> {
        let name = check_name(name)?;
        if flags & libc::O_APPEND != 0 {
            return Err(unsupported(libc::EPERM, "append"));
        }
        let ino = {
            let mut nodes = self.nodes.lock();
            let ino = nodes.upsert(parent, name, NodeKind::File, |n| {
                n.size = 0;
                n.etag = None;
                n.mtime = SystemTime::now();
                n.writing += 1;
            });
            nodes.reference(ino);
            ino
        };
        self.data.invalidate_file(ino);
        let upload = match self.upload(ino) {
            Ok(u) => u,
            Err(e) => {
                self.writing(ino, -1);
                return Err(e);
            }
        };
        let source: Arc<dyn Source> = Arc::new(ObjectSource {
            store: self.store.clone(),
            key: upload.key().into(),
            etag: None,
            size: 0,
        });
        let fh = self.register(OpenObject {
            ino,
            source,
            etag: None,
            write_mode: true,
            opener: process_of(pid),
            writing: Mutex::new(Writing::Upload(upload)),
        });
        let entry = self.entry_of(&self.node(ino)?);
        Ok((
            entry,
            Opened {
                fh,
                ..Opened::default()
            },
        ))
    }

    /// Read through the data cache, from the version the handle opened.
    pub(super) fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let f = self.handle(fh)?;
        if f.writing() {
            return Err(unsupported(
                libc::EBADF,
                "reading a file while it is written",
            ));
        }
        self.still_current(&f)?;
        let data = self.data.read(
            FileRef {
                ino: f.ino,
                source: &f.source,
            },
            offset,
            size,
        )?;
        // A newer version opened meanwhile may have put its blocks where this read found them.
        self.still_current(&f)?;
        Ok(data)
    }

    /// Write at the end of the new version (anywhere else is refused).
    pub(super) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<Written> {
        let f = self.handle(fh)?;
        let mut w = f.writing.lock();
        let Writing::Upload(up) = &mut *w else {
            return Err(unsupported(
                libc::EPERM,
                "writing into an existing object (open it with O_TRUNC to replace it)",
            ));
        };
        if offset != up.len() {
            return Err(unsupported(
                libc::EINVAL,
                &format!("writing at {offset} of a file written up to {}", up.len()),
            ));
        }
        if let Err(e) = up.write(data) {
            *w = Writing::Done;
            drop(w);
            self.writing(f.ino, -1);
            return Err(e.into());
        }
        let size = up.len();
        drop(w);
        self.written(f.ino, size);
        Ok(Written {
            bytes: data.len() as u32,
            stale_pages: None,
        })
    }

    /// `truncate`/`ftruncate`: to 0 starts a new version (through a handle open for
    /// writing), to the length written so far is a no-op; anything else is refused.
    pub(super) fn truncate(&self, ino: u64, fh: Option<u64>, size: u64) -> Result<()> {
        let handle = match fh {
            Some(fh) => Some(self.handle(fh)?),
            None => self
                .files
                .lock()
                .values()
                .find(|f| f.ino == ino && f.write_mode)
                .cloned(),
        };
        let Some(f) = handle.filter(|f| f.write_mode) else {
            let n = self.node(ino)?;
            if n.size == size {
                return Ok(());
            }
            return Err(unsupported(libc::EPERM, "truncating a closed object"));
        };
        let mut w = f.writing.lock();
        match &mut *w {
            Writing::Upload(up) if up.len() == size => Ok(()),
            Writing::None if size == 0 => {
                *w = Writing::Upload(self.upload(ino)?);
                drop(w);
                self.writing(ino, 1);
                self.written(ino, 0);
                Ok(())
            }
            _ => Err(unsupported(
                libc::EPERM,
                &format!("truncating to {size} bytes (only to 0, or to the length written)"),
            )),
        }
    }

    /// End the new version a handle writes, if any (the `close()` that returns after this
    /// has made it visible): the object's attributes are taken from the store.
    ///
    /// A handle's descriptors may be duplicated, so `flush` (`closer`: the closing thread)
    /// may come before the last write: as mountpoint-s3 does, a flush ends the upload only
    /// once bytes were written and only when the process that opened the file closes it,
    /// from any of its threads (`touch`, `dd` and shells close the descriptor they opened
    /// after duplicating it, a forked child closes its copies); otherwise the handle's
    /// `release` ends it. `fsync` and `release` (`closer` `None`) always end it.
    pub(super) fn finish(&self, fh: u64, closer: Option<u32>) -> Result<()> {
        let f = self.handle(fh)?;
        let upload = {
            let mut w = f.writing.lock();
            let defer = match (&*w, closer) {
                (Writing::Upload(up), Some(tid)) => {
                    up.is_empty() || (tid != f.opener && process_of(tid) != f.opener)
                }
                _ => false,
            };
            if defer {
                return Ok(());
            }
            match std::mem::replace(&mut *w, Writing::Done) {
                Writing::Upload(up) => up,
                other => {
                    *w = other;
                    return Ok(());
                }
            }
        };
        // The node counts the upload until the store has the new version (or it failed).
        let result = self.complete(f.ino, upload);
        self.writing(f.ino, -1);
        result
    }

    /// Make an upload of `ino` visible and take its attributes from the store.
    fn complete(&self, ino: u64, upload: Upload) -> Result<()> {
        let key = upload.key().to_string();
        let size = upload.len();
        let finished = upload.finish().map(drop).or_else(|e| {
            // A completed upload whose answer was lost (RGW may answer without an ETag):
            // what the store holds decides.
            match self.store.head(&key) {
                Ok(Some(info)) if info.size == size => Ok(()),
                _ => Err(e),
            }
        });
        self.data.invalidate_file(ino);
        finished?;
        if let Some(n) = self.nodes.lock().get_mut(ino) {
            // The version handles opened before is gone: they read no more (EIO).
            n.cached_etag = None;
        }
        let info = self.store.head(&key)?;
        let mut nodes = self.nodes.lock();
        if let (Some(info), Some(n)) = (info, nodes.get_mut(ino)) {
            n.size = info.size;
            n.etag = info.etag;
            n.mtime = info.mtime;
            n.seen = std::time::Instant::now();
        }
        Ok(())
    }

    /// Last close: a version still being written is ended here.
    pub(super) fn release(&self, fh: u64) -> Result<()> {
        let r = self.finish(fh, None);
        if let Some(f) = self.files.lock().remove(&fh) {
            self.nodes.lock().opened(f.ino, -1);
        }
        r
    }
}
