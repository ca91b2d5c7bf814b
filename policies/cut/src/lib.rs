//! Transform: keep chosen columns of delimited lines, as `cut -d, -f1,3` does: the fields are
//! numbered from 1 and output in ascending order joined by the delimiter; a line without the
//! delimiter is kept whole; every line keeps its newline. Region of interest.
//!
//! Parameters: `fields=1,3` (required; give several as `fields=1` `fields=3` lines in
//! `NAME.params`, or `fields=1;3` on one line: a `,` separates parameters), `delimiter=C` (one
//! byte, default `,`; `tab` for a tab).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::vec::Vec;
use kplug_sdk::memchr::{memchr, memchr_iter};
use kplug_sdk::{Lines, Output, Plugin, Rejected, Transform, export_transform};

/// Highest field number accepted.
const MAX_FIELD: usize = 1024;

/// The cut transform.
#[derive(Default)]
pub struct Cut {
    /// Sorted, deduplicated 1-based field numbers.
    fields: Vec<usize>,
    delimiter: Option<u8>,
    lines: Lines,
}

impl Cut {
    /// A cut keeping `fields` (1-based) split at `delimiter`.
    pub fn new(fields: &[usize], delimiter: u8) -> Self {
        let mut c = Cut {
            fields: fields.to_vec(),
            delimiter: Some(delimiter),
            lines: Lines::default(),
        };
        c.fields.sort_unstable();
        c.fields.dedup();
        c
    }

    fn cut(&self, line: &[u8], o: &mut Output) {
        let d = self.delimiter.unwrap_or(b',');
        let (body, nl) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        if memchr(d, body).is_none() {
            o.push_record(line);
            return;
        }
        let mut first = true;
        let mut want = self.fields.iter().peekable();
        let ends = memchr_iter(d, body).chain(core::iter::once(body.len()));
        let mut start = 0;
        for (i, end) in ends.enumerate() {
            let Some(&&n) = want.peek() else { break };
            if n == i + 1 {
                if !first {
                    o.push_byte(d);
                }
                o.push(&body[start..end]);
                first = false;
                want.next();
            }
            start = end + 1;
        }
        if nl {
            o.push_byte(b'\n');
        }
        o.push_record(&[]);
    }
}

impl Plugin for Cut {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "fields" => {
                for f in value.split([';', ' ']).filter(|f| !f.is_empty()) {
                    self.fields
                        .push(kplug_sdk::param_in(f, 1usize..=MAX_FIELD)?);
                }
                self.fields.sort_unstable();
                self.fields.dedup();
            }
            "delimiter" => {
                self.delimiter = Some(match value {
                    "tab" | "\\t" => b'\t',
                    v if v.len() == 1 => v.as_bytes()[0],
                    _ => return Err(Rejected),
                })
            }
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        if self.fields.is_empty() {
            Err(1)
        } else {
            Ok(())
        }
    }
}

impl Transform for Cut {
    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.lines.clear();
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        let mut lines = core::mem::take(&mut self.lines);
        lines.feed(input, last, out, |line, o| self.cut(line, o));
        self.lines = lines;
        Ok(false)
    }
}

export_transform!(Cut);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_like_cut() {
        let text = b"a,b,c,d\n1,2,3\nnodelim\n,x,\nlast,y";
        let got = kplug_sdk::transform::run_native(&mut Cut::new(&[3, 1], b','), text, 2);
        assert_eq!(got.unwrap(), b"a,c\n1,3\nnodelim\n,\nlast");
    }
}
