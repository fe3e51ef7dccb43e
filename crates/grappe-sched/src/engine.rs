//! The live scheduler for the compute service: nodes with CPUs, GPUs and memory; jobs of
//! projects with a QoS; Slurm-style multifactor priority with fair-share between projects; the
//! allocation rules of Jean Zay; EASY backfilling on nodes; preemption of a lower QoS by a
//! higher one. [`schedule`] is one pass: a snapshot in, decisions out.
//!
//! One order rules a pass: projects within their allocation before those past it, then the
//! higher QoS level, then priority, then submission time and id. Jobs start in that order; a
//! job may preempt only running jobs that rank below it in that same order (a lower QoS level,
//! and not a project within its allocation when the preemptor's is past it), only as many as it
//! needs once the resources of jobs already stopping are counted, and the resources it waits for
//! are reserved for it, so that nothing is started into them. A job started less than
//! `preempt_exempt_s` ago is not preempted (Slurm's `PreemptExemptTime`). So a pass repeated on
//! an unchanged snapshot never starts a job that it then preempts.

use std::collections::HashMap;

/// Resources on a node or asked by a job. A job runs on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: u64,
}

impl Resources {
    pub fn fits_in(self, free: Resources) -> bool {
        self.cpus <= free.cpus && self.gpus <= free.gpus && self.memory_mb <= free.memory_mb
    }

    /// What is left of `self` once `other` is taken (never below zero).
    pub fn minus(self, other: Resources) -> Resources {
        Resources {
            cpus: self.cpus.saturating_sub(other.cpus),
            gpus: self.gpus.saturating_sub(other.gpus),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
        }
    }

    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            cpus: self.cpus + other.cpus,
            gpus: self.gpus + other.gpus,
            memory_mb: self.memory_mb + other.memory_mb,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub partition: String,
    pub capacity: Resources,
}

/// A quality of service: a wall-time cap, a priority factor in [0, 1], and a preemption level
/// (a job preempts running jobs of a strictly lower level).
#[derive(Debug, Clone, PartialEq)]
pub struct Qos {
    pub name: String,
    pub max_wall_s: i64,
    pub priority: f64,
    pub level: u8,
}

/// `dev` 2 h, `normal` 20 h, `long` 100 h, as on Jean Zay; `dev` preempts the others.
pub fn default_qos() -> Vec<Qos> {
    vec![
        Qos { name: "dev".into(), max_wall_s: 2 * 3600, priority: 1.0, level: 1 },
        Qos { name: "normal".into(), max_wall_s: 20 * 3600, priority: 0.5, level: 0 },
        Qos { name: "long".into(), max_wall_s: 100 * 3600, priority: 0.0, level: 0 },
    ]
}

/// Weights of the multifactor priority; each factor is in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub age: f64,
    pub fairshare: f64,
    pub job_size: f64,
    pub qos: f64,
    /// Age at which the age factor reaches 1 (Slurm's PriorityMaxAge, 7 days).
    pub max_age_s: i64,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights { age: 1000.0, fairshare: 10_000.0, job_size: 1000.0, qos: 2000.0, max_age_s: 7 * 86_400 }
    }
}

/// How far the live engine looks past the first job that cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivePolicy {
    /// Nothing starts behind a blocked job.
    Fcfs,
    /// The blocked job gets a reservation; later jobs start if they do not delay it.
    Easy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub policy: LivePolicy,
    pub weights: Weights,
    pub qos: Vec<Qos>,
    /// Past this share of its allocation, a project's jobs get the lowest priority (1.0).
    pub lowest_priority_above: f64,
    /// Past this share, its submissions are refused (1.25).
    pub refuse_above: f64,
    pub preemption: bool,
    /// A running job younger than this is not preempted.
    pub preempt_exempt_s: i64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            policy: LivePolicy::Easy,
            weights: Weights::default(),
            qos: default_qos(),
            lowest_priority_above: 1.0,
            refuse_above: 1.25,
            preemption: true,
            preempt_exempt_s: 0,
        }
    }
}

/// A project as the scheduler needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectState {
    pub id: u64,
    /// Its allocation's share of all allocations, in [0, 1].
    pub share: f64,
    /// Its decayed usage's share of all decayed usage, in [0, 1].
    pub usage_share: f64,
    /// Usage charged against its allocation so far (1.0 = all of it).
    pub allocation_used: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingJob {
    pub id: u64,
    pub user: u64,
    pub project: u64,
    pub qos: String,
    pub partition: Option<String>,
    pub request: Resources,
    pub time_limit_s: i64,
    pub submit_s: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub id: u64,
    pub project: u64,
    pub qos: String,
    pub node: usize,
    pub request: Resources,
    pub start_s: i64,
    pub time_limit_s: i64,
    /// Already signalled to stop (preempted, cancelled, out of time): its resources come back
    /// within the grace period.
    pub stopping: bool,
}

