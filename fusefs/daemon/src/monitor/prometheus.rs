//! `.kplug/metrics` and `--metrics-addr`: the [`Stats`] document in the Prometheus text
//! exposition format (version 0.0.4), for monitoring systems that scrape.
//!
//! **One schema.** Nothing here lists metric names. The renderer walks the typed
//! [`Stats`] (destructured exhaustively, so a new section is a compile error here until it is
//! rendered or skipped on purpose) and serializes each section's struct with serde; every
//! number in it becomes a metric named after its JSON path, so a field added to
//! `schema.rs` shows up in both documents at once. The naming rules, after Prometheus'
//! conventions:
//!
//! - `kplugfs_<section>_<field>`; a map section (`fuse.<op>`, `plugins.<name>`,
//!   `store.requests.<kind>`) gives a label (`op`, `plugin`, `kind`) instead of a name part.
//! - Units to base units: `_us`, `_ms`, `_ns` fields become `_seconds` (scaled), a `size`
//!   becomes `_bytes`; `count` becomes `requests`.
//! - Counters (every field but those a schema struct lists in its `GAUGES`) end in `_total`.
//! - `latency_us` objects become histograms (`_seconds_bucket{le}`, `_sum`, `_count`) from
//!   the log2 histogram the percentiles came from: cumulative counts at `le = 2^i - 1` ns for
//!   i = 10..=35 (1 µs to 34 s) and `+Inf`; a fixed set, so rates and quantiles aggregate.
//! - Strings become info gauges (`..._info{field="value"} 1`), one per element of a list;
//!   booleans gauges of 0 or 1; `null` is left out.
//!
//! The format is small enough to write directly (and the test parses it with the reference
//! Python parser); a client library would make us rebuild its registry at every scrape.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

use super::metrics::LatencyUs;
use super::schema::{
    BackendStats, CacheCounters, HistoryInfo, PluginStats, PrefetchCounters, ProbeStats,
    ScopeStats, Stats, ViewStats,
};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The log2 buckets exposed: `le = 2^i - 1` ns for these `i` (1 µs .. 34 s).
const BUCKETS: std::ops::RangeInclusive<usize> = 10..=35;

#[derive(Default)]
struct Family {
    kind: &'static str,
    help: String,
    samples: String,
}

#[derive(Default)]
struct Out {
    families: BTreeMap<String, Family>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A number as the format wants it (integers stay integers).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The metric name of field `field` of section `scope`, and the divisor to its unit.
fn name_of(scope: &str, field: &str) -> (String, f64) {
    let (base, unit, scale) = if let Some(b) = field.strip_suffix("_us") {
        (b, "_seconds", 1e6)
    } else if let Some(b) = field.strip_suffix("_ms") {
        (b, "_seconds", 1e3)
    } else if let Some(b) = field.strip_suffix("_ns") {
        (b, "_seconds", 1e9)
    } else if field.ends_with("size") {
        (field, "_bytes", 1.0)
    } else if field == "count" {
        ("requests", "", 1.0)
    } else {
        (field, "", 1.0)
    };
    (format!("kplugfs_{scope}_{}{unit}", sanitize(base)), scale)
}

impl Out {
    fn sample(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &str,
        suffix: &str,
        labels: &[(String, String)],
        v: f64,
    ) {
        let f = self.families.entry(name.to_string()).or_default();
        f.kind = kind;
        if f.help.is_empty() {
            f.help = help.to_string();
        }
        let _ = writeln!(f.samples, "{name}{suffix}{} {}", label_text(labels), num(v));
    }

