//! The store client against a real S3 server (the project's Ceph RGW: `scripts/s3/ceph-s3.sh
//! start`, which `scripts/test.sh` runs), with the feature `s3-tests`:
//! `cargo test -p kplug-store --features s3-tests`. Credentials and endpoint come from the
//! environment as for a mount (`eval "$(scripts/s3/ceph-s3.sh env)"`); without them the
//! tests use the script's defaults.
#![cfg(feature = "s3-tests")]

use std::sync::Arc;
use std::time::Duration;

use kplug_store::{RequestKind, Store, StoreError, StoreOptions, Upload};

/// A fresh bucket on the test server, and a store rooted at `PREFIX` in it.
fn store(prefix: &str) -> (Arc<Store>, String) {
    kplugfs_s3test::env();
    let bucket = kplugfs_s3test::bucket("store");
    let s = Store::open(
        &format!("s3://{bucket}/{prefix}"),
        &StoreOptions {
            retry_timeout: Duration::from_secs(3),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    s.check().unwrap();
    (Arc::new(s), bucket)
}

#[test]
fn objects_round_trip_ranges_listings_and_etags() {
    let (s, _) = store("root");
    assert_eq!(s.head("a").unwrap(), None);
    s.put("a", bytes::Bytes::from_static(b"hello world"))
        .unwrap();
    let a = s.head("a").unwrap().unwrap();
    assert_eq!(a.size, 11);
    let etag = a.etag.clone().unwrap();
    assert_eq!(&s.get_range("a", 6..11, Some(&etag)).unwrap()[..], b"world");
    s.put("dir/b c%d é", bytes::Bytes::from_static(b"x"))
        .unwrap();
    s.put("dir/sub/e", bytes::Bytes::from_static(b"y")).unwrap();
    let root = s.list("").unwrap();
    assert_eq!(root.dirs, vec!["dir"]);
    assert_eq!(root.files.len(), 1);
    assert_eq!(root.files[0].0, "a");
    let dir = s.list("dir/").unwrap();
    assert_eq!(dir.dirs, vec!["sub"]);
    assert_eq!(dir.files[0].0, "b c%d é");
    // Replaced: the old ETag no longer reads.
    s.put("a", bytes::Bytes::from_static(b"HELLO WORLD"))
        .unwrap();
    assert!(matches!(
        s.get_range("a", 0..5, Some(&etag)),
        Err(StoreError::Changed(_))
    ));
    s.copy("a", "a2").unwrap();
    assert_eq!(&s.get_range("a2", 0..5, None).unwrap()[..], b"HELLO");
    s.delete("a2").unwrap();
    s.delete("a2").unwrap();
    assert_eq!(s.head("a2").unwrap(), None);
    assert!(matches!(s.head("bad\nname"), Err(StoreError::BadName(_))));
    let stats = s.stats();
    let get = stats.iter().find(|k| k.kind == RequestKind::Get).unwrap();
    assert!(
        get.requests >= 3 && get.bytes >= 10 && get.errors >= 1,
        "{get:?}"
    );
}

#[test]
fn uploads_stream_parts_and_are_visible_only_when_finished() {
    let (s, _) = store("up");
    let part = kplug_store::PART_BYTES;
    let data: Vec<u8> = (0..(2 * part + 12345))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut u = Upload::new(s.clone(), "big".into()).unwrap();
    for chunk in data.chunks(128 << 10) {
        u.write(chunk).unwrap();
    }
    assert_eq!(s.head("big").unwrap(), None, "not visible before finish");
    assert_eq!(u.finish().unwrap(), data.len() as u64);
    let info = s.head("big").unwrap().unwrap();
    assert_eq!(info.size, data.len() as u64);
    let back = s
        .get_range("big", 0..data.len() as u64, info.etag.as_deref())
        .unwrap();
    assert!(back[..] == data[..]);
    // Small: one PUT. Abandoned: nothing.
    let mut u = Upload::new(s.clone(), "small".into()).unwrap();
    u.write(b"abc").unwrap();
    u.finish().unwrap();
    assert_eq!(s.head("small").unwrap().unwrap().size, 3);
    let mut u = Upload::new(s.clone(), "gone".into()).unwrap();
    u.write(&data[..part + 1]).unwrap();
    drop(u);
    assert_eq!(s.head("gone").unwrap(), None);
    let kinds: Vec<RequestKind> = s.stats().iter().map(|k| k.kind).collect();
    for k in [
        RequestKind::CreateMultipart,
        RequestKind::UploadPart,
        RequestKind::CompleteMultipart,
        RequestKind::AbortMultipart,
        RequestKind::Put,
    ] {
        assert!(kinds.contains(&k), "{k:?} not counted: {kinds:?}");
    }
}

#[test]
fn wrong_credentials_a_missing_bucket_and_no_server_fail_the_check() {
    kplugfs_s3test::env();
    let o = StoreOptions {
        retry_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let missing = Store::open("s3://kplug-no-such-bucket", &o).unwrap();
    let e = missing.check().unwrap_err().to_string();
    assert!(e.contains("kplug-no-such-bucket"), "{e}");
    let bucket = kplugfs_s3test::bucket("creds");
    let wrong = Store::open(
        &format!("s3://{bucket}"),
        &StoreOptions {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..o.clone()
        },
    )
    .unwrap();
    let t = std::time::Instant::now();
    assert!(matches!(wrong.check(), Err(StoreError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_key_that_cannot_be_a_path_spoils_only_its_own_directory() {
    let (s, bucket) = store("");
    kplugfs_s3test::put_object(&bucket, "odd/a//b", b"x");
    kplugfs_s3test::put_object(&bucket, "odd/c/./d", b"x");
    kplugfs_s3test::put_object(&bucket, "odd/ok", b"fine");
    // Mountable, and every sibling listed and readable.
    s.check().unwrap();
    let l = s.list("odd/").unwrap();
    assert_eq!(l.dirs, ["a", "c"]);
    assert_eq!(l.files.len(), 1);
    assert_eq!(&s.get_range("odd/ok", 0..4, None).unwrap()[..], b"fine");
    let (object, dir) = s.probe("odd/a").unwrap();
    assert!(object.is_none() && dir);
    // The directories holding the odd keys fail with EIO, saying why.
    for d in ["odd/a/", "odd/c/"] {
        let e = s.list(d).unwrap_err();
        assert_eq!(e.errno(), libc::EIO, "{e}");
        assert!(e.to_string().contains("cannot be listed"), "{e}");
    }
}
