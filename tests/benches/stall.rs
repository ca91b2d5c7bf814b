//! How long a reader can wait on plugin code: the longest read through a real mount while
//! 8 reader threads read random 64 KiB blocks (a 2 MiB cache over 16 MiB of files, so most
//! reads miss and call the eviction hooks), in scenarios of issue #21:
//!
//! - `builtin`: no plugin, the reference;
//! - `governor, N candidates x 300 ms init`: a governor whose N admission candidates each
//!   spend 300 ms in `kplug_init` is copied in while the readers read (the longest read
//!   *during its load*);
//! - `eviction hook of H us`: the WAT LRU whose every eviction hook spins H µs, copied into
//!   the empty cache, then 3 s of reading (a hook under the first tick, one around the 2 ms deadline, one past
//!   it), with the mount's defaults (`--hook-deadline 2ms --hook-budget 10ms`) and without
//!   the slow-call budget and with the old 10 ms deadline (`--hook-deadline 10ms
//!   --hook-budget 0`), the bound before the budget existed.
//!
//! Prints a markdown table: reads, p50, p99 and max read latency, and the plugin's state at
//! the end; then the real distribution of the per-call deadline: how long a runaway hook
//! (an endless loop) runs before it is interrupted, over 100 calls, with the mount's
//! default deadline (2 ms), measured through the engine directly. Run: `cargo bench -p kplugfs-tests --bench stall` (root, /dev/fuse); `STALL_SECS`
//! sets the reading time of the hook scenarios (default 3).

use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kplugfs_tests::{TestMount, drop_plugin, fixtures, status};

const FILES: usize = 4;
const SIZE: usize = 4 << 20;
const BLOCK: usize = 64 << 10;
const READERS: usize = 8;

fn mount(extra: &[&str]) -> Arc<TestMount> {
    let mut args = vec![
        "--cache-size",
        "2MiB",
        "--block-size",
        "64KiB",
        "--no-kernel-cache",
    ];
    args.extend_from_slice(extra);
    Arc::new(TestMount::with_backing(&args, |b| {
        for i in 0..FILES {
            fs::write(
                b.join(format!("f{i}")),
                kplugfs_tests::pattern(SIZE, i as u32),
            )
            .unwrap();
        }
    }))
}

