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
    RunningJob {
        id,
        project: 7,
        qos: qos.into(),
        node,
        request: gpus(gpu_count),
        start_s,
        time_limit_s,
        stopping: false,
    }
}

/// A small seeded generator: `next(n)` is in `0..n`.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

fn reason_of(waiting: &[(u64, f64, Reason)], id: u64) -> Reason {
    waiting.iter().find(|(job, _, _)| *job == id).map(|(_, _, reason)| *reason).expect("job is waiting")
}

#[test]
fn admission_applies_qos_caps_and_the_125_percent_rule() {
    let config = EngineConfig::default();
    assert!(admit(&config, "dev", 2 * 3600, 0.2).is_ok());
    assert!(matches!(admit(&config, "dev", 2 * 3600 + 1, 0.2), Err(Refusal::OverQosCap { .. })));
    assert!(admit(&config, "long", 100 * 3600, 0.2).is_ok());
    assert!(matches!(admit(&config, "gold", 60, 0.2), Err(Refusal::UnknownQos(_))));
    assert!(admit(&config, "normal", 60, 1.2).is_ok(), "past 100 %: lowest priority, still accepted");
    let refused = admit(&config, "normal", 60, 1.26).unwrap_err();
    assert!(refused.to_string().starts_with("with this job, the project's allocation would be 126 % committed"));
    assert!(refused.to_string().ends_with("submissions stop past 125 %"));
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
    let mut next = xorshift(0x1234_5678_9abc_def1);
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

fn cpus(count: u32) -> Resources {
    Resources { cpus: count, gpus: 0, memory_mb: 100 }
}

/// Runs passes at one instant, starting what each starts and marking what it preempts as
/// stopping, until a pass decides nothing; panics if a job started in this loop is preempted
/// in it (nothing else changed: a start that the same rules undo). Returns the running jobs.
fn to_fixed_point(
    config: &EngineConfig,
    nodes: &[Node],
    projects: &[ProjectState],
    queue: &[PendingJob],
    mut active: Vec<RunningJob>,
    now_s: i64,
) -> (Vec<RunningJob>, Vec<PendingJob>, Vec<u64>) {
    let mut queue = queue.to_vec();
    let mut started_here: Vec<u64> = Vec::new();
    let mut preempted: Vec<u64> = Vec::new();
    for _ in 0..100 {
        let snapshot = Snapshot { now_s, nodes, running: &active, pending: &queue, projects };
        let decisions = schedule(config, &snapshot);
        for victim in &decisions.preempt {
            assert!(!started_here.contains(victim), "job {victim} was started, then preempted with nothing changed");
            let job = active.iter_mut().find(|job| job.id == *victim).expect("victim runs");
            assert!(!job.stopping, "job {victim} preempted twice");
            job.stopping = true;
            preempted.push(*victim);
        }
        for (id, node) in &decisions.start {
            let position = queue.iter().position(|job| job.id == *id).expect("started job was pending");
            let job = queue.remove(position);
            started_here.push(job.id);
            active.push(RunningJob {
                id: job.id,
                project: job.project,
                qos: job.qos,
                node: *node,
                request: job.request,
                start_s: now_s,
                time_limit_s: job.time_limit_s,
                stopping: false,
            });
        }
        if decisions.start.is_empty() && decisions.preempt.is_empty() {
            return (active, queue, preempted);
        }
    }
    panic!("no fixed point after 100 passes");
}

#[test]
fn preempting_for_a_job_that_ranks_below_its_victims_does_not_loop() {
    // Finding 1: 2 CPUs; project A (much used) runs a dev job and queues two more; project B
    // (unused, so of higher priority) queues two normal jobs. B's normal jobs rank below A's dev
    // jobs (a lower QoS level), so they never start into what the dev jobs need.
    let nodes = [Node { name: "local".into(), partition: "local".into(), capacity: cpus(2) }];
    let projects = [project(1, 0.9, 0.5), project(2, 0.0, 0.1)];
    let dev = |id, submit_s| PendingJob { request: cpus(2), ..pending(id, 1, "dev", 0, 600, submit_s) };
    let normal = |id, submit_s| PendingJob { request: cpus(2), ..pending(id, 2, "normal", 0, 600, submit_s) };
    let active = vec![RunningJob { project: 1, request: cpus(2), ..running(1, "dev", 0, 0, 0, 600) }];
    let queue = [dev(2, 1), dev(3, 2), normal(4, 3), normal(5, 4)];
    let (active, queue, preempted) = to_fixed_point(&EngineConfig::default(), &nodes, &projects, &queue, active, 10);
    assert!(preempted.is_empty(), "dev jobs do not preempt dev jobs");
    assert_eq!(active.len(), 1);
    assert_eq!(queue.len(), 4);
    // The same inside one project with GPUs, and with the dev job's project past 100 %.
    // A normal 2-GPU job ties with a 0-GPU dev job on size; the dev job preempts a long job for
    // its CPUs, and the normal job must not start into them.
    let gpu_nodes =
        [Node { name: "g".into(), partition: "gpu".into(), capacity: Resources { cpus: 4, gpus: 2, memory_mb: 1000 } }];
    for used in [0.5, 1.1] {
        let projects = [project(1, 0.0, used)];
        let two_cpus = Resources { cpus: 2, gpus: 0, memory_mb: 10 };
        let active = vec![RunningJob { project: 1, request: two_cpus, ..running(1, "long", 0, 0, 0, 600) }];
        let normal_gpu = Resources { cpus: 2, gpus: 2, memory_mb: 10 };
        let dev_cpu = Resources { cpus: 4, gpus: 0, memory_mb: 10 };
        let jobs = [
            PendingJob { request: normal_gpu, ..pending(2, 1, "normal", 0, 600, 1) },
            PendingJob { request: dev_cpu, ..pending(3, 1, "dev", 0, 600, 2) },
        ];
        // The fixed point itself asserts that no job is started and then preempted.
        let (mut active, queue, preempted) =
            to_fixed_point(&EngineConfig::default(), &gpu_nodes, &projects, &jobs, active, 10);
        assert_eq!(preempted, vec![1], "used {used}");
        assert_eq!(queue.len(), 2, "used {used}: nothing starts into the CPUs being freed");
        active.retain(|job| !job.stopping);
        let snapshot =
            Snapshot { now_s: 11, nodes: &gpu_nodes, running: &active, pending: &queue, projects: &projects };
        assert_eq!(schedule(&EngineConfig::default(), &snapshot).start, vec![(3, 0)], "used {used}");
    }
}

#[test]
fn backfilling_into_the_space_a_preemption_is_freeing_is_refused() {
    // Finding 2: a 4-GPU node full of long jobs; a dev job needing 4 GPUs preempts them. Short
    // normal jobs behind it must not start into the GPUs being freed for it.
    let nodes = [node("n", 4)];
    let projects = [project(7, 0.0, 0.0)];
    let active = vec![running(1, "long", 0, 2, 0, 36_000), running(2, "long", 0, 2, 0, 36_000)];
    let jobs =
        [pending(10, 7, "dev", 4, 600, 5), pending(11, 7, "normal", 1, 10, 6), pending(12, 7, "normal", 1, 10, 7)];
    let (mut active, queue, preempted) =
        to_fixed_point(&EngineConfig::default(), &nodes, &projects, &jobs, active, 100);
    assert_eq!(preempted, vec![2, 1]);
    assert_eq!(queue.len(), 3, "nothing starts into the reserved GPUs");
    // The victims exit: the dev job starts at once.
    active.retain(|job| !job.stopping);
    let snapshot = Snapshot { now_s: 101, nodes: &nodes, running: &active, pending: &queue, projects: &projects };
    assert_eq!(schedule(&EngineConfig::default(), &snapshot).start, vec![(10, 0)]);
}

#[test]
fn over_preemption_while_victims_exit_is_refused() {
    // Finding 3: four 1-CPU normal jobs on 4 CPUs; a 1-CPU dev job preempts one, and no more in
    // the passes that follow while that one exits.
    let nodes = [Node { name: "local".into(), partition: "local".into(), capacity: cpus(4) }];
    let projects = [project(7, 0.0, 0.0)];
    let active: Vec<RunningJob> =
        (1..=4).map(|id| RunningJob { request: cpus(1), ..running(id, "normal", 0, 0, id as i64, 600) }).collect();
    let jobs = [PendingJob { request: cpus(1), ..pending(10, 7, "dev", 0, 60, 50) }];
    let (_, _, preempted) = to_fixed_point(&EngineConfig::default(), &nodes, &projects, &jobs, active, 100);
    assert_eq!(preempted, vec![4], "the youngest, and only one");
}

#[test]
fn young_jobs_are_exempt_from_preemption() {
    let nodes = [node("n", 1)];
    let projects = [project(7, 0.0, 0.0)];
    let config = EngineConfig { preempt_exempt_s: 300, ..EngineConfig::default() };
    let jobs = [pending(10, 7, "dev", 1, 60, 50)];
    let young = [running(1, "long", 0, 1, 0, 36_000)];
    let snapshot = Snapshot { now_s: 200, nodes: &nodes, running: &young, pending: &jobs, projects: &projects };
    assert!(schedule(&config, &snapshot).preempt.is_empty());
    let snapshot = Snapshot { now_s: 300, ..snapshot };
    assert_eq!(schedule(&config, &snapshot).preempt, vec![1]);
}

#[test]
fn a_job_no_node_can_hold_waits_as_too_large_and_blocks_nobody() {
    let nodes = [node("n", 2)];
    let projects = [project(7, 0.0, 0.0)];
    let jobs = [pending(10, 7, "normal", 4, 60, 0), pending(11, 7, "normal", 1, 60, 1)];
    let snapshot = Snapshot { now_s: 0, nodes: &nodes, running: &[], pending: &jobs, projects: &projects };
    let decisions = schedule(&EngineConfig::default(), &snapshot);
    assert_eq!(decisions.start, vec![(11, 0)]);
    assert_eq!(reason_of(&decisions.waiting, 10), Reason::TooLarge);
}

#[test]
fn passes_reach_a_fixed_point_without_undoing_their_own_starts_on_random_snapshots() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let qos = ["dev", "normal", "long"];
    for case in 0..1500 {
        let nodes: Vec<Node> = (0..1 + next(3)).map(|i| node(&format!("n{i}"), 1 + next(4) as u32)).collect();
        let projects: Vec<ProjectState> =
            (1..=3).map(|id| project(id, next(100) as f64 / 100.0, next(140) as f64 / 100.0)).collect();
        let mut used = vec![Resources::default(); nodes.len()];
        let mut running_jobs = Vec::new();
        for id in 0..next(8) {
            let n = next(nodes.len() as u64) as usize;
            let request = Resources { cpus: 1 + next(8) as u32, gpus: next(3) as u32, memory_mb: 1000 };
            if request.fits_in(nodes[n].capacity.minus(used[n])) {
                used[n] = used[n].plus(request);
                running_jobs.push(RunningJob {
                    project: 1 + next(3),
                    request,
                    stopping: next(5) == 0,
                    ..running(id, qos[next(3) as usize], n, 0, next(100) as i64, 1 + next(4000) as i64)
                });
            }
        }
        let pending_jobs: Vec<PendingJob> = (100..100 + next(12))
            .map(|id| PendingJob {
                request: Resources { cpus: 1 + next(16) as u32, gpus: next(4) as u32, memory_mb: 1000 },
                ..pending(id, 1 + next(3), qos[next(3) as usize], 0, 1 + next(7000) as i64, next(50) as i64)
            })
            .collect();
        let config = EngineConfig { preempt_exempt_s: next(2) as i64 * 50, ..EngineConfig::default() };
        let snapshot =
            Snapshot { now_s: 100, nodes: &nodes, running: &running_jobs, pending: &pending_jobs, projects: &projects };
        let first = schedule(&config, &snapshot);
        // No more victims than needed: without any one of them, the job they are for would not
        // fit (checked on passes that start nothing, where what is free is plain).
        if !first.preempt.is_empty() && first.start.is_empty() {
            let victims: Vec<&RunningJob> =
                first.preempt.iter().map(|id| running_jobs.iter().find(|job| job.id == *id).unwrap()).collect();
            let n = victims[0].node;
            assert!(victims.iter().all(|v| v.node == n), "case {case}: victims on one node");
            let mut base = nodes[n].capacity;
            for job in running_jobs.iter().filter(|job| job.node == n && !job.stopping) {
                base = base.minus(job.request);
            }
            let freed = |skip: Option<u64>| {
                victims.iter().filter(|v| Some(v.id) != skip).fold(base, |sum, v| sum.plus(v.request))
            };
            let job = pending_jobs.iter().find(|job| Some(job.id) == first.preempt_for).unwrap();
            assert!(job.request.fits_in(freed(None)), "case {case}: the victims make room");
            for victim in &victims {
                assert!(!job.request.fits_in(freed(Some(victim.id))), "case {case}: {} was not needed", victim.id);
            }
        }
        to_fixed_point(&config, &nodes, &projects, &pending_jobs, running_jobs.clone(), 100);
    }
}
