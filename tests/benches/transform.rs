//! Transform throughput, WASM against native: the same Rust code of a shipped transform
//! (`policies/grep`, `cut`, `gunzip`) run through the engine (its catalog module, compiled by
//! wasmtime, fed 64 KiB chunks through linear memory as a view feeds it) and linked natively
//! (`kplug_sdk::transform::run_native`, the same chunks). One JSON line per transform: MiB/s
//! of input each way, best of `RUNS` passes over `MIB` MiB of a CSV log whose lines hold the
//! pattern at 1 % (`scripts/bench.sh --only views` runs it; the target is WASM at
//! least half of native).

use std::io::Write;
use std::time::Instant;

use kplug_engine::{EngineConfig, PluginEngine};
use kplug_sdk::Transform;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn csv(bytes: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(bytes + 100);
    let mut i = 0u64;
    while s.len() < bytes {
        let tag = if i % 100 == 42 { "ZZPAT" } else { "ok" };
        writeln!(s, "{i},{tag},{},{}", i * 2654435761 % 1000003, i % 97).unwrap();
        i += 1;
    }
    s
}

/// The native side of a transform: input bytes to output length.
type Native = Box<dyn FnMut(&[u8]) -> usize>;
/// A transform: its name, parameters, input, and native side.
type Case<'a> = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'a [u8],
    Native,
);

fn best(runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut t = f64::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let start = Instant::now();
        out = f();
        t = t.min(start.elapsed().as_secs_f64());
    }
    (t, out)
}

fn main() {
    let mib = env("MIB", 64);
    let runs = env("RUNS", 3);
    let text = csv(mib << 20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let gz = gz.finish().unwrap();
    let engine = PluginEngine::new(EngineConfig::default()).unwrap();
    let chunk = kplug_abi::TRANSFORM_IN_BYTES;
    let cases: Vec<Case> = vec![
        (
            "grep",
            vec![("pattern", "ZZPAT")],
            &text,
            Box::new(move |d: &[u8]| {
                let mut t = kplug_policy_grep::Grep::new("ZZPAT", false);
                run(&mut t, d, chunk)
            }),
        ),
        (
            "cut",
            vec![("fields", "1;3")],
            &text,
            Box::new(move |d: &[u8]| {
                let mut t = kplug_policy_cut::Cut::new(&[1, 3], b',');
                run(&mut t, d, chunk)
            }),
        ),
        (
            "gunzip",
            vec![],
            &gz,
            Box::new(move |d: &[u8]| {
                let mut t = kplug_policy_gunzip::Gunzip::default();
                run(&mut t, d, chunk)
            }),
        ),
    ];
    for (name, params, input, mut native) in cases {
        let module = kplug_catalog::find(name).expect("shipped transform").wasm;
        let mut t = engine
            .compile(name, module)
            .unwrap()
            .instantiate_transform(&params)
            .unwrap();
        let (wasm_s, wasm_out) = best(runs, || {
            let mut at = 0;
            let mut read = |b: &mut [u8]| {
                let n = b.len().min(input.len() - at);
                b[..n].copy_from_slice(&input[at..at + n]);
                at += n;
                Ok(n)
            };
            t.run(Some(input.len() as u64), u64::MAX, &mut read)
                .unwrap()
                .0
                .len()
        });
        let (native_s, native_out) = best(runs, || native(input));
        assert_eq!(
            wasm_out, native_out,
            "{name}: WASM and native outputs differ"
        );
        let in_mib = input.len() as f64 / (1 << 20) as f64;
        println!(
            "{{\"transform\": \"{name}\", \"input_mib\": {in_mib:.1}, \"output_mib\": {:.2}, \"wasm_mib_s\": {:.1}, \"native_mib_s\": {:.1}, \"wasm_over_native\": {:.3}}}",
            wasm_out as f64 / (1 << 20) as f64,
            in_mib / wasm_s,
            in_mib / native_s,
            native_s / wasm_s
        );
    }
}

fn run<T: Transform>(t: &mut T, d: &[u8], chunk: usize) -> usize {
    kplug_sdk::transform::run_native(t, d, chunk).unwrap().len()
}