pub struct Snapshot<'a> {
    pub now_s: i64,
    pub nodes: &'a [Node],
    pub running: &'a [RunningJob],
    pub pending: &'a [PendingJob],
    pub projects: &'a [ProjectState],
}

/// Why a job waits, in words a user reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Jobs of higher priority go first.
    Priority,
    /// Not enough free CPUs, GPUs or memory on any node.
    Resources,
    /// Its project has used more than its allocation: lowest priority.
    AllocationExhausted,
    /// It asks for more than its QoS allows.
    QosLimit,
    /// No node of its partition is large enough, even empty: it can never start here.
    TooLarge,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Priority => "Priority",
            Reason::Resources => "Resources",
            Reason::AllocationExhausted => "AllocationExhausted",
            Reason::QosLimit => "QosLimit",
            Reason::TooLarge => "TooLarge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decisions {
    /// Jobs to start now, and on which node (index into the snapshot's nodes).
    pub start: Vec<(u64, usize)>,
    /// Running jobs to signal, requeue and restart later, so that a higher QoS can run.
    pub preempt: Vec<u64>,
    /// The job they are preempted for.
    pub preempt_for: Option<u64>,
    /// Every job left pending, with its priority and the reason it waits.
    pub waiting: Vec<(u64, f64, Reason)>,
}

/// Why a submission is refused outright.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown QoS `{0}`")]
    UnknownQos(String),
    #[error("time limit {time_limit_s} s is over QoS `{qos}`'s cap of {max_wall_s} s")]
    OverQosCap { qos: String, time_limit_s: i64, max_wall_s: i64 },
    #[error(
        "with this job, the project's allocation would be {committed_percent:.0} % committed (used, running, \
         and running and queued jobs counted at their time limits); submissions stop past {limit_percent:.0} %"
    )]
    AllocationExhausted { committed_percent: f64, limit_percent: f64 },
}

/// Checks a submission against its QoS and its project's allocation: `committed` is the share
/// of the allocation used, running and reserved by the project's jobs, this one included at its
/// time limit (Slurm's `safe` enforcement: no job starts that could overrun the allocation).
pub fn admit(config: &EngineConfig, qos: &str, time_limit_s: i64, committed: f64) -> Result<(), Refusal> {
    let qos = config.qos.iter().find(|q| q.name == qos).ok_or_else(|| Refusal::UnknownQos(qos.to_owned()))?;
    if time_limit_s > qos.max_wall_s {
        return Err(Refusal::OverQosCap { qos: qos.name.clone(), time_limit_s, max_wall_s: qos.max_wall_s });
    }
    if committed > config.refuse_above {
        return Err(Refusal::AllocationExhausted {
            committed_percent: committed * 100.0,
            limit_percent: config.refuse_above * 100.0,
        });
    }
    Ok(())
}

/// Usage `elapsed_s` ago, as it counts now: halved every `half_life_s` (14 days on Jean Zay).
pub fn decayed(usage: f64, elapsed_s: i64, half_life_s: i64) -> f64 {
    usage * (-(elapsed_s.max(0) as f64) / half_life_s.max(1) as f64).exp2()
}

/// Slurm's classic fair-share factor `2^(-U/S)`; a project with no share gets 0.
pub fn fairshare_factor(usage_share: f64, share: f64) -> f64 {
    if share <= 0.0 {
        return 0.0;
    }
    (-usage_share / share).exp2()
}

fn qos_of<'a>(config: &'a EngineConfig, name: &str) -> Option<&'a Qos> {
    config.qos.iter().find(|qos| qos.name == name)
}

/// The job's priority, and whether its project is past its allocation (lowest priority).
pub fn priority(
    config: &EngineConfig,
    job: &PendingJob,
    project: Option<&ProjectState>,
    now_s: i64,
    total: Resources,
) -> (f64, bool) {
    let weights = &config.weights;
    let exhausted = project.is_some_and(|p| p.allocation_used > config.lowest_priority_above);
    if exhausted {
        return (0.0, true);
    }
    let age = ((now_s - job.submit_s).max(0) as f64 / weights.max_age_s.max(1) as f64).min(1.0);
    let fairshare = project.map_or(0.0, |p| fairshare_factor(p.usage_share, p.share));
    let size = if total.gpus > 0 {
        f64::from(job.request.gpus) / f64::from(total.gpus)
    } else {
        f64::from(job.request.cpus) / f64::from(total.cpus.max(1))
    };
    let qos = qos_of(config, &job.qos).map_or(0.0, |q| q.priority);
    (weights.age * age + weights.fairshare * fairshare + weights.job_size * size.min(1.0) + weights.qos * qos, false)
}

