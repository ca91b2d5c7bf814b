//! Text from a plugin or from wasmtime, made fit for a log line or a status field.
//!
//! A plugin's log message is its own bytes: a newline in it would start what looks like a
//! daemon log line of its choosing, an escape sequence would drive the reader's terminal.
//! wasmtime's errors may carry a multi-line WebAssembly backtrace. Both are written out here
//! in one line: control characters become escapes (`\n`, `\u{1b}`), so nothing is lost and
//! nothing is forged; [`one_line`] also joins the lines of a multi-line message with `; `.

/// `s` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`...).
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as one line: its non-blank lines trimmed and joined with `; `, control characters
/// escaped.
pub fn one_line(s: &str) -> String {
    let joined = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    printable(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(
            printable("ok\n2026-01-01 ERROR forged\r\u{1b}[31m"),
            "ok\\n2026-01-01 ERROR forged\\r\\u{1b}[31m"
        );
        assert_eq!(printable("tab\there é"), "tab\\there é");
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(
            one_line("error while executing at wasm backtrace:\n    0:   0x1f - <unknown>!f\n\n"),
            "error while executing at wasm backtrace:; 0:   0x1f - <unknown>!f"
        );
        assert_eq!(one_line("one line"), "one line");
        assert!(!one_line("a\r\nb\u{0}").contains(['\n', '\r', '\0']));
    }
}
