//! The C SDK's header, `plugin-sdk/c/kplug.h`, generated from this crate's tables so that
//! the ABI stays defined once: `CHeader.to_string()` is the header, and
//! `plugin-sdk/abi/tests/c_header.rs` fails when the file in the repository differs from it
//! (`KPLUG_BLESS=1 cargo test -p kplug-abi --test c_header` rewrites it).
//!
//! Each import is declared under its wasm name with `import_module("kplug")` and a C name
//! prefixed `kplug_` (the bare names would clash with libc's: `log`); each export is declared
//! with `export_name`, so a plugin only has to define the functions of the roles it serves
//! (a declared but undefined function is neither exported nor imported). Types follow the
//! signature letters (`I` int32_t, `L` int64_t, `F` double); an `i32` argument named `ptr`
//! or `*_ptr` is an address in the plugin's memory and is declared `const char *` (the same
//! `i32` in wasm32).

use core::fmt::{self, Display, Formatter, Write};

use crate::{Func, Level, Role, exports, imports};

/// The text of `kplug.h` (see the module docs).
pub struct CHeader;

/// The C name of import `f`: `kplug_` + its wasm name.
pub fn import_c_name(f: &Func) -> CName<'_> {
    CName("kplug_", f.name)
}

/// A C identifier: a prefix and a name.
pub struct CName<'a>(&'static str, &'a str);

impl Display for CName<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        f.write_str(self.1)
    }
}

fn c_type(letter: char) -> &'static str {
    match letter {
        'I' => "int32_t",
        'L' => "int64_t",
        'F' => "double",
        _ => unreachable!("signature letters are I, L, F (checked by the crate's tests)"),
    }
}

fn wasm_type(letter: char) -> &'static str {
    match letter {
        'I' => "i32",
        'L' => "i64",
        _ => "f64",
    }
}

/// `name(a: i32, b: i64) -> i32`, as docs/plugin-abi.md writes signatures.
fn wasm_sig(out: &mut Formatter<'_>, f: &Func) -> fmt::Result {
    write!(out, "{}(", f.name)?;
    for (i, (letter, arg)) in f.sig.params.chars().zip(f.args).enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        write!(out, "{sep}{arg}: {}", wasm_type(letter))?;
    }
    out.write_char(')')?;
    if let Some(r) = f.sig.results.chars().next() {
        write!(out, " -> {}", wasm_type(r))?;
    }
    Ok(())
}

/// `int32_t NAME(const char *ptr, int64_t key)`.
fn c_decl(out: &mut Formatter<'_>, f: &Func, c_name: &dyn Display) -> fmt::Result {
    let ret = f.sig.results.chars().next().map_or("void", c_type);
    write!(out, "{ret} {c_name}(")?;
    if f.args.is_empty() {
        out.write_str("void")?;
    }
    for (i, (letter, arg)) in f.sig.params.chars().zip(f.args).enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let is_ptr = letter == 'I' && (*arg == "ptr" || arg.ends_with("_ptr"));
        // `out_ptr`: a buffer the host writes (`probe_path`); any other pointer is read.
        let ty = match (is_ptr, *arg == "out_ptr") {
            (true, true) => "char *",
            (true, false) => "const char *",
            _ => c_type(letter),
        };
        let space = if is_ptr { "" } else { " " };
        write!(out, "{sep}{ty}{space}{arg}")?;
    }
    out.write_char(')')
}

/// The C prototype of import (`import`) or export `f` as `kplug.h` declares it, without
/// attributes or `;`: `int32_t kplug_add_glob(const char *ptr, int32_t len)`.
pub fn prototype(f: &Func, import: bool) -> Prototype<'_> {
    Prototype(f, import)
}

/// See [`prototype`].
pub struct Prototype<'a>(&'a Func, bool);

impl Display for Prototype<'_> {
    fn fmt(&self, out: &mut Formatter<'_>) -> fmt::Result {
        if self.1 {
            c_decl(out, self.0, &import_c_name(self.0))
        } else {
            c_decl(out, self.0, &self.0.name)
        }
    }
}

fn declare(out: &mut Formatter<'_>, f: &Func, import: bool) -> fmt::Result {
    out.write_str("/* ")?;
    wasm_sig(out, f)?;
    writeln!(out, ", ABI 1.{} */", f.since_minor)?;
    let attr = if import { "IMPORT" } else { "EXPORT" };
    writeln!(
        out,
        "KPLUG_{attr}(\"{}\") {};",
        f.name,
        prototype(f, import)
    )
}

