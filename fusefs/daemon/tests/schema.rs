//! The typed schema of `.kplug/stats` and `.kplug/status` (`monitor::schema`) against its
//! documentation and the history database.
//!
//! A mount core (no FUSE) with a block cache, real kernel hints (readahead(2)), history, a
//! plugin, its parameter file, a governor with candidates and a refused module renders both
//! documents with every section present. Every field of both must be named in
//! docs/METRICS.md (in the section of its document), every FUSE operation too; a stats
//! document stored by the history writer must read back equal.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use kplug_daemon::control::{self, Owner};
use kplug_daemon::data::Backend;
use kplug_daemon::data::blockcache::{BlockCache, BlockCacheConfig, HintSink};
use kplug_daemon::fs::inode::ROOT_INO;
use kplug_daemon::fs::{Caller, FsConfig, KplugFs, LocalFs};
use kplug_daemon::monitor::history::{HistoryConfig, HistoryDb, HistoryState};
use kplug_daemon::monitor::metrics::FuseOp;
use kplug_daemon::monitor::schema::{Stats, Status, StoreKindStats, StoreStats};
use kplug_daemon::mount::BridgeHints;

struct Mount {
    _dir: tempfile::TempDir,
    fs: KplugFs,
    control: Arc<control::Control>,
}

/// Copy `bytes` into `.kplug/plugins/NAME` as `cp` would; the close()'s result.
fn drop_file(m: &Mount, name: &str, bytes: &[u8]) -> kplug_daemon::Result<()> {
    let ctl = m.fs.lookup(ROOT_INO, OsStr::new(".kplug")).unwrap();
    let plugins = m.fs.lookup(ctl.attr.ino, OsStr::new("plugins")).unwrap();
    let (_, o) =
        m.fs.create(
            plugins.attr.ino,
            OsStr::new(name),
            0o644,
            0,
            libc::O_WRONLY,
            Caller::ROOT,
        )
        .unwrap();
    m.fs.write(o.fh, 0, bytes).unwrap();
    let r = m.fs.flush(o.fh, 0);
    m.fs.release(o.fh).unwrap();
    r
}

/// A mount with every section of both documents present.
fn full_mount() -> Mount {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
    let hints: Arc<dyn HintSink> = Arc::new(BridgeHints(
        kplug_bridge::HintSink::new(kplug_bridge::Mode::Syscall).unwrap(),
    ));
    let cache = BlockCache::new(
        Arc::new(Backend::new(Duration::ZERO)),
        BlockCacheConfig {
            block_size: 64 << 10,
            capacity_bytes: 4 << 20,
            ..Default::default()
        },
        Some(hints),
    );
    let local = LocalFs::new(dir.path(), cache.clone(), FsConfig::default()).unwrap();
    let mut fs = KplugFs::new(Arc::new(local), Duration::from_secs(1));
    let control = control::mount(
        &mut fs,
        cache,
        None,
        Owner { uid: 0, gid: 0 },
        kplug_engine::EngineConfig::default(),
    )
    .unwrap();
    control.attach_history(Arc::new(HistoryState::new(HistoryConfig {
        path: dir.path().join("h.db"),
        period: Duration::from_secs(1),
        retention: Duration::from_secs(60),
    })));
    let m = Mount {
        _dir: dir,
        fs,
        control,
    };
    for &op in FuseOp::ALL {
        drop(m.fs.fuse_metrics().start(op));
    }
    drop_file(&m, "lru.params", b"# no parameters\n").unwrap();
    drop_file(&m, "lru.wasm", kplug_catalog::find("lru").unwrap().wasm).unwrap();
    drop_file(
        &m,
        "scanboost.wasm",
        kplug_catalog::find("scanboost").unwrap().wasm,
    )
    .unwrap();
    assert!(drop_file(&m, "junk.wasm", b"not wasm").is_err());
    // A transform: its view shows in both documents.
    drop_file(&m, "grep.params", b"pattern=x\n").unwrap();
    drop_file(&m, "grep.wasm", kplug_catalog::find("grep").unwrap().wasm).unwrap();
    // Sequential reads: the readahead built-in prefetches and hints the kernel.
    let e = m.fs.lookup(ROOT_INO, OsStr::new("f")).unwrap();
    let o = m.fs.open(e.attr.ino, libc::O_RDONLY, Caller::ROOT).unwrap();
    for i in 0..16 {
        m.fs.read(o.fh, i << 16, 64 << 10).unwrap();
    }
    m.fs.release(o.fh).unwrap();
    m
}

