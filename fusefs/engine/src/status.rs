//! The status of a loaded plugin, shared between the cache that runs it and
//! whoever displays it (the mount's control file, the simulator's report).
//!
//! A [`StatusHandle`] is an `Arc` the registry and a UI keep; the instance
//! updates it. The hot path must stay cheap, so the call counter is a plain
//! relaxed *store* of the instance's own count (a `mov` on x86, no locked
//! read-modify-write), and so is the sampled time spent in hooks; state and error change at most a few times in a
//! plugin's life and sit behind a mutex. [`StatusSnapshot`] is the
//! serialisable view with the fields the control interface shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use kplug_abi::{Role, RoleSet};

use crate::text::one_line;

/// Lifecycle state of a plugin instance (and, in a mount's status, of a plugin file, which
/// may also be `loading`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// A plugin file written but not loaded yet: nothing of it serves.
    Loading,
    /// Loaded and serving (or ready to serve) its roles.
    Active,
    /// Disabled by a fault; the built-ins serve its roles.
    Failed,
    /// Replaced or removed by the operator (no fault).
    Disabled,
}

/// Live status of one plugin instance. Read it with [`PluginStatus::snapshot`].
#[derive(Debug)]
pub struct PluginStatus {
    name: String,
    roles: RoleSet,
    governor: bool,
    probe: bool,
    loaded_at: SystemTime,
    pub(crate) calls: AtomicU64,
    faults: AtomicU64,
    time_ns: AtomicU64,
    state: Mutex<(PluginState, Option<String>)>,
    first_decision: std::sync::OnceLock<std::time::Instant>,
    /// The governor this instance is a candidate of: whatever the candidate serves was put
    /// in service by that governor (and goes when its file goes).
    owner: std::sync::OnceLock<StatusHandle>,
}

/// Shared handle to a plugin's status.
pub type StatusHandle = Arc<PluginStatus>;

/// A point-in-time copy of a [`PluginStatus`], serialisable to JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// Plugin name.
    pub name: String,
    /// Roles the plugin implements.
    pub roles: Vec<Role>,
    /// Whether it is a governor (ABI 1.1: exports `kplug_tick`; it may serve no role).
    pub governor: bool,
    /// Whether it is a probe (ABI 1.5: exports `kplug_probe_*`; it serves no role).
    pub probe: bool,
    /// `active`, `failed` or `disabled`.
    pub state: PluginState,
    /// The fault or reason that ended it, if any.
    pub error: Option<String>,
    /// Load time, milliseconds since the Unix epoch.
    pub loaded_at: u64,
    /// Hook calls made so far.
    pub calls: u64,
    /// Faults seen (0 or 1: a fault disables the plugin).
    pub faults: u64,
}

impl PluginStatus {
    pub(crate) fn new(name: &str, roles: RoleSet, governor: bool, probe: bool) -> StatusHandle {
        Arc::new(PluginStatus {
            name: name.to_string(),
            roles,
            governor,
            probe,
            loaded_at: SystemTime::now(),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            time_ns: AtomicU64::new(0),
            state: Mutex::new((PluginState::Active, None)),
            first_decision: std::sync::OnceLock::new(),
            owner: std::sync::OnceLock::new(),
        })
    }

    /// Record that this instance is a candidate of the governor whose status is `owner`.
    pub fn set_owner(&self, owner: &StatusHandle) {
        let _ = self.owner.set(owner.clone());
    }

    /// The governor this instance is a candidate of, if any.
    pub fn owner(&self) -> Option<&StatusHandle> {
        self.owner.get()
    }

    /// Whether this is the instance `h`, or a candidate of it.
    pub fn is_or_owned_by(self: &Arc<Self>, h: &StatusHandle) -> bool {
        Arc::ptr_eq(self, h) || self.owner().is_some_and(|o| Arc::ptr_eq(o, h))
    }

    /// Plugin name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current state.
    pub fn state(&self) -> PluginState {
        self.state.lock().0
    }

    /// The error message of a failed (or reason of a disabled) plugin.
    pub fn error(&self) -> Option<String> {
        self.state.lock().1.clone()
    }

    /// Hook calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Estimated nanoseconds spent in the plugin's hooks: one call in 16 is timed with the
    /// monotonic clock and counted 16 times, so the estimate is exact on average for a
    /// plugin whose calls cost about the same, at a fraction of the cost of timing them all.
    pub fn time_ns(&self) -> u64 {
        self.time_ns.load(Ordering::Relaxed)
    }

    pub(crate) fn add_sampled_time(&self, ns: u64) {
        // Only the thread holding the plugin's store calls it: a load and a store are enough.
        let t = self.time_ns.load(Ordering::Relaxed);
        self.time_ns.store(t.wrapping_add(ns), Ordering::Relaxed);
    }

    /// When the plugin, once installed, answered its first hook call (hot-swap latency is
    /// measured up to this instant).
    pub fn first_decision(&self) -> Option<std::time::Instant> {
        self.first_decision.get().copied()
    }

    pub(crate) fn note_first_decision(&self) {
        let _ = self.first_decision.set(std::time::Instant::now());
    }

    /// Faults seen.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// A serialisable copy.
    pub fn snapshot(&self) -> StatusSnapshot {
        let (state, error) = self.state.lock().clone();
        StatusSnapshot {
            name: self.name.clone(),
            roles: self.roles.iter().collect(),
            governor: self.governor,
            probe: self.probe,
            state,
            error,
            loaded_at: self
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            calls: self.calls(),
            faults: self.faults(),
        }
    }

    pub(crate) fn set_failed(&self, message: String) {
        self.faults.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        if s.0 == PluginState::Active {
            *s = (PluginState::Failed, Some(one_line(&message)));
        }
    }

    /// Record that the instance was taken out of service without a fault, for `reason`
    /// (state `disabled`); no change if it is already out.
    pub fn set_disabled(&self, reason: &str) {
        let mut s = self.state.lock();
        if s.0 == PluginState::Active {
            *s = (PluginState::Disabled, Some(one_line(reason)));
        }
    }
}