/// The first node, in order, of the job's partition where it fits and `allowed` agrees.
fn place(nodes: &[Node], free: &[Resources], job: &PendingJob, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    (0..nodes.len()).find(|&n| {
        job.partition.as_ref().is_none_or(|partition| *partition == nodes[n].partition)
            && job.request.fits_in(free[n])
            && allowed(n)
    })
}

/// Where and when the blocked head can start: the node whose jobs, released by estimated end
/// (start + time limit), free enough soonest; with what is left over there at that time.
fn reservation(
    snapshot: &Snapshot<'_>,
    free: &[Resources],
    ends_by_node: &[Vec<(i64, Resources)>],
    head: &PendingJob,
) -> Option<(usize, i64, Resources)> {
    let mut best: Option<(usize, i64, Resources)> = None;
    for (n, node) in snapshot.nodes.iter().enumerate() {
        if head.partition.as_ref().is_some_and(|partition| *partition != node.partition)
            || !head.request.fits_in(node.capacity)
        {
            continue;
        }
        let mut available = free[n];
        let mut at = snapshot.now_s;
        let mut ends = ends_by_node[n].clone();
        ends.sort_by_key(|(end, _)| *end);
        let mut ends = ends.into_iter();
        while !head.request.fits_in(available) {
            let Some((end, resources)) = ends.next() else { break };
            available = available.plus(resources);
            at = end.max(snapshot.now_s);
        }
        if head.request.fits_in(available) && best.is_none_or(|(_, time, _)| at < time) {
            best = Some((n, at, available.minus(head.request)));
        }
    }
    best
}

/// A job's place in the order of a pass: within its allocation, QoS level, priority; larger
/// ranks first. Ties go by submission time and id, outside this key.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Rank {
    within_allocation: bool,
    level: u8,
    priority: f64,
}

fn level_of(config: &EngineConfig, qos: &str) -> u8 {
    qos_of(config, qos).map_or(0, |q| q.level)
}

/// Whether a running job ranks below `rank` in every key that preemption looks at: a lower QoS
/// level, and not within its allocation when the preemptor is past its own.
fn ranks_below(config: &EngineConfig, projects: &HashMap<u64, &ProjectState>, victim: &RunningJob, rank: Rank) -> bool {
    let victim_within = projects.get(&victim.project).is_none_or(|p| p.allocation_used <= config.lowest_priority_above);
    level_of(config, &victim.qos) < rank.level && (rank.within_allocation || !victim_within)
}

/// For a job that cannot start now: the node where it can run soonest by preemption, with the
/// running jobs to preempt there (none if jobs already stopping free enough). Victims rank below
/// it, are not exempt by age, and are taken youngest first, no more than needed; the node that
/// needs the fewest wins. Returns (node, victims, what is left there once it runs).
fn preemption(
    config: &EngineConfig,
    snapshot: &Snapshot<'_>,
    projects: &HashMap<u64, &ProjectState>,
    free: &[Resources],
    job: &PendingJob,
    rank: Rank,
) -> Option<(usize, Vec<u64>, Resources)> {
    let mut best: Option<(usize, Vec<u64>, Resources)> = None;
    for (n, node) in snapshot.nodes.iter().enumerate() {
        if job.partition.as_ref().is_some_and(|partition| *partition != node.partition)
            || !job.request.fits_in(node.capacity)
        {
            continue;
        }
        let on_node = snapshot.running.iter().filter(|r| r.node == n);
        let freeing = on_node.clone().filter(|r| r.stopping).fold(Resources::default(), |sum, r| sum.plus(r.request));
        let mut available = free[n].plus(freeing);
        let mut candidates: Vec<&RunningJob> = on_node
            .filter(|r| {
                !r.stopping
                    && snapshot.now_s - r.start_s >= config.preempt_exempt_s
                    && ranks_below(config, projects, r, rank)
            })
            .collect();
        candidates.sort_by_key(|r| (std::cmp::Reverse(r.start_s), std::cmp::Reverse(r.id)));
        let mut chosen: Vec<&RunningJob> = Vec::new();
        for candidate in candidates {
            if job.request.fits_in(available) {
                break;
            }
            available = available.plus(candidate.request);
            chosen.push(candidate);
        }
        // Youngest first may take a small job before a large one that alone suffices: keep only
        // those without which the job would not fit.
        let mut index = 0;
        while index < chosen.len() {
            let without = available.minus(chosen[index].request);
            if chosen.len() > 1 && job.request.fits_in(without) {
                available = without;
                chosen.remove(index);
            } else {
                index += 1;
            }
        }
        let chosen: Vec<u64> = chosen.iter().map(|victim| victim.id).collect();
        if job.request.fits_in(available) && best.as_ref().is_none_or(|(_, b, _)| chosen.len() < b.len()) {
            best = Some((n, chosen, available.minus(job.request)));
        }
    }
    best
}