    /// Every field of `value` (a schema struct) as metrics of section `scope`.
    fn section<T: Serialize>(
        &mut self,
        scope: &str,
        path: &str,
        labels: &[(String, String)],
        value: &T,
        gauges: &[&str],
        latency: Option<&LatencyUs>,
    ) {
        let Ok(Value::Object(fields)) = serde_json::to_value(value) else {
            return;
        };
        for (field, v) in fields {
            let help = format!("{path}.{field} of .kplug/stats (docs/METRICS.md)");
            match v {
                Value::Number(n) => {
                    let (name, scale) = name_of(scope, &field);
                    let v = n.as_f64().unwrap_or(0.0) / scale;
                    if gauges.contains(&field.as_str()) {
                        self.sample(&name, "gauge", &help, "", labels, v);
                    } else {
                        self.sample(&format!("{name}_total"), "counter", &help, "", labels, v);
                    }
                }
                Value::Bool(b) => {
                    let (name, _) = name_of(scope, &field);
                    self.sample(&name, "gauge", &help, "", labels, f64::from(u8::from(b)));
                }
                Value::String(s) => self.info(scope, &field, &help, labels, [s]),
                Value::Array(items) => {
                    let items = items.into_iter().filter_map(|i| match i {
                        Value::String(s) => Some(s),
                        _ => None,
                    });
                    self.info(scope, &field, &help, labels, items)
                }
                Value::Object(_) if field == "latency_us" => {
                    if let Some(h) = latency.and_then(|l| l.histogram.as_ref()) {
                        self.histogram(
                            &format!("kplugfs_{scope}_latency_seconds"),
                            &help,
                            labels,
                            h,
                        );
                    }
                }
                Value::Object(_) | Value::Null => {}
            }
        }
    }

    fn info(
        &mut self,
        scope: &str,
        field: &str,
        help: &str,
        labels: &[(String, String)],
        values: impl IntoIterator<Item = String>,
    ) {
        let name = format!("kplugfs_{scope}_{}_info", sanitize(field));
        for v in values {
            let mut l = labels.to_vec();
            l.push((sanitize(field), v));
            self.sample(&name, "gauge", help, "", &l, 1.0);
        }
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(String, String)],
        h: &kplug_metrics::HistogramSnapshot,
    ) {
        let mut cumulative = 0u64;
        let mut seen = 0usize;
        for i in BUCKETS {
            cumulative += h.buckets[seen..=i].iter().sum::<u64>();
            seen = i + 1;
            let le = ((1u64 << i) - 1) as f64 / 1e9;
            let mut l = labels.to_vec();
            l.push(("le".into(), format!("{le:e}")));
            self.sample(name, "histogram", help, "_bucket", &l, cumulative as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le".into(), "+Inf".into()));
        self.sample(name, "histogram", help, "_bucket", &l, h.count() as f64);
        self.sample(name, "histogram", help, "_sum", labels, h.sum as f64 / 1e9);
        self.sample(name, "histogram", help, "_count", labels, h.count() as f64);
    }

    fn text(self) -> String {
        let mut s = String::new();
        for (name, f) in self.families {
            let _ = writeln!(s, "# HELP {name} {}", f.help);
            let _ = writeln!(s, "# TYPE {name} {}", f.kind);
            s.push_str(&f.samples);
        }
        s
    }
}

fn label(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_string(), v.to_string())]
}

