//! `kplugfs stats --history --plot FILE`: the hit ratio (top panel) and the read and backend
//! throughput (bottom panel) over time.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kplug_daemon::monitor::history::Sample;

use super::history::{Interval, intervals};
use crate::plot::{Anchor, Canvas, PALETTE, PLOT_H, PLOT_W, Raster, Svg, fmt_tick, nice_step};

/// Most points drawn per series; more samples are merged into this many buckets.
const MAX_PLOT_POINTS: usize = 600;

/// Plot hit ratio (top) and read throughput (bottom) over time to `.svg` or `.png`.
pub fn plot_history(samples: &[Sample], path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = intervals(samples, MAX_PLOT_POINTS);
    if rows.is_empty() {
        bail!("nothing to plot");
    }
    let t0 = samples[0].time_ms;
    let x = |r: &Interval| (r.end_ms.saturating_sub(t0)) as f64 / 1000.0;
    let hit: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.hit_ratio().map(|h| (x(r), h)))
        .collect();
    let read: Vec<(f64, f64)> = rows.iter().map(|r| (x(r), r.read_mib_s())).collect();
    let backend: Vec<(f64, f64)> = rows.iter().map(|r| (x(r), r.backend_mib_s())).collect();
    let title = format!(
        "from {}",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(t0))
    );
    let draw = |c: &mut dyn Canvas| {
        let (left, right) = (70.0, 200.0);
        let w = PLOT_W as f64;
        let pw = w - left - right;
        let x1 = rows.iter().map(x).fold(1.0, f64::max);
        c.text(left + pw / 2.0, 20.0, &title, (0, 0, 0), Anchor::Middle);
        panel(
            c,
            (left, 40.0, pw, 190.0),
            x1,
            Some(1.0),
            "hit ratio",
            &[("hit ratio", &hit)],
        );
        panel(
            c,
            (left, 290.0, pw, 190.0),
            x1,
            None,
            "MiB/s",
            &[("read", &read), ("backend", &backend)],
        );
        c.text(
            left + pw / 2.0,
            PLOT_H as f64 - 15.0,
            "seconds since the first sample",
            (0, 0, 0),
            Anchor::Middle,
        );
    };
    let bytes = match ext.as_str() {
        "svg" => {
            let mut c = Svg::new(PLOT_W, PLOT_H);
            draw(&mut c);
            c.finish().into_bytes()
        }
        "png" => {
            let mut c = Raster::new(PLOT_W, PLOT_H);
            draw(&mut c);
            c.png()
        }
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// One panel: axes, grid, y ticks, x ticks, and each series with its legend entry.
fn panel(
    c: &mut dyn Canvas,
    (left, top, pw, ph): (f64, f64, f64, f64),
    x1: f64,
    y_max: Option<f64>,
    ylabel: &str,
    series: &[(&str, &Vec<(f64, f64)>)],
) {
    let black = (0, 0, 0);
    let hi = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max)
    });
    let ystep = nice_step(hi.max(0.01), 5.0);
    let y1 = ((hi / ystep).ceil() * ystep).max(ystep);
    let px = |x: f64| left + x / x1 * pw;
    let py = |y: f64| top + (1.0 - y / y1) * ph;
    c.y_grid(left, pw, (0.0, y1, ystep), &py);
    let xstep = nice_step(x1, 8.0);
    let mut x = 0.0;
    while x <= x1 + xstep / 2.0 {
        c.line(px(x), top + ph, px(x), top + ph + 5.0, black, 1.0);
        c.text(
            px(x),
            top + ph + 20.0,
            &fmt_tick(x, xstep),
            black,
            Anchor::Middle,
        );
        x += xstep;
    }
    c.line(left, top + ph, left + pw, top + ph, black, 1.5);
    c.line(left, top, left, top + ph, black, 1.5);
    c.text(left, top - 8.0, ylabel, black, Anchor::Middle);
    for (i, (name, pts)) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        c.polyline(&mut pts.iter().map(|&(x, y)| (px(x), py(y))), col);
        if pts.len() <= 60 {
            for &(x, y) in pts.iter() {
                c.dot(px(x), py(y), 2.5, col);
            }
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        c.line(left + pw + 20.0, ly, left + pw + 45.0, ly, col, 2.0);
        c.text(left + pw + 52.0, ly + 4.0, name, black, Anchor::Start);
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::tests::sample;
    use super::*;

    #[test]
    fn plots_need_a_known_extension() {
        let dir = tempfile::tempdir().unwrap();
        let s: Vec<Sample> = (0..5)
            .map(|i| sample(i * 1000, i * 3, i, i << 20))
            .collect();
        let svg = dir.path().join("h.svg");
        plot_history(&s, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("hit ratio"),
            "{text}"
        );
        let png = dir.path().join("h.png");
        plot_history(&s, &png).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        let err = plot_history(&s, &dir.path().join("h.jpg")).unwrap_err();
        assert!(err.to_string().contains(".svg or .png"), "{err}");
    }
}
