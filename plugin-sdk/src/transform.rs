//! The transform role (ABI 1.6): data-path plugins that filter, project, downsample or
//! decompress a file's bytes for a view (`MOUNT/.kplug/views/NAME/`).
//!
//! A transform implements [`Transform`]: [`Transform::chunk`] gets the stream's next bytes
//! and pushes what it keeps into an [`Output`]; [`export_transform!`](crate::export_transform)
//! generates the `kplug_transform_*` exports. The SDK hides the ABI's fixed buffers: the host
//! writes up to 64 KiB of input per call into the input buffer and takes up to 256 KiB of
//! output per call from the output buffer; output beyond that waits in [`Output`] and is
//! handed over in further calls (the `TRANSFORM_MORE` bit). A transform whose one chunk
//! could expand without bound (a decompressor) returns `Ok(true)` ("call me again") after a
//! bounded amount of output instead of producing it all at once, so its memory stays small
//! and the host's output cap, not the memory cap, stops a bomb.
//!
//! Records: [`Lines`] and [`FixedRecords`] cut the stream into records across chunk
//! boundaries, so that a filter is a few lines of Rust; records counted in and out
//! ([`Output::count_in`], [`Output::push_record`]) show in `.kplug/stats`.

use alloc::vec::Vec;

/// A data-path transform. The state is the stream's: [`Transform::begin`] starts a new one.
pub trait Transform {
    /// The output of every stream is exactly as long as its input (masking). The host then
    /// gives a view's files their source size without running the transform, and checks it.
    const SIZE_PRESERVING: bool = false;

    /// A new stream begins (`file_size`: the source's size, if known): forget the last one.
    fn begin(&mut self, _file_size: Option<u64>) -> Result<(), i32> {
        Ok(())
    }

    /// The stream's next bytes (`last`: nothing follows; `input` may then be empty). Push the
    /// output into `out`. `Ok(true)`: more output is pending without more input, call again
    /// with an empty `input`; `Err(code)`: the stream is bad (the read fails with EIO).
    fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32>;
}

/// What a transform produces: bytes waiting to go to the host, and record counts.
#[derive(Default, Debug)]
pub struct Output {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed over.
    taken: usize,
    records_in: u64,
    records_out: u64,
}

impl Output {
    /// Append bytes to the output.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Append one byte.
    #[inline]
    pub fn push_byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Append a record and count it out.
    #[inline]
    pub fn push_record(&mut self, record: &[u8]) {
        self.records_out += 1;
        self.buf.extend_from_slice(record);
    }

    /// Count `n` records in.
    #[inline]
    pub fn count_in(&mut self, n: u64) {
        self.records_in += n;
    }

    /// Bytes not handed over yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.taken
    }

    /// Hand over up to `dst.len()` bytes; how many.
    pub fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let n = self.pending().min(dst.len());
        dst[..n].copy_from_slice(&self.buf[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.buf.len() {
            self.buf.clear();
            self.taken = 0;
        }
        n
    }

    /// The record counts since the last call, reset.
    pub fn take_counts(&mut self) -> (u64, u64) {
        let c = (self.records_in, self.records_out);
        self.records_in = 0;
        self.records_out = 0;
        c
    }

    /// Forget everything (a new stream).
    pub fn clear(&mut self) {
        *self = Output {
            buf: core::mem::take(&mut self.buf),
            ..Output::default()
        };
        self.buf.clear();
    }
}

/// Input a decoder has not consumed yet, kept across chunks (a gzip member or a zstd block
/// cut by a chunk boundary): [`feed`](Self::feed) appends the next chunk, [`rest`](Self::rest)
/// is what is left, [`consume`](Self::consume) marks bytes used.
#[derive(Default, Debug)]
pub struct Unconsumed {
    buf: Vec<u8>,
    at: usize,
}

impl Unconsumed {
    /// Forget everything (a new stream).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.at = 0;
    }

    /// Append a chunk, dropping the bytes consumed so far.
    pub fn feed(&mut self, input: &[u8]) {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(input);
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    /// `n` more bytes were used (at most [`rest`](Self::rest)'s length).
    pub fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }
}

/// Cuts a stream into lines (each with its `\n`; the last line of a stream may lack it)
/// across chunk boundaries.
#[derive(Default, Debug)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Feed the stream's next bytes; `f` gets each complete line (and at `last` the
    /// unterminated rest, if any). Counts each line in.
    pub fn feed(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Output,
        mut f: impl FnMut(&[u8], &mut Output),
    ) {
        let mut rest = input;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(i + 1);
            out.count_in(1);
            if self.partial.is_empty() {
                f(line, out);
            } else {
                self.partial.extend_from_slice(line);
                let whole = core::mem::take(&mut self.partial);
                f(&whole, out);
                self.partial = whole;
                self.partial.clear();
            }
            rest = tail;
        }
        self.partial.extend_from_slice(rest);
        if last && !self.partial.is_empty() {
            out.count_in(1);
            let whole = core::mem::take(&mut self.partial);
            f(&whole, out);
        }
    }

    /// Forget a partial line (a new stream).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

