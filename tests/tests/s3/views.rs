//! Views on an object-store mount: `grep` and `gunzip` over objects of the real S3 server
//! give what the plain tree's bytes give through the reference (std, flate2): `stat` before
//! the first read, whole reads and preads; an object replaced behind the mount is seen.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use kplugfs_tests::drop_plugin_at;
use kplugfs_tests::exported_policy;
use kplugfs_tests::s3::{S3Mount, TestBucket};

fn check(path: &std::path::Path, want: &[u8]) {
    assert_eq!(
        fs::metadata(path).unwrap().len(),
        want.len() as u64,
        "{path:?}"
    );
    assert!(fs::read(path).unwrap() == want, "{path:?}");
    let f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1000];
    let off = want.len() / 2;
    let n = f.read_at(&mut buf, off as u64).unwrap();
    assert_eq!(&buf[..n], &want[off..(off + 1000).min(want.len())]);
}

#[test]
fn grep_and_gunzip_views_of_objects() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("views");
    let log: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("{i} {}\n", if i % 100 == 3 { "ERR" } else { "ok" }).into_bytes())
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&log).unwrap();
    b.put("logs/app.log", &log);
    b.put("logs/app.log.gz", &gz.finish().unwrap());
    let m = S3Mount::new(&b, &[]);
    drop_plugin_at(&m.mnt, "grep.params", b"pattern=ERR").unwrap();
    drop_plugin_at(&m.mnt, "grep.wasm", &exported_policy("grep")).unwrap();
    drop_plugin_at(&m.mnt, "gunzip.wasm", &exported_policy("gunzip")).unwrap();
    let grep_ref: Vec<u8> = log
        .split_inclusive(|&c| c == b'\n')
        .filter(|l| l.windows(3).any(|w| w == b"ERR"))
        .flatten()
        .copied()
        .collect();
    check(&m.m(".kplug/views/grep/logs/app.log"), &grep_ref);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&fs::read(m.m("logs/app.log.gz")).unwrap()[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == log);
    check(&m.m(".kplug/views/gunzip/logs/app.log.gz"), &plain);
    // Replaced behind the mount: seen once the mount sees the new object.
    b.put("logs/app.log", b"ERR new\nold\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::metadata(m.m("logs/app.log")).unwrap().len() != 12 {
        assert!(std::time::Instant::now() < deadline, "change never seen");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    check(&m.m(".kplug/views/grep/logs/app.log"), b"ERR new\n");
}
