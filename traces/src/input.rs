//! A fixed-size read buffer shared by every reader, decompressing zstd on the way.
//!
//! `BufReader` cannot be asked for "at least N bytes" (it refills only when empty), which the
//! binary readers need to decode a record in place and the sniffer needs to look at the first
//! kilobytes. [`Input`] keeps one 64 KiB buffer, refills it on demand by moving the unread tail
//! to the front, and hands out slices: records and lines are parsed straight from the buffer,
//! with no per-record allocation and no copy beyond the `read` itself. It also tracks the file
//! offset of the next unread byte, which errors report.
//!
//! A zstd-compressed trace (libCacheSim's traces are distributed as `.zst`) is decompressed
//! as it is read: [`Input::decompress_if_zstd`] looks at the first bytes, and from then on a
//! refill decompresses (libzstd's streaming decoder, through the `zstd` crate) instead of
//! copying, so every reader and the format sniffer see the plain bytes, streamed, never the
//! whole file in memory. Frames one after another are read one after another, as `zstdcat`
//! does; a stream that ends inside a frame is an error, not a short trace. Offsets are then
//! into the decompressed bytes.

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

/// The zstd magic number, the first four bytes of a zstd frame.
pub(crate) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether bytes starting with `head` are zstd-compressed, as the trace readers take them:
/// a zstd frame, or a skippable frame (magic `0x184D2A5?`, which `pzstd` writes first).
pub fn zstd_compressed(head: &[u8]) -> bool {
    let skippable = head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
    head.starts_with(&ZSTD_MAGIC) || skippable
}

/// A refillable window over a `Read`.
pub(crate) struct Input<R> {
    inner: R,
    /// Set when the input is zstd-compressed: refills decompress through it.
    zstd: Option<Box<Zstd>>,
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
            zstd: None,
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
            let dst = &mut self.buf[self.end..];
            let read = match &mut self.zstd {
                None => self.inner.read(dst),
                Some(z) => z.read(&mut self.inner, dst),
            };
            match read {
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

    /// Decompresses the rest of the input if it starts with a zstd frame (see the module
    /// docs); nothing may have been consumed yet. Whether it does.
    pub(crate) fn decompress_if_zstd(&mut self) -> io::Result<bool> {
        debug_assert_eq!((self.pos, self.base, self.zstd.is_none()), (0, 0, true));
        if !zstd_compressed(self.fill(ZSTD_MAGIC.len())?) {
            return Ok(false);
        }
        // What was read so far is compressed: it becomes the decoder's first input.
        let mut z = Box::new(Zstd {
            decoder: zstd::stream::raw::Decoder::new()?,
            zbuf: vec![0; CAPACITY].into_boxed_slice(),
            zpos: 0,
            zend: self.end,
            zeof: self.eof,
            in_frame: false,
        });
        z.zbuf[..self.end].copy_from_slice(&self.buf[..self.end]);
        (self.zstd, self.end, self.eof) = (Some(z), 0, false);
        Ok(true)
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

/// The decompressing side of an [`Input`] over a zstd stream.
struct Zstd {
    decoder: zstd::stream::raw::Decoder<'static>,
    /// Compressed bytes read and not yet decompressed: `zbuf[zpos..zend]`.
    zbuf: Box<[u8]>,
    zpos: usize,
    zend: usize,
    /// The compressed input has ended.
    zeof: bool,
    /// The decoder is inside a frame (it has not seen the last frame's end).
    in_frame: bool,
}

impl Zstd {
    /// Decompresses into `out` (not empty), reading compressed bytes from `inner` as needed;
    /// 0 only at the end of the stream, after a whole frame.
    fn read<R: Read>(&mut self, inner: &mut R, out: &mut [u8]) -> io::Result<usize> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        loop {
            if self.zpos == self.zend && !self.zeof {
                // An `Interrupted` read changes nothing here: `refill` retries the call.
                let n = inner.read(&mut self.zbuf)?;
                (self.zpos, self.zend, self.zeof) = (0, n.min(self.zbuf.len()), n == 0);
            }
            if self.zpos == self.zend && self.zeof {
                if self.in_frame {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the zstd stream ends inside a frame (a truncated file?)",
                    ));
                }
                return Ok(0);
            }
            let mut src = InBuffer::around(&self.zbuf[self.zpos..self.zend]);
            let mut dst = OutBuffer::around(&mut *out);
            let hint = self
                .decoder
                .run(&mut src, &mut dst)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            self.zpos += src.pos();
            // 0: a frame has just ended (the next bytes, if any, start another).
            self.in_frame = hint != 0;
            if dst.pos() > 0 {
                return Ok(dst.pos());
            }
        }
    }
}