/// One scheduling pass: in the order of the pass, start what fits; the first job that does not
/// fit holds a reservation (EASY), by preemption now where it may preempt, else when running
/// jobs end; later jobs start only where they do not touch it.
pub fn schedule(config: &EngineConfig, snapshot: &Snapshot<'_>) -> Decisions {
    let mut free: Vec<Resources> = snapshot.nodes.iter().map(|node| node.capacity).collect();
    for job in snapshot.running {
        if let Some(slot) = free.get_mut(job.node) {
            *slot = slot.minus(job.request);
        }
    }
    let total = snapshot.nodes.iter().fold(Resources::default(), |sum, node| sum.plus(node.capacity));
    let projects: HashMap<u64, &ProjectState> = snapshot.projects.iter().map(|p| (p.id, p)).collect();
    let mut ordered: Vec<(Rank, &PendingJob)> = snapshot
        .pending
        .iter()
        .map(|job| {
            let (value, exhausted) = priority(config, job, projects.get(&job.project).copied(), snapshot.now_s, total);
            (Rank { within_allocation: !exhausted, level: level_of(config, &job.qos), priority: value }, job)
        })
        .collect();
    ordered.sort_by(|(a, x), (b, y)| {
        b.within_allocation
            .cmp(&a.within_allocation)
            .then(b.level.cmp(&a.level))
            .then(b.priority.total_cmp(&a.priority))
            .then(x.submit_s.cmp(&y.submit_s))
            .then(x.id.cmp(&y.id))
    });

    let mut decisions = Decisions::default();
    let mut ends_by_node: Vec<Vec<(i64, Resources)>> = vec![Vec::new(); snapshot.nodes.len()];
    for job in snapshot.running {
        if let Some(ends) = ends_by_node.get_mut(job.node) {
            // A job being stopped ends within its grace period, not at its time limit.
            let end = if job.stopping { snapshot.now_s } else { job.start_s + job.time_limit_s };
            ends.push((end, job.request));
        }
    }
    // (node, time, what is left there for others at that time) once the head is blocked.
    let mut reserved: Option<(usize, i64, Resources)> = None;
    let mut blocked = false;
    for (rank, job) in ordered {
        let value = rank.priority;
        let over_cap = qos_of(config, &job.qos).is_none_or(|qos| job.time_limit_s > qos.max_wall_s);
        if over_cap {
            decisions.waiting.push((job.id, value, Reason::QosLimit));
            continue;
        }
        let fits_somewhere = snapshot.nodes.iter().any(|node| {
            job.partition.as_ref().is_none_or(|partition| *partition == node.partition)
                && job.request.fits_in(node.capacity)
        });
        if !fits_somewhere {
            decisions.waiting.push((job.id, value, Reason::TooLarge));
            continue;
        }
        let end = snapshot.now_s + job.time_limit_s;
        // Behind a reservation, a job may use its node only if it ends by then or fits in what
        // the head leaves over there.
        let placed = place(snapshot.nodes, &free, job, |n| match reserved {
            _ if blocked && config.policy == LivePolicy::Fcfs => false,
            None => true,
            Some((node, at, extra)) => n != node || end <= at || job.request.fits_in(extra),
        });
        if let Some(n) = placed {
            if let Some((node, at, extra)) = &mut reserved
                && n == *node
                && end > *at
            {
                *extra = extra.minus(job.request);
            }
            free[n] = free[n].minus(job.request);
            ends_by_node[n].push((end, job.request));
            decisions.start.push((job.id, n));
            continue;
        }
        let waiting_reason = |blocked_by_head: bool| {
            if !rank.within_allocation {
                Reason::AllocationExhausted
            } else if blocked_by_head {
                Reason::Priority
            } else {
                Reason::Resources
            }
        };
        if reserved.is_some() || (config.policy == LivePolicy::Fcfs && blocked) {
            decisions.waiting.push((job.id, value, waiting_reason(true)));
            continue;
        }
        blocked = true;
        let preempting = config.preemption.then(|| preemption(config, snapshot, &projects, &free, job, rank)).flatten();
        reserved = match preempting {
            // Its resources come back within the grace period: reserved for it from now.
            Some((node, victims, extra)) => {
                if !victims.is_empty() {
                    decisions.preempt_for = Some(job.id);
                }
                decisions.preempt = victims;
                Some((node, snapshot.now_s, extra))
            }
            None => reservation(snapshot, &free, &ends_by_node, job),
        };
        decisions.waiting.push((job.id, value, waiting_reason(false)));
    }
    decisions
}
