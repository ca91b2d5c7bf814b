//! Which scope a file belongs to: the directories of the mount's scopes (`.kplug/scopes/NAME/
//! path`), matched by whole path components, the innermost winning.
//!
//! The block cache keeps one [`ScopePaths`] under its lock and remembers each file's scope
//! with the table's epoch and the path it was resolved from: a file is resolved again when a
//! scope's path changes (the epoch) or when it is opened under another path (a rename shows
//! as a new path at the next open), so a rename across scopes sends the file's future blocks
//! to its new scope while the blocks it has stay where they are until they leave.

use kplug_cache::{ROOT_SCOPE, ScopeId};

/// The scopes' directories. See the module docs.
#[derive(Debug, Default)]
pub struct ScopePaths {
    /// `(scope, path)`: relative to the mount's root, no leading or trailing `/`, `""` for
    /// the whole mount.
    entries: Vec<(ScopeId, String)>,
    /// Bumped by every change; never 0.
    epoch: u64,
}

/// `text` as a scope path: relative to the mount's root, `/`-separated, without `.`, `..`,
/// empty components or NUL; a leading or trailing `/` is dropped, `""`, `.` and `/` mean the
/// whole mount.
pub fn normalize(text: &str) -> Result<String, String> {
    let t = text.trim_end_matches('\n').trim();
    if t.contains('\0') {
        return Err("a scope path cannot hold NUL".into());
    }
    let mut parts = Vec::new();
    for c in t.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("{t:?}: a scope path cannot hold `..`")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Whether `path` lies in directory `dir` (both normalized).
fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

impl ScopePaths {
    /// The current epoch (changes with every change of a path).
    pub fn epoch(&self) -> u64 {
        self.epoch.max(1)
    }

    /// Whether no scope has a path.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Scope `id`'s path.
    pub fn path(&self, id: ScopeId) -> Option<&str> {
        self.entries
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p.as_str())
    }

    /// Sets (or, with `None`, clears) scope `id`'s path (normalized); another scope's path
    /// is refused.
    pub fn set(&mut self, id: ScopeId, path: Option<String>) -> Result<(), String> {
        if let Some(p) = &path
            && let Some((other, _)) = self.entries.iter().find(|(i, q)| *i != id && q == p)
        {
            return Err(format!("scope slot {other} already has path {p:?}"));
        }
        self.entries.retain(|(i, _)| *i != id);
        if let Some(p) = path {
            self.entries.push((id, p));
        }
        self.epoch = self.epoch() + 1;
        Ok(())
    }

    /// The scope of a file at `path` (`None`: unknown, the root scope): the scope with the
    /// longest path holding it.
    pub fn resolve(&self, path: Option<&str>) -> ScopeId {
        let Some(path) = path else {
            return ROOT_SCOPE;
        };
        let path = path.trim_start_matches('/');
        self.entries
            .iter()
            .filter(|(_, dir)| under(path, dir))
            .max_by_key(|(_, dir)| dir.len())
            .map_or(ROOT_SCOPE, |(i, _)| *i)
    }

    /// The scope enclosing scope `id`: the innermost other scope whose directory holds
    /// `id`'s (the root if none, or if `id` has no path).
    pub fn enclosing(&self, id: ScopeId) -> ScopeId {
        let Some(mine) = self.path(id) else {
            return ROOT_SCOPE;
        };
        self.entries
            .iter()
            .filter(|(i, dir)| *i != id && under(mine, dir) && dir.len() < mine.len())
            .max_by_key(|(_, dir)| dir.len())
            .map_or(ROOT_SCOPE, |(i, _)| *i)
    }

    /// How deep scope `id` is nested (0: directly in the root scope).
    pub fn depth(&self, id: ScopeId) -> usize {
        let mut d = 0;
        let mut s = id;
        while s != ROOT_SCOPE && d <= self.entries.len() {
            s = self.enclosing(s);
            d += 1;
        }
        d.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_dot_dot_refused() {
        assert_eq!(normalize("/a//b/./c/\n").unwrap(), "a/b/c");
        assert_eq!(normalize(".").unwrap(), "");
        assert_eq!(normalize("/").unwrap(), "");
        assert!(normalize("a/../b").is_err());
        assert!(normalize("a\0b").is_err());
    }

    #[test]
    fn the_innermost_scope_wins_on_whole_components() {
        let mut t = ScopePaths::default();
        t.set(1, Some("data".into())).unwrap();
        t.set(2, Some("data/hot".into())).unwrap();
        t.set(3, Some("logs".into())).unwrap();
        assert_eq!(t.resolve(Some("data/x")), 1);
        assert_eq!(t.resolve(Some("data/hot/x")), 2);
        assert_eq!(t.resolve(Some("data/hot")), 2);
        assert_eq!(t.resolve(Some("data/hotter/x")), 1, "a/bc is not in a/b");
        assert_eq!(t.resolve(Some("database/x")), ROOT_SCOPE);
        assert_eq!(t.resolve(Some("/logs/y")), 3);
        assert_eq!(t.resolve(Some("other")), ROOT_SCOPE);
        assert_eq!(t.resolve(None), ROOT_SCOPE);
        assert_eq!(t.enclosing(2), 1);
        assert_eq!(t.enclosing(1), ROOT_SCOPE);
        assert_eq!(t.depth(2), 1);
        assert!(
            t.set(3, Some("data".into())).is_err(),
            "two scopes, one path"
        );
        // A scope of the whole mount holds every other.
        t.set(4, Some(String::new())).unwrap();
        assert_eq!(t.resolve(Some("other")), 4);
        assert_eq!(t.enclosing(1), 4);
        assert_eq!(t.depth(2), 2);
    }

    proptest::proptest! {
        /// Against a plain model: the scope whose path's components are a prefix of the
        /// file's, with the most components; the enclosing scope likewise among the others.
        #[test]
        fn resolution_matches_a_component_model(
            dirs in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "ab", "a.b"]), 0..4),
                1..6,
            ),
            files in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "ab", "a.b", "c"]), 1..5),
                1..20,
            ),
        ) {
            let mut t = ScopePaths::default();
            let mut set: Vec<(ScopeId, Vec<&str>)> = Vec::new();
            for (i, d) in dirs.iter().enumerate() {
                let id = i + 1;
                if t.set(id, Some(d.join("/"))).is_ok() {
                    set.push((id, d.clone()));
                }
            }
            let model = |path: &[&str], skip: ScopeId, proper: bool| -> ScopeId {
                set.iter()
                    .filter(|(i, d)| {
                        *i != skip
                            && d.len() <= path.len()
                            && (!proper || d.len() < path.len())
                            && path[..d.len()] == d[..]
                    })
                    .max_by_key(|(_, d)| d.len())
                    .map_or(ROOT_SCOPE, |(i, _)| *i)
            };
            for f in &files {
                proptest::prop_assert_eq!(t.resolve(Some(&f.join("/"))), model(f, 0, false), "{:?}", f);
            }
            for (id, d) in &set {
                proptest::prop_assert_eq!(t.enclosing(*id), model(d, *id, true), "{:?}", d);
            }
        }
    }

    #[test]
    fn a_changed_path_changes_the_epoch_and_the_answer() {
        let mut t = ScopePaths::default();
        let e0 = t.epoch();
        t.set(1, Some("a".into())).unwrap();
        assert!(t.epoch() > e0);
        assert_eq!(t.resolve(Some("a/f")), 1);
        // The file renamed to b/f resolves to the root; moving the scope to b follows it.
        assert_eq!(t.resolve(Some("b/f")), ROOT_SCOPE);
        t.set(1, Some("b".into())).unwrap();
        assert_eq!(t.resolve(Some("b/f")), 1);
        assert_eq!(t.resolve(Some("a/f")), ROOT_SCOPE);
        t.set(1, None).unwrap();
        assert!(t.is_empty());
    }
}
