//! Role adapters: one enum per role that is either a native built-in or a slot
//! in the core's plugin table, with the ABI's answer validation.
//!
//! A plugin implementing several roles is one [`Plugin`] (one store) sitting in
//! one slot; each role adapter that uses it holds the slot index. When any hook
//! faults, the adapter reports `(slot, fault)` and the core disables the slot,
//! which switches every role pointing at it to its built-in at once. Adapters
//! validate what only the answer itself can tell (admission 0/1, prefetch range
//! shape and bounds); validation against cache state (is the victim resident?)
//! gets a predicate from the core.

pub(crate) mod admission;
pub(crate) mod eviction;
pub(crate) mod prefetch;

use kplug_engine::{HookFault, Plugin};

/// A fault raised by the plugin in `slot`.
#[derive(Debug)]
pub(crate) struct SlotFault {
    pub(crate) slot: usize,
    pub(crate) fault: HookFault,
}

/// The core's table of installed plugins.
#[derive(Default)]
pub(crate) struct PluginSlots {
    slots: Vec<Option<Plugin>>,
}

impl PluginSlots {
    pub(crate) fn add(&mut self, p: Plugin) -> usize {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(p);
            i
        } else {
            self.slots.push(Some(p));
            self.slots.len() - 1
        }
    }

    #[inline]
    pub(crate) fn get(&mut self, slot: usize) -> &mut Plugin {
        self.slots[slot]
            .as_mut()
            .expect("role adapter points at a live plugin slot")
    }

    #[inline]
    pub(crate) fn peek(&self, slot: usize) -> &Plugin {
        self.slots[slot]
            .as_ref()
            .expect("role adapter points at a live plugin slot")
    }

    pub(crate) fn take(&mut self, slot: usize) -> Option<Plugin> {
        self.slots.get_mut(slot).and_then(Option::take)
    }
}
