//! Trace replay: one machine of `machine_procs` processors, jobs from an SWF trace, FCFS, EASY
//! or conservative backfilling, optionally ordered by fair-share. The semantics are the contract
//! of `grappe simulate` (see the crate's tests for worked cases):
//!
//! - processors: field 5 if > 0, else field 8; estimate: field 9 if > 0, else the run time; a
//!   job that runs past its estimate is killed at it. Jobs with run < 0, processors <= 0 or more
//!   processors than the machine are skipped.
//! - At one instant: every job ending then frees its processors, then every job submitted then
//!   joins the queue (submit time, then job number), then the policy schedules. A job that starts
//!   and ends at the same instant (run 0) makes a second round at that instant.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use crate::swf::Trace;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Fcfs,
    Easy,
    Conservative,
}

impl Policy {
    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "fcfs" => Some(Policy::Fcfs),
            "easy" => Some(Policy::Easy),
            "conservative" => Some(Policy::Conservative),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Fcfs => "fcfs",
            Policy::Easy => "easy",
            Policy::Conservative => "conservative",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub policy: Policy,
    /// Order the queue by fair-share between users (field 12) instead of by submission.
    pub fairshare: bool,
    /// Usage half-life for fair-share, seconds (14 days by default, as on Jean Zay).
    pub half_life_s: f64,
    /// Keep a sample of busy processors and queue length after every instant (for plots).
    pub record_samples: bool,
}

impl SimConfig {
    pub fn new(policy: Policy) -> SimConfig {
        SimConfig { policy, fairshare: false, half_life_s: 14.0 * 86_400.0, record_samples: false }
    }
}

/// A job as the simulator sees it, after the trace's fields are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimJob {
    pub id: i64,
    pub submit_s: i64,
    pub run_s: i64,
    pub estimate_s: i64,
    pub procs: i64,
    pub user: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("the machine size is unknown: the trace has no MaxProcs or MaxNodes header; give --nodes N")]
    UnknownMachine,
    #[error("the machine size must be positive, not {0}")]
    BadMachine(i64),
}

/// `--nodes N` if given, else the header's `MaxProcs`, else `MaxNodes`.
pub fn machine_procs(trace: &Trace, nodes: Option<i64>) -> Result<i64, SimError> {
    let procs = nodes.or(trace.header.max_procs).or(trace.header.max_nodes).ok_or(SimError::UnknownMachine)?;
    if procs <= 0 {
        return Err(SimError::BadMachine(procs));
    }
    Ok(procs)
}

/// Resolves the trace's jobs, in queue order (submit time, then job number), and counts those
/// skipped.
pub fn prepare(trace: &Trace, machine_procs: i64) -> (Vec<SimJob>, usize) {
    let mut jobs = Vec::with_capacity(trace.jobs.len());
    let mut skipped = 0;
    for job in &trace.jobs {
        let procs = if job.allocated_procs > 0 { job.allocated_procs } else { job.requested_procs };
        if job.run_s < 0 || procs <= 0 || procs > machine_procs {
            skipped += 1;
            continue;
        }
        let estimate_s = if job.requested_s > 0 { job.requested_s } else { job.run_s };
        let run_s = job.run_s.min(estimate_s);
        jobs.push(SimJob { id: job.number, submit_s: job.submit_s, run_s, estimate_s, procs, user: job.user });
    }
    jobs.sort_by_key(|job| (job.submit_s, job.id));
    (jobs, skipped)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub start_s: i64,
    pub end_s: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub time_s: i64,
    pub busy_procs: i64,
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    pub machine_procs: i64,
    /// One per job of the input, same order.
    pub outcomes: Vec<Outcome>,
    /// The first reservation each job was given while it waited (EASY: as the head;
    /// conservative: at arrival); `None` for jobs that never waited for one.
    pub first_reservation_s: Vec<Option<i64>>,
    pub samples: Vec<Sample>,
}

/// A step function of free processors over time, for conservative backfilling: `points[i]`
/// says how many processors are free from its time until the next point's; after the last
/// point, all of them.
struct Profile {
    points: Vec<(i64, i64)>,
    machine: i64,
}

impl Profile {
    fn new(machine: i64) -> Profile {
        Profile { points: vec![(i64::MIN, machine)], machine }
    }

    /// Index of the point in force at `time`.
    fn index_at(&self, time: i64) -> usize {
        self.points.partition_point(|(t, _)| *t <= time).saturating_sub(1)
    }

