//! Views (`MOUNT/.kplug/views/NAME/`, ABI 1.6 transforms) through real mounts: each shipped
//! transform against a plain reference implementation (std, flate2), POSIX sizes and reads
//! (`stat` before the first read, `pread` anywhere, repeated reads, a source changed through
//! the mount and behind it), removal, `.kplug/stats`, and hostile transforms (a trap
//! mid-stream, an infinite loop, an output length past the buffer, a decompression bomb over
//! the cap): EIO and status, nothing partial served, the plain tree and other views intact.
#![cfg(feature = "mount-tests")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kplugfs_tests::{TestMount, drop_plugin, exported_policy, plugin, status, with_custom_section};

/// A log of `lines` lines, one in 100 holding `ERR`, with digits and commas.
fn log_text(lines: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..lines {
        let tag = if i % 100 == 7 { "ERR" } else { "ok" };
        s.push_str(&format!(
            "{i},{tag},user{} secret {},{}\n",
            i % 13,
            i * 7,
            i % 5
        ));
    }
    s.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Load built-in transform `name` with `params` into the mount.
fn load(m: &TestMount, name: &str, params: &str) {
    if !params.is_empty() {
        drop_plugin(m, &format!("{name}.params"), params.as_bytes()).unwrap();
    }
    drop_plugin(m, &format!("{name}.wasm"), &exported_policy(name)).unwrap();
}

/// `stat` (before any read), a whole read, and preads at many offsets of `path` all agree
/// with `want`.
fn check_file(path: &Path, want: &[u8]) {
    let size = fs::metadata(path).unwrap().len();
    assert_eq!(size, want.len() as u64, "stat size of {}", path.display());
    assert_eq!(fs::read(path).unwrap(), want, "{}", path.display());
    let f = fs::File::open(path).unwrap();
    let n = want.len() as u64;
    for off in [0, 1, n / 3, n / 2, n.saturating_sub(5), n, n + 10] {
        let mut buf = vec![0u8; 4096];
        let got = f.read_at(&mut buf, off).unwrap();
        let start = (off as usize).min(want.len());
        let end = (start + 4096).min(want.len());
        assert_eq!(&buf[..got], &want[start..end], "pread at {off}");
    }
}

fn grep_ref(text: &[u8], pat: &str, invert: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if String::from_utf8_lossy(line).contains(pat) != invert {
            out.extend_from_slice(line);
        }
    }
    out
}

fn view_stats(m: &TestMount, name: &str) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
    s["views"][name].clone()
}

