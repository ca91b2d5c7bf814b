//! The wasmtime engine shared by all plugins, its epoch ticker, and compilation
//! with ABI validation.
//!
//! One [`PluginEngine`] per process: it owns the wasmtime `Engine` (compiled
//! code is tied to it), a `Linker` holding the three `kplug.*` host imports,
//! and one ticker thread that bumps the engine's epoch every
//! [`abi::EPOCH_TICK`]. Epoch interruption is the cheapest way to bound a call:
//! the generated code only compares a counter at loop headers and function
//! entries, and setting a deadline before a call is a load and a store. Fuel is
//! off (it costs on every basic block and we do not meter, only bound).
//!
//! Compilation is where load-time refusals happen, before any plugin code
//! runs: size limit, magic header, wasmtime validation (with threads,
//! memory64, multi-memory, GC and the component model off, so there is exactly
//! one 32-bit non-shared memory), imports checked against the `kplug` set
//! (anything else, WASI included, is refused with its name), the required
//! exports, and each role's export set, which must be complete and exactly
//! typed. The result, [`CompiledPlugin`], is cheap to clone and to instantiate
//! many times (an `InstancePre` is cached), e.g. once per mount and per
//! simulator run.
//!
//! Every compile first looks the module's bytes up in the compiled-module cache
//! ([`crate::modcache`]): a module seen before is validated again (cheap) but not
//! compiled again.
//!
//! The ticker thread holds only a clone of the wasmtime `Engine` and a stop
//! flag; it ends within a tick of the last `PluginEngine` clone (held by every
//! compiled plugin and instance) being dropped.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Config, Engine, ExternType, FuncType, InstancePre, Linker, Module, OptLevel, ValType,
};

use crate::error::LoadError;
use crate::imports;
use crate::modcache::{self, ModuleCache, Source};
use crate::state::HostState;
use kplug_abi::{self as abi, Func, Role, RoleSet, exports as exp, imports as imp};

/// Tunables of a [`PluginEngine`]; the defaults are the documented ABI limits.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Cap on each plugin's linear memory, in bytes.
    pub memory_limit: usize,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Per-hook deadline in epoch ticks (a call times out after `ticks - 1`
    /// to `ticks` ticks of [`abi::EPOCH_TICK`]).
    pub hook_deadline_ticks: u64,
    /// Deadline of `kplug_set_param`/`kplug_init` in ticks.
    pub init_deadline_ticks: u64,
    /// CPU a plugin's slow calls may use per second before it is disabled (`budget.rs`);
    /// zero: no limit (the simulator, where nobody waits).
    pub slow_budget: Duration,
    /// The directory of the on-disk compiled-module cache (see [`crate::modcache`]); `None`
    /// keeps compiled modules in memory only. The mount and the simulator use
    /// [`crate::modcache::default_dir`].
    pub module_cache: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: abi::DEFAULT_MEMORY_LIMIT,
            max_module_bytes: abi::MAX_MODULE_BYTES,
            hook_deadline_ticks: abi::DEFAULT_HOOK_DEADLINE_TICKS,
            init_deadline_ticks: abi::DEFAULT_INIT_DEADLINE_TICKS,
            slow_budget: abi::DEFAULT_SLOW_BUDGET,
            module_cache: None,
        }
    }
}

