//! Helpers of the tests that run against a real S3 server: the project's single-node Ceph
//! RGW (`scripts/s3/ceph-s3.sh start`; `scripts/test.sh` starts it and exports its
//! environment). Nothing here is a mock: buckets are created on the server with a signed
//! request (`curl --aws-sigv4`).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's endpoint (`AWS_ENDPOINT_URL`).
pub fn endpoint() -> String {
    env();
    std::env::var("AWS_ENDPOINT_URL").unwrap()
}

/// Check that the S3 environment is set (credentials, endpoint); panic with what to do.
pub fn env() {
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(
            std::env::var_os(v).is_some_and(|x| !x.is_empty()),
            "{v} is not set: start the test server and load its environment first:\n  \
             scripts/s3/ceph-s3.sh start && eval \"$(scripts/s3/ceph-s3.sh env)\""
        );
    }
}

/// Send a signed S3 request with curl; its HTTP status.
pub fn s3_request(method: &str, path: &str, body: Option<&[u8]>) -> u16 {
    env();
    let ak = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let sk = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let region = std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into());
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
        .arg("--aws-sigv4")
        .arg(format!("aws:amz:{region}:s3"))
        .arg("--user")
        .arg(format!("{ak}:{sk}"))
        // RGW refuses the signature without it.
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        // Keys are sent as they are: `a/./b` is a key, not a path to tidy.
        .arg("--path-as-is");
    let dir = tempfile_path();
    if let Some(b) = body {
        std::fs::write(&dir, b).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", dir.display()));
    }
    cmd.arg(format!("{}/{path}", endpoint()));
    let out = cmd.output().expect("run curl");
    let _ = std::fs::remove_file(&dir);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn tempfile_path() -> std::path::PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "kplug-s3test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A new, empty bucket named after `what`, unique to this process and call.
pub fn bucket(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "kplug-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let status = s3_request("PUT", &name, None);
    assert_eq!(status, 200, "creating bucket {name}: HTTP {status}");
    name
}

/// Write object `key` of `bucket` directly on the server (behind any mount's back).
pub fn put_object(bucket: &str, key: &str, data: &[u8]) {
    let status = s3_request("PUT", &format!("{bucket}/{}", encode(key)), Some(data));
    assert_eq!(status, 200, "putting {bucket}/{key}: HTTP {status}");
}

/// Delete object `key` of `bucket` directly on the server.
pub fn delete_object(bucket: &str, key: &str) {
    let status = s3_request("DELETE", &format!("{bucket}/{}", encode(key)), None);
    assert!(
        status == 204 || status == 200,
        "deleting {bucket}/{key}: HTTP {status}"
    );
}

/// Percent-encode a key for a URL path (`/` kept).
pub fn encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
