//! Trace format names; `Format::Auto` detection is `detect.rs`.
//!
//! Detection looks at content first and at the file name only to break ties, because names lie
//! more often than bytes (a `.csv` can be libCacheSim, MSR or SYSTOR; a `.bin` can be
//! anything). A zstd-compressed file is decompressed as it is read (`input.rs`) and its plain
//! bytes are what detection sees; the name hint then ignores a `.zst` suffix. Decisive content
//! signals, in order: the kplug magic; a zstd frame inside the file's own (refused with
//! advice); for text, the csv or SYSTOR header line, an MSR-shaped first line, or lines made of
//! digits only (txt, or lirs if any line is `*`, empty or CRLF-terminated, or the name says
//! `.lirs`/`.trace`); for binary, the vscsi version probe that libCacheSim runs and an
//! oracleGeneral plausibility check (every next-access field in the first 16 records is -1,
//! `i64::MAX`, or points forward). When content fits more than one binary format, or fits none,
//! the name decides if it names one of the candidates; otherwise detection fails and says why.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A trace format, named on the command line by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Detect from content and file name.
    Auto,
    /// One decimal id per line.
    Txt,
    /// One decimal id per line; `*` and empty lines skipped (LIRS paper traces).
    Lirs,
    /// libCacheSim csv with header `version,time,op,size,lbn`.
    Csv,
    /// VMware vscsi binary, v1 (32-byte records) or v2 (40-byte records).
    Vscsi,
    /// libCacheSim oracleGeneral binary, 24-byte records.
    Oracle,
    /// MSR Cambridge CSV (no header, 7 columns).
    Msr,
    /// SYSTOR'17 CSV (header `Timestamp,Response,IOType,LUN,Offset,Size`).
    Systor,
    /// kplugfs's recorded-trace binary format (see `docs/traces.md`).
    Kplug,
}

impl Format {
    /// Every format, `Auto` first.
    pub const ALL: [Format; 9] = [
        Format::Auto,
        Format::Txt,
        Format::Lirs,
        Format::Csv,
        Format::Vscsi,
        Format::Oracle,
        Format::Msr,
        Format::Systor,
        Format::Kplug,
    ];

    /// The names accepted by [`FromStr`], in [`Format::ALL`] order.
    pub const NAMES: [&'static str; 9] = [
        "auto", "txt", "lirs", "csv", "vscsi", "oracle", "msr", "systor", "kplug",
    ];

    /// The lowercase name.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether [`crate::TraceWriter`] can write this format.
    pub const fn has_writer(self) -> bool {
        matches!(
            self,
            Format::Txt | Format::Lirs | Format::Csv | Format::Oracle | Format::Kplug
        )
    }

    /// Whether the format is binary (fixed-size records).
    pub const fn is_binary(self) -> bool {
        matches!(self, Format::Vscsi | Format::Oracle | Format::Kplug)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of [`Format::from_str`]: the unknown name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trace format `{0}`; expected one of: auto, txt, lirs, csv, vscsi, oracle, msr, systor, kplug"
)]
pub struct UnknownFormatName(pub String);

impl FromStr for Format {
    type Err = UnknownFormatName;
    fn from_str(s: &str) -> Result<Format, UnknownFormatName> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormatName(s.to_owned()))
    }
}
