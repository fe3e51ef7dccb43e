//! Worked cases whose answers were computed by hand, and properties checked on random traces.

use crate::sim::{Outcome, Policy, SimConfig, SimJob, prepare, simulate, summarize};
use crate::swf::{SwfHeader, SwfJob, Trace};

/// (submit, run, procs) on a machine of `machine` processors, exact estimates.
fn jobs(spec: &[(i64, i64, i64)]) -> Vec<SimJob> {
    spec.iter()
        .enumerate()
        .map(|(i, &(submit_s, run_s, procs))| SimJob {
            id: i as i64 + 1,
            submit_s,
            run_s,
            estimate_s: run_s,
            procs,
            user: 1,
        })
        .collect()
}

fn check(machine: i64, spec: &[(i64, i64, i64)], policy: Policy, expected: &[(i64, i64)]) {
    let result = simulate(&jobs(spec), machine, &SimConfig::new(policy));
    let got: Vec<(i64, i64)> = result.outcomes.iter().map(|o| (o.start_s, o.end_s)).collect();
    assert_eq!(got, expected, "{policy:?}");
}

#[test]
fn easy_backfills_a_job_that_ends_before_the_shadow_time() {
    // j2 needs the whole machine and waits for j1 (shadow 10); j3 fits now and ends at 5.
    let spec = [(0, 10, 2), (1, 5, 4), (2, 3, 2)];
    check(4, &spec, Policy::Fcfs, &[(0, 10), (10, 15), (15, 18)]);
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (2, 5)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (2, 5)]);
    let result = simulate(&jobs(&spec), 4, &SimConfig::new(Policy::Fcfs));
    let summary = summarize(&jobs(&spec), &result, 0);
    assert_eq!(summary.mean_wait_s, 22.0 / 3.0);
    assert_eq!(summary.makespan_s, 18);
    assert_eq!(summary.utilization, (20.0 + 20.0 + 6.0) / (4.0 * 18.0));
    // Bounded slowdown: j1 1, j2 (9+5)/10, j3 (13+3)/10.
    assert!((summary.mean_bounded_slowdown - (1.0 + 1.4 + 1.6) / 3.0).abs() < 1e-12);
}

#[test]
fn easy_backfills_long_jobs_only_into_the_extra_processors() {
    // Shadow 10 for j2 (3 procs), extra 1: j3 (1 proc, ends after the shadow) takes the extra
    // processor; j4 finds none left and waits.
    let spec = [(0, 10, 2), (1, 5, 3), (2, 100, 1), (3, 100, 1)];
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (2, 102), (15, 115)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (2, 102), (15, 115)]);
    check(4, &spec, Policy::Fcfs, &[(0, 10), (10, 15), (10, 110), (15, 115)]);
}

#[test]
fn conservative_protects_every_reservation_easy_only_the_head() {
    // j2 (head) waits for j1 until 10. j3 (4 procs) gets a reservation at 15 under
    // conservative. j4 (2 procs, 12 s) would end at 15 > shadow 10 and extra is 0, so EASY
    // leaves it; conservative finds it no slot before 20 either, since j3 holds [15, 20).
    let spec = [(0, 10, 2), (1, 5, 4), (2, 5, 4), (3, 12, 2)];
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (15, 20), (20, 32)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (15, 20), (20, 32)]);
    // Same, but j4 is short enough to end by 10: both backfill it.
    let spec = [(0, 10, 2), (1, 5, 4), (2, 5, 4), (3, 7, 2)];
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (15, 20), (3, 10)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (15, 20), (3, 10)]);
}

#[test]
fn easy_may_delay_a_second_job_that_conservative_protects() {
    // j2 is head (shadow 10, extra 1 of 4 at 10: j1 frees 3, 1 free now -> 4, need 3).
    // j3 needs 2 procs for 10 s, reserved by conservative at 15. j4 (1 proc, 30 s) arrives:
    // EASY starts it on the extra processor; conservative must keep [15, 25) for j3 at 2
    // procs, which it can, since 4 - 2 - 1 >= 0, so both start it.
    let spec = [(0, 10, 3), (1, 5, 3), (2, 10, 2), (3, 30, 1)];
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (15, 25), (3, 33)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (15, 25), (3, 33)]);
}

#[test]
fn ends_free_processors_before_submissions_join_at_the_same_instant() {
    let spec = [(0, 10, 4), (10, 5, 4), (10, 0, 1), (10, 0, 4)];
    // At 10: j1 ends, then j2, j3, j4 join in order; j2 starts (all 4). j3 waits for it.
    check(4, &spec, Policy::Fcfs, &[(0, 10), (10, 15), (15, 15), (15, 15)]);
    check(4, &spec, Policy::Easy, &[(0, 10), (10, 15), (15, 15), (15, 15)]);
    check(4, &spec, Policy::Conservative, &[(0, 10), (10, 15), (15, 15), (15, 15)]);
}

fn swf(number: i64, submit: i64, run: i64, allocated: i64, requested: i64, requested_s: i64) -> SwfJob {
    SwfJob {
        number,
        submit_s: submit,
        run_s: run,
        allocated_procs: allocated,
        requested_procs: requested,
        requested_s,
        user: 1,
    }
}

