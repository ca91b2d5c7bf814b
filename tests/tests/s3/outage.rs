//! The server killed in the middle of a read. A second Ceph cluster of this test's own
//! (`scripts/s3/ceph-s3.sh` on S3 port 7481, mon port 3301, `/var/tmp/kplug-ceph-kill`), so
//! the shared one is never disturbed; stopped at the end by a guard, also when the test
//! fails.
//!
//! A 64 MiB object is read sequentially through a mount with `--request-timeout 2s
//! --retry-timeout 3s`, with `O_DIRECT` (no kernel page cache) and a 16 MiB block cache.
//! After the first 8 MiB, radosgw alone is killed (`rgw-stop`: SIGKILL; the mon and the OSD
//! keep the data). The read must fail with EIO within the bound the options promise: no new
//! attempt starts `retry-timeout` after a request's first one, which then takes at most
//! `request-timeout`: 5 s, plus 10 s of slack for a busy machine (reads already cached are
//! served meanwhile; the bound counts from the kill). Every byte read before the error is
//! right. The mount stays alive (stat of the root, `.kplug/stats`, which counts the failed
//! requests); after `rgw-start` the same read, on the same descriptor, succeeds with the
//! right bytes, and so does a fresh open.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kplugfs_tests::repo_root;
use kplugfs_tests::s3::{S3Mount, Server, TestBucket, client, pattern};

use crate::reads::first_diff;

const PORT: &str = "7481";
const MON_PORT: &str = "3301";
/// In memory: its mon refuses to start when its disk has under 1 % free (a shared build
/// machine's often has), and its OSD keeps the data in memory anyway (memstore).
const DIR: &str = "/dev/shm/kplug-ceph-kill";
const SIZE: usize = 64 << 20;
const CHUNK: usize = 1 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_TIMEOUT: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_secs(10);

/// The second cluster; stopped (and its scratch directory removed) when dropped.
struct Cluster;

impl Cluster {
    fn script(cmd: &str) -> std::process::Output {
        Command::new(repo_root().join("scripts/s3/ceph-s3.sh"))
            .arg(cmd)
            .env("KPLUG_S3_PORT", PORT)
            .env("KPLUG_CEPH_MON_PORT", MON_PORT)
            .env("KPLUG_CEPH_DIR", DIR)
            .output()
            .expect("run ceph-s3.sh")
    }

    fn run(cmd: &str) {
        let out = Self::script(cmd);
        assert!(
            out.status.success(),
            "ceph-s3.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Self {
        Self::run("start");
        Cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = Self::script("stop");
        if !out.status.success() {
            eprintln!("ceph-s3.sh stop: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// A page-aligned buffer for `O_DIRECT`.
struct Aligned {
    raw: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + 4096];
        let start = raw.as_ptr().align_offset(4096);
        Aligned { raw, start }
    }

    fn buf(&mut self, len: usize) -> &mut [u8] {
        &mut self.raw[self.start..self.start + len]
    }
}

/// Read `[from, SIZE)` through `f` in 1 MiB reads, checking every byte; reports each read's
/// end offset, and stops at the first error (its offset and the error).
fn read_from(
    f: &File,
    from: usize,
    want: &[u8],
    progress: Option<&mpsc::Sender<usize>>,
) -> Result<(), (usize, std::io::Error)> {
    let mut buf = Aligned::new(CHUNK);
    let mut pos = from;
    while pos < SIZE {
        let b = buf.buf(CHUNK);
        let t0 = Instant::now();
        let r = f.read_at(b, pos as u64);
        if std::env::var("OUTAGE_DEBUG").is_ok() {
            eprintln!(
                "read at {pos}: {:?} in {:?}",
                r.as_ref().map_err(|e| e.to_string()),
                t0.elapsed()
            );
        }
        let n = match r {
            Ok(0) => panic!("end of file at {pos}"),
            Ok(n) => n,
            Err(e) => return Err((pos, e)),
        };
        assert!(
            b[..n] == want[pos..pos + n],
            "read at {pos}: {}",
            first_diff(&want[pos..pos + n], &b[..n])
        );
        pos += n;
        if let Some(p) = progress {
            let _ = p.send(pos);
        }
    }
    Ok(())
}

fn open_direct(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap()
}

#[test]
fn server_killed_mid_read_gives_eio_in_time_and_the_mount_recovers() {
    kplugfs_tests::require_s3!();
    let cluster = Cluster::start();
    let server = Server::at(&format!("http://127.0.0.1:{PORT}"));
    let b = TestBucket::on(server, "outage");
    let data = pattern(7, SIZE);
    let mut up = kplug_store::Upload::new(client(&b, ""), "big".into()).unwrap();
    up.write(&data).unwrap();
    up.finish().unwrap();
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let m = S3Mount::new(
        &b,
        &[
            "--request-timeout",
            &secs(REQUEST_TIMEOUT),
            "--retry-timeout",
            &secs(RETRY_TIMEOUT),
            "--cache-size",
            "16MiB",
        ],
    );
    let path = m.m("big");
    let f = open_direct(&path);

    // Read until 8 MiB are in, then kill radosgw while the reader goes on.
    let (tx, rx) = mpsc::channel();
    let reader = thread::scope(|s| {
        let h = s.spawn(|| {
            let r = read_from(&f, 0, &data, Some(&tx));
            (r, Instant::now())
        });
        loop {
            let pos = rx.recv_timeout(Duration::from_secs(60)).expect("reading");
            if pos >= 8 << 20 {
                break;
            }
        }
        let killed = Instant::now();
        Cluster::run("rgw-stop");
        let (result, failed_at) = h.join().expect("reader");
        (result, killed, failed_at)
    });
    let (result, killed, failed_at) = reader;
    let (offset, err) = result.expect_err("the whole object read while the server was down");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "at {offset}: {err}");
    let took = failed_at.duration_since(killed);
    let bound = RETRY_TIMEOUT + REQUEST_TIMEOUT + SLACK;
    eprintln!("EIO at offset {offset} {took:?} after the kill (bound {bound:?})");
    assert!(
        took <= bound,
        "EIO came {took:?} after the kill, more than {bound:?}"
    );

    // The mount is alive.
    assert!(std::fs::metadata(&m.mnt).unwrap().is_dir());
    let stats = m.stats();
    assert!(
        stats["store"]["requests"]["get"]["errors"]
            .as_u64()
            .unwrap()
            >= 1,
        "{}",
        stats["store"]
    );

    // The server is back: the same read on the same descriptor, then a fresh open.
    Cluster::run("rgw-start");
    read_from(&f, offset, &data, None)
        .unwrap_or_else(|(at, e)| panic!("after rgw-start, at {at}: {e}"));
    read_from(&open_direct(&path), 0, &data, None)
        .unwrap_or_else(|(at, e)| panic!("fresh open after rgw-start, at {at}: {e}"));
    drop(f);
    drop(m);
    drop(b);
    drop(cluster);
}
