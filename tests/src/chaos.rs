//! The chaos plugins of `fusefs/cache/tests/fixtures/chaos/` (see `fusefs/cache/tests/chaos.rs`)
//! dropped into a live mount, local or S3: plugins that depart from the ABI at random, in every
//! role, a governor over them that activates and weighs at random, a probe that filters, asks
//! paths and publishes figures at random (the last two check the host's answers), and a
//! transform (an identity) that hands its output over in pieces and departs at random. A test
//! runs verifying readers and its own writer while they are dropped ([`run_chaos`]), then
//! checks what `.kplug/status` says with [`check_chaos_status`].

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{check_status_truth, drop_plugin_at, xorshift};

const DIR: &str = "fusefs/cache/tests/fixtures/chaos/";

/// The chaos eviction plugin (a FIFO that departs from the ABI at random) with hook set `set`
/// (0 by handle, 1 batched by key, 2 one event a call), `kplug_evict_seed` if `seed` (batched
/// sets), and admission and prefetch answering at random (`roles.wat`) if `roles`: it then
/// serves all three roles.
pub fn chaos_wasm(set: usize, seed: bool, roles: bool) -> Vec<u8> {
    let hooks = [
        include_str!("../../fusefs/cache/tests/fixtures/chaos/by-handle.wat"),
        include_str!("../../fusefs/cache/tests/fixtures/chaos/by-key.wat"),
        include_str!("../../fusefs/cache/tests/fixtures/chaos/per-event.wat"),
    ][set];
    let seed = match seed && set < 2 {
        true => include_str!("../../fusefs/cache/tests/fixtures/chaos/seed.wat"),
        false => "",
    };
    let roles = match roles {
        true => include_str!("../../fusefs/cache/tests/fixtures/chaos/roles.wat"),
        false => "",
    };
    let text = include_str!("../../fusefs/cache/tests/fixtures/chaos/chaos.wat")
        .replace("{SET}", hooks)
        .replace("{SEED_EXPORT}", seed)
        .replace("{ROLES}", roles);
    parse(&text, "chaos.wat")
}

/// A chaos fixture's module, with the functions they all share (`prelude.wat`) where it marks
/// them.
fn parse(text: &str, file: &str) -> Vec<u8> {
    let prelude = include_str!("../../fusefs/cache/tests/fixtures/chaos/prelude.wat");
    wat::parse_str(text.replace("{PRELUDE}", prelude))
        .unwrap_or_else(|e| panic!("{DIR}{file}: {e}"))
}

/// The chaos governor (`governor.wat`): any activation and weight at each tick, checking the
/// host's answers; its candidates, seed and rate are parameters.
pub fn chaos_governor_wasm() -> Vec<u8> {
    let text = include_str!("../../fusefs/cache/tests/fixtures/chaos/governor.wat");
    parse(text, "governor.wat")
}

/// [`drop_chaos`] (`drops` times from `seed`) into the mount at `mnt` while 2
/// [`spawn_readers`] verify the files `f0`, `f1`, ... against `want` and `writer` runs on a
/// thread of its own until the flag it is given is set (it returns how many writes it made,
/// each checked by itself). Panics if a read or a write failed or returned wrong bytes;
/// returns the reads and the writes made.
pub fn run_chaos(
    mnt: &Path,
    want: Vec<Vec<u8>>,
    drops: usize,
    seed: u64,
    writer: impl FnOnce(&AtomicBool) -> u64 + Send + 'static,
) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let want = Arc::new(want);
    let readers = spawn_readers(mnt, &want, &stop, &reads, 2);
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || writer(&stop))
    };
    drop_chaos(mnt, &want, drops, seed);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a read failed or returned wrong bytes");
    }
    let writes = writer
        .join()
        .expect("a write failed or read back wrong bytes");
    (reads.load(Ordering::Relaxed), writes)
}

