//! `.kplug/metrics` and `--metrics-addr` through a real mount, parsed by the reference
//! Prometheus parser (the Python `prometheus_client`, installed by scripts/setup.sh).
#![cfg(feature = "mount-tests")]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use kplugfs_tests::TestMount;
use serde_json::Value;

/// Families as `prometheus_client.parser` reads them: name -> (type, samples as
/// `[name, labels, value]`).
fn parse(text: &str) -> BTreeMap<String, (String, Vec<Value>)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = [f.type, [[s.name, s.labels, s.value] for s in f.samples]]
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text (is prometheus_client installed? \
         scripts/setup.sh installs it): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|(k, v)| {
            let ty = v[0].as_str().unwrap().to_string();
            (k, (ty, v[1].as_array().unwrap().clone()))
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(f: &BTreeMap<String, (String, Vec<Value>)>, name: &str, labels: &[(&str, &str)]) -> f64 {
    f.values()
        .flat_map(|(_, s)| s)
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))[2]
        .as_f64()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r
}

#[test]
fn metrics_file_and_endpoint_parse_as_prometheus_text() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let m = TestMount::with_backing(
        &[
            "--policy",
            "lru",
            "--cache-size",
            "1MiB",
            "--no-kernel-cache",
            "--metrics-addr",
            &addr,
        ],
        |b| fs::write(b.join("f"), vec![3u8; 3 << 20]).unwrap(),
    );
    for _ in 0..2 {
        assert_eq!(fs::read(m.m("f")).unwrap().len(), 3 << 20);
    }
    let stats: Value = serde_json::from_slice(&fs::read(m.m(".kplug/stats")).unwrap()).unwrap();
    let text = fs::read_to_string(m.m(".kplug/metrics")).unwrap();
    let f = parse(&text);

    // The cache's counters are those of .kplug/stats (reading .kplug files leaves the cache
    // alone), typed, with Prometheus names (the parser strips a counter's `_total`).
    for key in ["hits", "misses", "evictions", "insertions"] {
        let fam = &f[&format!("kplugfs_cache_{key}")];
        assert_eq!(fam.0, "counter", "{key}");
        let got = value(&f, &format!("kplugfs_cache_{key}_total"), &[]);
        assert_eq!(got, stats["cache"][key].as_f64().unwrap(), "{key}");
    }
    assert!(value(&f, "kplugfs_cache_evictions_total", &[]) > 0.0);
    assert_eq!(f["kplugfs_cache_resident_blocks"].0, "gauge");
    assert_eq!(value(&f, "kplugfs_cache_block_size_bytes", &[]), 131072.0);
    // Every number of .kplug/stats' cache and prefetch sections is a metric: one schema.
    for section in ["cache", "prefetch"] {
        for (key, v) in stats[section].as_object().unwrap() {
            assert!(v.is_number());
            let prefix = format!("kplugfs_{section}_{key}");
            assert!(
                f.keys().any(|n| n.starts_with(&prefix)),
                "{section}.{key} missing"
            );
        }
    }

    // Histograms: cumulative buckets in seconds ending at +Inf = _count, per op label.
    let (ty, samples) = &f["kplugfs_fuse_latency_seconds"];
    assert_eq!(ty, "histogram");
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s[0] == "kplugfs_fuse_latency_seconds_bucket" && s[1]["op"] == "read")
        .map(|s| {
            let le = s[1]["le"].as_str().unwrap();
            (le.parse::<f64>().unwrap(), s[2].as_f64().unwrap())
        })
        .collect();
    assert!(buckets.len() > 10);
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert!(buckets.last().unwrap().0.is_infinite());
    let count = value(&f, "kplugfs_fuse_latency_seconds_count", &[("op", "read")]);
    assert_eq!(buckets.last().unwrap().1, count);
    assert!(count >= 48.0, "{count} reads of 128 KiB for 2 x 3 MiB");
    assert!(value(&f, "kplugfs_fuse_latency_seconds_sum", &[("op", "read")]) > 0.0);

    // Per-plugin labels; the active policies as an info metric.
    assert!(value(&f, "kplugfs_plugin_calls_total", &[("plugin", "lru")]) > 0.0);
    assert_eq!(
        value(
            &f,
            "kplugfs_plugin_state_info",
            &[("plugin", "lru"), ("state", "active")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &f,
            "kplugfs_active_policy_info",
            &[("role", "eviction"), ("policy", "lru")]
        ),
        1.0
    );

    // The endpoint serves the same families on /metrics, and nothing else.
    let resp = http_get(port, "/metrics");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let g = parse(body);
    assert_eq!(f.keys().collect::<Vec<_>>(), g.keys().collect::<Vec<_>>());
    assert!(http_get(port, "/").starts_with("HTTP/1.0 404"));
}

#[test]
fn a_metrics_port_in_use_is_a_mount_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let m = TestMount::new(&[]);
    let out = kplugfs_tests::kplugfs(&["umount", m.mnt.to_str().unwrap()]);
    assert!(out.status.success());
    let out = kplugfs_tests::kplugfs(&[
        "mount",
        m.backing.to_str().unwrap(),
        m.mnt.to_str().unwrap(),
        "--history-period",
        "0s",
        "--no-keep-plugins",
        "--metrics-addr",
        &addr,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metrics-addr") && err.contains(&addr),
        "{err}"
    );
    assert!(!kplugfs_tests::is_kplugfs_mount(&m.mnt));
}
