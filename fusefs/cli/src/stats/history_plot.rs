//! `kplugfs stats --history --plot FILE`: the hit ratio (top panel) and the read and backend
//! throughput (bottom panel) over time, drawn with plotters through `crate::plot`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Result, bail};
use kplug_daemon::monitor::history::Sample;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::history::{Interval, intervals};
use crate::plot::{
    Axis, DESC_SIZE, Figure, GRID, LABEL_SIZE, LEGEND_W, LegendEntry, MARGIN, PALETTE, PLOT_W,
    PlotFile, TITLE_SIZE, X_LABEL_AREA, Y_LABEL_AREA, bold, fmt_tick, font, legend, nice_step,
};

/// Most points drawn per series; more samples are merged into this many buckets.
const MAX_PLOT_POINTS: usize = 600;
/// Series with at most this many points also get a dot at each.
const MAX_DOTTED_POINTS: usize = 60;

/// Plot hit ratio (top) and read and backend throughput (bottom) over time to `file`.
pub fn plot_history(samples: &[Sample], file: &PlotFile) -> Result<()> {
    let rows = intervals(samples, MAX_PLOT_POINTS);
    if rows.is_empty() {
        bail!("nothing to plot");
    }
    let t0 = samples[0].time_ms;
    let x = |r: &Interval| (r.end_ms.saturating_sub(t0)) as f64 / 1000.0;
    file.write(&HistoryPlot {
        title: format!(
            "from {}",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(t0))
        ),
        x1: rows.iter().map(x).fold(1.0, f64::max),
        hit: rows
            .iter()
            .filter_map(|r| r.hit_ratio().map(|h| (x(r), h)))
            .collect(),
        read: rows.iter().map(|r| (x(r), r.read_mib_s())).collect(),
        backend: rows.iter().map(|r| (x(r), r.backend_mib_s())).collect(),
    })
}

struct HistoryPlot {
    title: String,
    /// The x axis' end, seconds since the first sample.
    x1: f64,
    /// (seconds, hit ratio) of the intervals with accesses.
    hit: Vec<(f64, f64)>,
    /// (seconds, MiB/s) read through the mount.
    read: Vec<(f64, f64)>,
    /// (seconds, MiB/s) read from the backing files.
    backend: Vec<(f64, f64)>,
}

/// One panel's series: name, colour, points.
type Series<'a> = (&'a str, RGBColor, &'a [(f64, f64)]);

impl Figure for HistoryPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, bold(TITLE_SIZE))?;
        let panels = body.split_evenly((2, 1));
        panel(
            &panels[0],
            self.x1,
            Some(1.0),
            "hit ratio",
            None,
            &[("hit ratio", PALETTE[0], &self.hit)],
        )?;
        panel(
            &panels[1],
            self.x1,
            None,
            "MiB/s",
            Some("seconds since the first sample"),
            &[
                ("read", PALETTE[1], &self.read),
                ("backend", PALETTE[2], &self.backend),
            ],
        )
    }
}

/// One panel: axes, grid, ticks, and each series with its legend entry right of it. The y
/// axis runs from 0 to `y_max`, or to the series' largest value rounded up.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x1: f64,
    y_max: Option<f64>,
    ylabel: &str,
    xlabel: Option<&str>,
    series: &[Series<'_>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (plot, legend_area) = area.split_horizontally(PLOT_W - LEGEND_W);
    let hi = y_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max)
    });
    let ystep = nice_step(hi.max(0.01), 5.0);
    let y1 = ((hi / ystep).ceil() * ystep).max(ystep);
    let xstep = nice_step(x1, 8.0);
    let xtick = |v: &f64| fmt_tick(*v, xstep);
    let ytick = |v: &f64| fmt_tick(*v, ystep);
    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN)
        .x_label_area_size(if xlabel.is_some() { X_LABEL_AREA } else { 30 })
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(Axis::every(0.0, x1, xstep), Axis::every(0.0, y1, ystep))?;
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(ylabel)
        .x_label_formatter(&xtick)
        .y_label_formatter(&ytick)
        .bold_line_style(GRID)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(DESC_SIZE));
    if let Some(xlabel) = xlabel {
        mesh.x_desc(xlabel);
    }
    mesh.draw()?;
    let mut entries = Vec::new();
    for &(name, color, pts) in series {
        chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        let dots = pts.len() <= MAX_DOTTED_POINTS;
        if dots {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        entries.push(LegendEntry { name, color, dots });
    }
    legend(&legend_area, 30, &entries)
}

#[cfg(test)]
mod tests {
    use super::super::history::tests::sample;
    use super::*;
    use crate::plot::tests::{png_colours, svg_texts};

    fn samples(n: u64) -> Vec<Sample> {
        (0..n)
            .map(|i| sample(i * 1000, i * i * 3, i * 2, (i * i) << 20))
            .collect()
    }

    #[test]
    fn svg_has_both_panels_and_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let svg = PlotFile::new(dir.path().join("h.svg")).unwrap();
        plot_history(&samples(5), &svg).unwrap();
        let texts = svg_texts(svg.path());
        for want in [
            "from 1970-01-01T00:00:00Z",
            "hit ratio",
            "MiB/s",
            "seconds since the first sample",
            "read",
            "backend",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} in {texts:?}");
        }
    }

    #[test]
    fn png_decodes_and_shows_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let png = PlotFile::new(dir.path().join("h.png")).unwrap();
        // More samples than points per line: merged into buckets, drawn without dots.
        plot_history(&samples(2000), &png).unwrap();
        let colours = png_colours(png.path());
        assert!(colours.len() > 10, "{} colours", colours.len());
        for c in [PALETTE[0], PALETTE[1], PALETTE[2], BLACK, WHITE] {
            assert!(colours.contains(&[c.0, c.1, c.2]), "{c:?}");
        }
    }

    #[test]
    fn one_sample_is_nothing_to_plot() {
        let dir = tempfile::tempdir().unwrap();
        let svg = PlotFile::new(dir.path().join("h.svg")).unwrap();
        let err = plot_history(&samples(1), &svg).unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
    }
}
