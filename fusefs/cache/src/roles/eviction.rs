//! Eviction role adapter. Contracts (same for built-ins and plugins):
//! `insert` is called after a block became resident (room was made first);
//! `access` on every hit; `remove` when the host drops a block for a reason
//! other than eviction (invalidation); `victim` proposes a block to evict and
//! forgets it. The core evicts exactly the proposed block and does not call
//! `remove` for it. A plugin's victim must be resident, else `InvalidAnswer`.
//!
//! A plugin on the batched hooks of ABI 1.4 goes through the same calls (the
//! engine queues hits and turns `insert` into `kplug_evict_miss(key, 0)`), except
//! on a miss, where the core calls it directly (`CacheCore::evict_for_miss`);
//! the victims it names on any call wait in the plugin until the core takes,
//! checks and evicts them (`CacheCore::evict_returned`). One on the handles of
//! 1.8 also answers `insert` (and the core's miss) with the block's handle, which
//! the core keeps in the block's entry and passes to `access` and `remove`; the
//! others ignore it. The native built-ins are on handles too (`builtin/mod.rs`).

use super::{PluginSlots, SlotFault};
use crate::builtin::NativeEviction;
use kplug_engine::Fault;
use kplug_engine::HookFault;

pub(crate) enum EvictionRole {
    Native(Box<dyn NativeEviction>, &'static str),
    Plugin(usize),
}

impl EvictionRole {
    #[inline]
    pub(crate) fn insert(
        &mut self,
        plugins: &mut PluginSlots,
        key: u64,
        resident: u64,
    ) -> Result<Option<u32>, SlotFault> {
        match self {
            EvictionRole::Native(p, _) => Ok(Some(p.insert(key))),
            EvictionRole::Plugin(slot) => plugins
                .get(*slot)
                .evict_insert(key, resident)
                .map_err(|fault| SlotFault { slot: *slot, fault }),
        }
    }

    #[inline]
    pub(crate) fn access(
        &mut self,
        plugins: &mut PluginSlots,
        key: u64,
        handle: u32,
        resident: u64,
    ) -> Result<bool, SlotFault> {
        match self {
            EvictionRole::Native(p, _) => {
                p.access(key, handle);
                Ok(false)
            }
            EvictionRole::Plugin(slot) => plugins
                .get(*slot)
                .evict_access(key, handle, resident)
                .map_err(|fault| SlotFault { slot: *slot, fault }),
        }
    }

    #[inline]
    pub(crate) fn remove(
        &mut self,
        plugins: &mut PluginSlots,
        key: u64,
        handle: u32,
        resident: u64,
    ) -> Result<(), SlotFault> {
        match self {
            EvictionRole::Native(p, _) => {
                p.remove(key, handle);
                Ok(())
            }
            EvictionRole::Plugin(slot) => plugins
                .get(*slot)
                .evict_remove(key, handle, resident)
                .map_err(|fault| SlotFault { slot: *slot, fault }),
        }
    }

    /// A validated victim. `Ok(None)` means a native policy had no valid
    /// answer (out of sync with the core: a host bug the core repairs).
    #[inline]
    pub(crate) fn victim(
        &mut self,
        plugins: &mut PluginSlots,
        resident: u64,
        is_resident: impl Fn(u64) -> bool,
    ) -> Result<Option<u64>, SlotFault> {
        match self {
            EvictionRole::Native(p, _) => Ok(p.victim().filter(|k| is_resident(*k))),
            EvictionRole::Plugin(slot) => {
                let key = plugins
                    .get(*slot)
                    .evict_victim(resident)
                    .map_err(|fault| SlotFault { slot: *slot, fault })?;
                if is_resident(key) {
                    Ok(Some(key))
                } else {
                    Err(SlotFault {
                        slot: *slot,
                        fault: not_resident(kplug_abi::exports::EVICT_VICTIM.name, key),
                    })
                }
            }
        }
    }
}

/// The fault of a plugin whose hook `hook` named `key` a victim while it is not resident.
pub(crate) fn not_resident(hook: &'static str, key: u64) -> HookFault {
    HookFault {
        hook,
        fault: Fault::InvalidAnswer(format!("victim {key:#x} is not a resident block")),
    }
}
