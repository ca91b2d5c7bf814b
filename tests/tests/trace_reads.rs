//! Reads seeded by real traces, under every policy the binary ships.
//!
//! Slices of the traces in `traces/data/` (cloudPhysicsIO.vscsi, the MSR Cambridge and
//! SYSTOR'17 samples) are mapped onto files with `kplugfs trace replay`'s mapping
//! ([`kplug_traces::replay::Plan`]: blocks get slots in first-touch order, so reuse and
//! sequential runs are the trace's) and their reads are issued against a small-cache mount
//! (2 MiB of 64 KiB blocks, no kernel cache, kernel readahead off and pages dropped after each
//! read, so every read reaches the block cache). Each configuration is run in turn on the
//! same mount: the built-ins, every policy `kplugfs policy list` reports (exported with
//! `kplugfs policy export` and dropped into `.kplug/plugins/`), and (on cloudPhysicsIO, the
//! trace with sequential runs) every eviction policy together with the `readahead` prefetch
//! policy when the binary has one. Policies added to
//! `policies/` are covered without touching this file.
//!
//! Every read is compared with the backing file; afterwards no plugin may have faulted, the
//! last plugin dropped must serve all its roles, and the cache must have evicted (the slices'
//! working sets are larger than the cache).
//!
//! Default: the reads among the first 20,000 requests of cloudPhysicsIO with each read cut
//! to its first 16 KiB (offsets, order and reuse as in the trace; the debug daemon moves
//! ~30 MiB/s), and the whole samples. `KPLUGFS_SOAK=1`: the first 100,000 requests at full
//! size.
#![cfg(feature = "mount-tests")]

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, OnceLock};

use kplug_traces::replay::{Plan, fill_pattern};
use kplug_traces::{Format, Op};
use kplugfs_tests::{TestMount, drop_plugin, exported_policy, policy_list, repo_root, status};

const BLOCK: u64 = 64 << 10;
const FILES: u32 = 8;
/// Scratch space: the mapping wraps beyond it (reuse distances stay far above the cache).
const MAX_SIZE: u64 = 32 << 20;

fn soak() -> bool {
    std::env::var("KPLUGFS_SOAK").is_ok_and(|v| v == "1")
}

/// Policy modules by name, exported once.
fn module(name: &str) -> Vec<u8> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let mut c = CACHE.get_or_init(Default::default).lock().unwrap();
    c.entry(name.to_string())
        .or_insert_with(|| exported_policy(name))
        .clone()
}

/// The plugin sets to run: none (built-ins), each policy alone, each eviction policy with
/// `readahead` (when there is such a prefetch policy).
fn configurations() -> Vec<Vec<(String, Vec<String>)>> {
    let list = policy_list();
    assert!(!list.is_empty(), "kplugfs policy list reports no policy");
    let mut configs: Vec<Vec<(String, Vec<String>)>> = vec![Vec::new()];
    configs.extend(list.iter().map(|p| vec![p.clone()]));
    if let Some(ra) = list
        .iter()
        .find(|(n, roles)| n == "readahead" && roles.iter().any(|r| r == "prefetch"))
    {
        for p in list
            .iter()
            .filter(|(n, roles)| n != "readahead" && roles.iter().any(|r| r == "eviction"))
        {
            configs.push(vec![p.clone(), ra.clone()]);
        }
    }
    configs
}

struct Slice {
    plan: Plan,
    /// Per job: the bytes to read of each segment (cut in the default mode).
    clip: u64,
}

fn slice(file: &str, format: Format, limit: Option<u64>, clip: u64) -> Slice {
    let path = repo_root().join("traces/data").join(file);
    let reader = kplug_traces::open(&path, format).unwrap_or_else(|e| panic!("{file}: {e}"));
    let plan = Plan::build(reader, limit, FILES, BLOCK, MAX_SIZE)
        .unwrap_or_else(|e| panic!("map {file}: {e:#}"));
    Slice { plan, clip }
}

fn file_name(i: u32) -> String {
    format!("t{i}")
}

