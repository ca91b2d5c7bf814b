//! Path patterns (ABI 1.3): a plugin registers globs while loading (`add_glob`) and asks
//! per call whether a file's path matches one (`path_matches`); the host does the matching,
//! so no string crosses the boundary on the request path.
//!
//! **Syntax** (ripgrep's `globset`): `*` and `?` match within one path component, `**`
//! matches any number of components, `[a-z]` a class, `{a,b}` alternatives, `\` escapes.
//! A pattern without `/` matches a file's *name* at any depth (`*.log`, as in
//! `.gitignore`); a pattern with `/` matches the whole path from the mount's root (`logs/**`,
//! `/data/*.parquet`: a leading `/` is the root).
//!
//! **Cost.** The first question about a file matches its path against every pattern at once
//! and keeps the answer as a 64-bit mask with the path's version ([`Figures`]); later
//! questions are a map lookup until the file's path changes.

use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use kplug_abi as abi;

use crate::figures::Figures;
use crate::hash::FastMap;

/// Files whose matches an instance keeps before it starts over.
const MAX_CACHED: usize = 1 << 16;

/// One instance's patterns and the matches it has computed.
#[derive(Debug, Default)]
pub(crate) struct Globs {
    /// Registered patterns: the glob, and whether it matches the file name only.
    patterns: Vec<(globset::Glob, bool)>,
    /// Patterns over whole paths, and the index each has in `patterns`.
    full: Option<(GlobSet, Vec<u32>)>,
    /// Patterns over file names, and their indexes.
    names: Option<(GlobSet, Vec<u32>)>,
    /// file -> (path version, mask of matching patterns).
    cache: FastMap<u64, (u64, u64)>,
}

impl Globs {
    /// Register `pattern`; its index, or `None` when refused (too many, too long, empty,
    /// not a pattern).
    pub(crate) fn add(&mut self, pattern: &str) -> Option<u32> {
        if self.patterns.len() >= abi::MAX_GLOBS || pattern.len() > abi::MAX_GLOB_BYTES {
            return None;
        }
        let names_only = !pattern.contains('/');
        let rooted = pattern.strip_prefix('/').unwrap_or(pattern);
        if rooted.is_empty() {
            return None;
        }
        let glob = GlobBuilder::new(rooted)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .ok()?;
        self.patterns.push((glob, names_only));
        self.full = build(&self.patterns, false);
        self.names = build(&self.patterns, true);
        self.cache.clear();
        Some(self.patterns.len() as u32 - 1)
    }

    /// `path_matches(file, index)`: 1, 0, or -1 (bad index, path unknown).
    pub(crate) fn matches(&mut self, figures: &Figures, file: u64, index: i32) -> i32 {
        let Some(bit) = u32::try_from(index)
            .ok()
            .filter(|&i| (i as usize) < self.patterns.len())
        else {
            return -1;
        };
        let Some((path, version)) = figures.file_path(file) else {
            return -1;
        };
        let mask = match self.cache.get(&file) {
            Some(&(v, mask)) if v == version => mask,
            _ => {
                let mask = self.mask(&path);
                if self.cache.len() >= MAX_CACHED {
                    self.cache.clear();
                }
                self.cache.insert(file, (version, mask));
                mask
            }
        };
        ((mask >> bit) & 1) as i32
    }

    /// The patterns `path` matches, one bit each.
    fn mask(&self, path: &Arc<str>) -> u64 {
        let name = path.rsplit('/').next().unwrap_or(path);
        let mut mask = 0u64;
        for (set, text) in [(&self.full, &**path), (&self.names, name)] {
            if let Some((set, indexes)) = set {
                for i in set.matches(text) {
                    mask |= 1 << indexes[i];
                }
            }
        }
        mask
    }
}

/// The set of the patterns that match file names (`names`) or whole paths.
fn build(patterns: &[(globset::Glob, bool)], names: bool) -> Option<(GlobSet, Vec<u32>)> {
    let mut b = GlobSetBuilder::new();
    let mut indexes = Vec::new();
    for (i, (g, names_only)) in patterns.iter().enumerate() {
        if *names_only == names {
            b.add(g.clone());
            indexes.push(i as u32);
        }
    }
    if indexes.is_empty() {
        return None;
    }
    // Every pattern was built alone already: a set of them builds.
    Some((b.build().ok()?, indexes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(paths: &[(u64, &str)]) -> Figures {
        let f = Figures::default();
        for &(file, p) in paths {
            f.note_file(file, 1, Some(&Arc::from(p)));
        }
        f
    }

    #[test]
    fn names_anywhere_paths_from_the_root() {
        let f = figures(&[(1, "a.log"), (2, "logs/2024/b.log"), (3, "data/x.parquet")]);
        let mut g = Globs::default();
        assert_eq!(g.add("*.log"), Some(0));
        assert_eq!(g.add("logs/**"), Some(1));
        assert_eq!(g.add("/data/*.parquet"), Some(2));
        assert_eq!(g.add("data/*"), Some(3));
        let m = |g: &mut Globs, file, i| g.matches(&f, file, i);
        assert_eq!(
            (m(&mut g, 1, 0), m(&mut g, 2, 0), m(&mut g, 3, 0)),
            (1, 1, 0)
        );
        assert_eq!(
            (m(&mut g, 1, 1), m(&mut g, 2, 1), m(&mut g, 3, 1)),
            (0, 1, 0)
        );
        assert_eq!((m(&mut g, 2, 2), m(&mut g, 3, 2)), (0, 1));
        // `*` stays inside one component.
        assert_eq!(m(&mut g, 3, 3), 1);
        f.note_file(3, 1, Some(&Arc::from("data/deep/x.parquet")));
        assert_eq!(
            (m(&mut g, 3, 2), m(&mut g, 3, 3)),
            (0, 0),
            "re-matched after a rename"
        );
    }

    #[test]
    fn unknown_files_bad_indexes_and_bad_patterns() {
        let f = figures(&[(1, "a")]);
        let mut g = Globs::default();
        assert_eq!(g.matches(&f, 1, 0), -1, "no pattern yet");
        assert_eq!(g.add("a"), Some(0));
        assert_eq!(g.matches(&f, 9, 0), -1, "path unknown");
        assert_eq!((g.matches(&f, 1, 1), g.matches(&f, 1, -1)), (-1, -1));
        assert_eq!(g.add(""), None);
        assert_eq!(g.add("/"), None);
        assert_eq!(g.add("[unclosed"), None);
        assert_eq!(g.add(&"x".repeat(abi::MAX_GLOB_BYTES + 1)), None);
        for i in 1..abi::MAX_GLOBS {
            assert_eq!(g.add(&format!("f{i}")), Some(i as u32));
        }
        assert_eq!(g.add("one-too-many"), None);
        assert_eq!(g.matches(&f, 1, 0), 1);
        assert_eq!(g.matches(&f, 1, abi::MAX_GLOBS as i32 - 1), 0);
    }
}