struct EngineInner {
    engine: Engine,
    linker: Linker<HostState>,
    config: EngineConfig,
    modules: ModuleCache,
    stop: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide plugin engine: compiles and validates plugins. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl PluginEngine {
    /// Creates the engine and starts its epoch ticker thread.
    pub fn new(config: EngineConfig) -> Result<PluginEngine, LoadError> {
        let mut c = Config::new();
        c.epoch_interruption(true)
            .consume_fuel(false)
            .max_wasm_stack(abi::MAX_WASM_STACK)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_memory64(false)
            .wasm_multi_memory(false);
        let engine = Engine::new(&c).map_err(|e| LoadError::Instantiate(format!("engine: {e}")))?;
        let linker =
            imports::linker(&engine).map_err(|e| LoadError::Instantiate(format!("linker: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kplug-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(abi::EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Instantiate(format!("epoch ticker thread: {e}")))?;
        let modules = ModuleCache::new(&engine, config.module_cache.as_deref());
        Ok(PluginEngine {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                config,
                modules,
                stop,
            }),
        })
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn wasmtime(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles and validates a plugin module (binary format only), or takes it from the
    /// compiled-module cache if these bytes were compiled before (by this engine, or by one
    /// with the same settings sharing the disk cache). No plugin code runs here; see
    /// [`CompiledPlugin::instantiate`].
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, LoadError> {
        let limit = self.inner.config.max_module_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        if bytes.len() < 8 || bytes[0..4] != *b"\0asm" || bytes[4..8] != [1, 0, 0, 0] {
            return Err(LoadError::NotWasm);
        }
        let key = modcache::key(bytes);
        let (module, source) = match self.inner.modules.get(&self.inner.engine, &key) {
            Some(found) => found,
            None => (
                Module::from_binary(&self.inner.engine, bytes)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?,
                Source::Compiled,
            ),
        };
        check_imports(&module)?;
        let (roles, batched_eviction, probe) =
            check_exports(&module, self.inner.config.memory_limit)?;
        let transform = module.get_export(exp::TRANSFORM_CHUNK.name).is_some();
        if source == Source::Compiled {
            self.inner.modules.put(key, &module);
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        Ok(CompiledPlugin {
            inner: Arc::new(CompiledInner {
                name: name.to_string(),
                engine: self.clone(),
                source,
                pre,
                roles,
                batched_eviction,
                has_params: module.get_export(exp::SET_PARAM.name).is_some(),
                wants_sequentiality: imports(&module, imp::SEQUENTIALITY.name),
                wants_files: imports(&module, imp::FILE_SIZE.name)
                    || imports(&module, imp::PATH_MATCHES.name),
                wants_divergence: imports(&module, imp::CANDIDATE_DIVERGENCE.name),
                governor: module.get_export(exp::TICK.name).is_some(),
                transform,
                per_caller: imports(&module, imp::TRANSFORM_UID.name),
                probe,
                has_start: has_start_section(bytes),
            }),
        })
    }
}

pub(crate) struct CompiledInner {
    pub(crate) name: String,
    pub(crate) engine: PluginEngine,
    /// Where `compile` found the module.
    pub(crate) source: Source,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) roles: RoleSet,
    /// Serves eviction through the batched hooks of ABI 1.4 (`kplug_evict_miss`, ...).
    pub(crate) batched_eviction: bool,
    pub(crate) has_params: bool,
    /// Imports `kplug.sequentiality`: the core then tracks per-file sequentiality.
    pub(crate) wants_sequentiality: bool,
    /// Imports `kplug.file_size` or `kplug.path_matches`: the mount then records file facts.
    pub(crate) wants_files: bool,
    /// Imports `kplug.candidate_divergence`: the core then estimates it at each tick.
    pub(crate) wants_divergence: bool,
    /// Exports `kplug_tick`: a governor.
    pub(crate) governor: bool,
    /// Exports the transform role (ABI 1.6): a view's data-path plugin, no cache role.
    pub(crate) transform: bool,
    /// Imports `kplug.transform_uid`: a per-caller transform (its output depends on the reader).
    pub(crate) per_caller: bool,
    /// Exports the probe hooks (ABI 1.5).
    pub(crate) probe: bool,
    /// Has a start function (a trap while instantiating is then its fault, else a segment's).
    pub(crate) has_start: bool,
}

impl CompiledPlugin {
    /// Whether the module is a governor (exports `kplug_tick`, ABI 1.1).
    pub fn is_governor(&self) -> bool {
        self.inner.governor
    }

    /// Whether the module is a transform (exports `kplug_transform_*`, ABI 1.6).
    pub fn is_transform(&self) -> bool {
        self.inner.transform
    }

    /// Whether a transform is per-caller (imports `transform_uid`, ABI 1.6).
    pub fn is_per_caller(&self) -> bool {
        self.inner.per_caller
    }

    /// Whether the module is a probe (exports `kplug_probe_*`, ABI 1.5).
    pub fn is_probe(&self) -> bool {
        self.inner.probe
    }
}

/// A validated, compiled plugin module. Cheap to clone; instantiate it once
/// per cache (each instance has its own store, memory and state).
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) inner: Arc<CompiledInner>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("name", &self.inner.name)
            .field("roles", &self.inner.roles)
            .finish()
    }
}

impl CompiledPlugin {
    /// The name given at compile time.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The roles whose export sets the module implements.
    pub fn roles(&self) -> RoleSet {
        self.inner.roles
    }

    /// Whether the module was compiled now or found in the compiled-module cache.
    pub fn source(&self) -> Source {
        self.inner.source
    }

    /// Whether the module exports `kplug_set_param` (accepts parameters).
    pub fn accepts_params(&self) -> bool {
        self.inner.has_params
    }
}

fn type_letter(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::V128 => "v128",
        ValType::Ref(_) => "ref",
    }
}

fn describe_func(ft: &FuncType) -> String {
    let mut s = String::from("func(");
    for (i, p) in ft.params().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(type_letter(&p));
    }
    s.push(')');
    let results: Vec<&str> = ft.results().map(|r| type_letter(&r)).collect();
    if !results.is_empty() {
        let _ = write!(s, " -> {}", results.join(", "));
    }
    s
}

