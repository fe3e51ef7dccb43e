//! Every chart renders any input in bounded time with a bounded SVG: regression tests for the
//! inputs that broke it (a metric of `f64::MAX` made the tick loop of `axes` endless, 400,000
//! points made a page of megabytes), and a property test over random inputs from a seeded
//! generator of our own.

use std::time::{Duration, Instant};

use super::*;

/// SplitMix64: small, seeded, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value from everywhere an `f64` can be: ordinary, huge, tiny, negative, duplicated, not
    /// finite, or any bit pattern at all.
    fn value(&mut self) -> f64 {
        const SPECIAL: [f64; 12] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            0.0,
            -0.0,
            1e300,
            -1e300,
            1.797_693_134_862_315_7e308,
        ];
        match self.below(10) {
            0 => SPECIAL[self.below(SPECIAL.len() as u64) as usize],
            1 => f64::from_bits(self.next()),
            2 => (self.unit() - 0.5) * 10f64.powi(self.below(600) as i32 - 300),
            3 => 1.0,
            _ => self.unit() * 10.0,
        }
    }

    fn points(&mut self, count: usize) -> Vec<(f64, f64)> {
        // Mostly a plain rising series with a few wild values; sometimes any value anywhere.
        let wild = self.below(3) == 0;
        let mut points = Vec::with_capacity(count);
        for i in 0..count {
            let (mut x, mut y) = if wild { (self.value(), self.value()) } else { (i as f64, self.unit() * 100.0) };
            if self.below(50) == 0 {
                x = self.value();
            }
            if self.below(50) == 0 {
                y = self.value();
            }
            points.push((x, y));
        }
        points
    }

    /// How many points: often none or a few, sometimes hundreds of thousands.
    fn count(&mut self) -> usize {
        match self.below(20) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 100_000 + self.below(200_000) as usize,
            _ => self.below(3_000) as usize,
        }
    }
}

/// Loose: these run unoptimised, on a shared machine.
const TIME_BOUND: Duration = Duration::from_secs(1);

/// What every chart must be: one well-formed SVG document, with no coordinate or figure that is
/// not a number, no line longer than [`MAX_LINE_POINTS`] points, and a bounded size.
fn check_svg(svg: &str, size_bound: usize, what: &str) {
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{what}: not an SVG document");
    assert!(svg.len() <= size_bound, "{what}: {} bytes, more than {size_bound}", svg.len());
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{what}: a figure that is not a number");
    for path in svg.split(r#"<path d=""#).skip(1) {
        let d = path.split('"').next().unwrap_or("");
        assert!(d.matches('L').count() < MAX_LINE_POINTS, "{what}: a line of more than {MAX_LINE_POINTS} points");
    }
}

fn timed<T>(what: &str, render: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = render();
    let took = started.elapsed();
    assert!(took < TIME_BOUND, "{what} took {took:?}");
    out
}

/// A panel has its frame, at most [`MAX_TICKS`] ticks a side, titles and labels of at most
/// [`MAX_TEXT_CHARS`] characters (each at most 6 bytes once escaped), and its lines.
const PANEL_BOUND: usize = 16 * 1024 + 8 * MAX_TEXT_CHARS * 6;
const LINE_BOUND: usize = MAX_LINE_POINTS * 16 + 1024;

