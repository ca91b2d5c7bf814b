//! Writes, checked on the server through the S3 API (curl) and through a second mount (another
//! client):
//!
//! - a small file is one PUT, a file above the 8 MiB part size a streamed multipart upload;
//!   both hold exactly the bytes written, and neither is visible to another client before
//!   the `close()` that ends it returns, also when that close is made by another thread of
//!   the process that opened the file; through the mount, a file being written is listed
//!   all along, also while its upload completes;
//! - `O_TRUNC` replaces an object; `rename` of a file copies it on the server and deletes the
//!   old key, onto a new name or over an existing file; `mv` of a non-empty directory
//!   (refused with EXDEV) falls back to copying it;
//! - `mkdir` makes a directory that stays local (no key on the server) until a file is
//!   created in it, nested ones too; once keys are under it, it is renamed no more;
//!   removing the last file of a directory leaves the directory, so `rm -r` works;
//! - a file being written (a new one, or an object being replaced) is not removed (EBUSY):
//!   its close still uploads every byte, and it can be removed once closed;
//! - `touch newfile` makes an empty object (written when its descriptor is released, as
//!   mountpoint-s3 does), `touch` of an object leaves it alone;
//! - shell redirection works (`echo x > file`: the shell duplicates and closes descriptors;
//!   the flush of the opener's last descriptor ends the upload, as in mountpoint-s3).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kplugfs_tests::s3::{S3Mount, TestBucket, client, errno_of, eventually, listing, pattern};

use crate::reads::first_diff;

fn sh(m: &S3Mount, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&m.mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh -c {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn small_and_multipart_files_reach_the_server_when_closed() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("writes");
    let m = S3Mount::new(&b, &[]);
    let other = S3Mount::new(&b, &["--attr-timeout", "0s"]);
    let store = client(&b, "");

    // Small: one PUT at close.
    let (puts, mpus) = (m.requests("put"), m.requests("create_multipart"));
    let small = pattern(1, 100_000);
    let mut f = File::create(m.m("small")).unwrap();
    f.write_all(&small).unwrap();
    assert_eq!(b.get("small"), None, "visible before close");
    assert!(
        fs::metadata(other.m("small")).is_err(),
        "another client sees it before close"
    );
    drop(f);
    assert!(
        store.head("small").unwrap().is_some(),
        "small not visible at close"
    );
    assert!(b.get("small").unwrap() == small, "small on the server");
    assert!(fs::read(other.m("small")).unwrap() == small);
    assert_eq!(m.requests("put"), puts + 1, "one PUT");
    assert_eq!(m.requests("create_multipart"), mpus, "no multipart upload");

    // Above a part: multipart, parts sent while writing, visible only at close.
    let big = pattern(2, (20 << 20) + 12345);
    assert!(
        File::create(m.m("dir/big")).is_err(),
        "no directory `dir` yet"
    );
    fs::create_dir(m.m("dir")).unwrap();
    let mut w = File::create(m.m("dir/big")).unwrap();
    // Meanwhile another thread lists the directory: the file is in every listing, while it
    // is written, while its upload completes in close(), and after.
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (stop, dir) = (stop.clone(), m.m("dir"));
        std::thread::spawn(move || {
            let (mut lists, mut missing) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let names: Vec<_> = fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                lists += 1;
                if names.iter().all(|n| n != "big") {
                    missing += 1;
                }
            }
            (lists, missing)
        })
    };
    for chunk in big.chunks(1 << 20) {
        w.write_all(chunk).unwrap();
    }
    // The two full parts are on their way (sent by the store's runtime).
    assert!(
        eventually(Duration::from_secs(10), || m.requests("upload_part") >= 2),
        "parts are not sent while writing"
    );
    assert_eq!(b.get("dir/big"), None, "visible before close");
    assert!(b.keys("dir/").is_empty());
    assert!(fs::metadata(other.m("dir/big")).is_err());
    assert_eq!(
        fs::metadata(m.m("dir/big")).unwrap().len(),
        big.len() as u64
    );
    drop(w);
    assert!(
        store.head("dir/big").unwrap().is_some(),
        "dir/big not visible at close"
    );
    stop.store(true, Ordering::Relaxed);
    let (lists, missing) = lister.join().unwrap();
    assert!(lists > 0);
    assert_eq!(
        missing, 0,
        "dir/big missing from {missing} of {lists} listings"
    );
    let got = b.get("dir/big").unwrap();
    assert!(
        got == big,
        "dir/big on the server: {}",
        first_diff(&big, &got)
    );
    assert_eq!(m.requests("create_multipart"), mpus + 1);
    assert_eq!(m.requests("complete_multipart"), 1);
    assert!(m.requests("upload_part") >= 3);
    let got = fs::read(other.m("dir/big")).unwrap();
    assert!(
        got == big,
        "through the other mount: {}",
        first_diff(&big, &got)
    );
    let got = fs::read(m.m("dir/big")).unwrap();
    assert!(got == big, "read back: {}", first_diff(&big, &got));

    // Opened by one thread, closed by another of the same process: the close ends the
    // upload, as a close by the opening thread does. (The last part is nearly 8 MiB: were
    // the upload left to the asynchronous release, it could not be complete when the
    // in-process HEAD right after close() asks.)
    let data = pattern(3, (24 << 20) - 4096);
    let path = m.m("threads");
    let d = data.clone();
    let w = std::thread::spawn(move || {
        let mut w = File::create(path).unwrap();
        w.write_all(&d).unwrap();
        w
    })
    .join()
    .unwrap();
    assert_eq!(b.get("threads"), None);
    drop(w);
    let head = store.head("threads").unwrap();
    assert_eq!(
        head.map(|h| h.size),
        Some(data.len() as u64),
        "closed by another thread: not on the server when close() returned"
    );
    let got = b.get("threads");
    assert!(
        got.as_deref() == Some(&data[..]),
        "closed by another thread: not on the server when close() returned ({:?} bytes)",
        got.map(|g| g.len())
    );

    // O_TRUNC replaces an object.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.m("small"))
        .unwrap();
    f.write_all(b"replaced").unwrap();
    drop(f);
    assert_eq!(b.get("small").as_deref(), Some(&b"replaced"[..]));
    assert_eq!(fs::read(m.m("small")).unwrap(), b"replaced");
}

