//! Hot-swap latency through a real mount: the time from the `close()` of a plugin copied into
//! `MOUNT/.kplug/plugins/` to the plugin's first decision (its first hook call once
//! installed, as `.kplug/status` reports in `swap_latency_us`), and the duration of the
//! `close()` itself (compile + validate + instantiate + install), over many swaps while
//! reader threads keep the cache busy. Also counts reads that failed or returned wrong bytes
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

fn data(i: usize) -> Vec<u8> {
    (0..SIZE as u32)
        .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 9) as u8)
        .collect()
}

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
                fs::write(b.join(format!("f{i}")), data(i)).unwrap();
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
    let want: Arc<Vec<Vec<u8>>> = Arc::new((0..FILES).map(data).collect());

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

    let mut close_us = Vec::new();
    let mut swap_us = Vec::new();
    let mut stuck = 0;
    for k in 0..swaps {
        let (name, bytes) = if k % 2 == 0 {
            ("a.wasm", &sdk_lru)
        } else {
            ("b.wasm", &wat_lru)
        };
        let path = m.m(&format!(".kplug/plugins/{name}"));
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        let t = Instant::now();
        drop(f); // close(): the plugin is loaded and installed here
        close_us.push(t.elapsed().as_secs_f64() * 1e6);
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
                swap_us.push(us as f64);
                break;
            }
            if Instant::now() > deadline {
                stuck += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let n = swap_us.len();
    println!(
        "# hot swap through a mount under 2 reader threads, {swaps} swaps (SDK LRU <-> WAT LRU)"
    );
    println!("| measure | median | p99 | max |");
    println!("|---|---:|---:|---:|");
    let mut c = close_us.clone();
    println!(
        "| close() of the copied plugin (load + install), us | {:.0} | {:.0} | {:.0} |",
        pct(&mut c, 0.5),
        pct(&mut c, 0.99),
        pct(&mut c, 1.0)
    );
    if n > 0 {
        let mut s = swap_us.clone();
        println!(
            "| close() start -> first decision, us | {:.0} | {:.0} | {:.0} |",
            pct(&mut s, 0.5),
            pct(&mut s, 0.99),
            pct(&mut s, 1.0)
        );
    }
    println!(
        "reads during swaps: {}, failed or wrong: {}; swaps without a decision within 5 s: {stuck}",
        reads.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed)
    );
}

fn nix_is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
