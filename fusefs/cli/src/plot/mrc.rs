//! `kplugfs sim --plot FILE`: miss-ratio curves, one line per policy spec over the cache
//! sizes, a dot at each simulated size.

use std::path::Path;

use anyhow::{Result, bail};
use kplug_sim::SimResult;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Axis, DESC_SIZE, Figure, GRID, LABEL_SIZE, LEGEND_W, LegendEntry, MARGIN, PALETTE, PLOT_W,
    PlotFile, TITLE_SIZE, X_LABEL_AREA, Y_LABEL_AREA, bold, fmt_tick, font, legend, nice_step,
};

/// Write miss-ratio curves of `results` to `file`.
pub fn miss_ratio_curves(results: &[SimResult], file: &PlotFile) -> Result<()> {
    let series = plot_series(results);
    if series.is_empty() {
        bail!("nothing to plot");
    }
    let by_fraction = results.iter().all(|r| r.cache_fraction.is_some());
    let title = results
        .first()
        .map(|r| {
            Path::new(&r.trace)
                .file_name()
                .map_or(r.trace.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    file.write(&MissRatioCurves {
        title,
        xlabel: if by_fraction {
            "cache size (% of unique ids)"
        } else {
            "cache size (objects)"
        },
        series,
    })
}

/// (policy, points (x, miss ratio)) in first-seen policy order; x is the cache size in
/// percent of the unique ids when every result has a fraction, else in objects.
fn plot_series(results: &[SimResult]) -> Vec<(String, Vec<(f64, f64)>)> {
    let by_fraction = results.iter().all(|r| r.cache_fraction.is_some());
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in results {
        let x = match r.cache_fraction {
            Some(f) if by_fraction => f * 100.0,
            _ => r.cache_objects as f64,
        };
        match out.iter_mut().find(|(p, _)| *p == r.policy) {
            Some((_, pts)) => pts.push((x, r.miss_ratio)),
            None => out.push((r.policy.clone(), vec![(x, r.miss_ratio)])),
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// A cache size on the x axis: `10`, `2.5`, `1000000` (fractions times 100 lose their
/// rounding noise).
fn size_label(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

struct MissRatioCurves {
    /// The trace's file name.
    title: String,
    xlabel: &'static str,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Figure for MissRatioCurves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (plot, legend_area) = root.split_horizontally(PLOT_W - LEGEND_W);
        let points = || self.series.iter().flat_map(|(_, p)| p.iter().copied());
        let (mut x0, mut x1) =
            points().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
        let (y_lo, y_hi) =
            points().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(y), b.max(y)));
        if x1 <= x0 {
            x0 -= 1.0;
            x1 += 1.0;
        }
        // A little room either side, so the end points' dots show whole.
        let pad = (x1 - x0) * 0.02;
        let (x_lo, x_hi) = (x0 - pad, x1 + pad);
        // X ticks at the simulated sizes, labelled where there is room for it.
        let mut xticks: Vec<f64> = points().map(|(x, _)| x).collect();
        xticks.sort_by(f64::total_cmp);
        xticks.dedup();
        let width = f64::from(PLOT_W - LEGEND_W - 2 * MARGIN - Y_LABEL_AREA);
        let mut labelled: Vec<(f64, f64, f64)> = Vec::new(); // (tick, pixel, half its width)
        for &t in &xticks {
            let px = (t - x_lo) / (x_hi - x_lo) * width;
            // About 9 pixels a character at LABEL_SIZE, and 8 between two labels.
            let half = size_label(t).len() as f64 * 4.5;
            if labelled
                .last()
                .is_none_or(|&(_, last, last_half)| px - last >= last_half + half + 8.0)
            {
                labelled.push((t, px, half));
            }
        }
        let xtick = |v: &f64| {
            if labelled.iter().any(|&(t, _, _)| t == *v) {
                size_label(*v)
            } else {
                String::new()
            }
        };
        let ystep = nice_step((y_hi - y_lo).max(0.01), 6.0);
        let y0 = ((y_lo / ystep).floor() * ystep).max(0.0);
        let y1 = ((y_hi / ystep).ceil() * ystep).min(1.0).max(y0 + ystep);
        let ytick = |v: &f64| fmt_tick(*v, ystep);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, bold(TITLE_SIZE))
            .margin(MARGIN)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(Axis::new(x_lo, x_hi, xticks), Axis::every(y0, y1, ystep))?;
        chart
            .configure_mesh()
            .x_desc(self.xlabel)
            .y_desc("miss ratio")
            .x_label_formatter(&xtick)
            .y_label_formatter(&ytick)
            .bold_line_style(GRID)
            .label_style(font(LABEL_SIZE))
            .axis_desc_style(font(DESC_SIZE))
            .draw()?;
        let mut entries = Vec::new();
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            entries.push(LegendEntry {
                name,
                color,
                dots: true,
            });
        }
        legend(&legend_area, 60, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{png_colours, svg_texts};
    use super::*;

    fn result(policy: &str, f: f64, mr: f64) -> SimResult {
        SimResult {
            trace: "traces/data/x.trace".into(),
            policy: policy.into(),
            cache_objects: (f * 1000.0) as u64,
            requests: 100,
            misses: (mr * 100.0) as u64,
            miss_ratio: mr,
            seconds: 1.0,
            requests_per_sec: 100.0,
            cache_fraction: Some(f),
            faults: 0,
            policy_switches: 0,
            scopes: Vec::new(),
        }
    }

    fn results() -> Vec<SimResult> {
        vec![
            result("lru", 0.01, 0.84),
            result("lru", 0.1, 0.80),
            result("lru", 0.25, 0.71),
            result("s3fifo", 0.01, 0.83),
            result("s3fifo", 0.1, 0.75),
            result("s3fifo", 0.25, 0.64),
        ]
    }

    #[test]
    fn svg_has_the_axes_and_a_legend_entry_per_policy() {
        let dir = tempfile::tempdir().unwrap();
        let svg = PlotFile::new(dir.path().join("m.SVG")).unwrap();
        miss_ratio_curves(&results(), &svg).unwrap();
        let texts = svg_texts(svg.path());
        for want in [
            "x.trace",
            "miss ratio",
            "cache size (% of unique ids)",
            "lru",
            "s3fifo",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want:?} in {texts:?}");
        }
    }

    #[test]
    fn png_decodes_and_shows_every_policy() {
        let dir = tempfile::tempdir().unwrap();
        let png = PlotFile::new(dir.path().join("m.png")).unwrap();
        miss_ratio_curves(&results(), &png).unwrap();
        let colours = png_colours(png.path());
        assert!(colours.len() > 10, "{} colours", colours.len());
        for c in [
            PALETTE[0],
            PALETTE[1],
            RGBColor(0, 0, 0),
            RGBColor(255, 255, 255),
        ] {
            assert!(colours.contains(&[c.0, c.1, c.2]), "{c:?}");
        }
        assert!(!colours.contains(&[PALETTE[2].0, PALETTE[2].1, PALETTE[2].2]));
    }

    #[test]
    fn size_labels_are_short() {
        assert_eq!(size_label(0.07 * 100.0), "7");
        assert_eq!(size_label(2.5), "2.5");
        assert_eq!(size_label(0.1), "0.1");
        assert_eq!(size_label(1_000_000.0), "1000000");
    }

    #[test]
    fn no_result_is_nothing_to_plot() {
        let dir = tempfile::tempdir().unwrap();
        let svg = PlotFile::new(dir.path().join("m.svg")).unwrap();
        let err = miss_ratio_curves(&[], &svg).unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
        assert!(!svg.path().exists());
    }
}
