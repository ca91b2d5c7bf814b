//! The compiled-module cache: a module seen before is not compiled again.
//!
//! Compiling a policy with Cranelift takes 10-60 ms on this class of machine; instantiating
//! a compiled module takes microseconds and deserializing one about 0.1 ms. So every compile
//! goes through this cache, keyed by the SHA-256 of the module's bytes (a plugin file's
//! name means nothing: the same bytes under another name hit, other bytes under the same
//! name miss):
//!
//! 1. in memory, per [`crate::PluginEngine`]: the last [`MEMORY_ENTRIES`] modules, so
//!    re-dropping a plugin into a mount, or a governor naming a candidate, costs a hash and
//!    an instantiation;
//! 2. on disk, in a directory the process owns ([`default_dir`]), one file per module under
//!    a subdirectory named by the engine's compatibility hash (wasmtime version, compiler and
//!    settings), so a later mount or `kplugfs sim` run deserializes what an earlier one
//!    compiled.
//!
//! Deserializing is `unsafe` in wasmtime: the bytes are trusted to be machine code that
//! wasmtime wrote. So the disk cache is never fed a file a user wrote: plugins dropped into
//! `.kplug/plugins/` are always wasm and always compiled or looked up by hash; only this
//! module writes into the cache directory, and it reads a file only when the directory
//! and the file are owned by the process's effective user, are not writable by group or
//! others (the directory is created 0700), are not symlinks, and the file's SHA-256 trailer
//! matches its contents (a torn or corrupted write is recompiled, never loaded). Anything
//! wrong with the disk cache only costs a compile: errors are logged at debug level and
//! the module is compiled as if the cache were empty.
//!
//! Writes happen on a background thread (niced, without fsync: the checksum catches a torn
//! file) after the module is in service, so a first load pays nothing for them. A process
//! about to exit waits for the writes it started ([`wait_for_writes`], called by the CLI
//! after every command): `kplugfs sim` over a short trace is done within milliseconds of
//! its compile, and its module would otherwise be lost with the process. The
//! directory keeps at most [`DISK_ENTRIES`] files (oldest by modification time removed
//! first).

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Modules kept in memory per engine. A mount sees a handful of plugins; 64 covers every
/// policy of the binary plus dropped plugins and their versions, at a few hundred KiB each.
pub const MEMORY_ENTRIES: usize = 64;
/// Files kept in one disk cache directory (per engine compatibility hash).
pub const DISK_ENTRIES: usize = 256;
/// The environment variable that moves the disk cache (`KPLUGFS_MODULE_CACHE=DIR`) or turns
/// it off (`KPLUGFS_MODULE_CACHE=off`).
pub const ENV: &str = "KPLUGFS_MODULE_CACHE";

/// The disk writes started by [`ModuleCache::put`] and not yet seen done, of every engine.
static WRITES: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits for the disk cache writes started so far to end, for at most `timeout`, and returns
/// how many are still under way then: a process calls it before it exits, so that what it
/// compiled is in the cache for the next one. A write is one file of a few hundred KiB to a
/// few MiB; the bound is for a disk that hangs.
pub fn wait_for_writes(timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut writes = WRITES.lock();
        writes.retain(|w| !w.is_finished());
        if writes.is_empty() || Instant::now() >= deadline {
            return writes.len();
        }
        drop(writes);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A module's content key: SHA-256 of its bytes.
pub type Key = [u8; 32];

/// Where a compile found its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Compiled now.
    Compiled,
    /// Found in this engine's memory.
    Memory,
    /// Deserialized from the disk cache.
    Disk,
}

/// The default disk cache directory: `$KPLUGFS_MODULE_CACHE` if set (`off`: none), else
/// `/var/cache/kplugfs/modules` for root, `$XDG_CACHE_HOME/kplugfs/modules` or
/// `~/.cache/kplugfs/modules` for others.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(v) if v == "off" || v.is_empty() => return None,
        Some(v) => return Some(PathBuf::from(v)),
        None => {}
    }
    let base = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/cache/kplugfs")
    } else if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("kplugfs")
    } else {
        let home = std::env::var_os("HOME")?;
        PathBuf::from(home).join(".cache/kplugfs")
    };
    Some(base.join("modules"))
}

