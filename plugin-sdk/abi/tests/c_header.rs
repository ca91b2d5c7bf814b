//! `plugin-sdk/c/kplug.h` is generated from this crate's tables (`kplug_abi::c`): the file in
//! the repository must be exactly what the tables give, so the C SDK cannot drift from the
//! ABI. `KPLUG_BLESS=1 cargo test -p kplug-abi --test c_header` rewrites it after an ABI
//! change. (That the declarations compile to exactly the ABI's wasm signatures is checked by
//! clang in `fusefs/cache/tests/sdk.rs`.)

use std::path::PathBuf;

use kplug_abi::c::{CHeader, import_c_name};
use kplug_abi::{exports, imports};

fn header_path() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    dir.join("../c/kplug.h")
}

#[test]
fn kplug_h_is_generated_from_the_abi() {
    let want = CHeader.to_string();
    let path = header_path();
    if std::env::var_os("KPLUG_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{} is not what kplug-abi generates (first difference at line {}); regenerate it \
             with `KPLUG_BLESS=1 cargo test -p kplug-abi --test c_header`",
            path.display(),
            line + 1
        );
    }
}

#[test]
fn the_header_declares_every_function_once() {
    let h = CHeader.to_string();
    for f in imports::ALL {
        let decl = format!("KPLUG_IMPORT(\"{}\") ", f.name);
        assert_eq!(h.matches(&decl).count(), 1, "{}", f.name);
        assert!(h.contains(&format!(" {}(", import_c_name(f))), "{}", f.name);
        assert!(
            h.contains(&format!("ABI 1.{} */\n{decl}", f.since_minor)),
            "{}",
            f.name
        );
    }
    for f in exports::ALL {
        let decl = format!("KPLUG_EXPORT(\"{}\") ", f.name);
        assert_eq!(h.matches(&decl).count(), 1, "{}", f.name);
    }
    // C names: an import's kplug_NAME must not be an export's name.
    for i in imports::ALL {
        let c = import_c_name(i).to_string();
        assert!(
            exports::find(&c).is_none(),
            "{c} is both an import and an export"
        );
    }
    assert!(h.contains(&format!(
        "#define KPLUG_ABI_MAJOR {}\n#define KPLUG_ABI_MINOR {}\n",
        kplug_abi::ABI_MAJOR,
        kplug_abi::ABI_MINOR
    )));
    assert!(h.contains("import_module(\"kplug\")"));
}
