//! bench/sched: one scheduling pass of the live engine with 10,000 pending and 1,000 running
//! jobs on 1,000 nodes of 8 GPUs; the time per pass and per decision. Run with
//! `cargo bench -p grappe-sched --bench pass`.

use std::hint::black_box;
use std::time::Instant;

use grappe_sched::engine::{EngineConfig, Node, PendingJob, ProjectState, Resources, RunningJob, Snapshot, schedule};

fn gpus(count: u32) -> Resources {
    Resources { cpus: 8 * count, gpus: count, memory_mb: 64_000 * u64::from(count) }
}

fn main() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let nodes: Vec<Node> =
        (0..1000).map(|i| Node { name: format!("gpu{i:04}"), partition: "gpu".into(), capacity: gpus(8) }).collect();
    let qos = ["dev", "normal", "long"];
    // 1,000 running jobs: most nodes nearly full, a few GPUs free here and there.
    let running: Vec<RunningJob> = (0..1000)
        .map(|i| RunningJob {
            id: i,
            project: next(50),
            qos: qos[next(3) as usize].into(),
            node: i as usize,
            request: gpus(6 + next(3) as u32),
            start_s: next(3600) as i64,
            time_limit_s: 3600 + next(72_000) as i64,
            stopping: false,
        })
        .collect();
    let projects: Vec<ProjectState> = (0..50)
        .map(|id| ProjectState {
            id,
            share: 0.02,
            usage_share: next(40) as f64 / 1000.0,
            allocation_used: next(130) as f64 / 100.0,
        })
        .collect();
    let pending: Vec<PendingJob> = (10_000..20_000)
        .map(|id| PendingJob {
            id,
            user: next(500),
            project: next(50),
            qos: qos[next(3) as usize].into(),
            partition: None,
            request: gpus(1 + next(8) as u32),
            time_limit_s: 600 + next(70_000) as i64,
            submit_s: next(3600) as i64,
        })
        .collect();
    let config = EngineConfig::default();
    let snapshot = Snapshot { now_s: 3600, nodes: &nodes, running: &running, pending: &pending, projects: &projects };
    let warm = schedule(&config, &snapshot);
    let passes = 20;
    let started = Instant::now();
    for _ in 0..passes {
        black_box(schedule(&config, black_box(&snapshot)));
    }
    let per_pass = started.elapsed().as_secs_f64() / f64::from(passes);
    println!("| pending | running | nodes | started | preempted | per pass ms | per decision us | passes/s |");
    println!("|---------|---------|-------|---------|-----------|-------------|-----------------|----------|");
    println!(
        "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
        pending.len(),
        running.len(),
        nodes.len(),
        warm.start.len(),
        warm.preempt.len(),
        per_pass * 1e3,
        per_pass * 1e6 / pending.len() as f64,
        1.0 / per_pass
    );
}
