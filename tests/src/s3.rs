//! Object-store mounts of the real S3 server for the end-to-end tests (`tests/tests/s3/`,
//! `tests/tests/model/s3.rs`): [`S3Mount`] mounts `s3://BUCKET[/PREFIX]` of a
//! [`TestBucket`] and unmounts when dropped; [`client`] is a second client of the same bucket
//! (the store crate, not through any mount); [`pattern`] makes the bytes objects hold.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use kplugfs_s3test::{Server, TestBucket};

use crate::{is_kplugfs_mount, kplugfs};

/// Whether the S3 test server can be used: its environment loaded (keys and
/// `AWS_ENDPOINT_URL`, from `eval "$(scripts/s3/ceph-s3.sh env)"`) and its endpoint
/// answering HTTP. When it cannot, the S3 tests are skipped and the first one to find out
/// says why on stderr (past the test harness's capture, so it shows under `cargo test`);
/// with `KPLUGFS_S3_REQUIRED=1` (`scripts/test.sh` sets it: CI starts the server) the test
/// fails instead, so a server that did not come up cannot pass for green. See
/// [`require_s3!`](crate::require_s3).
pub fn available() -> bool {
    static WHY_NOT: OnceLock<Option<String>> = OnceLock::new();
    let why_not = WHY_NOT.get_or_init(|| {
        let missing: Vec<&str> = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
        ]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
        .collect();
        if !missing.is_empty() {
            return Some(format!("{} not set", missing.join(", ")));
        }
        let server = Server::default();
        // ListBuckets: any HTTP status means a server answers (curl reports 0 otherwise).
        let r = server.call("GET", "", None);
        (r.status == 0).then(|| format!("nothing answers on {}", server.endpoint))
    });
    let Some(why) = why_not else {
        return true;
    };
    let fix = "start it with: scripts/s3/ceph-s3.sh start && eval \"$(scripts/s3/ceph-s3.sh env)\"";
    if std::env::var("KPLUGFS_S3_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("KPLUGFS_S3_REQUIRED=1 but the S3 test server is not available ({why}); {fix}");
    }
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the S3 tests of this binary: the S3 test server is not available ({why}); \
             {fix}"
        );
    });
    false
}

/// First line of a test that needs the S3 test server: returns (the test is skipped, with
/// a message) when [`s3::available`](crate::s3::available) says it is not there.
#[macro_export]
macro_rules! require_s3 {
    () => {
        if !$crate::s3::available() {
            return;
        }
    };
}

/// A mounted object store.
pub struct S3Mount {
    /// Holds the mount point and the log.
    pub root: tempfile::TempDir,
    /// The mount point.
    pub mnt: PathBuf,
    /// The daemon's log (`--log-file`).
    pub log: PathBuf,
}

impl S3Mount {
    /// Mount `bucket` (its root) with extra `kplugfs mount` options.
    pub fn new(bucket: &TestBucket, extra: &[&str]) -> Self {
        Self::source(&format!("s3://{}", bucket.name), &bucket.server, extra)
    }

    /// Mount `source` (`s3://BUCKET[/PREFIX]`) of `server`.
    pub fn source(source: &str, server: &Server, extra: &[&str]) -> Self {
        Self::try_source(source, server, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`S3Mount::source`], or why `kplugfs mount` failed.
    pub fn try_source(source: &str, server: &Server, extra: &[&str]) -> Result<Self, String> {
        kplugfs_s3test::env();
        let root = tempfile::Builder::new()
            .prefix("kplugfs-s3test")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let mnt = root.path().join("mnt");
        let log = root.path().join("daemon.log");
        std::fs::create_dir(&mnt).unwrap();
        let mut args = vec![
            "mount",
            source,
            mnt.to_str().unwrap(),
            "--endpoint",
            &server.endpoint,
            "--log-file",
            log.to_str().unwrap(),
        ];
        if !extra.iter().any(|a| a.starts_with("--history")) {
            args.extend_from_slice(&["--history-period", "0"]);
        }
        args.extend_from_slice(extra);
        let out = kplugfs(&args);
        if !out.status.success() {
            return Err(format!(
                "mount {source} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        assert!(
            is_kplugfs_mount(&mnt),
            "mount returned but {} is not mounted",
            mnt.display()
        );
        Ok(Self { root, mnt, log })
    }

    /// Path inside the mount.
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The parsed `.kplug/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let text = std::fs::read(self.m(".kplug/stats")).expect("read .kplug/stats");
        serde_json::from_slice(&text).expect(".kplug/stats is JSON")
    }

    /// `store.requests.<kind>.requests` of the stats (0 when the kind was never used).
    pub fn requests(&self, kind: &str) -> u64 {
        self.stats()["store"]["requests"][kind]["requests"]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for S3Mount {
    fn drop(&mut self) {
        if is_kplugfs_mount(&self.mnt) {
            let out = kplugfs(&["umount", self.mnt.to_str().unwrap()]);
            if !out.status.success() {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
    }
}

/// A client of `bucket` that is not a mount: the store crate, rooted at `prefix`.
pub fn client(bucket: &TestBucket, prefix: &str) -> Arc<kplug_store::Store> {
    let s = kplug_store::Store::open(
        &format!("s3://{}/{prefix}", bucket.name),
        &kplug_store::StoreOptions {
            endpoint: Some(bucket.server.endpoint.clone()),
            ..kplug_store::StoreOptions::default()
        },
    )
    .expect("store client");
    Arc::new(s)
}

/// `len` bytes of a pattern of `seed`: a different sequence for each seed and each 8-byte
/// word, so a byte from the wrong offset or the wrong version shows.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        // splitmix64 of (seed, word index)
        let mut z = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .wrapping_add(1);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Whether `cond` holds within `limit` (polled every 20 ms): for what the mount does
/// asynchronously by design (an empty file is written when its last descriptor is released).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The errno of a failed call (panics on success, naming `what`).
pub fn errno_of<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("{what}: succeeded ({v:?}), an error was expected"),
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// The entries of `dir` through the mount: name, whether a directory, size.
pub fn listing(dir: &Path) -> Vec<(String, bool, u64)> {
    let mut v: Vec<(String, bool, u64)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            (
                e.file_name().into_string().unwrap(),
                md.is_dir(),
                if md.is_dir() { 0 } else { md.len() },
            )
        })
        .collect();
    v.sort();
    v
}
