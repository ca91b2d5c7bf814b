//! Admission: caches a file only by its path: blocks of files matching an `include` pattern
//! (all files when there is none) and no `exclude` pattern are admitted, the others are
//! read through without being cached. What users of mountpoint-s3, gcsfuse and rclone ask for
//! ("cache by name": keep `*.parquet`, never `*.tmp` or `scratch/**`).
//!
//! The patterns are registered with the host at load (`add_glob`, ABI 1.3), which matches
//! each file's path once and remembers the answer: no string crosses per block. A pattern
//! without `/` matches file names at any depth (`*.log`); one with `/` matches the path from
//! the mount's root (`logs/**`, `/data/*.csv`); `*` stays inside one component, `**` spans
//! components (docs/plugin-abi.md, `add_glob`). A file whose path is unknown (the
//! simulator) is admitted.
//!
//! Parameters (each may be given many times, up to 64 patterns in all; a `,` cannot be
//! written inside a value, so give `{a,b}` alternatives as two items):
//! - `include=GLOB`: cache only files matching one of these;
//! - `exclude=GLOB`: never cache files matching one of these (wins over `include`).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{Admission, Plugin, Rejected, export_plugin};

/// Most patterns (the host's limit).
const MAX: usize = kplug_sdk::abi::MAX_GLOBS;

/// The path filter: the host's indexes of the patterns, by kind.
pub struct PathFilter {
    include: [u32; MAX],
    includes: usize,
    exclude: [u32; MAX],
    excludes: usize,
}

impl Default for PathFilter {
    fn default() -> Self {
        PathFilter {
            include: [0; MAX],
            includes: 0,
            exclude: [0; MAX],
            excludes: 0,
        }
    }
}

impl PathFilter {
    /// The decision from the host's answers about a file (`None`: its path is unknown).
    fn decide(&self, matches: impl Fn(u32) -> Option<bool>) -> bool {
        // Whether any of `globs` matches; `None` as soon as the path is unknown.
        let any = |globs: &[u32]| -> Option<bool> {
            let mut found = false;
            for &g in globs {
                found |= matches(g)?;
            }
            Some(found)
        };
        let included = match self.includes {
            0 => Some(true),
            n => any(&self.include[..n]),
        };
        match (included, any(&self.exclude[..self.excludes])) {
            (Some(included), Some(excluded)) => included && !excluded,
            _ => true,
        }
    }
}

impl Plugin for PathFilter {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        let (list, n) = match key {
            "include" => (&mut self.include, &mut self.includes),
            "exclude" => (&mut self.exclude, &mut self.excludes),
            _ => return Err(Rejected),
        };
        if value.is_empty() || *n >= MAX {
            return Err(Rejected);
        }
        list[*n] = register(value)?;
        *n += 1;
        Ok(())
    }
}

/// Register `pattern` with the host. Natively (unit tests) there is no host: patterns are
/// numbered in order.
fn register(pattern: &str) -> Result<u32, Rejected> {
    #[cfg(target_arch = "wasm32")]
    return kplug_sdk::add_glob(pattern).ok_or(Rejected);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use core::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let _ = pattern;
        Ok(N.fetch_add(1, Ordering::Relaxed))
    }
}

impl Admission for PathFilter {
    fn admit(&mut self, _key: u64, file: u64, _block: u64) -> bool {
        self.decide(|g| kplug_sdk::path_matches(file, g))
    }
}

export_plugin!(PathFilter, admission);

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(params: &[(&str, &str)]) -> PathFilter {
        let mut f = PathFilter::default();
        for (k, v) in params {
            f.set_param(k, v).unwrap();
        }
        f
    }

    /// The decision given which patterns a path matches (by registration order).
    fn decide(f: &PathFilter, matching: &[u32]) -> bool {
        f.decide(|g| Some(matching.contains(&g)))
    }

    #[test]
    fn exclude_wins_include_restricts_unknown_is_admitted() {
        let f = filter(&[("include", "*.csv"), ("exclude", "tmp/**")]);
        let (inc, exc) = (f.include[0], f.exclude[0]);
        assert!(decide(&f, &[inc]));
        assert!(!decide(&f, &[inc, exc]), "exclude wins");
        assert!(!decide(&f, &[]), "not included");
        assert!(f.decide(|_| None), "path unknown");
        let only_exclude = filter(&[("exclude", "*.tmp")]);
        assert!(decide(&only_exclude, &[]));
        assert!(!decide(&only_exclude, &[only_exclude.exclude[0]]));
        assert!(decide(&PathFilter::default(), &[]));
    }

    /// Every parameter by its name: each `include`/`exclude` adds a pattern, an empty one,
    /// one too many and an unknown name are refused.
    #[test]
    fn parameters() {
        let mut f = PathFilter::default();
        f.set_param("include", "a").unwrap();
        f.set_param("include", "b").unwrap();
        f.set_param("exclude", "c").unwrap();
        assert_eq!((f.includes, f.excludes), (2, 1));
        assert!(f.set_param("include", "").is_err());
        assert!(f.set_param("glob", "x").is_err());
        for _ in 0..MAX - 1 {
            f.set_param("exclude", "x").unwrap();
        }
        assert!(
            f.set_param("exclude", "x").is_err(),
            "more than the host's limit"
        );
    }
}