#[test]
fn a_metric_of_f64_max_renders() {
    // The value that took the server down: 1.7976931348623157e308, the largest f64.
    let chart = LineChart {
        title: "loss",
        x_label: "step",
        y_label: "loss",
        series: vec![Series { label: "loss", colour: "#2f68b1", points: vec![(1.0, f64::MAX)] }],
    };
    let svg = timed("f64::MAX", || line_chart(&chart));
    check_svg(&svg, PANEL_BOUND + LINE_BOUND, "f64::MAX");
    assert!(svg.contains(">1.5e308<"), "round ticks up to the value: {svg}");
    // One point: a dot, at the top right.
    assert!(
        svg.contains(&format!(r#"<circle cx="{:.1}" cy="{PLOT_TOP:.1}""#, PLOT_LEFT + PLOT_W)),
        "at the top: {svg}"
    );
    // Both ends of the line of f64s on one chart: the span overflows, the chart does not.
    let both = LineChart {
        series: vec![Series { label: "x", colour: "#000", points: vec![(f64::MIN, f64::MIN), (f64::MAX, f64::MAX)] }],
        ..chart
    };
    let svg = timed("f64::MIN..f64::MAX", || line_chart(&both));
    check_svg(&svg, PANEL_BOUND + LINE_BOUND, "f64::MIN..f64::MAX");
    assert!(svg.contains(&format!(
        "M{PLOT_LEFT:.1},{:.1} L{:.1},{PLOT_TOP:.1}",
        PLOT_TOP + PLOT_H,
        PLOT_LEFT + PLOT_W
    )));
}

#[test]
fn non_finite_points_are_left_out_and_an_empty_chart_has_axes() {
    let points = vec![(f64::NAN, 1.0), (0.0, f64::INFINITY), (1.0, f64::NEG_INFINITY), (2.0, 4.0), (4.0, 2.0)];
    let chart = LineChart {
        title: "t",
        x_label: "x",
        y_label: "y",
        series: vec![Series { label: "s", colour: "#000", points }],
    };
    let svg = line_chart(&chart);
    check_svg(&svg, PANEL_BOUND + LINE_BOUND, "non-finite");
    assert_eq!(svg.matches(" L").count(), 1, "two finite points, one segment: {svg}");
    for series in [vec![], vec![Series { label: "s", colour: "#000", points: vec![] }]] {
        let svg = line_chart(&LineChart { title: "t", x_label: "x", y_label: "y", series });
        check_svg(&svg, PANEL_BOUND, "empty");
        assert!(svg.contains(">0<") && svg.contains(">1<"), "axes from 0 to 1: {svg}");
    }
}

#[test]
fn ticks_are_few_and_finite_for_any_range() {
    let ranges = [
        (0.0, 1.0),
        (0.0, f64::MAX),
        (f64::MIN, f64::MAX),
        (f64::MIN, 0.0),
        (-1e-300, 5e-324),
        (0.0, 5e-324),
        (-3.0, 7.0),
        (1e15, 1e15 + 0.125),
    ];
    for (lo, hi) in ranges {
        let scale = Scale::covering([lo, hi].into_iter());
        let ticks = scale.ticks();
        assert!((2..=MAX_TICKS).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
        assert!(ticks.iter().all(|tick| tick.is_finite()), "{lo}..{hi}: {ticks:?}");
        assert!(ticks.iter().all(|tick| (0.0..=1.0).contains(&scale.fraction(*tick))), "{lo}..{hi}");
    }
    assert_eq!(Scale::covering([-3.0, 7.0].into_iter()).ticks(), [-2.0, 0.0, 2.0, 4.0, 6.0]);
    assert_eq!(tick_text(f64::MAX), "1.8e308");
    assert_eq!(tick_text(-0.0), "0");
    assert_eq!(tick_text(0.000_25), "2.5e-4");
}

#[test]
fn four_hundred_thousand_points_draw_at_most_a_thousand() {
    let points: Vec<(f64, f64)> = (0..400_000).map(|i| (f64::from(i), (f64::from(i) / 1000.0).sin())).collect();
    let chart = LineChart {
        title: "loss",
        x_label: "step",
        y_label: "loss",
        series: vec![Series { label: "loss", colour: "#2f68b1", points }],
    };
    let svg = timed("400,000 points", || line_chart(&chart));
    check_svg(&svg, PANEL_BOUND + LINE_BOUND, "400,000 points");
    assert_eq!(svg.matches(" L").count(), MAX_LINE_POINTS - 1);
}

#[test]
fn long_texts_many_bars_and_many_bins_are_bounded() {
    let long = "é<".repeat(100_000);
    let bars: Vec<Bar> = (0..10_000)
        .map(|i| {
            // Long texts on a few bars (each is 300 kB), short ones on the rest.
            let words = if i < 3 { long.clone() } else { i.to_string() };
            Bar { label: words.clone(), whole: i64::MAX - i, part: i64::MIN, inner_part: i, value_text: words }
        })
        .collect();
    let svg = timed("bars", || {
        horizontal_bars(&BarChart { title: &long, description: &long, legend: [&long, &long, &long], bars })
    });
    check_svg(&svg, MAX_BARS * (1024 + 2 * MAX_TEXT_CHARS * 6) + PANEL_BOUND, "bars");
    assert_eq!(svg.matches("<g>").count(), MAX_BARS);
    let bins: Vec<(String, u64)> = (0..1_000_000).map(|i| (format!("{i}"), u64::MAX - i)).collect();
    let svg = timed("bins", || histogram(&Histogram { title: &long, x_label: "x", y_label: "y", bins }));
    check_svg(&svg, MAX_BINS * 512 + PANEL_BOUND, "bins");
    assert_eq!(svg.matches("<rect x=").count(), MAX_BINS);
}

#[test]
fn every_chart_renders_random_inputs_in_bounded_time_and_size() {
    let mut rng = Rng(0x6772_6170_7065);
    let mut points_seen = 0usize;
    for case in 0..300 {
        let series_count = rng.below(4) as usize;
        let series: Vec<Series<'_>> = (0..series_count)
            .map(|_| {
                let count = rng.count();
                points_seen += count;
                Series { label: "s", colour: "#2f68b1", points: rng.points(count) }
            })
            .collect();
        let chart = LineChart { title: "t", x_label: "x", y_label: "y", series };
        let what = format!("case {case}: line chart");
        let line = timed(&what, || line_chart(&chart));
        check_svg(&line, PANEL_BOUND + series_count * LINE_BOUND, &what);

        let bin_count = if rng.below(10) == 0 { rng.below(200_000) } else { rng.below(50) };
        let bins: Vec<(String, u64)> = (0..bin_count).map(|i| (i.to_string(), rng.next() >> rng.below(64))).collect();
        let what = format!("case {case}: histogram of {bin_count} bins");
        let histogram = timed(&what, || histogram(&Histogram { title: "h", x_label: "x", y_label: "y", bins }));
        check_svg(&histogram, PANEL_BOUND + MAX_BINS * 512, &what);

        let bars: Vec<Bar> = (0..rng.below(300))
            .map(|_| Bar {
                label: "b".into(),
                whole: rng.next() as i64,
                part: rng.next() as i64,
                inner_part: rng.next() as i64,
                value_text: "v".into(),
            })
            .collect();
        let what = format!("case {case}: bars");
        let bars = timed(&what, || horizontal_bars(&BarChart { title: "t", description: "d", legend: ["a"; 3], bars }));
        check_svg(&bars, PANEL_BOUND + MAX_BARS * 1024, &what);

        let parts = GaugeParts { used: rng.value(), running: rng.value(), reserved: rng.value() };
        let what = format!("case {case}: gauge {parts:?}");
        let gauge = timed(&what, || gauge(parts, "g", ["u", "r", "s"]));
        check_svg(&gauge, 4096, &what);

        let what = format!("case {case}: stack");
        let stacked = timed(&what, || stack(&[line, histogram]));
        check_svg(&stacked, 2 * PANEL_BOUND + MAX_SERIES * LINE_BOUND + MAX_BINS * 512, &what);
    }
    assert!(points_seen > 1_000_000, "the cases held {points_seen} points in all");
}

#[test]
fn millions_of_points_render_in_bounded_time() {
    let points: Vec<(f64, f64)> = (0..2_000_000).map(|i| (f64::from(i), f64::from(i % 977))).collect();
    let chart = LineChart {
        title: "t",
        x_label: "x",
        y_label: "y",
        series: vec![Series { label: "s", colour: "#2f68b1", points }],
    };
    let started = Instant::now();
    let svg = line_chart(&chart);
    let took = started.elapsed();
    eprintln!("2,000,000 points: {took:?}, {} bytes of SVG", svg.len());
    assert!(took < 2 * TIME_BOUND, "2,000,000 points took {took:?}");
    check_svg(&svg, PANEL_BOUND + LINE_BOUND, "2,000,000 points");
}
