//! The text an operator writes into a mount's `.kplug/plugins/`: plugin file names and
//! `NAME.params` parameter files. Parsed here, in the engine, beside `parse_params` (the
//! command line's form), so that anything driving the engine (the daemon's control tree, a
//! fuzz target) runs the same code; both take any input and answer a one-line error for
//! what they refuse.

/// The plugin name of a file: its name without `.wasm`.
pub fn plugin_name(file: &str) -> &str {
    file.strip_suffix(".wasm").unwrap_or(file)
}

/// Longest file name in `plugins/` (the kernel's NAME_MAX).
const MAX_NAME_BYTES: usize = 255;

/// Check the name of a new file of `plugins/`: 1 to 255 bytes, not starting with `.` (so
/// neither `.wasm` nor `.params` alone), without `/` or control characters (a name shows in
/// logs and in `status`).
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("a plugin file name is 1 to {MAX_NAME_BYTES} bytes"));
    }
    if name.starts_with('.') {
        return Err(format!("{name:?} starts with '.'"));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!("{name:?} holds '/' or a control character"));
    }
    Ok(())
}

/// Parse a parameter file: `key=value` pairs separated by newlines or commas; `#` starts a
/// comment.
pub fn parse_params_text(text: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text =
        std::str::from_utf8(text).map_err(|_| "parameters must be UTF-8 text".to_string())?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for item in line.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value"))?;
            if k.trim().is_empty() {
                return Err(format!("{item:?} has an empty key"));
            }
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameter_text() {
        assert_eq!(plugin_name("lru.wasm"), "lru");
        assert_eq!(plugin_name("nsk"), "nsk");
        assert!(check_file_name("lru.wasm").is_ok());
        for bad in ["", ".wasm", "a/b", "a\nb", &"x".repeat(256)] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_params_text(b"a=1, b = 2 # c=3\nd=x=y").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("d".into(), "x=y".into())
            ]
        );
        assert!(parse_params_text(b"=1").is_err());
        assert!(parse_params_text(b"novalue").is_err());
        assert!(parse_params_text(b"\xff").is_err());
    }
}
