//! What a store is asked and how it answers, per kind of request (`store.<kind>` in
//! `.kplug/stats`).
//!
//! Two layers count. Every HTTP request the client sends goes through [`Metered`], an
//! `object_store` HTTP service wrapped around the default one: it counts the request under
//! its kind (told from the method, the query and the copy header, for S3, GCS and Azure
//! alike) and counts it again as a *retry* when it failed in a way the client retries
//! (a connection error, a timeout, a 5xx, 429 or 503 SlowDown): each such request is followed
//! by another attempt unless the call's retry time ran out. The store's own calls
//! ([`crate::Store`]) count what a caller sees: calls that failed after every retry
//! (`errors`), the payload bytes moved, and the latency of a whole call (retries and body
//! included). The counters are the sharded ones of `kplug-metrics`: cheap enough for every
//! request.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;
use kplug_metrics::{Counter, Histogram, HistogramSnapshot};
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

tokio::task_local! {
    /// Requests retried so far by the blocking call being run (`Store::call`), counted by
    /// the metered HTTP service ([`Metered`]), which runs inside the call's future.
    pub(crate) static CALL_RETRIES: Cell<u32>;
}

thread_local! {
    pub(crate) static LAST_CALL_RETRIES: Cell<u32> = const { Cell::new(0) };
}

/// The requests the last blocking store call of this thread retried (a read's, for the
/// mount's probes: ABI 1.7 backend events); 0 before any call.
pub fn last_call_retries() -> u32 {
    LAST_CALL_RETRIES.with(Cell::get)
}

/// One request of the call being run failed in a way the client retries.
pub(crate) fn note_retry() {
    let _ = CALL_RETRIES.try_with(|c| c.set(c.get().saturating_add(1)));
}

/// A kind of store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Read an object or a range of it.
    Get,
    /// An object's size, ETag and time.
    Head,
    /// A page of a listing.
    List,
    /// Write a whole object.
    Put,
    /// Start a multipart upload.
    CreateMultipart,
    /// One part of a multipart upload.
    UploadPart,
    /// Finish a multipart upload.
    CompleteMultipart,
    /// Abandon a multipart upload.
    AbortMultipart,
    /// Delete an object.
    Delete,
    /// Copy an object inside the store.
    Copy,
    /// Anything else (credentials, metadata).
    Other,
}

impl RequestKind {
    /// Every kind, in the order `.kplug/stats` shows them.
    pub const ALL: [RequestKind; 11] = [
        RequestKind::Get,
        RequestKind::Head,
        RequestKind::List,
        RequestKind::Put,
        RequestKind::CreateMultipart,
        RequestKind::UploadPart,
        RequestKind::CompleteMultipart,
        RequestKind::AbortMultipart,
        RequestKind::Delete,
        RequestKind::Copy,
        RequestKind::Other,
    ];

    /// Its name in `.kplug/stats`.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Get => "get",
            RequestKind::Head => "head",
            RequestKind::List => "list",
            RequestKind::Put => "put",
            RequestKind::CreateMultipart => "create_multipart",
            RequestKind::UploadPart => "upload_part",
            RequestKind::CompleteMultipart => "complete_multipart",
            RequestKind::AbortMultipart => "abort_multipart",
            RequestKind::Delete => "delete",
            RequestKind::Copy => "copy",
            RequestKind::Other => "other",
        }
    }

    /// The kind of an HTTP request to S3, GCS (XML API) or Azure Blob.
    pub fn of(req: &HttpRequest) -> RequestKind {
        let method = req.method().as_str();
        let query = req.uri().query().unwrap_or("");
        let has = |k: &str| {
            query
                .split('&')
                .any(|p| p == k || p.strip_prefix(k).is_some_and(|r| r.starts_with('=')))
        };
        let header = |h: &str| req.headers().contains_key(h);
        let copy = header("x-amz-copy-source")
            || header("x-goog-copy-source")
            || header("x-ms-copy-source");
        match method {
            "HEAD" => RequestKind::Head,
            "GET" if has("list-type") || has("delimiter") || has("prefix") => RequestKind::List,
            "GET" if has("comp") && query.contains("comp=list") => RequestKind::List,
            "GET" => RequestKind::Get,
            "PUT" if has("partNumber") || query.contains("comp=block&") => RequestKind::UploadPart,
            "PUT" if query.contains("comp=blocklist") => RequestKind::CompleteMultipart,
            "PUT" if copy => RequestKind::Copy,
            "PUT" => RequestKind::Put,
            "POST" if has("uploads") => RequestKind::CreateMultipart,
            "POST" if has("uploadId") => RequestKind::CompleteMultipart,
            "POST" if has("delete") => RequestKind::Delete,
            "DELETE" if has("uploadId") => RequestKind::AbortMultipart,
            "DELETE" => RequestKind::Delete,
            _ => RequestKind::Other,
        }
    }
}

