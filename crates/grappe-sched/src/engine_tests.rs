//! The live engine: admission, priority, EASY on nodes, reasons, preemption; and properties on
//! random snapshots.

use crate::engine::{
    EngineConfig, LivePolicy, Node, PendingJob, ProjectState, Reason, Refusal, Resources, RunningJob, Snapshot, admit,
    decayed, fairshare_factor, schedule,
};

fn gpus(count: u32) -> Resources {
    Resources { cpus: 8 * count, gpus: count, memory_mb: 32_000 * u64::from(count) }
}

fn node(name: &str, gpu_count: u32) -> Node {
    Node { name: name.into(), partition: "gpu".into(), capacity: gpus(gpu_count) }
}

fn project(id: u64, usage_share: f64, allocation_used: f64) -> ProjectState {
    ProjectState { id, share: 0.5, usage_share, allocation_used }
}

fn pending(id: u64, project: u64, qos: &str, gpu_count: u32, time_limit_s: i64, submit_s: i64) -> PendingJob {
    PendingJob {
        id,
        user: 1,
        project,
        qos: qos.into(),
        partition: None,
        request: gpus(gpu_count),
        time_limit_s,
        submit_s,
    }
}

fn running(id: u64, qos: &str, node: usize, gpu_count: u32, start_s: i64, time_limit_s: i64) -> RunningJob {
    RunningJob { id, qos: qos.into(), node, request: gpus(gpu_count), start_s, time_limit_s, preempting: false }
}

fn reason_of(waiting: &[(u64, f64, Reason)], id: u64) -> Reason {
    waiting.iter().find(|(job, _, _)| *job == id).map(|(_, _, reason)| *reason).expect("job is waiting")
}

#[test]
fn admission_applies_qos_caps_and_the_125_percent_rule() {
    let config = EngineConfig::default();
    let fresh = project(1, 0.0, 0.2);
    assert!(admit(&config, "dev", 2 * 3600, &fresh).is_ok());
    assert!(matches!(admit(&config, "dev", 2 * 3600 + 1, &fresh), Err(Refusal::OverQosCap { .. })));
    assert!(admit(&config, "long", 100 * 3600, &fresh).is_ok());
    assert!(matches!(admit(&config, "gold", 60, &fresh), Err(Refusal::UnknownQos(_))));
    assert!(admit(&config, "normal", 60, &project(1, 0.0, 1.2)).is_ok(), "past 100 %: lowest priority, still accepted");
    let refused = admit(&config, "normal", 60, &project(1, 0.0, 1.26)).unwrap_err();
    assert_eq!(refused.to_string(), "the project has used 126 % of its allocation; submissions stop past 125 %");
}

#[test]
fn fairshare_is_slurms_classic_formula() {
    assert_eq!(fairshare_factor(0.0, 0.5), 1.0);
    assert_eq!(fairshare_factor(0.5, 0.5), 0.5);
    assert_eq!(fairshare_factor(1.0, 0.5), 0.25);
    assert_eq!(fairshare_factor(0.3, 0.0), 0.0);
}

#[test]
fn easy_on_nodes_backfills_without_delaying_the_head() {
    // One 4-GPU node, 2 GPUs busy until 100. Head A needs 4 (reserved at 100). B (2 GPUs, ends
    // at 50) backfills; C (2 GPUs, 500 s) would delay A, so it waits behind it.
    let nodes = [node("n1", 4)];
    let running = [running(1, "normal", 0, 2, 0, 100)];
    let projects = [project(7, 0.0, 0.0)];
    let pending =
        [pending(10, 7, "normal", 4, 3600, 0), pending(11, 7, "normal", 2, 50, 1), pending(12, 7, "normal", 2, 500, 2)];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &running, pending: &pending, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert_eq!(decisions.start, vec![(11, 0)]);
    assert_eq!(reason_of(&decisions.waiting, 10), Reason::Resources);
    assert_eq!(reason_of(&decisions.waiting, 12), Reason::Priority);
    assert!(decisions.preempt.is_empty());
}

#[test]
fn fcfs_starts_nothing_behind_a_blocked_job() {
    let nodes = [node("n1", 4)];
    let running = [running(1, "normal", 0, 2, 0, 100)];
    let projects = [project(7, 0.0, 0.0)];
    let pending = [pending(10, 7, "normal", 4, 3600, 0), pending(11, 7, "normal", 2, 50, 1)];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &running, pending: &pending, projects: &projects };
    let config = EngineConfig { policy: LivePolicy::Fcfs, ..EngineConfig::default() };
    let decisions = schedule(&config, &snapshot);
    assert!(decisions.start.is_empty());
    assert_eq!(reason_of(&decisions.waiting, 11), Reason::Priority);
}

#[test]
fn usage_halves_every_half_life() {
    assert_eq!(decayed(100.0, 0, 14 * 86_400), 100.0);
    assert_eq!(decayed(100.0, 14 * 86_400, 14 * 86_400), 50.0);
    assert_eq!(decayed(100.0, 28 * 86_400, 14 * 86_400), 25.0);
}

#[test]
fn backfill_goes_to_other_nodes_freely() {
    let nodes = [node("n1", 4), node("n2", 2)];
    let running = [running(1, "normal", 0, 2, 0, 100)];
    let projects = [project(7, 0.0, 0.0)];
    let pending = [pending(10, 7, "normal", 4, 3600, 0), pending(11, 7, "normal", 2, 5000, 1)];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &running, pending: &pending, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert_eq!(decisions.start, vec![(11, 1)], "a long job on the other node does not touch the reservation");
}

