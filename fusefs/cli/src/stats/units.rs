//! Numbers as `kplugfs stats` prints them: ratios as percentages, bytes in binary units.

/// `a / (a + b)` as a percentage, or `-` when both are 0.
pub fn pct(a: u64, b: u64) -> String {
    if a + b == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / (a + b) as f64)
    }
}

/// Bytes in binary units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
