//! Hot-swap latency through a real mount: the time from the `close()` of a plugin copied into
//! `MOUNT/.kplug/plugins/` to the plugin's first decision (its first hook call once
//! installed, as `.kplug/status` reports in `swap_latency_us`), and the duration of the
//! `close()` itself (compile + validate + instantiate + install), over many swaps while
//! reader threads keep the cache busy, for modules the mount never saw (first half of the
//! swaps: compiled) and for modules it loaded before (second half: the compiled-module
//! cache). Also counts reads that failed or returned wrong bytes
//! during the swaps (must be 0).
//!
//! Modules never seen are swapped in on a mount with the default `--plugin-code tiered`
//! (served first from baseline code; each swap then waits until the optimized code serves,
//! timing that too) and on one with `--plugin-code optimized` (every load waits for
//! Cranelift), so one run gives both.
//!
//! Run: `cargo bench -p kplugfs-tests --bench hotswap` (root, /dev/fuse). `SWAPS=N` sets
//! the number of swaps (default 200).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kplugfs_tests::{TestMount, kplugfs, with_custom_section};

const FILES: usize = 4;
const SIZE: usize = 4 << 20;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !nix_is_root() {
        eprintln!("hotswap: needs root and /dev/fuse; skipped");
        return;
    }
    let swaps: usize = std::env::var("SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // Never seen, with the default `--plugin-code tiered` (baseline code first, then the
    // optimized code: each swap waits for it before the next, timing it too) and with
    // `--plugin-code optimized` (every load waits for Cranelift); then seen before.
    let (mut tiered, mut optimized, mut seen) = Default::default();
    let (mut reads, mut bad) = (0, 0);
    for mode in ["tiered", "optimized"] {
        let bench = Bench::start(mode);
        // Never seen: the SDK LRU with a custom section naming this run, mode and swap
        // appended, so its content hash is new to the mount and to any disk cache (custom
        // sections do not change what the module does).
        let never = if mode == "tiered" {
            &mut tiered
        } else {
            &mut optimized
        };
        for k in 0..swaps / 2 {
            let text = format!("hotswap run {run} {mode} swap {k}");
            let bytes = with_custom_section(&bench.sdk_lru, &text);
            swap(&bench.m, "fresh.wasm", &bytes, never, mode == "tiered");
        }
        if mode == "tiered" {
            // Seen before: the two plain modules, alternately, each loaded once beforehand.
            swap(
                &bench.m,
                "a.wasm",
                &bench.sdk_lru,
                &mut Timings::default(),
                true,
            );
            swap(
                &bench.m,
                "b.wasm",
                &bench.wat_lru,
                &mut Timings::default(),
                true,
            );
            for k in 0..swaps - swaps / 2 {
                let (name, bytes) = if k % 2 == 0 {
                    ("a.wasm", &bench.sdk_lru)
                } else {
                    ("b.wasm", &bench.wat_lru)
                };
                swap(&bench.m, name, bytes, &mut seen, false);
            }
        }
        let (r, b) = bench.stop();
        reads += r;
        bad += b;
    }
    println!(
        "# hot swap through a mount under 2 reader threads: {} modules never seen (SDK LRU with a unique custom section) with --plugin-code tiered (default) and as many with --plugin-code optimized, {} seen before (SDK LRU <-> WAT LRU)",
        swaps / 2,
        swaps - swaps / 2
    );
    println!("| measure | median | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (what, t) in [
        ("never seen, tiered", &mut tiered),
        ("never seen, --plugin-code optimized", &mut optimized),
        ("seen before", &mut seen),
    ] {
        row(
            &format!("{what}: close() of the copied plugin (load + install), us"),
            &mut t.close_us,
        );
        row(
            &format!("{what}: close() start -> first decision, us"),
            &mut t.swap_us,
        );
        row(
            &format!("{what}: close() start -> optimized code serving, us"),
            &mut t.optimized_us,
        );
    }
    println!(
        "reads during swaps: {reads}, failed or wrong: {bad}; swaps without a decision within 5 s: {}",
        tiered.stuck + optimized.stuck + seen.stuck
    );
}

