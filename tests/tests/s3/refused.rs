//! What an object store cannot do (the semantics of `fusefs/daemon/src/fs/object/mod.rs`):
//! every refused operation fails at once with its errno, changes nothing on the server, and
//! leaves a line in the daemon's log (`--log-file`) naming the FUSE operation and the errno:
//! at WARN for the limits of an object store (random writes, writes into an existing object,
//! appends, links, symlinks, special files, owner and mode changes, xattrs, fallocate,
//! truncating a closed object, renaming a non-empty directory, removing or renaming a file
//! being written or renaming onto one, removing a directory kept by a `dir/` marker
//! object); at DEBUG (the mount runs with `-vv`) for a plain `rmdir` of a non-empty
//! directory (also one whose only file is still being written). A `--read-only` mount refuses
//! every change with EROFS (from the kernel: the mount is read-only, nothing reaches the
//! daemon) and still reads; `mount -o remount,rw` makes it writable, `remount,ro`
//! read-only again.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kplugfs_tests::s3::{S3Mount, TestBucket, errno_of};

/// Checks that each refusal left its log line.
struct Log<'a> {
    m: &'a S3Mount,
    seen: usize,
}

impl Log<'_> {
    /// The lines logged since the last call must include one for `op` with `errno`, at
    /// WARN unless `debug`.
    fn expect(&mut self, what: &str, op: &str, errno: i32, debug: bool) {
        let log = self.m.log();
        let new = &log[self.seen.min(log.len())..];
        let level = if debug { "DEBUG" } else { "WARN" };
        let found = new.lines().any(|l| {
            l.contains(level)
                && l.contains(&format!("op=\"{op}\""))
                && l.contains(&format!("(errno {errno})"))
        });
        assert!(
            found,
            "{what}: no {level} line for op={op} errno {errno} in the log; new lines:\n{}",
            new.lines()
                .filter(|l| l.contains("kplug_daemon"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        self.seen = log.len();
    }
}

fn check(log: &mut Log, what: &str, op: &str, want: i32, r: std::io::Result<impl std::fmt::Debug>) {
    assert_eq!(errno_of(what, r), want, "{what}");
    log.expect(what, op, want, false);
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.to_str().unwrap()).unwrap()
}

fn sys(r: libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn refused_operations_fail_at_once_with_their_errno_and_a_log_line() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("refused");
    b.put("f", b"hello world");
    b.put("full/x", b"x");
    b.put("full/y", b"y");
    b.put("marked/", b"");
    let m = S3Mount::new(&b, &["-vv"]);
    let mut log = Log { m: &m, seen: 0 };

    // Writing anywhere but at the end.
    let f = File::create(m.m("new")).unwrap();
    f.write_all_at(b"abc", 0).unwrap();
    check(
        &mut log,
        "rewrite at 0",
        "write",
        libc::EINVAL,
        f.write_at(b"x", 0),
    );
    check(
        &mut log,
        "write past the end",
        "write",
        libc::EINVAL,
        f.write_at(b"x", 10),
    );
    drop(f);
    assert_eq!(
        b.get("new").as_deref(),
        Some(&b"abc"[..]),
        "the refused writes changed nothing"
    );
    // Writing into an existing object without O_TRUNC.
    for (what, read) in [("O_WRONLY", false), ("O_RDWR", true)] {
        let mut f = OpenOptions::new()
            .write(true)
            .read(read)
            .open(m.m("f"))
            .unwrap();
        check(
            &mut log,
            what,
            "write",
            libc::EPERM,
            f.write_all(b"x").and_then(|()| f.flush()),
        );
    }
    // Appends, to an existing object and to a new one.
    check(
        &mut log,
        "O_APPEND",
        "open",
        libc::EPERM,
        OpenOptions::new().append(true).open(m.m("f")),
    );
    check(
        &mut log,
        "O_APPEND|O_CREAT",
        "create",
        libc::EPERM,
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(m.m("appended")),
    );
    // Links, symlinks, special files.
    check(
        &mut log,
        "link",
        "link",
        libc::EPERM,
        fs::hard_link(m.m("f"), m.m("f2")),
    );
    check(
        &mut log,
        "symlink",
        "symlink",
        libc::EPERM,
        std::os::unix::fs::symlink("f", m.m("sl")),
    );
    let fifo = cpath(&m.m("fifo"));
    // SAFETY: a valid NUL-terminated path.
    check(
        &mut log,
        "mkfifo",
        "mknod",
        libc::EPERM,
        sys(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }),
    );
    let node = cpath(&m.m("node"));
    // SAFETY: as above.
    check(
        &mut log,
        "mknod",
        "mknod",
        libc::EPERM,
        sys(unsafe { libc::mknod(node.as_ptr(), libc::S_IFREG | 0o644, 0) }),
    );
    // Owner and mode.
    check(
        &mut log,
        "chmod",
        "setattr",
        libc::EPERM,
        fs::set_permissions(
            m.m("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
    );
    check(
        &mut log,
        "chown",
        "setattr",
        libc::EPERM,
        std::os::unix::fs::chown(m.m("f"), Some(1), Some(1)),
    );
    // Setting them to what they are is no change: accepted (`cp -p`, `mv` across
    // directories do it), and the mount says nothing.
    fs::set_permissions(
        m.m("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::os::unix::fs::chown(m.m("f"), Some(0), Some(0)).unwrap();
    fs::set_permissions(
        m.m("full"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Extended attributes.
    let fp = cpath(&m.m("f"));
    let name = c"user.test";
    // SAFETY: valid NUL-terminated strings and a 1-byte value.
    check(
        &mut log,
        "setxattr",
        "setxattr",
        libc::ENOTSUP,
        sys(unsafe { libc::setxattr(fp.as_ptr(), name.as_ptr(), b"1".as_ptr().cast(), 1, 0) }),
    );
    // SAFETY: as above.
    check(
        &mut log,
        "removexattr",
        "removexattr",
        libc::ENOTSUP,
        sys(unsafe { libc::removexattr(fp.as_ptr(), name.as_ptr()) }),
    );
    // fallocate, and truncating a closed object to another size.
    let f = File::create(m.m("falloc")).unwrap();
    // SAFETY: an open descriptor.
    check(
        &mut log,
        "fallocate",
        "fallocate",
        libc::EOPNOTSUPP,
        sys(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 4096) }),
    );
    drop(f);
    check(
        &mut log,
        "truncate",
        "setattr",
        libc::EPERM,
        OpenOptions::new()
            .write(true)
            .open(m.m("f"))
            .and_then(|f| f.set_len(3)),
    );
    // A non-empty directory is not renamed (mv copies it instead).
    check(
        &mut log,
        "rename of a non-empty dir",
        "rename",
        libc::EXDEV,
        fs::rename(m.m("full"), m.m("moved")),
    );
    // A file being written is neither removed nor renamed, nor renamed over, and its
    // directory is not empty: its upload goes to its name at close.
    fs::create_dir(m.m("wdir")).unwrap();
    let mut w = File::create(m.m("wdir/being-written")).unwrap();
    w.write_all(b"data").unwrap();
    check(
        &mut log,
        "unlink while written",
        "unlink",
        libc::EBUSY,
        fs::remove_file(m.m("wdir/being-written")),
    );
    check(
        &mut log,
        "rename while written",
        "rename",
        libc::EBUSY,
        fs::rename(m.m("wdir/being-written"), m.m("elsewhere")),
    );
    check(
        &mut log,
        "rename onto a file being written",
        "rename",
        libc::EBUSY,
        fs::rename(m.m("f"), m.m("wdir/being-written")),
    );
    assert_eq!(
        errno_of("rmdir wdir", fs::remove_dir(m.m("wdir"))),
        libc::ENOTEMPTY
    );
    log.expect(
        "rmdir of a dir being written in",
        "rmdir",
        libc::ENOTEMPTY,
        true,
    );
    drop(w);
    assert_eq!(b.get("wdir/being-written").as_deref(), Some(&b"data"[..]));
    // A directory that only a `dir/` marker object keeps cannot lose it (the store client
    // cannot name a key ending in `/`): refused rather than coming back.
    assert!(fs::read_dir(m.m("marked")).unwrap().next().is_none());
    check(
        &mut log,
        "rmdir of a marker dir",
        "rmdir",
        libc::EPERM,
        fs::remove_dir(m.m("marked")),
    );
    // An ordinary refusal: ENOTEMPTY, logged at DEBUG.
    assert_eq!(
        errno_of("rmdir full", fs::remove_dir(m.m("full"))),
        libc::ENOTEMPTY
    );
    log.expect("rmdir of a non-empty dir", "rmdir", libc::ENOTEMPTY, true);

    // Nothing changed on the server.
    let mut keys = b.keys("");
    keys.sort();
    assert_eq!(
        keys,
        [
            "f",
            "falloc",
            "full/x",
            "full/y",
            "marked/",
            "new",
            "wdir/being-written"
        ]
    );
    assert_eq!(b.get("f").as_deref(), Some(&b"hello world"[..]));
    assert_eq!(fs::read(m.m("f")).unwrap(), b"hello world");
}

#[test]
fn read_only_mount_refuses_every_change_with_erofs() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("readonly");
    b.put("f", b"hello");
    b.put("d/x", b"x");
    let m = S3Mount::new(&b, &["--read-only"]);
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(m.mnt.to_str().unwrap()))
        .unwrap();
    assert!(
        line.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{line}"
    );
    assert_eq!(fs::read(m.m("f")).unwrap(), b"hello");
    let erofs = |what: &str, r: std::io::Result<()>| {
        assert_eq!(errno_of(what, r), libc::EROFS, "{what}");
    };
    erofs("create", File::create(m.m("new")).map(drop));
    erofs(
        "open for writing",
        OpenOptions::new().write(true).open(m.m("f")).map(drop),
    );
    erofs(
        "open O_TRUNC",
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(m.m("f"))
            .map(drop),
    );
    erofs("mkdir", fs::create_dir(m.m("nd")));
    erofs("unlink", fs::remove_file(m.m("f")));
    erofs("rmdir", fs::remove_dir(m.m("d")));
    erofs("rename", fs::rename(m.m("f"), m.m("g")));
    erofs("link", fs::hard_link(m.m("f"), m.m("g")));
    erofs("symlink", std::os::unix::fs::symlink("f", m.m("s")));
    erofs(
        "chmod",
        fs::set_permissions(
            m.m("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
    );
    let fp = cpath(&m.m("f"));
    // SAFETY: a valid NUL-terminated path.
    erofs("truncate", sys(unsafe { libc::truncate(fp.as_ptr(), 0) }));
    // SAFETY: valid NUL-terminated strings and a 1-byte value.
    erofs(
        "setxattr",
        sys(unsafe { libc::setxattr(fp.as_ptr(), c"user.x".as_ptr(), b"1".as_ptr().cast(), 1, 0) }),
    );
    assert_eq!(fs::read(m.m("d/x")).unwrap(), b"x");
    let mut keys = b.keys("");
    keys.sort();
    assert_eq!(keys, ["d/x", "f"]);
    assert_eq!(b.get("f").as_deref(), Some(&b"hello"[..]));

    // `mount -o remount,rw` (through the mount.fuse.kplugfs helper) makes the same mount
    // writable: the read-only state is the kernel's alone.
    let _helper = kplugfs_tests::MountHelper::install();
    let out = kplugfs_tests::mount_cmd(&["-o", "remount,rw", m.mnt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "remount,rw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(m.m("new"), b"after remount").unwrap();
    assert_eq!(b.get("new").as_deref(), Some(&b"after remount"[..]));
    let out = kplugfs_tests::mount_cmd(&["-o", "remount,ro", m.mnt.to_str().unwrap()]);
    assert!(out.status.success(), "remount,ro");
    erofs(
        "create after remount,ro",
        File::create(m.m("new2")).map(drop),
    );
}
