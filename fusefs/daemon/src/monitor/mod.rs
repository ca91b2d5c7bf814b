//! The monitoring plane: counters and latency histograms of every layer (`metrics.rs`),
//! the SQLite history of `.kplug/stats` (`history.rs`), the recorder of data accesses
//! (`recorder.rs`, `kplugfs trace record`), and the Prometheus text format of the same
//! document (`prometheus.rs`, `.kplug/metrics`) with its HTTP endpoint (`serve.rs`,
//! `--metrics-addr`). See docs/METRICS.md.

pub mod history;
pub mod metrics;
pub mod probes;
pub mod prometheus;
pub mod recorder;
pub mod schema;
pub mod serve;
