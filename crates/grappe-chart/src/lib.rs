//! Charts as SVG, drawn on the server: no JavaScript, readable without a stylesheet, with a
//! title and description for screen readers. Pure functions of their inputs.

use std::fmt::Write;

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

fn scaled(value: i64, max: i64) -> i64 {
    if max <= 0 || value <= 0 {
        return 0;
    }
    // At least 2 px, so a small but non-zero amount stays visible.
    ((value as f64 / max as f64) * BAR_AREA_W as f64).round().max(2.0) as i64
}

/// One row per bar: its label on a line of its own (long labels are never clipped), the bar
/// under it, the figure after the bar. Bars share one linear scale.
pub fn horizontal_bars(chart: &BarChart<'_>) -> String {
    let height = TOP + ROW_H * chart.bars.len() as i64;
    let max = chart.bars.iter().map(|bar| bar.whole).max().unwrap_or(0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title chart-desc" font-family="system-ui, sans-serif" font-size="15"><title id="chart-title">{}</title><desc id="chart-desc">{}</desc>"#,
        escape(chart.title),
        escape(chart.description)
    );
    let mut legend_x = 0;
    for (entry, colour) in chart.legend.iter().zip(COLOURS) {
        let _ = write!(
            svg,
            r##"<rect x="{legend_x}" y="6" width="14" height="14" fill="{colour}"/><text x="{}" y="18" fill="#1a1a1a">{}</text>"##,
            legend_x + 20,
            escape(entry)
        );
        legend_x += 36 + 9 * entry.chars().count() as i64;
    }
    for (row, bar) in chart.bars.iter().enumerate() {
        let label_y = TOP + ROW_H * row as i64 + 14;
        let bar_y = label_y + 8;
        let whole_w = scaled(bar.whole, max);
        let part_w = scaled(bar.part.min(bar.whole), max).min(whole_w);
        let inner_w = scaled(bar.inner_part.min(bar.part), max).min(whole_w);
        let _ = write!(
            svg,
            r##"<g><text x="0" y="{label_y}" fill="#1a1a1a">{}</text><rect x="0" y="{bar_y}" width="{whole_w}" height="{BAR_H}" fill="{}"/><rect x="0" y="{bar_y}" width="{part_w}" height="{BAR_H}" fill="{}"/><rect x="0" y="{bar_y}" width="{inner_w}" height="{BAR_H}" fill="{}"/><text x="{}" y="{}" fill="#1a1a1a" font-weight="600">{}</text></g>"##,
            escape(&bar.label),
            COLOURS[0],
            COLOURS[1],
            COLOURS[2],
            whole_w + 8,
            bar_y + 16,
            escape(&bar.value_text)
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

/// A round tick step for a span: 1, 2 or 5 times a power of ten, about five ticks.
fn tick_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|step| *step >= raw).unwrap_or(10.0 * power)
}

fn tick_text(value: f64) -> String {
    if value.abs() >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value.abs() >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn axes(svg: &mut String, title: &str, x_label: &str, y_label: &str, x_max: f64, y_max: f64) {
    let _ = write!(
        svg,
        r##"<text x="{PLOT_LEFT}" y="20" font-weight="600" fill="#1a1a1a">{}</text><line x1="{PLOT_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/><line x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{PLOT_LEFT}" y2="{bottom}" stroke="#555"/><text x="{}" y="{}" text-anchor="middle" fill="#333">{}</text><text x="14" y="{}" text-anchor="middle" fill="#333" transform="rotate(-90 14 {})">{}</text>"##,
        escape(title),
        PLOT_LEFT + PLOT_W / 2.0,
        PLOT_TOP + PLOT_H + 38.0,
        escape(x_label),
        PLOT_TOP + PLOT_H / 2.0,
        PLOT_TOP + PLOT_H / 2.0,
        escape(y_label),
        bottom = PLOT_TOP + PLOT_H,
        right = PLOT_LEFT + PLOT_W,
    );
    for (max, vertical) in [(x_max, false), (y_max, true)] {
        let step = tick_step(max);
        let mut value = 0.0;
        while value <= max * 1.0001 && max > 0.0 {
            let (x, y) = if vertical {
                (PLOT_LEFT, PLOT_TOP + PLOT_H - value / max * PLOT_H)
            } else {
                (PLOT_LEFT + value / max * PLOT_W, PLOT_TOP + PLOT_H)
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
            value += step;
        }
    }
}

fn panel_open(svg: &mut String, title: &str) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {PANEL_W} {PANEL_H}" width="{PANEL_W}" height="{PANEL_H}" role="img" font-family="system-ui, sans-serif" font-size="13"><title>{}</title><rect width="100%" height="100%" fill="#fff"/>"##,
        escape(title)
    );
}

/// Lines over a shared x axis starting at 0; y from 0 to the largest value.
pub fn line_chart(chart: &LineChart<'_>) -> String {
    let all = chart.series.iter().flat_map(|series| series.points.iter());
    let x_max = all.clone().map(|(x, _)| *x).fold(0.0, f64::max);
    let y_max = all.map(|(_, y)| *y).fold(0.0, f64::max).max(1e-9);
    let mut svg = String::new();
    panel_open(&mut svg, chart.title);
    axes(&mut svg, chart.title, chart.x_label, chart.y_label, x_max, y_max);
    let mut legend_x = PLOT_LEFT + PLOT_W - 10.0;
    for series in chart.series.iter().rev() {
        let mut path = String::new();
        for (i, (x, y)) in series.points.iter().enumerate() {
            let px = PLOT_LEFT + if x_max > 0.0 { x / x_max * PLOT_W } else { 0.0 };
            let py = PLOT_TOP + PLOT_H - y / y_max * PLOT_H;
            let _ = write!(path, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" });
        }
        let _ = write!(
            svg,
            r##"<path d="{path}" fill="none" stroke="{}" stroke-width="1.5"/><text x="{legend_x:.1}" y="20" text-anchor="end" fill="{}">{}</text>"##,
            series.colour,
            series.colour,
            escape(series.label)
        );
        legend_x -= 12.0 + 8.0 * series.label.chars().count() as f64;
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

pub fn histogram(chart: &Histogram<'_>) -> String {
    let y_max = chart.bins.iter().map(|(_, count)| *count).max().unwrap_or(0).max(1) as f64;
    let mut svg = String::new();
    panel_open(&mut svg, chart.title);
    axes(&mut svg, chart.title, chart.x_label, chart.y_label, 0.0, y_max);
    let slot = PLOT_W / chart.bins.len().max(1) as f64;
    for (i, (label, count)) in chart.bins.iter().enumerate() {
        let height = *count as f64 / y_max * PLOT_H;
        let x = PLOT_LEFT + i as f64 * slot;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="{}"><title>{}: {count}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#333">{}</text>"##,
            x + 2.0,
            PLOT_TOP + PLOT_H - height,
            (slot - 4.0).max(1.0),
            COLOURS[1],
            escape(label),
            x + slot / 2.0,
            PLOT_TOP + PLOT_H + 16.0,
            escape(label)
        );
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
    let clean = |share: f64| if share.is_finite() { share.max(0.0) } else { 9.99 };
    let (used, running, reserved) = (clean(parts.used), clean(parts.running), clean(parts.reserved));
    let now = used + running;
    let colour = if now >= 1.0 {
        "#b42318"
    } else if now >= 0.8 {
        "#b54708"
    } else {
        COLOURS[1]
    };
    let finite = parts.used.is_finite() && parts.running.is_finite();
    let mut text = if finite { format!("{:.0} %", now * 100.0) } else { "∞".to_owned() };
    if reserved > 0.0 && parts.reserved.is_finite() {
        text.push_str(&format!(" (+{:.0} %)", reserved * 100.0));
    }
    // Cumulative widths, each segment clamped to the track.
    let edge = |share: f64| share.min(1.0) * W;
    let (x1, x2, x3) = (edge(used), edge(now), edge(now + reserved));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="gauge" viewBox="0 0 340 44" width="340" height="44" role="img" aria-label="{}: {text}"><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e3e6ea"/><rect width="2" height="6" fill="#8a94a3"/></pattern></defs><rect x="0" y="4" width="{W}" height="16" rx="3" fill="#e3e6ea"/>"##,
        escape(label)
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
            escape(word)
        ));
        x += 14.0 + 7.0 * word.chars().count() as f64 + 14.0;
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
