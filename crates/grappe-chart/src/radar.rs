//! A radar chart: axes from the centre, clockwise from the top, one closed line per series.

use std::f64::consts::PI;
use std::fmt::Write;

use crate::{MAX_TEXT_CHARS, svg_text};

/// The most axes a [`Radar`] draws; the ones after are left out.
pub const MAX_RADAR_AXES: usize = 12;
/// The most series a [`Radar`] draws; the ones after are left out.
pub const MAX_RADAR_SERIES: usize = 2;

/// Series colours, each with a contrast of at least 4.5:1 on white (WCAG AA for text, so
/// above the 3:1 asked of graphics): blue (5.9:1), and a dark orange (6.4:1) drawn dashed, so
/// that the two differ without colour too.
const SERIES_COLOURS: [&str; MAX_RADAR_SERIES] = ["#2f68b1", "#9a4a00"];
/// Grid lines: 4.5:1 on white.
const GRID: &str = "#767676";
const INK: &str = "#1a1a1a";

// Sized so that the texts stay readable on a 390 px phone, where the chart is about 340 px
// wide: 20 units of text are then 11 px.
const W: f64 = 600.0;
const H: f64 = 480.0;
const CX: f64 = 300.0;
const CY: f64 = 230.0;
const R: f64 = 130.0;
const FONT: f64 = 20.0;
/// Axis names are wrapped at spaces into lines of about this many characters, at most
/// [`LABEL_LINES`] lines, so that a side label fits between the chart and the edge.
const LABEL_CHARS: usize = 13;
const LABEL_LINES: usize = 3;

/// One closed line: a value per axis, from 0 to the chart's `max`.
pub struct RadarSeries<'a> {
    pub label: &'a str,
    pub values: Vec<f64>,
}

pub struct Radar<'a> {
    pub title: &'a str,
    pub description: &'a str,
    /// The axes' names, clockwise from the top.
    pub axes: Vec<&'a str>,
    /// The value at the rim; grid rings at each quarter of it.
    pub max: f64,
    /// At most [`MAX_RADAR_SERIES`]: the first filled lightly, the second dashed.
    pub series: Vec<RadarSeries<'a>>,
}

fn point(axis: usize, axes: usize, share: f64) -> (f64, f64) {
    let angle = -PI / 2.0 + 2.0 * PI * axis as f64 / axes as f64;
    (CX + R * share * angle.cos(), CY + R * share * angle.sin())
}

fn polygon(axes: usize, share: impl Fn(usize) -> f64) -> String {
    let mut points = String::new();
    for axis in 0..axes {
        let (x, y) = point(axis, axes, share(axis));
        let _ = write!(points, "{}{x:.1},{y:.1}", if axis == 0 { "" } else { " " });
    }
    points
}

