//! Hot-swap latency through a real mount: the time from the `close()` of a plugin copied into
//! `MOUNT/.kplug/plugins/` to the plugin's first decision (its first hook call once
//! installed, as `.kplug/status` reports in `swap_latency_us`), and the duration of the
//! `close()` itself (compile + validate + instantiate + install), over many swaps while
//! reader threads keep the cache busy, for modules the mount never saw (first half of the
//! swaps: compiled) and for modules it loaded before (second half: the compiled-module
//! cache). Also counts reads that failed or returned wrong bytes
//! during the swaps (must be 0).
//!
//! Run: `cargo bench -p kplugfs-tests --bench hotswap` (root, /dev/fuse). `SWAPS=N` sets
//! the number of swaps (default 200).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kplugfs_tests::{TestMount, kplugfs};

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
    let m = Arc::new(TestMount::with_backing(
        &[
            "--cache-size",
            "8MiB",
            "--block-size",
            "64KiB",
            "--no-kernel-cache",
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
    let readers: Vec<_> = (0..2)
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
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
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

    // Never seen: the SDK LRU with a custom section naming this run and swap appended, so
    // its content hash is new to the mount and to any disk cache (custom sections do not
    // change what the module does). Seen before: the two plain modules, alternately, each
    // loaded once beforehand.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut fresh = Timings::default();
    for k in 0..swaps / 2 {
        let bytes = with_custom_section(&sdk_lru, &format!("hotswap run {run} swap {k}"));
        swap(&m, "fresh.wasm", &bytes, &mut fresh);
    }
    let mut seen = Timings::default();
    swap(&m, "a.wasm", &sdk_lru, &mut Timings::default());
    swap(&m, "b.wasm", &wat_lru, &mut Timings::default());
    for k in 0..swaps - swaps / 2 {
        let (name, bytes) = if k % 2 == 0 {
            ("a.wasm", &sdk_lru)
        } else {
            ("b.wasm", &wat_lru)
        };
        swap(&m, name, bytes, &mut seen);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    println!(
        "# hot swap through a mount under 2 reader threads, {swaps} swaps: half never seen (SDK LRU with a unique custom section), half seen before (SDK LRU <-> WAT LRU)"
    );
    println!("| measure | median | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (what, t) in [("never seen", &mut fresh), ("seen before", &mut seen)] {
        row(
            &format!("{what}: close() of the copied plugin (load + install), us"),
            &mut t.close_us,
        );
        row(
            &format!("{what}: close() start -> first decision, us"),
            &mut t.swap_us,
        );
    }
    println!(
        "reads during swaps: {}, failed or wrong: {}; swaps without a decision within 5 s: {}",
        reads.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        fresh.stuck + seen.stuck
    );
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
    stuck: usize,
}

/// Copies `bytes` to `.kplug/plugins/NAME`, times the `close()` and reads the time from its
/// start to the plugin's first decision from `.kplug/status`.
fn swap(m: &TestMount, name: &str, bytes: &[u8], t: &mut Timings) {
    let path = m.m(&format!(".kplug/plugins/{name}"));
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    let start = Instant::now();
    drop(f); // close(): the plugin is loaded and installed here
    t.close_us.push(start.elapsed().as_secs_f64() * 1e6);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st: serde_json::Value =
            serde_json::from_slice(&fs::read(m.m(".kplug/status")).unwrap()).unwrap();
        let p = st["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["file"] == name)
            .cloned();
        if let Some(us) = p.and_then(|p| p["swap_latency_us"].as_u64()) {
            t.swap_us.push(us as f64);
            return;
        }
        if Instant::now() > deadline {
            t.stuck += 1;
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `wasm` with a custom section carrying `text` appended (a valid module doing the same).
fn with_custom_section(wasm: &[u8], text: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"kplugfs-bench";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(text.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn nix_is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