fn view_status(m: &TestMount, name: &str) -> serde_json::Value {
    status(m)["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn shipped_transforms_match_their_references() {
    let log = log_text(30_000); // ~1 MiB: many 64 KiB chunks
    let records: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
    let m = TestMount::with_backing(&[], |b| {
        fs::create_dir_all(b.join("a/b")).unwrap();
        fs::write(b.join("a/log"), &log).unwrap();
        fs::write(b.join("a/b/rec.bin"), &records).unwrap();
        fs::write(b.join("a/log.gz"), gzip(&log)).unwrap();
        fs::write(b.join("empty"), b"").unwrap();
    });
    load(&m, "grep", "pattern=ERR\n");
    load(&m, "cut", "fields=1;3\n");
    load(&m, "sample", "every=7\n");
    load(&m, "redact", "pattern=secret\ndigits=1\n");
    load(&m, "gunzip", "");
    let mut views: Vec<String> = fs::read_dir(m.m(".kplug/views"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    views.sort();
    assert_eq!(views, ["cut", "grep", "gunzip", "redact", "sample"]);
    // A mirror of the tree, .kplug hidden.
    let mut top: Vec<String> = fs::read_dir(m.m(".kplug/views/grep"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["a", "empty"]);

    check_file(
        &m.m(".kplug/views/grep/a/log"),
        &grep_ref(&log, "ERR", false),
    );
    check_file(&m.m(".kplug/views/grep/empty"), b"");
    let cut_ref: Vec<u8> = log
        .split_inclusive(|&b| b == b'\n')
        .flat_map(|l| {
            let s = String::from_utf8_lossy(l);
            let f: Vec<&str> = s.trim_end_matches('\n').split(',').collect();
            format!("{},{}\n", f[0], f[2]).into_bytes()
        })
        .collect();
    check_file(&m.m(".kplug/views/cut/a/log"), &cut_ref);
    let sample_ref: Vec<u8> = log
        .split_inclusive(|&b| b == b'\n')
        .step_by(7)
        .flatten()
        .copied()
        .collect();
    check_file(&m.m(".kplug/views/sample/a/log"), &sample_ref);
    let redact_ref: Vec<u8> = String::from_utf8(log.clone())
        .unwrap()
        .replace("secret", "######")
        .bytes()
        .map(|b| if b.is_ascii_digit() { b'#' } else { b })
        .collect();
    check_file(&m.m(".kplug/views/redact/a/log"), &redact_ref);
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&fs::read(m.m("a/log.gz")).unwrap()[..]),
        &mut plain,
    )
    .unwrap();
    check_file(&m.m(".kplug/views/gunzip/a/log.gz"), &plain);
    // Not gzip: EIO for that file only, the view's last error says why.
    let e = fs::read(m.m(".kplug/views/gunzip/a/log")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    assert!(
        view_status(&m, "gunzip")["last_error"]
            .as_str()
            .unwrap()
            .contains("a/log")
    );
    check_file(&m.m(".kplug/views/gunzip/a/log.gz"), &plain);

    // The plain tree is unchanged; views are read-only.
    assert_eq!(fs::read(m.m("a/log")).unwrap(), log);
    let w = fs::OpenOptions::new()
        .write(true)
        .open(m.m(".kplug/views/grep/a/log"));
    assert!(w.is_err());

    // Stats: bytes and records in and out.
    let g = view_stats(&m, "grep");
    assert!(g["bytes_in"].as_u64().unwrap() >= log.len() as u64, "{g}");
    assert_eq!(
        g["bytes_out"].as_u64().unwrap() % grep_ref(&log, "ERR", false).len() as u64,
        0,
        "{g}"
    );
    assert!(g["records_in"].as_u64().unwrap() >= 30_000, "{g}");
    assert!(g["records_out"].as_u64().unwrap() >= 300, "{g}");
    assert!(g["cache_hits"].as_u64().unwrap() > 0, "{g}");
    // A size-preserving view's size needs no pass.
    assert!(
        view_status(&m, "redact")["size_preserving"]
            .as_bool()
            .unwrap()
    );
    // Fixed-size records.
    load(&m, "sample", "every=3\nrecord=10\n");
    let rec_ref: Vec<u8> = records.chunks(10).step_by(3).flatten().copied().collect();
    check_file(&m.m(".kplug/views/sample/a/b/rec.bin"), &rec_ref);
}

#[test]
fn a_per_caller_view_depends_on_the_reader() {
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("card"), b"card 4111 1111 secret\n").unwrap();
    });
    // Let nobody reach the mount point.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(m.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    load(&m, "redact", "exempt-uid=0\n");
    let v = m.m(".kplug/views/redact/card");
    assert!(view_status(&m, "redact")["per_caller"].as_bool().unwrap());
    // Root is exempt: the bytes as they are; nobody gets them masked, same size.
    check_file(&v, b"card 4111 1111 secret\n");
    let out = kplugfs_tests::as_nobody(&format!("cat {}", v.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"card #### #### secret\n");
    check_file(&v, b"card 4111 1111 secret\n");
}

#[test]
fn a_changed_source_is_seen_and_removal_removes_the_view() {
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("f"), b"keep ERR 1\ndrop\n").unwrap();
    });
    load(&m, "grep", "pattern=ERR");
    let v = m.m(".kplug/views/grep/f");
    check_file(&v, b"keep ERR 1\n");
    // Through the mount.
    fs::write(m.m("f"), b"x\nERR a\nERR b\n").unwrap();
    check_file(&v, b"ERR a\nERR b\n");
    // Behind it (the backing file, a new size).
    fs::write(m.b("f"), b"ERR behind, longer than before\nno\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    check_file(&v, b"ERR behind, longer than before\n");
    // An open descriptor keeps the output it opened on.
    let f = fs::File::open(&v).unwrap();
    fs::write(m.m("f"), b"ERR new\n").unwrap();
    let mut buf = [0u8; 64];
    let n = f.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"ERR behind, longer than before\n");
    drop(f);
    check_file(&v, b"ERR new\n");
    fs::remove_file(m.m(".kplug/plugins/grep.wasm")).unwrap();
    assert!(!m.m(".kplug/views/grep").exists());
    assert_eq!(fs::read_dir(m.m(".kplug/views")).unwrap().count(), 0);
}

