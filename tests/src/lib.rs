//! Helpers shared by the end-to-end tests: finding the `kplugfs` binary and mounting a
//! scratch backing directory that is unmounted again when the guard drops; `s3` mounts the
//! real S3 server's buckets.

pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod chaos;
pub mod fixtures;

/// The `kplugfs` binary built next to the running test (`KPLUGFS_BIN` overrides).
pub fn kplugfs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KPLUGFS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/kplugfs
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("kplugfs"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p kplugfs` first",
        bin.display()
    );
    bin
}

/// Run `kplugfs ARGS...` and return its output.
pub fn kplugfs(args: &[&str]) -> Output {
    Command::new(kplugfs_bin())
        .args(args)
        .output()
        .expect("run kplugfs")
}

/// True when `path` is a kplugfs mount point.
pub fn is_kplugfs_mount(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| {
        let mut parts = l.split(" - ");
        let left = parts.next().unwrap_or("");
        let right = parts.next().unwrap_or("");
        left.split(' ').nth(4) == Some(path.to_str().unwrap_or(""))
            && right.starts_with("fuse.kplugfs ")
    })
}

/// Where mount(8) looks for the helper of `fuse.kplugfs` (libmount's search path starts
/// with /sbin).
pub const MOUNT_HELPER: &str = "/sbin/mount.fuse.kplugfs";

/// While alive, the path it was made for is a symlink to the binary under test (or absent);
/// dropping it puts back the symlink that was there. It never touches a file that is not a
/// symlink.
pub struct BinLink {
    at: PathBuf,
    previous: Option<PathBuf>,
    changed: bool,
}

impl BinLink {
    /// `at` links to the binary under test (`link`) or is absent (`!link`).
    pub fn set(at: &str, link: bool) -> Self {
        let at = PathBuf::from(at);
        let bin = kplugfs_bin();
        let previous = std::fs::read_link(&at).ok();
        if link && previous.as_deref() == Some(bin.as_path()) {
            return Self {
                at,
                previous: None,
                changed: false,
            };
        }
        if at.symlink_metadata().is_ok() {
            assert!(
                previous.is_some(),
                "{} exists and is not a symlink: not replacing it",
                at.display()
            );
            std::fs::remove_file(&at).expect("remove the previous link");
        }
        if link {
            std::os::unix::fs::symlink(&bin, &at).expect("link the binary under test");
        }
        Self {
            at,
            previous,
            changed: true,
        }
    }
}

impl Drop for BinLink {
    fn drop(&mut self) {
        if !self.changed {
            return;
        }
        let _ = std::fs::remove_file(&self.at);
        if let Some(prev) = &self.previous {
            let _ = std::os::unix::fs::symlink(prev, &self.at);
        }
    }
}

/// While alive, `/sbin/mount.fuse.kplugfs` is a symlink to the binary under test, so a real
/// `mount` command runs it whether or not scripts/setup.sh installed one (and whichever
/// build it pointed to); or, made with [`MountHelper::absent`], there is none. Dropping it
/// puts back what was there. One at a time per test process (it holds a lock).
pub struct MountHelper {
    _link: BinLink,
    _lock: std::sync::MutexGuard<'static, ()>,
}

static HELPER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl MountHelper {
    /// No helper link while alive: mount(8) falls back to fuse3's `mount.fuse`.
    pub fn absent() -> Self {
        let lock = HELPER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Self {
            _link: BinLink::set(MOUNT_HELPER, false),
            _lock: lock,
        }
    }

    /// Install the helper link (see [`MountHelper`]).
    pub fn install() -> Self {
        let lock = HELPER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Self {
            _link: BinLink::set(MOUNT_HELPER, true),
            _lock: lock,
        }
    }
}

/// A WAT probe that publishes figure `name` = `value` after each batch of events it gets
/// (and reports nothing).
pub fn publishing_probe(name: &str, value: f64) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "kplug" "publish" (func $publish (param i32 i32 f64) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 32768) "{name}")
             (func (export "kplug_abi_version") (result i32) i32.const 0x10005)
             (func (export "kplug_probe_buf") (result i32) i32.const 0)
             (func (export "kplug_probe_events") (param i32) (result i32)
               (drop (call $publish (i32.const 32768) (i32.const {len}) (f64.const {value:?})))
               i32.const 0)
             (func (export "kplug_probe_report") (result i64) i64.const 0))"#,
        len = name.len()
    ))
    .expect("probe module")
}

/// One step of xorshift64 (Marsaglia): the reproducible random stream the readers of the
/// mount tests and benches draw offsets from. `x` must not start at 0.
pub fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `len` bytes of a fixed pseudo-random pattern, different for each `seed`: file contents
/// a test writes to the backing directory and checks every read against.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 11) as u8)
        .collect()
}

/// Run `sh -c SCRIPT` as nobody:nogroup with no supplementary groups (so without any
/// capability): another user of the mount.
pub fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["sh", "-c", script])
        .output()
        .expect("run setpriv")
}

/// Run `mount ARGS...` (util-linux's mount(8)) and return its output.
pub fn mount_cmd(args: &[&str]) -> Output {
    Command::new("mount")
        .args(args)
        .output()
        .expect("run mount")
}

/// A mounted scratch directory: `backing` exposed at `mnt`.
pub struct TestMount {
    /// Holds the scratch directories alive.
    pub root: tempfile::TempDir,
    /// The backing directory.
    pub backing: PathBuf,
    /// The mount point.
    pub mnt: PathBuf,
}

impl TestMount {
    /// Mount a new scratch directory with extra `kplugfs mount` options.
    pub fn new(extra: &[&str]) -> Self {
        Self::with_backing(extra, |_| {})
    }

    /// Like [`TestMount::new`], filling the backing directory first.
    pub fn with_backing(extra: &[&str], fill: impl FnOnce(&Path)) -> Self {
        Self::with_backing_env(extra, &[], fill)
    }

    /// [`with_backing`](Self::with_backing) with variables `env` set for the daemon
    /// (`TMPDIR`, say).
    pub fn with_backing_env(
        extra: &[&str],
        env: &[(&str, &Path)],
        fill: impl FnOnce(&Path),
    ) -> Self {
        let root = tempfile::Builder::new()
            .prefix("kplugfs-test")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let backing = root.path().join("backing");
        let mnt = root.path().join("mnt");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        fill(&backing);
        let m = Self { root, backing, mnt };
        let out = m.mount_command(extra, env);
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            is_kplugfs_mount(&m.mnt),
            "mount returned but {} is not mounted",
            m.mnt.display()
        );
        live_mounts::add(&m.mnt);
        m
    }

    /// Runs `kplugfs mount` of this mount's directories again (after an unmount), with
    /// `extra` options and the scratch history database and state directory as at the first
    /// mount; its output, unchecked.
    pub fn mount_again(&self, extra: &[&str]) -> Output {
        self.mount_command(extra, &[])
    }

    /// `kplugfs mount BACKING MNT EXTRA...`, keeping the history database (on by default) and
    /// the plugins it keeps in the scratch directory, not under /var/lib/kplugfs, unless
    /// `extra` chooses.
    fn mount_command(&self, extra: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut args = vec![
            "mount",
            self.backing.to_str().unwrap(),
            self.mnt.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let history = self.root.path().join("history.db");
        if !extra
            .iter()
            .any(|a| a.starts_with("--history-db") || a.starts_with("--history-period"))
        {
            args.extend_from_slice(&["--history-db", history.to_str().unwrap()]);
        }
        let state = self.root.path().join("state");
        if !extra.iter().any(|a| {
            a.starts_with("--state-dir")
                || a.starts_with("--no-keep-plugins")
                || a.starts_with("-o")
        }) {
            args.extend_from_slice(&["--state-dir", state.to_str().unwrap()]);
        }
        Command::new(kplugfs_bin())
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
            .output()
            .expect("run kplugfs")
    }

    /// Path inside the mount.
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Path inside the backing directory.
    pub fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if is_kplugfs_mount(&self.mnt) {
            let out = kplugfs(&["umount", self.mnt.to_str().unwrap()]);
            if !out.status.success() {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        live_mounts::remove(&self.mnt);
    }
}

/// The mounts of this test process not yet dropped, unmounted when the process exits: a test
/// that fails while its threads still hold its mount (readers looping on an `Arc`) would
/// otherwise leave the daemon running after the test binary is gone, busy and mounted,
/// under the next tests and benchmarks on the machine.
mod live_mounts {
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, Once};

    static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// The list, even if a test panicked while holding it.
    fn live() -> MutexGuard<'static, Vec<PathBuf>> {
        LIVE.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(mnt: &Path) {
        static AT_EXIT: Once = Once::new();
        // SAFETY: registers a plain `extern "C"` function, once.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(unmount_leftovers);
        });
        live().push(mnt.to_path_buf());
    }

    pub fn remove(mnt: &Path) {
        live().retain(|m| m != mnt);
    }

    extern "C" fn unmount_leftovers() {
        let left = std::mem::take(&mut *live());
        for mnt in left {
            if super::is_kplugfs_mount(&mnt) {
                eprintln!("unmounting {} left mounted by a failed test", mnt.display());
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&mnt)
                    .status();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Plugins through `MOUNT/.kplug/` (shared by plugins.rs, model/ and trace_reads.rs)
// ---------------------------------------------------------------------------------------

/// The parsed `MOUNT/.kplug/status`.
pub fn status(m: &TestMount) -> serde_json::Value {
    let text = std::fs::read(m.m(".kplug/status")).expect("read .kplug/status");
    serde_json::from_slice(&text).expect(".kplug/status is JSON")
}

/// The policy serving `role` (`eviction`, `admission`, `prefetch`) per the status.
pub fn active(m: &TestMount, role: &str) -> String {
    status(m)["active"][role]
        .as_str()
        .expect("active role")
        .to_string()
}

/// The status entry of plugin `name`.
pub fn plugin<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["plugins"]
        .as_array()
        .expect("plugins array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {st}"))
}

/// The truth `.kplug/status` must tell, whatever happened before (shared by lifecycle.rs and
/// plugins.rs): every plugin serving a role is accounted for by a file (its own instance, or
/// a candidate of its governor), the governor named is a file's active governor, a disabled
/// or loading file serves nothing, no two files share a name, and a candidate shown active
/// serves its role.
pub fn check_status_truth(st: &serde_json::Value) {
    let files = st["plugins"].as_array().expect("plugins[]");
    for role in ["eviction", "admission", "prefetch"] {
        let serving = st["active"][role].as_str().unwrap();
        if serving.starts_with("builtin:") {
            assert!(
                files
                    .iter()
                    .all(|f| !f["active_roles"].as_array().unwrap().contains(&role.into())),
                "{role} is built-in, yet a file claims it: {st:#}"
            );
            continue;
        }
        let owners: Vec<&serde_json::Value> = files
            .iter()
            .filter(|f| f["active_roles"].as_array().unwrap().contains(&role.into()))
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "{role} ({serving}) has no single file: {st:#}"
        );
    }
    let mut names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "two files share a name: {st:#}");
    for f in files {
        let serves = !f["active_roles"].as_array().unwrap().is_empty();
        match f["state"].as_str().unwrap() {
            "disabled" | "loading" => assert!(!serves, "{f}"),
            // A failed governor's followed candidate keeps serving, owned by its file.
            "failed" => assert!(!serves || f["governor"] == true, "{f}"),
            _ => {}
        }
    }
    match st["active"]["governor"].as_str() {
        Some(g) => assert!(
            files
                .iter()
                .any(|f| f["name"] == g && f["governor"] == true && f["state"] == "active"),
            "governor {g} is no active governor file: {st:#}"
        ),
        None => assert!(
            st["active"]["candidates"].as_array().unwrap().is_empty(),
            "{st:#}"
        ),
    }
    for c in st["active"]["candidates"].as_array().unwrap() {
        let role = c["role"].as_str().unwrap();
        let name = c["spec"].as_str().unwrap().split(':').next().unwrap();
        if c["active"] == true {
            assert!(c["error"].is_null(), "{c}");
            assert_eq!(st["active"][role], name, "{c} is active: {st:#}");
        }
    }
}

/// Write `bytes` as `.kplug/plugins/NAME` and return the result of close() (where the
/// daemon loads the module: EINVAL when it refuses it).
pub fn drop_plugin(m: &TestMount, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    drop_plugin_at(&m.mnt, name, bytes)
}

/// [`drop_plugin`] for a mount point given by path.
pub fn drop_plugin_at(mnt: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    drop_plugin_in(&mnt.join(".kplug/plugins"), name, bytes)
}

/// Write `bytes` as `dir/name` and close it, returning the error of `close()` (a refused
/// plugin's EINVAL): `dir` is a `plugins/` directory, the mount's or a scope's.
pub fn drop_plugin_in(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name))?;
    f.write_all(bytes)?;
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` was just released by `f` and is closed exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The hand-written WAT LRU eviction plugin (no SDK).
pub fn wat_lru() -> Vec<u8> {
    wat::parse_file(repo_root().join("policies/lru-wat/lru.wat")).expect("lru.wat")
}

/// The built-in cache policies of the binary: `(name, roles)` per `kplugfs policy list`
/// (transforms, which serve views, left out).
pub fn policy_list() -> Vec<(String, Vec<String>)> {
    let out = kplugfs(&["policy", "list"]);
    assert!(
        out.status.success(),
        "policy list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let name = cols.next()?.to_string();
            let roles: Vec<String> = cols.next()?.split(',').map(str::to_string).collect();
            // Transforms serve views, not the cache (tests/tests/views.rs).
            (roles != ["transform"]).then_some((name, roles))
        })
        .collect()
}

