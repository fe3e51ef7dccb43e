//! Charts as SVG (bars, lines, histograms, a gauge, a radar), drawn on the server: no
//! JavaScript, readable without a stylesheet, with a title and description for screen readers.
//! Pure functions of their inputs.
//!
//! Every function renders any input in bounded time and memory, and its SVG has a bounded size:
//! scales are built from the finite values only (NaN and infinities are left out, and a range as
//! wide as `-f64::MAX..f64::MAX` is computed at half scale so that it stays finite), an axis has
//! at most [`MAX_TICKS`] ticks, a line draws at most [`MAX_LINE_POINTS`] points (longer series
//! are down-sampled by [`lttb`]), and a chart draws at most [`MAX_SERIES`] lines, [`MAX_BARS`]
//! bars and [`MAX_BINS`] histogram bins (more bins are merged), with every text cut to
//! [`MAX_TEXT_CHARS`] characters. Time is linear in the number of points given.

mod lttb;
mod radar;

use std::fmt::Write;

pub use lttb::lttb;
pub use radar::{MAX_RADAR_AXES, MAX_RADAR_SERIES, Radar, RadarSeries, radar};

/// The most points a line of a [`LineChart`] draws; longer series are down-sampled by [`lttb`].
pub const MAX_LINE_POINTS: usize = 1000;
/// The most lines one [`LineChart`] draws; the ones after are left out.
pub const MAX_SERIES: usize = 16;
/// The most bars [`horizontal_bars`] draws; the ones after are left out.
pub const MAX_BARS: usize = 200;
/// The most bars a [`Histogram`] draws; more bins are merged, neighbours together.
pub const MAX_BINS: usize = 100;
/// Titles and labels are cut to this many characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// The most ticks on an axis.
pub const MAX_TICKS: usize = 12;

/// One horizontal bar: a whole, and two nested parts of it drawn over it.
pub struct Bar {
    pub label: String,
    pub whole: i64,
    pub part: i64,
    pub inner_part: i64,
    /// The figure printed after the bar.
    pub value_text: String,
}

pub struct BarChart<'a> {
    pub title: &'a str,
    pub description: &'a str,
    /// Legend entries for the whole, the part and the inner part.
    pub legend: [&'a str; 3],
    pub bars: Vec<Bar>,
}

const WIDTH: i64 = 780;
/// The widest bar; the rest of the width holds the figure printed after it.
const BAR_AREA_W: i64 = 600;
const ROW_H: i64 = 58;
const BAR_H: i64 = 22;
const TOP: i64 = 40;
const COLOURS: [&str; 3] = ["#b9cde8", "#2f68b1", "#14325a"];

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A text for the SVG: cut to [`MAX_TEXT_CHARS`] characters (an ellipsis marks the cut), then
/// escaped.
fn svg_text(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => escape(&format!("{}…", &text[..cut])),
        None => escape(text),
    }
}

fn scaled(value: i64, max: i64) -> i64 {
    if max <= 0 || value <= 0 {
        return 0;
    }
    // At least 2 px, so a small but non-zero amount stays visible.
    ((value as f64 / max as f64) * BAR_AREA_W as f64).round().max(2.0) as i64
}

