//! [`Upload`]: an object written from start to end, streamed to the store in parts.
//!
//! Bytes are buffered up to a part (8 MiB: above S3's 5 MiB minimum for every part but the
//! last, and a size where a part's request cost is small next to its transfer). A file that
//! ends within its first part is written with one PUT at [`Upload::finish`]. Otherwise the
//! first full part starts a multipart upload, and each full part is sent while the writer
//! goes on filling the next: at most [`PARTS_IN_FLIGHT`] parts are on their way, and a writer
//! that gets ahead waits for the oldest, so memory stays bounded at a few parts per open
//! file whatever its size. Nothing is visible to other clients until `finish` completes the
//! upload; a failed or abandoned upload is aborted, and leaves no object behind.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use crate::client::Store;
use crate::error::StoreError;
use crate::metrics::RequestKind;

/// Bytes per part.
pub const PART_BYTES: usize = 8 << 20;
/// Parts sent concurrently by one upload.
pub const PARTS_IN_FLIGHT: usize = 2;

/// A part being sent: its result and how long it took.
type PartTask = JoinHandle<(object_store::Result<()>, Duration)>;

/// An object being written (see the module note).
pub struct Upload {
    store: Arc<Store>,
    rel: String,
    buf: BytesMut,
    written: u64,
    multipart: Option<Box<dyn MultipartUpload>>,
    /// Parts on their way, with their bytes.
    in_flight: VecDeque<(PartTask, u64)>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("rel", &self.rel)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// Start writing object `rel` of `store`.
    pub fn new(store: Arc<Store>, rel: String) -> Result<Upload, StoreError> {
        store.key(&rel)?;
        Ok(Upload {
            store,
            rel,
            buf: BytesMut::new(),
            written: 0,
            multipart: None,
            in_flight: VecDeque::new(),
        })
    }

    /// Bytes written so far (the next write's offset).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    fn what(&self) -> String {
        format!("writing {}", self.store.describe(&self.rel))
    }

    /// Wait for the oldest part in flight.
    fn wait_oldest(&mut self) -> Result<(), StoreError> {
        let Some((handle, bytes)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let what = self.what();
        let (_, rt) = self.store.parts();
        let (r, took) = rt.block_on(handle).unwrap_or_else(|e| {
            let e = object_store::Error::Generic {
                store: "upload",
                source: Box::new(e),
            };
            (Err(e), Duration::ZERO)
        });
        self.store
            .account(RequestKind::UploadPart, &what, r, took, |_| bytes)
    }

    /// Send the buffered part.
    fn send_part(&mut self) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            let path = self.store.key(&self.rel)?;
            let what = self.what();
            let (inner, _) = self.store.parts();
            let inner = inner.clone();
            let m = self.store.run(
                RequestKind::CreateMultipart,
                &what,
                async move { inner.put_multipart(&path).await },
                0,
            )?;
            self.multipart = Some(m);
        }
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let part = self.buf.split().freeze();
        let bytes = part.len() as u64;
        let fut = self
            .multipart
            .as_mut()
            .expect("started above")
            .put_part(PutPayload::from_bytes(part));
        let (_, rt) = self.store.parts();
        let timed = async move {
            let start = Instant::now();
            (fut.await, start.elapsed())
        };
        self.in_flight.push_back((rt.spawn(timed), bytes));
        Ok(())
    }

    /// Append `data`.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            let take = (PART_BYTES - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.written += take as u64;
            if self.buf.len() == PART_BYTES
                && let Err(e) = self.send_part()
            {
                self.abort();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Make the object visible with everything written; returns its size.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let what = self.what();
        if self.multipart.is_none() {
            let data = std::mem::take(&mut self.buf).freeze();
            self.store.put(&self.rel, data)?;
            return Ok(self.written);
        }
        let result = (|| {
            if !self.buf.is_empty() {
                self.send_part()?;
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest()?;
            }
            let mut m = self.multipart.take().expect("started");
            self.store.run(
                RequestKind::CompleteMultipart,
                &what,
                async move { m.complete().await },
                0,
            )
        })();
        match result {
            Ok(_) => Ok(self.written),
            Err(e) => {
                self.abort();
                Err(e)
            }
        }
    }

    /// Abandon the upload: nothing becomes visible.
    pub fn abort(&mut self) {
        let (_, rt) = self.store.parts();
        for (h, _) in self.in_flight.drain(..) {
            h.abort();
            let _ = rt.block_on(h);
        }
        if let Some(mut m) = self.multipart.take() {
            let what = self.what();
            let _ = self.store.run(
                RequestKind::AbortMultipart,
                &what,
                async move { m.abort().await },
                0,
            );
        }
        self.buf = BytesMut::new();
    }
}

impl Drop for Upload {
    /// An upload dropped unfinished is aborted.
    fn drop(&mut self) {
        if self.multipart.is_some() || !self.in_flight.is_empty() {
            self.abort();
        }
    }
}
