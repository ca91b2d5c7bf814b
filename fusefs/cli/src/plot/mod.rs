//! Plots, drawn with the `plotters` crate. This file holds what every plot shares: the
//! `--plot FILE` argument (its format, `.svg` or `.png`, comes from its extension and is
//! checked when the command line is parsed), the image size, the palette, the embedded font,
//! the axes and the legend column. `mrc.rs` draws the miss-ratio curves of `kplugfs sim
//! --plot`; the history panels of `kplugfs stats --history --plot` are in
//! `stats/history_plot.rs`.
//!
//! Text is measured and drawn with Noto Sans, embedded in the binary (the `notosans` crate)
//! and registered with plotters before the first drawing, SVG included (plotters measures
//! text to lay a chart out): no system font, no C library. A PNG is plotters' RGB buffer
//! encoded by the `png` crate.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod mrc;

pub use mrc::miss_ratio_curves;

/// Image size in pixels, SVG and PNG alike.
pub(crate) const PLOT_W: u32 = 900;
pub(crate) const PLOT_H: u32 = 540;
/// Width of the legend column right of the charts.
pub(crate) const LEGEND_W: u32 = 200;
/// The series' colours, in order (matplotlib's "tab10").
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Grid lines.
pub(crate) const GRID: RGBColor = RGBColor(220, 220, 220);

/// The font family every text uses; [`register_fonts`] gives it the embedded Noto Sans.
const FAMILY: &str = "sans-serif";
/// Font sizes as plotters takes them (it draws text at about 1/1.24 of the size given).
pub(crate) const TITLE_SIZE: f64 = 24.0;
pub(crate) const LABEL_SIZE: f64 = 18.0;
pub(crate) const DESC_SIZE: f64 = 19.0;

/// A text style of the embedded font.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().into()
}

/// The bold text style of titles.
pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    (FAMILY, size, FontStyle::Bold).into_font().into()
}

/// Give plotters the embedded fonts, once per process, before anything is drawn.
fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [
            (FontStyle::Normal, notosans::REGULAR_TTF),
            (FontStyle::Bold, notosans::BOLD_TTF),
        ]
        .into_iter()
        .all(|(style, bytes)| plotters::style::register_font(FAMILY, style, bytes).is_ok())
    });
    if !ok {
        bail!("the embedded font (Noto Sans) could not be loaded");
    }
    Ok(())
}

/// The format of a plot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SVG text.
    Svg,
    /// An 8-bit RGB PNG.
    Png,
}

/// A `--plot FILE` argument: `FILE.svg` or `FILE.png` (any case), checked when the command
/// line is parsed, before any work.
#[derive(Debug, Clone)]
pub struct PlotFile {
    path: PathBuf,
    format: Format,
}

impl PlotFile {
    /// The file and its format, or why its name does not do.
    pub fn new(path: impl Into<PathBuf>) -> std::result::Result<Self, String> {
        let path = path.into();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let format = match ext.as_deref() {
            Some("svg") => Format::Svg,
            Some("png") => Format::Png,
            _ => return Err("the file name must end in .svg or .png".into()),
        };
        Ok(PlotFile { path, format })
    }

    /// clap's value parser for `--plot`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        Self::new(s)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Draw `figure` on a `PLOT_W` x `PLOT_H` image and write it to the file.
    pub(crate) fn write(&self, figure: &impl Figure) -> Result<()> {
        register_fonts()?;
        let size = (PLOT_W, PLOT_H);
        let bytes = match self.format {
            Format::Svg => {
                let mut text = String::new();
                {
                    let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                    figure.draw(&root)?;
                    root.present()?;
                }
                text.into_bytes()
            }
            Format::Png => {
                let mut rgb = vec![0u8; (PLOT_W * PLOT_H * 3) as usize];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                    figure.draw(&root)?;
                    root.present()?;
                }
                encode_png(&rgb, PLOT_W, PLOT_H)?
            }
        };
        std::fs::write(&self.path, bytes)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `rgb` (8-bit RGB, row by row) as a PNG file.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().context("encoding the PNG")?;
    writer.write_image_data(rgb).context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(out)
}

/// Something drawn on a plot file's whole image, whatever the backend.
pub(crate) trait Figure {
    /// Draw on `root` (`PLOT_W` x `PLOT_H` pixels).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// One entry of a legend: a series' name and colour, and whether its points have dots.
pub(crate) struct LegendEntry<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub dots: bool,
}

/// A legend column: a short line (with a dot when the series has them) and the name of each
/// series, one a row from `top` pixels down `area`.
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    top: i32,
    entries: &[LegendEntry<'_>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = font(LABEL_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let y = top + 24 * i as i32;
        area.draw(&PathElement::new(
            vec![(16, y), (44, y)],
            e.color.stroke_width(2),
        ))?;
        if e.dots {
            area.draw(&Circle::new((30, y), 4, e.color.filled()))?;
        }
        area.draw(&Text::new(e.name.to_string(), (52, y), style.clone()))?;
    }
    Ok(())
}

/// Space around a chart, and for its axes' labels, in pixels.
pub(crate) const MARGIN: u32 = 12;
pub(crate) const X_LABEL_AREA: u32 = 50;
pub(crate) const Y_LABEL_AREA: u32 = 64;

/// A linear axis from `lo` to `hi` with its ticks (and grid lines) where we put them: at the
/// simulated cache sizes, or every round step. (plotters' own `with_key_points` leaves an
/// `f64` axis without label formatting.)
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Axis {
    /// An axis with ticks at `ticks`.
    pub(crate) fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Axis { lo, hi, ticks }
    }

    /// An axis with a tick every `step` from `lo` to `hi`.
    pub(crate) fn every(lo: f64, hi: f64, step: f64) -> Self {
        let n = ((hi - lo) / step + 1e-6).floor() as usize;
        Self::new(lo, hi, (0..=n).map(|i| lo + step * i as f64).collect())
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (from, to): (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        from + (f64::from(to - from) * f).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Grid lines at the ticks only, no lighter ones between.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Round step for about `n` ticks over `span`.
pub(crate) fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A tick label: as many decimals as the step between ticks needs.
pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parse an SVG file: the root is an `svg` element of the SVG namespace; returns every
    /// text element's text.
    pub(crate) fn svg_texts(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("the SVG is XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert_eq!(root.attribute("width"), Some(PLOT_W.to_string().as_str()));
        assert_eq!(root.attribute("height"), Some(PLOT_H.to_string().as_str()));
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").trim().to_string())
            .collect()
    }

    /// Decode a PNG file: the image's size, and its distinct colours.
    pub(crate) fn png_colours(path: &Path) -> std::collections::HashSet<[u8; 3]> {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).expect("a PNG image");
        assert_eq!((info.width, info.height), (PLOT_W, PLOT_H));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf[..info.buffer_size()]
            .chunks(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect()
    }
    #[test]
    fn the_extension_picks_the_format_and_nothing_else_goes() {
        assert_eq!(PlotFile::new("a.svg").unwrap().format, Format::Svg);
        assert_eq!(PlotFile::new("a.PNG").unwrap().format, Format::Png);
        for bad in ["a.jpg", "a", "svg", "a.svg.gz"] {
            let err = PlotFile::parse(bad).unwrap_err();
            assert!(err.contains("must end in .svg or .png"), "{bad}: {err}");
        }
    }
}
