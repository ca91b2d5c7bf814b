//! The shipped eviction governors in `kplugfs sim`.
//!
//! `follow` (a fixed switch schedule) must give exactly a fixed policy's misses when its
//! schedule names one policy, and switch when told. `adaptive`, replayed like any other
//! policy, is held to the figures `docs/policies.md` quotes against every fixed eviction
//! policy:
//!
//! - on the phase-changing trace (`scripts/phase-trace.py`), it beats every fixed policy at
//!   1 % and is within 0.001 of the best at 25 %;
//! - on the real traces (object mode, and cloudPhysicsIO split into 4 KiB blocks: 1.1 M
//!   requests, which the workspace's dev profile replays optimized), its distance to the
//!   best fixed policy in each cell is no worse than the documented one;
//! - on the held-out traces (`traces/heldout/`, which rules are not tuned on), as many cells
//!   as documented are within 0.005 and within 0.01 of the best fixed policy.
//!
//! The simulation is deterministic (ticks count requests), so these are exact regressions
//! guards: a change to the governor machinery or to `adaptive` that costs hits fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use kplug_sim::{SimConfig, SimResult, load_trace, run};
use kplug_traces::Format;

const FIXED: [&str; 9] = [
    "fifo", "lru", "clock", "sieve", "arc", "twoq", "lirs", "s3fifo", "wtinylfu",
];

fn root() -> PathBuf {
    manifest_dir().join("../..")
}

fn sim(
    trace: &Path,
    format: Format,
    split: Option<u64>,
    policies: &[&str],
    fractions: &[f64],
    params: &[&str],
) -> Vec<SimResult> {
    let args = SimConfig {
        trace: trace.to_path_buf(),
        format,
        policies: policies.iter().map(|p| p.to_string()).collect(),
        fractions: fractions.to_vec(),
        objects: vec![],
        split_blocks: split,
        params: params.iter().map(|p| p.to_string()).collect(),
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        tick_every: None,
        scopes: Vec::new(),
    };
    let bar = ();
    let t = load_trace(&args.trace, args.format, args.split_blocks, &bar).unwrap();
    run(&args, &t, &bar).unwrap()
}

#[test]
fn follow_with_one_policy_is_that_policy_and_switches_on_schedule() {
    let sprite = root().join("traces/data/sprite.trace");
    for fixed in ["lru", "arc", "lirs"] {
        let schedule = format!("follow:schedule={fixed}@0");
        let r = sim(
            &sprite,
            Format::Lirs,
            None,
            &["follow", fixed],
            &[0.05, 0.25],
            &[&schedule],
        );
        for f in [0.05, 0.25] {
            let at = |p: &str| {
                r.iter()
                    .find(|x| x.policy == p && x.cache_fraction == Some(f))
                    .unwrap()
            };
            let (follow, alone) = (at("follow").misses, at(fixed).misses);
            if fixed == "lirs" {
                // LIRS evicts below capacity (libCacheSim's `can_insert`, ABI 1.4 follows it);
                // the governor's cache evicts only for room, so it keeps those blocks and can
                // only hit more (docs/governors.md, "Following one policy").
                assert!(
                    follow <= alone && alone - follow <= alone / 100,
                    "{fixed} at {f}: follow {follow}, alone {alone}"
                );
            } else {
                assert_eq!(follow, alone, "{fixed} at {f}");
            }
            assert_eq!(
                at("follow").policy_switches,
                1,
                "{fixed} at {f}: the first activation only"
            );
        }
    }
    // Without a schedule it serves LRU (so it loads in a mount without parameters).
    let r = sim(
        &sprite,
        Format::Lirs,
        None,
        &["follow", "lru"],
        &[0.05],
        &[],
    );
    assert_eq!(r[0].misses, r[1].misses, "{r:?}");
    // A switch at request 60,000: one more activation, and the same misses every run.
    let switch = ["follow:schedule=lru@0/arc@60000"];
    let a = sim(&sprite, Format::Lirs, None, &["follow"], &[0.1], &switch);
    let b = sim(&sprite, Format::Lirs, None, &["follow"], &[0.1], &switch);
    assert_eq!(a[0].policy_switches, 2, "{:?}", a[0]);
    assert_eq!(a[0].misses, b[0].misses);
    let lru = sim(&sprite, Format::Lirs, None, &["lru"], &[0.1], &[]);
    assert_ne!(a[0].misses, lru[0].misses, "the switch to ARC must show");
}

/// Replay `adaptive` and every fixed policy; per fraction, (adaptive's result, the best fixed
/// policy's name and miss ratio).
fn compare(
    trace: &Path,
    format: Format,
    split: Option<u64>,
    fractions: &[f64],
) -> Vec<(SimResult, String, f64)> {
    let policies: Vec<&str> = std::iter::once("adaptive").chain(FIXED).collect();
    let results = sim(trace, format, split, &policies, fractions, &[]);
    for r in &results {
        assert_eq!(r.faults, 0, "{} faulted on {}", r.policy, trace.display());
    }
    fractions
        .iter()
        .map(|&f| {
            let at: Vec<&SimResult> = results
                .iter()
                .filter(|r| r.cache_fraction == Some(f))
                .collect();
            let adaptive = at.iter().find(|r| r.policy == "adaptive").unwrap();
            let best = at
                .iter()
                .filter(|r| r.policy != "adaptive")
                .min_by(|a, b| a.miss_ratio.total_cmp(&b.miss_ratio))
                .unwrap();
            ((*adaptive).clone(), best.policy.clone(), best.miss_ratio)
        })
        .collect()
}

