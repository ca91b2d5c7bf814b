//! [`Store`]: the calls a filesystem makes on an object store, blocking, on keys relative to
//! the mount's prefix.
//!
//! `object_store` is asynchronous; the filesystem's threads (FUSE workers, prefetch threads)
//! are not. The store owns a small tokio runtime and each call is `block_on` from the
//! calling thread, so a slow request blocks only its caller, and as many requests are in
//! flight as threads call at once. Every call is counted under its kind (`metrics.rs`).
//!
//! Keys are passed to the store raw (`Path::parse`, never `Path::from`, which would
//! percent-encode a `%` or a space into another key): a name with a control character, or a
//! listing holding a key with an empty, `.` or `..` segment, is refused with
//! [`StoreError::BadName`].

use std::cell::Cell;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::StoreError;
use crate::metrics::{CALL_RETRIES, KindSnapshot, LAST_CALL_RETRIES, RequestKind, StoreMetrics};
use crate::open::{self, Location, StoreOptions};

/// What a filesystem needs to know of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Its version tag (ETag, or generation): what cached data is keyed by. `None` when the
    /// store gave none.
    pub etag: Option<String>,
    /// Last modification.
    pub mtime: SystemTime,
}

impl From<&ObjectMeta> for ObjectInfo {
    fn from(m: &ObjectMeta) -> Self {
        ObjectInfo {
            size: m.size,
            etag: m.e_tag.clone().filter(|e| !e.is_empty()),
            mtime: m.last_modified.into(),
        }
    }
}

/// One directory level of a listing: the common prefixes and the objects, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Names of the sub-directories (common prefixes), without the trailing `/`.
    pub dirs: Vec<String>,
    /// Names and infos of the objects directly in the directory.
    pub files: Vec<(String, ObjectInfo)>,
    /// Whether a `dir/` marker object (made by other tools) names the directory itself.
    pub marker: bool,
}

