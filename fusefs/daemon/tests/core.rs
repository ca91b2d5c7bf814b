//! The filesystem core driven directly, without FUSE: every operation of the passthrough is
//! checked against the backing directory it should have changed.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kplug_daemon::data::{Backend, DataCache, Passthrough};
use kplug_daemon::fs::inode::{InodeTable, ROOT_INO};
use kplug_daemon::fs::{
    Caller, DirPlusSink, DirSink, Entry, FileKind, FsConfig, KplugFs, LocalFs, Opened, SetAttr,
    SetTime, XattrReply,
};

/// The router over a passthrough, with the passthrough at hand for its inode table.
struct Fs {
    fs: KplugFs,
    local: Arc<LocalFs>,
}

impl std::ops::Deref for Fs {
    type Target = KplugFs;
    fn deref(&self) -> &KplugFs {
        &self.fs
    }
}

impl Fs {
    fn new(dir: &Path, data: Arc<dyn DataCache>) -> Self {
        let local = Arc::new(LocalFs::new(dir, data, FsConfig::default()).unwrap());
        Fs {
            fs: KplugFs::new(local.clone(), FsConfig::default().attr_ttl),
            local,
        }
    }

    fn inodes(&self) -> &InodeTable {
        self.local.inodes()
    }

    /// `create`, as root, returning the handle.
    fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> kplug_daemon::Result<(Entry, u64)> {
        self.fs
            .create(parent, name, mode, umask, flags, caller)
            .map(|(e, o)| (e, o.fh))
    }

    /// `open`, as root.
    fn open(&self, ino: u64, flags: i32) -> kplug_daemon::Result<Opened> {
        self.fs.open(ino, flags, Caller::ROOT)
    }
}

fn setup() -> (tempfile::TempDir, Fs) {
    let dir = tempfile::tempdir().unwrap();
    let data: Arc<dyn DataCache> =
        Arc::new(Passthrough::new(Arc::new(Backend::new(Duration::ZERO))));
    let fs = Fs::new(dir.path(), data);
    (dir, fs)
}

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

const RW: i32 = libc::O_RDWR;

#[test]
fn create_write_read_roundtrip_and_backing_agrees() {
    let (dir, fs) = setup();
    let (e, fh) = fs
        .create(ROOT_INO, n("f"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    assert_eq!(e.attr.kind, FileKind::File);
    assert_eq!(fs.write(fh, 0, b"hello world").unwrap(), 11);
    // Write-through: the backing file has the bytes as soon as write returns.
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello world");
    assert_eq!(fs.read(fh, 6, 100).unwrap(), b"world");
    assert_eq!(fs.read(fh, 100, 10).unwrap(), b"");
    fs.flush(fh, 0).unwrap();
    fs.fsync(fh, false).unwrap();
    fs.release(fh).unwrap();
    assert_eq!(fs.release(fh).unwrap_err().errno(), libc::EBADF);
    let attr = fs.getattr(e.attr.ino, None).unwrap();
    assert_eq!(attr.size, 11);
    assert_eq!(
        attr.ino,
        std::fs::metadata(dir.path().join("f")).unwrap().ino()
    );
}

#[test]
fn lookup_errors_and_counts() {
    let (dir, fs) = setup();
    std::fs::write(dir.path().join("a"), b"x").unwrap();
    assert_eq!(
        fs.lookup(ROOT_INO, n("missing")).unwrap_err().errno(),
        libc::ENOENT
    );
    let e1 = fs.lookup(ROOT_INO, n("a")).unwrap();
    let e2 = fs.lookup(ROOT_INO, n("a")).unwrap();
    assert_eq!(e1.attr.ino, e2.attr.ino);
    assert_eq!(fs.inodes().get(e1.attr.ino).unwrap().lookups(), 2);
    fs.forget(e1.attr.ino, 2);
    assert!(fs.inodes().get(e1.attr.ino).is_none());
    // ".." of the root stays at the root.
    let up = fs.lookup(ROOT_INO, n("..")).unwrap();
    assert_eq!(up.attr.kind, FileKind::Dir);
    fs.forget(up.attr.ino, 1);
}

#[test]
fn a_million_lookups_do_not_leak() {
    let (dir, fs) = setup();
    for i in 0..100 {
        std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
    }
    for round in 0..10_000u64 {
        let name = format!("f{}", round % 100);
        let e = fs.lookup(ROOT_INO, n(&name)).unwrap();
        if round % 7 != 0 {
            fs.forget(e.attr.ino, 1);
        } else {
            // Kernel batches: forget later with the summed count.
            let again = fs.lookup(ROOT_INO, n(&name)).unwrap();
            fs.forget(again.attr.ino, 2);
        }
    }
    assert!(fs.inodes().is_empty(), "{} inodes left", fs.inodes().len());
}

#[test]
fn mkdir_rmdir_unlink_rename() {
    let (dir, fs) = setup();
    let d = fs
        .mkdir(ROOT_INO, n("d"), 0o755, 0o022, Caller::ROOT)
        .unwrap();
    assert!(dir.path().join("d").is_dir());
    let (f, fh) = fs
        .create(d.attr.ino, n("x"), 0o600, 0, RW, Caller::ROOT)
        .unwrap();
    fs.release(fh).unwrap();
    assert_eq!(
        fs.rmdir(ROOT_INO, n("d")).unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    fs.rename(d.attr.ino, n("x"), ROOT_INO, n("y"), 0).unwrap();
    assert!(dir.path().join("y").exists() && !dir.path().join("d/x").exists());
    // The inode follows the object, not the name.
    assert_eq!(fs.getattr(f.attr.ino, None).unwrap().ino, f.attr.ino);
    std::fs::write(dir.path().join("z"), b"z").unwrap();
    let err = fs
        .rename(ROOT_INO, n("y"), ROOT_INO, n("z"), libc::RENAME_NOREPLACE)
        .unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST);
    fs.rename(ROOT_INO, n("y"), ROOT_INO, n("z"), libc::RENAME_EXCHANGE)
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("y")).unwrap(), b"z");
    fs.unlink(ROOT_INO, n("y")).unwrap();
    fs.rmdir(ROOT_INO, n("d")).unwrap();
    assert!(!dir.path().join("d").exists());
}

