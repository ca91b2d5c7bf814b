//! The cost of recording a trace (`kplugfs trace record`) on the read path, in process and
//! without FUSE, so the figure is not lost in the noise of a mount: a warm 4 KiB read served
//! by the block cache, with recording off and on, in the same run. Every read of the
//! recorded run is one 32-byte record through the recorder's bounded channel to its writer
//! thread; the bench prints how many records were written and how many dropped (a full
//! channel drops instead of blocking the reader).
//!
//! Run: `cargo bench -p kplugfs-tests --bench record` (criterion; `scripts/bench-record.sh`
//! measures the same through a real mount).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kplug_daemon::data::blockcache::{BlockCache, BlockCacheConfig};
use kplug_daemon::data::{Backend, DataCache, FileRef, FileSource, Source};
use std::os::fd::OwnedFd;

const SIZE: u64 = 4 << 20;
const READ: u32 = 4096;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![7u8; SIZE as usize]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let cache = BlockCache::new(
        Arc::new(Backend::new(Duration::ZERO)),
        BlockCacheConfig {
            capacity_bytes: 2 * SIZE,
            ..Default::default()
        },
        None,
    );
    let source: Arc<dyn Source> = Arc::new(FileSource::new(Arc::new(OwnedFd::from(file))));
    let f = || FileRef {
        ino: 2,
        source: &source,
    };
    // Warm: every block resident.
    cache.read(f(), 0, SIZE as u32).unwrap();
    let mut g = c.benchmark_group("record");
    let mut off = 0u64;
    let mut step = || {
        off = (off + READ as u64 * 7) % (SIZE - READ as u64);
        off
    };
    g.bench_function("warm 4KiB read, recording off", |b| {
        b.iter(|| cache.read(f(), step(), READ).unwrap())
    });
    let trace = dir.path().join("trace.kplug");
    cache.recorder().start(&trace).unwrap();
    g.bench_function("warm 4KiB read, recording on", |b| {
        b.iter(|| cache.read(f(), step(), READ).unwrap())
    });
    let state = cache.recorder().stop().unwrap();
    g.finish();
    println!(
        "recorded {} records, dropped {}, trace {} bytes",
        state.records,
        state.dropped,
        std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