/// A connected object store, rooted at the mount's prefix.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    location: Location,
    metrics: Arc<StoreMetrics>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connect to the store `source` names (`s3://BUCKET[/PREFIX]`, `gs://`, `az://`).
    /// Nothing is sent yet: [`Store::check`] does the first request.
    pub fn open(source: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let location = Location::parse(source)?;
        let metrics = Arc::new(StoreMetrics::default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kplugfs-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("store runtime: {e}")))?;
        // The client is built inside the runtime (its connection pool lives there).
        let inner = {
            let _guard = rt.enter();
            open::build(&location, options, metrics.clone())?
        };
        Ok(Store {
            inner,
            rt,
            location,
            metrics,
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The request counters.
    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }

    /// A copy of the request counters of every kind used so far.
    pub fn stats(&self) -> Vec<KindSnapshot> {
        self.metrics.snapshot()
    }

    /// The full key of `rel` (a path relative to the mount's root, `/`-separated).
    fn path(&self, rel: &str) -> Result<Path, StoreError> {
        let key = format!("{}{rel}", self.location.prefix);
        Path::parse(&key).map_err(|e| StoreError::BadName(format!("{key:?}: {e}")))
    }

    /// Run one call of `kind`: blocking, timed, its failure counted, and the requests it
    /// retried left for [`last_call_retries`](crate::last_call_retries) on this thread.
    fn call<T>(
        &self,
        kind: RequestKind,
        what: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
        bytes: impl FnOnce(&T) -> u64,
    ) -> Result<T, StoreError> {
        let (r, retries) = self.rt.block_on(CALL_RETRIES.scope(Cell::new(0), async {
            let r = self.counted(kind, what, fut, bytes).await;
            (r, CALL_RETRIES.with(Cell::get))
        }));
        LAST_CALL_RETRIES.with(|c| c.set(retries));
        r
    }

    /// A call of `kind`, timed and its failure counted, to await (several at once).
    async fn counted<T>(
        &self,
        kind: RequestKind,
        what: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
        bytes: impl FnOnce(&T) -> u64,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let r = fut.await;
        self.account(kind, what, r, start.elapsed(), bytes)
    }

    /// Count a finished call of `kind` that took `took` (a call timed by its caller: an
    /// upload's part, sent in the background).
    pub(crate) fn account<T>(
        &self,
        kind: RequestKind,
        what: &str,
        r: object_store::Result<T>,
        took: std::time::Duration,
        bytes: impl FnOnce(&T) -> u64,
    ) -> Result<T, StoreError> {
        let m = self.metrics.kind(kind);
        m.latency.record_duration(took);
        match r {
            Ok(v) => {
                m.bytes.add(bytes(&v));
                Ok(v)
            }
            Err(e) => {
                let e = StoreError::from_object_store(what, e);
                // "No such object" is an answer, not a failure of the store.
                if !matches!(e, StoreError::NotFound(_)) {
                    m.errors.inc();
                }
                Err(e)
            }
        }
    }

    /// Check that the store answers and lets us list the mount's root: what `kplugfs mount`
    /// does before mounting, so wrong credentials, a missing bucket or an unreachable
    /// endpoint fail the mount with one readable line.
    pub fn check(&self) -> Result<(), StoreError> {
        use futures::StreamExt;
        let prefix = self.path("")?;
        let what = format!("listing {}", self.describe(""));
        let inner = self.inner.clone();
        self.call(
            RequestKind::List,
            &what,
            async move {
                let mut s = inner.list(Some(&prefix));
                match s.next().await {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                }
            },
            |_| 0,
        )
        .or_else(|e| match e {
            // The store answered with a key that cannot be a path (`a//b`): it is there and
            // lets us in; only the directory holding that key cannot be listed.
            StoreError::BadName(_) => Ok(()),
            e => Err(e),
        })
    }

    /// `s3://bucket/prefix/rel`, for messages.
    pub fn describe(&self, rel: &str) -> String {
        let scheme = match self.location.scheme {
            open::Scheme::S3 => "s3",
            open::Scheme::Gcs => "gs",
            open::Scheme::Azure => "az",
        };
        format!(
            "{scheme}://{}/{}{rel}",
            self.location.bucket, self.location.prefix
        )
    }

    /// The object `rel`, or `None` when there is none.
    pub fn head(&self, rel: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path(rel)?;
        let what = self.describe(rel);
        match self.call(RequestKind::Head, &what, self.inner.head(&path), |_| 0) {
            Ok(m) => Ok(Some(ObjectInfo::from(&m))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What `rel` names: the object of that key, if any, and whether keys exist under
    /// `rel/` (a directory). Both questions are asked at once: one round trip.
    pub fn probe(&self, rel: &str) -> Result<(Option<ObjectInfo>, bool), StoreError> {
        use futures::StreamExt;
        let path = self.path(rel)?;
        let what = self.describe(rel);
        let head = self.counted(RequestKind::Head, &what, self.inner.head(&path), |_| 0);
        let inner = self.inner.clone();
        let list_path = path.clone();
        let dir = self.counted(
            RequestKind::List,
            &what,
            async move {
                match inner.list(Some(&list_path)).next().await {
                    // A key that cannot be a path (`a//b`) is still a key under it.
                    Some(Err(object_store::Error::InvalidPath { .. })) => Ok(true),
                    Some(Err(e)) => Err(e),
                    Some(Ok(_)) => Ok(true),
                    None => Ok(false),
                }
            },
            |_| 0,
        );
        let (head, dir) = self.rt.block_on(async { futures::join!(head, dir) });
        let object = match head {
            Ok(m) => Some(ObjectInfo::from(&m)),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        Ok((object, dir?))
    }

    /// One directory level under `dir` (relative, empty or ending in `/`): every page.
    pub fn list(&self, dir: &str) -> Result<Listing, StoreError> {
        let full = format!("{}{dir}", self.location.prefix);
        let prefix = if full.is_empty() {
            None
        } else {
            Some(Path::parse(&full).map_err(|e| StoreError::BadName(format!("{full:?}: {e}")))?)
        };
        let what = format!("listing {}", self.describe(dir));
        let r = self
            .call(
                RequestKind::List,
                &what,
                self.inner.list_with_delimiter(prefix.as_ref()),
                |_| 0,
            )
            .map_err(|e| match e {
                // The client refuses a whole page holding a key with an empty, `.` or `..`
                // part: this directory cannot be listed (its files can still be opened by name).
                StoreError::BadName(m) => StoreError::Other(format!(
                    "{m} (a key with an empty, `.` or `..` part cannot be a path: this \
                 directory cannot be listed)"
                )),
                e => e,
            })?;
        // Paths come back without the prefix's trailing `/`: the name is the last segment.
        let name = |p: &Path| p.filename().map(str::to_string);
        let mut out = Listing::default();
        for p in &r.common_prefixes {
            if let Some(n) = name(p) {
                out.dirs.push(n);
            }
        }
        for o in &r.objects {
            // A `dir/` marker object lists as the directory itself: not a file in it.
            if o.location.as_ref().len() + 1 == full.len() {
                out.marker = true;
                continue;
            }
            if let Some(n) = name(&o.location) {
                out.files.push((n, ObjectInfo::from(o)));
            }
        }
        Ok(out)
    }

    /// Bytes `range` of `rel`, only from the version `etag` (when given): an object replaced
    /// meanwhile is [`StoreError::Changed`], never bytes of two versions.
    pub fn get_range(
        &self,
        rel: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, StoreError> {
        let path = self.path(rel)?;
        let what = self.describe(rel);
        let inner = self.inner.clone();
        let opts = GetOptions {
            if_match: etag.map(str::to_string),
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        self.call(
            RequestKind::Get,
            &what,
            async move { inner.get_opts(&path, opts).await?.bytes().await },
            |b| b.len() as u64,
        )
    }

    /// Write `rel` whole.
    pub fn put(&self, rel: &str, data: Bytes) -> Result<(), StoreError> {
        let path = self.path(rel)?;
        let what = self.describe(rel);
        let len = data.len() as u64;
        self.call(
            RequestKind::Put,
            &what,
            self.inner.put(&path, PutPayload::from_bytes(data)),
            |_| len,
        )
        .map(drop)
    }

    /// Delete `rel` (a missing object is not an error: S3 answers the same).
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let path = self.path(rel)?;
        let what = self.describe(rel);
        match self.call(RequestKind::Delete, &what, self.inner.delete(&path), |_| 0) {
            Err(StoreError::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    /// Copy `from` to `to` inside the store (server side).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (pf, pt) = (self.path(from)?, self.path(to)?);
        let what = format!("copying {} to {to}", self.describe(from));
        self.call(RequestKind::Copy, &what, self.inner.copy(&pf, &pt), |_| 0)
    }

    /// The client and the runtime, for `upload.rs`.
    pub(crate) fn parts(&self) -> (&Arc<dyn ObjectStore>, &tokio::runtime::Runtime) {
        (&self.inner, &self.rt)
    }

    /// Run a call of `kind` on the store's runtime (for `upload.rs`).
    pub(crate) fn run<T>(
        &self,
        kind: RequestKind,
        what: &str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
        bytes: u64,
    ) -> Result<T, StoreError> {
        self.call(kind, what, fut, |_| bytes)
    }

    /// The full key of `rel` (for `upload.rs`).
    pub(crate) fn key(&self, rel: &str) -> Result<Path, StoreError> {
        self.path(rel)
    }
}
