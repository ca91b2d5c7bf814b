//! End-to-end tests of object-store mounts (`kplugfs mount s3://BUCKET[/PREFIX]`) against a
//! real S3 server: the project's Ceph RGW (`scripts/s3/ceph-s3.sh start`, then
//! `eval "$(scripts/s3/ceph-s3.sh env)"`), with the mount tests:
//!
//! ```text
//! cargo build -p kplugfs && cargo test -p kplugfs-tests --features mount-tests --test s3
//! ```
//!
//! Without the server each test is skipped, saying so on stderr; `KPLUGFS_S3_REQUIRED=1`
//! (`scripts/test.sh`, which starts the server) makes that a failure
//! (`kplugfs_tests::s3::available`).
//!
//! No mocks: every test mounts a fresh bucket of the server with the real binary, and
//! changes objects behind the mount's back with signed requests (`kplugfs_s3test`). Buckets
//! are emptied and removed when a test ends, mounts unmounted (also when it fails).
//!
//! - `reads`: every byte of objects of many sizes, through every policy and hot swaps;
//! - `listing`: a directory of 10,000 entries through readdir and readdirplus;
//! - `names`: keys with spaces, unicode and `%`;
//! - `changes`: objects replaced and deleted behind the mount;
//! - `refused`: every operation an object store refuses, its errno and its log line;
//! - `writes`: what writes become on the server, and when;
//! - `outage`: the server killed in the middle of a read (a second cluster of its own);
//! - `stats`: the `store` section of `.kplug/stats` against docs/METRICS.md;
//! - `views`: transform views (`grep`, `gunzip`) of objects (docs/views.md).
//! - `probes`: probe plugins (ABI 1.5) reporting on an object-store mount.
//! - `scopes`: a prefix of the bucket with its own share of the cache and its own plugin.
//! - `chaos`: plugins of every role and a governor answering at random while objects are
//!   read and replaced.
#![cfg(feature = "mount-tests")]

mod changes;
mod chaos;
mod listing;
mod names;
mod outage;
mod probes;
mod reads;
mod refused;
mod scopes;
mod stats;
mod views;
mod writes;
