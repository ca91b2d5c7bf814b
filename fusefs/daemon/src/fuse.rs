//! The FUSE adapter: a thin translation between fuser's callbacks and [`KplugFs`].
//!
//! Every callback converts fuser's types to plain ones, calls the core, and replies; errors
//! go through [`reply_err!`], which logs at the error's level and replies with its errno. No
//! filesystem logic lives here, so everything that matters is tested without FUSE. fuser types
//! never leave this file.
//!
//! Each callback starts with `let g = self.metrics.start(FuseOp::..).by(..)`: the guard times the
//! request until the callback returns (after the reply) and [`reply_err!`] marks it failed,
//! which is all the monitoring plane needs from this file (see `metrics.rs`); `.by(uid, pid)`,
//! `.on(ino)` (the inode the request names: a name's directory for lookup, create, unlink...)
//! and, for reads and writes, `g.at(ino, offset, len)` give probes (ABI 1.5) the request.

use std::ffi::OsStr;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::error::{FsError, Level};
use crate::fs::coherence;
use crate::fs::{
    Attr, Caller, DirPlusSink, DirSink, Entry, FileKind, KplugFs, Opened, SetAttr, SetTime,
    XattrReply,
};
use crate::monitor::metrics::{FuseMetrics, FuseOp};

/// Log an error at its level, count it on the request's guard and reply with its errno.
macro_rules! reply_err {
    ($reply:expr, $guard:expr, $err:expr) => {{
        let err: FsError = $err;
        $guard.fail();
        $guard.errno(err.errno());
        let op = $guard.op().name();
        match err.level() {
            Level::Debug => tracing::debug!(op, "{err}"),
            Level::Warn => tracing::warn!(op, "{err}"),
        }
        $reply.error(Errno::from_i32(err.errno()))
    }};
}

/// The fuser `Filesystem` over a shared core.
#[derive(Debug)]
pub struct FuseAdapter {
    fs: Arc<KplugFs>,
    pages: Arc<OnceLock<PageInvalidator>>,
    metrics: Arc<FuseMetrics>,
}

impl FuseAdapter {
    /// Wrap a core; requests are counted in the core's [`KplugFs::fuse_metrics`].
    pub fn new(fs: Arc<KplugFs>) -> Self {
        Self {
            metrics: fs.fuse_metrics().clone(),
            fs,
            pages: Arc::default(),
        }
    }

    /// Where the session's notifier goes once the session exists (see [`PageSlot`]).
    pub fn page_slot(&self) -> PageSlot {
        PageSlot(self.pages.clone())
    }
}

/// The adapter's handle on the kernel's page cache, connected after the session is created
/// (the notifier comes from the session, which owns the adapter).
#[derive(Debug, Clone)]
pub struct PageSlot(Arc<OnceLock<PageInvalidator>>);

impl PageSlot {
    /// Start the invalidation thread on the session's notifier.
    pub fn connect(&self, notifier: fuser::Notifier) -> std::io::Result<()> {
        let inv = PageInvalidator::spawn(notifier)?;
        let _ = self.0.set(inv);
        Ok(())
    }
}

/// How long a write's reply waits for its pages to be dropped. The drop blocks only on a
/// page locked by a read in flight; if every worker thread is busy that read may wait for a
/// free thread, so the wait is bounded instead of risking a deadlock.
const INVALIDATE_WAIT: Duration = Duration::from_millis(200);

struct InvalJob {
    ino: u64,
    range: Range<u64>,
    done: Option<mpsc::Sender<()>>,
}

/// Sends FUSE_NOTIFY_INVAL_INODE from one dedicated thread (a notification runs the
/// invalidation synchronously in the kernel and may wait for page locks).
#[derive(Debug)]
struct PageInvalidator {
    tx: mpsc::Sender<InvalJob>,
}

