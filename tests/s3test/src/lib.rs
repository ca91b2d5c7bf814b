//! Helpers of the tests that run against a real S3 server: the project's single-node Ceph
//! RGW (`scripts/s3/ceph-s3.sh start`; `scripts/test.sh` starts it and exports its
//! environment). Nothing here is a mock: buckets are created, objects written, read, listed
//! and deleted on the server with signed requests (`curl --aws-sigv4`), behind any mount's
//! back.
//!
//! The free functions talk to the server of the environment (`AWS_ENDPOINT_URL`); a
//! [`Server`] names another one (a second cluster on another port, same keys).

use std::path::PathBuf;
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

/// An S3 server reached with the environment's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `http://127.0.0.1:7480`.
    pub endpoint: String,
}

impl Default for Server {
    /// The server of the environment.
    fn default() -> Self {
        Server {
            endpoint: endpoint(),
        }
    }
}

/// What a request returned: its HTTP status (0 when curl got no answer) and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Server {
    /// The server at `endpoint`.
    pub fn at(endpoint: &str) -> Self {
        Server {
            endpoint: endpoint.trim_end_matches('/').to_string(),
        }
    }

    /// Send a signed request (`path` with its query, already encoded); never panics.
    pub fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Response {
        env();
        let ak = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
        let sk = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
        let region = std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into());
        let input = scratch_path();
        let output = scratch_path();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "120", "-w", "%{http_code}", "-X", method])
            .arg("-o")
            .arg(&output)
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{region}:s3"))
            .arg("--user")
            .arg(format!("{ak}:{sk}"))
            // RGW refuses the signature without it.
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            // Keys are sent as they are: `a/./b` is a key, not a path to tidy.
            .arg("--path-as-is");
        if let Some(b) = body {
            std::fs::write(&input, b).unwrap();
            cmd.arg("--data-binary")
                .arg(format!("@{}", input.display()));
        }
        cmd.arg(format!("{}/{path}", self.endpoint));
        let out = cmd.output().expect("run curl");
        let body = std::fs::read(&output).unwrap_or_default();
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
        Response {
            status: String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            body,
        }
    }

    /// A new, empty bucket named after `what`, unique to this process and call.
    pub fn bucket(&self, what: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "kplug-{what}-{}-{}",
            run_tag(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let r = self.call("PUT", &name, None);
        assert_eq!(r.status, 200, "creating bucket {name}: HTTP {}", r.status);
        name
    }

    /// Write object `key` of `bucket` (behind any mount's back).
    pub fn put(&self, bucket: &str, key: &str, data: &[u8]) {
        let r = self.call("PUT", &format!("{bucket}/{}", encode(key)), Some(data));
        assert_eq!(r.status, 200, "putting {bucket}/{key}: HTTP {}", r.status);
    }

    /// The bytes of object `key`, or `None` when there is none.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self.call("GET", &format!("{bucket}/{}", encode(key)), None);
        match r.status {
            200 => Some(r.body),
            404 => None,
            s => panic!(
                "getting {bucket}/{key}: HTTP {s}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }

    /// Delete object `key` of `bucket`.
    pub fn delete(&self, bucket: &str, key: &str) {
        let r = self.call("DELETE", &format!("{bucket}/{}", encode(key)), None);
        assert!(
            r.status == 204 || r.status == 200,
            "deleting {bucket}/{key}: HTTP {}",
            r.status
        );
    }

    /// Every key under `prefix` with its size, in key order (ListObjectsV2, all pages, no
    /// delimiter).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        loop {
            let mut q = format!("{bucket}?list-type=2&max-keys=1000");
            if !prefix.is_empty() {
                q.push_str(&format!("&prefix={}", encode_all(prefix)));
            }
            if let Some((last, _)) = out.last() {
                q.push_str(&format!("&start-after={}", encode_all(last)));
            }
            let r = self.call("GET", &q, None);
            let text = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(r.status, 200, "listing {bucket}: HTTP {}: {text}", r.status);
            let before = out.len();
            for item in text.split("<Contents>").skip(1) {
                let key = unescape(between(item, "<Key>", "</Key>").expect("a key"));
                let size = between(item, "<Size>", "</Size>")
                    .and_then(|s| s.parse().ok())
                    .expect("a size");
                out.push((key, size));
            }
            if between(&text, "<IsTruncated>", "</IsTruncated>") != Some("true")
                || out.len() == before
            {
                return out;
            }
        }
    }

    /// Delete `keys` of `bucket` (DeleteObjects, 1000 per request).
    pub fn delete_many(&self, bucket: &str, keys: &[String]) {
        for chunk in keys.chunks(1000) {
            let mut xml = String::from("<Delete><Quiet>true</Quiet>");
            for k in chunk {
                xml.push_str(&format!("<Object><Key>{}</Key></Object>", escape(k)));
            }
            xml.push_str("</Delete>");
            // `delete=`: curl signs a bare `delete` differently from RGW.
            let r = self.call("POST", &format!("{bucket}?delete="), Some(xml.as_bytes()));
            assert_eq!(
                r.status,
                200,
                "deleting {} keys of {bucket}: {}",
                chunk.len(),
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    /// Delete every object of `bucket`, then the bucket; whether it is gone.
    pub fn remove_bucket(&self, bucket: &str) -> bool {
        let keys: Vec<String> = self.list(bucket, "").into_iter().map(|(k, _)| k).collect();
        self.delete_many(bucket, &keys);
        let r = self.call("DELETE", bucket, None);
        r.status == 204 || r.status == 404
    }
}

/// A bucket made for one test, emptied and removed when dropped (so the shared server's
/// memory does not fill up run after run).
#[derive(Debug)]
pub struct TestBucket {
    /// Its server.
    pub server: Server,
    /// Its name.
    pub name: String,
}

impl TestBucket {
    /// A fresh bucket on the environment's server.
    pub fn new(what: &str) -> Self {
        Self::on(Server::default(), what)
    }

    /// A fresh bucket on `server`.
    pub fn on(server: Server, what: &str) -> Self {
        let name = server.bucket(what);
        TestBucket { server, name }
    }

    /// Write object `key`.
    pub fn put(&self, key: &str, data: &[u8]) {
        self.server.put(&self.name, key, data)
    }

    /// The bytes of object `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.server.get(&self.name, key)
    }

    /// Delete object `key`.
    pub fn delete(&self, key: &str) {
        self.server.delete(&self.name, key)
    }

    /// Every key under `prefix` and its size.
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        self.server.list(&self.name, prefix)
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.list(prefix).into_iter().map(|(k, _)| k).collect()
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        // Never panic here (a test may be unwinding, or the server may be down on purpose).
        let server = self.server.clone();
        let name = self.name.clone();
        let removed = std::panic::catch_unwind(move || server.remove_bucket(&name));
        if !matches!(removed, Ok(true)) {
            eprintln!("note: bucket {} was not removed", self.name);
        }
    }
}

fn scratch_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "kplug-s3test-{}-{}",
        run_tag(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// This process's part of the names it makes: its pid and when it started (base 36). The
/// pid alone is not enough: pids wrap (32768 on Debian), and a run that was killed leaves its
/// buckets on the server, where a later process of the same pid would find one not empty.
fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let mut t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut b36 = Vec::new();
        while t > 0 {
            b36.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(t % 36) as usize]);
            t /= 36;
        }
        b36.reverse();
        format!("{}-{}", std::process::id(), String::from_utf8(b36).unwrap())
    })
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Send a signed S3 request to the environment's server; its HTTP status.
pub fn s3_request(method: &str, path: &str, body: Option<&[u8]>) -> u16 {
    Server::default().call(method, path, body).status
}

/// A new, empty bucket named after `what`, unique to this process and call (left on the
/// server: [`TestBucket`] removes its bucket when dropped).
pub fn bucket(what: &str) -> String {
    Server::default().bucket(what)
}

/// Write object `key` of `bucket` directly on the server (behind any mount's back).
pub fn put_object(bucket: &str, key: &str, data: &[u8]) {
    Server::default().put(bucket, key, data)
}

/// Delete object `key` of `bucket` directly on the server.
pub fn delete_object(bucket: &str, key: &str) {
    Server::default().delete(bucket, key)
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

/// Percent-encode a query value (`/` too).
fn encode_all(v: &str) -> String {
    encode(v).replace('/', "%2F")
}