fn describe_extern(t: &ExternType) -> String {
    match t {
        ExternType::Func(ft) => describe_func(ft),
        ExternType::Global(_) => "global".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Memory(_) => "memory".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// Renders an ABI signature written as letters (`I` = i32, `L` = i64).
fn describe_sig(params: &str, results: &str) -> String {
    let letter = |c: char| match c {
        'I' => "i32",
        'F' => "f64",
        _ => "i64",
    };
    let p: Vec<&str> = params.chars().map(letter).collect();
    let r: Vec<&str> = results.chars().map(letter).collect();
    if r.is_empty() {
        format!("func({})", p.join(", "))
    } else {
        format!("func({}) -> {}", p.join(", "), r.join(", "))
    }
}

fn matches_sig(t: &ExternType, params: &str, results: &str) -> bool {
    let ExternType::Func(ft) = t else {
        return false;
    };
    let same = |got: &mut dyn ExactSizeIterator<Item = ValType>, want: &str| {
        got.len() == want.len()
            && got.zip(want.chars()).all(|(g, w)| match w {
                'I' => matches!(g, ValType::I32),
                'F' => matches!(g, ValType::F64),
                _ => matches!(g, ValType::I64),
            })
    };
    same(&mut ft.params(), params) && same(&mut ft.results(), results)
}

/// Whether `module` imports `kplug.<name>` (the core computes some figures only then).
pub(crate) fn imports(module: &Module, name: &str) -> bool {
    module
        .imports()
        .any(|i| i.module() == imp::MODULE && i.name() == name)
}

fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let known = (import.module() == imp::MODULE)
            .then(|| imp::find(import.name()))
            .flatten();
        let Some(Func { sig, .. }) = known else {
            return Err(LoadError::UnknownImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        };
        let ty = import.ty();
        if !matches_sig(&ty, sig.params, sig.results) {
            return Err(LoadError::MistypedImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
                expected: describe_sig(sig.params, sig.results),
                found: describe_extern(&ty),
            });
        }
    }
    Ok(())
}

fn check_export(module: &Module, f: &Func, role: Option<Role>) -> Result<(), LoadError> {
    let Some(ty) = module.get_export(f.name) else {
        return Err(LoadError::MissingExport { name: f.name, role });
    };
    if !matches_sig(&ty, f.sig.params, f.sig.results) {
        return Err(LoadError::MistypedExport {
            name: f.name.to_string(),
            expected: describe_sig(f.sig.params, f.sig.results),
            found: describe_extern(&ty),
        });
    }
    Ok(())
}

/// The roles the module serves, whether it serves eviction through the batched set of
/// ABI 1.4 (preferred when both eviction sets are exported), and whether it is a probe (1.5).
fn check_exports(module: &Module, memory_limit: usize) -> Result<(RoleSet, bool, bool), LoadError> {
    match module.get_export(exp::MEMORY) {
        None => {
            return Err(LoadError::MissingExport {
                name: exp::MEMORY,
                role: None,
            });
        }
        Some(ExternType::Memory(m)) => {
            if m.is_64() || m.is_shared() {
                return Err(LoadError::Memory(
                    "memory must be 32-bit and not shared".into(),
                ));
            }
            let initial = m.minimum().saturating_mul(m.page_size());
            if initial > memory_limit as u64 {
                return Err(LoadError::Memory(format!(
                    "initial memory of {initial} bytes is over the limit of {memory_limit} bytes"
                )));
            }
        }
        Some(other) => {
            return Err(LoadError::MistypedExport {
                name: exp::MEMORY.into(),
                expected: "memory".into(),
                found: describe_extern(&other),
            });
        }
    }
    check_export(module, &exp::ABI_VERSION, None)?;
    for f in exp::LIFECYCLE {
        if module.get_export(f.name).is_some() {
            check_export(module, f, None)?;
        }
    }
    let mut roles = RoleSet::EMPTY;
    let has = |f: &Func| module.get_export(f.name).is_some();
    // A role's export set counts as exported when one of its own hooks is: the two eviction
    // sets share `kplug_evict_remove`, which alone names neither. Each set exported is
    // checked whole.
    let names_set = |set: &[Func]| {
        set.iter()
            .any(|f| f.name != exp::EVICT_REMOVE.name && has(f))
    };
    let batched = names_set(exp::EVICTION_BATCHED);
    let sets = Role::ALL
        .into_iter()
        .map(|r| (r, r.exports()))
        .chain([(Role::Eviction, exp::EVICTION_BATCHED)]);
    for (role, set) in sets {
        if names_set(set) {
            for f in set {
                check_export(module, f, Some(role))?;
            }
            roles = roles.with(role);
        }
    }
    // A governor (ABI 1.1) serves no cache role: it picks the policies that do.
    let governor = module.get_export(exp::TICK.name).is_some();
    if governor {
        check_export(module, &exp::TICK, None)?;
        if !roles.is_empty() {
            return Err(LoadError::GovernorWithRoles(roles.to_string()));
        }
    }
    // A transform (ABI 1.6) serves a view, no cache role and no governor.
    let transform = exp::TRANSFORM
        .iter()
        .chain([&exp::TRANSFORM_FLAGS])
        .any(|f| module.get_export(f.name).is_some());
    if transform {
        for f in exp::TRANSFORM {
            check_export(module, f, None)?;
        }
        if module.get_export(exp::TRANSFORM_FLAGS.name).is_some() {
            check_export(module, &exp::TRANSFORM_FLAGS, None)?;
        }
        if governor || !roles.is_empty() {
            return Err(LoadError::TransformWithRoles);
        }
    }
    // A probe (ABI 1.5) only watches: it serves no role and governs nothing.
    let probe = exp::PROBE
        .iter()
        .any(|f| module.get_export(f.name).is_some());
    if probe {
        for f in exp::PROBE {
            check_export(module, f, None)?;
        }
        if governor {
            return Err(LoadError::ProbeWithRoles("kplug_tick".into()));
        }
        if !roles.is_empty() {
            return Err(LoadError::ProbeWithRoles(format!(
                "the {roles} role's hooks"
            )));
        }
    }
    if roles.is_empty() && !governor && !transform && !probe {
        return Err(LoadError::NoRoles);
    }
    Ok((roles, batched, probe))
}

