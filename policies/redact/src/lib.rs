//! Transform, size-preserving: mask digits and/or every occurrence of a pattern with a mask
//! byte, keeping sizes and offsets (as Android's MediaProvider redacts by zero-fill): the view
//! of a file has the file's size with no pass, and byte `i` of the view is byte `i` of the
//! file or the mask. Occurrences are found left to right without overlap, across chunks (the
//! last `len(pattern) - 1` bytes of a chunk wait for the next one).
//!
//! **Per caller.** Readers whose uid is listed in `exempt-uid` see the file unmasked: the
//! transform asks the host who reads (`transform_uid`, ABI 1.6), so the host keeps its outputs
//! per user, and views are served with direct I/O: two readers never share kernel pages (as
//! MediaProvider forces `direct_io` for callers whose view differs).
//!
//! Parameters: `digits=0|1` (default 1 without a pattern, 0 with one), `pattern=TEXT`,
//! `mask=C` (one byte, default `#`), `exempt-uid=N` (repeatable, up to 8: readers who see the
//! bytes as they are).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;
use kplug_sdk::{Output, Plugin, Rejected, Transform, export_transform};

/// The redact transform.
pub struct Redact {
    pattern: Vec<u8>,
    digits: Option<bool>,
    mask: u8,
    /// Bytes held back (a pattern may start there), and how many of them a match took.
    tail: Vec<u8>,
    skip: usize,
    /// Readers who see the file unmasked, and whether the current stream's reader is one.
    exempt: Vec<u32>,
    exempt_now: bool,
}

/// Most `exempt-uid` entries.
const MAX_EXEMPT: usize = 8;

impl Default for Redact {
    fn default() -> Self {
        Redact {
            pattern: Vec::new(),
            digits: None,
            mask: b'#',
            tail: Vec::new(),
            skip: 0,
            exempt: Vec::new(),
            exempt_now: false,
        }
    }
}

impl Redact {
    /// Mask `pattern` (empty: none) and, with `digits`, every ASCII digit.
    pub fn new(pattern: &str, digits: bool, mask: u8) -> Self {
        Redact {
            pattern: pattern.as_bytes().to_vec(),
            digits: Some(digits),
            mask,
            ..Redact::default()
        }
    }
}

impl Plugin for Redact {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "pattern" if !value.is_empty() => self.pattern = value.as_bytes().to_vec(),
            "digits" => self.digits = Some(kplug_sdk::param_in(value, 0u8..=1)? == 1),
            "mask" if value.len() == 1 => self.mask = value.as_bytes()[0],
            "exempt-uid" if self.exempt.len() < MAX_EXEMPT => self
                .exempt
                .push(kplug_sdk::param_in(value, 0u32..=u32::MAX)?),
            _ => return Err(Rejected),
        }
        Ok(())
    }
}

impl Transform for Redact {
    const SIZE_PRESERVING: bool = true;

    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.tail.clear();
        self.skip = 0;
        self.exempt_now = kplug_sdk::transform_uid().is_some_and(|uid| self.exempt.contains(&uid));
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        if self.exempt_now {
            out.push(input);
            return Ok(false);
        }
        let mut buf = core::mem::take(&mut self.tail);
        buf.extend_from_slice(input);
        let plen = self.pattern.len();
        let emit = if last || plen == 0 {
            buf.len()
        } else {
            buf.len().saturating_sub(plen - 1)
        };
        if plen > 0 {
            let mut i = self.skip;
            while i < emit {
                if buf[i..].starts_with(&self.pattern) {
                    buf[i..i + plen].fill(self.mask);
                    i += plen;
                } else {
                    i += 1;
                }
            }
            self.skip = i - emit;
        }
        if self.digits.unwrap_or(plen == 0) {
            for b in &mut buf[..emit] {
                if b.is_ascii_digit() {
                    *b = self.mask;
                }
            }
        }
        out.push(&buf[..emit]);
        self.tail = buf.split_off(emit);
        Ok(false)
    }
}

export_transform!(Redact);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_replace() {
        let text = "card 1234 secret, aaa secretsecret 9";
        for chunk in [1, 2, 5, 7, 100] {
            let got = kplug_sdk::transform::run_native(
                &mut Redact::new("secret", false, b'*'),
                text.as_bytes(),
                chunk,
            )
            .unwrap();
            assert_eq!(
                got,
                text.replace("secret", "******").as_bytes(),
                "chunk {chunk}"
            );
            let got = kplug_sdk::transform::run_native(
                &mut Redact::new("aa", true, b'#'),
                text.as_bytes(),
                chunk,
            )
            .unwrap();
            let want: String = text
                .replace("aa", "##")
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect();
            assert_eq!(String::from_utf8(got).unwrap(), want, "chunk {chunk}");
        }
    }
}