/// A name in lines of about [`LABEL_CHARS`] characters, cut at spaces (a longer word stays
/// whole), at most [`LABEL_LINES`] (the last one takes the rest).
fn wrap(name: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in name.split_whitespace() {
        let full = lines.len() == LABEL_LINES;
        match lines.last_mut() {
            Some(line) if full || line.chars().count() + 1 + word.chars().count() <= LABEL_CHARS => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// The chart at 100 % of its container's width (its `viewBox` keeps the proportions), with a
/// `<title>` and a `<desc>`; a value that is not finite is drawn at 0, one past the range at
/// its edge. Fewer than 3 axes draw the grid and labels only.
pub fn radar(chart: &Radar<'_>) -> String {
    let axes = &chart.axes[..chart.axes.len().min(MAX_RADAR_AXES)];
    let n = axes.len();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart radar" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="radar-title radar-desc" font-family="system-ui, sans-serif" font-size="{FONT}"><title id="radar-title">{}</title><desc id="radar-desc">{}</desc>"#,
        svg_text(chart.title),
        svg_text(chart.description)
    );
    if n >= 3 {
        for ring in 1..=4 {
            let _ = write!(
                svg,
                r#"<polygon points="{}" fill="none" stroke="{GRID}" stroke-width="1"/>"#,
                polygon(n, |_| f64::from(ring) / 4.0)
            );
        }
        for axis in 0..n {
            let (x, y) = point(axis, n, 1.0);
            let _ =
                write!(svg, r#"<line x1="{CX}" y1="{CY}" x2="{x:.1}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/>"#);
        }
        let max = if chart.max.is_finite() && chart.max > 0.0 { chart.max } else { 1.0 };
        for (at, series) in chart.series.iter().take(MAX_RADAR_SERIES).enumerate() {
            let colour = SERIES_COLOURS[at];
            let share = |axis: usize| {
                let value = series.values.get(axis).copied().filter(|value| value.is_finite()).unwrap_or(0.0);
                (value / max).clamp(0.0, 1.0)
            };
            let (fill, dash) = if at == 0 {
                (r#"fill-opacity="0.2""#, "")
            } else {
                (r#"fill-opacity="0""#, r#" stroke-dasharray="8 5""#)
            };
            let _ = write!(
                svg,
                r#"<polygon points="{}" fill="{colour}" {fill} stroke="{colour}" stroke-width="3"{dash}/>"#,
                polygon(n, share)
            );
        }
    }
    for (axis, name) in axes.iter().enumerate() {
        let (x, y) = point(axis, n.max(1), 1.12);
        let anchor = if (x - CX).abs() < 1.0 {
            "middle"
        } else if x > CX {
            "start"
        } else {
            "end"
        };
        let lines = wrap(name);
        // Above the centre, the block ends at the axis' end; below, it starts there.
        let line_h = FONT * 1.15;
        let first_y = if y < CY - 1.0 { y - line_h * (lines.len() as f64 - 1.0) } else { y + FONT * 0.8 };
        let _ = write!(svg, r#"<text x="{x:.1}" y="{first_y:.1}" text-anchor="{anchor}" fill="{INK}">"#);
        for (at, line) in lines.iter().enumerate() {
            let dy = if at == 0 { 0.0 } else { line_h };
            let _ = write!(svg, r#"<tspan x="{x:.1}" dy="{dy:.1}">{}</tspan>"#, svg_text(line));
        }
        svg.push_str("</text>");
    }
    let mut legend_x = 20.0;
    for (at, series) in chart.series.iter().take(MAX_RADAR_SERIES).enumerate() {
        let colour = SERIES_COLOURS[at];
        let dash = if at == 0 { "" } else { r#" stroke-dasharray="8 5""# };
        let _ = write!(
            svg,
            r#"<line x1="{legend_x}" y1="{y}" x2="{:.0}" y2="{y}" stroke="{colour}" stroke-width="3"{dash}/><text x="{:.0}" y="{:.0}" fill="{INK}">{}</text>"#,
            legend_x + 28.0,
            legend_x + 36.0,
            H - 20.0 + 5.0,
            svg_text(series.label),
            y = H - 20.0,
        );
        legend_x += 60.0 + 11.0 * series.label.chars().count().min(MAX_TEXT_CHARS) as f64;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(axes: Vec<&'a str>, series: Vec<RadarSeries<'a>>) -> String {
        radar(&Radar { title: "Maturité <IA>", description: "cinq axes", axes, max: 100.0, series })
    }

    #[test]
    fn two_series_over_five_axes() {
        let svg = chart(
            vec!["Données", "Compétences", "Cas d'usage", "Infrastructure", "Gouvernance"],
            vec![
                RadarSeries { label: "Entreprise", values: vec![100.0, 50.0, 0.0, 25.0, 75.0] },
                RadarSeries { label: "Pairs", values: vec![50.0; 5] },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"viewBox="0 0 600 480" width="100%""#));
        assert!(
            svg.contains(
                "<title id=\"radar-title\">Maturité &lt;IA&gt;</title><desc id=\"radar-desc\">cinq axes</desc>"
            )
        );
        // The top axis at the rim for 100, the centre for 0.
        assert!(svg.contains(&format!(r#"points="{CX:.1},{:.1} "#, CY - R)));
        assert!(svg.contains(&format!("{CX:.1},{CY:.1} ")) || svg.contains(&format!(" {:.1},{:.1}", CX, CY)));
        assert_eq!(svg.matches("<polygon").count(), 4 + 2);
        assert_eq!(svg.matches("stroke-dasharray").count(), 2, "the second series and its legend");
        assert!(svg.contains("Cas d&#39;usage"));
        assert!(svg.contains(">Entreprise</text>") && svg.contains(">Pairs</text>"));
    }

    #[test]
    fn long_names_wrap_at_spaces() {
        assert_eq!(wrap("Gouvernance et conformité"), ["Gouvernance", "et conformité"]);
        assert_eq!(wrap("Données"), ["Données"]);
        assert_eq!(wrap("  "), Vec::<String>::new());
        let long = "un deux trois quatre cinq six sept huit neuf dix onze douze treize";
        assert_eq!(wrap(long).len(), LABEL_LINES, "the last line takes the rest");
    }

    #[test]
    fn colours_meet_wcag_aa() {
        fn luminance(hex: &str) -> f64 {
            let channel = |at: usize| {
                let c = f64::from(u8::from_str_radix(&hex[at..at + 2], 16).expect("hex")) / 255.0;
                if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
            };
            0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
        }
        for colour in SERIES_COLOURS.iter().chain([&GRID, &INK]) {
            let contrast = 1.05 / (luminance(colour) + 0.05);
            assert!(contrast >= 4.5, "{colour}: {contrast:.2}");
        }
    }

    #[test]
    fn any_input_is_bounded() {
        let many: Vec<&str> = (0..50).map(|_| "x").collect();
        let svg = chart(
            many,
            (0..5).map(|_| RadarSeries { label: "s", values: vec![f64::NAN, f64::INFINITY, -5.0, 1e300] }).collect(),
        );
        assert_eq!(svg.matches("<text").count(), MAX_RADAR_AXES + MAX_RADAR_SERIES);
        assert_eq!(svg.matches("<tspan").count(), MAX_RADAR_AXES);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let few = chart(vec!["a", "b"], vec![RadarSeries { label: "s", values: vec![1.0] }]);
        assert_eq!(few.matches("<polygon").count(), 0);
        assert!(chart(vec![], vec![]).ends_with("</svg>"));
    }
}
