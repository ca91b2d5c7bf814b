//! `kplugfs sim`: the simulator (`kplug-sim`) with a progress bar, a table or JSON lines,
//! and miss-ratio curves.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use kplug_sim::{SimConfig, SimResult, Trace};

/// The arguments of `kplugfs sim`.
#[derive(Debug, clap::Args)]
pub struct SimCmd {
    /// The trace file.
    #[arg(long)]
    trace: PathBuf,
    /// Trace format: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug. A
    /// zstd-compressed trace (.zst) is decompressed as it is read, whatever the format.
    #[arg(long, default_value = "auto")]
    format: kplug_traces::Format,
    /// Policies, comma-separated: a built-in plugin name, a path to a .wasm file, or
    /// builtin:lru for the host's native LRU; combine roles with +, e.g. lru+readahead.
    #[arg(long, value_delimiter = ',', required = true)]
    policy: Vec<String>,
    /// Cache sizes as fractions of the trace's unique ids (floor(unique x F)).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "cache_objects",
        required_unless_present = "cache_objects"
    )]
    cache_size: Vec<f64>,
    /// Cache sizes as object counts.
    #[arg(long, value_delimiter = ',')]
    cache_objects: Vec<u64>,
    /// Expand each request of a block trace into the BYTES-sized blocks it touches (default
    /// for a trace of `kplugfs trace record`: the block size of the recording mount).
    #[arg(long, value_name = "BYTES", value_parser = crate::parse_size)]
    split_blocks: Option<u64>,
    /// A plugin parameter, NAME:key=value (repeatable); NAME is a policy of --policy (the
    /// file stem for a .wasm path). A governor's candidates take theirs in its spec.
    #[arg(long)]
    param: Vec<String>,
    /// A scope: part of the trace with its own policy and guaranteed share of the cache,
    /// `NAME:ids=LO..HI:policy=SPEC[:share=F]` or `NAME:files=LO..HI:...` (repeatable; at
    /// most 8). Each --policy serves the ids no scope takes; results show every scope.
    #[arg(long, value_name = "SCOPE", value_parser = kplug_sim::ScopeSpec::parse)]
    scope: Vec<kplug_sim::ScopeSpec>,
    /// One JSON object per line per (policy, size).
    #[arg(long)]
    json: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Also draw miss-ratio curves (one line per policy over the cache sizes) to FILE.svg
    /// or FILE.png.
    #[arg(long, value_name = "FILE", value_parser = crate::plot::PlotFile::parse)]
    plot: Option<crate::plot::PlotFile>,
    /// Demand requests between two ticks of a governor policy (e.g. `adaptive`) [default:
    /// 100, or the cache size in blocks or objects when smaller]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    tick_every: Option<u64>,
}

/// The simulator's progress, drawn as a bar.
struct Bar(ProgressBar);

impl kplug_sim::Progress for Bar {
    fn set_length(&self, n: u64) {
        self.0.set_length(n)
    }
    fn set_position(&self, n: u64) {
        self.0.set_position(n)
    }
    fn inc(&self, n: u64) {
        self.0.inc(n)
    }
}

impl SimCmd {
    /// Replay, then print (and plot) the results.
    pub fn run(self) -> Result<()> {
        let config = SimConfig {
            trace: self.trace,
            format: self.format,
            policies: self.policy,
            fractions: self.cache_size,
            objects: self.cache_objects,
            split_blocks: self.split_blocks,
            params: self.param,
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            tick_every: self.tick_every,
            scopes: self.scope,
        };
        let bar = Bar(ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        ));
        // Bad policies, modules and parameters are errors before a large trace is read.
        let sim = kplug_sim::Sim::new(&config)?;
        bar.0.set_message("reading");
        let trace = kplug_sim::load_trace(&config.trace, config.format, config.split_blocks, &bar)?;
        bar.0.set_message("replaying");
        let results = sim.run(&trace, &bar)?;
        bar.0.finish_and_clear();
        let mut out = std::io::stdout().lock();
        if self.json {
            for r in &results {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        } else {
            print_table(&mut out, &trace, &results)?;
        }
        if let Some(path) = &self.plot {
            crate::plot::miss_ratio_curves(&results, path)?;
        }
        Ok(())
    }
}

/// Print results as a table.
fn print_table(out: &mut impl Write, trace: &Trace, results: &[SimResult]) -> std::io::Result<()> {
    let blocks = trace
        .block_size
        .map(|b| format!(" (blocks of {b} bytes)"))
        .unwrap_or_default();
    writeln!(
        out,
        "# {} requests, {} unique ids{blocks}",
        trace.ids.len(),
        trace.unique()
    )?;
    let w = results
        .iter()
        .map(|r| r.policy.len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "{:w$}  {:>8}  {:>12}  {:>10}  {:>10}  {:>8}  {:>12}",
        "POLICY", "SIZE", "CACHE_OBJS", "MISSES", "MISS_RATIO", "SECONDS", "REQ/S"
    )?;
    for r in results {
        let size = r
            .cache_fraction
            .map(|f| format!("{f}"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:w$}  {:>8}  {:>12}  {:>10}  {:>10.4}  {:>8.3}  {:>12.0}",
            r.policy, size, r.cache_objects, r.misses, r.miss_ratio, r.seconds, r.requests_per_sec
        )?;
        for s in &r.scopes {
            writeln!(
                out,
                "  scope {:<12} {:<12} share {:>8}  requests {:>10}  misses {:>10}  miss ratio {:.4}  resident {}",
                s.name, s.policy, s.share_objects, s.requests, s.misses, s.miss_ratio, s.resident
            )?;
        }
    }
    // A plugin that faulted was replaced from its fault on (by the built-in; a governor's
    // candidate drops out): said under the table (`faults` in `--json`), so no one reads the
    // row as that plugin's decisions alone.
    for r in results.iter().filter(|r| r.faults > 0) {
        writeln!(
            out,
            "# {} at {} objects: {} plugin fault{}, each plugin replaced from its fault on (the \
             warning above names the hook): this row is not its decisions alone",
            r.policy,
            r.cache_objects,
            r.faults,
            if r.faults == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(policy: &str, faults: u64) -> SimResult {
        SimResult {
            trace: "t".into(),
            policy: policy.into(),
            cache_objects: 50,
            requests: 100,
            misses: 40,
            miss_ratio: 0.4,
            seconds: 0.001,
            requests_per_sec: 1e5,
            cache_fraction: None,
            faults,
            policy_switches: 0,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn a_row_whose_plugin_faulted_is_flagged_under_the_table() {
        let trace = Trace::new(vec![1; 100], None);
        let mut out = Vec::new();
        let results = [
            result("lru", 0),
            result("chaos.wasm", 1),
            result("x.wasm", 3),
        ];
        print_table(&mut out, &trace, &results).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(lines[1].starts_with("POLICY"));
        assert!(lines[2].starts_with("lru ") && lines[3].starts_with("chaos.wasm "));
        assert_eq!(
            lines[5],
            "# chaos.wasm at 50 objects: 1 plugin fault, each plugin replaced from its fault \
             on (the warning above names the hook): this row is not its decisions alone"
        );
        assert!(lines[6].starts_with("# x.wasm at 50 objects: 3 plugin faults,"));
    }
}
