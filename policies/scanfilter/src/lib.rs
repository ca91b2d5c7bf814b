//! Admission: keeps a one-pass sequential scan from flushing the cache.
//!
//! Per file, the filter follows the current sequential run (an access to
//! `last + 1` extends it, anything else starts a new one). Blocks within the
//! first `max-run` blocks of a run are admitted as usual; beyond that the
//! file is being scanned and its missed blocks are refused, but remembered:
//! a refused block missed again (second touch) is admitted, so a file that is
//! scanned repeatedly and fits still becomes resident. Random and short
//! sequential accesses are not affected.
//!
//! Parameters:
//! - `max-run=16`: sequential blocks of one run admitted before the filter
//!   treats the run as a scan;
//! - `max-files=4096`: runs tracked at once (the table is reset past it);
//! - `remember=0`: refused blocks remembered for a second touch (0 = the
//!   cache capacity; the set is reset when full).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Admission, IntMap, Plugin, Rejected, export_plugin, narrow};

#[derive(Clone, Copy)]
struct Run {
    last: u64,
    len: u64,
}

/// The scan filter.
pub struct ScanFilter {
    runs: IntMap<Run>,
    refused: IntMap<()>,
    max_run: u64,
    max_files: usize,
    remember: usize,
}

impl Default for ScanFilter {
    fn default() -> Self {
        ScanFilter {
            runs: IntMap::new(),
            refused: IntMap::new(),
            max_run: 16,
            max_files: 4096,
            remember: 0,
        }
    }
}

impl Plugin for ScanFilter {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let v: u64 = value.parse()?;
        match key {
            "max-run" if v >= 1 => self.max_run = v,
            "max-files" if v >= 1 => self.max_files = narrow(v)?,
            "remember" => self.remember = narrow(v)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, capacity: u64) -> Result<(), i32> {
        if self.remember == 0 {
            self.remember = capacity.clamp(1, 1 << 22) as usize;
        }
        Ok(())
    }
}

impl Admission for ScanFilter {
    fn admit(&mut self, key: u64, file: u64, block: u64) -> bool {
        let run = match self.runs.get(file) {
            Some(r) if block == r.last.wrapping_add(1) => Run {
                last: block,
                len: r.len + 1,
            },
            _ => Run {
                last: block,
                len: 1,
            },
        };
        if self.runs.len() >= self.max_files && !self.runs.contains_key(file) {
            self.runs.clear();
        }
        self.runs.insert(file, run);
        if run.len <= self.max_run {
            return true;
        }
        if self.refused.remove(key).is_some() {
            return true;
        }
        if self.refused.len() >= self.remember {
            self.refused.clear();
        }
        self.refused.insert(key, ());
        false
    }
}

export_plugin!(ScanFilter, admission);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_are_refused_until_touched_twice() {
        let mut f = ScanFilter::default();
        f.set_param("max-run", "4").unwrap();
        f.init(100).unwrap();
        let admitted: usize = (0..10).filter(|&b| f.admit(b, 0, b)).count();
        assert_eq!(admitted, 4);
        // A random access resets the run; the second touch of 9 is admitted.
        assert!(f.admit(50, 0, 50));
        assert!(f.admit(9, 0, 9));
        assert!(f.set_param("max-run", "0").is_err());
    }

    /// Every parameter by its name (lowercase kebab-case; this policy has no alias): a valid
    /// value is taken, an out-of-range or malformed one and an unknown name are refused.
    #[test]
    fn parameters_are_checked() {
        let set = |key: &str, value: &str| {
            let mut p = ScanFilter::default();
            p.set_param(key, value).map(|()| p)
        };
        assert_eq!(set("max-run", "8").unwrap().max_run, 8);
        assert_eq!(set("max-files", "16").unwrap().max_files, 16);
        assert_eq!(set("remember", "100").unwrap().remember, 100);
        for (key, bad) in [
            ("max-run", "0"),
            ("max-files", "0"),
            ("remember", "-1"),
            ("max_run", "8"),
        ] {
            assert!(set(key, bad).is_err(), "{key}={bad}");
        }
    }
}
