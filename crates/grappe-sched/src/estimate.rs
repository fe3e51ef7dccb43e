//! Estimated start times of pending jobs, as Slurm's `squeue --start` gives them, but from the
//! live engine's own policy: the engine's passes ([`schedule`]) replayed forward from a
//! snapshot, with every running job ending at its time limit and nothing new arriving. Time
//! limits bound the estimate from above in that world: a job that ends early only brings starts
//! forward (as in Slurm, a later job with a higher priority can push it back).
//!
//! Jobs already stopping, or past their time limit, are taken as gone (their resources come back
//! within the grace period).
//! A job that a pass would preempt goes back to the queue, as the live service requeues it. A
//! job that no replayed pass starts within `max_passes` passes (a job too large for any node,
//! one of a project outside its allocation's period) has no estimate.

use crate::engine::{EngineConfig, PendingJob, RunningJob, Snapshot, schedule};

/// Each pending job's estimated start (Unix seconds), for those a replay starts.
pub fn estimate_starts(config: &EngineConfig, snapshot: &Snapshot<'_>, max_passes: usize) -> Vec<(u64, i64)> {
    let mut now = snapshot.now_s;
    // Jobs stopping, or past their time limit, are taken as ending now.
    let end = |job: &RunningJob| job.start_s + job.time_limit_s.max(1);
    let mut running: Vec<RunningJob> =
        snapshot.running.iter().filter(|job| !job.stopping && end(job) > now).cloned().collect();
    let mut pending = snapshot.pending.to_vec();
    let mut starts = Vec::new();
    for _ in 0..max_passes {
        if pending.is_empty() {
            break;
        }
        let pass = Snapshot {
            now_s: now,
            nodes: snapshot.nodes,
            running: &running,
            pending: &pending,
            projects: snapshot.projects,
        };
        let decisions = schedule(config, &pass);
        for victim in &decisions.preempt {
            let Some(at) = running.iter().position(|job| job.id == *victim) else { continue };
            let job = running.remove(at);
            starts.retain(|(id, _)| *id != job.id);
            let requeued = snapshot.pending.iter().find(|queued| queued.id == job.id).cloned().unwrap_or(PendingJob {
                id: job.id,
                user: 0,
                project: job.project,
                qos: job.qos,
                partition: None,
                request: job.request,
                time_limit_s: job.time_limit_s,
                submit_s: job.start_s,
            });
            pending.push(requeued);
        }
        let started = !decisions.start.is_empty();
        for (id, node) in decisions.start {
            let Some(at) = pending.iter().position(|job| job.id == id) else { continue };
            let job = pending.remove(at);
            running.push(RunningJob {
                id: job.id,
                project: job.project,
                qos: job.qos.clone(),
                node,
                request: job.request,
                start_s: now,
                time_limit_s: job.time_limit_s,
                stopping: false,
            });
            starts.push((id, now));
        }
        if started || !decisions.preempt.is_empty() {
            // Another pass at the same time, as the live loop does, until nothing changes.
            continue;
        }
        let Some(next) = running.iter().map(end).filter(|at| *at > now).min() else { break };
        now = next;
        running.retain(|job| end(job) > now);
    }
    starts.retain(|(id, _)| snapshot.pending.iter().any(|queued| queued.id == *id));
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Node, ProjectState, Resources};

    fn cpus(count: u32) -> Resources {
        Resources { cpus: count, gpus: 0, memory_mb: 1000 * u64::from(count) }
    }

    fn pending(id: u64, count: u32, time_limit_s: i64, submit_s: i64) -> PendingJob {
        PendingJob {
            id,
            user: 1,
            project: 1,
            qos: "normal".into(),
            partition: None,
            request: cpus(count),
            time_limit_s,
            submit_s,
        }
    }

    /// Job 1, of `count` CPUs, started at `start_s` on the one node.
    fn running(count: u32, start_s: i64, time_limit_s: i64, stopping: bool) -> RunningJob {
        RunningJob {
            id: 1,
            project: 1,
            qos: "normal".into(),
            node: 0,
            request: cpus(count),
            start_s,
            time_limit_s,
            stopping,
        }
    }

    #[test]
    fn jobs_start_as_running_ones_reach_their_limits_with_backfill() {
        let nodes = [Node { name: "n".into(), partition: "cpu".into(), capacity: cpus(4) }];
        let projects = [ProjectState { id: 1, share: 1.0, usage_share: 0.0, allocation_used: 0.0 }];
        // 3 of 4 CPUs busy until 1,100; 4 of them free only then.
        let running = [running(3, 1000, 100, false)];
        let queue = [
            pending(2, 4, 50, 900),  // waits for the whole node: at 1,100
            pending(3, 4, 50, 901),  // after it: at 1,150
            pending(4, 1, 60, 902),  // fits beside job 1, ends before 1,100: backfilled now
            pending(5, 1, 500, 903), // would delay job 2: after job 3, at 1,200
            pending(6, 8, 10, 904),  // never fits: no estimate
        ];
        let snapshot = Snapshot { now_s: 1040, nodes: &nodes, running: &running, pending: &queue, projects: &projects };
        let mut starts = estimate_starts(&EngineConfig::default(), &snapshot, 100);
        starts.sort();
        assert_eq!(starts, vec![(2, 1100), (3, 1150), (4, 1040), (5, 1200)]);
    }

    #[test]
    fn a_job_already_stopping_gives_its_resources_back_at_once() {
        let nodes = [Node { name: "n".into(), partition: "cpu".into(), capacity: cpus(2) }];
        let projects = [ProjectState { id: 1, share: 1.0, usage_share: 0.0, allocation_used: 0.0 }];
        let running = [running(2, 0, 10_000, true)];
        let queue = [pending(2, 2, 60, 5)];
        let snapshot = Snapshot { now_s: 100, nodes: &nodes, running: &running, pending: &queue, projects: &projects };
        assert_eq!(estimate_starts(&EngineConfig::default(), &snapshot, 100), vec![(2, 100)]);
    }
}
