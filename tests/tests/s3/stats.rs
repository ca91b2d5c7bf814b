//! The `store` section of `.kplug/stats` on an S3 mount, against docs/METRICS.md (as
//! `fusefs/daemon/tests/schema.rs` checks the sections of a local mount): after reads,
//! listings, lookups, a small and a multipart write, a rename (copy) and an unlink, every
//! leaf of the section (request kinds as `<kind>`) is named in the `### Object store
//! (store)` subsection, and so is every request kind the store counts. The counters agree
//! with what was done: the bytes of the GETs and the parts, and latencies that cover the
//! transfers (an 8 MiB part takes more than a millisecond to reach any server).

use std::fs;
use std::io::Write;

use kplug_store::RequestKind;
use kplugfs_tests::repo_root;
use kplugfs_tests::s3::{S3Mount, TestBucket, pattern};

/// Every leaf path of `v`, the keys of the objects at `maps` paths written as their
/// placeholder.
fn leaves(v: &serde_json::Value, path: &str, maps: &[(&str, &str)], out: &mut Vec<String>) {
    if let serde_json::Value::Object(o) = v {
        for (k, child) in o {
            let key = maps
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(k.as_str(), |(_, placeholder)| placeholder);
            let p = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            leaves(child, &p, maps, out);
        }
    } else {
        out.push(path.to_string());
    }
}

fn documented(text: &str, name: &str) -> bool {
    // Latency percentiles are documented as `x.latency_us.p50`, `.p90`, ...
    text.contains(&format!("`{name}`"))
        || name.rsplit_once('.').is_some_and(|(head, last)| {
            text.contains(&format!("`{head}.p50`")) && text.contains(&format!("`.{last}`"))
        })
}

#[test]
fn store_section_is_documented_and_counts_what_was_done() {
    kplugfs_tests::require_s3!();
    let b = TestBucket::new("stats");
    let obj = pattern(1, 3 << 20);
    b.put("dir/obj", &obj);
    let m = S3Mount::new(&b, &["--no-kernel-cache"]);
    assert!(fs::read(m.m("dir/obj")).unwrap() == obj);
    assert_eq!(fs::read_dir(m.m("dir")).unwrap().count(), 1);
    fs::write(m.m("small"), b"small").unwrap();
    let big = pattern(2, (16 << 20) + 1);
    let mut f = fs::File::create(m.m("big")).unwrap();
    f.write_all(&big).unwrap();
    drop(f);
    fs::rename(m.m("small"), m.m("renamed")).unwrap();
    fs::remove_file(m.m("renamed")).unwrap();

    let stats = m.stats();
    let store = &stats["store"];
    assert_eq!(store["source"], format!("s3://{}/", b.name));
    let req = &store["requests"];
    for kind in [
        "get",
        "head",
        "list",
        "put",
        "create_multipart",
        "upload_part",
        "complete_multipart",
        "copy",
        "delete",
    ] {
        assert!(
            req[kind]["requests"].as_u64().unwrap_or(0) > 0,
            "no {kind}: {store}"
        );
        assert_eq!(req[kind]["errors"], 0, "{kind}: {store}");
        assert!(
            req[kind]["latency_us"]["max"].as_u64().unwrap() > 0,
            "{kind}: {store}"
        );
    }
    assert!(
        req["get"]["bytes"].as_u64().unwrap() >= obj.len() as u64,
        "{store}"
    );
    assert_eq!(req["upload_part"]["bytes"], big.len() as u64, "{store}");
    assert_eq!(req["upload_part"]["requests"], 3, "{store}");
    // A lower bound only: an 8 MiB part cannot reach the server in under a millisecond.
    assert!(
        req["upload_part"]["latency_us"]["max"].as_u64().unwrap() >= 1000,
        "upload_part latency does not cover the transfer: {}",
        req["upload_part"]
    );

    let text = fs::read_to_string(repo_root().join("docs/METRICS.md")).unwrap();
    let start = text
        .find("### Object store (`store`)")
        .expect("docs/METRICS.md has a `### Object store (`store`)` subsection");
    let rest = &text[start + 4..];
    let doc = &rest[..rest.find("\n##").unwrap_or(rest.len())];
    let mut names = Vec::new();
    leaves(
        &serde_json::json!({ "store": store }),
        "",
        &[("store.requests", "<kind>")],
        &mut names,
    );
    assert!(names.len() > 10, "{names:?}");
    for name in &names {
        assert!(
            documented(doc, name),
            "stats field {name} is not in docs/METRICS.md"
        );
    }
    for kind in RequestKind::ALL {
        assert!(
            doc.contains(&format!("`{}`", kind.name())),
            "request kind {} is not in docs/METRICS.md",
            kind.name()
        );
    }
}