/// The module of built-in policy `name`, through `kplugfs policy export`.
pub fn exported_policy(name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kplugfs(&["policy", "export", name, dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "policy export {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.path().join(format!("{name}.wasm"))).expect("exported module")
}

/// How a hostile eviction plugin misbehaves at its first `kplug_evict_victim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Never returns (hits the CPU-time deadline).
    Loop,
    /// Names a block that is not resident.
    Liar,
    /// Traps (`unreachable`).
    Trap,
}

impl Hostile {
    /// Every kind.
    pub const ALL: [Hostile; 3] = [Hostile::Loop, Hostile::Liar, Hostile::Trap];

    /// A file name for it in `.kplug/plugins/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Hostile::Loop => "loop.wasm",
            Hostile::Liar => "liar.wasm",
            Hostile::Trap => "trap.wasm",
        }
    }

    /// A word the plugin's status error contains (lowercase).
    pub fn reason(self) -> &'static str {
        match self {
            Hostile::Loop => "deadline",
            Hostile::Liar => "not a resident block",
            Hostile::Trap => "trap",
        }
    }

    /// A valid eviction module (it loads) whose victim hook misbehaves.
    pub fn wasm(self) -> Vec<u8> {
        let victim = match self {
            Hostile::Loop => {
                r#"(func (export "kplug_evict_victim") (result i64) (loop (br 0)) i64.const 0)"#
            }
            Hostile::Liar => {
                r#"(func (export "kplug_evict_victim") (result i64) i64.const 0x7fffffffffff)"#
            }
            Hostile::Trap => r#"(func (export "kplug_evict_victim") (result i64) unreachable)"#,
        };
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1)
                 (func (export "kplug_abi_version") (result i32) i32.const 0x10000)
                 (func (export "kplug_evict_insert") (param i64))
                 (func (export "kplug_evict_access") (param i64))
                 (func (export "kplug_evict_remove") (param i64))
                 {victim})"#
        ))
        .expect("hostile module")
    }
}

/// Read up to `len` bytes of `f` at `offset`, looping over short reads; stops at end of file.
pub fn read_at_full(f: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// A module doing the same under bytes no mount has seen (compiled, not found in a cache).
pub use kplug_engine::modcache::with_custom_section;
