//! The parsers of the control directory on arbitrary bytes: a `NAME.params` file, a plugin
//! file name, a command-line parameter string. Each accepts or refuses with one line; what
//! it accepts keeps the promised shape.
#![no_main]

use kplug_engine::names::{check_file_name, parse_params_text, plugin_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_params_text(data) {
        Ok(params) => {
            for (k, v) in &params {
                assert!(!k.is_empty() && !k.contains([',', '#', '\n']), "{k:?}");
                assert!(!v.contains([',', '#', '\n']), "{v:?}");
            }
        }
        Err(e) => assert!(!e.contains('\n'), "{e}"),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        match check_file_name(s) {
            Ok(()) => {
                assert!(!s.is_empty() && s.len() <= 255 && !s.contains('/'));
                assert!(!plugin_name(s).contains('/'));
            }
            Err(e) => assert!(!e.contains('\n'), "{e}"),
        }
        if let Ok(params) = kplug_engine::parse_params(s) {
            assert!(
                params
                    .iter()
                    .all(|(k, v)| !k.contains(',') && !v.contains(','))
            );
        }
    }
});
