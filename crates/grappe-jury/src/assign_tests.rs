//! Worked cases, the messages of infeasible problems, seeded property tests against brute force
//! on small random problems, and against the cold start (successive shortest paths alone) on
//! larger ones.

use crate::{Assignment, Infeasible, Problem, ProblemError, ProblemSpec, assign};

fn spec(apps: usize, reviewers: usize, k: usize, load: usize) -> ProblemSpec {
    ProblemSpec {
        applications: (0..apps).map(|a| format!("A{a}")).collect(),
        reviewers: (0..reviewers).map(|r| format!("R{r}")).collect(),
        reviewers_per_application: k,
        max_load: load,
        affinity: Vec::new(),
        conflicts: Vec::new(),
    }
}

fn solve(spec: ProblemSpec) -> Result<Assignment, Infeasible> {
    assign(&Problem::new(spec).expect("a valid problem"))
}

/// Every application k distinct reviewers, loads within L, no conflict; the total recomputed.
fn check_constraints(spec: &ProblemSpec, assignment: &Assignment) {
    let (n, m) = (spec.applications.len(), spec.reviewers.len());
    let mut per_app = vec![0; n];
    let mut per_reviewer = vec![0; m];
    for window in assignment.pairs.windows(2) {
        assert!(window[0] < window[1], "pairs sorted and distinct: {:?}", assignment.pairs);
    }
    let mut total = 0.0;
    for &(a, r) in &assignment.pairs {
        per_app[a] += 1;
        per_reviewer[r] += 1;
        assert!(!spec.conflicts.contains(&(a, r)), "conflicted pair ({a}, {r}) assigned");
        total += spec.affinity.iter().find(|&&(x, y, _)| (x, y) == (a, r)).map_or(0.0, |entry| entry.2);
    }
    assert!(per_app.iter().all(|&count| count == spec.reviewers_per_application), "{per_app:?}");
    assert!(per_reviewer.iter().all(|&count| count <= spec.max_load), "{per_reviewer:?}");
    assert!((total - assignment.total_affinity).abs() < 1e-9, "{total} vs {}", assignment.total_affinity);
}

#[test]
fn the_best_pairs_win_over_a_greedy_first_choice() {
    // Greedy would give R0 to A0 (5) and leave A1 with 0; the optimum gives R0 to A1 (4 + 4).
    let mut problem = spec(2, 2, 1, 1);
    problem.affinity = vec![(0, 0, 5.0), (0, 1, 4.0), (1, 0, 4.0)];
    let assignment = solve(problem.clone()).unwrap();
    check_constraints(&problem, &assignment);
    assert_eq!(assignment, Assignment { pairs: vec![(0, 1), (1, 0)], total_affinity: 8.0 });
}

#[test]
fn unlisted_pairs_have_affinity_zero_and_are_used_when_needed() {
    // A0 lists only R0; with k = 3 it takes two unlisted reviewers too. A negative listed pair
    // loses to an unlisted one.
    let mut problem = spec(1, 4, 3, 1);
    problem.affinity = vec![(0, 0, 2.5), (0, 1, -1.0)];
    let assignment = solve(problem.clone()).unwrap();
    check_constraints(&problem, &assignment);
    assert_eq!(assignment, Assignment { pairs: vec![(0, 0), (0, 2), (0, 3)], total_affinity: 2.5 });
}

#[test]
fn a_conflict_wins_over_its_listed_affinity() {
    let mut problem = spec(1, 2, 1, 1);
    problem.affinity = vec![(0, 0, 9.0)];
    problem.conflicts = vec![(0, 0)];
    assert_eq!(solve(problem).unwrap(), Assignment { pairs: vec![(0, 1)], total_affinity: 0.0 });
}

#[test]
fn no_affinity_at_all_is_a_feasible_assignment_of_total_zero() {
    let assignment = solve(spec(5, 4, 2, 3)).unwrap();
    check_constraints(&spec(5, 4, 2, 3), &assignment);
    assert_eq!(assignment.total_affinity, 0.0);
}

#[test]
fn decimal_affinities_reach_the_optimum_within_the_documented_tolerance() {
    let mut problem = spec(3, 3, 1, 1);
    problem.affinity = vec![(0, 0, 0.1), (0, 1, 0.2), (1, 0, 0.2), (1, 1, 0.3), (2, 2, 0.7)];
    let built = Problem::new(problem.clone()).unwrap();
    assert!(!built.costs_are_exact(), "0.1 has no short binary expansion");
    let assignment = assign(&built).unwrap();
    check_constraints(&problem, &assignment);
    assert_eq!(assignment.pairs, vec![(0, 1), (1, 0), (2, 2)]);
    assert!((assignment.total_affinity - 1.1).abs() < 1e-12);
    let mut halves = spec(1, 1, 1, 1);
    halves.affinity = vec![(0, 0, 0.5)];
    assert!(Problem::new(halves).unwrap().costs_are_exact());
}

