//! Byte-level field parsing for the text formats.
//!
//! Text traces are parsed as bytes, not `str`: no UTF-8 validation on the hot path, and a stray
//! non-UTF-8 byte is reported as a bad field like any other. Each parser returns a reason
//! string that the reader wraps with the file name and line number.

/// Longest field echoed back in an error message.
const ECHO: usize = 40;

/// A field as it should appear in an error message: lossy UTF-8, cut at [`ECHO`] bytes.
pub(crate) fn show(field: &[u8]) -> String {
    let cut = &field[..field.len().min(ECHO)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if field.len() > ECHO {
        s.push('…');
    }
    s
}

/// `field` without leading and trailing spaces and tabs.
#[inline]
pub(crate) fn trim(field: &[u8]) -> &[u8] {
    field.trim_ascii()
}

/// A non-negative decimal integer (surrounding blanks allowed).
#[inline]
pub(crate) fn parse_u64(field: &[u8], what: &str) -> Result<u64, String> {
    let digits = trim(field);
    if digits.is_empty() {
        return Err(format!(
            "{what}: expected a decimal integer, found an empty field"
        ));
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(format!(
                "{what}: expected a decimal integer, found `{}`",
                show(field)
            ));
        }
        v = match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
            Some(v) => v,
            None => return Err(format!("{what}: `{}` does not fit in 64 bits", show(field))),
        };
    }
    Ok(v)
}

/// Seconds as `S` or `S.F` (up to 9 fractional digits are kept, more are truncated) converted to
/// nanoseconds.
pub(crate) fn parse_seconds_ns(field: &[u8], what: &str) -> Result<u64, String> {
    let f = trim(field);
    let (int, frac) = match f.iter().position(|&b| b == b'.') {
        Some(i) => (&f[..i], &f[i + 1..]),
        None => (f, &[][..]),
    };
    let bad = || {
        format!(
            "{what}: expected seconds like `12` or `12.5`, found `{}`",
            show(field)
        )
    };
    if int.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let secs = parse_u64(int, what).map_err(|_| bad())?;
    let mut ns: u64 = 0;
    for i in 0..9 {
        ns = ns * 10 + frac.get(i).map_or(0, |b| u64::from(b - b'0'));
    }
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(ns))
        .ok_or_else(|| {
            format!(
                "{what}: `{}` seconds overflow 64-bit nanoseconds",
                show(field)
            )
        })
}

/// Splits `line` on commas into exactly `N` fields.
#[inline]
pub(crate) fn fields<const N: usize>(line: &[u8]) -> Result<[&[u8]; N], String> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    for field in line.split(|&b| b == b',') {
        if n < N {
            out[n] = field;
        }
        n += 1;
    }
    if n == N {
        Ok(out)
    } else {
        Err(format!("expected {N} comma-separated columns, found {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b" 42\t", "x"), Ok(42));
        assert_eq!(parse_u64(b"18446744073709551615", "x"), Ok(u64::MAX));
        assert!(
            parse_u64(b"18446744073709551616", "x")
                .unwrap_err()
                .contains("64 bits")
        );
        assert!(parse_u64(b"+1", "x").is_err());
        assert!(parse_u64(b"", "x").unwrap_err().contains("empty"));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds_ns(b"12", "t"), Ok(12_000_000_000));
        assert_eq!(parse_seconds_ns(b"1.5", "t"), Ok(1_500_000_000));
        assert_eq!(parse_seconds_ns(b"1.", "t"), Ok(1_000_000_000));
        assert_eq!(parse_seconds_ns(b"0.0000000019", "t"), Ok(1));
        assert_eq!(
            parse_seconds_ns(b"1456095145.133076000", "t"),
            Ok(1_456_095_145_133_076_000)
        );
        for bad in [&b".5"[..], b"1.2.3", b"1e9", b"-1", b"1.x", b"99999999999"] {
            assert!(parse_seconds_ns(bad, "t").is_err(), "{:?}", show(bad));
        }
    }

    #[test]
    fn columns() {
        assert_eq!(fields::<3>(b"a,,c"), Ok([&b"a"[..], b"", b"c"]));
        assert!(fields::<3>(b"a,b").unwrap_err().contains("found 2"));
        assert!(fields::<1>(b"a,b,c").unwrap_err().contains("found 3"));
    }

    #[test]
    fn echo_is_bounded() {
        assert_eq!(show(&[b'x'; 100]).chars().count(), 41);
        assert_eq!(show(&[0xff, b'a']), "\u{fffd}a");
    }
}
