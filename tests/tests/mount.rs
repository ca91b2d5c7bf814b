//! Real mounts (root and /dev/fuse): the CLI contract and the POSIX behaviour of the
//! passthrough, checked against the backing directory.
#![cfg(feature = "mount-tests")]

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use kplugfs_tests::{TestMount, is_kplugfs_mount, kplugfs};

fn daemon_pids(mnt: &std::path::Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .arg("-f")
        .arg(format!("kplugfs mount .* {}", mnt.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let alive = pids.iter().any(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.split(' ').nth(2).is_none_or(|st| st != "Z"))
                .unwrap_or(false)
        });
        if !alive {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn mount_returns_ready_and_umount_stops_the_daemon() {
    let m = TestMount::with_backing(&[], |b| fs::write(b.join("hello"), b"hi\n").unwrap());
    // Ready at once: no sleep between mount's exit and the first read.
    assert_eq!(fs::read(m.m("hello")).unwrap(), b"hi\n");
    let pids = daemon_pids(&m.mnt);
    assert!(!pids.is_empty(), "daemon not running");
    let out = kplugfs(&["umount", m.mnt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_kplugfs_mount(&m.mnt));
    assert!(wait_gone(&pids), "daemon still running after umount");
}

#[test]
fn plain_umount_also_ends_the_daemon() {
    let m = TestMount::new(&[]);
    let pids = daemon_pids(&m.mnt);
    assert!(
        Command::new("umount")
            .arg(&m.mnt)
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_gone(&pids), "daemon still running after umount(8)");
}

#[test]
fn a_daemon_told_to_stop_unmounts_and_exits() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let m = TestMount::new(&[]);
        let pids = daemon_pids(&m.mnt);
        assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
        assert_eq!(unsafe { libc::kill(pids[0] as i32, sig) }, 0);
        assert!(wait_gone(&pids), "daemon still running after signal {sig}");
        assert!(
            !is_kplugfs_mount(&m.mnt),
            "still mounted after signal {sig}"
        );
    }
}

/// `umount` then `mount` of the same directory while the first daemon is still on its way out
/// (stopped here, so that it exits only once the second mount is up, as under load or a
/// slow teardown): the first daemon must not unmount the directory again as it exits. With
/// fuser 0.18's own teardown it did (it unmounts by path, reading the ended connection as
/// still mounted), and the second mount vanished with its daemon: a CI run caught it as a
/// file created right after a remount failing with ENOENT (`mount_plugins.rs`).
#[test]
fn a_daemon_exiting_late_leaves_the_next_mount_alone() {
    let m = TestMount::with_backing(&[], |b| fs::write(b.join("hello"), b"hi\n").unwrap());
    let old = daemon_pids(&m.mnt);
    assert_eq!(old.len(), 1, "one daemon: {old:?}");
    let signal = |sig| assert_eq!(unsafe { libc::kill(old[0] as i32, sig) }, 0);
    signal(libc::SIGSTOP);
    let out = kplugfs(&["umount", m.mnt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = m.mount_again(&[]);
    signal(libc::SIGCONT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_gone(&old), "the first daemon did not exit");
    assert!(
        is_kplugfs_mount(&m.mnt),
        "the second mount was unmounted by the first daemon's exit"
    );
    assert_eq!(fs::read(m.m("hello")).unwrap(), b"hi\n");
    let new = daemon_pids(&m.mnt);
    assert!(
        new.len() == 1 && new[0] != old[0],
        "the second daemon is gone: {new:?}"
    );
}

#[test]
fn bad_input_gets_one_line_errors_and_mounts_nothing() {
    let m = TestMount::new(&[]);
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let free = t.path().join("free");
    fs::create_dir(&free).unwrap();
    let backing = m.backing.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                t.path().join("nope").display().to_string(),
                free.display().to_string(),
            ],
            "does not exist",
        ),
        (
            vec![backing.into(), t.path().join("nope").display().to_string()],
            "does not exist",
        ),
        (
            vec![backing.into(), m.mnt.display().to_string()],
            "already a mount point",
        ),
        (
            vec![
                free.join("x").display().to_string(),
                free.display().to_string(),
            ],
            "does not exist",
        ),
    ];
    fs::create_dir(free.join("inside")).unwrap();
    let mut cases = cases;
    cases.push((
        vec![
            free.join("inside").display().to_string(),
            free.display().to_string(),
        ],
        "inside the mountpoint",
    ));
    for (args, want) in cases {
        let mut full = vec!["mount"];
        full.extend(args.iter().map(String::as_str));
        let out = kplugfs(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        assert!(!is_kplugfs_mount(&free));
    }
    let out = kplugfs(&["umount", free.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a mount point"));
}

#[test]
fn file_operations_match_the_backing_directory() {
    let m = TestMount::new(&[]);
    // create + write + read
    fs::write(m.m("a.txt"), b"hello").unwrap();
    assert_eq!(fs::read(m.b("a.txt")).unwrap(), b"hello");
    let mut f = OpenOptions::new().append(true).open(m.m("a.txt")).unwrap();
    f.write_all(b" world").unwrap();
    drop(f);
    assert_eq!(fs::read(m.m("a.txt")).unwrap(), b"hello world");
    assert_eq!(fs::read(m.b("a.txt")).unwrap(), b"hello world");
    // truncate, both ways
    OpenOptions::new()
        .write(true)
        .open(m.m("a.txt"))
        .unwrap()
        .set_len(5)
        .unwrap();
    assert_eq!(fs::read(m.b("a.txt")).unwrap(), b"hello");
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.m("a.txt"))
        .unwrap();
    drop(f);
    assert_eq!(fs::metadata(m.b("a.txt")).unwrap().len(), 0);
    // rename, mkdir, link, symlink
    fs::create_dir_all(m.m("d/e")).unwrap();
    fs::write(m.m("d/x"), b"x").unwrap();
    fs::rename(m.m("d/x"), m.m("d/e/y")).unwrap();
    assert!(m.b("d/e/y").exists() && !m.b("d/x").exists());
    fs::hard_link(m.m("d/e/y"), m.m("hl")).unwrap();
    assert_eq!(fs::metadata(m.m("hl")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.m("hl")).unwrap().ino(),
        fs::metadata(m.m("d/e/y")).unwrap().ino()
    );
    std::os::unix::fs::symlink("d/e/y", m.m("sl")).unwrap();
    assert_eq!(fs::read_link(m.m("sl")).unwrap().to_str(), Some("d/e/y"));
    assert_eq!(fs::read(m.m("sl")).unwrap(), b"x");
    // chmod
    fs::set_permissions(m.m("hl"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(m.b("hl")).unwrap().mode() & 0o7777, 0o600);
    // inode numbers are the backing ones and stay stable
    assert_eq!(
        fs::metadata(m.m("d")).unwrap().ino(),
        fs::metadata(m.b("d")).unwrap().ino()
    );
    // unlink, rmdir
    fs::remove_file(m.m("hl")).unwrap();
    fs::remove_file(m.m("d/e/y")).unwrap();
    fs::remove_dir(m.m("d/e")).unwrap();
    assert!(!m.b("d/e").exists());
    // directory listing equals the backing listing
    for i in 0..300 {
        fs::write(m.m(&format!("d/f{i}")), i.to_string()).unwrap();
    }
    let mut a: Vec<_> = fs::read_dir(m.m("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut b: Vec<_> = fs::read_dir(m.b("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(a.len(), 300);
}

#[test]
fn changes_behind_the_mount_show_after_reopen() {
    let m = TestMount::with_backing(&["--attr-timeout", "0s"], |b| {
        fs::write(b.join("f"), b"old").unwrap()
    });
    assert_eq!(fs::read(m.m("f")).unwrap(), b"old");
    fs::write(m.b("f"), b"new!").unwrap();
    assert_eq!(fs::read(m.m("f")).unwrap(), b"new!");
}

/// The kernel forgets an inode (here: `drop_caches`), the file is rewritten behind the mount
/// with the same size, and the next open must not serve the daemon's cached blocks of the
/// old bytes: with the inode forgotten there was no stamp left to compare, so the blocks go
/// with it.
#[test]
fn a_forgotten_inode_changed_behind_the_mount_is_read_anew() {
    let m = TestMount::with_backing(&["--no-kernel-cache"], |b| {
        fs::write(b.join("f"), vec![1u8; 200_000]).unwrap()
    });
    assert_eq!(fs::read(m.m("f")).unwrap(), vec![1u8; 200_000]);
    // Dentries and inodes: the kernel sends FORGET for every unused one.
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    fs::write(m.b("f"), vec![2u8; 200_000]).unwrap();
    assert_eq!(fs::read(m.m("f")).unwrap(), vec![2u8; 200_000]);
}

fn mmap(file: &fs::File, len: usize, prot: i32) -> *mut u8 {
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    p.cast()
}

#[test]
fn mmap_read_and_shared_write_reach_the_backing_file() {
    let m = TestMount::with_backing(&[], |b| {
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        fs::write(b.join("map"), data).unwrap();
    });
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.m("map"))
        .unwrap();
    let len = 3 * 4096;
    let p = mmap(&f, len, libc::PROT_READ | libc::PROT_WRITE);
    let s = unsafe { std::slice::from_raw_parts_mut(p, len) };
    assert!(s.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    s[4096..4096 + 5].copy_from_slice(b"MMAP!");
    assert_eq!(unsafe { libc::msync(p.cast(), len, libc::MS_SYNC) }, 0);
    assert_eq!(unsafe { libc::munmap(p.cast(), len) }, 0);
    drop(f);
    let back = fs::read(m.b("map")).unwrap();
    assert_eq!(&back[4096..4101], b"MMAP!");
    assert_eq!(back[0], 0);
    assert_eq!(back.len(), len);
}

#[test]
fn large_file_random_reads_equal_backing() {
    let m = TestMount::with_backing(&[], |b| {
        let data: Vec<u8> = (0..(8u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(b.join("big"), data).unwrap();
    });
    let want = fs::read(m.b("big")).unwrap();
    let mut f = fs::File::open(m.m("big")).unwrap();
    let mut x: u64 = 12345;
    for _ in 0..500 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (x >> 33) % want.len() as u64;
        let len = ((x >> 7) % 300_000) as usize + 1;
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut got = 0;
        while got < len {
            let n = f.read(&mut buf[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (off as usize + len).min(want.len());
        assert_eq!(&buf[..got], &want[off as usize..end]);
    }
}

#[test]
fn other_users_follow_permissions() {
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("private"), b"secret").unwrap();
        fs::set_permissions(b.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(b.join("public"), b"open").unwrap();
        fs::set_permissions(b.join("public"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(b, fs::Permissions::from_mode(0o777)).unwrap();
    });
    fs::set_permissions(m.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let run = kplugfs_tests::as_nobody;
    assert!(
        run(&format!("cat {}", m.m("public").display()))
            .status
            .success()
    );
    let out = run(&format!("cat {}", m.m("private").display()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    let out = run(&format!("echo mine > {}", m.m("byuser").display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = fs::metadata(m.b("byuser")).unwrap();
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
}