/// A transform first served from baseline code keeps its view when its optimized code
/// replaces it: the output computed before is kept (not computed again), and the view's
/// counters go on.
#[test]
fn a_views_tier_up_keeps_its_outputs_and_counters() {
    use std::time::{Duration, Instant};
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("f"), b"x\nERR a\nok\nERR b\n").unwrap();
    });
    drop_plugin(&m, "grep.params", b"pattern=ERR").unwrap();
    let bytes = with_custom_section(
        &exported_policy("grep"),
        &format!("view tiers {:?}", Instant::now()),
    );
    drop_plugin(&m, "grep.wasm", &bytes).unwrap();
    assert_eq!(plugin(&status(&m), "grep")["code"], "baseline");
    let v = m.m(".kplug/views/grep/f");
    check_file(&v, b"ERR a\nERR b\n");
    assert_eq!(view_stats(&m, "grep")["streams"], 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while plugin(&status(&m), "grep")["code"] != "optimized" {
        assert!(Instant::now() < deadline, "never ran optimized code");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(view_status(&m, "grep")["state"], "active");
    check_file(&v, b"ERR a\nERR b\n");
    let st = view_stats(&m, "grep");
    assert_eq!(st["streams"], 1, "kept, not computed again: {st}");
    assert!(st["cache_hits"].as_u64().unwrap() >= 1, "{st}");
    // Still the file's view: removing the file removes it.
    fs::remove_file(m.m(".kplug/plugins/grep.wasm")).unwrap();
    assert!(!m.m(".kplug/views/grep").exists());
}

/// An output over 64 MiB is spilled to the spool (an unlinked file, `$TMPDIR` here) and
/// served from there: `stat`, whole reads and preads agree with the reference, the view's
/// memory holds none of it, and a changed source computes it again.
#[test]
fn a_large_output_is_spilled_to_disk_and_served_whole() {
    let spool = tempfile::tempdir_in("/var/tmp").unwrap();
    // 80 MiB of log text, about 7 MiB of gzip.
    let plain = log_text(2_500_000);
    assert!(plain.len() > 80 << 20, "{}", plain.len());
    let gz = gzip(&plain);
    let m = TestMount::with_backing_env(&[], &[("TMPDIR", spool.path())], |b| {
        fs::write(b.join("big.gz"), &gz).unwrap();
    });
    load(&m, "gunzip", "");
    check_file(&m.m(".kplug/views/gunzip/big.gz"), &plain);
    let st = view_stats(&m, "gunzip");
    assert_eq!(st["spilled_bytes"], plain.len() as u64, "{st}");
    assert_eq!(st["cached_bytes"], 0, "{st}");
    assert_eq!(st["streams"], 1, "computed once: {st}");
    // Unlinked: the spool directory shows nothing of it.
    assert_eq!(fs::read_dir(spool.path()).unwrap().count(), 0);
    // A new version behind the mount: computed again, and the old spill replaced.
    let plain2 = log_text(2_400_000);
    fs::write(m.b("big.gz"), gzip(&plain2)).unwrap();
    check_file(&m.m(".kplug/views/gunzip/big.gz"), &plain2);
    let st = view_stats(&m, "gunzip");
    assert_eq!(st["spilled_bytes"], plain2.len() as u64, "{st}");
    assert_eq!(st["streams"], 2, "{st}");
}

/// `zstd -c -LEVEL` of `data` (the zstd tool: scripts/setup.sh installs it).
fn zstd_tool(data: &[u8], level: &str) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("zstd")
        .args(["-q", "-c", level])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the zstd tool (scripts/setup.sh installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The zstd view against the zstd tool: fast and high levels (checksums on, the tool's
/// default), two frames one after another, and a file that is not zstd.
#[test]
fn the_zstd_view_matches_the_zstd_tool() {
    let log = log_text(60_000);
    let tail = log_text(1_000);
    let mut two = zstd_tool(&log, "-1");
    two.extend(zstd_tool(&tail, "-19"));
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("fast.zst"), zstd_tool(&log, "-1")).unwrap();
        fs::write(b.join("high.zst"), zstd_tool(&log, "-19")).unwrap();
        fs::write(b.join("two.zst"), &two).unwrap();
        fs::write(b.join("plain"), &tail).unwrap();
    });
    load(&m, "zstd", "");
    check_file(&m.m(".kplug/views/zstd/fast.zst"), &log);
    check_file(&m.m(".kplug/views/zstd/high.zst"), &log);
    let mut both = log.clone();
    both.extend_from_slice(&tail);
    check_file(&m.m(".kplug/views/zstd/two.zst"), &both);
    let e = fs::read(m.m(".kplug/views/zstd/plain")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    assert_eq!(view_status(&m, "zstd")["state"], "active");
}

/// A transform module whose chunk export runs `chunk` (WAT) after copying the input out.
fn hostile(chunk: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 8)
          (global $calls (mut i32) (i32.const 0))
          (func (export "kplug_abi_version") (result i32) i32.const 0x10006)
          (func (export "kplug_transform_in_buf") (result i32) i32.const 65536)
          (func (export "kplug_transform_out_buf") (result i32) i32.const 131072)
          (func (export "kplug_transform_begin") (param i64) (result i32) i32.const 0)
          (func (export "kplug_transform_chunk") (param $len i32) (param $last i32) (result i32)
            global.get $calls i32.const 1 i32.add global.set $calls
            (memory.copy (i32.const 131072) (i32.const 65536) (local.get $len))
            {chunk}))"#
    ))
    .unwrap()
}

