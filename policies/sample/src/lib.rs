//! Transform: keep every Nth record (the 1st, the N+1th, ...): lines, or fixed-size binary
//! records. Downsampling: fidelity traded for the bytes a reader must take.
//!
//! Parameters: `every=N` (default 10, at least 1), `record=BYTES` (0, the default: lines).

#![cfg_attr(target_arch = "wasm32", no_std)]

use kplug_sdk::{FixedRecords, Lines, Output, Plugin, Rejected, Transform, export_transform};

/// The sample transform.
pub struct Sample {
    every: u64,
    record: usize,
    seen: u64,
    lines: Lines,
    records: FixedRecords,
}

impl Default for Sample {
    fn default() -> Self {
        Sample::new(10, 0)
    }
}

impl Sample {
    /// Keep one record in `every`; records of `record` bytes (0: lines).
    pub fn new(every: u64, record: usize) -> Self {
        Sample {
            every: every.max(1),
            record,
            seen: 0,
            lines: Lines::default(),
            records: FixedRecords::new(record.max(1)),
        }
    }
}

impl Plugin for Sample {
    fn set_param(&mut self, key: &str, value: &str) -> Result<(), Rejected> {
        match key {
            "every" => self.every = kplug_sdk::param_in(value, 1u64..=u64::MAX)?,
            "record" => self.record = kplug_sdk::param_in(value, 0usize..=1 << 20)?,
            _ => return Err(Rejected),
        }
        Ok(())
    }

    fn init(&mut self, _capacity: u64) -> Result<(), i32> {
        *self = Sample::new(self.every, self.record);
        Ok(())
    }
}

impl Transform for Sample {
    fn begin(&mut self, _size: Option<u64>) -> Result<(), i32> {
        self.seen = 0;
        self.lines.clear();
        self.records.clear();
        Ok(())
    }

    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
        let (every, seen) = (self.every, &mut self.seen);
        let mut keep = |r: &[u8], o: &mut Output| {
            if *seen % every == 0 {
                o.push_record(r);
            }
            *seen += 1;
        };
        if self.record == 0 {
            self.lines.feed(input, last, out, &mut keep);
        } else {
            self.records.feed(input, last, out, &mut keep);
        }
        Ok(false)
    }
}

export_transform!(Sample);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_lines_and_records() {
        let got = kplug_sdk::transform::run_native(&mut Sample::new(2, 0), b"a\nb\nc\nd\ne", 3);
        assert_eq!(got.unwrap(), b"a\nc\ne");
        let got = kplug_sdk::transform::run_native(&mut Sample::new(3, 2), b"0011223344556", 5);
        assert_eq!(got.unwrap(), b"00336");
    }
}
