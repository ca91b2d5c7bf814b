//! Scopes in the simulator (`kplugfs sim --scope`): the trace's ids (or files) divided into
//! scopes, each with its own policy and share of one cache, as `.kplug/scopes/` divides a
//! mount (`kplug_cache::scopes` arbitrates, the same code as the mount's), so a user can
//! choose scope policies offline before deploying them.
//!
//! A scope is `NAME:ids=LO..HI:policy=SPEC[:share=F]`: the ids in `[LO, HI)` (either end may
//! be left out), or `files=LO..HI` for the files of a trace of blocks (`kplugfs trace
//! record`, or `--split-blocks`: an id's file is its high 32 bits); `SPEC` is a `--policy`
//! spec; `F` the fraction of the cache the scope is guaranteed (default 0). An id in several
//! ranges belongs to the narrowest (nested scopes: the innermost wins); the other ids to the
//! root scope, served by the run's `--policy`.

use anyhow::{Result, bail};
use kplug_cache::{ROOT_SCOPE, ScopeId, ScopedCache};
use serde::Serialize;

/// One `--scope`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeSpec {
    /// Its name in the results.
    pub name: String,
    /// Whether the range is of files (an id's high 32 bits) rather than ids.
    pub files: bool,
    /// First id (or file) of the range.
    pub lo: u64,
    /// One past the last.
    pub hi: u64,
    /// Its policy, a `--policy` spec.
    pub policy: String,
    /// The fraction of the cache it is guaranteed.
    pub share: f64,
}

impl ScopeSpec {
    /// Parses `NAME:ids=LO..HI:policy=SPEC[:share=F]` (or `files=LO..HI`).
    pub fn parse(text: &str) -> Result<Self> {
        let usage = "expected NAME:ids=LO..HI:policy=SPEC[:share=F] (or files=LO..HI)";
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() || name.contains('=') || name == "/" {
            bail!("--scope {text:?}: a scope needs a name first; {usage}");
        }
        let mut range = None;
        let (mut policy, mut share): (Option<String>, f64) = (None, 0.0);
        let mut last_policy = false;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                // A policy spec may hold `:` (`builtin:lru`).
                if last_policy && let Some(spec) = policy.as_mut() {
                    spec.push(':');
                    spec.push_str(p.trim());
                    continue;
                }
                bail!("--scope {text:?}: {p:?} is not key=value; {usage}");
            };
            last_policy = k.trim() == "policy";
            match k.trim() {
                k @ ("ids" | "files") => {
                    let Some((lo, hi)) = v.split_once("..") else {
                        bail!("--scope {text:?}: {k}={v} is not LO..HI");
                    };
                    let num = |s: &str, default: u64| -> Result<u64> {
                        let s = s.trim();
                        if s.is_empty() {
                            return Ok(default);
                        }
                        s.parse()
                            .map_err(|_| anyhow::anyhow!("--scope {text:?}: {s:?} is not a number"))
                    };
                    let (lo, hi) = (num(lo, 0)?, num(hi, u64::MAX)?);
                    if lo >= hi {
                        bail!("--scope {text:?}: the range {k}={v} is empty");
                    }
                    range = Some((k == "files", lo, hi));
                }
                "policy" => policy = Some(v.trim().to_string()),
                "share" => {
                    share = v
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| (0.0..=1.0).contains(f))
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--scope {text:?}: share={v} is not a fraction in 0..=1"
                            )
                        })?;
                }
                other => bail!("--scope {text:?}: unknown key {other:?}; {usage}"),
            }
        }
        let Some((files, lo, hi)) = range else {
            bail!("--scope {text:?}: no ids= or files= range; {usage}");
        };
        let Some(policy) = policy.filter(|p| !p.is_empty()) else {
            bail!("--scope {text:?}: no policy=; {usage}");
        };
        Ok(ScopeSpec {
            name: name.to_string(),
            files,
            lo,
            hi,
            policy,
            share,
        })
    }

    fn contains(&self, id: u64) -> bool {
        let k = if self.files { id >> 32 } else { id };
        (self.lo..self.hi).contains(&k)
    }

    /// How many ids the range spans (the narrowest containing range wins).
    fn width(&self) -> u128 {
        let w = (self.hi - self.lo) as u128;
        if self.files { w << 32 } else { w }
    }
}

