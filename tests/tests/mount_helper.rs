//! kplugfs like any other filesystem, through util-linux's real `mount` command and the
//! `mount.fuse.kplugfs` helper (the binary under test, linked at /sbin for the test): an
//! fstab line (an alternative fstab, `mount -T FILE`, so /etc/fstab is never edited),
//! `mount -t fuse.kplugfs SRC DIR -o ...`, `mount -o remount,ro` and `remount,rw` of the
//! live mount (same daemon, no second one), and one-line errors for bad input.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use kplugfs_tests::{BinLink, MOUNT_HELPER, MountHelper, is_kplugfs_mount, kplugfs_bin, mount_cmd};

/// Scratch directories: `backing` (with a file `f`), `mnt`, and where the mount's history
/// and kept plugins go. Unmounts `mnt` on drop if still mounted.
struct Scratch {
    root: tempfile::TempDir,
    backing: PathBuf,
    mnt: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("kplugfs-helper")
            .tempdir_in("/var/tmp")
            .unwrap();
        let backing = root.path().join("backing");
        let mnt = root.path().join("mnt");
        fs::create_dir(&backing).unwrap();
        fs::create_dir(&mnt).unwrap();
        fs::write(backing.join("f"), b"hello").unwrap();
        Self { root, backing, mnt }
    }

    fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn mnt(&self) -> &str {
        self.mnt.to_str().unwrap()
    }

    /// The options that keep the mount's files in the scratch directory.
    fn own_files(&self) -> String {
        let r = self.root.path().display();
        format!("history_db={r}/history.db,state_dir={r}/state")
    }

    /// The per-mount options of the mount at `mnt` (`rw,nosuid,...`), and how many mounts
    /// sit there.
    fn mount_options(&self) -> (Vec<String>, usize) {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let lines: Vec<&str> = info
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(self.mnt()))
            .collect();
        let opts = lines
            .last()
            .map(|l| {
                l.split(' ')
                    .nth(5)
                    .unwrap()
                    .split(',')
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        (opts, lines.len())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if is_kplugfs_mount(&self.mnt) {
            let _ = std::process::Command::new(kplugfs_bin())
                .arg("umount")
                .arg(&self.mnt)
                .status();
        }
    }
}

fn ok(what: &str, out: std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stderr of a command that must fail: one line naming the problem.
fn fails(what: &str, out: std::process::Output) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err}");
    err
}