    /// Makes `time` a breakpoint and returns its index.
    fn split(&mut self, time: i64) -> usize {
        let index = self.index_at(time);
        if self.points[index].0 == time {
            return index;
        }
        let free = self.points[index].1;
        self.points.insert(index + 1, (time, free));
        index + 1
    }

    fn add(&mut self, start: i64, end: i64, delta: i64) {
        if start >= end {
            return;
        }
        let first = self.split(start);
        let last = self.split(end);
        for point in &mut self.points[first..last] {
            point.1 += delta;
            debug_assert!(point.1 >= 0 && point.1 <= self.machine, "profile out of bounds");
        }
    }

    /// The earliest time at or after `now` at which `procs` are free for `duration`.
    fn earliest(&self, now: i64, procs: i64, duration: i64) -> i64 {
        let mut index = self.index_at(now);
        let mut candidate = now;
        loop {
            // Is [candidate, candidate + duration) free enough from `index` on?
            let mut probe = index;
            let mut fits = true;
            while probe < self.points.len() && self.points[probe].0 < candidate + duration {
                if self.points[probe].1 < procs {
                    fits = false;
                    break;
                }
                probe += 1;
            }
            if fits {
                return candidate;
            }
            // Restart after the point that did not fit.
            index = probe + 1;
            match self.points.get(index) {
                Some(point) => candidate = point.0,
                None => return candidate.max(self.points[probe].0),
            }
        }
    }

    /// Drops points wholly before `now`.
    fn prune(&mut self, now: i64) {
        let index = self.index_at(now);
        if index > 0 {
            self.points.drain(..index);
        }
    }
}

/// Decayed usage per user, for fair-share ordering.
struct FairShare {
    half_life_s: f64,
    usage: HashMap<i64, (f64, i64)>,
}

impl FairShare {
    fn decayed(&self, user: i64, now: i64) -> f64 {
        self.usage.get(&user).map_or(0.0, |(value, at)| value * (-((now - at) as f64) / self.half_life_s).exp2())
    }

    fn charge(&mut self, user: i64, amount: f64, now: i64) {
        let current = self.decayed(user, now);
        self.usage.insert(user, (current + amount, now));
    }

    /// `2^(-U/S)`: U the user's share of all decayed usage, S an equal share among users seen.
    fn factors(&self, users: &[i64], now: i64) -> HashMap<i64, f64> {
        let total: f64 = self.usage.keys().map(|user| self.decayed(*user, now)).sum();
        let share = 1.0 / (self.usage.len().max(1) as f64);
        users
            .iter()
            .map(|user| {
                let normalized = if total > 0.0 { self.decayed(*user, now) / total } else { 0.0 };
                (*user, (-normalized / share).exp2())
            })
            .collect()
    }
}

struct State<'a> {
    jobs: &'a [SimJob],
    free: i64,
    ends: BinaryHeap<Reverse<(i64, usize)>>,
    by_estimated_end: BTreeSet<(i64, usize)>,
    queue: VecDeque<usize>,
    outcomes: Vec<Outcome>,
    first_reservation_s: Vec<Option<i64>>,
    /// Conservative: each queued job's current reservation, and the profile of plans.
    reservation_s: Vec<Option<i64>>,
    /// Conservative: queued jobs by reservation time, so that the replay stops at each one
    /// (a reservation can fall where no job ends or arrives).
    wakeups: BTreeSet<(i64, usize)>,
    profile: Profile,
}

/// The span a job occupies in the conservative profile: its estimate, at least one second, so
/// that a zero-length job still needs its processors at the instant it starts.
fn planned(job: &SimJob) -> i64 {
    job.estimate_s.max(1)
}

