//! The real traces in `data/` against the counts libCacheSim reports for them
//! (shared/reference/README.md): request and unique-id counts, identical id sequences across the
//! four cloudPhysicsIO encodings, the 4 KiB block split, and format detection.

use std::{collections::HashSet, path::PathBuf};

use kplug_traces::{
    Format, Op, ReadOptions, Request, TraceInfo, TraceIterExt, TraceReader, fill_next_access, open,
    open_with,
};

fn data(name: &str) -> PathBuf {
    manifest_dir().join("data").join(name)
}

fn read_all(name: &str, format: Format) -> Vec<Request> {
    open(data(name), format)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

const CLOUD: [(&str, Format); 4] = [
    ("cloudPhysicsIO.txt", Format::Txt),
    ("cloudPhysicsIO.csv", Format::Csv),
    ("cloudPhysicsIO.vscsi", Format::Vscsi),
    ("cloudPhysicsIO.oracleGeneral.bin", Format::Oracle),
];

#[test]
fn cloudphysics_counts_and_identical_ids_in_all_encodings() {
    let mut sequences = Vec::new();
    for (name, format) in CLOUD {
        let reqs = read_all(name, format);
        assert_eq!(reqs.len(), 113_872, "{name}");
        let unique: HashSet<u64> = reqs.iter().map(|r| r.id).collect();
        assert_eq!(unique.len(), 48_974, "{name}");
        sequences.push(reqs.iter().map(|r| r.id).collect::<Vec<_>>());
    }
    for s in &sequences[1..] {
        assert!(s == &sequences[0], "id sequences differ");
    }
}

#[test]
fn cloudphysics_csv_and_vscsi_agree_on_everything_they_share() {
    let csv = read_all("cloudPhysicsIO.csv", Format::Csv);
    let vscsi = read_all("cloudPhysicsIO.vscsi", Format::Vscsi);
    let oracle = read_all("cloudPhysicsIO.oracleGeneral.bin", Format::Oracle);
    for ((c, v), o) in csv.iter().zip(&vscsi).zip(&oracle) {
        assert_eq!(
            (c.id, c.offset, c.size, c.op),
            (v.id, v.offset, v.size, v.op)
        );
        assert_eq!(c.offset, Some(c.id * 512));
        // csv and oracle both hold whole seconds; vscsi holds µs.
        assert_eq!(c.time, o.time);
        assert_eq!(c.time / 1_000_000_000, v.time / 1_000_000_000);
    }
    // oracleGeneral stores each object's first-seen size, not the request's size.
    let mut first_size = std::collections::HashMap::new();
    for (c, o) in csv.iter().zip(&oracle) {
        assert_eq!(o.size, *first_size.entry(c.id).or_insert(c.size));
    }
    assert_eq!(
        csv.iter()
            .zip(&oracle)
            .filter(|(c, o)| c.size != o.size)
            .count(),
        13_671
    );
    let writes = csv.iter().filter(|r| r.op == Op::Write).count();
    assert_eq!(writes, 66_898);
    assert_eq!(csv.len() - writes, 46_974);
}

#[test]
fn cloudphysics_4k_split_matches_reference() {
    let readers = [
        open(data("cloudPhysicsIO.csv"), Format::Csv).unwrap(),
        open(data("cloudPhysicsIO.vscsi"), Format::Vscsi).unwrap(),
    ];
    for r in readers {
        let f = r.format();
        let blocks: Vec<u64> = r
            .split_blocks(4096)
            .map(|b| b.map(|b| b.id))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(blocks.len(), 1_141_869, "{f}");
        assert_eq!(blocks.iter().collect::<HashSet<_>>().len(), 269_210, "{f}");
    }
}

#[test]
fn oracle_split_uses_first_seen_sizes() {
    // The oracleGeneral encoding keeps each object's first-seen size, so its split differs
    // from the reference (which splits the real request sizes): pinned so it stays explained.
    let sector = ReadOptions {
        format: Format::Oracle,
        oracle_sector_bytes: Some(512),
    };
    let n = open_with(data("cloudPhysicsIO.oracleGeneral.bin"), &sector)
        .unwrap()
        .split_blocks(4096)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .len();
    assert_eq!(n, 1_182_153);
}

#[test]
fn splitting_an_oracle_trace_without_sector_size_is_an_error() {
    let mut it = open(data("cloudPhysicsIO.oracleGeneral.bin"), Format::Oracle)
        .unwrap()
        .split_blocks(4096);
    let err = it.next().unwrap().unwrap_err().to_string();
    assert!(
        err.contains("request 1") && err.contains("no byte offset"),
        "{err}"
    );
    assert!(it.next().is_none());
}

#[test]
fn sprite_counts() {
    let reqs = read_all("sprite.trace", Format::Lirs);
    assert_eq!(reqs.len(), 133_996);
    assert_eq!(
        reqs.iter().map(|r| r.id).collect::<HashSet<_>>().len(),
        7_075
    );
    // No `*` lines in this file; txt reads it identically.
    assert_eq!(read_all("sprite.trace", Format::Txt), reqs);
}

#[test]
fn msr_sample() {
    let reqs = read_all("msr-cambridge1-sample.csv", Format::Msr);
    assert_eq!(reqs.len(), 1_000);
    let first = reqs[0];
    assert_eq!(first.time, 128_166_385_295_514_663 * 100);
    assert_eq!(
        (first.id, first.offset, first.size),
        (9_056_014_336, Some(9_056_014_336), 2048)
    );
    assert_eq!((first.op, first.stream), (Op::Write, 0));
    assert!(reqs.iter().all(|r| Some(r.id) == r.offset));
}

#[test]
fn systor_sample() {
    let reqs = read_all("systor17-sample.csv", Format::Systor);
    assert_eq!(reqs.len(), 999); // 1,000 lines including the header
    let first = reqs[0];
    assert_eq!(first.time, 1_456_095_145_133_076_000);
    assert_eq!(
        (first.id, first.size, first.op),
        (899_056_122_368, 131_072, Op::Read)
    );
}

#[test]
fn auto_detection_picks_each_format() {
    let cases = [
        ("cloudPhysicsIO.txt", Format::Txt),
        ("cloudPhysicsIO.csv", Format::Csv),
        ("cloudPhysicsIO.vscsi", Format::Vscsi),
        ("cloudPhysicsIO.oracleGeneral.bin", Format::Oracle),
        ("sprite.trace", Format::Lirs),
        ("msr-cambridge1-sample.csv", Format::Msr),
        ("systor17-sample.csv", Format::Systor),
    ];
    for (name, want) in cases {
        assert_eq!(
            open(data(name), Format::Auto).unwrap().format(),
            want,
            "{name}"
        );
        // Content alone (no useful name) must be enough for every file but sprite, whose
        // digits-only content is also valid txt.
        let bytes = std::fs::read(data(name)).unwrap();
        let got = TraceReader::new(&bytes[..], "stdin", Format::Auto)
            .unwrap()
            .format();
        let want_anon = if want == Format::Lirs {
            Format::Txt
        } else {
            want
        };
        assert_eq!(got, want_anon, "{name} without its name");
    }
    assert_eq!(
        open(data("cloudPhysicsIO.vscsi"), Format::Auto)
            .unwrap()
            .vscsi_version(),
        Some(1)
    );
}

#[test]
fn auto_detection_refuses_what_it_cannot_tell() {
    let err = TraceReader::new(&[0xffu8; 100][..], "x.bin", Format::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("x.bin: cannot tell the trace format"), "{err}");
    assert!(
        err.contains("auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug"),
        "{err}"
    );
    let err = TraceReader::new(&b"hello,world\n"[..], "notes.csv", Format::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hello,world"), "{err}");
    // A zstd frame cut inside its header: an error naming zstd, not an empty trace.
    let err = TraceReader::new(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..], "t.zst", Format::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("t.zst") && err.contains("zstd"), "{err}");
}

/// The compressed bytes of `plain` at `level`, as the `zstd` tool writes them.
fn zstd(plain: &[u8], level: i32) -> Vec<u8> {
    zstd::encode_all(plain, level).unwrap()
}

#[test]
fn zstd_compressed_traces_read_as_their_plain_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in CLOUD {
        let plain = std::fs::read(data(name)).unwrap();
        let want = read_all(name, format);
        // Named as libCacheSim names its traces, detected from the plain bytes; and with
        // the format given.
        let path = dir.path().join(format!("{name}.zst"));
        std::fs::write(&path, zstd(&plain, 19)).unwrap();
        for f in [Format::Auto, format] {
            let got: Vec<Request> = open(&path, f).unwrap().collect::<Result<_, _>>().unwrap();
            assert!(got == want, "{name} as {f}");
        }
        // Two frames one after another (split inside a record: the frames are bytes, not
        // records) are one trace, streamed from a reader that is not a file.
        let (a, b) = plain.split_at(plain.len() / 2 + 7);
        let two = [zstd(a, 1), zstd(b, 3)].concat();
        let got: Vec<Request> = TraceReader::new(&two[..], name, Format::Auto)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(got == want, "{name} in two frames");
        // Cut inside the second frame: the first frame's requests, then an error, never a
        // shorter trace that looks whole.
        let cut = &two[..two.len() - 100];
        let r: Result<Vec<Request>, _> = TraceReader::new(cut, name, format).unwrap().collect();
        let err = r.unwrap_err().to_string();
        assert!(
            err.contains("zstd") && err.contains("inside a frame"),
            "{name}: {err}"
        );
    }
    // A reader interrupted before every read it answers: retried, nothing lost.
    struct Interrupting<'a>(&'a [u8], bool);
    impl std::io::Read for Interrupting<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = out.len().min(self.0.len()).min(1000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let plain = std::fs::read(data("cloudPhysicsIO.vscsi")).unwrap();
    let z = zstd(&plain, 3);
    let got: Vec<Request> = TraceReader::new(Interrupting(&z, false), "t.zst", Format::Auto)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(got == read_all("cloudPhysicsIO.vscsi", Format::Vscsi));
    // A skippable frame first (as `pzstd` writes one): skipped, detected by content.
    let plain = std::fs::read(data("cloudPhysicsIO.txt")).unwrap();
    let mut skip = vec![0x53, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    skip.extend(zstd(&plain, 1));
    let got: Vec<Request> = TraceReader::new(&skip[..], "t", Format::Auto)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(got == read_all("cloudPhysicsIO.txt", Format::Txt));
    // Compressed twice: said so.
    let plain = std::fs::read(data("cloudPhysicsIO.txt")).unwrap();
    let twice = zstd(&zstd(&plain, 1), 1);
    let err = TraceReader::new(&twice[..], "t.txt.zst.zst", Format::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("decompress one layer first"), "{err}");
    // Bytes that are not a zstd frame after a whole one: the decoder's error, with the name.
    let mut junk = zstd(&plain, 1);
    junk.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3]);
    let r: Result<Vec<Request>, _> = TraceReader::new(&junk[..], "j.txt.zst", Format::Txt)
        .unwrap()
        .collect();
    let err = r.unwrap_err().to_string();
    assert!(err.contains("j.txt.zst") && err.contains("zstd"), "{err}");
}