#[test]
fn trace_fields_resolve_as_specified() {
    let trace = Trace {
        header: SwfHeader { max_procs: None, max_nodes: Some(8) },
        jobs: vec![
            swf(1, 0, 100, 4, 2, 50),  // allocated wins; killed at the 50 s estimate
            swf(2, 0, 100, -1, 2, -1), // requested procs; estimate = run time
            swf(3, 0, -1, 4, 4, 10),   // no run time: skipped
            swf(4, 0, 10, 0, -1, 10),  // no processors: skipped
            swf(5, 0, 10, 9, 9, 10),   // larger than the machine: skipped
            swf(6, 0, 0, 1, 1, -1),    // zero run time is a job
        ],
    };
    let machine = crate::sim::machine_procs(&trace, None).unwrap();
    assert_eq!(machine, 8);
    let (jobs, skipped) = prepare(&trace, machine);
    assert_eq!(skipped, 3);
    let resolved: Vec<(i64, i64, i64, i64)> = jobs.iter().map(|j| (j.id, j.procs, j.run_s, j.estimate_s)).collect();
    assert_eq!(resolved, vec![(1, 4, 50, 50), (2, 2, 100, 100), (6, 1, 0, 0)]);
    assert_eq!(crate::sim::machine_procs(&trace, Some(16)).unwrap(), 16);
    let no_header = Trace { header: SwfHeader::default(), jobs: vec![] };
    assert!(crate::sim::machine_procs(&no_header, None).is_err());
}

#[test]
fn early_ends_move_conservative_reservations_earlier() {
    // j1 asks 100 s but runs 10; j2 (whole machine) was reserved at 100 and starts at 10.
    let jobs = vec![
        SimJob { id: 1, submit_s: 0, run_s: 10, estimate_s: 100, procs: 2, user: 1 },
        SimJob { id: 2, submit_s: 1, run_s: 5, estimate_s: 5, procs: 4, user: 1 },
    ];
    for policy in [Policy::Easy, Policy::Conservative] {
        let result = simulate(&jobs, 4, &SimConfig::new(policy));
        assert_eq!(result.outcomes[1], Outcome { start_s: 10, end_s: 15 }, "{policy:?}");
        assert_eq!(result.first_reservation_s[1], Some(100), "{policy:?}");
    }
}

#[test]
fn fairshare_puts_the_light_user_first() {
    // User 1 has used the machine; at 20 both users have a job queued: user 2's goes first.
    let mut jobs = jobs(&[(0, 20, 4), (1, 5, 4), (2, 5, 4)]);
    jobs[2].user = 2;
    let mut config = SimConfig::new(Policy::Fcfs);
    config.fairshare = true;
    let result = simulate(&jobs, 4, &config);
    assert_eq!(result.outcomes[2].start_s, 20);
    assert_eq!(result.outcomes[1].start_s, 25);
    let plain = simulate(&jobs, 4, &SimConfig::new(Policy::Fcfs));
    assert_eq!(plain.outcomes[1].start_s, 20);
}

/// xorshift64*: small, deterministic, good enough to shake out schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

fn random_trace(rng: &mut Rng) -> (Trace, i64) {
    let machine = 1 + rng.below(16);
    let count = 1 + rng.below(60);
    let mut submit = 0;
    let mut trace = Trace { header: SwfHeader { max_procs: Some(machine), max_nodes: None }, jobs: vec![] };
    for number in 1..=count {
        submit += if rng.below(3) == 0 { 0 } else { rng.below(20) };
        let run = rng.below(50) - i64::from(rng.below(40) == 0);
        let procs = 1 + rng.below(machine + 1);
        let requested = match rng.below(3) {
            0 => -1,
            1 => run + rng.below(30),
            _ => rng.below(60),
        };
        let mut job = swf(number, submit, run, procs, -1, requested);
        job.user = rng.below(4);
        trace.jobs.push(job);
    }
    (trace, machine)
}

fn assert_valid_schedule(jobs: &[SimJob], outcomes: &[Outcome], machine: i64, context: &str) {
    let mut events = Vec::new();
    for (job, outcome) in jobs.iter().zip(outcomes) {
        assert!(outcome.start_s >= job.submit_s, "{context}: job {} starts before it is submitted", job.id);
        assert_eq!(outcome.end_s, outcome.start_s + job.run_s, "{context}: job {} ran its run time", job.id);
        if job.run_s > 0 {
            events.push((outcome.start_s, 1, job.procs));
            events.push((outcome.end_s, 0, -job.procs));
        }
    }
    // Ends (0) before starts (1) at one instant.
    events.sort_unstable();
    let mut busy = 0;
    for (time, _, delta) in events {
        busy += delta;
        assert!(busy <= machine, "{context}: {busy} processors busy of {machine} at {time}");
    }
}

#[test]
fn properties_hold_on_random_traces() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..1500 {
        let (trace, machine) = random_trace(&mut rng);
        let (jobs, _) = prepare(&trace, machine);
        for policy in [Policy::Fcfs, Policy::Easy, Policy::Conservative] {
            for fairshare in [false, true] {
                let context = format!("case {case} {policy:?} fairshare={fairshare} machine {machine} jobs {jobs:?}");
                let mut config = SimConfig::new(policy);
                config.fairshare = fairshare;
                let result = simulate(&jobs, machine, &config);
                assert!(result.outcomes.iter().all(|o| o.start_s >= 0), "{context}: every job ran");
                assert_valid_schedule(&jobs, &result.outcomes, machine, &context);
                if fairshare {
                    continue;
                }
                for (index, outcome) in result.outcomes.iter().enumerate() {
                    if let Some(reservation) = result.first_reservation_s[index] {
                        assert!(
                            outcome.start_s <= reservation,
                            "{context}: job {} reserved at {reservation}, started at {}",
                            jobs[index].id,
                            outcome.start_s
                        );
                    }
                }
                if policy == Policy::Fcfs {
                    let starts: Vec<i64> = result.outcomes.iter().map(|o| o.start_s).collect();
                    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{context}: FCFS starts in order");
                }
            }
        }
    }
}
