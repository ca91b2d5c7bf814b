//! Prefetch role adapter. After an access the core asks for ranges to read
//! ahead; a plugin writes `n` ranges `{start: u64, len: u64}` (little-endian)
//! at the address it gave at load and returns `n`.
//!
//! Validation here is about legality: `0 <= n <= 64`, `len > 0`, and
//! `start + len <= file_blocks` without overflow. A range outside the file is
//! a fault: the plugin is confused about the file, and its other answers are
//! not to be trusted either. Size is *not* a fault: a legal request for the
//! whole file is clamped by the core to its prefetch budget, which is a
//! resource decision of the host, not a correctness property of the plugin.

use super::{PluginSlots, SlotFault};
use crate::builtin::NativePrefetch;
use kplug_abi as abi;
use kplug_abi::BlockRange;
use kplug_engine::Fault;
use kplug_engine::HookFault;

pub(crate) enum PrefetchRole {
    Native(Box<dyn NativePrefetch>, &'static str),
    Plugin(usize),
}

fn invalid(slot: usize, msg: String) -> SlotFault {
    SlotFault {
        slot,
        fault: HookFault {
            hook: abi::exports::PREFETCH.name,
            fault: Fault::InvalidAnswer(msg),
        },
    }
}

impl PrefetchRole {
    /// Appends the validated ranges of the policy to `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan(
        &mut self,
        plugins: &mut PluginSlots,
        file: u64,
        block: u64,
        file_blocks: u64,
        hit: bool,
        resident: u64,
        out: &mut Vec<BlockRange>,
    ) -> Result<(), SlotFault> {
        match self {
            PrefetchRole::Native(p, _) => {
                p.plan(file, block, file_blocks, hit, out);
                debug_assert!(
                    out.iter()
                        .all(|r| r.len > 0 && r.start + r.len <= file_blocks)
                );
                Ok(())
            }
            PrefetchRole::Plugin(slot) => {
                let slot = *slot;
                let (n, bytes) = plugins
                    .get(slot)
                    .prefetch(file, block, file_blocks, hit, resident)
                    .map_err(|fault| SlotFault { slot, fault })?;
                if !(0..=abi::MAX_PREFETCH_RANGES as i32).contains(&n) {
                    return Err(invalid(
                        slot,
                        format!(
                            "kplug_prefetch returned {n} ranges; must be 0..={}",
                            abi::MAX_PREFETCH_RANGES
                        ),
                    ));
                }
                for (i, r) in bytes.chunks_exact(abi::PREFETCH_RANGE_BYTES).enumerate() {
                    let start = u64::from_le_bytes(r[0..8].try_into().expect("8 bytes"));
                    let len = u64::from_le_bytes(r[8..16].try_into().expect("8 bytes"));
                    if len == 0 {
                        return Err(invalid(slot, format!("range {i} ({start}, 0) is empty")));
                    }
                    if start.checked_add(len).is_none_or(|end| end > file_blocks) {
                        return Err(invalid(
                            slot,
                            format!(
                                "range {i} (start {start}, len {len}) ends beyond the file's {file_blocks} blocks"
                            ),
                        ));
                    }
                    out.push(BlockRange { start, len });
                }
                Ok(())
            }
        }
    }
}