/// Which scope an id belongs to: slot i + 1 for `specs[i]`, the root otherwise.
pub(crate) struct Resolver {
    /// `(spec, slot)`, narrowest first.
    order: Vec<(ScopeSpec, ScopeId)>,
}

impl Resolver {
    pub(crate) fn new(specs: &[ScopeSpec]) -> Self {
        let mut order: Vec<(ScopeSpec, ScopeId)> = specs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i + 1))
            .collect();
        order.sort_by_key(|(s, _)| s.width());
        Resolver { order }
    }

    #[inline]
    pub(crate) fn scope_of(&self, id: u64) -> ScopeId {
        self.order
            .iter()
            .find(|(s, _)| s.contains(id))
            .map_or(ROOT_SCOPE, |(_, slot)| *slot)
    }
}

/// One scope's figures in a result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScopeResult {
    /// Its name (`/`: the root scope).
    pub name: String,
    /// Its policy spec.
    pub policy: String,
    /// The blocks it was guaranteed.
    pub share_objects: u64,
    /// Requests counted in it (its ids; an id resident in another scope is counted there).
    pub requests: u64,
    /// Misses.
    pub misses: u64,
    /// misses / requests (0 without requests).
    pub miss_ratio: f64,
    /// Blocks it held at the end.
    pub resident: u64,
}

/// Replay `ids` through `cache`, each in its scope; returns misses.
pub(crate) fn replay(cache: &mut ScopedCache<()>, resolver: &Resolver, ids: &[u64]) -> u64 {
    let before = cache.stats().misses;
    for &id in ids {
        let s = resolver.scope_of(id);
        cache.request(s, id, || ());
    }
    cache.stats().misses - before
}

/// The per-scope figures of a replay.
pub(crate) fn results(
    cache: &ScopedCache<()>,
    specs: &[ScopeSpec],
    root_policy: &str,
) -> Vec<ScopeResult> {
    cache
        .cores()
        .map(|(i, core)| {
            let s = core.stats();
            let requests = s.hits + s.misses;
            let (name, policy) = if i == ROOT_SCOPE {
                ("/".to_string(), root_policy.to_string())
            } else {
                (specs[i - 1].name.clone(), specs[i - 1].policy.clone())
            };
            ScopeResult {
                name,
                policy,
                share_objects: cache.share(i).unwrap_or(0),
                requests,
                misses: s.misses,
                miss_ratio: if requests == 0 {
                    0.0
                } else {
                    s.misses as f64 / requests as f64
                },
                resident: core.len() as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_the_narrowest_range_wins() {
        let a = ScopeSpec::parse("hot:ids=0..100:policy=lru:share=0.5").unwrap();
        assert_eq!((a.lo, a.hi, a.share, a.files), (0, 100, 0.5, false));
        let b = ScopeSpec::parse("inner:ids=10..20:policy=fifo").unwrap();
        let n = ScopeSpec::parse("n:ids=1..2:policy=builtin:lru:share=0.1").unwrap();
        assert_eq!((n.policy.as_str(), n.share), ("builtin:lru", 0.1));
        let c = ScopeSpec::parse("f:files=3..:policy=lirs").unwrap();
        assert_eq!(c.hi, u64::MAX);
        let r = Resolver::new(&[a, b, c]);
        assert_eq!(r.scope_of(5), 1);
        assert_eq!(r.scope_of(15), 2);
        assert_eq!(r.scope_of(100), ROOT_SCOPE);
        assert_eq!(r.scope_of((3 << 32) | 7), 3);
        for bad in [
            "ids=0..1:policy=lru",
            "x:ids=5..5:policy=lru",
            "x:ids=0..1",
            "x:policy=lru",
            "x:ids=0..1:policy=lru:share=2",
            "x:ids=a..b:policy=lru",
            "x:ids=0..1:policy=lru:color=red",
        ] {
            assert!(ScopeSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