/// Reader threads recording (end time, latency) of every read; a wrong byte panics.
struct Readers {
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<(Instant, Duration)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Readers {
    fn start(m: &Arc<TestMount>, want: &Arc<Vec<Vec<u8>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..READERS)
            .map(|t| {
                let (m, want, stop, done) = (m.clone(), want.clone(), stop.clone(), done.clone());
                std::thread::spawn(move || {
                    let files: Vec<fs::File> = (0..FILES)
                        .map(|i| fs::File::open(m.m(&format!("f{i}"))).unwrap())
                        .collect();
                    let mut x = 0x2545F4914F6CDD1Du64 ^ (t as u64 + 1);
                    let mut buf = vec![0u8; BLOCK];
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        kplugfs_tests::xorshift(&mut x);
                        let i = (x % FILES as u64) as usize;
                        let off = ((x >> 8) as usize % (SIZE / BLOCK)) * BLOCK;
                        let t0 = Instant::now();
                        files[i].read_exact_at(&mut buf, off as u64).unwrap();
                        let t1 = Instant::now();
                        assert!(buf == want[i][off..off + BLOCK], "wrong bytes");
                        mine.push((t1, t1 - t0));
                    }
                    done.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Readers {
            stop,
            done,
            threads,
        }
    }

    /// Stop; the latencies of the reads that ended in `[from, to]`.
    fn stop(self, from: Instant, to: Instant) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let done = self.done.lock().unwrap();
        done.iter()
            .filter(|(end, _)| *end >= from && *end <= to)
            .map(|(_, l)| *l)
            .collect()
    }
}

fn row(scenario: &str, mut lat: Vec<Duration>, state: &str) {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| ms(lat[((lat.len() - 1) as f64 * p).round() as usize]);
    if lat.is_empty() {
        println!("| {scenario} | 0 | - | - | - | {state} |");
        return;
    }
    println!(
        "| {scenario} | {} | {:.2} | {:.1} | {:.1} | {state} |",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

fn plugin_state(m: &TestMount, file: &str) -> String {
    let st = status(m);
    let p = st["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == file)
        .cloned()
        .unwrap_or_default();
    let err = p["error"].as_str().unwrap_or("");
    let err: String = err.chars().take(70).collect();
    format!("{} {}", p["state"].as_str().unwrap_or("?"), err)
        .trim()
        .to_string()
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("stall: needs root and /dev/fuse; skipped");
        return;
    }
    let secs: u64 = std::env::var("STALL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let want: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..FILES)
            .map(|i| kplugfs_tests::pattern(SIZE, i as u32))
            .collect(),
    );
    println!("# longest read under {READERS} readers (64 KiB random reads, 2 MiB cache)");
    println!("| scenario | reads | p50 ms | p99 ms | max ms | plugin at the end |");
    println!("|---|---:|---:|---:|---:|---|");

    {
        let m = mount(&[]);
        let r = Readers::start(&m, &want);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        row("builtin", r.stop(t0, Instant::now()), "-");
    }

    for n in [6usize, 32] {
        let m = mount(&[]);
        for i in 0..n {
            drop_plugin(
                &m,
                &format!("slow{i}.wasm"),
                &fixtures::admission(1, 300_000),
            )
            .unwrap();
        }
        let names: Vec<String> = (0..n).map(|i| format!("slow{i}")).collect();
        let cands: Vec<(i32, &str)> = names.iter().map(|s| (1, s.as_str())).collect();
        let gov = fixtures::governor(&cands, "", "", "");
        let r = Readers::start(&m, &want);
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        drop_plugin(&m, "gov.wasm", &gov).unwrap();
        let t1 = Instant::now();
        let lat = r.stop(t0, t1);
        row(
            &format!(
                "governor, {n} candidates x 300 ms init (load took {:.1} s)",
                (t1 - t0).as_secs_f64()
            ),
            lat,
            &plugin_state(&m, "gov.wasm"),
        );
    }

    for (label, flags) in [
        ("defaults", &[][..]),
        (
            "--hook-deadline 10ms --hook-budget 0",
            &["--hook-deadline", "10ms", "--hook-budget", "0"][..],
        ),
    ] {
        for hook_us in [300u64, 1500, 3000] {
            let m = mount(flags);
            // Loaded into the empty cache (no resident block to replay), then read: a hook
            // over the deadline faults at its first call under the readers, not at load.
            drop_plugin(&m, "slow.wasm", &fixtures::slow_lru(0, hook_us)).unwrap();
            let r = Readers::start(&m, &want);
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_secs(secs));
            let lat = r.stop(t0, Instant::now());
            row(
                &format!("eviction hook of {hook_us} us, {label}"),
                lat,
                &plugin_state(&m, "slow.wasm"),
            );
        }
    }
    deadline_distribution();
}

/// How long a runaway hook runs before the deadline interrupts it (the engine's defaults).
fn deadline_distribution() {
    use kplug_engine::{EngineConfig, Fault, PluginEngine};
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "kplug_abi_version") (result i32) (i32.const 0x10000))
             (func (export "kplug_evict_insert") (param i64) (loop $l (br $l)))
             (func (export "kplug_evict_access") (param i64))
             (func (export "kplug_evict_remove") (param i64))
             (func (export "kplug_evict_victim") (result i64) (i64.const -1)))"#,
    )
    .unwrap();
    let compiled = engine.compile("runaway", &wasm).unwrap();
    let mut took = Vec::new();
    for _ in 0..100 {
        let mut p = compiled.instantiate(&[], 64).unwrap();
        let t = Instant::now();
        let f = p.evict_insert(1, 1).unwrap_err();
        took.push(t.elapsed());
        assert!(matches!(f.fault, Fault::Timeout), "{f}");
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\nrunaway hook interrupted after (default deadline, 100 calls): min {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(took[0]),
        ms(took[50]),
        ms(took[98]),
        ms(took[99])
    );
}