/// A mount (8 MiB cache of 64 KiB blocks, no kernel cache) with 2 reader threads verifying
/// every byte of random 64 KiB reads.
struct Bench {
    m: Arc<TestMount>,
    sdk_lru: Vec<u8>,
    wat_lru: Vec<u8>,
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Bench {
    fn start(plugin_code: &str) -> Bench {
        let m = Arc::new(TestMount::with_backing(
            &[
                "--cache-size",
                "8MiB",
                "--block-size",
                "64KiB",
                "--no-kernel-cache",
                "--plugin-code",
                plugin_code,
            ],
            |b| {
                for i in 0..FILES {
                    fs::write(
                        b.join(format!("f{i}")),
                        kplugfs_tests::pattern(SIZE, i as u32),
                    )
                    .unwrap();
                }
            },
        ));
        let dir = m.root.path().join("policies");
        fs::create_dir(&dir).unwrap();
        let out = kplugfs(&["policy", "export", "lru", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sdk_lru = fs::read(dir.join("lru.wasm")).unwrap();
        let root = kplugfs_tests::repo_root();
        let wat_lru = wat::parse_file(root.join("policies/lru-wat/lru.wat")).unwrap();
        let want: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..FILES)
                .map(|i| kplugfs_tests::pattern(SIZE, i as u32))
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (reads, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let readers = (0..2)
            .map(|t| {
                let (m, want, stop, reads, bad) = (
                    m.clone(),
                    want.clone(),
                    stop.clone(),
                    reads.clone(),
                    bad.clone(),
                );
                std::thread::spawn(move || {
                    let mut x = 0x2545F4914F6CDD1Du64 ^ t;
                    while !stop.load(Ordering::Relaxed) {
                        kplugfs_tests::xorshift(&mut x);
                        let i = (x % FILES as u64) as usize;
                        let off = ((x >> 8) % (SIZE as u64 - 65536)) as usize;
                        let mut buf = vec![0u8; 65536];
                        let ok = fs::File::open(m.m(&format!("f{i}")))
                            .and_then(|mut f| {
                                f.seek(SeekFrom::Start(off as u64))?;
                                f.read_exact(&mut buf)
                            })
                            .is_ok_and(|_| buf == want[i][off..off + 65536]);
                        reads.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Bench {
            m,
            sdk_lru,
            wat_lru,
            stop,
            reads,
            bad,
            readers,
        }
    }

    /// Stops the readers: (reads, reads failed or wrong).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers {
            r.join().unwrap();
        }
        (
            self.reads.load(Ordering::Relaxed),
            self.bad.load(Ordering::Relaxed),
        )
    }
}

fn row(what: &str, v: &mut [f64]) {
    if v.is_empty() {
        return;
    }
    println!(
        "| {what} | {:.0} | {:.0} | {:.0} |",
        pct(v, 0.5),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

#[derive(Default)]
struct Timings {
    close_us: Vec<f64>,
    swap_us: Vec<f64>,
    optimized_us: Vec<f64>,
    stuck: usize,
}

/// Copies `bytes` to `.kplug/plugins/NAME`, times the `close()` and reads the time from its
/// start to the plugin's first decision from `.kplug/status`; with `optimized`, also waits
/// until its optimized code serves (`code`), timing that from the same start.
fn swap(m: &TestMount, name: &str, bytes: &[u8], t: &mut Timings, optimized: bool) {
    let path = m.m(&format!(".kplug/plugins/{name}"));
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    let start = Instant::now();
    drop(f); // close(): the plugin is loaded and installed here
    t.close_us.push(start.elapsed().as_secs_f64() * 1e6);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut decided = false;
    loop {
        let st: serde_json::Value =
            serde_json::from_slice(&fs::read(m.m(".kplug/status")).unwrap()).unwrap();
        let p = st["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["file"] == name)
            .cloned()
            .unwrap_or_default();
        if !decided && let Some(us) = p["swap_latency_us"].as_u64() {
            t.swap_us.push(us as f64);
            decided = true;
        }
        let done = !optimized || p["code"] == "optimized";
        if decided && done {
            if optimized {
                t.optimized_us.push(start.elapsed().as_secs_f64() * 1e6);
            }
            return;
        }
        if Instant::now() > deadline {
            t.stuck += 1;
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn nix_is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