fn errno(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn eviction(s: &Scratch) -> String {
    let st: serde_json::Value =
        serde_json::from_slice(&fs::read(s.m(".kplug/status")).unwrap()).unwrap();
    st["active"]["eviction"].as_str().unwrap().to_string()
}

#[test]
fn an_fstab_line_mounts_and_remount_switches_ro_and_rw_on_the_live_mount() {
    let _helper = MountHelper::install();
    let s = Scratch::new();
    // Generic options of every kind next to kplugfs's own; `-T` reads this file instead of
    // /etc/fstab.
    let fstab = s.root.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# kplugfs test\n{} {} fuse.kplugfs defaults,noauto,nofail,_netdev,x-systemd.automount,noatime,cache_size=8MiB,policy=lru,{} 0 0\n",
            s.backing.display(),
            s.mnt(),
            s.own_files()
        ),
    )
    .unwrap();
    ok(
        "mount -T fstab DIR",
        mount_cmd(&["-T", fstab.to_str().unwrap(), s.mnt()]),
    );
    assert!(is_kplugfs_mount(&s.mnt));
    // The fstab options reached the daemon: the policy and the cache size.
    assert_eq!(eviction(&s), "lru");
    let stats: serde_json::Value =
        serde_json::from_slice(&fs::read(s.m(".kplug/stats")).unwrap()).unwrap();
    assert_eq!(stats["cache"]["capacity_blocks"], 64, "{stats}");
    fs::write(s.m("w"), b"before").unwrap();
    let dev = fs::metadata(&s.mnt).unwrap().dev();
    let (opts, n) = s.mount_options();
    assert_eq!(n, 1);
    assert!(opts.contains(&"rw".to_string()), "{opts:?}");

    // remount,ro: the same mount (same device, one mount, the policy still there) refuses
    // every change, the control files included, and still reads.
    ok(
        "mount -o remount,ro",
        mount_cmd(&["-o", "remount,ro", s.mnt()]),
    );
    let (opts, n) = s.mount_options();
    assert_eq!(n, 1, "a remount must not mount a second filesystem");
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.contains(&o.to_string()), "{o} in {opts:?}");
    }
    assert_eq!(fs::metadata(&s.mnt).unwrap().dev(), dev);
    assert_eq!(errno(fs::write(s.m("new"), b"x")), Some(libc::EROFS));
    assert_eq!(
        errno(fs::OpenOptions::new().append(true).open(s.m("w"))),
        Some(libc::EROFS)
    );
    assert_eq!(errno(fs::remove_file(s.m("f"))), Some(libc::EROFS));
    assert_eq!(errno(fs::create_dir(s.m("d"))), Some(libc::EROFS));
    assert_eq!(
        errno(fs::write(s.m(".kplug/plugins/x.params"), b"a=1\n")),
        Some(libc::EROFS)
    );
    assert_eq!(fs::read(s.m("f")).unwrap(), b"hello");
    assert_eq!(fs::read(s.m("w")).unwrap(), b"before");
    assert_eq!(eviction(&s), "lru");
    assert!(!s.backing.join("new").exists());

    // remount,rw with the fstab line's options merged in (`ro`-less): writable again.
    ok(
        "mount -T fstab -o remount,rw",
        mount_cmd(&["-T", fstab.to_str().unwrap(), "-o", "remount,rw", s.mnt()]),
    );
    let (opts, n) = s.mount_options();
    assert_eq!(n, 1);
    assert!(opts.contains(&"rw".to_string()), "{opts:?}");
    // A flag the fstab line does not name keeps its state (every FUSE mount is nosuid).
    assert!(opts.contains(&"nosuid".to_string()), "{opts:?}");
    fs::write(s.m("new"), b"after").unwrap();
    assert_eq!(fs::read(s.backing.join("new")).unwrap(), b"after");
    assert_eq!(fs::metadata(&s.mnt).unwrap().dev(), dev);

    // A file open for writing keeps the mount writable: remount,ro fails, one line.
    let open = fs::OpenOptions::new().append(true).open(s.m("w")).unwrap();
    let err = fails(
        "remount,ro with a writer",
        mount_cmd(&["-o", "remount,ro", s.mnt()]),
    );
    assert!(err.contains("busy"), "{err}");
    drop(open);
    assert!(s.mount_options().0.contains(&"rw".to_string()));

    // Plain umount(8) ends it.
    ok(
        "umount",
        std::process::Command::new("umount")
            .arg(&s.mnt)
            .output()
            .unwrap(),
    );
    assert!(!is_kplugfs_mount(&s.mnt));
}

