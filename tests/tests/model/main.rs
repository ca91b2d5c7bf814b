//! Reference-model property test of the mount (root and /dev/fuse).
//!
//! proptest generates sequences of [`Op`]s: create, write, append, read, truncate, rename
//! (over files, directories and hard links of the same file), hard link, unlink/rmdir,
//! mkdir, shared-`mmap` writes with `msync`, and operations on descriptors held open across
//! the sequence (read, write, `ftruncate`, `fsync`). An op never names a file: it holds
//! [`Ix`]es that pick an existing file, directory or descriptor *modulo the current
//! count*, so every sequence proptest shrinks to is still meaningful.
//!
//! Each op is first resolved against the model into a concrete [`Step`] (paths and numbers),
//! then applied to both sides through the one [`Side::apply`] each has: the [`Model`] (a
//! `BTreeMap` namespace over in-memory byte vectors that encodes the Linux rules) and the
//! [`Real`] mount. Results, errno included, must be equal. After *every* step [`check`]
//! compares the whole state:
//!
//! - every directory's listing, through the mount and in the backing directory;
//! - every file's bytes through a fresh open (reopen) and in the backing file, its size and
//!   link count through the mount;
//! - inode identity: names of one model file share one `st_ino` (mount and backing), names
//!   of different files do not;
//! - every file ever created is watched by a read-only descriptor opened once and held to the
//!   end of the case (across writes, truncates, renames, unlinks): reading it must always give
//!   the model's bytes, which catches stale page or block caching; so must every descriptor
//!   the ops themselves hold open.
//!
//! One mount serves all cases; each case works in a fresh subdirectory that it removes at the
//! end. `KPLUGFS_SOAK=1` runs many more and longer sequences; `PROPTEST_CASES` overrides the
//! case count. Adding an op means a variant in [`Op`] and [`Step`], a line in
//! [`Model::resolve`] and one arm in each `apply`.
//!
//! **Plugin ops** (on the small-cache mount: 1 MiB of 64 KiB blocks, no kernel cache, so
//! reads reach the block cache and evictions happen): swap in a valid eviction plugin (the
//! SDK LRU exported from the binary, or the WAT LRU) under one of two names, drop a hostile
//! one (its `kplug_evict_victim` loops, traps or names a block that is not resident), remove a
//! plugin file, and *churn*: read a 2 MiB ballast file outside the case directory, which
//! evicts the whole cache. The model tracks which plugin files exist and which one serves
//! eviction ([`Plugins`]); after every step the data checks above run as always (no plugin
//! may cause a wrong byte) and the `.kplug/plugins` listing and `status` must agree with it:
//! a hostile plugin serves until its first eviction, then shows `failed` with one fault and
//! the built-in LRU serves; after a churn that first eviction has certainly happened. Each
//! case starts by removing every plugin file.
//!
//! **Object-store mounts** (`s3.rs`): the same model over a bucket of the real S3 server,
//! with only the ops an object store allows, checked through the mount and on the server
//! (skipped, saying so, when the server is not available; see `tests/tests/s3/main.rs`).
//!
//! The files follow the flow of a case: `ops.rs` the generated [`Op`]s and their strategies,
//! `step.rs` the resolved [`Step`]s and the [`Side`] both sides implement, `model.rs` the
//! [`Model`] (resolving ops and applying steps), `real.rs` the [`Real`] mount, `check.rs`
//! the comparison after every step; this file runs cases and holds the property tests,
//! `regressions.rs` the named regression tests.
#![cfg(feature = "mount-tests")]

mod check;
mod model;
mod ops;
mod real;
mod regressions;
mod s3;
mod step;

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use kplugfs_tests::TestMount;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use check::{Watchers, check, check_plugins};
use model::Model;
use ops::{BALLAST, Op, any_op, ballast};
use real::Real;
use step::{Side, Step};

pub(crate) static CASE: AtomicUsize = AtomicUsize::new(0);

