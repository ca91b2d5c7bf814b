//! `scanboost`: a prefetch governor for the scenario of scans over a slow store.
//!
//! Two prefetch candidates: `modest` (default `readahead:initial-window=1;max-window=1`:
//! the next block of a sequential stream, nothing for random reads) serves at start;
//! `aggressive` (default `s3window`, mountpoint-s3's doubling window, which fetches a whole
//! window at every new stream: many backend reads in flight, wasted on random reads) is
//! pushed while the workload is a scan over a slow backend: on a tick, when the sequentiality of all accesses
//! (`kplug.sequentiality(-1)`) is at least `seq-high` and the backend latency at least
//! `latency-us`, it activates `aggressive`; when sequentiality falls to `seq-low` or below
//! (reads turned random: an aggressive window would be wasted), it goes back to `modest`.
//! The gap between the thresholds is the hysteresis. Each switch is logged.
//!
//! **From a probe** (ABI 1.5): with `figure=PROBE/NAME`, the sequentiality is the figure a
//! probe publishes instead of the mount-wide one, e.g. `figure=seq-by-process/max-seq` (the
//! most sequential reader's): introspection deployed by the operator drives the adaptation.
//! While the probe has published nothing, the mount-wide figure is used.
//!
//! Parameters: `modest` and `aggressive` (candidate specs, `name` or
//! `name:key=value;key=value`), `seq-high` (0.6), `seq-low` (0.3), `latency-us` (500),
//! `figure` (none). The older names `seq_high`, `seq_low` and `latency_us` are aliases.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use kplug_sdk::governor::{activate, add_candidate};
use kplug_sdk::{
    Governor, Level, Plugin, Rejected, Role, backend_latency_ns, export_plugin, log, param_in,
    param_key, sequentiality,
};

/// Older names of the parameters, `(alias, canonical)`.
const ALIASES: &[(&str, &str)] = &[
    ("seq_high", "seq-high"),
    ("seq_low", "seq-low"),
    ("latency_us", "latency-us"),
];

/// The scan-boost governor.
pub struct ScanBoost {
    modest: String,
    aggressive: String,
    seq_high: f64,
    seq_low: f64,
    latency_ns: u64,
    ids: [u32; 2],
    boosted: bool,
    /// The probe figure read as the sequentiality, if any.
    figure: Option<String>,
}

impl Default for ScanBoost {
    fn default() -> Self {
        Self {
            modest: String::from("readahead:initial-window=1;max-window=1"),
            aggressive: String::from("s3window"),
            seq_high: 0.6,
            seq_low: 0.3,
            latency_ns: 500_000,
            ids: [0, 0],
            boosted: false,
            figure: None,
        }
    }
}

impl Plugin for ScanBoost {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match param_key(key, ALIASES) {
            "modest" if !value.is_empty() => self.modest = String::from(value),
            "aggressive" if !value.is_empty() => self.aggressive = String::from(value),
            "figure" if value.contains('/') => self.figure = Some(String::from(value)),
            "seq-high" => self.seq_high = param_in(value, 0.0..=1.0)?,
            "seq-low" => self.seq_low = param_in(value, 0.0..=1.0)?,
            "latency-us" => {
                let us: u64 = value.parse()?;
                self.latency_ns = us.saturating_mul(1000);
            }
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        if self.seq_low > self.seq_high {
            return Err(2);
        }
        self.ids = [
            add_candidate(Role::Prefetch, &self.modest).ok_or(3)?,
            add_candidate(Role::Prefetch, &self.aggressive).ok_or(4)?,
        ];
        activate(self.ids[0]);
        Ok(())
    }
}

impl ScanBoost {
    /// Whether to boost now, given the figures (pure, for the native tests).
    fn decide(&mut self, seq: f64, latency_ns: u64) -> bool {
        if !self.boosted && seq >= self.seq_high && latency_ns >= self.latency_ns {
            self.boosted = true;
        } else if self.boosted && seq <= self.seq_low {
            self.boosted = false;
        }
        self.boosted
    }
}

impl Governor for ScanBoost {
    fn tick(&mut self, _now_ns: u64) {
        let seq = self
            .figure
            .as_deref()
            .and_then(kplug_sdk::probe::figure)
            .unwrap_or_else(|| sequentiality(u64::MAX));
        let lat = backend_latency_ns();
        let before = self.boosted;
        if self.decide(seq, lat) != before {
            activate(self.ids[self.boosted as usize]);
            log(
                Level::Info,
                &format!(
                    "sequentiality {seq:.2}, backend latency {} us: {}",
                    lat / 1000,
                    if self.boosted {
                        format!("boosting prefetch with {}", self.aggressive)
                    } else {
                        format!("backing off to {}", self.modest)
                    }
                ),
            );
        }
    }
}

export_plugin!(ScanBoost, governor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boosts_sequential_slow_reads_and_backs_off_on_random_ones() {
        let mut g = ScanBoost::default();
        assert!(!g.decide(0.9, 100_000), "fast backend: no boost");
        assert!(!g.decide(0.2, 2_000_000), "random: no boost");
        assert!(g.decide(0.8, 2_000_000), "scan over a slow store: boost");
        assert!(g.decide(0.5, 2_000_000), "inside the hysteresis: stays");
        assert!(!g.decide(0.1, 2_000_000), "random again: back off");
    }

    #[test]
    fn parameters_are_checked() {
        let mut g = ScanBoost::default();
        assert!(g.set_param("seq-high", "0.8").is_ok());
        assert!(g.set_param("seq-low", "1.5").is_err());
        assert!(g.set_param("latency-us", "2000").is_ok());
        assert_eq!(g.latency_ns, 2_000_000);
        assert!(
            g.set_param("aggressive", "readahead:initial-window=64")
                .is_ok()
        );
        assert!(g.set_param("modest", "").is_err());
        assert!(g.set_param("nope", "1").is_err());
        assert!(g.set_param("seq_High", "0.8").is_err());
    }

    #[test]
    fn canonical_names_and_aliases_set_the_same_value() {
        let set = |key: &str, value: &str| {
            let mut g = ScanBoost::default();
            g.set_param(key, value).unwrap();
            g
        };
        for key in ["seq-high", "seq_high"] {
            assert_eq!(set(key, "0.8").seq_high, 0.8, "{key}");
            assert!(ScanBoost::default().set_param(key, "1.5").is_err(), "{key}");
        }
        for key in ["seq-low", "seq_low"] {
            assert_eq!(set(key, "0.2").seq_low, 0.2, "{key}");
            assert!(
                ScanBoost::default().set_param(key, "-0.1").is_err(),
                "{key}"
            );
        }
        for key in ["latency-us", "latency_us"] {
            assert_eq!(set(key, "2000").latency_ns, 2_000_000, "{key}");
            assert!(ScanBoost::default().set_param(key, "-1").is_err(), "{key}");
            assert!(ScanBoost::default().set_param(key, "0.5").is_err(), "{key}");
        }
    }
}