/// `stats` in the Prometheus text format.
pub fn render(stats: &Stats) -> String {
    let Stats {
        active,
        backend,
        cache,
        fuse,
        history,
        kernel_hints,
        plugins,
        prefetch,
        probes,
        scopes,
        store,
        time_unix_ms: _,
        uptime_ms,
        views,
    } = stats;
    let mut out = Out::default();
    for (role, policy) in [
        ("admission", &active.admission),
        ("eviction", &active.eviction),
        ("prefetch", &active.prefetch),
    ] {
        let l = vec![
            ("role".to_string(), role.to_string()),
            ("policy".to_string(), policy.clone()),
        ];
        out.sample(
            "kplugfs_active_policy_info",
            "gauge",
            "the policy serving each role: a plugin, or builtin:NAME (active.<role>)",
            "",
            &l,
            1.0,
        );
    }
    out.section(
        "backend",
        "backend",
        &[],
        backend,
        BackendStats::GAUGES,
        Some(&backend.latency_us),
    );
    out.section("cache", "cache", &[], cache, CacheCounters::GAUGES, None);
    for (op, s) in fuse {
        out.section(
            "fuse",
            "fuse.<op>",
            &label("op", op),
            s,
            &[],
            Some(&s.latency_us),
        );
    }
    if let Some(h) = history {
        out.section("history", "history", &[], h, HistoryInfo::GAUGES, None);
    }
    if let Some(h) = kernel_hints {
        out.section("kernel_hints", "kernel_hints", &[], h, &[], None);
    }
    for (name, p) in plugins {
        let l = label("plugin", name);
        out.section("plugin", "plugins.<name>", &l, p, PluginStats::GAUGES, None);
    }
    for (name, sc) in scopes {
        let l = label("scope", name);
        out.section("scope", "scopes.<name>", &l, sc, ScopeStats::GAUGES, None);
    }
    for (name, v) in views {
        let l = label("view", name);
        out.section("view", "views.<name>", &l, v, ViewStats::GAUGES, None);
    }
    for (name, p) in probes {
        let l = label("probe", name);
        out.section("probe", "probes.<name>", &l, p, ProbeStats::GAUGES, None);
    }
    out.section(
        "prefetch",
        "prefetch",
        &[],
        prefetch,
        PrefetchCounters::GAUGES,
        None,
    );
    if let Some(s) = store {
        out.info("store", "source", "store.source", &[], [s.source.clone()]);
        for (kind, k) in &s.requests {
            let l = label("kind", kind);
            out.section(
                "store",
                "store.requests.<kind>",
                &l,
                k,
                &[],
                Some(&k.latency_us),
            );
        }
    }
    out.sample(
        "kplugfs_uptime_seconds",
        "gauge",
        "seconds since the mount's control plane started (uptime_ms)",
        "",
        &[],
        *uptime_ms as f64 / 1e3,
    );
    out.text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schema::FuseOpStats;

    #[test]
    fn names_units_labels_and_histograms() {
        let h = kplug_metrics::Histogram::default();
        for ns in [500, 1_500, 3_000, 2_000_000] {
            h.record(ns);
        }
        let mut stats = Stats::default();
        stats.cache.hits = 7;
        stats.cache.block_size = 4096;
        stats.fuse.insert(
            "read".into(),
            FuseOpStats {
                count: 4,
                latency_us: h.snapshot().latency_us(),
                ..Default::default()
            },
        );
        stats.active.eviction = "my \"lru\"".into();
        let text = render(&stats);
        assert!(
            text.contains("# TYPE kplugfs_cache_hits_total counter\nkplugfs_cache_hits_total 7\n"),
            "{text}"
        );
        assert!(text.contains(
            "# TYPE kplugfs_cache_block_size_bytes gauge\nkplugfs_cache_block_size_bytes 4096\n"
        ));
        assert!(text.contains("kplugfs_fuse_requests_total{op=\"read\"} 4\n"));
        // Cumulative: two values below 2^11 - 1 ns, three below 2^12 - 1 ns, all four at +Inf.
        assert!(
            text.contains("kplugfs_fuse_latency_seconds_bucket{op=\"read\",le=\"2.047e-6\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kplugfs_fuse_latency_seconds_bucket{op=\"read\",le=\"4.095e-6\"} 3\n")
        );
        assert!(text.contains("kplugfs_fuse_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("kplugfs_fuse_latency_seconds_count{op=\"read\"} 4\n"));
        assert!(text.contains(
            "kplugfs_active_policy_info{role=\"eviction\",policy=\"my \\\"lru\\\"\"} 1\n"
        ));
        // Every gauge a schema struct names is one of its fields.
        fn fields<T: Serialize>(v: &T) -> Vec<String> {
            match serde_json::to_value(v).unwrap() {
                Value::Object(m) => m.keys().cloned().collect(),
                _ => Vec::new(),
            }
        }
        let checks = [
            (fields(&CacheCounters::default()), CacheCounters::GAUGES),
            (fields(&BackendStats::default()), BackendStats::GAUGES),
            (fields(&ViewStats::default()), ViewStats::GAUGES),
            (
                fields(&PrefetchCounters::default()),
                PrefetchCounters::GAUGES,
            ),
        ];
        for (f, gauges) in checks {
            assert!(
                gauges.iter().all(|g| f.contains(&g.to_string())),
                "{gauges:?}"
            );
        }
        // Every family is typed once.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
    }
}
