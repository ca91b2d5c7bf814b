//! A fixed-size read buffer shared by every reader.
//!
//! `BufReader` cannot be asked for "at least N bytes" (it refills only when empty), which the
//! binary readers need to decode a record in place and the sniffer needs to look at the first
//! kilobytes. [`Input`] keeps one 64 KiB buffer, refills it on demand by moving the unread tail
//! to the front, and hands out slices: records and lines are parsed straight from the buffer,
//! with no per-record allocation and no copy beyond the `read` itself. It also tracks the file
//! offset of the next unread byte, which errors report.

use std::io::{self, Read};

/// Buffer size. Large enough that refills are rare (a 64 KiB read per ~2,700 oracle records)
/// and that any sane text line fits; small enough to stay in L2.
pub(crate) const CAPACITY: usize = 64 * 1024;

/// Why [`Input::next_line`] produced no line.
pub(crate) enum LineError {
    /// The underlying reader failed.
    Io(io::Error),
    /// No newline within [`CAPACITY`] bytes.
    TooLong,
}

/// A refillable window over a `Read`.
pub(crate) struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[0]`.
    base: u64,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R) -> Self {
        Input {
            inner,
            buf: vec![0; CAPACITY].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            base: 0,
        }
    }

    /// The unread bytes, holding at least `want` (≤ [`CAPACITY`]) unless the input ends first.
    #[inline]
    pub(crate) fn fill(&mut self, want: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < want {
            self.refill(want)?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    #[cold]
    fn refill(&mut self, want: usize) -> io::Result<()> {
        let want = want.min(self.buf.len());
        while self.end - self.pos < want && !self.eof {
            if self.buf.len() - self.pos < want {
                self.buf.copy_within(self.pos..self.end, 0);
                self.base += self.pos as u64;
                self.end -= self.pos;
                self.pos = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n.min(self.buf.len() - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Marks `n` buffered bytes as read.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// File offset of the next unread byte.
    pub(crate) fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next line without its `\n` (and without a `\r` before it), or `None` at the end. A
    /// last line without a newline is returned as is.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        let mut scanned = 0;
        let (start, len, skip) = loop {
            let avail = &self.buf[self.pos + scanned..self.end];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                break (self.pos, scanned + i, scanned + i + 1);
            }
            scanned = self.end - self.pos;
            if self.eof {
                if scanned == 0 {
                    return Ok(None);
                }
                break (self.pos, scanned, scanned);
            }
            if scanned >= self.buf.len() {
                return Err(LineError::TooLong);
            }
            self.refill(scanned + 1).map_err(LineError::Io)?;
        };
        // `refill` may have moved the data: re-read `pos`, which `start` was taken from.
        debug_assert_eq!(start, self.pos);
        self.pos += skip;
        let mut line = &self.buf[start..start + len];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        Ok(Some(line))
    }
}
