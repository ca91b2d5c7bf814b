//! From a mount source (`s3://BUCKET[/PREFIX]`, `gs://...`, `az://...`) and options to a
//! configured `object_store` client.
//!
//! S3: credentials, region and endpoint come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`), then from the shared files' profile
//! (`profile.rs`), then from `--endpoint`/`--region`, which win. Requests are path-style
//! (what S3-compatible servers expect); `http://` endpoints are allowed. GCS and Azure take
//! their usual environment (`GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...), and
//! `--endpoint` points them at an emulator (`fake-gcs-server`-style base URL, Azurite).
//!
//! Every client gets the same request policy: a connect timeout, a per-attempt timeout, and
//! retries with exponential backoff (`object_store`'s: on connection errors, timeouts, 5xx
//! and 429/503 SlowDown) that start no new attempt once `retry_timeout` has passed since the
//! first one: a call gives up within about `retry_timeout + request_timeout`.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::StoreError;
use crate::metrics::{MeteredConnector, StoreMetrics};
use crate::profile;

/// Which kind of store a source names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://`: Amazon S3 and every S3-compatible server (Ceph RGW, MinIO).
    S3,
    /// `gs://`: Google Cloud Storage.
    Gcs,
    /// `az://`: Azure Blob Storage.
    Azure,
}

/// A parsed mount source: the store, the bucket (container), and the key prefix that is
/// the mount's root (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The kind of store.
    pub scheme: Scheme,
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// Keys under this prefix are the mount's files; `a/b/` for `s3://bucket/a/b`.
    pub prefix: String,
}

impl Location {
    /// Whether `source` names a store (`s3://`, `gs://`, `az://`) rather than a directory.
    pub fn is_store(source: &str) -> bool {
        ["s3://", "gs://", "az://"]
            .iter()
            .any(|s| source.starts_with(s))
    }

    /// Parse `s3://BUCKET[/PREFIX]` (likewise `gs://`, `az://`).
    pub fn parse(source: &str) -> Result<Location, StoreError> {
        let (scheme, rest) = if let Some(r) = source.strip_prefix("s3://") {
            (Scheme::S3, r)
        } else if let Some(r) = source.strip_prefix("gs://") {
            (Scheme::Gcs, r)
        } else if let Some(r) = source.strip_prefix("az://") {
            (Scheme::Azure, r)
        } else {
            return Err(StoreError::Config(format!(
                "{source:?} is not a store URL (s3://BUCKET[/PREFIX], gs://..., az://...)"
            )));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Config(format!(
                "{source:?} names no bucket (s3://BUCKET[/PREFIX])"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|s| s == "." || s == "..")
            || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
        {
            return Err(StoreError::Config(format!(
                "{source:?}: the prefix must not have empty, `.` or `..` parts"
            )));
        }
        Ok(Location {
            scheme,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }
}

/// How a store client is set up.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `--endpoint URL`: the server (S3-compatible servers, emulators).
    pub endpoint: Option<String>,
    /// `--region R`.
    pub region: Option<String>,
    /// `--profile NAME` of the AWS shared files.
    pub profile: Option<String>,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time one attempt may take, body included.
    pub request_timeout: Duration,
    /// No new attempt starts once this much time passed since a call's first one.
    pub retry_timeout: Duration,
    /// Idle connections kept per host (the concurrency the data path uses).
    pub max_idle_connections: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            profile: None,
            connect_timeout: Duration::from_secs(5),
            // An 8 MiB part at 2 MB/s still fits; a hung server is found out in this time.
            request_timeout: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            max_idle_connections: 64,
        }
    }
}

fn client_options(o: &StoreOptions) -> ClientOptions {
    ClientOptions::new()
        // Set here: `with_client_options` replaces every client option at once.
        .with_allow_http(true)
        .with_connect_timeout(o.connect_timeout)
        .with_timeout(o.request_timeout)
        .with_pool_max_idle_per_host(o.max_idle_connections)
}

fn retry(o: &StoreOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 16,
        retry_timeout: o.retry_timeout,
    }
}

/// Build the client of `loc` counting into `metrics`.
pub(crate) fn build(
    loc: &Location,
    o: &StoreOptions,
    metrics: Arc<StoreMetrics>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let connector = MeteredConnector { metrics };
    let config = |e: object_store::Error| StoreError::Config(format!("store client: {e}"));
    Ok(match loc.scheme {
        Scheme::S3 => {
            let mut b = AmazonS3Builder::from_env().with_bucket_name(&loc.bucket);
            // The shared files fill what the environment left unset.
            let p = profile::load(o.profile.as_deref()).map_err(StoreError::Config)?;
            let unset = |k: AmazonS3ConfigKey, b: &AmazonS3Builder| {
                b.get_config_value(&k).is_none_or(|v| v.is_empty())
            };
            for (key, value) in [
                (AmazonS3ConfigKey::AccessKeyId, p.access_key_id),
                (AmazonS3ConfigKey::SecretAccessKey, p.secret_access_key),
                (AmazonS3ConfigKey::Token, p.session_token),
                (AmazonS3ConfigKey::Region, p.region),
                (AmazonS3ConfigKey::Endpoint, p.endpoint_url),
            ] {
                if let Some(v) = value
                    && unset(key, &b)
                {
                    b = b.with_config(key, v);
                }
            }
            if let Some(e) = &o.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &o.region {
                b = b.with_region(r);
            }
            if unset(AmazonS3ConfigKey::Region, &b) {
                // S3-compatible servers ignore it; AWS needs one to sign.
                b = b.with_region("us-east-1");
            }
            if unset(AmazonS3ConfigKey::AccessKeyId, &b) {
                return Err(StoreError::Config(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                     name a profile of ~/.aws/credentials with --profile"
                        .into(),
                ));
            }
            Arc::new(
                b.with_virtual_hosted_style_request(false)
                    .with_client_options(client_options(o))
                    .with_retry(retry(o))
                    .with_http_connector(connector)
                    .build()
                    .map_err(config)?,
            )
        }
        Scheme::Gcs => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(&loc.bucket);
            if let Some(e) = &o.endpoint {
                // An emulator: its base URL, no signing.
                b = b.with_base_url(e).with_skip_signature(true);
            }
            Arc::new(
                b.with_client_options(client_options(o))
                    .with_retry(retry(o))
                    .with_http_connector(connector)
                    .build()
                    .map_err(config)?,
            )
        }
        Scheme::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env().with_container_name(&loc.bucket);
            if let Some(e) = &o.endpoint {
                b = b.with_endpoint(e.clone()).with_allow_http(true);
            }
            Arc::new(
                b.with_client_options(client_options(o))
                    .with_retry(retry(o))
                    .with_http_connector(connector)
                    .build()
                    .map_err(config)?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_bad_ones_say_why() {
        let l = Location::parse("s3://bkt/a/b/").unwrap();
        assert_eq!(
            l,
            Location {
                scheme: Scheme::S3,
                bucket: "bkt".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(Location::parse("s3://bkt").unwrap().prefix, "");
        assert_eq!(Location::parse("gs://g/x").unwrap().scheme, Scheme::Gcs);
        assert_eq!(Location::parse("az://c").unwrap().scheme, Scheme::Azure);
        for bad in [
            "s3://",
            "s3:///x",
            "s3://b/a/../c",
            "s3://b/a//c",
            "http://x",
            "/srv",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(Location::is_store("s3://b") && !Location::is_store("/srv/s3:"));
    }
}