#[test]
fn mount_t_fuse_kplugfs_takes_options_and_refuses_bad_input_in_one_line() {
    let _helper = MountHelper::install();
    let s = Scratch::new();

    // Unknown kplugfs option: named, nothing mounted.
    let err = fails(
        "an unknown option",
        mount_cmd(&[
            "-t",
            "fuse.kplugfs",
            s.backing.to_str().unwrap(),
            s.mnt(),
            "-o",
            "nodev,bogus_thing=1",
        ]),
    );
    assert!(err.contains("bogus_thing"), "{err}");
    assert!(!is_kplugfs_mount(&s.mnt));
    // A bad value, a missing source: one line each, nothing mounted.
    let err = fails(
        "a bad value",
        mount_cmd(&[
            "-t",
            "fuse.kplugfs",
            s.backing.to_str().unwrap(),
            s.mnt(),
            "-o",
            "cache_size=lots",
        ]),
    );
    assert!(err.contains("lots"), "{err}");
    let missing = s.root.path().join("missing");
    let err = fails(
        "a missing source",
        mount_cmd(&["-t", "fuse.kplugfs", missing.to_str().unwrap(), s.mnt()]),
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(!is_kplugfs_mount(&s.mnt));

    // Mounted read-only from the start, then made writable by remount,rw: the daemon has
    // no read-only state of its own to keep refusing.
    let opts = format!("ro,cache_size=8MiB,{}", s.own_files());
    ok(
        "mount -t fuse.kplugfs -o ro",
        mount_cmd(&[
            "-t",
            "fuse.kplugfs",
            s.backing.to_str().unwrap(),
            s.mnt(),
            "-o",
            &opts,
        ]),
    );
    assert!(s.mount_options().0.contains(&"ro".to_string()));
    assert_eq!(errno(fs::write(s.m("x"), b"x")), Some(libc::EROFS));
    ok(
        "mount -o remount,rw",
        mount_cmd(&["-o", "remount,rw", s.mnt()]),
    );
    fs::write(s.m("x"), b"x").unwrap();
    assert_eq!(fs::read(s.backing.join("x")).unwrap(), b"x");

    // The helper refuses to remount what is not a kplugfs mount.
    let out = std::process::Command::new(MOUNT_HELPER)
        .args(["none", "/proc", "-o", "remount,ro"])
        .output()
        .unwrap();
    let err = fails("remount of /proc", out);
    assert!(err.contains("not a kplugfs mount"), "{err}");
    // `-f` (fake) mounts nothing.
    let other = s.root.path().join("other");
    fs::create_dir(&other).unwrap();
    ok(
        "mount -f",
        mount_cmd(&[
            "-f",
            "-t",
            "fuse.kplugfs",
            s.backing.to_str().unwrap(),
            other.to_str().unwrap(),
        ]),
    );
    assert!(!is_kplugfs_mount(&other));
}

#[test]
fn an_fstab_line_mounts_an_s3_bucket() {
    kplugfs_tests::require_s3!();
    let _helper = MountHelper::install();
    let b = kplugfs_tests::s3::TestBucket::new("fstab");
    b.put("pre/f", b"hello");
    let s = Scratch::new();
    let fstab = s.root.path().join("fstab");
    // The source is an URL, not a path: mount(8) passes it through untouched; the
    // credentials come from the environment mount(8) hands to its helper.
    fs::write(
        &fstab,
        format!(
            "s3://{}/pre {} fuse.kplugfs noauto,_netdev,nofail,endpoint={},{} 0 0\n",
            b.name,
            s.mnt(),
            b.server.endpoint,
            s.own_files()
        ),
    )
    .unwrap();
    ok(
        "mount -T fstab DIR (s3)",
        mount_cmd(&["-T", fstab.to_str().unwrap(), s.mnt()]),
    );
    assert!(is_kplugfs_mount(&s.mnt));
    assert_eq!(fs::read(s.m("f")).unwrap(), b"hello");
    fs::write(s.m("new"), b"through fstab").unwrap();
    assert_eq!(b.get("pre/new").as_deref(), Some(&b"through fstab"[..]));
    ok(
        "umount",
        std::process::Command::new("umount")
            .arg(&s.mnt)
            .output()
            .unwrap(),
    );
}

/// Without `/sbin/mount.fuse.kplugfs`, mount(8) falls back to fuse3's `mount.fuse`, which
/// runs `kplugfs SRC DIR -o OPTS` through `/bin/sh` with a fixed PATH (so the test links the
/// binary under test at /usr/local/sbin/kplugfs): that command line is the helper's call too,
/// so the mount and its remounts work as through the link.
#[test]
fn without_the_link_fuse3s_mount_fuse_runs_kplugfs_itself() {
    let _absent = MountHelper::absent();
    let _bin = BinLink::set("/usr/local/sbin/kplugfs", true);
    let s = Scratch::new();
    let opts = format!("cache_size=8MiB,policy=fifo,{}", s.own_files());
    let src = s.backing.to_str().unwrap();
    ok(
        "mount -t fuse.kplugfs (fuse3's mount.fuse)",
        mount_cmd(&["-t", "fuse.kplugfs", src, s.mnt(), "-o", &opts]),
    );
    assert!(is_kplugfs_mount(&s.mnt));
    assert_eq!(fs::read(s.m("f")).unwrap(), b"hello");
    assert_eq!(eviction(&s), "fifo");
    ok("remount,ro", mount_cmd(&["-o", "remount,ro", s.mnt()]));
    assert_eq!(errno(fs::write(s.m("g"), b"x")), Some(libc::EROFS));
    ok("remount,rw", mount_cmd(&["-o", "remount,rw", s.mnt()]));
    fs::write(s.m("g"), b"x").unwrap();
    assert_eq!(fs::read(s.backing.join("g")).unwrap(), b"x");
    // A source that is no path is still a kplugfs command: clap's error, no mount attempt.
    let out = std::process::Command::new(kplugfs_bin())
        .args(["mout", src, s.mnt()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