/// Cuts a stream into records of a fixed size across chunk boundaries; a short last record
/// is passed as it is.
#[derive(Debug)]
pub struct FixedRecords {
    size: usize,
    partial: Vec<u8>,
}

impl FixedRecords {
    /// Records of `size` bytes (at least 1).
    pub fn new(size: usize) -> Self {
        FixedRecords {
            size: size.max(1),
            partial: Vec::new(),
        }
    }

    /// Feed the stream's next bytes; `f` gets each record. Counts each record in.
    pub fn feed(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Output,
        mut f: impl FnMut(&[u8], &mut Output),
    ) {
        let mut rest = input;
        if !self.partial.is_empty() {
            let need = (self.size - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..need]);
            rest = &rest[need..];
            if self.partial.len() == self.size {
                out.count_in(1);
                f(&self.partial, out);
                self.partial.clear();
            }
        }
        let mut chunks = rest.chunks_exact(self.size);
        for r in &mut chunks {
            out.count_in(1);
            f(r, out);
        }
        self.partial.extend_from_slice(chunks.remainder());
        if last && !self.partial.is_empty() {
            out.count_in(1);
            f(&self.partial, out);
            self.partial.clear();
        }
    }

    /// Forget a partial record (a new stream).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

/// Run `t` over `input` as one stream cut into `chunk`-byte pieces, natively: what the host
/// does through the ABI, for a transform's unit tests and the native side of the benchmark.
pub fn run_native<T: Transform>(t: &mut T, input: &[u8], chunk: usize) -> Result<Vec<u8>, i32> {
    let mut out = Output::default();
    let mut result = Vec::new();
    t.begin(Some(input.len() as u64))?;
    let mut pieces = input.chunks(chunk.max(1)).peekable();
    let mut any = false;
    loop {
        let (piece, last) = match pieces.next() {
            Some(p) => (p, pieces.peek().is_none()),
            None if !any => (&[][..], true),
            None => break,
        };
        any = true;
        let mut more = t.chunk(piece, last, &mut out)?;
        while more {
            more = t.chunk(&[], last, &mut out)?;
        }
        result.extend_from_slice(&out.buf[out.taken..]);
        out.buf.clear();
        out.taken = 0;
        if last {
            break;
        }
    }
    Ok(result)
}

#[doc(hidden)]
pub mod __private {
    use super::{Output, Transform};
    use crate::export::__private::Buffer;
    use core::cell::UnsafeCell;
    use kplug_abi::{TRANSFORM_IN_BYTES, TRANSFORM_MORE, TRANSFORM_OUT_BYTES};

    /// The host writes a chunk here.
    pub static IN_BUF: Buffer<TRANSFORM_IN_BYTES> =
        Buffer(UnsafeCell::new([0; TRANSFORM_IN_BYTES]));
    /// The plugin's answer goes here.
    pub static OUT_BUF: Buffer<TRANSFORM_OUT_BYTES> =
        Buffer(UnsafeCell::new([0; TRANSFORM_OUT_BYTES]));

    /// The SDK's side of a stream: pending output, and whether the plugin asked to be called
    /// again.
    #[derive(Default)]
    pub struct Stream {
        out: Output,
        more: bool,
    }

    /// `kplug_transform_begin`.
    pub fn begin<T: Transform>(t: &mut T, s: &mut Stream, size: i64) -> i32 {
        s.out.clear();
        s.more = false;
        match t.begin((size >= 0).then_some(size as u64)) {
            Ok(()) => 0,
            Err(c) => c.min(-1),
        }
    }

    /// `kplug_transform_chunk`.
    ///
    /// # Safety
    /// No other reference to the buffers may be alive (single-threaded, not re-entered).
    pub unsafe fn chunk<T: Transform>(t: &mut T, s: &mut Stream, len: i32, last: i32) -> i32 {
        let len = (len.max(0) as usize).min(TRANSFORM_IN_BYTES);
        // SAFETY: see the contract.
        let input = unsafe { &(&*IN_BUF.0.get())[..len] };
        if len > 0 || s.out.pending() == 0 {
            match t.chunk(input, last != 0, &mut s.out) {
                Ok(more) => s.more = more,
                Err(c) => return c.min(-1),
            }
        }
        let (rin, rout) = s.out.take_counts();
        if rin | rout != 0 {
            crate::host::transform_records(rin, rout);
        }
        // SAFETY: see the contract.
        let out = unsafe { &mut *OUT_BUF.0.get() };
        let n = s.out.take_into(out) as i32;
        if s.out.pending() > 0 || s.more {
            n | TRANSFORM_MORE
        } else {
            n
        }
    }
}

