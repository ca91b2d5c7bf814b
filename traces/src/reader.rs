//! [`TraceReader`]: any supported format behind one iterator, and [`open`].
//!
//! `TraceReader` wraps a private enum of the per-format readers and dispatches with a `match`,
//! which the optimiser turns into a predictable branch: no boxing, no virtual call per record.
//! Construction reads and checks whatever header the format has (csv/systor header line, kplug
//! header, vscsi version probe), so `open` fails early on a file of the wrong kind. With
//! `Format::Auto` the first 8 KiB are sniffed (see [`crate::Format`]) from the same buffer the
//! reader then consumes, so detection works on pipes too. A zstd-compressed input, whatever its
//! format, is decompressed as it is read (`input.rs`).

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use crate::{
    Format, Request, TraceError,
    detect::{SNIFF_BYTES, detect},
    input::Input,
    kplug::KplugReader,
    readers::{
        csv::CsvReader, io_err, msr::MsrReader, oracle::OracleReader, systor::SystorReader,
        text::TextReader, vscsi::VscsiReader,
    },
};

/// Options for [`open_with`] and [`TraceReader::with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// The format, or `Auto` to detect it.
    pub format: Format,
    /// For oracleGeneral traces whose object ids are LBNs: the bytes per LBN unit. Sets
    /// `Request::offset = id * oracle_sector_bytes` so that block splitting works (512 for
    /// `cloudPhysicsIO.oracleGeneral.bin`). Ignored by other formats; 0 is rejected.
    pub oracle_sector_bytes: Option<u64>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            oracle_sector_bytes: None,
        }
    }
}

enum Inner<R> {
    Text(TextReader<R>),
    Csv(CsvReader<R>),
    Vscsi(VscsiReader<R>),
    Oracle(OracleReader<R>),
    Msr(MsrReader<R>),
    Systor(SystorReader<R>),
    Kplug(KplugReader<R>),
}

/// A streaming reader of any supported format: an iterator of `Result<Request, TraceError>`
/// that ends after the first error.
pub struct TraceReader<R = File> {
    inner: Inner<R>,
    format: Format,
}

/// Opens `path` as a trace of `format` (`Format::Auto` to detect).
pub fn open(path: impl AsRef<Path>, format: Format) -> Result<TraceReader, TraceError> {
    open_with(
        path,
        &ReadOptions {
            format,
            ..ReadOptions::default()
        },
    )
}

/// Opens `path` with explicit [`ReadOptions`].
pub fn open_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<TraceReader, TraceError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    TraceReader::with_options(file, path, opts)
}

impl<R: Read> TraceReader<R> {
    /// Reads a trace of `format` from `reader`; `name` is used in error messages and, for
    /// `Format::Auto`, as the file-name hint.
    pub fn new(reader: R, name: impl Into<PathBuf>, format: Format) -> Result<Self, TraceError> {
        Self::with_options(
            reader,
            name,
            &ReadOptions {
                format,
                ..ReadOptions::default()
            },
        )
    }

    /// Reads a trace from `reader` with explicit [`ReadOptions`].
    pub fn with_options(
        reader: R,
        name: impl Into<PathBuf>,
        opts: &ReadOptions,
    ) -> Result<Self, TraceError> {
        let file: PathBuf = name.into();
        if opts.oracle_sector_bytes == Some(0) {
            return Err(TraceError::Usage(
                "oracle_sector_bytes must be positive".to_owned(),
            ));
        }
        let mut input = Input::new(reader);
        input.decompress_if_zstd().map_err(|e| io_err(&file, e))?;
        let format = match opts.format {
            Format::Auto => {
                let head = input.fill(SNIFF_BYTES).map_err(|e| io_err(&file, e))?;
                let complete = head.len() < SNIFF_BYTES;
                detect(head, complete, &file).map_err(|reason| TraceError::UnknownFormat {
                    file: file.clone(),
                    reason,
                })?
            }
            f => f,
        };
        let inner = match format {
            Format::Auto => unreachable_auto(&file)?,
            Format::Txt => Inner::Text(TextReader::new(input, file, false)),
            Format::Lirs => Inner::Text(TextReader::new(input, file, true)),
            Format::Csv => Inner::Csv(CsvReader::new(input, file)?),
            Format::Vscsi => Inner::Vscsi(VscsiReader::new(input, file)?),
            Format::Oracle => {
                Inner::Oracle(OracleReader::new(input, file, opts.oracle_sector_bytes))
            }
            Format::Msr => Inner::Msr(MsrReader::new(input, file)),
            Format::Systor => Inner::Systor(SystorReader::new(input, file)?),
            Format::Kplug => Inner::Kplug(KplugReader::new(input, file)?),
        };
        Ok(TraceReader { inner, format })
    }

    /// The block size the trace was recorded with (kplug traces of `kplugfs trace record`),
    /// by which a replay splits its requests by default.
    pub fn block_size(&self) -> Option<u64> {
        match &self.inner {
            Inner::Kplug(r) => r.block_size,
            _ => None,
        }
    }

    /// Appends to `out` the ids of up to `max` demand requests (prefetches are skipped, as a
    /// replay skips them), in order; the number appended, 0 at the end. What iterating and
    /// keeping `id` of each request whose flags are not a prefetch's gives, errors included
    /// (an error ends the reader as it ends iteration), with the oracleGeneral reader in a
    /// loop of its own: `kplugfs sim` loads a trace of millions of requests this way (4.2 M
    /// oracleGeneral records: 67 ms against 100 through the iterator, the whole process).
    pub fn demand_ids(&mut self, out: &mut Vec<u64>, max: usize) -> Result<usize, TraceError> {
        if let Inner::Oracle(r) = &mut self.inner {
            return r.ids(out, max);
        }
        let mut n = 0;
        while n < max {
            match self.next() {
                Some(Ok(r)) if r.flags.is_prefetch() => {}
                Some(Ok(r)) => {
                    out.push(r.id);
                    n += 1;
                }
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(n)
    }

    /// The format being read (the detected one for `Format::Auto`).
    pub fn format(&self) -> Format {
        self.format
    }

    /// Records or lines skipped by specification so far: `*` and empty lines (lirs), size-0
    /// records (oracle). Always 0 for other formats.
    pub fn skipped(&self) -> u64 {
        match &self.inner {
            Inner::Text(r) => r.skipped,
            Inner::Oracle(r) => r.skipped,
            _ => 0,
        }
    }

    /// The vscsi record version (1 or 2), for a vscsi trace.
    pub fn vscsi_version(&self) -> Option<u8> {
        match &self.inner {
            Inner::Vscsi(r) => Some(match r.version() {
                crate::readers::vscsi::Version::V1 => 1,
                crate::readers::vscsi::Version::V2 => 2,
            }),
            _ => None,
        }
    }
}

/// `detect` never returns `Auto`; this keeps that an error rather than a panic if it ever did.
fn unreachable_auto<T>(file: &Path) -> Result<T, TraceError> {
    Err(TraceError::UnknownFormat {
        file: file.to_path_buf(),
        reason: "detection returned `auto`".to_owned(),
    })
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Result<Request, TraceError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Text(r) => r.next(),
            Inner::Csv(r) => r.next(),
            Inner::Vscsi(r) => r.next(),
            Inner::Oracle(r) => r.next(),
            Inner::Msr(r) => r.next(),
            Inner::Systor(r) => r.next(),
            Inner::Kplug(r) => r.next(),
        }
    }
}

impl<R: Read> std::iter::FusedIterator for TraceReader<R> {}
