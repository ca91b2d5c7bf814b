//! Host tests of the syscall backend against the real page cache.
//!
//! The host kernel cannot load modules (the module is tested in a VM by
//! `kmod-bridge/vm-test`), but `readahead(2)` works, so here we check what a
//! hint is for: after it, the pages are resident.  The file lives on a disk
//! filesystem (`/var/tmp`, or `$KPLUG_TEST_DIR`): on tmpfs every page is
//! always "resident" and the test could not fail, so that is refused.  Every
//! positive check is preceded by asserting the opposite state.  A machine short
//! of memory (a build beside the tests) reclaims freshly read pages and keeps
//! DONTNEED from dropping pages reclaim holds: the tests repeat DONTNEED until
//! the file is cold, and repeat a hint whose pages were not all seen only when
//! the kernel reclaimed pages meanwhile (`hint_until_resident`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use kplug_bridge::residency::{page_size, resident_pages};
use kplug_bridge::{Backend, Error, HintSink, HintStats, Mode, Options};

/// 32 MiB file; page i holds the u64 `i` repeated.
const FILE_PAGES: u64 = 8192;

struct TestFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: File,
}

fn test_dir() -> PathBuf {
    std::env::var_os("KPLUG_TEST_DIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// A stamped file on a disk filesystem, not resident in the page cache.
fn make_file() -> TestFile {
    let dir = tempfile::Builder::new()
        .prefix("kplug-bridge-test")
        .tempdir_in(test_dir())
        .expect("tempdir");
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let cpath = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C string and a writable statfs.
    assert_eq!(unsafe { libc::statfs(cpath.as_ptr(), &mut st) }, 0);
    assert_ne!(
        st.f_type,
        libc::TMPFS_MAGIC,
        "{} is tmpfs: residency cannot be tested there; set KPLUG_TEST_DIR to a disk filesystem",
        dir.path().display()
    );

    let path = dir.path().join("data");
    let page = page_size();
    let mut w = File::create(&path).unwrap();
    let mut buf = Vec::with_capacity(page as usize);
    for i in 0..FILE_PAGES {
        buf.clear();
        for _ in 0..page / 8 {
            buf.extend_from_slice(&i.to_ne_bytes());
        }
        w.write_all(&buf).unwrap();
    }
    w.sync_all().unwrap();
    drop(w);
    let file = File::open(&path).unwrap();
    let f = TestFile {
        _dir: dir,
        path,
        file,
    };
    make_cold(&f);
    f
}

/// Drops the file's pages from the page cache. Clean pages are dropped synchronously by
/// DONTNEED, except those reclaim has isolated at that moment (a machine short of memory
/// does it all the time): DONTNEED is repeated until none is left, for 10 s at most.
fn make_cold(f: &TestFile) {
    let start = Instant::now();
    loop {
        // SAFETY: no pointers.
        let rc =
            unsafe { libc::posix_fadvise(f.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        let left = resident(f, 0, FILE_PAGES);
        if left == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{left} pages still resident 10 s after DONTNEED"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// File pages the kernel has reclaimed so far, machine wide (`pgsteal_*` in /proc/vmstat).
fn reclaimed_pages() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .expect("/proc/vmstat")
        .lines()
        .filter(|l| l.starts_with("pgsteal_"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// With the file cold, `hint` on a new syscall sink, then wait (10 s at most) for pages
/// `first..first + pages` to be resident; returns the sink. Short of memory, the kernel may
/// reclaim pages a hint has just read before they are seen (its right: a hint is advice),
/// so an attempt during which the kernel reclaimed pages anywhere is repeated from cold,
/// 5 times at most. Pages missing after an attempt without any reclaim are the hint's fault.
fn hint_until_resident(
    f: &TestFile,
    first: u64,
    pages: u64,
    hint: impl Fn(&HintSink, BorrowedFd<'_>),
) -> HintSink {
    for attempt in 1.. {
        make_cold(f);
        let before = reclaimed_pages();
        let sink = syscall_sink();
        hint(&sink, f.file.as_fd());
        let got = poll_resident(f, first, pages, Duration::from_secs(10));
        if got == pages {
            return sink;
        }
        let reclaimed = reclaimed_pages() - before;
        assert!(
            reclaimed > 0,
            "{got} of {pages} hinted pages resident after 10 s, and the kernel reclaimed nothing meanwhile"
        );
        assert!(
            attempt < 5,
            "{got} of {pages} hinted pages resident after 10 s; the kernel reclaimed pages during each of {attempt} attempts (the machine is short of memory)"
        );
        eprintln!(
            "attempt {attempt}: {got} of {pages} pages resident; the kernel reclaimed {reclaimed} pages meanwhile: again"
        );
    }
    unreachable!()
}

fn resident(f: &TestFile, first: u64, pages: u64) -> u64 {
    resident_pages(f.file.as_fd(), first, pages).unwrap()
}

fn poll_resident(f: &TestFile, first: u64, pages: u64, timeout: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let n = resident(f, first, pages);
        if n == pages || start.elapsed() > timeout {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn syscall_sink() -> HintSink {
    let sink = HintSink::new(Mode::Syscall).unwrap();
    assert_eq!(sink.backend(), Backend::Readahead);
    sink
}

#[test]
fn hinted_range_becomes_resident_and_nothing_far_away_does() {
    let f = make_file();
    let page = page_size();
    // 8 MiB from page 1000, starting mid-page: larger than one readahead call
    // is allowed to read on many devices, so chunking matters.
    let (first, pages) = (1000, 2048);
    let (far_first, far_pages) = (6000, FILE_PAGES - 6000);

    let before = resident(&f, 0, FILE_PAGES);
    assert_eq!(
        before, 0,
        "file must start non-resident for the test to mean anything"
    );

    let offset = first * page + 100;
    let len = pages * page - 100;
    let sink = hint_until_resident(&f, first, pages, |sink, fd| {
        assert_eq!(sink.hint(fd, offset, len).unwrap(), len);
    });
    assert_eq!(
        resident(&f, far_first, far_pages),
        0,
        "far range became resident"
    );

    // Data really is the file's (read only resident pages: no readahead).
    let mut buf = vec![0u8; page as usize];
    for i in [first, first + pages / 2, first + pages - 1] {
        f.file.read_exact_at(&mut buf, i * page).unwrap();
        assert_eq!(u64::from_ne_bytes(buf[..8].try_into().unwrap()), i);
    }

    let chunk = Options::default().syscall_chunk;
    assert_eq!(
        sink.stats(),
        HintStats {
            hints: 1,
            bytes_requested: len,
            // Calls are aligned to multiples of the chunk size.
            chunks: (offset + len - 1) / chunk - offset / chunk + 1,
            errors: 0,
            dropped: 0,
        }
    );
    assert!(sink.kernel_stats().is_none());
}

#[test]
fn a_hint_elsewhere_leaves_the_range_cold() {
    // The negative twin of the test above: the same check must fail when the
    // hint went to another range.
    let f = make_file();
    let page = page_size();
    assert_eq!(resident(&f, 0, FILE_PAGES), 0);
    hint_until_resident(&f, 100, 64, |sink, fd| {
        sink.hint(fd, 100 * page, 64 * page).unwrap();
    });
    assert_eq!(resident(&f, 3000, 512), 0);
}

#[test]
fn clamps_to_eof_like_the_module() {
    let f = make_file();
    let page = page_size();
    let size = FILE_PAGES * page;
    let sink = syscall_sink();
    let fd = f.file.as_fd();
    assert_eq!(sink.hint(fd, size - page, u64::MAX).unwrap(), page);
    assert_eq!(sink.hint(fd, size, page).unwrap(), 0);
    assert_eq!(sink.hint(fd, u64::MAX, u64::MAX).unwrap(), 0);
    assert_eq!(sink.hint(fd, 0, 0).unwrap(), 0);
    let s = sink.stats();
    assert_eq!(
        (s.hints, s.bytes_requested, s.chunks, s.errors),
        (4, page, 1, 0)
    );
}

#[test]
fn bad_fds_get_the_documented_errno() {
    let f = make_file();
    let sink = syscall_sink();
    let errno = |r: std::io::Result<u64>| r.unwrap_err().raw_os_error().unwrap();

    let dir = File::open(f.path.parent().unwrap()).unwrap();
    assert_eq!(errno(sink.hint(dir.as_fd(), 0, 4096)), libc::EISDIR);

    let wo = OpenOptions::new().write(true).open(&f.path).unwrap();
    assert_eq!(errno(sink.hint(wo.as_fd(), 0, 4096)), libc::EBADF);

    let (r, _w) = nix::unistd::pipe().unwrap();
    assert_eq!(errno(sink.hint(r.as_fd(), 0, 4096)), libc::EINVAL);

    let null = File::open("/dev/null").unwrap();
    assert_eq!(errno(sink.hint(null.as_fd(), 0, 4096)), libc::EINVAL);

    assert_eq!(sink.stats().errors, 4);
    assert_eq!(sink.stats().hints, 0);
}

#[test]
fn off_mode_drops_hints() {
    let f = make_file();
    let sink = HintSink::new(Mode::Off).unwrap();
    assert_eq!(sink.backend(), Backend::Off);
    assert_eq!(sink.hint(f.file.as_fd(), 0, 1 << 20).unwrap(), 0);
    assert_eq!(sink.stats().dropped, 1);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(resident(&f, 0, FILE_PAGES), 0);
}

#[test]
fn kmod_mode_requires_the_device_and_auto_falls_back() {
    let options = Options {
        device: PathBuf::from("/nonexistent/kplug_bridge"),
        ..Options::default()
    };
    match HintSink::with_options(Mode::Kmod, options.clone()) {
        Err(Error::Device { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("expected Error::Device, got {other:?}"),
    }
    let sink = HintSink::with_options(Mode::Auto, options).unwrap();
    assert_eq!(sink.backend(), Backend::Readahead);

    // A device that is not ours fails the version ioctl.
    let not_ours = Options {
        device: PathBuf::from("/dev/null"),
        ..Options::default()
    };
    assert!(matches!(
        HintSink::with_options(Mode::Kmod, not_ours.clone()),
        Err(Error::Version { .. })
    ));
    assert_eq!(
        HintSink::with_options(Mode::Auto, not_ours)
            .unwrap()
            .backend(),
        Backend::Readahead
    );
}

#[test]
fn one_sink_serves_many_threads() {
    let f = make_file();
    let page = page_size();
    let sink = syscall_sink();
    thread::scope(|s| {
        for t in 0..4u64 {
            let (sink, file) = (&sink, &f.file);
            s.spawn(move || {
                for i in 0..50 {
                    let off = (t * 1000 + i * 8) * page;
                    assert_eq!(sink.hint(file.as_fd(), off, 8 * page).unwrap(), 8 * page);
                }
            });
        }
    });
    let s = sink.stats();
    assert_eq!(
        (s.hints, s.bytes_requested, s.errors),
        (200, 200 * 8 * page, 0)
    );
}
