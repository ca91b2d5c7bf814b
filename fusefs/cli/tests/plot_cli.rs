//! `--plot FILE` through the binary: `kplugfs sim --plot` on a real trace, `kplugfs stats
//! --db DB --plot` on a history database written here (no mount needed), and the file's
//! extension checked before any work.

mod common;
use common::ok;

use std::path::Path;
use std::process::{Command, Output};

use kplug_daemon::monitor::history::HistoryDb;
use kplug_daemon::monitor::schema::{CacheCounters, FuseOpStats, Stats};

fn kplugfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kplugfs"))
        .args(args)
        .output()
        .expect("run kplugfs")
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn trace() -> String {
    manifest_dir()
        .join("../../traces/data/sprite.trace")
        .to_str()
        .unwrap()
        .to_string()
}

/// The SVG's text elements (it parses as SVG).
fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// The PNG's size and number of distinct colours (it decodes).
fn png_size_and_colours(path: &Path) -> ((u32, u32), usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a PNG image");
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    ((info.width, info.height), colours.len())
}

#[test]
fn sim_plots_miss_ratio_curves() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mrc.svg", "mrc.png"] {
        let file = dir.path().join(name);
        ok(&kplugfs(&[
            "sim",
            "--trace",
            &trace(),
            "--policy",
            "lru,fifo",
            "--cache-size",
            "0.01,0.05,0.1",
            "--plot",
            file.to_str().unwrap(),
        ]));
        if name.ends_with(".svg") {
            let texts = svg_texts(&file);
            for want in ["sprite.trace", "miss ratio", "lru", "fifo"] {
                assert!(texts.iter().any(|t| t == want), "{want:?} in {texts:?}");
            }
        } else {
            let (size, colours) = png_size_and_colours(&file);
            assert_eq!(size, (900, 540));
            assert!(colours > 10, "{colours} colours");
        }
    }
}

#[test]
fn stats_plots_a_history_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("h.db");
    let db = HistoryDb::create(&db_path).unwrap();
    for i in 0..20u64 {
        let mut doc = Stats {
            time_unix_ms: 1_800_000_000_000 + i * 1000,
            uptime_ms: i * 1000,
            cache: CacheCounters {
                hits: i * i,
                misses: i * 3,
                ..Default::default()
            },
            ..Default::default()
        };
        doc.fuse.insert(
            "read".into(),
            FuseOpStats {
                count: i,
                bytes: i << 20,
                ..Default::default()
            },
        );
        db.insert(&doc).unwrap();
    }
    drop(db);
    let db = db_path.to_str().unwrap();
    let svg = dir.path().join("h.svg");
    let out = ok(&kplugfs(&[
        "stats",
        "--db",
        db,
        "--plot",
        svg.to_str().unwrap(),
    ]));
    assert_eq!(out.trim_end(), svg.to_str().unwrap());
    let texts = svg_texts(&svg);
    for want in ["hit ratio", "MiB/s", "read", "backend"] {
        assert!(texts.iter().any(|t| t == want), "{want:?} in {texts:?}");
    }
    let png = dir.path().join("h.PNG");
    ok(&kplugfs(&[
        "stats",
        "--db",
        db,
        "--plot",
        png.to_str().unwrap(),
    ]));
    let (size, colours) = png_size_and_colours(&png);
    assert_eq!(size, (900, 540));
    assert!(colours > 10, "{colours} colours");
}

#[test]
fn an_unknown_extension_fails_before_any_work() {
    // Neither the trace nor the database exists: the extension is refused first.
    let err = failed(&kplugfs(&[
        "sim",
        "--trace",
        "/nonexistent/trace",
        "--policy",
        "lru",
        "--cache-size",
        "0.1",
        "--plot",
        "out.jpg",
    ]));
    assert!(err.contains("must end in .svg or .png"), "{err}");
    let err = failed(&kplugfs(&[
        "stats",
        "--db",
        "/nonexistent.db",
        "--plot",
        "out",
    ]));
    assert!(err.contains("must end in .svg or .png"), "{err}");
    assert!(!Path::new("out.jpg").exists() && !Path::new("out").exists());
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