#[test]
fn renames_copy_on_the_server() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("rename");
    b.put("a", b"content of a");
    b.put("target", b"old target");
    b.put("tree/one", b"1");
    b.put("tree/sub/two", b"22");
    let m = S3Mount::new(&b, &[]);
    fs::rename(m.m("a"), m.m("b")).unwrap();
    assert_eq!(b.get("a"), None);
    assert_eq!(b.get("b").as_deref(), Some(&b"content of a"[..]));
    assert!(fs::metadata(m.m("a")).is_err());
    assert_eq!(fs::read(m.m("b")).unwrap(), b"content of a");
    // Into a directory, over an existing file.
    fs::rename(m.m("b"), m.m("tree/sub/two")).unwrap();
    assert_eq!(b.get("tree/sub/two").as_deref(), Some(&b"content of a"[..]));
    assert_eq!(fs::read(m.m("tree/sub/two")).unwrap(), b"content of a");
    fs::rename(m.m("tree/sub/two"), m.m("target")).unwrap();
    assert_eq!(b.get("target").as_deref(), Some(&b"content of a"[..]));
    assert_eq!(fs::read(m.m("target")).unwrap(), b"content of a");
    // A non-empty directory: EXDEV, so mv copies it and removes the original.
    let out = Command::new("mv")
        .arg(m.m("tree"))
        .arg(m.m("moved"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys = b.keys("");
    keys.sort();
    assert_eq!(keys, ["moved/one", "target"]);
    assert_eq!(fs::read(m.m("moved/one")).unwrap(), b"1");
}

#[test]
fn directories_stay_local_until_a_file_is_written_in_them() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("mkdir");
    let m = S3Mount::new(&b, &[]);
    fs::create_dir(m.m("empty")).unwrap();
    fs::create_dir_all(m.m("x/y/z")).unwrap();
    assert!(
        b.keys("").is_empty(),
        "mkdir wrote to the server: {:?}",
        b.keys("")
    );
    assert!(fs::metadata(m.m("empty")).unwrap().is_dir());
    assert_eq!(
        listing(&m.m("")),
        [
            (".kplug".into(), true, 0),
            ("empty".into(), true, 0),
            ("x".into(), true, 0)
        ]
    );
    assert!(listing(&m.m("empty")).is_empty());
    // Another client sees nothing.
    let other = S3Mount::new(&b, &["--attr-timeout", "0s"]);
    assert!(fs::metadata(other.m("empty")).is_err());
    fs::write(m.m("x/y/z/file"), b"deep").unwrap();
    fs::write(m.m("empty/file"), b"f").unwrap();
    let mut keys = b.keys("");
    keys.sort();
    assert_eq!(keys, ["empty/file", "x/y/z/file"]);
    assert_eq!(fs::read(other.m("x/y/z/file")).unwrap(), b"deep");
    // `x` was made here but now has keys under it: EXDEV, as any non-empty directory.
    assert_eq!(
        fs::rename(m.m("x"), m.m("x2")).map_err(|e| e.raw_os_error()),
        Err(Some(libc::EXDEV))
    );
    assert_eq!(fs::read(m.m("x/y/z/file")).unwrap(), b"deep");
    // Removing the last file of a directory leaves the directory (rm -r then removes it).
    fs::remove_file(m.m("x/y/z/file")).unwrap();
    assert!(b.keys("").iter().all(|k| !k.starts_with("x/")));
    assert!(listing(&m.m("x/y/z")).is_empty());
    assert_eq!(listing(&m.m("x")), [("y".into(), true, 0)]);
    let out = Command::new("rm").arg("-r").arg(m.m("x")).output().unwrap();
    assert!(
        out.status.success(),
        "rm -r: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::metadata(m.m("x")).is_err());
    // An empty local directory is removed and renamed locally.
    fs::create_dir(m.m("gone")).unwrap();
    fs::create_dir(m.m("moving")).unwrap();
    fs::rename(m.m("moving"), m.m("moved")).unwrap();
    fs::remove_dir(m.m("gone")).unwrap();
    assert!(fs::metadata(m.m("gone")).is_err());
    assert!(fs::metadata(m.m("moved")).unwrap().is_dir());
}

#[test]
fn touch_and_shell_redirection() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("shell");
    b.put("existing", b"keep me");
    let m = S3Mount::new(&b, &[]);
    sh(&m, "touch newfile");
    assert!(
        eventually(Duration::from_secs(10), || b.get("newfile").is_some()),
        "touch made no object"
    );
    assert_eq!(b.get("newfile").unwrap(), b"");
    assert_eq!(fs::metadata(m.m("newfile")).unwrap().len(), 0);
    sh(&m, "touch existing");
    assert_eq!(b.get("existing").as_deref(), Some(&b"keep me"[..]));
    // The shell opens, duplicates onto 1 and closes the original: the data arrives after a
    // flush of an empty file, and the last close ends it.
    sh(&m, "echo x > file");
    assert_eq!(b.get("file").as_deref(), Some(&b"x\n"[..]));
    sh(&m, "echo y > file && cat file > /dev/null");
    assert_eq!(b.get("file").as_deref(), Some(&b"y\n"[..]));
    // A child process opens it (an external program), the shell waits for it.
    sh(&m, "/bin/echo external > ext");
    assert_eq!(b.get("ext").as_deref(), Some(&b"external\n"[..]));
    sh(&m, "{ echo one; echo two; } > grouped");
    assert_eq!(b.get("grouped").as_deref(), Some(&b"one\ntwo\n"[..]));
    sh(&m, "exec 3> fd3; echo three >&3; exec 3>&-");
    assert_eq!(b.get("fd3").as_deref(), Some(&b"three\n"[..]));
    assert_eq!(fs::read(m.m("file")).unwrap(), b"y\n");
    sh(&m, "cp file copy && cmp file copy");
    assert_eq!(b.get("copy").as_deref(), Some(&b"y\n"[..]));
}