#[test]
fn links_symlinks_and_special_files() {
    let (dir, fs) = setup();
    let (f, fh) = fs
        .create(ROOT_INO, n("f"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    fs.release(fh).unwrap();
    let l = fs.link(f.attr.ino, ROOT_INO, n("hard")).unwrap();
    assert_eq!(l.attr.ino, f.attr.ino);
    assert_eq!(l.attr.nlink, 2);
    let s = fs
        .symlink(ROOT_INO, n("sym"), Path::new("f"), Caller::ROOT)
        .unwrap();
    assert_eq!(s.attr.kind, FileKind::Symlink);
    assert_eq!(fs.readlink(s.attr.ino).unwrap(), b"f");
    let p = fs
        .mknod(
            ROOT_INO,
            n("pipe"),
            libc::S_IFIFO | 0o600,
            0,
            0,
            Caller::ROOT,
        )
        .unwrap();
    assert_eq!(p.attr.kind, FileKind::Fifo);
    let so = fs
        .mknod(
            ROOT_INO,
            n("sock"),
            libc::S_IFSOCK | 0o600,
            0,
            0,
            Caller::ROOT,
        )
        .unwrap();
    assert_eq!(so.attr.kind, FileKind::Socket);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(dir.path().join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn setattr_mode_size_times_owner() {
    let (dir, fs) = setup();
    let (f, fh) = fs
        .create(ROOT_INO, n("f"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    fs.write(fh, 0, &[7u8; 10_000]).unwrap();
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                mode: Some(0o4751),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.perm, 0o4751);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                size: Some(100),
                fh: Some(fh),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.size, 100);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                size: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.size, 5);
    let t = UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                atime: Some(SetTime::At(t)),
                mtime: Some(SetTime::At(t)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.mtime, t);
    assert_eq!(a.atime, t);
    let before = UNIX_EPOCH + Duration::from_secs(1);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                mtime: Some(SetTime::At(before)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(a.mtime, before);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                mtime: Some(SetTime::Now),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(a.mtime > t);
    let a = fs
        .setattr(
            f.attr.ino,
            SetAttr {
                uid: Some(1234),
                gid: Some(4321),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((a.uid, a.gid), (1234, 4321));
    let m = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.len()), (1234, 4321, 5));
    fs.release(fh).unwrap();
}

#[test]
fn objects_created_for_a_user_belong_to_the_user() {
    let (dir, fs) = setup();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let who = Caller {
        uid: 1000,
        gid: 1000,
        pid: 1,
    };
    let (f, fh) = fs
        .create(ROOT_INO, n("mine"), 0o640, 0o022, RW, who)
        .unwrap();
    fs.release(fh).unwrap();
    assert_eq!((f.attr.uid, f.attr.gid, f.attr.perm), (1000, 1000, 0o640));
    let d = fs.mkdir(ROOT_INO, n("dir"), 0o777, 0o022, who).unwrap();
    assert_eq!((d.attr.uid, d.attr.perm), (1000, 0o755));
    let s = fs
        .symlink(ROOT_INO, n("ln"), Path::new("mine"), who)
        .unwrap();
    assert_eq!(s.attr.uid, 1000);
    assert_eq!(
        fs.access(
            f.attr.ino,
            libc::W_OK,
            Caller {
                uid: 2000,
                gid: 2000,
                pid: 1
            }
        )
        .unwrap_err()
        .errno(),
        libc::EACCES
    );
    fs.access(f.attr.ino, libc::R_OK | libc::W_OK, who).unwrap();
}

struct Names(Vec<(String, u64)>, usize);
impl DirSink for Names {
    fn add(&mut self, _ino: u64, offset: u64, _kind: FileKind, name: &OsStr) -> bool {
        if self.0.len() >= self.1 {
            return true;
        }
        self.0.push((name.to_string_lossy().into(), offset));
        false
    }
}

struct Plus(Vec<(String, Entry)>, usize);
impl DirPlusSink for Plus {
    fn add(&mut self, _offset: u64, name: &OsStr, e: &Entry) -> bool {
        if self.0.len() >= self.1 {
            return true;
        }
        self.0.push((name.to_string_lossy().into(), *e));
        false
    }
}

#[test]
fn readdir_resumes_at_offsets_and_readdirplus_counts_lookups() {
    let (dir, fs) = setup();
    for i in 0..50 {
        std::fs::write(dir.path().join(format!("e{i:02}")), b"").unwrap();
    }
    let fh = fs.opendir(ROOT_INO).unwrap();
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let mut page = Names(Vec::new(), 7);
        fs.readdir(ROOT_INO, fh, offset, &mut page).unwrap();
        if page.0.is_empty() {
            break;
        }
        offset = page.0.last().unwrap().1;
        all.extend(page.0.into_iter().map(|(n, _)| n));
    }
    fs.releasedir(fh).unwrap();
    assert_eq!(all.len(), 52);
    assert_eq!(&all[..2], &[".".to_string(), "..".to_string()]);
    let mut sorted = all[2..].to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 50);

    let fh = fs.opendir(ROOT_INO).unwrap();
    let mut page = Plus(Vec::new(), 10);
    fs.readdirplus(ROOT_INO, fh, 0, &mut page).unwrap();
    fs.releasedir(fh).unwrap();
    assert_eq!(page.0.len(), 10);
    // 8 real entries were handed out; the 9th that did not fit was not counted.
    assert_eq!(fs.inodes().len(), 1 + 8);
    for (_, e) in &page.0[2..] {
        assert_eq!(fs.inodes().get(e.attr.ino).unwrap().lookups(), 1);
        fs.forget(e.attr.ino, 1);
    }
    assert!(fs.inodes().is_empty());
}

#[test]
fn xattrs_roundtrip() {
    let (_dir, fs) = setup();
    let (f, fh) = fs
        .create(ROOT_INO, n("f"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    fs.release(fh).unwrap();
    match fs.setxattr(f.attr.ino, n("user.k"), b"value", 0) {
        Err(e) if e.errno() == libc::EOPNOTSUPP => return, // backing fs without user xattrs
        r => r.unwrap(),
    }
    assert_eq!(
        fs.getxattr(f.attr.ino, n("user.k"), 0).unwrap(),
        XattrReply::Size(5)
    );
    assert_eq!(
        fs.getxattr(f.attr.ino, n("user.k"), 64).unwrap(),
        XattrReply::Data(b"value".to_vec())
    );
    assert_eq!(
        fs.getxattr(f.attr.ino, n("user.k"), 2).unwrap_err().errno(),
        libc::ERANGE
    );
    match fs.listxattr(f.attr.ino, 64).unwrap() {
        XattrReply::Data(d) => assert!(d.split(|b| *b == 0).any(|s| s == b"user.k")),
        other => panic!("{other:?}"),
    }
    fs.removexattr(f.attr.ino, n("user.k")).unwrap();
    assert_eq!(
        fs.getxattr(f.attr.ino, n("user.k"), 64)
            .unwrap_err()
            .errno(),
        libc::ENODATA
    );
}

#[test]
fn lseek_data_hole_fallocate_copy_file_range_statfs() {
    let (dir, fs) = setup();
    let (_f, fh) = fs
        .create(ROOT_INO, n("sparse"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    fs.write(fh, 1 << 20, b"tail").unwrap();
    let data = fs.lseek(fh, 0, libc::SEEK_DATA).unwrap();
    assert!(data > 0 && data <= 1 << 20, "SEEK_DATA {data}");
    assert_eq!(fs.lseek(fh, 0, libc::SEEK_HOLE).unwrap(), 0);
    let ino = fs.local.open_file(fh).unwrap().ino;
    let before = fs.getattr(ino, Some(fh)).unwrap().blocks;
    fs.fallocate(fh, 0, 64 << 10, 0).unwrap();
    assert!(fs.getattr(ino, Some(fh)).unwrap().blocks >= before + 128);
    let (_g, gh) = fs
        .create(ROOT_INO, n("copy"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    let mut copied = 0u64;
    while copied < (1 << 20) + 4 {
        let n = fs
            .copy_file_range(fh, copied, gh, copied, (1 << 20) + 4 - copied, 0)
            .unwrap();
        assert!(n > 0);
        copied += n as u64;
    }
    assert_eq!(
        std::fs::read(dir.path().join("copy")).unwrap(),
        std::fs::read(dir.path().join("sparse")).unwrap()
    );
    let s = fs.statfs().unwrap();
    assert!(s.blocks > 0 && s.namelen >= 255);
    fs.release(fh).unwrap();
    fs.release(gh).unwrap();
}

#[test]
fn backend_latency_is_applied_per_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![1u8; 4096]).unwrap();
    let backend = Arc::new(Backend::new(Duration::from_millis(20)));
    let fs = Fs::new(dir.path(), Arc::new(Passthrough::new(backend.clone())));
    let e = fs.lookup(ROOT_INO, n("f")).unwrap();
    let fh = fs.open(e.attr.ino, libc::O_RDONLY).unwrap().fh;
    let t = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(fs.read(fh, 0, 4096).unwrap().len(), 4096);
    }
    // Three reads, each delayed: at least 3 x 20 ms (a lower bound, not a timing assertion
    // on speed: sleep never returns early).
    assert!(t.elapsed() >= Duration::from_millis(60));
    assert_eq!(backend.reads(), 3);
    assert_eq!(backend.bytes(), 3 * 4096);
}

/// A write racing a read of the same pages asks the adapter to drop them from the kernel's
/// page cache (docs/consistency.md); writes nobody read, writes of other pages and writes
/// the kernel sends from its own dirty pages do not.
#[test]
fn writes_racing_reads_of_the_same_pages_report_stale_pages() {
    let (_dir, fs) = setup();
    let (_, fh) = fs
        .create(ROOT_INO, n("f"), 0o644, 0, RW, Caller::ROOT)
        .unwrap();
    let block = vec![7u8; 3 * 4096];
    // Nobody read the file: nothing to drop.
    let w = fs.write_through(fh, 0, &block, false).unwrap();
    assert_eq!((w.bytes, w.stale_pages), (3 * 4096, None));
    // A read of page 1, then a write of pages 1-2: the written range comes back.
    fs.read(fh, 4096, 4096).unwrap();
    let w = fs.write_through(fh, 4096, &block[..8192], false).unwrap();
    assert_eq!(w.stale_pages, Some(4096..12288));
    // A write of page 2 only overlaps nothing read... except the page-rounded tail of a
    // partial write into page 1 does.
    let w = fs.write_through(fh, 8192, &block[..4096], false).unwrap();
    assert_eq!(w.stale_pages, None);
    let w = fs.write_through(fh, 8000, &block[..100], false).unwrap();
    assert_eq!(w.stale_pages, Some(8000..8100));
    // Mmap writeback comes from the kernel's own pages: never reported.
    let w = fs.write_through(fh, 4096, &block[..4096], true).unwrap();
    assert_eq!(w.stale_pages, None);
    fs.release(fh).unwrap();
}

/// The core with the block cache and control plane (no FUSE): `.kplug/stats` must count what
/// the reads did.
#[test]
fn stats_count_misses_then_hits_and_backend_bytes() {
    use kplug_daemon::control::{self, Owner};
    use kplug_daemon::data::blockcache::{BlockCache, BlockCacheConfig};
    let dir = tempfile::tempdir().unwrap();
    let bs = 64u64 << 10;
    let small: Vec<u8> = (0..2 * bs as usize).map(|i| (i * 7 % 251) as u8).collect();
    let big: Vec<u8> = (0..12 * bs as usize)
        .map(|i| (i * 13 % 241) as u8)
        .collect();
    std::fs::write(dir.path().join("small"), &small).unwrap();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let backend = Arc::new(Backend::new(Duration::ZERO));
    let cache = BlockCache::new(
        backend,
        BlockCacheConfig {
            block_size: bs,
            capacity_bytes: 8 * bs,
            ..Default::default()
        },
        None,
    );
    let mut fs = Fs::new(dir.path(), cache.clone());
    let control = control::mount(
        &mut fs.fs,
        cache,
        None,
        Owner { uid: 0, gid: 0 },
        kplug_engine::EngineConfig::default(),
    )
    .unwrap();
    let stats = || control.stats();
    let read_all = |name: &str, len: usize| {
        let e = fs.lookup(ROOT_INO, n(name)).unwrap();
        let o = fs.open(e.attr.ino, libc::O_RDONLY).unwrap();
        let mut out = Vec::new();
        while out.len() < len {
            let chunk = fs.read(o.fh, out.len() as u64, 128 << 10).unwrap();
            assert!(!chunk.is_empty());
            out.extend_from_slice(&chunk);
        }
        fs.release(o.fh).unwrap();
        out
    };
    let s0 = stats();
    for (name, v) in [
        ("hits", s0.cache.hits),
        ("misses", s0.cache.misses),
        ("evictions", s0.cache.evictions),
        ("resident", s0.cache.resident_blocks),
        ("issued", s0.prefetch.issued_blocks),
        ("used", s0.prefetch.used_blocks),
        ("wasted", s0.prefetch.wasted_blocks),
        ("reads", s0.backend.reads),
        ("bytes", s0.backend.bytes),
    ] {
        assert_eq!(v, 0, "{name} at start");
    }
    assert_eq!(s0.cache.capacity_blocks, 8);
    assert!(s0.plugins.is_empty());
    assert!(s0.history.is_none());
    assert_eq!(s0.active.eviction, "builtin:lru");

    assert_eq!(read_all("small", small.len()), small);
    // Let prefetches in flight finish, so the re-read is all hits.
    std::thread::sleep(Duration::from_millis(200));
    let s1 = stats();
    assert!(s1.cache.misses >= 1, "{s1:?}");
    assert!(s1.backend.bytes >= small.len() as u64, "{s1:?}");
    assert!(s1.backend.reads >= 2, "{s1:?}");
    assert_eq!(s1.cache.resident_blocks, 2, "{s1:?}");
    assert!(s1.backend.latency_us.max >= s1.backend.latency_us.p50);

    assert_eq!(read_all("small", small.len()), small);
    let s2 = stats();
    assert_eq!(s2.cache.hits - s1.cache.hits, 2, "{s2:?}");
    assert_eq!(s2.cache.misses, s1.cache.misses, "{s2:?}");
    assert_eq!(s2.backend.bytes, s1.backend.bytes, "{s2:?}");
    assert!(s2.time_unix_ms >= s1.time_unix_ms);

    // 12 blocks through an 8-block cache: evictions, never more resident than capacity.
    assert_eq!(read_all("big", big.len()), big);
    std::thread::sleep(Duration::from_millis(200));
    let s3 = stats();
    assert!(s3.cache.evictions >= 4, "{s3:?}");
    assert!(s3.cache.resident_blocks <= s3.cache.capacity_blocks);
    assert!(s3.backend.bytes >= (small.len() + big.len()) as u64);
    assert!(s3.prefetch.issued_blocks >= s3.prefetch.used_blocks);

    // `stats` is a read-only file of the control tree, beside the root's listing.
    let ctl = fs.lookup(ROOT_INO, n(".kplug")).unwrap();
    assert!(fs.list_names(ROOT_INO).unwrap().contains(&".kplug".into()));
    let e = fs.lookup(ctl.attr.ino, n("stats")).unwrap();
    assert_eq!(
        fs.open(e.attr.ino, libc::O_WRONLY).unwrap_err().errno(),
        libc::EACCES
    );
    let o = fs.open(e.attr.ino, libc::O_RDONLY).unwrap();
    assert!(o.direct_io && !o.keep_cache);
    let text = fs.read(o.fh, 0, 1 << 20).unwrap();
    let doc: kplug_daemon::monitor::schema::Stats = serde_json::from_slice(&text).unwrap();
    assert!(doc.cache.hits >= s3.cache.hits);
    fs.release(o.fh).unwrap();
}

/// A readahead window larger than the prefetch queue's floor (`MAX_QUEUED_PREFETCH`), as on
/// an object store (`--readahead 64MiB`): a sequential scan through a slow backend gets every
/// block ahead of the reader from the prefetch threads, none dropped for want of queue room,
/// and the reader misses only where the stream starts.
#[test]
fn a_window_above_the_queue_floor_is_prefetched_whole() {
    use kplug_cache::{BuiltinPrefetch, CoreConfig, ReadaheadConfig};
    use kplug_daemon::data::blockcache::{
        BlockCache, BlockCacheConfig, MAX_QUEUED_PREFETCH, queue_bound,
    };
    use std::sync::atomic::Ordering;
    let window = 2 * MAX_QUEUED_PREFETCH as u64;
    assert!(queue_bound(window) >= 2 * window as usize);
    assert_eq!(queue_bound(1), MAX_QUEUED_PREFETCH);
    let dir = tempfile::tempdir().unwrap();
    let bs = 4096u64;
    let blocks = 4 * window;
    let data: Vec<u8> = (0..(blocks * bs) as usize)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    std::fs::write(dir.path().join("f"), &data).unwrap();
    let default = CoreConfig::default();
    let cache = BlockCache::new(
        Arc::new(Backend::new(Duration::from_micros(200))),
        BlockCacheConfig {
            block_size: bs,
            capacity_bytes: 2 * blocks * bs,
            prefetch_threads: 8,
            core: CoreConfig {
                prefetch: BuiltinPrefetch::Readahead(ReadaheadConfig {
                    max_window: window,
                    ..ReadaheadConfig::default()
                }),
                prefetch_budget: window,
                ..default
            },
        },
        None,
    );
    let fs = Fs::new(dir.path(), cache.clone());
    let e = fs.lookup(ROOT_INO, n("f")).unwrap();
    let o = fs.open(e.attr.ino, libc::O_RDONLY).unwrap();
    let mut out = Vec::new();
    while out.len() < data.len() {
        let chunk = fs.read(o.fh, out.len() as u64, bs as u32).unwrap();
        assert!(!chunk.is_empty());
        out.extend_from_slice(&chunk);
    }
    fs.release(o.fh).unwrap();
    assert!(out == data, "bytes differ");
    let c = cache.counters();
    assert_eq!(c.prefetch_dropped.load(Ordering::Relaxed), 0);
    let s = cache.stats();
    // Past the start of the stream the reader either hit or joined a prefetch in flight: a
    // miss that fetched on its own is a miss that joined nothing.
    let own = s.misses - c.deduplicated.load(Ordering::Relaxed);
    assert!(own <= 4, "{own} demand fetches of their own: {s:?}");
    assert_eq!(s.prefetch_inserted, blocks - 1, "{s:?}");
}