#[test]
fn hostile_transforms_fail_their_view_only() {
    let big = log_text(20_000);
    let m = TestMount::with_backing(&[], |b| {
        fs::write(b.join("big"), &big).unwrap();
        fs::write(b.join("small"), b"ERR one\n").unwrap();
    });
    load(&m, "grep", "pattern=ERR");
    let cases = [
        // Trap at the third call: mid-stream.
        (
            "trap",
            "(if (i32.eq (global.get $calls) (i32.const 3)) (then unreachable)) local.get $len",
            true,
        ),
        ("spin", "(loop $l br $l) i32.const 0", true),
        ("liar", "i32.const 262145", true),
        // Endless output (the MORE bit forever): over the output cap, a stream error.
        (
            "bomb",
            "(memory.fill (i32.const 131072) (i32.const 66) (i32.const 262144)) i32.const 0x40040000",
            false,
        ),
    ];
    for (name, chunk, fault) in cases {
        drop_plugin(&m, &format!("{name}.wasm"), &hostile(chunk)).unwrap();
        let e = fs::read(m.m(&format!(".kplug/views/{name}/big"))).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}");
        let st = view_status(&m, name);
        if fault {
            assert_eq!(st["state"], "failed", "{name}: {st}");
            assert!(st["error"].as_str().is_some(), "{name}: {st}");
            // Out of service: even a file it could have served fails, stat included.
            assert!(fs::read(m.m(&format!(".kplug/views/{name}/small"))).is_err());
            assert_eq!(kplugfs_tests::plugin(&status(&m), name)["state"], "failed");
            assert_eq!(view_stats(&m, name)["faults"], 1);
        } else {
            assert_eq!(st["state"], "active", "{name}: {st}");
            assert!(st["last_error"].as_str().unwrap().contains("cap"), "{st}");
            assert_eq!(view_stats(&m, name)["errors"], 1);
        }
        // The plain tree and another view are intact.
        assert_eq!(fs::read(m.m("big")).unwrap(), big);
        check_file(&m.m(".kplug/views/grep/small"), b"ERR one\n");
    }
}