impl Display for CHeader {
    fn fmt(&self, out: &mut Formatter<'_>) -> fmt::Result {
        let (major, minor) = (crate::ABI_MAJOR, crate::ABI_MINOR);
        writeln!(
            out,
            "/* kplug.h: the kplugfs plugin ABI {major}.{minor}, for plugins written in C.
 *
 * GENERATED from plugin-sdk/abi (the kplug-abi crate), where the ABI is defined once:
 * do not edit. Regenerate with `KPLUG_BLESS=1 cargo test -p kplug-abi --test c_header`.
 * The contract of every function is docs/plugin-abi.md (section 3 exports, 4 imports).
 *
 * A plugin is freestanding C (there is no libc and no WASI): it takes memory from its
 * static data or above __heap_base (policies/c/lru.c), defines kplug_abi_version and
 * every export of each role it serves, and calls any of the imports. Build:
 *   clang --target=wasm32-unknown-unknown -O2 -ffreestanding -nostdlib \\
 *         -Wl,--no-entry -I plugin-sdk/c -o lru.wasm policies/c/lru.c
 * (wasm-ld comes with lld). Only the imports a plugin calls end up in its module, and only
 * the exports it defines: declaring the others here costs nothing.
 */
#ifndef KPLUG_H
#define KPLUG_H

#include <stdint.h>

#ifdef __cplusplus
extern \"C\" {{
#endif

#define KPLUG_ABI_MAJOR {major}
#define KPLUG_ABI_MINOR {minor}
/* What kplug_abi_version() returns. */
#define KPLUG_ABI_VERSION ((KPLUG_ABI_MAJOR << 16) | KPLUG_ABI_MINOR)
"
        )?;
        out.write_str("/* Limits. */\n")?;
        for (name, value) in [
            ("EVICT_BUF_KEYS", crate::EVICT_BUF_KEYS),
            ("EVICT_AHEAD_KEYS", crate::EVICT_AHEAD_KEYS),
            ("EVICT_HINT_KEYS", crate::EVICT_HINT_KEYS),
            ("EVICT_LOOKAHEAD_KEYS", crate::EVICT_LOOKAHEAD_KEYS),
            (
                "EVICT_AHEAD_MIN_HIT_BATCH",
                crate::EVICT_AHEAD_MIN_HIT_BATCH,
            ),
            ("MAX_PREFETCH_RANGES", crate::MAX_PREFETCH_RANGES),
            ("PREFETCH_RANGE_BYTES", crate::PREFETCH_RANGE_BYTES),
            ("MAX_MODULE_BYTES", crate::MAX_MODULE_BYTES),
            ("DEFAULT_MEMORY_LIMIT", crate::DEFAULT_MEMORY_LIMIT),
            ("MEMORY_PER_BLOCK", crate::MEMORY_PER_BLOCK),
            ("MAX_TABLE_ELEMENTS", crate::MAX_TABLE_ELEMENTS),
            ("MAX_PARAM_BYTES", crate::MAX_PARAM_BYTES),
            ("MAX_LOG_BYTES", crate::MAX_LOG_BYTES),
            ("MAX_CANDIDATES", crate::MAX_CANDIDATES),
            ("MAX_CANDIDATE_SPEC", crate::MAX_CANDIDATE_SPEC),
            ("MAX_GLOBS", crate::MAX_GLOBS),
            ("MAX_GLOB_BYTES", crate::MAX_GLOB_BYTES),
            ("TRANSFORM_IN_BYTES", crate::TRANSFORM_IN_BYTES),
            ("TRANSFORM_OUT_BYTES", crate::TRANSFORM_OUT_BYTES),
            ("TRANSFORM_MORE", crate::TRANSFORM_MORE as usize),
            (
                "TRANSFORM_SIZE_PRESERVING",
                crate::TRANSFORM_SIZE_PRESERVING as usize,
            ),
        ] {
            writeln!(out, "#define KPLUG_{name} {value}")?;
        }
        writeln!(
            out,
            "/* Marks a miss among a call's hits (1.10): kplug_evict_ahead. */\n\
             #define KPLUG_EVICT_MISS_EVENT {:#x}ULL",
            crate::EVICT_MISS_EVENT
        )?;
        out.write_str("\n/* Roles, as the governor imports number them. */\n")?;
        for r in Role::ALL {
            let name = r.name();
            write!(out, "#define KPLUG_ROLE_")?;
            for c in name.chars() {
                out.write_char(c.to_ascii_uppercase())?;
            }
            writeln!(out, " {}", r as i32)?;
        }
        out.write_str("\n/* Levels of kplug_log. */\n")?;
        for (name, l) in [
            ("ERROR", Level::Error),
            ("WARN", Level::Warn),
            ("INFO", Level::Info),
            ("DEBUG", Level::Debug),
            ("TRACE", Level::Trace),
        ] {
            writeln!(out, "#define KPLUG_LOG_{name} {}", l as i32)?;
        }
        out.write_str(
            "
/* One range of a prefetch answer, KPLUG_MAX_PREFETCH_RANGES of them at the address
 * kplug_prefetch_buf() returns: blocks [start, start + len) of the file. */
typedef struct kplug_range {
    uint64_t start;
    uint64_t len;
} kplug_range;
_Static_assert(sizeof(kplug_range) == KPLUG_PREFETCH_RANGE_BYTES, \"kplug_range layout\");

#define KPLUG_IMPORT(name) __attribute__((import_module(\"",
        )?;
        out.write_str(imports::MODULE)?;
        out.write_str(
            "\"), import_name(name)))
#define KPLUG_EXPORT(name) __attribute__((export_name(name)))

/* Imports: the host's functions, module \"",
        )?;
        out.write_str(imports::MODULE)?;
        out.write_str("\", each under its C name kplug_NAME. */\n\n")?;
        for f in imports::ALL {
            declare(out, f, true)?;
        }
        writeln!(
            out,
            "
/* Exports. Every plugin defines kplug_abi_version (and has a memory, which wasm-ld
 * exports); kplug_alloc, kplug_set_param and kplug_init are optional; a role's
 * exports come all together or not at all. */
"
        )?;
        let groups: [(&str, &[Func]); 16] = [
            ("Required.", &[exports::ABI_VERSION]),
            ("Optional: parameters and init.", exports::LIFECYCLE),
            ("Role eviction.", exports::EVICTION),
            (
                "Role eviction, batched (1.4): these with kplug_evict_remove, instead of the four above.",
                &[
                    exports::EVICT_BUF,
                    exports::EVICT_HIT_BATCH,
                    exports::EVICT_MISS,
                    exports::EVICT_HITS,
                ],
            ),
            (
                "Role eviction by handle (1.8): these with kplug_evict_buf and kplug_evict_hit_batch, instead of either set above.",
                &[
                    exports::EVICT_HANDLE_MISS,
                    exports::EVICT_HANDLE_HITS,
                    exports::EVICT_HANDLE_REMOVE,
                ],
            ),
            (
                "Optional with either batched set (1.9): the load's replay in batches.",
                &[exports::EVICT_SEED],
            ),
            (
                "Optional with the set by handle (1.10): victims named ahead.",
                &[exports::EVICT_AHEAD],
            ),
            (
                "Optional with the set by handle (1.11): likely victims.",
                &[exports::EVICT_HINTS],
            ),
            (
                "Optional with the set by handle (1.12): the coming requests.",
                &[exports::EVICT_LOOKAHEAD],
            ),
            (
                "Optional with the set by handle (1.13): the hits that may wait.",
                &[exports::EVICT_HIT_MARKS],
            ),
            ("Role admission.", exports::ADMISSION),
            ("Role prefetch.", exports::PREFETCH_ROLE),
            (
                "Role governor (may not serve another role).",
                exports::GOVERNOR,
            ),
            (
                "Role transform, ABI 1.6 (may not serve another role).",
                exports::TRANSFORM,
            ),
            (
                "Optional for a transform: its flags.",
                &[exports::TRANSFORM_FLAGS],
            ),
            (
                "Role probe, ABI 1.5 (may not serve another role; see docs/probes.md).",
                exports::PROBE,
            ),
        ];
        for (i, (title, funcs)) in groups.iter().enumerate() {
            let sep = if i > 0 { "\n" } else { "" };
            writeln!(out, "{sep}/* {title} */")?;
            for f in *funcs {
                declare(out, f, false)?;
            }
        }
        out.write_str(
            "
/* Logs a NUL-terminated message (kplug_log takes a length; there is no strlen). */
static inline void kplug_log_str(int32_t level, const char *msg) {
    int32_t len = 0;
    while (msg[len] != 0) len++;
    kplug_log(level, msg, len);
}

#ifdef __cplusplus
}
#endif

#endif /* KPLUG_H */
",
        )
    }
}
