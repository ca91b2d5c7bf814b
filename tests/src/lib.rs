//! Helpers shared by the end-to-end tests: finding the `kplugfs` binary and mounting a
//! scratch backing directory that is unmounted again when the guard drops.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        let root = tempfile::Builder::new()
            .prefix("kplugfs-test")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let backing = root.path().join("backing");
        let mnt = root.path().join("mnt");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        fill(&backing);
        let mut args = vec!["mount", backing.to_str().unwrap(), mnt.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = kplugfs(&args);
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            is_kplugfs_mount(&mnt),
            "mount returned but {} is not mounted",
            mnt.display()
        );
        Self { root, backing, mnt }
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
    }
}
