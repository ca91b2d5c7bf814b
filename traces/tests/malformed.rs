//! Malformed input: every error names the file, the line or record, and the reason, and the
//! reader stops after it.

use kplug_traces::{Format, Location, Request, TraceError, TraceReader, TraceWriter};

/// Reads `bytes` as `format` named `name`; returns the requests before the error and the error.
fn first_error(bytes: &[u8], name: &str, format: Format) -> (usize, TraceError) {
    let mut r = match TraceReader::new(bytes, name, format) {
        Ok(r) => r,
        Err(e) => return (0, e),
    };
    let mut ok = 0;
    loop {
        match r.next() {
            Some(Ok(_)) => ok += 1,
            Some(Err(e)) => {
                assert!(r.next().is_none(), "reader must stop after an error");
                return (ok, e);
            }
            None => panic!("no error after {ok} requests"),
        }
    }
}

fn assert_msg(e: &TraceError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "`{msg}` lacks `{p}`");
    }
}

#[test]
fn truncated_oracle_record() {
    let mut bytes = Vec::new();
    for id in 1..=3u64 {
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&4096u32.to_le_bytes());
        bytes.extend_from_slice(&(-1i64).to_le_bytes());
    }
    bytes.truncate(24 * 2 + 10);
    let (ok, e) = first_error(&bytes, "t.oracleGeneral.bin", Format::Oracle);
    assert_eq!(ok, 2);
    assert_eq!(e.location(), Some(Location::Record { index: 3, byte: 48 }));
    assert_msg(
        &e,
        &[
            "t.oracleGeneral.bin",
            "record 3 (byte 48)",
            "truncated",
            "10 bytes into this 24-byte record",
        ],
    );
}

#[test]
fn truncated_vscsi_and_kplug_records() {
    let bytes = std::fs::read(manifest_dir().join("data/cloudPhysicsIO.vscsi")).unwrap();
    let (ok, e) = first_error(&bytes[..32 * 5 + 31], "v.vscsi", Format::Vscsi);
    assert_eq!(ok, 5);
    assert_msg(
        &e,
        &[
            "v.vscsi",
            "record 6 (byte 160)",
            "31 bytes into this 32-byte record",
        ],
    );

    let mut w = TraceWriter::new(Vec::new(), "k", Format::Kplug).unwrap();
    w.write(&Request {
        offset: Some(0),
        ..Request::object(1, 10)
    })
    .unwrap();
    let mut bytes = w.finish().unwrap();
    bytes.pop();
    let (ok, e) = first_error(&bytes, "k.kplug", Format::Kplug);
    assert_eq!(ok, 0);
    assert_msg(
        &e,
        &[
            "k.kplug",
            "record 1 (byte 16)",
            "31 bytes into this 32-byte record",
        ],
    );

    let (_, e) = first_error(b"KPLUGTRC\x02\x00\x20\x00\0\0\0\0", "k2", Format::Kplug);
    assert_eq!(e.location(), Some(Location::Header));
    assert_msg(&e, &["k2", "header", "unsupported version 2"]);
}

#[test]
fn bad_kplug_fields() {
    let mut w = TraceWriter::new(Vec::new(), "k", Format::Kplug).unwrap();
    w.write(&Request {
        offset: Some(0),
        ..Request::object(1, 10)
    })
    .unwrap();
    let good = w.finish().unwrap();
    let mut bad_op = good.clone();
    bad_op[16 + 28] = 7;
    assert_msg(
        &first_error(&bad_op, "k", Format::Kplug).1,
        &["record 1", "op byte is 7"],
    );
    let mut bad_flags = good.clone();
    bad_flags[16 + 29] = 0x80;
    assert_msg(
        &first_error(&bad_flags, "k", Format::Kplug).1,
        &["record 1", "undefined bits"],
    );
}

#[test]
fn non_numeric_line() {
    let (ok, e) = first_error(b"1\n2\nabc\n4\n", "ids.txt", Format::Txt);
    assert_eq!(ok, 2);
    assert_eq!(e.location(), Some(Location::Line(3)));
    assert_msg(
        &e,
        &[
            "ids.txt: line 3",
            "object id",
            "expected a decimal integer, found `abc`",
        ],
    );

    // LIRS line numbers count skipped lines.
    let (ok, e) = first_error(b"1\r\n*\r\n\r\n2\r\n-5\r\n", "s.lirs", Format::Lirs);
    assert_eq!(ok, 2);
    assert_msg(&e, &["s.lirs: line 5", "`-5`"]);

    let (_, e) = first_error(b"1\n\n2\n", "ids.txt", Format::Txt);
    assert_msg(&e, &["line 2", "empty line", "lirs"]);

    let (_, e) = first_error(b"99999999999999999999\n", "ids.txt", Format::Txt);
    assert_msg(&e, &["line 1", "does not fit in 64 bits"]);
}

