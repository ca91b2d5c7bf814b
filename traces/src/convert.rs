//! Whole trace files: summarising one ([`info`], `kplugfs trace info`) and converting one to
//! another format ([`convert`], `kplugfs trace convert`).
//!
//! - [`info`] streams a trace through [`TraceStats`] and returns the [`TraceInfo`] with the
//!   format read and the records skipped by specification.
//! - [`convert`] reads any format and writes one of those [`TraceWriter`] supports, into a
//!   temporary file next to the output, renamed over it only when the whole trace was written:
//!   on any error the output is untouched and the temporary file removed. A writer's error
//!   names the output, not the temporary file. oracleGeneral's next-access fields need the
//!   whole trace, so a conversion to oracle holds it in memory; every other one streams.
//!   [`conversion_notes`] says what a conversion drops.
//!
//! Both read through [`crate::progress::open_trace`]: the input's bytes are the
//! [`Stage::ReadTrace`](crate::progress::Stage::ReadTrace) of the caller's [`Progress`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::progress::{Progress, ReadError, open_trace};
use crate::{Format, TraceError, TraceInfo, TraceReader, TraceStats, TraceWriter};

/// What [`info`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoReport {
    /// The summary.
    pub info: TraceInfo,
    /// The format read (the detected one for [`Format::Auto`]).
    pub format: Format,
    /// Lines or records skipped by the format's rules ([`TraceReader::skipped`]).
    pub skipped: u64,
}

/// Summarises the trace at `path`, read as `format`.
pub fn info(
    path: &Path,
    format: Format,
    progress: &impl Progress,
) -> Result<InfoReport, ReadError> {
    let mut reader = open_trace(path, format, progress)?;
    let detected = reader.format();
    let mut stats = TraceStats::new();
    for r in reader.by_ref() {
        stats.add(&r?);
    }
    progress.finish();
    Ok(InfoReport {
        info: stats.finish(),
        format: detected,
        skipped: reader.skipped(),
    })
}

/// What [`convert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertReport {
    /// Requests written.
    pub requests: u64,
    /// The input's format (detected for `auto`).
    pub from: Format,
    /// The output format.
    pub to: Format,
}