/// Generates the ABI exports of a transform (ABI 1.6, `crate::Transform`): the lifecycle
/// exports of [`export_plugin!`](crate::export_plugin) and the `kplug_transform_*` ones. `Type: Plugin + Transform +
/// Default`. Use it once per plugin crate, instead of `export_plugin!`.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty $(,)?) => {
        const _: fn() = || {
            fn assert_transform<
                T: $crate::Plugin + $crate::Transform + ::core::default::Default,
            >() {
            }
            assert_transform::<$ty>();
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static STATE: $crate::__private::PluginCell<$ty> = $crate::__private::PluginCell::new();
            static STREAM: $crate::__private::PluginCell<$crate::transform::__private::Stream> =
                $crate::__private::PluginCell::new();

            #[inline(always)]
            fn state() -> &'static mut $ty {
                // SAFETY: single-threaded wasm, exports are not re-entered, and
                // each export takes the state once.
                unsafe { STATE.get() }
            }

            #[inline(always)]
            fn stream() -> &'static mut $crate::transform::__private::Stream {
                // SAFETY: as for `state`.
                unsafe { STREAM.get() }
            }

    $crate::export_plugin!(@lifecycle);

            #[unsafe(no_mangle)]
            pub extern "C" fn kplug_transform_in_buf() -> i32 {
                $crate::transform::__private::IN_BUF.0.get() as usize as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kplug_transform_out_buf() -> i32 {
                $crate::transform::__private::OUT_BUF.0.get() as usize as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kplug_transform_flags() -> i32 {
                if <$ty as $crate::Transform>::SIZE_PRESERVING {
                    $crate::abi::TRANSFORM_SIZE_PRESERVING
                } else {
                    0
                }
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kplug_transform_begin(file_size: i64) -> i32 {
                $crate::transform::__private::begin(state(), stream(), file_size)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn kplug_transform_chunk(len: i32, last: i32) -> i32 {
                // SAFETY: the only references to the buffers during this call.
                unsafe { $crate::transform::__private::chunk(state(), stream(), len, last) }
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Evens(FixedRecords);
    impl Transform for Evens {
        fn chunk(&mut self, input: &[u8], last: bool, out: &mut Output) -> Result<bool, i32> {
            let mut i = 0u32;
            self.0.feed(input, last, out, |r, o| {
                if r[0] % 2 == 0 {
                    o.push_record(r)
                }
                i += 1;
            });
            Ok(false)
        }
    }

    #[test]
    fn unconsumed_keeps_what_was_not_used_across_chunks() {
        let mut u = Unconsumed::default();
        u.feed(b"abcdef");
        u.consume(4);
        assert_eq!(u.rest(), b"ef");
        u.feed(b"gh");
        assert_eq!(u.rest(), b"efgh");
        u.consume(10);
        assert!(u.rest().is_empty());
        u.feed(b"x");
        u.clear();
        assert!(u.rest().is_empty());
    }

    #[test]
    fn lines_cross_chunks() {
        let mut l = Lines::default();
        let mut out = Output::default();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for (piece, last) in [(&b"ab"[..], false), (b"c\nd\n", false), (b"e", true)] {
            l.feed(piece, last, &mut out, |line, _| seen.push(line.to_vec()));
        }
        assert_eq!(seen, [b"abc\n".to_vec(), b"d\n".to_vec(), b"e".to_vec()]);
        assert_eq!(out.take_counts(), (3, 0));
    }

    #[test]
    fn fixed_records_cross_chunks() {
        let input: Vec<u8> = (0..50u8).collect();
        for chunk in [1, 3, 4, 7, 64] {
            let got = run_native(&mut Evens(FixedRecords::new(4)), &input, chunk).unwrap();
            let want: Vec<u8> = input
                .chunks(4)
                .filter(|r| r[0] % 2 == 0)
                .flatten()
                .copied()
                .collect();
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    #[test]
    fn output_hands_over_in_pieces() {
        let mut o = Output::default();
        o.push(b"hello world");
        let mut dst = [0u8; 4];
        assert_eq!(o.take_into(&mut dst), 4);
        assert_eq!(&dst, b"hell");
        assert_eq!(o.pending(), 7);
        assert_eq!(o.take_into(&mut dst), 4);
        assert_eq!(o.take_into(&mut dst), 3);
        assert_eq!(o.pending(), 0);
    }
}