/// One row per bar: its label on a line of its own (labels are cut only past
/// [`MAX_TEXT_CHARS`]), the bar under it, the figure after the bar. Bars share one linear scale.
/// At most [`MAX_BARS`] bars are drawn.
pub fn horizontal_bars(chart: &BarChart<'_>) -> String {
    let bars = &chart.bars[..chart.bars.len().min(MAX_BARS)];
    let height = TOP + ROW_H * bars.len() as i64;
    let max = bars.iter().map(|bar| bar.whole).max().unwrap_or(0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title chart-desc" font-family="system-ui, sans-serif" font-size="15"><title id="chart-title">{}</title><desc id="chart-desc">{}</desc>"#,
        svg_text(chart.title),
        svg_text(chart.description)
    );
    let mut legend_x = 0;
    // An empty entry is a level the chart does not use: no square for it.
    for (entry, colour) in chart.legend.iter().zip(COLOURS).filter(|(entry, _)| !entry.is_empty()) {
        let _ = write!(
            svg,
            r##"<rect x="{legend_x}" y="6" width="14" height="14" fill="{colour}"/><text x="{}" y="18" fill="#1a1a1a">{}</text>"##,
            legend_x + 20,
            svg_text(entry)
        );
        legend_x += 36 + 9 * entry.chars().count().min(MAX_TEXT_CHARS) as i64;
    }
    for (row, bar) in bars.iter().enumerate() {
        let label_y = TOP + ROW_H * row as i64 + 14;
        let bar_y = label_y + 8;
        let whole_w = scaled(bar.whole, max);
        let part_w = scaled(bar.part.min(bar.whole), max).min(whole_w);
        let inner_w = scaled(bar.inner_part.min(bar.part), max).min(whole_w);
        let _ = write!(
            svg,
            r##"<g><text x="0" y="{label_y}" fill="#1a1a1a">{}</text><rect x="0" y="{bar_y}" width="{whole_w}" height="{BAR_H}" fill="{}"/><rect x="0" y="{bar_y}" width="{part_w}" height="{BAR_H}" fill="{}"/><rect x="0" y="{bar_y}" width="{inner_w}" height="{BAR_H}" fill="{}"/><text x="{}" y="{}" fill="#1a1a1a" font-weight="600">{}</text></g>"##,
            svg_text(&bar.label),
            COLOURS[0],
            COLOURS[1],
            COLOURS[2],
            whole_w + 8,
            bar_y + 16,
            svg_text(&bar.value_text)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One line of a [`LineChart`]: points in data units, drawn in order.
pub struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
}

const PLOT_W: f64 = 640.0;
const PLOT_H: f64 = 180.0;
const PLOT_LEFT: f64 = 70.0;
const PLOT_TOP: f64 = 40.0;
/// Width and height of one panel ([`line_chart`], [`histogram`]).
pub const PANEL_W: i64 = 760;
pub const PANEL_H: i64 = 270;

/// A round tick step for a span: 1, 2 or 5 times a power of ten, about five ticks. Any span
/// that is not positive and finite, or too small to divide, gets 1.
fn tick_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|step| *step >= raw).unwrap_or(10.0 * power);
    if step > 0.0 && step.is_finite() { step } else { 1.0 }
}

/// A tick's label, short at any magnitude: `0.25`, `40`, `3k`, `2.0M`, `1.8e308`.
fn tick_text(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_owned()
    } else if !(1e-3..1e9).contains(&magnitude) {
        format!("{value:.1e}")
    } else if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// A linear scale from a range of data onto 0..1. The range always holds 0 and every finite value
/// given; values that are not finite are left out. Where the range is too wide for its span to be
/// a finite `f64` (`-f64::MAX..f64::MAX`), it is computed at half scale (`shrink`), which is
/// exact but for subnormals, so every position and tick stays finite.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    lo: f64,
    hi: f64,
    shrink: f64,
}

impl Scale {
    fn covering(values: impl Iterator<Item = f64>) -> Scale {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for value in values.filter(|value| value.is_finite()) {
            lo = lo.min(value);
            hi = hi.max(value);
        }
        if lo == hi {
            hi = 1.0;
        }
        let shrink = if (hi - lo).is_finite() { 1.0 } else { 0.5 };
        Scale { lo, hi, shrink }
    }

    /// Where `value` falls: 0 at `lo`, 1 at `hi`; clamped to 0..1, and 0 for NaN.
    fn fraction(&self, value: f64) -> f64 {
        let span = self.hi * self.shrink - self.lo * self.shrink;
        let fraction = (value * self.shrink - self.lo * self.shrink) / span;
        if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) }
    }

    /// Round values from `lo` to `hi`, at most [`MAX_TICKS`] of them, 0 among them.
    fn ticks(&self) -> Vec<f64> {
        let (lo, hi) = (self.lo * self.shrink, self.hi * self.shrink);
        let step = tick_step(hi - lo);
        let first = (lo / step).ceil() * step;
        let mut ticks = Vec::new();
        if first.is_finite() {
            for i in 0..MAX_TICKS {
                let tick = first + i as f64 * step;
                if tick > hi + step * 1e-9 {
                    break;
                }
                // Snap what rounding left near 0 or past the end.
                let tick = if tick.abs() < step * 1e-6 { 0.0 } else { tick.min(hi) };
                ticks.push(tick / self.shrink);
            }
        }
        if ticks.len() < 2 {
            ticks = vec![self.lo, self.hi];
        }
        ticks
    }
}

