//! `grappe simulate`: replays an SWF trace through `grappe-sched` and prints the metrics, as
//! one JSON object with `--json`; `--plot` draws utilization, queue length and waits.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use grappe_chart as chart;
use grappe_sched::sim::{self, Policy, Sample, SimConfig, Summary};
use grappe_sched::swf;
use serde_json::json;

use crate::text;

#[derive(Clone, Copy, ValueEnum)]
enum PolicyArg {
    Fcfs,
    Easy,
    Conservative,
}

#[derive(Args)]
pub struct SimulateFlags {
    /// A Standard Workload Format trace.
    trace: PathBuf,
    /// The scheduling policy: first come first served, EASY backfilling, or conservative
    /// backfilling.
    #[arg(long, value_enum, default_value = "easy")]
    policy: PolicyArg,
    /// Order the queue by fair-share between users (field 12), 14-day half-life.
    #[arg(long)]
    fairshare: bool,
    /// Machine size in processors (default: the header's MaxProcs, else MaxNodes).
    #[arg(long)]
    nodes: Option<i64>,
    /// Print the metrics as one JSON object (durations in seconds).
    #[arg(long)]
    json: bool,
    /// Draw utilization and queue length over time, and the wait distribution, as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(flags: SimulateFlags) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&flags.trace).with_context(|| format!("reading {}", flags.trace.display()))?;
    let trace = swf::parse(&text).with_context(|| format!("{} is not a valid SWF trace", flags.trace.display()))?;
    let machine = sim::machine_procs(&trace, flags.nodes)?;
    let policy = match flags.policy {
        PolicyArg::Fcfs => Policy::Fcfs,
        PolicyArg::Easy => Policy::Easy,
        PolicyArg::Conservative => Policy::Conservative,
    };
    let mut config = SimConfig::new(policy);
    config.fairshare = flags.fairshare;
    config.record_samples = flags.plot.is_some();
    let started = Instant::now();
    let (jobs, skipped) = sim::prepare(&trace, machine);
    if flags.fairshare && jobs.iter().all(|job| job.user < 0) {
        eprintln!(
            "warning: the trace gives no user ids (field 12 is -1 throughout): fair-share sees one user, \
             and orders the queue as without --fairshare"
        );
    }
    let result = sim::simulate(&jobs, machine, &config);
    let wall_s = started.elapsed().as_secs_f64();
    let summary = sim::summarize(&jobs, &result, skipped);
    if let Some(path) = &flags.plot {
        let waits: Vec<i64> =
            jobs.iter().zip(&result.outcomes).map(|(job, outcome)| outcome.start_s - job.submit_s).collect();
        write_plot(path, &result.samples, machine, &waits, policy)?;
    }
    let output = json!({
        "trace": flags.trace.display().to_string(),
        "policy": policy.as_str(),
        "fairshare": flags.fairshare,
        "machine_procs": machine,
        "jobs": summary.jobs,
        "skipped": summary.skipped,
        "mean_wait_s": summary.mean_wait_s,
        "mean_bounded_slowdown": summary.mean_bounded_slowdown,
        "utilization": summary.utilization,
        "makespan_s": summary.makespan_s,
        "wait_p50_s": summary.wait_p50_s,
        "wait_p90_s": summary.wait_p90_s,
        "wait_p99_s": summary.wait_p99_s,
        "wait_max_s": summary.wait_max_s,
        "wall_s": wall_s,
        "jobs_per_s": if wall_s > 0.0 { summary.jobs as f64 / wall_s } else { 0.0 },
    });
    if flags.json {
        outln!("{output}");
    } else {
        print_human(&summary, policy, machine, wall_s);
    }
    Ok(())
}

fn print_human(summary: &Summary, policy: Policy, machine: i64, wall_s: f64) {
    let duration = text::human_duration;
    outln!("policy                 {} on {machine} processors", policy.as_str());
    outln!("jobs                   {} ({} skipped)", summary.jobs, summary.skipped);
    outln!("mean wait              {}", duration(summary.mean_wait_s.round() as i64));
    outln!(
        "wait p50 / p90 / p99   {} / {} / {}",
        duration(summary.wait_p50_s),
        duration(summary.wait_p90_s),
        duration(summary.wait_p99_s)
    );
    outln!("mean bounded slowdown  {:.2}", summary.mean_bounded_slowdown);
    outln!("utilization            {:.1} %", summary.utilization * 100.0);
    outln!("makespan               {}", duration(summary.makespan_s));
    outln!("replay                 {wall_s:.3} s");
}