#[test]
fn wrong_column_count() {
    let csv = b"version,time,op,size,lbn\n1,5,28,512,10\n1,5,28,512\n";
    let (ok, e) = first_error(csv, "c.csv", Format::Csv);
    assert_eq!(ok, 1);
    assert_msg(
        &e,
        &[
            "c.csv: line 3",
            "expected 5 comma-separated columns, found 4",
        ],
    );

    let msr = b"128166385295514663,hm,0,Write,9056014336,2048,2833,extra\n";
    assert_msg(
        &first_error(msr, "m.csv", Format::Msr).1,
        &["m.csv: line 1", "expected 7", "found 8"],
    );

    let systor = b"Timestamp,Response,IOType,LUN,Offset,Size\n1.5,0.1,R,0,4096\n";
    assert_msg(
        &first_error(systor, "s.csv", Format::Systor).1,
        &["s.csv: line 2", "expected 6", "found 5"],
    );
}

#[test]
fn bad_op() {
    let csv = b"version,time,op,size,lbn\n1,5,35,512,10\n";
    assert_msg(
        &first_error(csv, "c.csv", Format::Csv).1,
        &["c.csv: line 2", "op:", "`35`"],
    );

    let msr = b"128166385295514663,hm,0,Trim,9056014336,2048,2833\n";
    assert_msg(
        &first_error(msr, "m.csv", Format::Msr).1,
        &["line 1", "`Read` or `Write`", "`Trim`"],
    );

    let systor = b"Timestamp,Response,IOType,LUN,Offset,Size\n1.5,0.1,X,0,4096,512\n";
    assert_msg(
        &first_error(systor, "s.csv", Format::Systor).1,
        &["line 2", "`R` or `W`", "`X`"],
    );

    let mut vscsi = std::fs::read(manifest_dir().join("data/cloudPhysicsIO.vscsi")).unwrap();
    vscsi.truncate(32 * 4);
    vscsi[32 * 2 + 12] = 0x35; // SYNCHRONIZE CACHE
    let (ok, e) = first_error(&vscsi, "v.vscsi", Format::Vscsi);
    assert_eq!(ok, 2);
    assert_msg(&e, &["v.vscsi", "record 3 (byte 64)", "SCSI command 0x35"]);
}

#[test]
fn bad_headers() {
    let (_, e) = first_error(b"time,op\n1,2\n", "c.csv", Format::Csv);
    assert_msg(
        &e,
        &[
            "c.csv: line 1",
            "expected the header `version,time,op,size,lbn`",
        ],
    );
    let (_, e) = first_error(b"", "c.csv", Format::Csv);
    assert_msg(&e, &["c.csv: header", "missing the header"]);
    let (_, e) = first_error(&[0u8; 100], "z.vscsi", Format::Vscsi);
    assert_msg(&e, &["z.vscsi: header", "not a vscsi trace"]);
}

#[test]
fn oracle_size_zero_is_skipped_and_counted() {
    let mut bytes = Vec::new();
    for (id, size) in [(1u64, 10u32), (2, 0), (3, 30)] {
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(&(-1i64).to_le_bytes());
    }
    let mut r = TraceReader::new(&bytes[..], "o", Format::Oracle).unwrap();
    let ids: Vec<u64> = r.by_ref().map(|q| q.unwrap().id).collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(r.skipped(), 1);
}

#[test]
fn lirs_skips_are_counted() {
    let mut r = TraceReader::new(&b"1\n*\n\n2\r\n3"[..], "s", Format::Lirs).unwrap();
    let ids: Vec<u64> = r.by_ref().map(|q| q.unwrap().id).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(r.skipped(), 2);
}

#[test]
fn unwritable_requests_name_the_request() {
    let mut w = TraceWriter::new(Vec::new(), "out.bin", Format::Oracle).unwrap();
    w.write(&Request::object(1, 5)).unwrap();
    let e = w.write(&Request::object(2, 0)).unwrap_err();
    assert_msg(
        &e,
        &["out.bin: request 2", "cannot write as oracle", "size 0"],
    );
    let mut w = TraceWriter::new(Vec::new(), "out.csv", Format::Csv).unwrap();
    let e = w
        .write(&Request {
            offset: Some(100),
            ..Request::object(2, 5)
        })
        .unwrap_err();
    assert_msg(&e, &["out.csv: request 1", "not a multiple of 512"]);
    assert!(TraceWriter::new(Vec::new(), "x", Format::Msr).is_err());
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