/// `n` threads reading random ranges (up to 200 KiB) of the files `f0`, `f1`, ... in `dir`
/// until `stop`, each asserting that it read exactly the bytes of `want` (file `fi` holds
/// `want[i]`), counting its reads in `reads`.
pub fn spawn_readers(
    dir: &Path,
    want: &Arc<Vec<Vec<u8>>>,
    stop: &Arc<AtomicBool>,
    reads: &Arc<AtomicU64>,
    n: u64,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|t| {
            let (dir, want, stop, reads): (PathBuf, _, _, _) =
                (dir.to_owned(), want.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut x = 0x2545_F491_4F6C_DD1Du64 ^ t;
                while !stop.load(Ordering::Relaxed) {
                    xorshift(&mut x);
                    let i = (x % want.len() as u64) as usize;
                    let size = want[i].len();
                    let off = (x >> 8) as usize % size.max(1);
                    let len = (((x >> 32) % (200 << 10)) as usize + 1).min(size - off);
                    let mut f = std::fs::File::open(dir.join(format!("f{i}"))).expect("open");
                    f.seek(SeekFrom::Start(off as u64)).unwrap();
                    let mut buf = vec![0u8; len];
                    f.read_exact(&mut buf).expect("read never fails");
                    assert!(buf == want[i][off..off + len], "f{i} at {off}, {len} bytes");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// The chaos probe (`probe.wat`): filters, paths and figures at random, checking the host's
/// answers; its seed and rate are parameters.
pub fn chaos_probe_wasm() -> Vec<u8> {
    let text = include_str!("../../fusefs/cache/tests/fixtures/chaos/probe.wat");
    parse(text, "probe.wat")
}

/// The chaos transform (`transform.wat`): a size-preserving identity handing its output over in
/// pieces, departing at random; its seed and rate are parameters.
pub fn chaos_transform_wasm() -> Vec<u8> {
    let text = include_str!("../../fusefs/cache/tests/fixtures/chaos/transform.wat");
    parse(text, "transform.wat")
}

/// Drops chaos plugins `drops` times into the mount at `mnt` (20 ms apart), from the random
/// sequence `seed`: files `chaos0` and `chaos1` alternately, each time new parameters (seed,
/// hit batch, blocks named ahead, rate of departures) and mostly a new module (a hook set,
/// with or without the seed, with or without admission and prefetch), some removed; every
/// sixth time the chaos governor `gov` over them (refused when a candidate lacks its role's
/// hooks), every fourth the chaos probe `probe` (its report read: its text, or EIO once it
/// failed), each sometimes removed, and every fifth the chaos transform `view`, whose view of
/// a file `fi` (holding `want[i]`) is read after most drops: the file's bytes, or EIO. A refused load must be EINVAL; `.kplug/status` must tell the
/// truth after every step ([`check_status_truth`]).
pub fn drop_chaos(mnt: &Path, want: &[Vec<u8>], drops: usize, seed: u64) {
    let status = || {
        let text = std::fs::read(mnt.join(".kplug/status")).expect("read .kplug/status");
        serde_json::from_slice::<serde_json::Value>(&text).expect(".kplug/status is JSON")
    };
    // A refused load (a fault replaying the resident blocks, a candidate missing) is EINVAL.
    let loaded = |r: std::io::Result<()>| match r {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
            false
        }
    };
    let remove = |name: &str| {
        let _ = std::fs::remove_file(mnt.join(".kplug/plugins").join(name));
    };
    // `NAME.params` with a seed and a rate of departures, then `NAME.wasm`.
    let drop_seeded = |name: &str, seed: u64, rate: u32, wasm: &[u8]| {
        let params = format!("seed={seed}\nrate={rate}\n");
        loaded(drop_plugin_at(
            mnt,
            &format!("{name}.params"),
            params.as_bytes(),
        ));
        loaded(drop_plugin_at(mnt, &format!("{name}.wasm"), wasm));
    };
    let mut x = seed | 1;
    // Whether the module each name last loaded serves admission and prefetch too.
    let mut with_roles = [false; 2];
    for k in 0..drops {
        xorshift(&mut x);
        let name = format!("chaos{}", k % 2);
        let params = format!(
            "seed={}\nbatch={}\nahead={}\nhints={}\nrate={}\n",
            x,
            [1, 3, 8, 256][(x >> 8) as usize % 4],
            [0, 1, 64][(x >> 16) as usize % 3],
            [0, 2, 8][(x >> 20) as usize % 3],
            [4, 30, 1000][(x >> 24) as usize % 3],
        );
        loaded(drop_plugin_at(
            mnt,
            &format!("{name}.params"),
            params.as_bytes(),
        ));
        if k % 5 != 4 {
            let roles = x >> 41 & 1 == 1;
            let wasm = chaos_wasm((x >> 32) as usize % 3, x >> 40 & 1 == 1, roles);
            if loaded(drop_plugin_at(mnt, &format!("{name}.wasm"), &wasm)) {
                with_roles[k % 2] = roles;
            }
        }
        if k % 7 == 6 {
            remove(&format!("{name}.wasm"));
        }
        if k % 6 == 5 {
            // Admission and prefetch from a name that has their hooks, if one has.
            let data = with_roles.iter().position(|r| *r).unwrap_or(0) as u64;
            let spec = |i: u64| {
                format!(
                    "chaos{}:seed={};batch={};ahead={};rate={}",
                    if i < 2 { i } else { data },
                    x ^ i,
                    [1, 4, 256][(x >> (8 + i)) as usize % 3],
                    [0, 8][(x >> (12 + i)) as usize % 2],
                    [4, 30, 1000][(x >> (16 + i)) as usize % 3],
                )
            };
            let params = format!(
                "e0={}\ne1={}\na={}\np={}\nseed={}\nrate={}\n",
                spec(0),
                spec(1),
                spec(2),
                spec(3),
                x >> 3,
                [3, 20][(x >> 44) as usize % 2]
            );
            loaded(drop_plugin_at(mnt, "gov.params", params.as_bytes()));
            loaded(drop_plugin_at(mnt, "gov.wasm", &chaos_governor_wasm()));
        }
        if k % 13 == 12 {
            remove("gov.wasm");
        }
        // The chaos probe, new parameters each time; its report is its text or EIO (failed).
        if k % 4 == 3 {
            let rate = [3, 50, 1000][(x >> 50) as usize % 3];
            drop_seeded("probe", x >> 5, rate, &chaos_probe_wasm());
            match std::fs::read(mnt.join(".kplug/probes/probe")) {
                Ok(text) => assert_eq!(text, b"chaos probe\n"),
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
            }
        }
        if k % 11 == 10 {
            remove("probe.wasm");
        }
        // The chaos transform (an identity): its view of a file is the file, or EIO.
        if k % 5 == 2 {
            let rate = [2, 8, 1000][(x >> 53) as usize % 3];
            drop_seeded("view", x >> 7, rate, &chaos_transform_wasm());
        }
        if k % 5 >= 2 && !want.is_empty() {
            let i = (x >> 20) as usize % want.len();
            match std::fs::read(mnt.join(format!(".kplug/views/view/f{i}"))) {
                Ok(bytes) => assert!(bytes == want[i], "the view of f{i}: {} bytes", bytes.len()),
                Err(e) => assert!(
                    [Some(libc::EIO), Some(libc::ENOENT)].contains(&e.raw_os_error()),
                    "the view of f{i}: {e}"
                ),
            }
        }
        check_status_truth(&status());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `.kplug/status` may say after [`drop_chaos`]: every plugin active, failed or out of
/// service; a failure one line naming the hook that faulted (serving, or replaying the
/// resident blocks at load: refused), or the governor's candidate refused at its load; no
/// fault a chaos module's sign of a wrong answer from the host (a division by zero), for the
/// files and for the governor's candidates; and the truth of [`check_status_truth`].
pub fn check_chaos_status(st: &serde_json::Value) {
    let hooks = [
        "kplug_evict_",
        "kplug_admit: ",
        "kplug_prefetch: ",
        "kplug_tick: ",
        "kplug_probe_events: ",
        "kplug_probe_report: ",
        "kplug_transform_",
        "refused at load: candidate `chaos",
    ];
    for p in st["plugins"].as_array().expect("plugins[]") {
        let state = p["state"].as_str().unwrap();
        assert!(["active", "failed", "disabled"].contains(&state), "{p}");
        if let Some(e) = p["error"].as_str()
            && state == "failed"
        {
            let e = e.trim_start_matches(
                "refused at load: plugin faulted while replaying resident blocks: ",
            );
            assert!(
                hooks.iter().any(|h| e.starts_with(h))
                    && !e.contains('\n')
                    && !e.contains("divide by zero"),
                "{p}"
            );
        }
    }
    for c in st["active"]["candidates"].as_array().expect("candidates[]") {
        if let Some(e) = c["error"].as_str() {
            assert!(!e.contains('\n') && !e.contains("divide by zero"), "{c}");
        }
    }
    check_status_truth(st);
}