impl PageInvalidator {
    fn spawn(notifier: fuser::Notifier) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<InvalJob>();
        std::thread::Builder::new()
            .name("kplugfs-inval".into())
            .spawn(move || {
                for job in rx {
                    let len = (job.range.end - job.range.start) as i64;
                    if let Err(e) =
                        notifier.inval_inode(INodeNo(job.ino), job.range.start as i64, len)
                    {
                        tracing::warn!(ino = job.ino, "page-cache invalidation failed: {e}");
                    }
                    if let Some(done) = job.done {
                        let _ = done.send(());
                    }
                }
            })?;
        Ok(Self { tx })
    }

    fn send(&self, ino: u64, range: Range<u64>, done: Option<mpsc::Sender<()>>) {
        let _ = self.tx.send(InvalJob { ino, range, done });
    }

    /// Drop the whole pages of `range` now (bounded wait); return the partial edge pages,
    /// to drop after the reply (the kernel may hold one of them locked until then).
    fn drop_before_reply(&self, ino: u64, range: Range<u64>) -> Vec<Range<u64>> {
        let (whole, edges) = coherence::split_pages(range, coherence::page_size());
        if !whole.is_empty() {
            let (done, wait) = mpsc::channel();
            self.send(ino, whole, Some(done));
            if wait.recv_timeout(INVALIDATE_WAIT).is_err() {
                tracing::debug!(ino, "page-cache invalidation still waiting; replying");
            }
        }
        edges
    }
}

/// The kernel's caching of an opened file: pages kept across opens while the file is
/// unchanged, or none at all (virtual files change size behind the kernel's back, so their
/// reads must never be cut at a stale size or answered from the page cache).
fn fopen_flags(o: &Opened) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if o.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        flags |= FopenFlags::FOPEN_DIRECT_IO;
    }
    flags
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn reply_entry(reply: ReplyEntry, e: &Entry) {
    reply.entry(&e.ttl, &attr(&e.attr), Generation(0));
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(t),
    })
}

struct DirReply(ReplyDirectory);

impl DirSink for DirReply {
    fn add(&mut self, ino: u64, offset: u64, k: FileKind, name: &OsStr) -> bool {
        self.0.add(INodeNo(ino), offset, kind(k), name)
    }
}

struct DirPlusReply(ReplyDirectoryPlus);

impl DirPlusSink for DirPlusReply {
    fn add(&mut self, offset: u64, name: &OsStr, e: &Entry) -> bool {
        self.0.add(
            INodeNo(e.attr.ino),
            offset,
            name,
            &e.ttl,
            &attr(&e.attr),
            Generation(0),
        )
    }
}

