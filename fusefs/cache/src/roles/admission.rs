//! Admission role adapter. `admit(key, file, block)` is asked once per missed
//! block about to be inserted (demand or prefetch), before room is made. A
//! plugin must answer exactly 1 (admit) or 0 (refuse); anything else is an
//! `InvalidAnswer` fault, never silently read as a boolean, so that a plugin
//! returning garbage is caught instead of quietly distorting the cache.

use super::{PluginSlots, SlotFault};
use crate::builtin::NativeAdmission;
use kplug_engine::Fault;
use kplug_engine::HookFault;

pub(crate) enum AdmissionRole {
    Native(Box<dyn NativeAdmission>, &'static str),
    Plugin(usize),
}

impl AdmissionRole {
    #[inline]
    pub(crate) fn admit(
        &mut self,
        plugins: &mut PluginSlots,
        key: u64,
        file: u64,
        block: u64,
        resident: u64,
    ) -> Result<bool, SlotFault> {
        match self {
            AdmissionRole::Native(p, _) => Ok(p.admit(key, file, block)),
            AdmissionRole::Plugin(slot) => {
                let slot = *slot;
                match plugins.get(slot).admit(key, file, block, resident) {
                    Ok(1) => Ok(true),
                    Ok(0) => Ok(false),
                    Ok(other) => Err(SlotFault {
                        slot,
                        fault: HookFault {
                            hook: kplug_abi::exports::ADMIT.name,
                            fault: Fault::InvalidAnswer(format!(
                                "kplug_admit returned {other}; must be 0 or 1"
                            )),
                        },
                    }),
                    Err(fault) => Err(SlotFault { slot, fault }),
                }
            }
        }
    }
}
