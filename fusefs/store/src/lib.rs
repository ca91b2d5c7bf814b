//! The object stores behind a kplugfs mount: S3-compatible buckets (Amazon S3, Ceph's RADOS
//! Gateway, MinIO), Google Cloud Storage and Azure Blob, through `object_store` (the Apache
//! Arrow project's client; docs/object-store.md says why this crate).
//!
//! ```text
//! Store::open("s3://bucket/prefix", &options)   credentials: AWS variables, ~/.aws, flags
//! store.check()                                  mount time: fail fast, one readable line
//! store.head / list / get_range(etag) / put / delete / copy   blocking calls
//! Upload::new(store, key).write(..).finish()    streamed multipart writes
//! store.stats()                                  requests, retries, errors, bytes, latency per kind
//! ```
//!
//! Files: `open.rs` (mount sources and client settings: timeouts, bounded retries),
//! `profile.rs` (the AWS shared files), `client.rs` (the blocking calls), `upload.rs`
//! (objects written in streamed parts), `metrics.rs` (per-kind counters, counted where the
//! HTTP requests leave), `error.rs`.

#![warn(missing_docs)]

mod client;
mod error;
mod metrics;
mod open;
mod profile;
mod upload;

pub use client::{Listing, ObjectInfo, Store};
pub use error::StoreError;
pub use metrics::{KindSnapshot, RequestKind, StoreMetrics, last_call_retries};
pub use open::{Location, Scheme, StoreOptions};
pub use upload::{PART_BYTES, Upload};