fn infeasible(problem: ProblemSpec) -> String {
    solve(problem).expect_err("infeasible").to_string()
}

#[test]
fn infeasible_problems_say_which_constraint_cannot_be_met() {
    let mut few = spec(8, 4, 3, 8);
    few.conflicts = vec![(7, 0), (7, 2)];
    assert_eq!(infeasible(few), "no assignment exists: application A7 has only 2 non-conflicted reviewers, needs 3");
    assert_eq!(
        infeasible(spec(1000, 600, 3, 4)),
        "no assignment exists: 1,000 applications x k = 3,000 reviews needed > 600 reviewers x L = 2,400 reviews available"
    );
    // A0 and A1 may only be reviewed by R0 and R1, who take one application each: 2 reviews for
    // 2 applications needing 1 each is fine, but here A2 also conflicts with R2, R3.
    let mut hall = spec(3, 4, 1, 1);
    hall.conflicts = vec![(0, 2), (0, 3), (1, 2), (1, 3), (2, 2), (2, 3)];
    assert_eq!(
        infeasible(hall),
        "no assignment exists: these 3 applications need 3 reviews (A0, A1, A2), but the reviewers without a \
         conflict with them can give at most 2 (each at most L, one per application)"
    );
}

#[test]
fn bad_problems_are_errors_naming_the_entry() {
    let error = |problem: ProblemSpec| Problem::new(problem).expect_err("invalid").to_string();
    let mut nan = spec(1, 1, 1, 1);
    nan.affinity = vec![(0, 0, f64::NAN)];
    assert_eq!(error(nan), "affinity of application A0 and reviewer R0 is not a finite number");
    let mut twice = spec(2, 2, 1, 1);
    twice.affinity = vec![(1, 0, 1.0), (0, 1, 2.0), (1, 0, 3.0)];
    assert_eq!(error(twice), "affinity lists application A1 and reviewer R0 twice");
    let mut twice = spec(2, 2, 1, 1);
    twice.conflicts = vec![(0, 1), (0, 1)];
    assert_eq!(error(twice), "conflicts lists application A0 and reviewer R1 twice");
    let mut unknown = spec(2, 2, 1, 1);
    unknown.conflicts = vec![(0, 1), (0, 2)];
    assert_eq!(error(unknown), "conflicts entry 1: reviewer index 2 is not in the problem");
    assert_eq!(error(spec(2, 2, 0, 1)), "reviewers_per_application is 0: it must be between 1 and 16777216");
    assert!(matches!(Problem::new(spec(2, 2, 1, 0)), Err(ProblemError::OutOfRange { what: "max_load", value: 0 })));
}

/// SplitMix64: our own seeded generator, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }
}

/// The optimum by dynamic programming over the reviewers' loads, application by application,
/// each taking every allowed set of k reviewers; `None` when no assignment exists.
fn brute_force(problem: &ProblemSpec) -> Option<i64> {
    let (n, m, k, load) =
        (problem.applications.len(), problem.reviewers.len(), problem.reviewers_per_application, problem.max_load);
    let mut affinity = vec![vec![0_i64; m]; n];
    for &(a, r, value) in &problem.affinity {
        affinity[a][r] = value as i64;
    }
    let mut best: std::collections::HashMap<Vec<usize>, i64> = [(vec![0; m], 0)].into_iter().collect();
    for (a, affinity) in affinity.iter().enumerate() {
        let mut next = std::collections::HashMap::new();
        for (loads, total) in &best {
            for set in 0_u32..1 << m {
                if set.count_ones() as usize != k {
                    continue;
                }
                let members: Vec<usize> = (0..m).filter(|&r| set & (1 << r) != 0).collect();
                if members.iter().any(|&r| loads[r] == load || problem.conflicts.contains(&(a, r))) {
                    continue;
                }
                let mut loads = loads.clone();
                let mut total = *total;
                for &r in &members {
                    loads[r] += 1;
                    total += affinity[r];
                }
                let entry = next.entry(loads).or_insert(i64::MIN);
                *entry = (*entry).max(total);
            }
        }
        best = next;
    }
    best.values().copied().max()
}