#[test]
fn oracle_next_access_matches_recomputation() {
    let reqs = read_all("cloudPhysicsIO.oracleGeneral.bin", Format::Oracle);
    let mut recomputed = reqs.clone();
    fill_next_access(&mut recomputed);
    assert_eq!(
        reqs.iter().filter(|r| r.next_access.is_none()).count(),
        48_974
    );
    assert!(
        reqs == recomputed,
        "next-access fields differ from recomputation"
    );
}

#[test]
fn stats_on_cloudphysics() {
    let info = TraceInfo::from_requests(
        open(data("cloudPhysicsIO.oracleGeneral.bin"), Format::Oracle).unwrap(),
    )
    .unwrap();
    assert_eq!(info.requests, 113_872);
    assert_eq!(info.unique_ids, 48_974);
    assert_eq!(info.unique_bytes, 2_029_769_728); // libCacheSim's byte-mode working set
    assert_eq!(info.sequentiality, None); // oracle has no offsets

    let info = TraceInfo::from_requests(open(data("cloudPhysicsIO.vscsi"), Format::Vscsi).unwrap())
        .unwrap();
    assert_eq!((info.reads, info.writes), (46_974, 66_898));
    assert_eq!(info.bytes, info.read_bytes + info.write_bytes);
    assert_eq!(
        info.size_histogram.iter().map(|b| b.count).sum::<u64>(),
        113_872
    );
    let seq = info.sequentiality.unwrap();
    assert!(seq > 0.0 && seq < 1.0, "{seq}");
    // The first three requests are consecutive 512-byte writes.
    assert!(info.sequential_requests >= 2);
    let json = serde_json::to_string(&info).unwrap();
    let back: TraceInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(back, info);
}

/// A reader that hands out odd-sized chunks, so records and lines straddle buffer refills.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn odd_chunked_reads_match_file_reads() {
    for (name, format) in CLOUD {
        let bytes = std::fs::read(data(name)).unwrap();
        let want = read_all(name, format);
        for chunk in [1, 777, 65_535] {
            let got: Vec<Request> = TraceReader::new(
                Chunked {
                    data: &bytes,
                    chunk,
                },
                name,
                format,
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
            assert!(got == want, "{name} in {chunk}-byte chunks");
        }
    }
}

#[test]
fn overlong_line_is_an_error_not_a_buffer_growth() {
    let mut bytes = b"1\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'7', 100_000));
    let mut r = TraceReader::new(&bytes[..], "long.txt", Format::Txt).unwrap();
    assert_eq!(r.next().unwrap().unwrap().id, 1);
    let e = r.next().unwrap().unwrap_err().to_string();
    assert!(
        e.contains("long.txt: line 2") && e.contains("longer than 65536"),
        "{e}"
    );
    assert!(r.next().is_none());
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
