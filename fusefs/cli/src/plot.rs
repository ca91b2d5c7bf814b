//! Plots: miss-ratio curves of `kplugfs sim --plot` and the history panels of `kplugfs stats
//! --plot`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kplug_sim::SimResult;

// ------------------------------------------------------------------------------------------
// --plot: miss-ratio curves.
//
// One line per policy spec over the cache sizes, drawn once through a tiny `Canvas` trait into
// either SVG (text, written by hand) or PNG (an RGB raster with a built-in 5x7 pixel font and a
// stored-deflate PNG encoder). No font library, no system packages: the plot works on a bare
// Debian with only what scripts/setup.sh installs.

/// Write miss-ratio curves of `results` to `path` (`.svg` or `.png`).
pub fn miss_ratio_curves(results: &[SimResult], path: &Path) -> Result<()> {
    let series = plot_series(results);
    if series.is_empty() {
        bail!("nothing to plot");
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (w, h) = (PLOT_W, PLOT_H);
    let bytes = match ext.as_str() {
        "svg" => {
            let mut c = Svg::new(w, h);
            draw_plot(&mut c, &series, results);
            c.finish().into_bytes()
        }
        "png" => {
            let mut c = Raster::new(w, h);
            draw_plot(&mut c, &series, results);
            c.png()
        }
        _ => bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub(crate) const PLOT_W: u32 = 900;
pub(crate) const PLOT_H: u32 = 540;
pub(crate) const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

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

pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

#[derive(Clone, Copy)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

pub(crate) type Rgb = (u8, u8, u8);

pub(crate) trait Canvas {
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb, width: f64);
    fn dot(&mut self, x: f64, y: f64, r: f64, c: Rgb);
    fn text(&mut self, x: f64, y: f64, s: &str, c: Rgb, anchor: Anchor);

    /// A series' line through `points` (pixel coordinates), 2 px wide.
    fn polyline(&mut self, points: &mut dyn Iterator<Item = (f64, f64)>, c: Rgb) {
        let mut prev: Option<(f64, f64)> = None;
        for p in points {
            if let Some(q) = prev {
                self.line(q.0, q.1, p.0, p.1, c, 2.0);
            }
            prev = Some(p);
        }
    }

    /// Horizontal grid lines with their labels left of the plot area, every `step` from
    /// `y0` to `y1`; `py` maps a value to a pixel row.
    fn y_grid(
        &mut self,
        left: f64,
        width: f64,
        (y0, y1, step): (f64, f64, f64),
        py: &dyn Fn(f64) -> f64,
    ) {
        let (black, grey) = ((0, 0, 0), (220, 220, 220));
        let mut y = y0;
        while y <= y1 + step / 2.0 {
            self.line(left, py(y), left + width, py(y), grey, 1.0);
            self.text(
                left - 8.0,
                py(y) + 4.0,
                &fmt_tick(y, step),
                black,
                Anchor::End,
            );
            y += step;
        }
    }
}

fn draw_plot(c: &mut impl Canvas, series: &[(String, Vec<(f64, f64)>)], results: &[SimResult]) {
    let (left, right, top, bottom) = (70.0, 220.0, 40.0, 60.0);
    let (w, h) = (PLOT_W as f64, PLOT_H as f64);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (mut x0, mut x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let ystep = nice_step((y_hi - y_lo).max(0.01), 6.0);
    let y0 = ((y_lo / ystep).floor() * ystep).max(0.0);
    let y1 = ((y_hi / ystep).ceil() * ystep).min(1.0).max(y0 + ystep);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * ph;
    let black = (0, 0, 0);
    c.y_grid(left, pw, (y0, y1, ystep), &py);
    // X ticks at the simulated sizes.
    let mut ticks: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let mut last_label = f64::MIN;
    for &t in &ticks {
        c.line(px(t), top + ph, px(t), top + ph + 5.0, black, 1.0);
        if px(t) - last_label >= 40.0 {
            let label = if t.fract() == 0.0 {
                format!("{t:.0}")
            } else {
                format!("{t}")
            };
            c.text(px(t), top + ph + 20.0, &label, black, Anchor::Middle);
            last_label = px(t);
        }
    }
    c.line(left, top + ph, left + pw, top + ph, black, 1.5);
    c.line(left, top, left, top + ph, black, 1.5);
    let by_fraction = results.iter().all(|r| r.cache_fraction.is_some());
    let xlabel = if by_fraction {
        "cache size (% of unique ids)"
    } else {
        "cache size (objects)"
    };
    c.text(left + pw / 2.0, h - 15.0, xlabel, black, Anchor::Middle);
    c.text(left, top - 15.0, "miss ratio", black, Anchor::Middle);
    let title = results
        .first()
        .map(|r| {
            Path::new(&r.trace)
                .file_name()
                .map_or(r.trace.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    c.text(left + pw / 2.0, top - 15.0, &title, black, Anchor::Middle);
    for (i, (name, pts)) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        c.polyline(&mut pts.iter().map(|&(x, y)| (px(x), py(y))), col);
        for &(x, y) in pts {
            c.dot(px(x), py(y), 3.5, col);
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        c.line(left + pw + 20.0, ly, left + pw + 45.0, ly, col, 2.0);
        c.dot(left + pw + 32.5, ly, 3.5, col);
        c.text(left + pw + 52.0, ly + 4.0, name, black, Anchor::Start);
    }
}

pub(crate) struct Svg {
    out: String,
}

impl Svg {
    pub(crate) fn new(w: u32, h: u32) -> Self {
        Svg {
            out: format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
                 viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
                 <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
            ),
        }
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn svg_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Canvas for Svg {
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, (r, g, b): Rgb, width: f64) {
        self.out.push_str(&format!(
            "<line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" \
             stroke=\"rgb({r},{g},{b})\" stroke-width=\"{width}\"/>\n"
        ));
    }

    fn dot(&mut self, x: f64, y: f64, rad: f64, (r, g, b): Rgb) {
        self.out.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{rad}\" fill=\"rgb({r},{g},{b})\"/>\n"
        ));
    }

    fn text(&mut self, x: f64, y: f64, s: &str, (r, g, b): Rgb, anchor: Anchor) {
        let a = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        self.out.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{a}\" fill=\"rgb({r},{g},{b})\">{}</text>\n",
            svg_escape(s)
        ));
    }
}

/// An RGB raster for the PNG output.
pub(crate) struct Raster {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

/// 5x7 glyphs, one byte per row (low 5 bits, MSB = left), for the characters labels use;
/// upper case is drawn with the lower-case glyphs' capitals below, unknown characters as a box.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'a' => [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        'c' => [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        'g' => [0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'j' => [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'q' => [0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'v' => [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'w' => [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A],
        'x' => [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        'y' => [0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E],
        'z' => [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        ' ' => [0; 7],
        c if c.is_ascii_uppercase() => glyph(c.to_ascii_lowercase()),
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

impl Raster {
    pub(crate) fn new(w: u32, h: u32) -> Self {
        Raster {
            w,
            h,
            px: vec![255; (w * h * 3) as usize],
        }
    }

    fn set(&mut self, x: i64, y: i64, (r, g, b): Rgb) {
        if x >= 0 && y >= 0 && (x as u32) < self.w && (y as u32) < self.h {
            let i = ((y as u32 * self.w + x as u32) * 3) as usize;
            self.px[i..i + 3].copy_from_slice(&[r, g, b]);
        }
    }

    fn disc(&mut self, x: f64, y: f64, r: f64, c: Rgb) {
        let ri = r.ceil() as i64;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                if (dx * dx + dy * dy) as f64 <= r * r {
                    self.set(x.round() as i64 + dx, y.round() as i64 + dy, c);
                }
            }
        }
    }

    /// The image as PNG: 8-bit RGB, filter 0, zlib with stored (uncompressed) blocks.
    pub(crate) fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(((self.w * 3 + 1) * self.h) as usize);
        for row in self.px.chunks((self.w * 3) as usize) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        let mut z = vec![0x78, 0x01];
        let mut chunks = raw.chunks(65_535).peekable();
        while let Some(c) = chunks.next() {
            z.push(u8::from(chunks.peek().is_none()));
            z.extend_from_slice(&(c.len() as u16).to_le_bytes());
            z.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
            z.extend_from_slice(c);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &raw {
            a = (a + x as u32) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&self.w.to_be_bytes());
        ihdr.extend_from_slice(&self.h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png_chunk(&mut out, b"IHDR", &ihdr);
        png_chunk(&mut out, b"IDAT", &z);
        png_chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl Canvas for Raster {
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb, width: f64) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            if width <= 1.0 {
                self.set(x.round() as i64, y.round() as i64, c);
            } else {
                self.disc(x, y, width / 2.0, c);
            }
        }
    }

    fn dot(&mut self, x: f64, y: f64, r: f64, c: Rgb) {
        self.disc(x, y, r, c);
    }

    fn text(&mut self, x: f64, y: f64, s: &str, c: Rgb, anchor: Anchor) {
        // 5x7 glyphs drawn at scale 2 on a 12-pixel advance; `y` is the baseline.
        let scale = 2i64;
        let advance = 6 * scale;
        let width = s.chars().count() as i64 * advance;
        let mut cx = match anchor {
            Anchor::Start => x as i64,
            Anchor::Middle => x as i64 - width / 2,
            Anchor::End => x as i64 - width,
        };
        let top = y as i64 - 7 * scale + 2;
        for ch in s.chars() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.set(cx + col * scale + dx, top + row as i64 * scale + dy, c);
                            }
                        }
                    }
                }
            }
            cx += advance;
        }
    }
}

#[cfg(test)]
mod tests {
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
        }
    }

    #[test]
    fn plot_svg_and_png() {
        let rs = vec![
            result("lru", 0.01, 0.84),
            result("lru", 0.1, 0.80),
            result("s3fifo", 0.01, 0.83),
            result("s3fifo", 0.1, 0.75),
        ];
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("m.svg");
        miss_ratio_curves(&rs, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains(">s3fifo</text>"));
        assert_eq!(text.matches("<circle").count(), 4 + 2);
        let png = dir.path().join("m.png");
        miss_ratio_curves(&rs, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            PLOT_W
        );
        // Known CRC-32 and a valid zlib stream length: (3 x 900 + 1) x 540 raw bytes.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        let idat = 8 + 25;
        let len = u32::from_be_bytes(bytes[idat..idat + 4].try_into().unwrap()) as usize;
        let raw = (3 * PLOT_W as usize + 1) * PLOT_H as usize;
        assert_eq!(len, 2 + raw + 5 * raw.div_ceil(65_535) + 4);
        assert!(miss_ratio_curves(&rs, &dir.path().join("m.jpg")).is_err());
    }
}