#[test]
fn adaptive_beats_every_fixed_policy_on_the_phase_trace() {
    let dir = tempfile::tempdir().unwrap();
    let phase = dir.path().join("phase.txt");
    let data = root().join("traces/data");
    script(
        "phase-trace.py",
        &[phase.as_os_str(), "--data".as_ref(), data.as_os_str()],
    );
    let cells = compare(&phase, Format::Txt, None, &[0.01, 0.25]);
    for (a, best, ratio) in &cells {
        println!(
            "phase {:?}: adaptive {:.4} ({} switches), best fixed {best} {ratio:.4}",
            a.cache_fraction, a.miss_ratio, a.policy_switches
        );
        assert!(a.policy_switches > 0, "a phase change must show: {a:?}");
    }
    let (a, best, ratio) = &cells[0];
    assert!(
        a.miss_ratio < *ratio,
        "1 %: adaptive {} must beat every fixed policy; {best} has {ratio}",
        a.miss_ratio
    );
    let (a, best, ratio) = &cells[1];
    assert!(
        a.miss_ratio <= ratio + 0.001,
        "25 %: adaptive {} vs {best} {ratio}",
        a.miss_ratio
    );
}

/// `adaptive` minus the best fixed policy, per trace at 1, 5, 10 and 25 % (the table in
/// docs/policies.md; `python3 scripts/adaptive-check.py` prints it).
const DOCUMENTED: &[(&str, Format, Option<u64>, [f64; 4])] = &[
    (
        "cloudPhysicsIO.vscsi",
        Format::Vscsi,
        None,
        [0.0006, -0.0007, -0.0001, 0.0471],
    ),
    (
        "cloudPhysicsIO.vscsi",
        Format::Vscsi,
        Some(4096),
        [0.0010, 0.0011, -0.0044, -0.0004],
    ),
    (
        "sprite.trace",
        Format::Lirs,
        None,
        [0.0012, 0.0016, 0.0013, 0.0011],
    ),
    (
        "msr-cambridge1-sample.csv",
        Format::Msr,
        Some(4096),
        [0.0044, 0.0, 0.0024, 0.0],
    ),
    (
        "systor17-sample.csv",
        Format::Systor,
        Some(4096),
        [0.0003, 0.0, 0.0, 0.0002],
    ),
];

#[test]
fn adaptive_is_no_further_from_the_best_fixed_policy_than_documented() {
    let fractions = [0.01, 0.05, 0.10, 0.25];
    let mut worse = Vec::new();
    for (name, format, split, documented) in DOCUMENTED {
        let cells = compare(
            &root().join("traces/data").join(name),
            *format,
            *split,
            &fractions,
        );
        for ((a, best, ratio), doc) in cells.iter().zip(documented) {
            let diff = a.miss_ratio - ratio;
            println!(
                "{name} {split:?} {:?}: adaptive {:.4}, best fixed {best} {ratio:.4}, {diff:+.4} (documented {doc:+.4})",
                a.cache_fraction, a.miss_ratio
            );
            // Half a thousandth of slack: one miss is 0.0004 of the MSR sample.
            if diff > doc + 0.0005 {
                worse.push(format!(
                    "{name} {split:?} {:?}: {diff:+.4}, documented {doc:+.4}",
                    a.cache_fraction
                ));
            }
        }
    }
    assert!(
        worse.is_empty(),
        "adaptive lost ground:\n{}",
        worse.join("\n")
    );
}

/// Cells of the held-out traces (`traces/heldout/`, 19 traces at 1, 5, 10 and 25 %) where
/// `adaptive` is within 0.005 and within 0.01 of the best fixed policy (docs/policies.md,
/// "On traces it was not tuned on"; `python3 scripts/adaptive-check.py BIN --heldout`).
const HELD_OUT_WITHIN: (usize, usize, usize) = (76, 55, 63);

/// Rules are not tuned on the held-out traces (the one exception, `tied`, is said in their
/// README), so they are held to counts, not cell by cell:
/// a change to the governor machinery or to `adaptive` that brings fewer of their cells
/// within 0.005 or 0.01 of the best fixed policy than documented fails here.
#[test]
fn adaptive_on_held_out_traces_is_no_worse_than_documented() {
    let dir = tempfile::tempdir().unwrap();
    let paths = script("heldout.py", &[dir.path().as_os_str()]);
    let fractions = [0.01, 0.05, 0.10, 0.25];
    let (mut cells, mut within5, mut within10) = (0, 0, 0);
    for path in paths.lines() {
        for (a, best, ratio) in compare(Path::new(path), Format::Txt, None, &fractions) {
            let diff = a.miss_ratio - ratio;
            println!(
                "{path} {:?}: adaptive {:.4}, best fixed {best} {ratio:.4}, {diff:+.4}",
                a.cache_fraction, a.miss_ratio
            );
            cells += 1;
            // Unrounded, as adaptive-check.py counts them.
            within5 += usize::from(diff <= 0.005);
            within10 += usize::from(diff <= 0.01);
        }
    }
    let (n, w5, w10) = HELD_OUT_WITHIN;
    assert_eq!(
        cells, n,
        "the held-out set changed: update HELD_OUT_WITHIN and the docs"
    );
    assert!(
        within5 >= w5 && within10 >= w10,
        "adaptive lost ground on held-out traces: within 0.005 on {within5} of {cells} cells \
         (documented {w5}), within 0.01 on {within10} (documented {w10})"
    );
}

/// Runs `python3 scripts/NAME ARGS...`, which must succeed; its standard output.
fn script(name: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("python3")
        .arg(root().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 runs scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
