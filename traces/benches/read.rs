//! Reader throughput in requests per second, from memory (so the numbers are the parser's,
//! not the disk's): the cloudPhysicsIO encodings and a 1 M-record synthetic kplug trace.
//! Run with `cargo bench -p kplug-traces`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kplug_traces::{Format, Request, TraceIterExt, TraceReader, TraceWriter};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("data").join(name)).unwrap()
}

fn count(bytes: &[u8], format: Format) -> u64 {
    let mut n = 0u64;
    for r in TraceReader::new(bytes, "bench", format).unwrap() {
        n += black_box(r.unwrap()).id & 1;
    }
    n
}

fn readers(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    for (name, format) in [
        ("cloudPhysicsIO.oracleGeneral.bin", Format::Oracle),
        ("cloudPhysicsIO.vscsi", Format::Vscsi),
        ("cloudPhysicsIO.csv", Format::Csv),
        ("cloudPhysicsIO.txt", Format::Txt),
    ] {
        let bytes = data(name);
        g.throughput(Throughput::Elements(113_872));
        g.bench_function(format.name(), |b| b.iter(|| count(&bytes, format)));
    }

    let mut w = TraceWriter::new(Vec::new(), "bench", Format::Kplug).unwrap();
    for i in 0..1_000_000u64 {
        let r = Request {
            time: i * 1000,
            offset: Some((i % 4096) * 4096),
            stream: i % 7,
            ..Request::object(i % 7, 4096)
        };
        w.write(&r).unwrap();
    }
    let kplug = w.finish().unwrap();
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("kplug", |b| b.iter(|| count(&kplug, Format::Kplug)));

    let vscsi = data("cloudPhysicsIO.vscsi");
    g.throughput(Throughput::Elements(1_141_869));
    g.bench_function("vscsi_split_4k", |b| {
        b.iter(|| {
            TraceReader::new(&vscsi[..], "bench", Format::Vscsi)
                .unwrap()
                .split_blocks(4096)
                .map(|r| r.unwrap().id & 1)
                .sum::<u64>()
        })
    });
    g.finish();
}

criterion_group!(benches, readers);
criterion_main!(benches);

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
