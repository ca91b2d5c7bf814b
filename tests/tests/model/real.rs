//! The system under test: a case directory inside a real mount ([`Real`]), applying each
//! step with the system calls it names (fresh opens, `O_APPEND`, `truncate(2)` by path,
//! shared `mmap` + `msync`, `O_DIRECT` with page-aligned buffers, held descriptors, plugin
//! files in `.kplug/plugins/`, whole-file writes checked at `close`) and returning errnos as
//! the model does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::ops::{BALLAST, Module, PAGE};
use crate::step::{Outcome, Reply, Side, Step};

/// The system under test: a case directory inside the mount, and the descriptors the ops
/// hold (slot for slot with [`Model::handles`]).
pub(crate) struct Real {
    pub(crate) dir: PathBuf,
    pub(crate) handles: Vec<File>,
    /// The mount point (for `.kplug/` and the ballast).
    pub(crate) mnt: PathBuf,
}

/// The module of a valid plugin, built once.
fn module_bytes(m: Module) -> &'static [u8] {
    static SDK: OnceLock<Vec<u8>> = OnceLock::new();
    static WAT: OnceLock<Vec<u8>> = OnceLock::new();
    match m {
        Module::SdkLru => SDK.get_or_init(|| kplugfs_tests::exported_policy("lru")),
        Module::WatLru => WAT.get_or_init(kplugfs_tests::wat_lru),
    }
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `close(2)` with its result (where an object store's upload ends), which dropping a
/// `File` ignores.
fn close(f: File) -> io::Result<()> {
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` was just released by `f` and is closed exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

use kplugfs_tests::read_at_full;

fn mmap_write(f: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let len = f.metadata()?.len() as usize;
    assert!(
        offset as usize + bytes.len() <= len,
        "mmap write outside file"
    );
    // SAFETY: a fresh shared mapping of `len` bytes of an open file, written inside its
    // bounds, synced and unmapped before returning; nothing else aliases it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            p.cast::<u8>().add(offset as usize),
            bytes.len(),
        );
        let synced = libc::msync(p, len, libc::MS_SYNC);
        let err = io::Error::last_os_error();
        libc::munmap(p, len);
        if synced != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// A zeroed, page-aligned buffer for `O_DIRECT`.
struct PageAligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageAligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + PAGE as usize];
        let start = raw.as_ptr().align_offset(PAGE as usize);
        Self { raw, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl Real {
    pub(crate) fn p(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn run(&mut self, step: &Step) -> io::Result<Reply> {
        match step {
            Step::Create { path, excl } => {
                let mut o = OpenOptions::new();
                o.write(true);
                if *excl {
                    o.create_new(true);
                } else {
                    o.create(true).truncate(true);
                }
                o.open(self.p(path))?;
            }
            Step::Mkdir { path } => fs::create_dir(self.p(path))?,
            Step::Write { path, offset, data } => {
                let f = OpenOptions::new().write(true).open(self.p(path))?;
                f.write_all_at(&data.bytes(), *offset)?;
            }
            Step::Append { path, data } => {
                let mut f = OpenOptions::new().append(true).open(self.p(path))?;
                f.write_all(&data.bytes())?;
            }
            Step::Read { path, offset, len } => {
                let f = File::open(self.p(path))?;
                return read_at_full(&f, *offset, *len).map(Reply::Bytes);
            }
            Step::Truncate { path, len } => {
                // truncate(2) by path: a setattr without a file handle.
                let c = cpath(&self.p(path));
                // SAFETY: a valid NUL-terminated path.
                if unsafe { libc::truncate(c.as_ptr(), *len as libc::off_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Step::Rename { from, to } => fs::rename(self.p(from), self.p(to))?,
            Step::Link { from, to } => fs::hard_link(self.p(from), self.p(to))?,
            Step::Unlink { path } => fs::remove_file(self.p(path))?,
            Step::Rmdir { path } => fs::remove_dir(self.p(path))?,
            Step::MmapWrite { path, offset, data } => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(path))?;
                mmap_write(&f, *offset, &data.bytes())?;
            }
            Step::DirectWrite { path, offset, data } => {
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(self.p(path))?;
                let mut buf = PageAligned::new(data.len);
                buf.as_mut().copy_from_slice(&data.bytes());
                let n = f.write_at(buf.as_mut(), *offset)?;
                if n != data.len {
                    return Err(io::Error::other(format!("short O_DIRECT write: {n}")));
                }
            }
            Step::DirectRead { path, offset, len } => {
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(self.p(path))?;
                let mut buf = PageAligned::new(*len);
                let n = f.read_at(buf.as_mut(), *offset)?;
                return Ok(Reply::Bytes(buf.as_mut()[..n].to_vec()));
            }
            Step::Open { path } => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(path))?;
                self.handles.push(f);
            }
            Step::Close { handle } => drop(self.handles.remove(*handle)),
            Step::HandleRead {
                handle,
                offset,
                len,
            } => return read_at_full(&self.handles[*handle], *offset, *len).map(Reply::Bytes),
            Step::HandleWrite {
                handle,
                offset,
                data,
            } => self.handles[*handle].write_all_at(&data.bytes(), *offset)?,
            Step::HandleTruncate { handle, len } => self.handles[*handle].set_len(*len)?,
            Step::Fsync { handle, data_only } => {
                if *data_only {
                    self.handles[*handle].sync_data()?
                } else {
                    self.handles[*handle].sync_all()?
                }
            }
            Step::SwapPlugin { file, module } => {
                kplugfs_tests::drop_plugin_at(&self.mnt, file, module_bytes(*module))?
            }
            Step::DropFaulty { file, kind } => {
                kplugfs_tests::drop_plugin_at(&self.mnt, file, &kind.wasm())?
            }
            Step::RemovePlugin { file } => {
                fs::remove_file(self.mnt.join(".kplug/plugins").join(file))?
            }
            Step::Churn => return fs::read(self.mnt.join(BALLAST)).map(Reply::Bytes),
            Step::Put { path, excl, data } => {
                let mut o = OpenOptions::new();
                o.write(true);
                if *excl {
                    o.create_new(true);
                } else {
                    o.create(true).truncate(true);
                }
                let mut f = o.open(self.p(path))?;
                // Uneven chunks: several FUSE writes, each at the end of the last.
                for chunk in data.bytes().chunks(4096 + 13 * usize::from(data.seed)) {
                    f.write_all(chunk)?;
                }
                close(f)?;
            }
        }
        Ok(Reply::Done)
    }
}

impl Side for Real {
    fn apply(&mut self, step: &Step) -> Outcome {
        self.run(step).map_err(errno)
    }
}