impl State<'_> {
    fn start(&mut self, index: usize, now: i64) {
        let job = self.jobs[index];
        debug_assert!(job.procs <= self.free, "over-commit");
        self.free -= job.procs;
        let end = now + job.run_s;
        self.outcomes[index] = Outcome { start_s: now, end_s: end };
        self.ends.push(Reverse((end, index)));
        self.by_estimated_end.insert((now + job.estimate_s, index));
    }

    fn fcfs(&mut self, now: i64) {
        while let Some(&head) = self.queue.front() {
            if self.jobs[head].procs > self.free {
                break;
            }
            self.queue.pop_front();
            self.start(head, now);
        }
    }

    fn easy(&mut self, now: i64) {
        self.fcfs(now);
        let Some(&head) = self.queue.front() else { return };
        let need = self.jobs[head].procs;
        let mut available = self.free;
        let mut shadow = now;
        let mut running = self.by_estimated_end.iter().peekable();
        while let Some(&(estimated_end, index)) = running.next() {
            available += self.jobs[index].procs;
            while let Some(&&(same_end, other)) = running.peek() {
                if same_end != estimated_end {
                    break;
                }
                available += self.jobs[other].procs;
                running.next();
            }
            if available >= need {
                shadow = estimated_end;
                break;
            }
        }
        debug_assert!(available >= need, "the head fits an empty machine");
        self.first_reservation_s[head].get_or_insert(shadow);
        let mut extra = available - need;
        let mut free = self.free;
        let mut started = Vec::new();
        for (position, &index) in self.queue.iter().enumerate().skip(1) {
            if free == 0 {
                break;
            }
            let job = self.jobs[index];
            if job.procs > free {
                continue;
            }
            let ends_by_shadow = now + job.estimate_s <= shadow;
            if ends_by_shadow || job.procs <= extra {
                if !ends_by_shadow {
                    extra -= job.procs;
                }
                free -= job.procs;
                started.push(position);
            }
        }
        for &position in &started {
            let index = self.queue[position];
            self.start(index, now);
        }
        let mut position = 0;
        let mut next_started = started.iter().peekable();
        self.queue.retain(|_| {
            let keep = next_started.peek() != Some(&&position);
            if !keep {
                next_started.next();
            }
            position += 1;
            keep
        });
    }

    /// Gives a newly queued job the earliest reservation the profile allows.
    fn reserve(&mut self, index: usize, now: i64) {
        let job = self.jobs[index];
        let start = self.profile.earliest(now, job.procs, planned(&job));
        self.profile.add(start, start + planned(&job), -job.procs);
        self.reservation_s[index] = Some(start);
        self.wakeups.insert((start, index));
        self.first_reservation_s[index].get_or_insert(start);
    }

    /// Takes a queued job's reservation back out of the profile.
    fn unreserve(&mut self, index: usize) {
        let job = self.jobs[index];
        if let Some(old) = self.reservation_s[index].take() {
            self.profile.add(old, old + planned(&job), job.procs);
            self.wakeups.remove(&(old, index));
        }
    }

    /// Moves every queued job, in order, to the earliest slot that is free; each can only move
    /// earlier, since its own old slot is still there.
    fn compress(&mut self, now: i64) {
        let queued: Vec<usize> = self.queue.iter().copied().collect();
        for index in queued {
            // Jobs that arrived at this instant have no reservation yet; they get one after.
            let Some(old) = self.reservation_s[index] else { continue };
            self.unreserve(index);
            self.reserve(index, now);
            debug_assert!(self.reservation_s[index] <= Some(old), "compression never delays a reservation");
        }
    }

    fn conservative(&mut self, now: i64) {
        let due: Vec<usize> = self.wakeups.range((now, 0)..=(now, usize::MAX)).map(|&(_, index)| index).collect();
        if due.is_empty() {
            return;
        }
        // The profile already holds their span as a reservation; it becomes their occupancy.
        for &index in &due {
            self.wakeups.remove(&(now, index));
            self.start(index, now);
        }
        self.queue.retain(|index| self.reservation_s[*index] != Some(now));
    }
}

