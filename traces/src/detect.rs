//! `Format::Auto`: which format a trace is in, from its first bytes and its name (see
//! `format.rs` for the rules).

use std::path::Path;

use crate::Format;
use crate::input::ZSTD_MAGIC;
use crate::kplug::KPLUG_MAGIC;
use crate::readers::vscsi;

/// How many bytes detection looks at.
pub(crate) const SNIFF_BYTES: usize = 8192;

const CSV_HEADER: &[u8] = b"version,time,op,size,lbn";
const SYSTOR_HEADER: &[u8] = b"Timestamp,Response,IOType,LUN,Offset,Size";

/// The format the file name suggests, if any (of a compressed trace, the name without its
/// `.zst`).
fn name_hint(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = [".zst", ".zstd"]
        .iter()
        .find_map(|z| name.strip_suffix(z))
        .unwrap_or(&name);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "kplug" => Some(Format::Kplug),
        "vscsi" => Some(Format::Vscsi),
        "lirs" | "trace" => Some(Format::Lirs),
        "txt" => Some(Format::Txt),
        _ if name.contains("oraclegeneral") => Some(Format::Oracle),
        _ => None,
    }
}

/// Picks a format from the first bytes `head` (all of the file if `complete`) and the name.
pub(crate) fn detect(head: &[u8], complete: bool, path: &Path) -> Result<Format, String> {
    let hint = name_hint(path);
    if head.is_empty() {
        return hint.ok_or_else(|| "the file is empty and its name gives no hint".to_owned());
    }
    if head.starts_with(&KPLUG_MAGIC) {
        return Ok(Format::Kplug);
    }
    if head.starts_with(&ZSTD_MAGIC) {
        // The file's own zstd layer is decompressed as it is read (`input.rs`): this is a
        // second one.
        return Err(
            "zstd-compressed data inside a zstd-compressed file; decompress one layer first \
             (zstd -d)"
                .to_owned(),
        );
    }
    if head
        .iter()
        .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return detect_text(head, complete, hint);
    }
    let mut candidates = Vec::new();
    if vscsi::probe_version(head).is_some() {
        candidates.push(Format::Vscsi);
    }
    if oracle_plausible(head, complete) {
        candidates.push(Format::Oracle);
    }
    match (candidates.as_slice(), hint) {
        ([one], _) => Ok(*one),
        (_, Some(h)) if candidates.contains(&h) => Ok(h),
        ([], _) => Err(
            "binary data that is neither vscsi (version probe failed) nor \
                        oracleGeneral (implausible next-access fields)"
                .to_owned(),
        ),
        _ => Err("binary data that could be vscsi or oracleGeneral".to_owned()),
    }
}

fn detect_text(head: &[u8], complete: bool, hint: Option<Format>) -> Result<Format, String> {
    let first_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first = head[..first_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..first_end]);
    if first.trim_ascii() == CSV_HEADER {
        return Ok(Format::Csv);
    }
    if first.trim_ascii() == SYSTOR_HEADER {
        return Ok(Format::Systor);
    }
    let cols: Vec<&[u8]> = first.split(|&b| b == b',').collect();
    if cols.len() == 7
        && !cols[0].is_empty()
        && cols[0].iter().all(u8::is_ascii_digit)
        && matches!(cols[3], b"Read" | b"Write")
    {
        return Ok(Format::Msr);
    }
    // Only whole lines count: the last one may be cut by the sniff window.
    let mut lines: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    if !complete {
        lines.pop();
    } else if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // the split after a final newline
    }
    let mut lirs_only = head.contains(&b'\r');
    for line in &lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii();
        if line.is_empty() || line == b"*" {
            lirs_only = true;
        } else if !line.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "text whose first line `{}` matches no known layout",
                crate::num::show(first)
            ));
        }
    }
    if lines.is_empty() {
        return Err("text with no complete line in the first 8 KiB".to_owned());
    }
    Ok(match hint {
        Some(Format::Lirs) => Format::Lirs,
        _ if lirs_only => Format::Lirs,
        _ => Format::Txt,
    })
}

/// Whether `head` reads as oracleGeneral records: next-access fields are "never" or point to a
/// later request, and (when the whole file is in `head`) the length is a multiple of 24.
fn oracle_plausible(head: &[u8], complete: bool) -> bool {
    if head.len() < 24 || (complete && !head.len().is_multiple_of(24)) {
        return false;
    }
    head.chunks_exact(24).take(16).enumerate().all(|(i, rec)| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[16..24]);
        let next = i64::from_le_bytes(b);
        next == -1 || next == i64::MAX || (next > i as i64 && next < 1 << 48)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(head: &[u8], name: &str) -> Result<Format, String> {
        detect(head, true, Path::new(name))
    }

    #[test]
    fn text_layouts() {
        assert_eq!(det(b"1\n2\n3", "x"), Ok(Format::Txt));
        assert_eq!(det(b"1\r\n2\r\n", "x"), Ok(Format::Lirs));
        assert_eq!(det(b"1\n*\n3\n", "x"), Ok(Format::Lirs));
        assert_eq!(det(b"1\n2\n", "a.trace"), Ok(Format::Lirs));
        assert_eq!(det(b"version,time,op,size,lbn\r\n", "x"), Ok(Format::Csv));
        assert_eq!(det(b"1,h,0,Read,0,512,1\n", "x"), Ok(Format::Msr));
        assert!(det(b"1,h,0,Trim,0,512,1\n", "x").is_err());
    }

    #[test]
    fn empty_files_use_the_name() {
        assert_eq!(det(b"", "a.kplug"), Ok(Format::Kplug));
        assert_eq!(det(b"", "w.oracleGeneral.bin"), Ok(Format::Oracle));
        assert!(det(b"", "a.csv").unwrap_err().contains("empty"));
    }

    #[test]
    fn partial_last_line_is_ignored_when_sniffing() {
        // A sniff window that cut "12345" to "12" (or, worse, mid-binary) must not decide.
        assert_eq!(detect(b"1\n2\n12", false, Path::new("x")), Ok(Format::Txt));
        assert!(detect(b"123", false, Path::new("x")).is_err());
    }
}