/// The Hall certificate holds: the named applications need more than the reviewers can give.
fn check_hall(problem: &ProblemSpec, error: &Infeasible) {
    let Infeasible::Hall { applications, needed, available } = error else { return };
    let set: Vec<usize> =
        applications.iter().map(|name| problem.applications.iter().position(|a| a == name).unwrap()).collect();
    assert_eq!(*needed, (problem.reviewers_per_application * set.len()) as u64);
    let can_give: usize = (0..problem.reviewers.len())
        .map(|r| set.iter().filter(|&&a| !problem.conflicts.contains(&(a, r))).count().min(problem.max_load))
        .sum();
    assert_eq!(*available, can_give as u64);
    assert!(can_give < set.len() * problem.reviewers_per_application, "{error}");
}

#[test]
fn random_small_problems_match_brute_force() {
    let mut rng = Rng(0x6A75_7279);
    let (mut feasible, mut infeasible) = (0, 0);
    for case in 0..3000 {
        let (n, m) = (rng.range(1, 6), rng.range(1, 6));
        let mut problem = spec(n, m, rng.range(1, m.min(3)), rng.range(1, 3));
        for a in 0..n {
            for r in 0..m {
                if rng.range(0, 9) < 6 {
                    problem.affinity.push((a, r, rng.range(0, 12) as f64 - 3.0));
                }
                if rng.range(0, 9) < 1 {
                    problem.conflicts.push((a, r));
                }
            }
        }
        let expected = brute_force(&problem);
        match (solve(problem.clone()), expected) {
            (Ok(assignment), Some(optimum)) => {
                check_constraints(&problem, &assignment);
                assert_eq!(assignment.total_affinity, optimum as f64, "case {case}: {problem:?}");
                feasible += 1;
            }
            (Err(error), None) => {
                check_hall(&problem, &error);
                infeasible += 1;
            }
            (got, expected) => panic!("case {case}: {got:?}, brute force {expected:?}, {problem:?}"),
        }
    }
    assert!(feasible > 1000 && infeasible > 200, "{feasible} feasible, {infeasible} infeasible");
}

#[test]
fn a_larger_random_problem_meets_every_constraint() {
    let mut rng = Rng(7);
    let (n, m) = (300, 250);
    let mut problem = spec(n, m, 3, 4);
    for a in 0..n {
        for _ in 0..20 {
            problem.affinity.push((a, rng.range(0, m - 1), rng.range(1, 1000) as f64 / 1024.0));
        }
        problem.conflicts.push((a, rng.range(0, m - 1)));
    }
    problem.affinity.sort_by_key(|&(a, r, _)| (a, r));
    problem.affinity.dedup_by_key(|entry| (entry.0, entry.1));
    problem.conflicts.sort_unstable();
    problem.conflicts.dedup();
    let assignment = solve(problem.clone()).unwrap();
    check_constraints(&problem, &assignment);
    assert_eq!(solve(problem).unwrap(), assignment, "deterministic");
}

/// The fairness mode by brute force: the highest threshold at which some assignment uses only
/// pairs at least that good, and the best total there.
fn brute_force_fair(problem: &ProblemSpec) -> Option<(i64, i64)> {
    let affinity = |a: usize, r: usize| {
        problem.affinity.iter().find(|&&(x, y, _)| (x, y) == (a, r)).map_or(0, |entry| entry.2 as i64)
    };
    let (n, m) = (problem.applications.len(), problem.reviewers.len());
    let mut thresholds: Vec<i64> =
        (0..n).flat_map(|a| (0..m).map(move |r| (a, r))).map(|(a, r)| affinity(a, r)).collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds.into_iter().rev().find_map(|threshold| {
        let mut restricted = problem.clone();
        for a in 0..n {
            for r in 0..m {
                if affinity(a, r) < threshold && !restricted.conflicts.contains(&(a, r)) {
                    restricted.conflicts.push((a, r));
                }
            }
        }
        brute_force(&restricted).map(|total| (threshold, total))
    })
}

#[test]
fn the_fairness_mode_raises_the_worst_pair_then_the_total() {
    // The best total (10 + 0) leaves A1 an unlisted reviewer (affinity 0); the fair assignment
    // gives every application a pair of affinity 2 at least, and the best total then (2 + 3).
    let mut problem = spec(2, 2, 1, 1);
    problem.affinity = vec![(0, 0, 10.0), (0, 1, 2.0), (1, 0, 3.0)];
    let best = solve(problem.clone()).unwrap();
    assert_eq!(best, Assignment { pairs: vec![(0, 0), (1, 1)], total_affinity: 10.0 });
    let fair = crate::assign_fair(&Problem::new(problem.clone()).unwrap()).unwrap();
    check_constraints(&problem, &fair.assignment);
    assert_eq!(fair.worst_pair_affinity, Some(2.0));
    assert_eq!(fair.assignment, Assignment { pairs: vec![(0, 1), (1, 0)], total_affinity: 5.0 });
}

