//! The host functions of module `kplug`: one `func_wrap` per entry of
//! [`kplug_abi::imports::ALL`], built once per engine into a `Linker`.
//!
//! Every import reads or writes only its caller's [`HostState`] and the cache's figures; none
//! takes the core's lock (they run inside a hook the core is calling with that lock held),
//! only the figures' own short leaf locks (per-file tables). Pointers a plugin
//! passes are checked against its memory (a bad one traps the call, which the core turns
//! into a fault of that plugin); strings are decoded lossily and bounded
//! ([`abi::MAX_LOG_BYTES`], [`abi::MAX_CANDIDATE_SPEC`]). A test checks that the linker
//! defines exactly the ABI's imports, each with the ABI's signature.

use std::sync::Arc;

use kplug_abi::{self as abi, Role, imports as imp};
use wasmtime::{Caller, Engine, Extern, Linker};

use crate::state::HostState;

/// Log messages a plugin may emit over its life before further ones are
/// dropped: a plugin logging on every hook would otherwise flood the log.
const LOG_BUDGET: u32 = abi::MAX_LOG_MESSAGES as u32;

/// The linker holding the `kplug.*` imports; built once per engine.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    l.func_wrap(
        imp::MODULE,
        imp::CAPACITY.name,
        |c: Caller<'_, HostState>| c.data().capacity as i64,
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::RESIDENT.name,
        |c: Caller<'_, HostState>| c.data().resident as i64,
    )?;
    l.func_wrap(imp::MODULE, imp::LOG.name, host_log)?;
    l.func_wrap(
        imp::MODULE,
        imp::HIT_RATIO.name,
        |c: Caller<'_, HostState>| c.data().figures.hit_ratio(),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::PRESSURE.name,
        |c: Caller<'_, HostState>| c.data().figures.pressure(),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::SEQUENTIALITY.name,
        |c: Caller<'_, HostState>, file: i64| c.data().figures.sequentiality(file as u64),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::BACKEND_LATENCY.name,
        |c: Caller<'_, HostState>| c.data().figures.backend_latency_ns() as i64,
    )?;
    l.func_wrap(imp::MODULE, imp::NOW.name, |c: Caller<'_, HostState>| {
        c.data().figures.now_ns() as i64
    })?;
    l.func_wrap(imp::MODULE, imp::ADD_CANDIDATE.name, add_candidate)?;
    l.func_wrap(
        imp::MODULE,
        imp::CANDIDATE_HITS.name,
        |c: Caller<'_, HostState>, i: i32| counter(&c, i, |h, _| h),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::CANDIDATE_REQUESTS.name,
        |c: Caller<'_, HostState>, i: i32| counter(&c, i, |_, r| r),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::CANDIDATE_DIVERGENCE.name,
        |c: Caller<'_, HostState>, i: i32| {
            usize::try_from(i)
                .ok()
                .and_then(|i| c.data().gov.divergence.get(i).copied().flatten())
                .map_or(-1, |d| d as i64)
        },
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::ACTIVE.name,
        |c: Caller<'_, HostState>, role: i32| {
            Role::from_index(role).map_or(-1, |r| c.data().gov.active[r as usize])
        },
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::ACTIVATE.name,
        |mut c: Caller<'_, HostState>, i: i32| {
            let g = &mut c.data_mut().gov;
            match usize::try_from(i) {
                Ok(i) if i < g.candidates.len() => {
                    if g.pending.len() < 4 * abi::MAX_CANDIDATES {
                        g.pending.push(i);
                    }
                    if g.candidates[i].0 == Role::Eviction {
                        g.weights.clear();
                    }
                    0
                }
                _ => -1,
            }
        },
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::SET_WEIGHT.name,
        |mut c: Caller<'_, HostState>, i: i32, w: f64| {
            let g = &mut c.data_mut().gov;
            match usize::try_from(i) {
                Ok(i)
                    if g.candidates.get(i).is_some_and(|c| c.0 == Role::Eviction)
                        && w.is_finite()
                        && w >= 0.0
                        && g.weights.len() < 4 * abi::MAX_CANDIDATES =>
                {
                    g.weights.push((i, w));
                    0
                }
                _ => -1,
            }
        },
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::BLOCK_SIZE.name,
        |c: Caller<'_, HostState>| c.data().figures.block_size().map_or(-1, |b| b as i64),
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::FILE_SIZE.name,
        |c: Caller<'_, HostState>, file: i64| {
            c.data()
                .figures
                .file_size(file as u64)
                .map_or(-1, |s| s.min(i64::MAX as u64) as i64)
        },
    )?;
    l.func_wrap(imp::MODULE, imp::ADD_GLOB.name, add_glob)?;
    l.func_wrap(
        imp::MODULE,
        imp::TRANSFORM_UID.name,
        |c: Caller<'_, HostState>| c.data().caller_uid,
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::TRANSFORM_RECORDS.name,
        |mut c: Caller<'_, HostState>, records_in: i64, records_out: i64| {
            let r = &mut c.data_mut().records;
            r.0 = r.0.saturating_add(records_in.max(0) as u64);
            r.1 = r.1.saturating_add(records_out.max(0) as u64);
        },
    )?;
    l.func_wrap(
        imp::MODULE,
        imp::PATH_MATCHES.name,
        |mut c: Caller<'_, HostState>, file: i64, glob: i32| {
            let d = c.data_mut();
            let figures = d.figures.clone();
            d.globs.matches(&figures, file as u64, glob)
        },
    )?;
    l.func_wrap(imp::MODULE, imp::PROBE_FILTER.name, probe_filter)?;
    l.func_wrap(imp::MODULE, imp::PROBE_SUBTREE.name, probe_subtree)?;
    l.func_wrap(imp::MODULE, imp::PROBE_PATH.name, probe_path)?;
    l.func_wrap(imp::MODULE, imp::PUBLISH.name, publish)?;
    l.func_wrap(imp::MODULE, imp::PROBE_FIGURE.name, probe_figure)?;
    Ok(l)
}