fn axes(svg: &mut String, title: &str, x_label: &str, y_label: &str, x: Option<&Scale>, y: &Scale) {
    let _ = write!(
        svg,
        r##"<text x="{PLOT_LEFT}" y="20" font-weight="600" fill="#1a1a1a">{}</text><line x1="{PLOT_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/><line x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{PLOT_LEFT}" y2="{bottom}" stroke="#555"/><text x="{}" y="{}" text-anchor="middle" fill="#333">{}</text><text x="14" y="{}" text-anchor="middle" fill="#333" transform="rotate(-90 14 {})">{}</text>"##,
        svg_text(title),
        PLOT_LEFT + PLOT_W / 2.0,
        PLOT_TOP + PLOT_H + 38.0,
        svg_text(x_label),
        PLOT_TOP + PLOT_H / 2.0,
        PLOT_TOP + PLOT_H / 2.0,
        svg_text(y_label),
        bottom = PLOT_TOP + PLOT_H,
        right = PLOT_LEFT + PLOT_W,
    );
    let axes = x.map(|x| (x, false)).into_iter().chain([(y, true)]);
    for (scale, vertical) in axes {
        for value in scale.ticks() {
            let at = scale.fraction(value);
            let (x, y) = if vertical {
                (PLOT_LEFT, PLOT_TOP + PLOT_H - at * PLOT_H)
            } else {
                (PLOT_LEFT + at * PLOT_W, PLOT_TOP + PLOT_H)
            };
            let (tx, ty, anchor) = if vertical { (x - 6.0, y + 4.0, "end") } else { (x, y + 16.0, "middle") };
            let _ = write!(
                svg,
                r##"<text x="{tx:.1}" y="{ty:.1}" text-anchor="{anchor}" font-size="11" fill="#333">{}</text>"##,
                tick_text(value)
            );
            if vertical {
                let _ = write!(
                    svg,
                    r##"<line x1="{PLOT_LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e3e6ea"/>"##,
                    PLOT_LEFT + PLOT_W
                );
            }
        }
    }
}

fn panel_open(svg: &mut String, title: &str) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {PANEL_W} {PANEL_H}" width="{PANEL_W}" height="{PANEL_H}" role="img" font-family="system-ui, sans-serif" font-size="13"><title>{}</title><rect width="100%" height="100%" fill="#fff"/>"##,
        svg_text(title)
    );
}