/// Run `ops` in a fresh case directory of `mount`; `Err` describes the first divergence
/// together with the steps that led to it. The directory is removed through the mount
/// afterwards (also checked). On a `plugins` mount, plugin files are removed first and the
/// plugin state is checked after every step too.
fn run_case(mount: &TestMount, ops: &[Op], plugins: bool) -> Result<(), String> {
    let name = format!("case{}", CASE.fetch_add(1, Ordering::Relaxed));
    let backing = mount.b(&name);
    let mut real = Real {
        dir: mount.m(&name),
        handles: Vec::new(),
        mnt: mount.mnt.clone(),
    };
    if plugins {
        // Every case starts with the built-ins serving.
        let dir = mount.m(".kplug/plugins");
        for e in fs::read_dir(&dir).map_err(|e| format!("list {}: {e}", dir.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            fs::remove_file(&p).map_err(|e| format!("rm {}: {e}", p.display()))?;
        }
    }
    fs::create_dir(&real.dir).map_err(|e| format!("mkdir {name}: {e}"))?;
    let mut model = Model::default();
    let mut watch = Watchers::new();
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
            check(&model, &real, &backing, &mut watch)
                .and_then(|()| {
                    if plugins {
                        check_plugins(&mut model.plugins, &mount.mnt)
                    } else {
                        Ok(())
                    }
                })
                .err()
        };
        if let Some(why) = failed {
            let history: Vec<String> = steps.iter().map(|s| format!("  {s:?}")).collect();
            result = Err(format!("{why}\nsteps:\n{}", history.join("\n")));
            break;
        }
    }
    drop(watch);
    real.handles.clear();
    let cleaned = fs::remove_dir_all(&real.dir).map_err(|e| format!("rm -r {name}: {e}"));
    result?;
    cleaned?;
    if backing.exists() {
        return Err(format!(
            "{name} removed through the mount but still in the backing dir"
        ));
    }
    Ok(())
}

pub(crate) fn soak() -> bool {
    std::env::var("KPLUGFS_SOAK").is_ok_and(|v| v == "1")
}

/// Cases and sequence length, shared out between the mount variants: ~1 minute on a 2-core
/// CI machine by default; soak mode runs 20x the cases with sequences up to 4x longer.
/// `PROPTEST_CASES` overrides the case count.
fn config() -> (Config, usize) {
    let (cases, max_ops) = if soak() { (20000, 300) } else { (1000, 80) };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    (
        Config {
            cases,
            // Shrinking a long sequence through a real mount takes many runs.
            max_shrink_iters: 10_000,
            // Shrunk failures are kept as named tests (regressions.rs), not in a seed file.
            failure_persistence: None,
            ..Config::default()
        },
        max_ops,
    )
}

/// Run the property on a mount made with `options`, `share` of the configured cases; with
/// `plugins` the plugin ops are generated too (and the ballast file is in the mount's root).
fn check_property(options: &[&str], share: f64, plugins: bool) {
    let mount = TestMount::with_backing(options, |b| {
        if plugins {
            fs::write(b.join(BALLAST), ballast()).unwrap();
        }
    });
    let (mut config, max_ops) = config();
    config.cases = ((f64::from(config.cases) * share).ceil() as u32).max(1);
    proptest!(config, |(ops in prop::collection::vec(any_op(plugins), 1..max_ops))| {
        run_case(&mount, &ops, plugins).map_err(TestCaseError::fail)?;
    });
}

/// The plugin mount: a cache of 16 blocks, every read reaching it.
const SMALL_CACHE: [&str; 5] = [
    "--cache-size",
    "1MiB",
    "--block-size",
    "64KiB",
    "--no-kernel-cache",
];

/// The default mount, as users get it (names and attributes cached for 1 s).
#[test]
fn mount_matches_model() {
    check_property(&[], 0.5, false);
}

/// Every access revalidates names and attributes, so lookups and getattrs reach the daemon
/// (its inode table) instead of the kernel's caches.
#[test]
fn mount_without_attr_cache_matches_model() {
    check_property(&["--attr-timeout", "0s"], 0.25, false);
}

/// A small block cache under plugin swaps, hostile plugins and removals (see the module doc):
/// evictions happen all the time, and data must still equal the model after every op.
#[test]
fn small_cache_with_plugin_ops_matches_model() {
    check_property(&SMALL_CACHE, 0.25, true);
}