fn reply_xattr(reply: ReplyXattr, r: XattrReply) {
    match r {
        XattrReply::Size(n) => reply.size(n),
        XattrReply::Data(d) => reply.data(&d),
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Ask for what the kernel offers among: readdirplus (one round trip lists and stats),
        // parallel directory operations, and cached symlinks. Refused flags are harmless.
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS
            // The mount drops set-user/group-ID bits itself on write and truncate (see
            // `Tree::kill_suidgid`): the kernel then marks inodes without them "nosec" and
            // stops sending a getxattr("security.capability") before every write, half of
            // a small write's round trips.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        let _ = config.add_capabilities(wanted & config.capabilities());
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut g = self
            .metrics
            .start(FuseOp::Lookup)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self.fs.lookup(parent.0, name) {
            Ok(e) => reply_entry(reply, &e),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64) {
        let _g = self
            .metrics
            .start(FuseOp::Forget)
            .by(req.uid(), req.pid())
            .on(ino.0);
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut g = self
            .metrics
            .start(FuseOp::Getattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.getattr(ino.0, fh.map(|f| f.0)) {
            Ok(a) => reply.attr(&self.fs_ttl(), &attr(&a)),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Setattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
            fh: fh.map(|f| f.0),
            // With FUSE_HANDLE_KILLPRIV_V2 the kernel flags such a truncate
            // (FATTR_KILL_SUIDGID), but fuser does not pass the flag on: a caller other than
            // root stands for one without CAP_FSETID.
            kill_suidgid: size.is_some() && req.uid() != 0,
        };
        match self.fs.setattr(ino.0, set) {
            Ok(a) => reply.attr(&self.fs_ttl(), &attr(&a)),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let mut g = self
            .metrics
            .start(FuseOp::Readlink)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Mknod)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self
            .fs
            .mknod(parent.0, name, mode, umask, rdev, caller(req))
        {
            Ok(e) => reply_entry(reply, &e),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Mkdir)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self.fs.mkdir(parent.0, name, mode, umask, caller(req)) {
            Ok(e) => reply_entry(reply, &e),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self
            .metrics
            .start(FuseOp::Unlink)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self.fs.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self
            .metrics
            .start(FuseOp::Rmdir)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self.fs.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Symlink)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self.fs.symlink(parent.0, link_name, target, caller(req)) {
            Ok(e) => reply_entry(reply, &e),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Rename)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self
            .fs
            .rename(parent.0, name, newparent.0, newname, flags.bits())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Link)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.link(ino.0, newparent.0, newname) {
            Ok(e) => reply_entry(reply, &e),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut g = self
            .metrics
            .start(FuseOp::Open)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.open(ino.0, flags.0, caller(req)) {
            Ok(o) => reply.opened(FileHandle(o.fh), fopen_flags(&o)),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Read)
            .by(req.uid(), req.pid())
            .on(ino.0);
        g.at(ino.0, offset, size as u64);
        match self.fs.read(fh.0, offset, size) {
            Ok(d) => {
                g.bytes(d.len() as u64);
                reply.data(&d)
            }
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Write)
            .by(req.uid(), req.pid())
            .on(ino.0);
        g.at(ino.0, offset, data.len() as u64);
        let from_cache = write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Err(e) = self.fs.kill_suidgid(fh.0)
        {
            return reply_err!(reply, g, e);
        }
        match self.fs.write_through(fh.0, offset, data, from_cache) {
            Ok(w) => {
                g.bytes(w.bytes as u64);
                let inval = self.pages.get().zip(w.stale_pages);
                let edges = inval.map(|(p, r)| (p, p.drop_before_reply(ino.0, r)));
                reply.written(w.bytes);
                if let Some((p, edges)) = edges {
                    for r in edges {
                        p.send(ino.0, r, None);
                    }
                }
            }
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Flush)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.flush(fh.0, req.pid()) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Release)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.release(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Fsync)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.fsync(fh.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut g = self
            .metrics
            .start(FuseOp::Opendir)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Readdir)
            .by(req.uid(), req.pid())
            .on(ino.0);
        let mut sink = DirReply(reply);
        match self.fs.readdir(ino.0, fh.0, offset, &mut sink) {
            Ok(()) => sink.0.ok(),
            Err(e) => reply_err!(sink.0, g, e),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Readdirplus)
            .by(req.uid(), req.pid())
            .on(ino.0);
        let mut sink = DirPlusReply(reply);
        match self.fs.readdirplus(ino.0, fh.0, offset, &mut sink) {
            Ok(()) => sink.0.ok(),
            Err(e) => reply_err!(sink.0, g, e),
        }
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Releasedir)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.releasedir(fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Fsyncdir)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.fsyncdir(fh.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let mut g = self
            .metrics
            .start(FuseOp::Statfs)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Setxattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.setxattr(ino.0, name, value, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let mut g = self
            .metrics
            .start(FuseOp::Getxattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.getxattr(ino.0, name, size) {
            Ok(r) => reply_xattr(reply, r),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut g = self
            .metrics
            .start(FuseOp::Listxattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.listxattr(ino.0, size) {
            Ok(r) => reply_xattr(reply, r),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut g = self
            .metrics
            .start(FuseOp::Removexattr)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.removexattr(ino.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let mut g = self
            .metrics
            .start(FuseOp::Access)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.access(ino.0, mask.bits(), caller(req)) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Create)
            .by(req.uid(), req.pid())
            .on(parent.0);
        match self
            .fs
            .create(parent.0, name, mode, umask, flags, caller(req))
        {
            Ok((e, o)) => reply.created(
                &e.ttl,
                &attr(&e.attr),
                Generation(0),
                FileHandle(o.fh),
                fopen_flags(&o),
            ),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Fallocate)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.fallocate(fh.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::Lseek)
            .by(req.uid(), req.pid())
            .on(ino.0);
        match self.fs.lseek(fh.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply_err!(reply, g, e),
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let mut g = self
            .metrics
            .start(FuseOp::CopyFileRange)
            .by(req.uid(), req.pid())
            .on(ino_in.0);
        g.at(ino_in.0, offset_in, len);
        match self.fs.copy_file_range(
            fh_in.0,
            offset_in,
            fh_out.0,
            offset_out,
            len,
            flags.bits() as u32,
        ) {
            Ok(n) => reply.written(n),
            Err(e) => reply_err!(reply, g, e),
        }
    }
}

impl FuseAdapter {
    fn fs_ttl(&self) -> std::time::Duration {
        self.fs.attr_ttl()
    }
}