/// `probe_filter(kinds, uid)`: load time only; a mask with at least one known kind, and
/// only known kinds; a uid of -1 or a `u32`.
fn probe_filter(mut caller: Caller<'_, HostState>, kinds: i32, uid: i64) -> i32 {
    let kinds = kinds as u32;
    let known = abi::probe::ALL_KINDS;
    let uid = match uid {
        -1 => None,
        u => match u32::try_from(u) {
            Ok(u) => Some(u),
            Err(_) => return -1,
        },
    };
    let d = caller.data_mut();
    if !d.gov.loading || kinds == 0 || kinds & !known != 0 {
        return -1;
    }
    d.probe.kinds = kinds;
    d.probe.uid = uid;
    0
}

/// `probe_subtree(ptr, len)`: load time only; a directory of the mount, as UTF-8 with no
/// `.`, `..` or NUL (empty or `/`: the whole mount); stored without `/` at either end.
fn probe_subtree(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let len = len as u32 as usize;
    if !caller.data().gov.loading || len > abi::MAX_GLOB_BYTES {
        return Ok(-1);
    }
    let Some(path) = guest_str(&mut caller, imp::PROBE_SUBTREE.name, ptr, len)? else {
        return Ok(-1);
    };
    let Some(dir) = normal_subtree(&path) else {
        return Ok(-1);
    };
    caller.data_mut().probe.subtree = (!dir.is_empty()).then(|| Arc::from(dir.as_str()));
    Ok(0)
}

