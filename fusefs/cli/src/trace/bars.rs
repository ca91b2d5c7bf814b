//! Progress bars for `kplugfs trace`: [`Bars`] draws the stages `kplug-traces` reports
//! ([`Progress`]) as one indicatif bar each on stderr, hidden when stderr is not a terminal.
//!
//! Design: a stage's bar is made when the stage begins and cleared when it finishes, so the
//! library decides when bars appear and this file only how they look: bytes for reading a
//! trace and creating scratch files, a request count for a replay.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kplug_traces::progress::{Progress, Stage};
use parking_lot::Mutex;

const BYTES: &str =
    "{msg:>10} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}";
const COUNT: &str = "{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}";

/// One bar per stage on stderr.
pub struct Bars {
    /// The message of the trace-reading stage: what reading the trace is for.
    read: &'static str,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars whose trace-reading stage says `read` ("reading", "converting", "mapping").
    pub fn new(read: &'static str) -> Self {
        Bars {
            read,
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, stage: Stage, total: u64) {
        let (msg, template) = match stage {
            Stage::ReadTrace => (self.read, BYTES),
            Stage::CreateScratch => ("creating", BYTES),
            Stage::Replay => ("replaying", COUNT),
        };
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(template)
                    .expect("template")
                    .progress_chars("=> "),
            );
        bar.set_message(msg);
        *self.bar.lock() = Some(bar);
    }

    fn inc(&self, n: u64) {
        // A clone (a reference count) so that workers do not wait on each other's drawing.
        let bar = self.bar.lock().clone();
        if let Some(bar) = bar {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().take() {
            bar.finish_and_clear();
        }
    }
}
