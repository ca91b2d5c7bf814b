//! Transform: keep the lines containing a pattern, as `grep -F PATTERN` does (`invert=1`:
//! the lines without it, `grep -v`). Lines are cut by the SDK across chunks; the last line of
//! a file without a newline is kept as it is.
//!
//! Parameters: `pattern=TEXT` (required, bytes matched as they are), `invert=0|1`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;
use kplug_sdk::memchr::memmem::Finder;
use kplug_sdk::{Lines, Output, Plugin, Rejected, Transform, export_transform};

/// The grep transform.
#[derive(Default)]
pub struct Grep {
    pattern: Vec<u8>,
    /// The pattern's searcher, built once (`init`).
    finder: Option<Finder<'static>>,
    invert: bool,
    lines: Lines,
}

impl Grep {
    /// A grep for `pattern`.
    pub fn new(pattern: &str, invert: bool) -> Self {
        Grep {
            pattern: pattern.as_bytes().to_vec(),
            finder: Some(Finder::new(pattern.as_bytes()).into_owned()),
            invert,
            lines: Lines::default(),
        }
    }
}

impl Plugin for Grep {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "pattern" if !value.is_empty() => self.pattern = value.as_bytes().to_vec(),
            "invert" => self.invert = kplug_sdk::param_in(value, 0u8..=1)? == 1,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        if self.pattern.is_empty() {
            return Err(1);
        }
        self.finder = Some(Finder::new(&self.pattern).into_owned());
        Ok(())
    }
}

impl Transform for Grep {
    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.lines.clear();
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        let invert = self.invert;
        let finder = self.finder.as_ref().ok_or(1)?;
        self.lines.feed(input, last, out, |line, o| {
            if finder.find(line).is_some() != invert {
                o.push_record(line);
            }
        });
        Ok(false)
    }
}

export_transform!(Grep);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_lines_like_grep() {
        let text = b"alpha\nbeta ERR x\ngamma\nERR\nlast ERR";
        for chunk in [1, 3, 5, 100] {
            let got = kplug_sdk::transform::run_native(&mut Grep::new("ERR", false), text, chunk);
            assert_eq!(got.unwrap(), b"beta ERR x\nERR\nlast ERR");
            let got = kplug_sdk::transform::run_native(&mut Grep::new("ERR", true), text, chunk);
            assert_eq!(got.unwrap(), b"alpha\ngamma\n");
        }
        let got = kplug_sdk::transform::run_native(&mut Grep::new("ab", false), b"aab\naa\n", 1);
        assert_eq!(got.unwrap(), b"aab\n");
    }
}