/// Runs the reads of `s` under every configuration on one small-cache mount (the
/// `+readahead` pairs only with `pairs`).
fn run_slice(s: &Slice, expect_evictions: bool, pairs: bool) {
    let plan = &s.plan;
    let m = TestMount::with_backing(
        &[
            "--cache-size",
            "2MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
        ],
        |b| {
            let mut buf = vec![0u8; plan.file_size as usize];
            for i in 0..plan.files {
                fill_pattern(i, 0, &mut buf);
                fs::write(b.join(file_name(i)), &buf).unwrap();
            }
        },
    );
    let reads: Vec<_> = plan.jobs.iter().filter(|j| j.op == Op::Read).collect();
    assert!(!reads.is_empty());
    for config in configurations()
        .into_iter()
        .filter(|c| pairs || c.len() < 2)
    {
        let label: Vec<&str> = config.iter().map(|(n, _)| n.as_str()).collect();
        let label = if label.is_empty() {
            "built-ins".to_string()
        } else {
            label.join("+")
        };
        for e in fs::read_dir(m.m(".kplug/plugins")).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        for (name, _) in &config {
            drop_plugin(&m, &format!("{name}.wasm"), &module(name))
                .unwrap_or_else(|e| panic!("{label}: loading {name}: {e}"));
        }
        let before = status(&m)["cache"].clone();
        let files: Vec<File> = (0..plan.files)
            .map(|i| {
                let f = File::open(m.m(&file_name(i))).unwrap();
                // SAFETY: an open descriptor; advice never touches memory.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
                f
            })
            .collect();
        let backing: Vec<File> = (0..plan.files)
            .map(|i| File::open(m.b(&file_name(i))).unwrap())
            .collect();
        let mut got = Vec::new();
        let mut want = Vec::new();
        for (n, job) in reads.iter().enumerate() {
            for seg in plan.segs(job) {
                let len = seg.len.min(s.clip) as usize;
                got.resize(len, 0);
                want.resize(len, 0);
                let f = &files[seg.file as usize];
                f.read_exact_at(&mut got, seg.offset).unwrap_or_else(|e| {
                    panic!("{label}: read {n}: t{} at {}: {e}", seg.file, seg.offset)
                });
                backing[seg.file as usize]
                    .read_exact_at(&mut want, seg.offset)
                    .unwrap();
                assert!(
                    got == want,
                    "{label}: read {n} of t{} at {} ({len} bytes) differs from the backing file",
                    seg.file,
                    seg.offset
                );
                // SAFETY: as above.
                unsafe {
                    libc::posix_fadvise(
                        f.as_raw_fd(),
                        seg.offset as libc::off_t,
                        len as libc::off_t,
                        libc::POSIX_FADV_DONTNEED,
                    )
                };
            }
        }
        let st = status(&m);
        let cache = &st["cache"];
        assert_eq!(
            cache["faults"], 0,
            "{label}: a shipped policy faulted: {st}"
        );
        for p in st["plugins"].as_array().unwrap() {
            assert_eq!(p["faults"], 0, "{label}: {p}");
            assert!(p["error"].is_null(), "{label}: {p}");
        }
        if let Some((last, roles)) = config.last() {
            // A probe (ABI 1.5) serves no role: it is listed in `.kplug/probes`.
            let probe = roles.iter().any(|r| r == "probe");
            for role in roles.iter().filter(|r| *r != "probe") {
                assert_eq!(
                    st["active"][role.as_str()],
                    last.as_str(),
                    "{label}: {last} serves {role}: {st}"
                );
            }
            // A governor is called on its 100 ms tick, not per read, and a probe by the
            // delivery thread every 5 ms: give them a few.
            let governs = roles.iter().any(|r| r == "governor");
            let mut st = st.clone();
            for _ in 0..30 {
                let called = st["plugins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == last.as_str() && p["calls"].as_u64() > Some(0));
                if called || !(governs || probe) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                st = status(&m);
            }
            let p = st["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == last.as_str())
                .unwrap();
            assert_eq!(p["state"], "active", "{label}: {p}");
            assert_eq!(p["governor"], governs, "{label}: {p}");
            assert!(
                p["calls"].as_u64().unwrap() > 0,
                "{label}: never called: {p}"
            );
        }
        let delta = |k: &str| cache[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        assert!(delta("hits") + delta("misses") > 0, "{label}: {st}");
        if expect_evictions {
            // The working set is above the cache, so blocks are evicted, unless an
            // admission plugin (`maxsize` with its default limit of a quarter of the
            // cache, say) kept the missed blocks out: then it refused some and the
            // cache never had to make room.
            let kept_out = delta("admission_refusals") > 0
                && delta("insertions") <= cache["capacity_blocks"].as_u64().unwrap();
            assert!(
                delta("evictions") > 0 || kept_out,
                "{label}: no eviction: {st}"
            );
        }
    }
}

#[test]
fn cloudphysics_reads_under_every_policy() {
    let (limit, clip) = if soak() {
        (100_000, u64::MAX)
    } else {
        (20_000, 16 << 10)
    };
    let s = slice("cloudPhysicsIO.vscsi", Format::Vscsi, Some(limit), clip);
    assert!(
        s.plan.unique_blocks * BLOCK > 2 << 20,
        "working set above the cache"
    );
    run_slice(&s, true, true);
}

#[test]
fn msr_and_systor_sample_reads_under_every_policy() {
    for (file, format) in [
        ("msr-cambridge1-sample.csv", Format::Msr),
        ("systor17-sample.csv", Format::Systor),
    ] {
        let s = slice(file, format, None, u64::MAX);
        run_slice(&s, s.plan.slots * BLOCK > 2 << 20, false);
    }
}