/// The counters of one kind.
#[derive(Debug, Default)]
pub struct KindMetrics {
    /// HTTP requests sent (every attempt).
    pub requests: Counter,
    /// Requests that failed in a way the client retries.
    pub retries: Counter,
    /// Calls that failed after every retry.
    pub errors: Counter,
    /// Payload bytes the calls moved (read or written).
    pub bytes: Counter,
    /// Latency of a whole call, ns.
    pub latency: Histogram,
}

/// The counters of every kind.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    kinds: [KindMetrics; 11],
}

/// A copy of one kind's counters.
#[derive(Debug, Clone)]
pub struct KindSnapshot {
    /// The kind.
    pub kind: RequestKind,
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests that failed and were retried (unless the retry time ran out).
    pub retries: u64,
    /// Calls that failed after every retry.
    pub errors: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Call latencies, ns.
    pub latency: HistogramSnapshot,
}

impl StoreMetrics {
    /// The counters of `kind`.
    pub fn kind(&self, kind: RequestKind) -> &KindMetrics {
        let i = RequestKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(10);
        &self.kinds[i]
    }

    /// A copy of every kind that saw a request or a call.
    pub fn snapshot(&self) -> Vec<KindSnapshot> {
        RequestKind::ALL
            .iter()
            .map(|&kind| {
                let m = self.kind(kind);
                KindSnapshot {
                    kind,
                    requests: m.requests.get(),
                    retries: m.retries.get(),
                    errors: m.errors.get(),
                    bytes: m.bytes.get(),
                    latency: m.latency.snapshot(),
                }
            })
            .filter(|s| s.requests > 0 || s.latency.count() > 0)
            .collect()
    }
}

/// Whether a response or an error is one the client retries.
fn retried(result: &Result<HttpResponse, HttpError>) -> bool {
    match result {
        Ok(r) => {
            let s = r.status();
            s.is_server_error() || s.as_u16() == 429
        }
        Err(e) => !matches!(e.kind(), object_store::client::HttpErrorKind::Decode),
    }
}

/// The HTTP service that counts (see the module note).
#[derive(Debug)]
struct Metered {
    inner: HttpClient,
    metrics: Arc<StoreMetrics>,
}

#[async_trait]
impl HttpService for Metered {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let m = self.metrics.kind(RequestKind::of(&req));
        m.requests.inc();
        let result = self.inner.execute(req).await;
        if retried(&result) {
            m.retries.inc();
            note_retry();
        }
        result
    }
}

/// Connects the default (reqwest) client wrapped in [`Metered`].
#[derive(Debug)]
pub(crate) struct MeteredConnector {
    pub(crate) metrics: Arc<StoreMetrics>,
}

impl HttpConnector for MeteredConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Metered {
            inner,
            metrics: self.metrics.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: &str, uri: &str, header: Option<&str>) -> RequestKind {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(h) = header {
            b = b.header(h, "src");
        }
        RequestKind::of(
            &b.body(object_store::client::HttpRequestBody::empty())
                .unwrap(),
        )
    }

    #[test]
    fn kinds_of_s3_gcs_and_azure_requests() {
        use RequestKind::*;
        let s3 = "http://127.0.0.1:7480/bucket";
        assert_eq!(kind("GET", &format!("{s3}/a/b"), None), Get);
        assert_eq!(kind("HEAD", &format!("{s3}/a/b"), None), Head);
        assert_eq!(
            kind(
                "GET",
                &format!("{s3}?list-type=2&prefix=a%2F&delimiter=%2F"),
                None
            ),
            List
        );
        assert_eq!(kind("PUT", &format!("{s3}/a"), None), Put);
        assert_eq!(
            kind("PUT", &format!("{s3}/a"), Some("x-amz-copy-source")),
            Copy
        );
        assert_eq!(
            kind("POST", &format!("{s3}/a?uploads"), None),
            CreateMultipart
        );
        assert_eq!(
            kind("PUT", &format!("{s3}/a?partNumber=1&uploadId=x"), None),
            UploadPart
        );
        assert_eq!(
            kind("POST", &format!("{s3}/a?uploadId=x"), None),
            CompleteMultipart
        );
        assert_eq!(
            kind("DELETE", &format!("{s3}/a?uploadId=x"), None),
            AbortMultipart
        );
        assert_eq!(kind("DELETE", &format!("{s3}/a"), None), Delete);
        assert_eq!(kind("POST", &format!("{s3}?delete"), None), Delete);
        let az = "https://acct.blob.core.windows.net/c";
        assert_eq!(
            kind("GET", &format!("{az}?restype=container&comp=list"), None),
            List
        );
        assert_eq!(
            kind("PUT", &format!("{az}/a?comp=block&blockid=x"), None),
            UploadPart
        );
        assert_eq!(
            kind("PUT", &format!("{az}/a?comp=blocklist"), None),
            CompleteMultipart
        );
        assert_eq!(
            kind("PUT", &format!("{az}/a"), Some("x-ms-copy-source")),
            Copy
        );
        assert_eq!(kind("OPTIONS", s3, None), Other);
        let names: std::collections::HashSet<&str> =
            RequestKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), RequestKind::ALL.len());
    }
}
