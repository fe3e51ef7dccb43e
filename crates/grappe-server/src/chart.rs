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
    fn empty_chart_is_valid() {
        let chart = BarChart { title: "t", description: "d", legend: ["a", "b", "c"], bars: vec![] };
        assert!(horizontal_bars(&chart).contains("</svg>"));
    }
}
