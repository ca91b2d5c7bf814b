//! The monitoring plane: counters and latency histograms of every layer (`metrics.rs`),
//! the SQLite history of `.kplug/stats` (`history.rs`), and the recorder of data accesses
//! (`recorder.rs`, `kplugfs trace record`). See docs/METRICS.md.

pub mod history;
pub mod metrics;
pub mod recorder;
pub mod schema;