/// A file being written is not removed (EBUSY, as mountpoint-s3): its upload still ends at
/// close with every byte, over an old object as for a new one, and can be removed then.
#[test]
fn files_being_written_are_not_removed_until_closed() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("unlinked");
    b.put("old", b"old object");
    let m = S3Mount::new(&b, &[]);
    for (name, size) in [("new", 1000), ("old", 1000), ("big", (9 << 20) + 5)] {
        let mut w = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.m(name))
            .unwrap();
        let data = pattern(9, size);
        w.write_all(&data[..size / 2]).unwrap();
        assert_eq!(
            errno_of("unlink while written", fs::remove_file(m.m(name))),
            libc::EBUSY,
            "{name}"
        );
        w.write_all(&data[size / 2..]).unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(w);
        // SAFETY: `fd` was just released by `w` and is closed once.
        assert_eq!(
            unsafe { libc::close(fd) },
            0,
            "close of {name}: {}",
            std::io::Error::last_os_error()
        );
        assert!(b.get(name) == Some(data.clone()), "{name} on the server");
        assert!(
            fs::read(m.m(name)).unwrap() == data,
            "{name} through the mount"
        );
        fs::remove_file(m.m(name)).unwrap_or_else(|e| panic!("unlink {name} once closed: {e}"));
        assert_eq!(b.get(name), None, "{name} still on the server");
    }
    assert!(b.keys("").is_empty(), "{:?}", b.keys(""));
}
