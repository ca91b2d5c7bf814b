//! The reference model against an object-store mount of the real S3 server (its
//! environment loaded, or the test is skipped: see `tests/tests/s3/main.rs`).
//!
//! Only the operations an object store allows are generated ([`any_s3_op`]): a whole file
//! written from start to end and closed (`Put`: created, `O_EXCL`, or replacing a file with
//! `O_TRUNC`, empty files included), reads through fresh opens, `unlink`, `mkdir`, `rmdir`
//! (`ENOTEMPTY` when not empty), and renames of files (onto new names, over files, onto
//! directories: `EISDIR`). For these the [`Model`] of the local mounts is already the
//! object-store semantics: a directory made through the mount exists until it is removed,
//! also after its last file went; what differs is where the state is checked.
//!
//! After every step ([`check_s3`]): every directory's listing and every file's bytes and
//! size through the mount, as for a local mount; and on the server (a store client, not a
//! mount) exactly the model's files as keys under the case's prefix, with their bytes: the
//! server has no directories. An empty file is uploaded when its descriptor is released,
//! after `close()` returns (as mountpoint-s3 does): the case waits for it before checking.
//! No descriptor is held across steps: a held one reads its version or fails with EIO once
//! the file is rewritten, which `tests/tests/s3/changes.rs` checks. At the end the case
//! directory is removed through the mount (`rm -r`) and no key may be left under it.
//!
//! The default case count is small (the whole suite has a time budget); `PROPTEST_CASES`
//! and `KPLUGFS_SOAK=1` raise it as for the other property tests.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;
use std::time::Duration;

use kplug_store::Store;
use kplugfs_tests::s3::{S3Mount, TestBucket, client, eventually};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use crate::check::{diff, listing};
use crate::model::Model;
use crate::ops::{Op, any_s3_op};
use crate::real::Real;
use crate::step::{Side, Step};
use crate::{CASE, soak};

/// Every key under `prefix` (ending in `/`) and its size, through the store client.
fn server_files(store: &Store, prefix: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![prefix.to_string()];
    while let Some(d) = dirs.pop() {
        let l = store.list(&d).map_err(|e| format!("listing {d}: {e}"))?;
        for (name, info) in l.files {
            out.insert(format!("{d}{name}"), info.size);
        }
        dirs.extend(l.dirs.into_iter().map(|n| format!("{d}{n}/")));
    }
    Ok(out)
}

/// Compare the mount and the server with the model (see the module note).
fn check_s3(model: &Model, real: &Real, store: &Store, case: &str) -> Result<(), String> {
    for dir in model.dirs() {
        let want = model.children(&dir);
        let got = listing(&real.p(&dir))?;
        if got != want {
            return Err(format!(
                "mount listing of {dir:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    let mut want_keys = BTreeMap::new();
    for path in model.file_paths() {
        let want = &model.files[&model.ino_of(&path).unwrap()];
        let got = fs::read(real.p(&path)).map_err(|e| format!("reopen {path}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("{path} read through a fresh open: {d}"));
        }
        let size = fs::metadata(real.p(&path))
            .map_err(|e| format!("stat {path}: {e}"))?
            .len();
        if size != want.len() as u64 {
            return Err(format!("{path}: st_size {size} want {}", want.len()));
        }
        want_keys.insert(format!("{case}/{path}"), want.len() as u64);
    }
    let got_keys = server_files(store, &format!("{case}/"))?;
    if got_keys != want_keys {
        return Err(format!("server keys: want {want_keys:?}, got {got_keys:?}"));
    }
    for path in model.file_paths() {
        let want = &model.files[&model.ino_of(&path).unwrap()];
        if want.is_empty() {
            continue;
        }
        let key = format!("{case}/{path}");
        let got = store
            .get_range(&key, 0..want.len() as u64, None)
            .map_err(|e| format!("GET {key}: {e}"))?;
        if let Some(d) = diff(want, &got) {
            return Err(format!("server object {key}: {d}"));
        }
    }
    Ok(())
}

/// Run `ops` in a fresh case directory of the mount; `Err` describes the first divergence
/// and the steps that led to it.
pub(crate) fn run_s3_case(m: &S3Mount, store: &Store, ops: &[Op]) -> Result<(), String> {
    let case = format!(
        "case{}",
        CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut real = Real {
        dir: m.m(&case),
        handles: Vec::new(),
        mnt: m.mnt.clone(),
    };
    fs::create_dir(&real.dir).map_err(|e| format!("mkdir {case}: {e}"))?;
    let mut model = Model::default();
    let mut steps: Vec<Step> = Vec::new();
    let mut result = Ok(());
    for op in ops {
        let Some(step) = model.resolve(op) else {
            continue;
        };
        steps.push(step.clone());
        let want = model.apply(&step);
        let got = real.apply(&step);
        let failed = if want != got {
            Some(format!("returned {got:?}, model says {want:?}"))
        } else {
            if let (Step::Put { path, data, .. }, Ok(_)) = (&step, &got)
                && data.len == 0
            {
                // Written when its descriptor is released, after close() returned.
                let key = format!("{case}/{path}");
                let uploaded = || store.head(&key).ok().flatten().is_some_and(|i| i.size == 0);
                if !eventually(Duration::from_secs(20), uploaded) {
                    result = Err(format!("empty {key} never uploaded"));
                    break;
                }
            }
            check_s3(&model, &real, store, &case).err()
        };
        if let Some(why) = failed {
            let history: Vec<String> = steps.iter().map(|s| format!("  {s:?}")).collect();
            result = Err(format!("{why}\nsteps:\n{}", history.join("\n")));
            break;
        }
    }
    let cleaned = fs::remove_dir_all(&real.dir).map_err(|e| format!("rm -r {case}: {e}"));
    result?;
    cleaned?;
    let left = server_files(store, &format!("{case}/"))?;
    if !left.is_empty() {
        return Err(format!(
            "{case} removed through the mount, keys left: {left:?}"
        ));
    }
    Ok(())
}

/// The mount the property runs on: a small block cache of small blocks, so reads cross
/// blocks and evict.
pub(crate) const S3_MOUNT: [&str; 4] = ["--cache-size", "1MiB", "--block-size", "64KiB"];

/// A fresh bucket and its mount, and a store client of the bucket.
pub(crate) fn s3_mount() -> (TestBucket, S3Mount, Arc<Store>) {
    let b = TestBucket::new("model");
    let m = S3Mount::new(&b, &S3_MOUNT);
    let store = client(&b, "");
    (b, m, store)
}

/// An object-store mount matches the model under the ops it allows.
#[test]
fn s3_mount_matches_model() {
    kplugfs_tests::require_s3!();
    let (_bucket, m, store) = s3_mount();
    let (cases, max_ops) = if soak() { (1000, 200) } else { (16, 40) };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..Config::default()
    };
    proptest!(config, |(ops in prop::collection::vec(any_s3_op(), 1..max_ops))| {
        run_s3_case(&m, &store, &ops).map_err(TestCaseError::fail)?;
    });
}
