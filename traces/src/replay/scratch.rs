//! The scratch directory a replay works in: `DIR/.kplugfs-replay/`, files `f0000`, `f0001`...
//! filled with [`fill_pattern`], and `layout.json` saying what made them.
//!
//! Design: the manifest is what makes the directory the replay's own. A directory of that
//! name without it is refused, never emptied; with it, files of the same layout (pattern
//! version, file count, file size) are reused (a replay with `--keep` then another skips the
//! filling), and any other layout is removed and made again. Removal only ever deletes the
//! manifest and names of the form `fNNNN`, then the directory, which fails if anything else
//! is in it. The manifest is written last, so an interrupted filling is never reused.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pattern::fill_pattern;
use super::plan::Plan;
use crate::progress::{Progress, Stage};

/// The name of the scratch directory inside the replay directory.
pub const SCRATCH_DIR: &str = ".kplugfs-replay";
/// The scratch directory's manifest.
pub const MANIFEST: &str = "layout.json";
/// The version of [`fill_pattern`]'s pattern, recorded in the manifest.
const PATTERN_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Manifest {
    pattern: u32,
    files: u32,
    file_size: u64,
}

/// Why the scratch directory could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// A directory of that name exists and is not the replay's.
    #[error(
        "{} exists but was not made by `kplugfs trace replay` (no {MANIFEST}); \
         move it away first",
        .0.display()
    )]
    Foreign(PathBuf),
    /// The directory could not be created.
    #[error("cannot create {}", dir.display())]
    CreateDir {
        /// The scratch directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A scratch file could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A scratch file or the manifest could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A scratch file could not be synced.
    #[error("cannot sync {}", path.display())]
    Sync {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The directory could not be listed.
    #[error("cannot list {}", dir.display())]
    List {
        /// The scratch directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Listing the directory failed part way.
    #[error(transparent)]
    ListEntry(io::Error),
    /// A scratch file could not be removed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The directory could not be removed.
    #[error(
        "cannot remove {} (files other than the replay's are in it?)",
        dir.display()
    )]
    RemoveDir {
        /// The scratch directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Scratch file `i` of `dir`.
pub fn scratch_file(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("f{i:04}"))
}

/// Creates (or reuses) the scratch files of `plan` in `dir`; the bytes written are the stage
/// [`Stage::CreateScratch`] of `progress`. Returns whether the files were reused.
pub fn prepare_scratch(
    dir: &Path,
    plan: &Plan,
    progress: &impl Progress,
) -> Result<bool, ScratchError> {
    let want = Manifest {
        pattern: PATTERN_VERSION,
        files: plan.files,
        file_size: plan.file_size,
    };
    let manifest = dir.join(MANIFEST);
    if dir.exists() {
        let Ok(text) = fs::read(&manifest) else {
            return Err(ScratchError::Foreign(dir.to_path_buf()));
        };
        let have: Option<Manifest> = serde_json::from_slice(&text).ok();
        let complete = (0..plan.files)
            .all(|i| fs::metadata(scratch_file(dir, i)).is_ok_and(|m| m.len() == plan.file_size));
        if have.as_ref() == Some(&want) && complete {
            return Ok(true);
        }
        remove_scratch(dir)?;
    }
    fs::create_dir(dir).map_err(|source| ScratchError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    progress.begin(Stage::CreateScratch, u64::from(plan.files) * plan.file_size);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..plan.files {
        let path = scratch_file(dir, i);
        let f = File::create(&path).map_err(|source| ScratchError::Create {
            path: path.clone(),
            source,
        })?;
        let mut off = 0;
        while off < plan.file_size {
            let n = (plan.file_size - off).min(buf.len() as u64) as usize;
            fill_pattern(i, off, &mut buf[..n]);
            f.write_all_at(&buf[..n], off)
                .map_err(|source| ScratchError::Write {
                    path: path.clone(),
                    source,
                })?;
            off += n as u64;
            progress.inc(n as u64);
        }
        f.sync_all().map_err(|source| ScratchError::Sync {
            path: path.clone(),
            source,
        })?;
    }
    progress.finish();
    let text = serde_json::to_vec(&want).expect("a manifest serializes");
    fs::write(&manifest, text).map_err(|source| ScratchError::Write {
        path: manifest.clone(),
        source,
    })?;
    Ok(false)
}

/// Removes a scratch directory made by [`prepare_scratch`]: only its own files, then the
/// directory (which fails if anything else is left in it).
pub fn remove_scratch(dir: &Path) -> Result<(), ScratchError> {
    let entries = fs::read_dir(dir).map_err(|source| ScratchError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(ScratchError::ListEntry)?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name == MANIFEST
            || (name.len() == 5
                && name.starts_with('f')
                && name[1..].bytes().all(|b| b.is_ascii_digit()));
        if ours {
            fs::remove_file(e.path()).map_err(|source| ScratchError::Remove {
                path: e.path(),
                source,
            })?;
        }
    }
    fs::remove_dir(dir).map_err(|source| ScratchError::RemoveDir {
        dir: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Event, Log};
    use crate::{Format, TraceReader};

    /// A plan of `n` distinct 4 KiB blocks over `files` files.
    fn plan(n: u64, files: u32) -> Plan {
        let text: String = (0..n).map(|i| format!("{i}\n")).collect();
        let reader = TraceReader::new(text.as_bytes(), "t.txt", Format::Txt).unwrap();
        Plan::build(reader, None, files, 4096, 1 << 30).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_hold_the_pattern_and_are_reused_for_the_same_layout() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(SCRATCH_DIR);
        let p = plan(5, 2);
        assert_eq!((p.files, p.file_size), (2, 3 * 4096));
        let log = Log::default();
        assert!(!prepare_scratch(&dir, &p, &log).unwrap());
        let total = 2 * 3 * 4096;
        assert_eq!(
            log.events(),
            [
                Event::Begin(Stage::CreateScratch, total),
                Event::Done(total),
                Event::Finish
            ]
        );
        assert_eq!(names(&dir), ["f0000", "f0001", MANIFEST]);
        assert_eq!(
            fs::read_to_string(dir.join(MANIFEST)).unwrap(),
            r#"{"pattern":1,"files":2,"file_size":12288}"#
        );
        for i in 0..2 {
            let mut want = vec![0u8; 3 * 4096];
            fill_pattern(i, 0, &mut want);
            assert_eq!(fs::read(scratch_file(&dir, i)).unwrap(), want);
        }
        // Same layout: reused, nothing written.
        let log = Log::default();
        assert!(prepare_scratch(&dir, &p, &log).unwrap());
        assert!(log.events().is_empty());
        // Another layout: made again.
        assert!(!prepare_scratch(&dir, &plan(5, 5), &()).unwrap());
        assert_eq!(names(&dir).len(), 6);
        // A missing file: made again.
        fs::remove_file(scratch_file(&dir, 4)).unwrap();
        assert!(!prepare_scratch(&dir, &plan(5, 5), &()).unwrap());
        remove_scratch(&dir).unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn a_directory_without_manifest_is_never_touched() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(SCRATCH_DIR);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f0000"), b"mine").unwrap();
        let e = prepare_scratch(&dir, &plan(1, 1), &()).unwrap_err();
        assert!(matches!(e, ScratchError::Foreign(_)));
        assert!(e.to_string().contains("was not made by"));
        assert_eq!(fs::read(dir.join("f0000")).unwrap(), b"mine");
    }

    #[test]
    fn removal_leaves_other_files_and_says_so() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(SCRATCH_DIR);
        prepare_scratch(&dir, &plan(2, 2), &()).unwrap();
        fs::write(dir.join("f00001"), b"not ours").unwrap();
        let e = remove_scratch(&dir).unwrap_err();
        assert!(matches!(e, ScratchError::RemoveDir { .. }), "{e:?}");
        assert_eq!(names(&dir), ["f00001"]);
    }
}
