//! Comparing the whole state after every step (see the crate doc): listings, bytes through
//! fresh opens and held descriptors, sizes, link counts and inode identity against the
//! model ([`check`]), and on the plugin mount `.kplug/plugins/` and `.kplug/status` against
//! the model's [`Plugins`] ([`check_plugins`]).

use std::collections::{BTreeMap, HashMap, btree_map};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::model::{Model, Plugins};
use crate::real::Real;
use kplugfs_tests::read_at_full;

/// Describe how two byte strings differ (lengths, first differing offset, a few bytes).
pub(crate) fn diff(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let show = |b: &[u8]| format!("{:?}", &b[at.min(b.len())..(at + 8).min(b.len())]);
    Some(format!(
        "want {} bytes, got {}; first difference at {at}: want {}.., got {}..",
        want.len(),
        got.len(),
        show(want),
        show(got)
    ))
}

pub(crate) fn listing(dir: &Path) -> Result<BTreeMap<String, bool>, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
    let mut out = BTreeMap::new();
    for e in rd {
        let e = e.map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
        let is_dir = e.file_type().map_err(|e| e.to_string())?.is_dir();
        out.insert(e.file_name().to_string_lossy().into_owned(), is_dir);
    }
    Ok(out)
}

/// Descriptors opened by [`check`] on every file it sees and held to the end of the case,
/// by model inode.
pub(crate) type Watchers = BTreeMap<u64, File>;

/// Compare the mount and the backing directory with the model; see the module doc.
pub(crate) fn check(
    model: &Model,
    real: &Real,
    backing: &Path,
    watch: &mut Watchers,
) -> Result<(), String> {
    for dir in model.dirs() {
        let want = model.children(&dir);
        let got = listing(&real.p(&dir))?;
        if got != want {
            return Err(format!(
                "mount listing of {dir:?}: want {want:?}, got {got:?}"
            ));
        }
        let got = listing(&backing.join(&dir))?;
        if got != want {
            return Err(format!(
                "backing listing of {dir:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    // model inode -> (mount st_ino, backing st_ino)
    let mut inos: HashMap<u64, (u64, u64)> = HashMap::new();
    for path in model.file_paths() {
        let ino = model.ino_of(&path).unwrap();
        let want = &model.files[&ino];
        let got = fs::read(real.p(&path)).map_err(|e| format!("reopen {path}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("{path} read through a fresh open: {d}"));
        }
        let got = fs::read(backing.join(&path)).map_err(|e| format!("backing {path}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("backing file {path}: {d}"));
        }
        let md = fs::metadata(real.p(&path)).map_err(|e| format!("stat {path}: {e}"))?;
        let bmd = fs::metadata(backing.join(&path)).map_err(|e| e.to_string())?;
        if md.len() != want.len() as u64 {
            return Err(format!("{path}: st_size {} want {}", md.len(), want.len()));
        }
        if md.nlink() != model.nlink(ino) {
            return Err(format!(
                "{path}: st_nlink {} want {}",
                md.nlink(),
                model.nlink(ino)
            ));
        }
        let pair = (md.ino(), bmd.ino());
        if *inos.entry(ino).or_insert(pair) != pair {
            return Err(format!(
                "{path}: inode numbers {pair:?} differ from its other names"
            ));
        }
        if let btree_map::Entry::Vacant(slot) = watch.entry(ino) {
            slot.insert(File::open(real.p(&path)).map_err(|e| format!("open {path}: {e}"))?);
        }
    }
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (ino, (m, _)) in &inos {
        if let Some(other) = seen.insert(*m, *ino) {
            return Err(format!(
                "model files {other} and {ino} share mount inode {m}"
            ));
        }
    }
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (ino, (_, b)) in &inos {
        if let Some(other) = seen.insert(*b, *ino) {
            return Err(format!(
                "model files {other} and {ino} share backing inode {b}"
            ));
        }
    }
    let held = watch
        .iter()
        .map(|(ino, f)| (format!("watcher of file {ino}"), *ino, f))
        .chain(
            real.handles
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("handle {i}"), model.handles[i], f)),
        );
    for (what, ino, f) in held {
        let want = &model.files[&ino];
        let got = read_at_full(f, 0, want.len() + 1).map_err(|e| format!("{what}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("{what} (held open): {d}"));
        }
        let size = f.metadata().map_err(|e| e.to_string())?.len();
        if size != want.len() as u64 {
            return Err(format!("{what}: fstat size {size} want {}", want.len()));
        }
    }
    Ok(())
}

/// Compare `.kplug/plugins/` and the status with [`Plugins`]. A hostile plugin the model
/// still has serving may have met its first eviction already: then it must show as failed
/// with exactly one fault (and the model learns it is out).
pub(crate) fn check_plugins(plugins: &mut Plugins, mnt: &Path) -> Result<(), String> {
    let got: Vec<String> = listing(&mnt.join(".kplug/plugins"))?.into_keys().collect();
    let want: Vec<String> = plugins.files.keys().cloned().collect();
    if got != want {
        return Err(format!(".kplug/plugins lists {got:?}, model has {want:?}"));
    }
    let text =
        fs::read(mnt.join(".kplug/status")).map_err(|e| format!("read .kplug/status: {e}"))?;
    let st: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!(".kplug/status: {e}"))?;
    let serving = st["active"]["eviction"].as_str().unwrap_or("?").to_string();
    let name = |f: &str| f.trim_end_matches(".wasm").to_string();
    match &plugins.active {
        None if serving == "builtin:lru" => Ok(()),
        Some(f) if serving == name(f) => Ok(()),
        Some(f) if serving == "builtin:lru" && plugins.files[f].is_some() => {
            let kind = plugins.files[f].unwrap();
            let p = st["plugins"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["name"] == name(f).as_str()))
                .ok_or_else(|| format!("{f} missing from status {st}"))?;
            let error = p["error"].as_str().unwrap_or("").to_lowercase();
            if p["state"] != "failed" || p["faults"] != 1 || !error.contains(kind.reason()) {
                return Err(format!(
                    "{f} ({kind:?}) lost eviction but its status is {p} (want failed, 1 fault, \
                     error mentioning {:?})",
                    kind.reason()
                ));
            }
            plugins.active = None;
            Ok(())
        }
        want => Err(format!(
            "eviction served by {serving:?}, model says {want:?} (files {:?})",
            plugins.files
        )),
    }
}