/// Every leaf path of a JSON document: object keys joined by `.`, the keys of `maps` as
/// `<op>`/`<name>`, the elements of arrays of objects as `[]` (an array of strings is a leaf).
fn leaves(v: &serde_json::Value, path: &str, maps: &[(&str, &str)], out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        serde_json::Value::Object(o) => {
            for (k, child) in o {
                let key = maps
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map_or(k.as_str(), |(_, placeholder)| placeholder);
                leaves(child, &join(key), maps, out);
            }
        }
        serde_json::Value::Array(a) if a.iter().any(|c| c.is_object()) => {
            for child in a {
                leaves(child, &format!("{path}[]"), maps, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

/// The part of docs/METRICS.md from `heading` to the next heading of the same level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/METRICS.md has no {heading:?}"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn documented(text: &str, name: &str) -> bool {
    // Latency percentiles are documented as `x.latency_us.p50`, `.p90`, ...
    text.contains(&format!("`{name}`"))
        || name.rsplit_once('.').is_some_and(|(head, last)| {
            text.contains(&format!("`{head}.p50`")) && text.contains(&format!("`.{last}`"))
        })
}

#[test]
fn every_field_of_both_documents_is_documented() {
    let m = full_mount();
    let mut stats = m.control.stats();
    let status = m.control.status();
    // A directory mount has no store section: its fields, as an S3 mount renders them.
    assert!(stats.store.is_none());
    stats.store = Some(StoreStats {
        requests: [("get".to_string(), StoreKindStats::default())].into(),
        source: "s3://bucket/".into(),
    });
    assert!(
        stats.kernel_hints.as_ref().is_some_and(|h| h.forwarded > 0),
        "{stats:?}"
    );
    assert!(stats.history.is_some());
    assert!(stats.plugins.contains_key("lru") && stats.plugins.contains_key("scanboost"));
    assert!(stats.views.contains_key("grep") && !status.views.is_empty());
    assert!(!status.active.candidates.is_empty(), "{status:?}");
    assert!(status.plugins.iter().any(|p| p.error.is_some()));
    assert!(status.plugins.iter().any(|p| p.params.is_some()));
    let text = std::fs::read_to_string(manifest_dir().join("../../docs/METRICS.md")).unwrap();
    let mut names = Vec::new();
    leaves(
        &serde_json::to_value(&stats).unwrap(),
        "",
        &[
            ("fuse", "<op>"),
            ("plugins", "<name>"),
            ("store.requests", "<kind>"),
            ("views", "<name>"),
        ],
        &mut names,
    );
    assert!(names.len() > 60, "{names:?}");
    let stats_doc = section(&text, "## `.kplug/stats`");
    for name in &names {
        assert!(
            documented(stats_doc, name),
            "stats field {name} is not in docs/METRICS.md"
        );
    }
    for &op in FuseOp::ALL {
        assert!(stats.fuse.contains_key(op.name()), "{}", op.name());
        assert!(
            stats_doc.contains(&format!("`{}`", op.name())),
            "op {}",
            op.name()
        );
    }
    let mut names = Vec::new();
    leaves(&serde_json::to_value(&status).unwrap(), "", &[], &mut names);
    let status_doc = section(&text, "## `.kplug/status`");
    for name in &names {
        assert!(
            documented(status_doc, name),
            "status field {name} is not in docs/METRICS.md"
        );
    }
}

#[test]
fn documents_round_trip_through_text_and_history() {
    let m = full_mount();
    let stats = m.control.stats();
    let text = kplug_daemon::monitor::schema::to_text(&stats);
    assert_eq!(serde_json::from_str::<Stats>(&text).unwrap(), stats);
    let status = m.control.status();
    let text = kplug_daemon::monitor::schema::to_text(&status);
    assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), status);
    // Keys come out sorted, as the documents always had them.
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
        &kplug_daemon::monitor::schema::to_text(&stats),
    )
    .unwrap()
    .keys()
    .cloned()
    .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let dir = tempfile::tempdir().unwrap();
    let db = HistoryDb::create(&dir.path().join("h.db")).unwrap();
    db.insert(&stats).unwrap();
    let back = HistoryDb::open_read(&dir.path().join("h.db"))
        .unwrap()
        .documents(0)
        .unwrap();
    assert_eq!(back, vec![stats.clone()]);
    let sample = &db.samples(0).unwrap()[0];
    assert_eq!(sample.cache_hits, stats.cache.hits);
    assert_eq!(sample.fuse_reads, stats.fuse["read"].count);
}

/// The package's directory: read when the test runs (cargo sets it), so a build reused
/// from another clone of the repository reads this clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
