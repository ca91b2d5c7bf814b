//! `follow`: an eviction governor that switches on a fixed schedule, for what-if studies.
//!
//! `schedule=lirs@0/twoq@600000` makes the cache follow `lirs` from the start and `twoq`
//! from the 600,000th demand request on (requests as the candidates count them: since the
//! governor was loaded). Run it in `kplugfs sim` to measure what a switch at a given moment
//! costs or gains against the fixed policies, e.g. whether the refetch cost of switching, or
//! its timing, is what separates a governor from the best fixed policy (docs/policies.md).
//! With `report-every=N`, every N requests (checked on each tick) it logs each candidate's
//! hits so far, one info line `hits after R requests: lirs=H twoq=H ...`, which is how the
//! tick-by-tick figures in docs/policies.md were taken; `watch` adds candidates that are
//! only reported, never followed.
//!
//! The cache follows a candidate as under any governor (the host's shadow caches; the cache
//! evicts first what the followed shadow does not hold), so a schedule of one entry gives
//! exactly that fixed policy's misses.
//!
//! Parameters: `schedule` (`name@requests` joined by `/`, requests increasing, the first
//! at 0; default `lru@0`, so that dropped into a mount without parameters it serves LRU),
//! `watch` (names joined by `/`, default none), `report-every` (requests, default 0: no
//! report; the older name `report_every` is an alias). A name may carry parameters, as any
//! candidate spec: `lirs:hirs-ratio=0.05@0`. In a mount, `follow` with `watch` and
//! `report-every` logs live what other policies would have hit.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kplug_sdk::governor::{activate, add_candidate, candidate_hits, candidate_requests};
use kplug_sdk::{
    Governor, Level, Plugin, Rejected, Role, export_plugin, log, param_key, param_list,
};

/// What is followed without a `schedule`.
const DEFAULT_POLICY: &str = "lru";
/// Older names of the parameters, `(alias, canonical)`.
const ALIASES: &[(&str, &str)] = &[("report_every", "report-every")];

/// The schedule-following governor.
#[derive(Default)]
pub struct Follow {
    /// Candidate names, each once: the schedule's, then `watch`'s.
    names: Vec<String>,
    /// (from this many requests on, follow `names[i]`), increasing.
    schedule: Vec<(u64, usize)>,
    report_every: u64,
    /// Host candidate index per name.
    index: Vec<u32>,
    following: usize,
    next_report: u64,
}

impl Follow {
    fn name_slot(&mut self, name: &str) -> Result<usize, Rejected> {
        if name.is_empty() || name.contains(['@', '/']) {
            return Err(Rejected);
        }
        Ok(match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(String::from(name));
                self.names.len() - 1
            }
        })
    }

    fn parse_schedule(&mut self, v: &str) -> Result<(), Rejected> {
        let mut schedule = Vec::new();
        for step in param_list(v) {
            let (name, at) = step.split_once('@').ok_or(Rejected)?;
            let at: u64 = at.parse()?;
            match schedule.last() {
                None if at != 0 => return Err(Rejected),
                Some(&(prev, _)) if at <= prev => return Err(Rejected),
                _ => {}
            }
            schedule.push((at, self.name_slot(name)?));
        }
        if schedule.is_empty() {
            return Err(Rejected);
        }
        self.schedule = schedule;
        Ok(())
    }

    /// The schedule entry in force after `requests` requests (the schedule starts at 0).
    fn due(&self, requests: u64) -> usize {
        self.schedule
            .iter()
            .take_while(|&&(at, _)| at <= requests)
            .last()
            .map_or(0, |&(_, i)| i)
    }
}

impl Plugin for Follow {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match param_key(key, ALIASES) {
            "schedule" => self.parse_schedule(value),
            "watch" => {
                for name in param_list(value) {
                    self.name_slot(name)?;
                }
                Ok(())
            }
            "report-every" => {
                self.report_every = value.parse()?;
                Ok(())
            }
            _ => Err(Rejected),
        }
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        if self.schedule.is_empty() {
            let lru = self.name_slot(DEFAULT_POLICY).map_err(|_| 1)?;
            self.schedule.push((0, lru));
        }
        for name in &self.names {
            self.index
                .push(add_candidate(Role::Eviction, name).ok_or(2)?);
        }
        self.following = self.schedule[0].1;
        activate(self.index[self.following]);
        self.next_report = self.report_every;
        Ok(())
    }
}

impl Governor for Follow {
    fn tick(&mut self, _now_ns: u64) {
        let requests = candidate_requests(self.index[0]).unwrap_or(0);
        let due = self.due(requests);
        if due != self.following {
            self.following = due;
            activate(self.index[due]);
            log(
                Level::Info,
                &format!("after {requests} requests: following {}", self.names[due]),
            );
        }
        if self.report_every > 0 && requests >= self.next_report {
            self.next_report = (requests / self.report_every + 1) * self.report_every;
            let mut line = format!("hits after {requests} requests:");
            for (name, &i) in self.names.iter().zip(&self.index) {
                line += &format!(" {name}={}", candidate_hits(i).unwrap_or(0));
            }
            log(Level::Info, &line);
        }
    }
}

export_plugin!(Follow, governor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_parsed_and_followed_in_order() {
        let mut f = Follow::default();
        f.set_param("schedule", "lirs@0/twoq@600/lirs@900").unwrap();
        f.set_param("watch", "arc/twoq").unwrap();
        assert_eq!(f.names, ["lirs", "twoq", "arc"]);
        assert_eq!(f.due(0), 0);
        assert_eq!(f.due(599), 0);
        assert_eq!(f.due(600), 1);
        assert_eq!(f.due(899), 1);
        assert_eq!(f.due(900), 0);
        assert_eq!(f.due(u64::MAX), 0);
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "",
            "/",
            "lirs",
            "lirs@5",
            "lirs@0/twoq@0",
            "lirs@0/twoq@10/arc@5",
            "lirs@x",
            "@0",
            "lirs@-1",
        ] {
            assert!(
                Follow::default().set_param("schedule", bad).is_err(),
                "{bad:?} accepted"
            );
        }
        let mut f = Follow::default();
        assert!(f.set_param("report-every", "1000").is_ok());
        assert!(f.set_param("report-every", "-1").is_err());
        assert!(f.set_param("watch", "a@b").is_err());
        assert!(f.set_param("bogus", "1").is_err());
        assert!(f.set_param("Report-Every", "1").is_err());
    }

    #[test]
    fn canonical_names_and_aliases_set_the_same_value() {
        for key in ["report-every", "report_every"] {
            let mut f = Follow::default();
            f.set_param(key, "2000").unwrap();
            assert_eq!(f.report_every, 2000, "{key}");
            assert!(f.set_param(key, "1.5").is_err(), "{key}");
            assert!(f.set_param(key, "x").is_err(), "{key}");
        }
        // A schedule's names are candidate specs: they may carry parameters.
        let mut f = Follow::default();
        f.set_param("schedule", "lirs:hirs-ratio=0.05@0/lru@100")
            .unwrap();
        assert_eq!(f.names, ["lirs:hirs-ratio=0.05", "lru"]);
        // A list's empty elements are ignored, as in `watch` and adaptive's `candidates`.
        let mut f = Follow::default();
        f.set_param("schedule", "lirs@0//twoq@600/").unwrap();
        assert_eq!((f.due(599), f.due(600)), (0, 1));
    }
}