/// Time-weighted means of a step function sampled at events, over `buckets` equal spans of
/// whole seconds (fewer when the samples span fewer seconds), as (days since the first sample,
/// mean) at each span's middle.
///
/// The spans' edges are integers computed once, so that each second counts in exactly one span
/// and a span's mean stays within the values it averages: with floating-point edges, a sample
/// falling on an edge (`17 / (34 / 400)` is 199.999...) once put all the time up to the next
/// sample into one span, and the utilization plot showed 170 %.
fn downsample(samples: &[Sample], buckets: usize, value: impl Fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return vec![] };
    let span_s = i128::from((last.time_s - first.time_s).max(1));
    let buckets = (buckets.max(1) as i128).min(span_s);
    // Seconds since the first sample where span `b` starts; span `buckets` is the end.
    let edge = |b: i128| (span_s * b / buckets) as i64;
    let mut sums = vec![0.0; buckets as usize];
    for pair in samples.windows(2) {
        let (from, to) = (pair[0].time_s - first.time_s, pair[1].time_s - first.time_s);
        let level = value(&pair[0]);
        let mut b = i128::from(from) * buckets / span_s;
        while b < buckets && edge(b) < to {
            let overlap = to.min(edge(b + 1)) - from.max(edge(b));
            if overlap > 0 {
                sums[b as usize] += level * overlap as f64;
            }
            b += 1;
        }
    }
    sums.iter()
        .enumerate()
        .map(|(b, sum)| {
            let (start, end) = (edge(b as i128), edge(b as i128 + 1));
            ((start + end) as f64 / 2.0 / 86_400.0, sum / (end - start) as f64)
        })
        .collect()
}

fn write_plot(path: &Path, samples: &[Sample], machine: i64, waits: &[i64], policy: Policy) -> anyhow::Result<()> {
    const BUCKETS: usize = 400;
    let utilization = downsample(samples, BUCKETS, |sample| sample.busy_procs as f64 / machine as f64 * 100.0);
    let queue = downsample(samples, BUCKETS, |sample| sample.queued as f64);
    let title = format!("Utilization ({})", policy.as_str());
    let utilization_panel = chart::line_chart(&chart::LineChart {
        title: &title,
        x_label: "days since the first submission",
        y_label: "% busy",
        series: vec![chart::Series { label: "utilization", colour: "#2f68b1", points: utilization }],
    });
    let queue_panel = chart::line_chart(&chart::LineChart {
        title: "Queue length",
        x_label: "days since the first submission",
        y_label: "jobs waiting",
        series: vec![chart::Series { label: "queued", colour: "#b1452f", points: queue }],
    });
    // Waits on a log scale: 0, then powers of ten.
    let edges = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let labels = ["0", "1 s", "10 s", "100 s", "17 min", "2.8 h", "28 h", "11 d+"];
    let mut bins: Vec<(String, u64)> = labels.iter().map(|label| (label.to_string(), 0)).collect();
    for wait in waits {
        let bin = edges.iter().rposition(|edge| wait >= edge).unwrap_or(0);
        bins[bin].1 += 1;
    }
    let wait_panel = chart::histogram(&chart::Histogram {
        title: "Wait before start",
        x_label: "wait, at least",
        y_label: "jobs",
        bins,
    });
    let svg = chart::stack(&[utilization_panel, queue_panel, wait_panel]);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(time_s: i64, busy_procs: i64) -> Sample {
        Sample { time_s, busy_procs, queued: 0 }
    }

    fn busy_percent(samples: &[Sample], machine: i64) -> Vec<(f64, f64)> {
        downsample(samples, 400, |sample| sample.busy_procs as f64 / machine as f64 * 100.0)
    }

    /// A sample at 17 s of a 34 s span falls on the edge of span 200 (of 400), which floating
    /// point put at 199.999...: the rest of the run went into one span, shown at 20,000 %.
    #[test]
    fn utilization_never_exceeds_the_machine_when_a_sample_falls_on_an_edge() {
        let samples = [sample(0, 4), sample(17, 4), sample(34, 0)];
        let points = busy_percent(&samples, 4);
        let highest = points.iter().map(|(_, percent)| *percent).fold(f64::NEG_INFINITY, f64::max);
        assert!(highest <= 100.0, "{highest} %");
        // Full all along: every span is at 100 %.
        assert!(!points.is_empty() && points.iter().all(|(_, percent)| *percent == 100.0), "{points:?}");
    }

    /// Random step functions of a machine never over-full: no span's mean goes past it, and the
    /// spans together keep the whole's busy time.
    #[test]
    fn spans_keep_the_time_weighted_mean() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..200 {
            let machine = 1 + next(64) as i64;
            let mut time_s = next(1000) as i64;
            let samples: Vec<Sample> = (0..1 + next(300))
                .map(|_| {
                    time_s += next(5000) as i64;
                    sample(time_s, next(machine as u64 + 1) as i64)
                })
                .collect();
            let points = busy_percent(&samples, machine);
            for (_, percent) in &points {
                assert!(*percent <= 100.0 + 1e-9 && *percent >= 0.0, "{percent} % on {samples:?}");
            }
            let busy: f64 = samples.windows(2).map(|p| (p[0].busy_procs * (p[1].time_s - p[0].time_s)) as f64).sum();
            let span_s = (samples[samples.len() - 1].time_s - samples[0].time_s).max(1) as f64;
            let mean = busy / machine as f64 * 100.0 / span_s;
            // Each span's length from its middle: twice the distance to the previous span's end.
            let (mut end_s, mut total) = (0.0, 0.0);
            for (day, percent) in &points {
                let length_s = 2.0 * (day * 86_400.0 - end_s);
                total += percent * length_s / span_s;
                end_s += length_s;
            }
            assert!((total - mean).abs() < 1e-6, "{total} against {mean}");
        }
    }
}