/// Lines over shared axes; each axis runs from its smallest value (0 at most) to its largest (0
/// at least). Points with a coordinate that is not finite are left out; a line of more than
/// [`MAX_LINE_POINTS`] points is down-sampled by [`lttb`] on the plot's own coordinates, so that
/// what is kept is what a reader would see; at most [`MAX_SERIES`] lines are drawn.
pub fn line_chart(chart: &LineChart<'_>) -> String {
    let series = &chart.series[..chart.series.len().min(MAX_SERIES)];
    let finite = |(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let all = || series.iter().flat_map(|series| series.points.iter().filter(finite));
    let x_scale = Scale::covering(all().map(|(x, _)| *x));
    let y_scale = Scale::covering(all().map(|(_, y)| *y));
    let mut svg = String::new();
    panel_open(&mut svg, chart.title);
    axes(&mut svg, chart.title, chart.x_label, chart.y_label, Some(&x_scale), &y_scale);
    let mut legend_x = PLOT_LEFT + PLOT_W - 10.0;
    for series in series.iter().rev() {
        let plotted: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(finite)
            .map(|(x, y)| {
                (PLOT_LEFT + x_scale.fraction(*x) * PLOT_W, PLOT_TOP + PLOT_H - y_scale.fraction(*y) * PLOT_H)
            })
            .collect();
        let kept = lttb(&plotted, MAX_LINE_POINTS);
        let mut path = String::new();
        for (i, (px, py)) in kept.iter().enumerate() {
            let _ = write!(path, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" });
        }
        let colour = svg_text(series.colour);
        match kept.first() {
            // A line of no length (one point, or all at one place) is drawn as a dot.
            Some(&(x, y)) if kept.iter().all(|&(px, py)| (px - x).abs() < 0.5 && (py - y).abs() < 0.5) => {
                let _ = write!(svg, r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"##);
            }
            Some(_) => {
                let _ = write!(svg, r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>"##);
            }
            None => {}
        }
        let _ = write!(
            svg,
            r##"<text x="{legend_x:.1}" y="20" text-anchor="end" fill="{colour}">{}</text>"##,
            svg_text(series.label)
        );
        legend_x -= 12.0 + 8.0 * series.label.chars().count().min(MAX_TEXT_CHARS) as f64;
    }
    svg.push_str("</svg>");
    svg
}

pub struct Histogram<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Bars in order: label under the bar, and count.
    pub bins: Vec<(String, u64)>,
}

/// Bars from 0 to each count. More than [`MAX_BINS`] bins are merged, neighbours together, each
/// merged bar labelled with its first bin's label; labels under bars too narrow for them are
/// left out but for every few.
pub fn histogram(chart: &Histogram<'_>) -> String {
    let group = chart.bins.len().div_ceil(MAX_BINS).max(1);
    let bins: Vec<(&str, u64)> = chart
        .bins
        .chunks(group)
        .map(|chunk| {
            let count = chunk.iter().fold(0u64, |sum, (_, count)| sum.saturating_add(*count));
            (chunk.first().map_or("", |(label, _)| label.as_str()), count)
        })
        .collect();
    let y_scale = Scale::covering(bins.iter().map(|(_, count)| *count as f64));
    let mut svg = String::new();
    panel_open(&mut svg, chart.title);
    axes(&mut svg, chart.title, chart.x_label, chart.y_label, None, &y_scale);
    let slot = PLOT_W / bins.len().max(1) as f64;
    // About 40 px for a label under its bar.
    let label_every = (40.0 / slot).ceil().max(1.0) as usize;
    for (i, (label, count)) in bins.iter().enumerate() {
        let height = y_scale.fraction(*count as f64) * PLOT_H;
        let x = PLOT_LEFT + i as f64 * slot;
        let label = svg_text(label);
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="{}"><title>{label}: {count}</title></rect>"##,
            x + 2.0_f64.min(slot / 4.0),
            PLOT_TOP + PLOT_H - height,
            (slot - 4.0).max(slot / 2.0),
            COLOURS[1],
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#333">{label}</text>"##,
                x + slot / 2.0,
                PLOT_TOP + PLOT_H + 16.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Panels stacked top to bottom in one SVG document.
pub fn stack(panels: &[String]) -> String {
    let height = PANEL_H * panels.len() as i64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {PANEL_W} {height}" width="{PANEL_W}" height="{height}">"#
    );
    for (i, panel) in panels.iter().enumerate() {
        let y = PANEL_H * i as i64;
        svg.push_str(&panel.replacen("<svg ", &format!(r#"<svg y="{y}" "#), 1));
    }
    svg.push_str("</svg>");
    svg
}

/// Shares of an allocation (1.0 = all of it): charged, running so far, reserved by running and
/// queued jobs up to their time limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GaugeParts {
    pub used: f64,
    pub running: f64,
    pub reserved: f64,
}

/// A horizontal gauge of an allocation: used (solid), running (lighter), reserved (hatched),
/// stacked against 1.0; blue, amber past 80 %, red past 100 % (used and running); the
/// percentage after it, and a legend (`legend`: the three words, translated) below.
pub fn gauge(parts: GaugeParts, label: &str, legend: [&str; 3]) -> String {
    const W: f64 = 220.0;
    // Shares past 100 (10,000 %) are drawn and written as 100: the track is full long before.
    const MOST: f64 = 100.0;
    let clean = |share: f64| if share.is_finite() { share.clamp(0.0, MOST) } else { 9.99 };
    let (used, running, reserved) = (clean(parts.used), clean(parts.running), clean(parts.reserved));
    let now = (used + running).min(MOST);
    let colour = if now >= 1.0 {
        "#b42318"
    } else if now >= 0.8 {
        "#b54708"
    } else {
        COLOURS[1]
    };
    let finite = parts.used.is_finite() && parts.running.is_finite();
    let mut text = if finite { format!("{:.0} %", now * 100.0) } else { "∞".to_owned() };
    if finite && parts.used + parts.running > MOST {
        text = format!("> {:.0} %", MOST * 100.0);
    }
    if reserved > 0.0 && parts.reserved.is_finite() {
        text.push_str(&format!(" (+{:.0} %)", reserved * 100.0));
    }
    // Cumulative widths, each segment clamped to the track.
    let edge = |share: f64| share.min(1.0) * W;
    let (x1, x2, x3) = (edge(used), edge(now), edge(now + reserved));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="gauge" viewBox="0 0 340 44" width="340" height="44" role="img" aria-label="{}: {text}"><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e3e6ea"/><rect width="2" height="6" fill="#8a94a3"/></pattern></defs><rect x="0" y="4" width="{W}" height="16" rx="3" fill="#e3e6ea"/>"##,
        svg_text(label)
    );
    for (from, to, fill, opacity) in [(0.0, x1, colour, "1"), (x1, x2, colour, "0.5"), (x2, x3, "url(#hatch)", "1")] {
        if to > from {
            svg.push_str(&format!(
                r#"<rect x="{from:.1}" y="4" width="{:.1}" height="16" fill="{fill}" fill-opacity="{opacity}"/>"#,
                to - from
            ));
        }
    }
    svg.push_str(&format!(
        r##"<text x="{}" y="17" font-family="system-ui, sans-serif" font-size="13" fill="#1a1a1a">{text}</text>"##,
        W + 8.0
    ));
    let mut x = 0.0;
    for (word, (fill, opacity)) in legend.iter().zip([(colour, "1"), (colour, "0.5"), ("url(#hatch)", "1")]) {
        svg.push_str(&format!(
            r##"<rect x="{x:.0}" y="29" width="10" height="10" fill="{fill}" fill-opacity="{opacity}"/><text x="{:.0}" y="38" font-family="system-ui, sans-serif" font-size="11" fill="#444">{}</text>"##,
            x + 14.0,
            svg_text(word)
        ));
        x += 14.0 + 7.0 * word.chars().count().min(MAX_TEXT_CHARS) as f64 + 14.0;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, whole: i64, part: i64) -> Bar {
        Bar { label: label.into(), whole, part, inner_part: 0, value_text: format!("{whole}") }
    }

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let chart = BarChart {
            title: "Budget",
            description: "desc",
            legend: ["a", "b", "c"],
            bars: vec![bar("Big <&>", 1000, 500), bar("Small", 10, 0)],
        };
        let svg = horizontal_bars(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(&format!(r#"width="{BAR_AREA_W}""#)));
        assert!(svg.contains(&format!(r#"width="{}""#, BAR_AREA_W / 2)));
        assert!(svg.contains(r#"width="6""#), "a small bar keeps its width on the scale");
        assert!(svg.contains(r#"width="0""#), "nothing committed, no part bar");
        assert!(svg.contains("Big &lt;&amp;&gt;"));
        assert!(!svg.contains("<&>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(1.0), 0.2);
        assert_eq!(tick_step(7_000_000.0), 2_000_000.0);
        assert_eq!(tick_text(2_000_000.0), "2.0M");
    }

    #[test]
    fn line_charts_and_histograms_render() {
        let series = Series { label: "q <1>", colour: "#123456", points: vec![(0.0, 0.0), (10.0, 5.0)] };
        let chart = LineChart { title: "t", x_label: "x", y_label: "y", series: vec![series] };
        let svg = line_chart(&chart);
        assert!(svg.contains(&format!(
            "M{PLOT_LEFT:.1},{:.1} L{:.1},{PLOT_TOP:.1}",
            PLOT_TOP + PLOT_H,
            PLOT_LEFT + PLOT_W
        )));
        assert!(svg.contains("q &lt;1&gt;"));
        let bins = vec![("0".to_owned(), 4), ("1".to_owned(), 2)];
        let svg = histogram(&Histogram { title: "h", x_label: "x", y_label: "y", bins });
        assert_eq!(svg.matches("<rect x=").count(), 2);
        let both = stack(&[line_chart(&chart), svg]);
        assert!(both.contains(&format!(r#"<svg y="{PANEL_H}""#)));
    }

    #[test]
    fn gauges_stack_used_running_and_reserved_and_change_colour() {
        let legend = ["used", "running", "reserved"];
        let parts = |used, running, reserved| GaugeParts { used, running, reserved };
        assert!(gauge(parts(0.5, 0.0, 0.0), "x", legend).contains(r#"width="110.0""#));
        let stacked = gauge(parts(0.25, 0.25, 0.25), "x", legend);
        assert!(stacked.contains(r#"<rect x="55.0" y="4" width="55.0""#) && stacked.contains("50 % (+25 %)"));
        assert!(stacked.contains(r#"<rect x="110.0" y="4" width="55.0" height="16" fill="url(#hatch)""#));
        assert!(gauge(parts(0.6, 0.3, 0.0), "x", legend).contains("#b54708"));
        let over = gauge(parts(1.3, 0.0, 0.5), "x", legend);
        assert!(over.contains("#b42318") && over.contains("130 %"));
        assert!(over.contains(r##"width="220.0" height="16" fill="#b42318""##), "{over}");
        assert!(!over.contains(r#"fill="url(#hatch)" fill-opacity="1"/><text x="228""#), "nothing past the track");
        assert!(gauge(parts(f64::INFINITY, f64::NAN, 0.0), "x", legend).contains("∞"));
    }

    #[test]
    fn empty_chart_is_valid() {
        let chart = BarChart { title: "t", description: "d", legend: ["a", "b", "c"], bars: vec![] };
        assert!(horizontal_bars(&chart).contains("</svg>"));
    }
}

#[cfg(test)]
mod bounds_tests;