/// The content key of `bytes`.
pub fn key(bytes: &[u8]) -> Key {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache of one engine.
pub(crate) struct ModuleCache {
    memory: Mutex<VecDeque<(Key, Module)>>,
    /// `<dir>/<engine compatibility hash>`, if a disk cache is configured.
    dir: Option<PathBuf>,
}

impl ModuleCache {
    pub(crate) fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let dir = dir.map(|d| {
            use std::hash::{Hash, Hasher};
            // The compatibility hash is only `Hash`: fold it through a SHA-256 hasher.
            struct ShaHasher(Sha256);
            impl Hasher for ShaHasher {
                fn finish(&self) -> u64 {
                    0
                }
                fn write(&mut self, bytes: &[u8]) {
                    self.0.update(bytes);
                }
            }
            let mut h = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut h);
            d.join(&hex(&h.0.finalize())[..16])
        });
        ModuleCache {
            memory: Mutex::new(VecDeque::new()),
            dir,
        }
    }

    /// The module for `key`, from memory or disk.
    pub(crate) fn get(&self, engine: &Engine, key: &Key) -> Option<(Module, Source)> {
        {
            let mut mem = self.memory.lock();
            if let Some(i) = mem.iter().position(|(k, _)| k == key) {
                let entry = mem.remove(i).expect("index in range");
                let module = entry.1.clone();
                mem.push_back(entry);
                return Some((module, Source::Memory));
            }
        }
        let dir = self.dir.as_ref()?;
        match read_trusted(dir, key) {
            Ok(Some(artifact)) => {
                // SAFETY: the bytes were written by `store` below (Module::serialize of a
                // module this engine configuration compiled) into a directory only this user
                // can write, and their checksum matches; wasmtime checks the version and
                // settings in its header as well.
                match unsafe { Module::deserialize(engine, &artifact) } {
                    Ok(m) => {
                        self.remember(*key, m.clone());
                        Some((m, Source::Disk))
                    }
                    Err(e) => {
                        tracing::debug!("module cache: {}: {e:#}", hex(key));
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("module cache: {}: {e}", hex(key));
                None
            }
        }
    }

    /// Keep a freshly compiled (and validated) module: in memory now, on disk in the
    /// background.
    pub(crate) fn put(&self, key: Key, module: &Module) {
        self.remember(key, module.clone());
        if let Some(dir) = self.dir.clone() {
            let module = module.clone();
            let spawned = std::thread::Builder::new()
                .name("kplug-modcache".into())
                .spawn(move || {
                    // Below the readers and the loads: nobody waits on this write.
                    crate::nice::set(10);
                    if let Err(e) = store(&dir, &key, &module) {
                        tracing::debug!("module cache: writing {}: {e}", hex(&key));
                    }
                });
            match spawned {
                Ok(w) => {
                    let mut writes = WRITES.lock();
                    writes.retain(|w| !w.is_finished());
                    writes.push(w);
                }
                Err(e) => tracing::debug!("module cache: no writer thread: {e}"),
            }
        }
    }

    fn remember(&self, key: Key, module: Module) {
        let mut mem = self.memory.lock();
        mem.retain(|(k, _)| *k != key);
        if mem.len() >= MEMORY_ENTRIES {
            mem.pop_front();
        }
        mem.push_back((key, module));
    }
}

/// `wasm` with a custom section carrying `text` appended: a valid module doing the same, whose
/// bytes (so its key here) no cache holds, so it is compiled, not found (tests and benches
/// of a first load).
pub fn with_custom_section(wasm: &[u8], text: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"kplugfs-test";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(text.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Whether `meta` belongs to us and nobody else can write it.
fn trusted(meta: &fs::Metadata, what: &Path) -> std::io::Result<()> {
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid || meta.mode() & 0o022 != 0 || meta.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{} is not private to uid {euid} (owner {}, mode {:o}): not used",
            what.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Creates `dir` (0700) if needed and checks that it is ours.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    trusted(&meta, dir)
}

fn file_name(dir: &Path, key: &Key) -> PathBuf {
    dir.join(format!("{}.cwasm", hex(key)))
}

/// The artifact stored for `key`, if present and trustworthy.
fn read_trusted(dir: &Path, key: &Key) -> std::io::Result<Option<Vec<u8>>> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    trusted(&meta, dir)?;
    let path = file_name(dir, key);
    let mut f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    trusted(&f.metadata()?, &path)?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    if data.len() < 32 {
        return Err(std::io::Error::other("truncated"));
    }
    let (artifact, sum) = data.split_at(data.len() - 32);
    if Sha256::digest(artifact).as_slice() != sum {
        return Err(std::io::Error::other("checksum mismatch"));
    }
    data.truncate(data.len() - 32);
    Ok(Some(data))
}

/// Writes `module` for `key`: serialized, a SHA-256 trailer, into a temporary file renamed
/// into place (readers never see a partial file), then trims the directory.
fn store(dir: &Path, key: &Key, module: &Module) -> std::io::Result<()> {
    private_dir(dir)?;
    let artifact = module.serialize().map_err(std::io::Error::other)?;
    let path = file_name(dir, key);
    let tmp = dir.join(format!(".{}.{}.tmp", hex(key), std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    // No fsync: a file torn by a crash fails its checksum and is compiled again, and an
    // fsync here (a journal commit) stalled the next plugin load's lookup in this directory
    // by up to 15 ms (docs/benchmarks.md, section 5).
    let written = f
        .write_all(&artifact)
        .and_then(|_| f.write_all(&Sha256::digest(&artifact)))
        .and_then(|_| fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    trim(dir)
}

/// Removes the oldest files beyond [`DISK_ENTRIES`].
fn trim(dir: &Path) -> std::io::Result<()> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= DISK_ENTRIES {
        return Ok(());
    }
    files.sort();
    for (_, p) in &files[..files.len() - DISK_ENTRIES] {
        let _ = fs::remove_file(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn memory_then_disk_then_refusals() {
        let tmp = std::env::temp_dir().join(format!("kplug-modcache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let e = engine();
        let bytes = wat::parse_str(WAT).unwrap();
        let k = key(&bytes);
        let m = Module::from_binary(&e, &bytes).unwrap();

        let c = ModuleCache::new(&e, Some(&tmp));
        let dir = c.dir.clone().unwrap();
        assert!(c.get(&e, &k).is_none());
        store(&dir, &k, &m).unwrap();
        c.remember(k, m);
        assert_eq!(c.get(&e, &k).unwrap().1, Source::Memory);
        let mode = fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);

        // A second cache (another process) finds it on disk.
        let c2 = ModuleCache::new(&e, Some(&tmp));
        let (m2, src) = c2.get(&e, &k).unwrap();
        assert_eq!(src, Source::Disk);
        assert!(m2.get_export("f").is_some());

        // A corrupted file is not loaded.
        let path = file_name(&dir, &k);
        let mut data = fs::read(&path).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        fs::write(&path, &data).unwrap();
        assert!(ModuleCache::new(&e, Some(&tmp)).get(&e, &k).is_none());

        // Nor one anybody else may write, even with a good checksum.
        store(&dir, &k, &m2).unwrap();
        assert!(ModuleCache::new(&e, Some(&tmp)).get(&e, &k).is_some());
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        assert!(ModuleCache::new(&e, Some(&tmp)).get(&e, &k).is_none());
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(ModuleCache::new(&e, Some(&tmp)).get(&e, &k).is_none());
        // Nor a symlink to a file elsewhere.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let other = tmp.join("elsewhere.cwasm");
        fs::rename(&path, &other).unwrap();
        std::os::unix::fs::symlink(&other, &path).unwrap();
        assert!(ModuleCache::new(&e, Some(&tmp)).get(&e, &k).is_none());
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn memory_is_bounded_and_recency_ordered() {
        let e = engine();
        let c = ModuleCache::new(&e, None);
        let m = Module::from_binary(&e, &wat::parse_str(WAT).unwrap()).unwrap();
        for i in 0..MEMORY_ENTRIES as u8 {
            c.remember([i; 32], m.clone());
        }
        assert!(c.get(&e, &[0; 32]).is_some()); // now the most recent
        c.remember([200; 32], m.clone());
        assert!(c.get(&e, &[0; 32]).is_some());
        assert!(c.get(&e, &[1; 32]).is_none());
        assert_eq!(c.memory.lock().len(), MEMORY_ENTRIES);
    }
}