#[test]
fn random_small_problems_match_brute_force_in_the_fairness_mode() {
    let mut rng = Rng(0x6661_6972);
    let mut feasible = 0;
    for case in 0..600 {
        let (n, m) = (rng.range(1, 5), rng.range(1, 5));
        let mut problem = spec(n, m, rng.range(1, m.min(3)), rng.range(1, 3));
        for a in 0..n {
            for r in 0..m {
                if rng.range(0, 9) < 6 {
                    problem.affinity.push((a, r, rng.range(0, 12) as f64 - 3.0));
                }
                if rng.range(0, 9) < 1 {
                    problem.conflicts.push((a, r));
                }
            }
        }
        let got = crate::assign_fair(&Problem::new(problem.clone()).unwrap());
        match (got, brute_force_fair(&problem)) {
            (Ok(fair), Some((worst, total))) => {
                check_constraints(&problem, &fair.assignment);
                assert_eq!(fair.worst_pair_affinity, Some(worst as f64), "case {case}: {problem:?}");
                assert_eq!(fair.assignment.total_affinity, total as f64, "case {case}: {problem:?}");
                feasible += 1;
            }
            (Err(_), None) => {}
            (got, expected) => panic!("case {case}: {got:?}, brute force {expected:?}, {problem:?}"),
        }
    }
    assert!(feasible > 300, "{feasible} feasible");
}

/// Random problems with decimals, ties, conflicts and unlisted pairs, too large for the brute
/// force: the auction's warm start and the cold start's successive shortest paths (the solver
/// before the auction, kept as the tests' oracle) reach the same optimum, or both refuse.
#[test]
fn random_problems_match_the_cold_start() {
    let mut rng = Rng(0x7761_726d);
    let (mut feasible, mut infeasible, mut hall) = (0, 0, 0);
    for case in 0..1500 {
        let (n, m) = (rng.range(1, 40), rng.range(1, 30));
        let k = rng.range(1, m.min(4));
        let mut problem = spec(n, m, k, rng.range(1, 6));
        let (density, conflicted) = (rng.range(2, 9), rng.range(0, 5));
        // Few distinct values (ties) in one case out of two, quarter units otherwise.
        let values = if rng.range(0, 1) == 0 { 3 } else { 4000 };
        for a in 0..n {
            for r in 0..m {
                if rng.range(0, 9) < density {
                    problem.affinity.push((a, r, rng.range(0, values) as f64 / 4.0 - 0.5));
                }
                if rng.range(0, 19) < conflicted {
                    problem.conflicts.push((a, r));
                }
            }
        }
        // One case in three: a group of applications that may only have the same few
        // reviewers (a Hall set when they need more reviews than those can give).
        if rng.range(0, 2) == 0 {
            let (group, few) = (rng.range(1, n), rng.range(k, (k + 2).min(m)));
            for a in 0..group {
                problem.conflicts.extend((few..m).map(|r| (a, r)));
            }
            problem.conflicts.sort_unstable();
            problem.conflicts.dedup();
        }
        let built = Problem::new(problem.clone()).unwrap();
        let restricted = built.at_least(if rng.range(0, 3) == 0 { 0.25 } else { -1.0 });
        for problem_now in [&built, &restricted] {
            match (crate::assign::assign(problem_now), crate::assign::assign_cold(problem_now)) {
                (Ok(warm), Ok(cold)) => {
                    if std::ptr::eq(problem_now, &built) {
                        check_constraints(&problem, &warm);
                    }
                    assert_eq!(warm.total_affinity, cold.total_affinity, "case {case}: {problem:?}");
                    feasible += 1;
                }
                (Err(warm), Err(cold)) => {
                    assert_eq!(warm, cold, "case {case}");
                    if std::ptr::eq(problem_now, &built) {
                        check_hall(&problem, &warm);
                    }
                    infeasible += 1;
                    hall += usize::from(matches!(warm, Infeasible::Hall { .. }));
                }
                (warm, cold) => panic!("case {case}: warm {warm:?}, cold {cold:?}, {problem:?}"),
            }
        }
    }
    assert!(feasible > 800 && hall > 50, "{feasible} feasible, {infeasible} infeasible, {hall} Hall");
}