/// Whether a (validated) module binary has a start section (id 8). Sections are an id byte, a
/// LEB128 size and that many bytes, after the 8-byte header.
fn has_start_section(bytes: &[u8]) -> bool {
    const START: u8 = 8;
    let mut pos = 8;
    while pos < bytes.len() {
        let id = bytes[pos];
        pos += 1;
        let (mut size, mut shift) = (0usize, 0u32);
        loop {
            let Some(&b) = bytes.get(pos) else {
                return false;
            };
            pos += 1;
            size |= ((b & 0x7f) as usize).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if b & 0x80 == 0 || shift > 35 {
                break;
            }
        }
        if id == START {
            return true;
        }
        pos = pos.saturating_add(size);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn start_sections_are_found() {
        let with =
            wat::parse_str(r#"(module (memory 1) (func $s) (start $s) (data (i32.const 0) "x"))"#)
                .unwrap();
        let without =
            wat::parse_str(r#"(module (memory 1) (func $s) (data (i32.const 0) "x"))"#).unwrap();
        assert!(has_start_section(&with));
        assert!(!has_start_section(&without));
        assert!(!has_start_section(b"\0asm\x01\0\0\0"));
        assert!(!has_start_section(b"\0asm\x01\0\0\0\x01\xff"));
    }

    /// The smallest valid plugin: an admission policy admitting everything.
    const PLUGIN: &str = r#"(module
      (memory (export "memory") 1)
      (func (export "kplug_abi_version") (result i32) i32.const 0x10000)
      (func (export "kplug_admit") (param i64 i64 i64) (result i32) i32.const 1))"#;

    #[test]
    fn the_engine_compiles_a_module_once() {
        let tmp = std::env::temp_dir().join(format!("kplug-modcache-e-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let cfg = EngineConfig {
            module_cache: Some(tmp.clone()),
            ..Default::default()
        };
        let bytes = wat::parse_str(PLUGIN).unwrap();
        let e1 = PluginEngine::new(cfg.clone()).unwrap();
        let first = e1.compile("a", &bytes).unwrap();
        assert_eq!(first.source(), Source::Compiled);
        // Another name, same bytes: the same module, from memory.
        let again = e1.compile("b", &bytes).unwrap();
        assert_eq!(again.source(), Source::Memory);
        assert_eq!(again.name(), "b");
        assert!(again.instantiate(&[], 8).is_ok());
        // Another engine (another process) deserializes what the writer thread stored.
        let stored = || {
            fs::read_dir(&tmp).ok()?.flatten().find_map(|d| {
                fs::read_dir(d.path())
                    .ok()?
                    .flatten()
                    .find(|f| f.path().extension().is_some_and(|x| x == "cwasm"))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while stored().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "never written to disk"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let e2 = PluginEngine::new(cfg).unwrap();
        let c = e2.compile("c", &bytes).unwrap();
        assert_eq!(c.source(), Source::Disk);
        assert!(c.instantiate(&[], 8).is_ok());
        // Other bytes are compiled, and an invalid module is refused, never cached.
        let mut other = bytes.clone();
        other.extend_from_slice(&[0, 2, 1, b'x']); // a custom section "x"
        assert_eq!(e2.compile("d", &other).unwrap().source(), Source::Compiled);
        let bad = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
        assert!(e2.compile("bad", &bad).is_err());
        assert!(e2.compile("bad", &bad).is_err());
        let _ = fs::remove_dir_all(&tmp);
    }
}