pub fn simulate(jobs: &[SimJob], machine_procs: i64, config: &SimConfig) -> SimResult {
    let count = jobs.len();
    let mut state = State {
        jobs,
        free: machine_procs,
        ends: BinaryHeap::new(),
        by_estimated_end: BTreeSet::new(),
        queue: VecDeque::new(),
        outcomes: vec![Outcome { start_s: -1, end_s: -1 }; count],
        first_reservation_s: vec![None; count],
        reservation_s: vec![None; count],
        wakeups: BTreeSet::new(),
        profile: Profile::new(machine_procs),
    };
    let mut fairshare = FairShare { half_life_s: config.half_life_s, usage: HashMap::new() };
    let mut samples = Vec::new();
    let mut next = 0;
    loop {
        let next_end = state.ends.peek().map(|Reverse((end, _))| *end);
        let next_submit = jobs.get(next).map(|job| job.submit_s);
        let next_wakeup = state.wakeups.first().map(|(time, _)| *time);
        let Some(now) = [next_end, next_submit, next_wakeup].into_iter().flatten().min() else { break };
        let mut ended_early = false;
        while let Some(&Reverse((end, index))) = state.ends.peek() {
            if end != now {
                break;
            }
            state.ends.pop();
            let job = jobs[index];
            let start = state.outcomes[index].start_s;
            state.free += job.procs;
            state.by_estimated_end.remove(&(start + job.estimate_s, index));
            if config.policy == Policy::Conservative && now < start + planned(&job) {
                state.profile.add(now, start + planned(&job), job.procs);
                ended_early = true;
            }
            if config.fairshare {
                fairshare.charge(job.user, (job.run_s * job.procs) as f64, now);
            }
        }
        while next < count && jobs[next].submit_s == now {
            state.queue.push_back(next);
            next += 1;
        }
        if config.fairshare {
            for &index in &state.queue {
                fairshare.usage.entry(jobs[index].user).or_insert((0.0, now));
            }
            let users: Vec<i64> = state.queue.iter().map(|&index| jobs[index].user).collect();
            let factors = fairshare.factors(&users, now);
            state.queue.make_contiguous().sort_by(|a, b| {
                let (ja, jb) = (&jobs[*a], &jobs[*b]);
                factors[&jb.user]
                    .total_cmp(&factors[&ja.user])
                    .then(ja.submit_s.cmp(&jb.submit_s))
                    .then(ja.id.cmp(&jb.id))
            });
        }
        match config.policy {
            Policy::Fcfs => state.fcfs(now),
            Policy::Easy => state.easy(now),
            Policy::Conservative => {
                state.profile.prune(now);
                let queued: Vec<usize> = state.queue.iter().copied().collect();
                if config.fairshare {
                    // The order may have changed: plan every queued job again, in the new order.
                    for &index in &queued {
                        state.unreserve(index);
                    }
                } else if ended_early {
                    state.compress(now);
                }
                for index in queued {
                    if state.reservation_s[index].is_none() {
                        state.reserve(index, now);
                    }
                }
                state.conservative(now);
            }
        }
        if config.record_samples {
            samples.push(Sample { time_s: now, busy_procs: machine_procs - state.free, queued: state.queue.len() });
        }
    }
    SimResult { machine_procs, outcomes: state.outcomes, first_reservation_s: state.first_reservation_s, samples }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub jobs: usize,
    pub skipped: usize,
    pub mean_wait_s: f64,
    pub mean_bounded_slowdown: f64,
    pub utilization: f64,
    pub makespan_s: i64,
    pub wait_p50_s: i64,
    pub wait_p90_s: i64,
    pub wait_p99_s: i64,
    pub wait_max_s: i64,
}

/// Bounded slowdown's floor on run time, seconds.
pub const SLOWDOWN_BOUND_S: i64 = 10;

pub fn summarize(jobs: &[SimJob], result: &SimResult, skipped: usize) -> Summary {
    let count = jobs.len();
    let mut waits: Vec<i64> = Vec::with_capacity(count);
    let (mut wait_sum, mut slowdown_sum, mut work) = (0.0, 0.0, 0.0);
    let (mut first_submit, mut last_end) = (i64::MAX, i64::MIN);
    for (job, outcome) in jobs.iter().zip(&result.outcomes) {
        let wait = outcome.start_s - job.submit_s;
        waits.push(wait);
        wait_sum += wait as f64;
        let run = job.run_s;
        slowdown_sum += ((wait + run) as f64 / run.max(SLOWDOWN_BOUND_S) as f64).max(1.0);
        work += (run * job.procs) as f64;
        first_submit = first_submit.min(job.submit_s);
        last_end = last_end.max(outcome.end_s);
    }
    waits.sort_unstable();
    let percentile = |p: f64| -> i64 {
        if waits.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * waits.len() as f64).ceil() as usize;
        waits[rank.clamp(1, waits.len()) - 1]
    };
    let makespan_s = if count == 0 { 0 } else { last_end - first_submit };
    let denominator = count.max(1) as f64;
    Summary {
        jobs: count,
        skipped,
        mean_wait_s: wait_sum / denominator,
        mean_bounded_slowdown: if count == 0 { 0.0 } else { slowdown_sum / denominator },
        utilization: if makespan_s > 0 { work / (result.machine_procs as f64 * makespan_s as f64) } else { 0.0 },
        makespan_s,
        wait_p50_s: percentile(50.0),
        wait_p90_s: percentile(90.0),
        wait_p99_s: percentile(99.0),
        wait_max_s: waits.last().copied().unwrap_or(0),
    }
}