/// `a//b/` → `a/b`; `None` for a path with a `.` or `..` component or a NUL.
pub(crate) fn normal_subtree(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" => {}
            "." | ".." => return None,
            c if c.contains('\0') => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `publish(ptr, len, value)`: probes only; a name of 1..=64 bytes of UTF-8 without `/`, a
/// finite value, at most 32 names per probe.
fn publish(
    mut caller: Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    value: f64,
) -> wasmtime::Result<i32> {
    let len = len as u32 as usize;
    if !caller.data().probe.is_probe
        || len == 0
        || len > abi::probe::MAX_FIGURE_NAME
        || !value.is_finite()
    {
        return Ok(-1);
    }
    let Some(name) = guest_str(&mut caller, imp::PUBLISH.name, ptr, len)? else {
        return Ok(-1);
    };
    if name.contains('/') {
        return Ok(-1);
    }
    let d = caller.data();
    let ok = d
        .figures
        .publish(&d.name, &name, value, abi::probe::MAX_PROBE_FIGURES);
    Ok(if ok { 0 } else { -1 })
}

/// `probe_figure(ptr, len)`: NaN when no probe published it (or the name is not UTF-8).
fn probe_figure(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<f64> {
    let len = len as u32 as usize;
    if len == 0 || len > 2 * abi::probe::MAX_FIGURE_NAME + abi::MAX_PARAM_BYTES {
        return Ok(f64::NAN);
    }
    let Some(key) = guest_str(&mut caller, imp::PROBE_FIGURE.name, ptr, len)? else {
        return Ok(f64::NAN);
    };
    Ok(caller.data().figures.probe_figure(&key).unwrap_or(f64::NAN))
}

/// `probe_path(ino, ptr, cap)`: the path's length, its first `cap` bytes written at `ptr`
/// (a range outside memory traps); -1 when unknown.
fn probe_path(
    mut caller: Caller<'_, HostState>,
    ino: i64,
    ptr: i32,
    cap: i32,
) -> wasmtime::Result<i32> {
    let Some(path) = caller.data().probe.paths.get(&(ino as u64)).cloned() else {
        return Ok(-1);
    };
    let Some(Extern::Memory(mem)) = caller.get_export(abi::exports::MEMORY) else {
        return Ok(-1);
    };
    let n = path.len().min(cap.max(0) as usize);
    let start = ptr as u32 as usize;
    let Some(out) = mem.data_mut(&mut caller).get_mut(start..start + n) else {
        wasmtime::bail!(
            "kplug.{}: {start:#x}+{n} is outside the plugin's memory",
            imp::PROBE_PATH.name
        );
    };
    out.copy_from_slice(&path.as_bytes()[..n]);
    Ok(path.len().min(i32::MAX as usize) as i32)
}

/// The `len` bytes at `ptr` of the caller's memory, as UTF-8; `Ok(None)` when not UTF-8 or
/// the module has no memory, a trap when the range is outside it.
fn guest_str(
    caller: &mut Caller<'_, HostState>,
    what: &str,
    ptr: i32,
    len: usize,
) -> wasmtime::Result<Option<String>> {
    let Some(Extern::Memory(mem)) = caller.get_export(abi::exports::MEMORY) else {
        return Ok(None);
    };
    let start = ptr as u32 as usize;
    let Some(bytes) = mem.data(&caller).get(start..start + len) else {
        wasmtime::bail!("kplug.{what}: {start:#x}+{len} is outside the plugin's memory");
    };
    Ok(std::str::from_utf8(bytes).ok().map(str::to_string))
}

fn add_glob(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let len = len as u32 as usize;
    if !caller.data().gov.loading || len == 0 || len > abi::MAX_GLOB_BYTES {
        return Ok(-1);
    }
    let Some(pattern) = guest_str(&mut caller, imp::ADD_GLOB.name, ptr, len)? else {
        return Ok(-1);
    };
    Ok(caller
        .data_mut()
        .globs
        .add(&pattern)
        .map_or(-1, |i| i as i32))
}

fn counter(c: &Caller<'_, HostState>, i: i32, pick: fn(u64, u64) -> u64) -> i64 {
    usize::try_from(i)
        .ok()
        .and_then(|i| c.data().gov.counters.get(i).copied().flatten())
        .map_or(-1, |(h, r)| pick(h, r) as i64)
}

fn add_candidate(
    mut caller: Caller<'_, HostState>,
    role: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let (Some(role), true) = (Role::from_index(role), caller.data().gov.loading) else {
        return Ok(-1);
    };
    let len = len as u32 as usize;
    if len == 0
        || len > abi::MAX_CANDIDATE_SPEC
        || caller.data().gov.candidates.len() >= abi::MAX_CANDIDATES
    {
        return Ok(-1);
    }
    let Some(spec) = guest_str(&mut caller, imp::ADD_CANDIDATE.name, ptr, len)? else {
        return Ok(-1);
    };
    let g = &mut caller.data_mut().gov;
    g.candidates.push((role, spec));
    Ok(g.candidates.len() as i32 - 1)
}

fn host_log(
    mut caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    if caller.data().logs_left == 0 {
        return Ok(());
    }
    caller.data_mut().logs_left -= 1;
    let Some(Extern::Memory(mem)) = caller.get_export(abi::exports::MEMORY) else {
        return Ok(());
    };
    let (start, len) = (
        ptr as u32 as usize,
        (len as u32 as usize).min(abi::MAX_LOG_BYTES),
    );
    let data = mem.data(&caller);
    let Some(bytes) = start.checked_add(len).and_then(|end| data.get(start..end)) else {
        wasmtime::bail!("kplug.log: message {start:#x}+{len} is outside the plugin's memory");
    };
    let msg = crate::text::printable(&String::from_utf8_lossy(bytes));
    let name = &caller.data().name;
    match level {
        0 => tracing::error!(plugin = %name, "{msg}"),
        1 => tracing::warn!(plugin = %name, "{msg}"),
        2 => tracing::info!(plugin = %name, "{msg}"),
        3 => tracing::debug!(plugin = %name, "{msg}"),
        _ => tracing::trace!(plugin = %name, "{msg}"),
    }
    if caller.data().logs_left == 0 {
        tracing::warn!(plugin = %name, "log budget of {LOG_BUDGET} messages spent; dropping further messages");
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wasmtime::{Store, ValType};

    fn letters(tys: impl Iterator<Item = ValType>) -> String {
        tys.map(|t| match t {
            ValType::I32 => 'I',
            ValType::I64 => 'L',
            ValType::F64 => 'F',
            other => panic!("type {other:?} is not in the ABI"),
        })
        .collect()
    }

    /// The linker defines exactly the ABI's imports, each with the ABI's signature.
    #[test]
    fn the_linker_is_the_abi() {
        let engine = Engine::default();
        let l = linker(&engine).unwrap();
        let mut store = Store::new(&engine, HostState::new(Arc::from("t"), 1, 1 << 20));
        let items: Vec<(String, String, wasmtime::Extern)> = l
            .iter(&mut store)
            .map(|(m, n, e)| (m.to_string(), n.to_string(), e))
            .collect();
        let mut defined = Vec::new();
        for (module, name, ext) in items {
            let name = name.as_str();
            assert_eq!(module, imp::MODULE);
            let f = imp::find(name).unwrap_or_else(|| panic!("{name} is not in the ABI"));
            let ty = ext.ty(&store);
            let ft = ty.func().expect("a function");
            assert_eq!(letters(ft.params()), f.sig.params, "{name}");
            assert_eq!(letters(ft.results()), f.sig.results, "{name}");
            defined.push(name.to_string());
        }
        defined.sort();
        let mut all: Vec<String> = imp::ALL.iter().map(|f| f.name.to_string()).collect();
        all.sort();
        assert_eq!(defined, all);
    }
}
