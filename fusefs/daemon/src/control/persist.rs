//! The state directory of a mount: the plugin files dropped into its `.kplug/plugins/`,
//! and its scopes (`scopes/NAME/`: `path`, `share` and the files of their `plugins/`), kept
//! across unmounts and reboots.
//!
//! Every file `plugins/` accepts (a module that loaded, a parameter file that parsed) is
//! written here under the same name, and every `rm` removes it; the next mount of the same
//! mount point loads them again before the kernel sees the mount. Writes are atomic (a
//! temporary file in the same directory, synced, then renamed over the old one), so a crash
//! leaves the old file or the new one, never half of either. The directory is created by the
//! daemon, so it belongs to the user who mounted, with mode 0700; files are 0600.
//!
//! The default place, per mount point: `/var/lib/kplugfs/mounts/<mount point with / as _>/`
//! for root, `$XDG_STATE_HOME/kplugfs/mounts/...` (or `~/.local/state/kplugfs/mounts/...`)
//! for other users. A failed write is logged and never fails the drop: the plugin is live,
//! only its persistence is lost.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where kplugfs keeps state for the current user: `/var/lib/kplugfs` for root,
/// `$XDG_STATE_HOME/kplugfs` or `~/.local/state/kplugfs` otherwise.
pub fn state_home() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/kplugfs")
    } else if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("kplugfs")
    } else {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
        PathBuf::from(home).join(".local/state/kplugfs")
    }
}

/// The default state directory of the mount at `mountpoint` (an absolute path).
pub fn default_dir(mountpoint: &Path) -> PathBuf {
    state_home()
        .join("mounts")
        .join(mountpoint.to_string_lossy().replace('/', "_"))
}

/// One mount's state directory (or one scope's, `scopes/NAME/`); plugin files live in its
/// `plugins/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    plugins: PathBuf,
}

impl StateDir {
    /// Open (creating, mode 0700) the state directory `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let plugins = dir.join("plugins");
        for d in [dir, plugins.as_path()] {
            if !d.is_dir() {
                std::fs::create_dir_all(d)?;
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(Self {
            root: dir.to_path_buf(),
            plugins,
        })
    }

    /// The state of scope `name`: `scopes/NAME/`, created.
    pub fn scope(&self, name: &str) -> std::io::Result<StateDir> {
        let scopes = self.root.join("scopes");
        if !scopes.is_dir() {
            std::fs::create_dir_all(&scopes)?;
            std::fs::set_permissions(&scopes, std::fs::Permissions::from_mode(0o700))?;
        }
        StateDir::open(&scopes.join(name))
    }

    /// The scopes kept, by name: each one's state and its `path` and `share` as written.
    #[allow(clippy::type_complexity)]
    pub fn scopes(
        &self,
    ) -> std::io::Result<Vec<(String, StateDir, Option<String>, Option<String>)>> {
        let dir = self.root.join("scopes");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            r => r?,
        };
        for e in entries {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !e.file_type()?.is_dir() {
                continue;
            }
            let state = StateDir::open(&e.path())?;
            let (path, share) = (state.setting("path"), state.setting("share"));
            out.push((name, state, path, share));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Setting `file` of a scope's state (`path`, `share`), if kept.
    pub fn setting(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(file)).ok()
    }

    /// Keep `text` as setting `file`, atomically.
    pub fn save_setting(&self, file: &str, text: &str) -> std::io::Result<()> {
        save_in(&self.root, file, text.as_bytes())
    }

    /// Forget scope `name` and all kept for it (absent is fine).
    pub fn remove_scope(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.root.join("scopes").join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The directory holding the plugin files.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins
    }

    /// Every kept plugin file, parameter files first (so a module loads with its
    /// parameters), then modules, each group by name.
    pub fn files(&self) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.plugins)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            // Temporary files of an interrupted write start with a dot.
            if name.starts_with('.') || !e.file_type()?.is_file() {
                continue;
            }
            out.push((name, std::fs::read(e.path())?));
        }
        out.sort_by_key(|(n, _)| (!n.ends_with(".params"), n.clone()));
        Ok(out)
    }

    /// Keep `bytes` as plugin file `name`, atomically. A file kept with the same bytes (the
    /// same plugin dropped again) is left as it is: only [`save_in`] writes here, and it
    /// renames a file into place once synced, so a kept file is already durable, and the
    /// write and the two syncs a user's `close()` would wait on buy nothing.
    pub fn save(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.plugins.join(name);
        let same = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
            && std::fs::read(&path).is_ok_and(|kept| kept == bytes);
        if same {
            return Ok(());
        }
        save_in(&self.plugins, name, bytes)
    }

    /// Forget plugin file `name` (absent is fine).
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.plugins.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Write `bytes` as `dir/name` atomically: a temporary file synced, renamed over the old one.
fn save_in(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    // The rename is durable once the directory is.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_lists_params_first_and_removes() {
        let root = tempfile::tempdir().unwrap();
        let s = StateDir::open(&root.path().join("m")).unwrap();
        let mode = std::fs::metadata(root.path().join("m"))
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o700);
        s.save("b.wasm", b"module").unwrap();
        s.save("b.params", b"k=v").unwrap();
        s.save("a.wasm", b"old").unwrap();
        s.save("a.wasm", b"new").unwrap();
        let names: Vec<_> = s.files().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b.params", "a.wasm", "b.wasm"]);
        assert_eq!(
            std::fs::read(s.plugins_dir().join("a.wasm")).unwrap(),
            b"new"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(s.plugins_dir()).unwrap().count(), 3);
        s.remove("a.wasm").unwrap();
        s.remove("a.wasm").unwrap();
        assert_eq!(s.files().unwrap().len(), 2);
    }

    /// The same bytes again: the kept file is left alone (same inode, no write, no sync);
    /// other bytes, even of the same length, replace it.
    #[test]
    fn saving_the_same_bytes_again_writes_nothing() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let s = StateDir::open(&root.path().join("m")).unwrap();
        let inode = || {
            std::fs::metadata(s.plugins_dir().join("p.wasm"))
                .unwrap()
                .ino()
        };
        s.save("p.wasm", b"module one").unwrap();
        let first = inode();
        s.save("p.wasm", b"module one").unwrap();
        assert_eq!(inode(), first, "the same bytes: left as kept");
        s.save("p.wasm", b"module two").unwrap();
        assert_ne!(inode(), first, "other bytes of the same length: written");
        assert_eq!(
            std::fs::read(s.plugins_dir().join("p.wasm")).unwrap(),
            b"module two"
        );
        s.save("p.wasm", b"module").unwrap();
        assert_eq!(
            std::fs::read(s.plugins_dir().join("p.wasm")).unwrap(),
            b"module"
        );
    }

    #[test]
    fn default_dir_flattens_the_mountpoint() {
        let d = default_dir(Path::new("/mnt/data"));
        assert_eq!(d.file_name().unwrap(), "_mnt_data");
        assert!(d.parent().unwrap().ends_with("kplugfs/mounts"));
    }
}