/// Why [`convert`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// No output format named.
    #[error("--to needs a format to write: txt, lirs, csv, oracle or kplug")]
    NoTarget,
    /// A format that can be read but not written.
    #[error(
        "cannot convert to {0}: kplugfs writes txt, lirs, csv, oracle and kplug \
         (vscsi, msr and systor can be read, not written)"
    )]
    NoWriter(Format),
    /// The output is the input.
    #[error("the output {} is the input; pick another file", .0.display())]
    SameFile(PathBuf),
    /// The output path names no file.
    #[error("{} is not a file name", .0.display())]
    NotAFileName(PathBuf),
    /// The input did not open.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The conversion stopped; the output was not written.
    #[error(
        "converting {} to {to} failed; {} was not written",
        input.display(),
        output.display()
    )]
    Failed {
        /// The input trace.
        input: PathBuf,
        /// The output format.
        to: Format,
        /// The output file.
        output: PathBuf,
        /// Why.
        #[source]
        source: Box<Failure>,
    },
    /// The finished temporary file could not be renamed over the output (it is left in
    /// place).
    #[error("cannot move {} to {}", tmp.display(), output.display())]
    Rename {
        /// The temporary file.
        tmp: PathBuf,
        /// The output file.
        output: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Why a conversion stopped ([`ConvertError::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Reading the input, or creating the temporary file, failed.
    #[error(transparent)]
    Trace(TraceError),
    /// The writer refused a request or could not write; the message names the output where
    /// the writer's names the temporary file.
    #[error("{}", renamed(error, tmp, output))]
    Write {
        /// The writer's error.
        error: TraceError,
        /// The temporary file it names.
        tmp: PathBuf,
        /// The output file to name instead.
        output: PathBuf,
    },
}

fn renamed(error: &TraceError, tmp: &Path, output: &Path) -> String {
    error
        .to_string()
        .replace(&tmp.display().to_string(), &output.display().to_string())
}

/// What a conversion from `from` to `to` drops, one note per loss.
pub fn conversion_notes(from: Format, to: Format) -> Vec<&'static str> {
    let has_offsets = matches!(
        from,
        Format::Csv | Format::Vscsi | Format::Msr | Format::Systor | Format::Kplug
    );
    let mut notes = Vec::new();
    match to {
        Format::Txt | Format::Lirs => notes.push("txt/lirs keep the ids only"),
        Format::Csv if from != Format::Csv => {
            notes.push("csv stores whole seconds and 512-byte sectors (lbn = offset / 512)")
        }
        Format::Oracle => notes.push(
            "oracleGeneral stores whole seconds, ids and sizes (no offsets, ops or streams); \
             next-access fields were computed",
        ),
        Format::Kplug if has_offsets && from != Format::Kplug => notes.push(
            "kplug stores (stream, offset): reading it back gives id = stream, so `trace info` \
             counts streams as unique ids (convert onward to csv to get lbn ids back)",
        ),
        _ => {}
    }
    notes
}

/// Converts `input` (of `format`) to `output` in format `to`. The output is written to a
/// temporary file next to it and renamed into place only on success.
pub fn convert(
    input: &Path,
    output: &Path,
    format: Format,
    to: Format,
    progress: &impl Progress,
) -> Result<ConvertReport, ConvertError> {
    if to == Format::Auto {
        return Err(ConvertError::NoTarget);
    }
    if !to.has_writer() {
        return Err(ConvertError::NoWriter(to));
    }
    if let (Ok(a), Ok(b)) = (fs::canonicalize(input), fs::canonicalize(output))
        && a == b
    {
        return Err(ConvertError::SameFile(output.to_path_buf()));
    }
    let mut reader = open_trace(input, format, progress)?;
    let from = reader.format();
    let name = output
        .file_name()
        .ok_or_else(|| ConvertError::NotAFileName(output.to_path_buf()))?;
    let tmp = output.with_file_name(format!(
        ".{}.kplugfs-partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    match write_to(&mut reader, &tmp, output, to) {
        Ok(requests) => {
            fs::rename(&tmp, output).map_err(|source| ConvertError::Rename {
                tmp: tmp.clone(),
                output: output.to_path_buf(),
                source,
            })?;
            progress.finish();
            Ok(ConvertReport { requests, from, to })
        }
        Err(source) => {
            let _ = fs::remove_file(&tmp);
            Err(ConvertError::Failed {
                input: input.to_path_buf(),
                to,
                output: output.to_path_buf(),
                source: Box::new(source),
            })
        }
    }
}

/// Writes what `reader` reads to `tmp` as `to`; returns the requests written.
fn write_to<R: io::Read>(
    reader: &mut TraceReader<R>,
    tmp: &Path,
    output: &Path,
    to: Format,
) -> Result<u64, Failure> {
    let mut w = TraceWriter::create(tmp, to).map_err(Failure::Trace)?;
    let write_err = |error| Failure::Write {
        error,
        tmp: tmp.to_path_buf(),
        output: output.to_path_buf(),
    };
    let mut n = 0;
    if to == Format::Oracle {
        // oracleGeneral's next-access field needs the whole trace.
        let mut all = reader
            .by_ref()
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Trace)?;
        crate::fill_next_access(&mut all);
        for r in &all {
            w.write(r).map_err(write_err)?;
            n += 1;
        }
    } else {
        for r in reader.by_ref() {
            w.write(&r.map_err(Failure::Trace)?).map_err(write_err)?;
            n += 1;
        }
    }
    w.finish().map_err(write_err)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::progress::{Event, Log, Stage};
    use crate::{Flags, Op, Request};

    fn block(offset: u64, size: u64) -> Request {
        Request {
            time: 1_000_000_000 * offset,
            id: offset / 512,
            offset: Some(offset),
            size,
            op: if offset.is_multiple_of(3) {
                Op::Write
            } else {
                Op::Read
            },
            stream: 0,
            flags: Flags::NONE,
            next_access: None,
        }
    }

    fn write_trace(path: &Path, format: Format, reqs: &[Request]) {
        let mut w = TraceWriter::create(path, format).unwrap();
        for r in reqs {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
    }

    /// The error and its sources, as `kplugfs` prints them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s += &format!(": {c}");
            cur = c.source();
        }
        s
    }

    #[test]
    fn info_reports_format_skips_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lirs");
        fs::write(&path, "1\n*\n2\n1\n").unwrap();
        let log = Log::default();
        let r = info(&path, Format::Auto, &log).unwrap();
        assert_eq!(r.format, Format::Lirs);
        assert_eq!(r.skipped, 1);
        assert_eq!((r.info.requests, r.info.unique_ids), (3, 2));
        assert_eq!(
            log.events(),
            [
                Event::Begin(Stage::ReadTrace, 8),
                Event::Done(8),
                Event::Finish
            ]
        );
    }

    #[test]
    fn convert_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let reqs: Vec<Request> = (1..=100).map(|i| block(i * 4096, 8192)).collect();
        let input = dir.path().join("in.kplug");
        write_trace(&input, Format::Kplug, &reqs);
        let out = dir.path().join("out.csv");
        let report = convert(&input, &out, Format::Auto, Format::Csv, &()).unwrap();
        assert_eq!(
            report,
            ConvertReport {
                requests: 100,
                from: Format::Kplug,
                to: Format::Csv
            }
        );
        let back: Vec<Request> = crate::open(&out, Format::Csv)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back.len(), 100);
        for (a, b) in reqs.iter().zip(&back) {
            assert_eq!(
                (a.offset, a.size, a.op, a.time),
                (b.offset, b.size, b.op, b.time)
            );
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn oracle_output_gets_next_access_fields() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        fs::write(&input, "5\n6\n5\n7\n6\n").unwrap();
        let out = dir.path().join("out.bin");
        convert(&input, &out, Format::Auto, Format::Oracle, &()).unwrap();
        let next: Vec<Option<u64>> = crate::open(&out, Format::Oracle)
            .unwrap()
            .map(|r| r.unwrap().next_access)
            .collect();
        assert_eq!(next, [Some(3), Some(5), None, None, None]);
    }

    #[test]
    fn refusals_come_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("missing");
        let out = dir.path().join("out");
        let e = convert(&input, &out, Format::Auto, Format::Auto, &()).unwrap_err();
        assert!(matches!(e, ConvertError::NoTarget));
        let e = convert(&input, &out, Format::Auto, Format::Msr, &()).unwrap_err();
        assert!(matches!(e, ConvertError::NoWriter(Format::Msr)));
        assert!(
            e.to_string()
                .starts_with("cannot convert to msr: kplugfs writes")
        );
        let e = convert(&input, &out, Format::Auto, Format::Txt, &()).unwrap_err();
        assert!(matches!(e, ConvertError::Read(ReadError::Open { .. })));
        fs::write(&input, "1\n").unwrap();
        let e = convert(&input, &input, Format::Auto, Format::Txt, &()).unwrap_err();
        assert!(matches!(e, ConvertError::SameFile(_)));
        assert_eq!(fs::read(&input).unwrap(), b"1\n");
        assert!(!out.exists());
    }

    #[test]
    fn a_request_the_output_cannot_hold_names_the_output_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.kplug");
        write_trace(&input, Format::Kplug, &[block(4096, 512), block(100, 512)]);
        let out = dir.path().join("out.csv");
        let log = Log::default();
        let e = convert(&input, &out, Format::Auto, Format::Csv, &log).unwrap_err();
        let ConvertError::Failed { source, .. } = &e else {
            panic!("{e:?}")
        };
        let Failure::Write { error, .. } = &**source else {
            panic!("{e:?}")
        };
        assert!(matches!(error, TraceError::Unwritable { index: 2, .. }));
        let text = chain(&e);
        assert!(
            text.starts_with(&format!(
                "converting {} to csv failed; {} was not written: {}: request 2:",
                input.display(),
                out.display(),
                out.display()
            )),
            "{text}"
        );
        assert!(text.contains("not a multiple of 512") && !text.contains("partial"));
        assert!(e.source().unwrap().source().is_none());
        assert!(!out.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary");
        assert!(!log.events().contains(&Event::Finish));
    }

    #[test]
    fn a_bad_input_keeps_the_existing_output() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        fs::write(&input, "1\n2\nx\n").unwrap();
        let out = dir.path().join("out.txt");
        fs::write(&out, "old").unwrap();
        let e = convert(&input, &out, Format::Txt, Format::Lirs, &()).unwrap_err();
        let ConvertError::Failed { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(**source, Failure::Trace(TraceError::Parse { .. })));
        assert!(chain(&e).contains("line 3"), "{}", chain(&e));
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn notes_say_what_the_target_drops() {
        assert_eq!(conversion_notes(Format::Vscsi, Format::Txt).len(), 1);
        assert!(conversion_notes(Format::Csv, Format::Csv).is_empty());
        assert!(conversion_notes(Format::Kplug, Format::Kplug).is_empty());
        assert!(conversion_notes(Format::Txt, Format::Kplug).is_empty());
        assert!(conversion_notes(Format::Vscsi, Format::Kplug)[0].contains("id = stream"));
        assert!(conversion_notes(Format::Vscsi, Format::Oracle)[0].contains("next-access"));
    }
}