#[test]
fn fairshare_orders_projects_and_exhausted_projects_go_last() {
    let nodes = [node("n1", 1)];
    let projects = [project(1, 0.9, 0.5), project(2, 0.1, 0.5), project(3, 0.0, 1.1)];
    let pending =
        [pending(10, 1, "normal", 1, 60, 0), pending(11, 2, "normal", 1, 60, 5), pending(12, 3, "normal", 1, 60, 0)];
    let snapshot = Snapshot { now_s: 10, nodes: &nodes, running: &[], pending: &pending, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert_eq!(decisions.start, vec![(11, 0)], "the project that used least goes first");
    assert_eq!(reason_of(&decisions.waiting, 12), Reason::AllocationExhausted);
    let exhausted_priority = decisions.waiting.iter().find(|(id, _, _)| *id == 12).unwrap().1;
    assert_eq!(exhausted_priority, 0.0);
}

#[test]
fn a_job_over_its_qos_cap_waits_with_qos_limit() {
    let nodes = [node("n1", 1)];
    let projects = [project(1, 0.0, 0.0)];
    let pending = [pending(10, 1, "dev", 1, 3 * 3600, 0)];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &[], pending: &pending, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert!(decisions.start.is_empty());
    assert_eq!(reason_of(&decisions.waiting, 10), Reason::QosLimit);
}

#[test]
fn dev_preempts_long_but_not_its_own_level() {
    let nodes = [node("n1", 2)];
    let projects = [project(1, 0.0, 0.0)];
    let running_jobs = [running(1, "long", 0, 1, 0, 3600), running(2, "long", 0, 1, 50, 3600)];
    let pending_dev = [pending(10, 1, "dev", 1, 600, 60)];
    let snapshot =
        Snapshot { now_s: 100, nodes: &nodes, running: &running_jobs, pending: &pending_dev, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert_eq!(decisions.preempt, vec![2], "the youngest lower-QoS job, and only as many as needed");
    assert_eq!(reason_of(&decisions.waiting, 10), Reason::Resources);
    let pending_normal = [pending(10, 1, "normal", 1, 600, 60)];
    let snapshot =
        Snapshot { now_s: 100, nodes: &nodes, running: &running_jobs, pending: &pending_normal, projects: &projects };
    assert!(schedule(&EngineConfig::default(), &snapshot).preempt.is_empty(), "same level: no preemption");
    let config = EngineConfig { preemption: false, ..EngineConfig::default() };
    let snapshot =
        Snapshot { now_s: 100, nodes: &nodes, running: &running_jobs, pending: &pending_dev, projects: &projects };
    assert!(schedule(&config, &snapshot).preempt.is_empty());
}

#[test]
fn partitions_are_respected() {
    let nodes = [
        Node {
            name: "cpu1".into(),
            partition: "cpu".into(),
            capacity: Resources { cpus: 64, gpus: 0, memory_mb: 256_000 },
        },
        node("g1", 1),
    ];
    let projects = [project(1, 0.0, 0.0)];
    let mut job = pending(10, 1, "normal", 0, 60, 0);
    job.request.cpus = 4;
    job.request.memory_mb = 1000;
    job.partition = Some("gpu".into());
    let pending = [job];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &[], pending: &pending, projects: &projects };
    assert_eq!(schedule(&EngineConfig::default(), &snapshot).start, vec![(10, 1)]);
}

#[test]
fn no_node_is_ever_overcommitted_on_random_snapshots() {
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let qos = ["dev", "normal", "long"];
    for case in 0..500 {
        let nodes: Vec<Node> = (0..1 + next(6)).map(|i| node(&format!("n{i}"), 1 + next(8) as u32)).collect();
        let projects: Vec<ProjectState> =
            (1..=3).map(|id| project(id, next(100) as f64 / 100.0, next(140) as f64 / 100.0)).collect();
        let mut used: Vec<Resources> = vec![Resources::default(); nodes.len()];
        let mut running_jobs = Vec::new();
        for id in 0..next(12) {
            let n = next(nodes.len() as u64) as usize;
            let request = gpus(1 + next(3) as u32);
            if request.fits_in(nodes[n].capacity.minus(used[n])) {
                used[n] = used[n].plus(request);
                running_jobs
                    .push(RunningJob { request, ..running(id, qos[next(3) as usize], n, 0, 0, 1 + next(4000) as i64) });
            }
        }
        let pending_jobs: Vec<PendingJob> = (100..100 + next(30))
            .map(|id| {
                pending(
                    id,
                    1 + next(3),
                    qos[next(3) as usize],
                    1 + next(9) as u32,
                    1 + next(8000) as i64,
                    next(50) as i64,
                )
            })
            .collect();
        let snapshot =
            Snapshot { now_s: 60, nodes: &nodes, running: &running_jobs, pending: &pending_jobs, projects: &projects };
        let decisions = schedule(&EngineConfig::default(), &snapshot);
        let mut load = used.clone();
        for (id, n) in &decisions.start {
            let job = pending_jobs.iter().find(|job| job.id == *id).unwrap();
            load[*n] = load[*n].plus(job.request);
            assert!(load[*n].fits_in(nodes[*n].capacity), "case {case}: node {n} over-committed");
        }
        assert_eq!(
            decisions.start.len() + decisions.waiting.len(),
            pending_jobs.len(),
            "case {case}: every job decided"
        );
        for victim in &decisions.preempt {
            let victim = running_jobs.iter().find(|job| job.id == *victim).unwrap();
            assert_ne!(victim.qos, "dev", "case {case}: nothing preempts the top level");
        }
    }
}
