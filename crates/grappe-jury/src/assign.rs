//! The assignment as a min-cost flow, solved exactly by successive shortest paths.
//!
//! **The network.** A node per application, per reviewer, and a sink. Each application has a
//! supply of k units; an application sends a unit to a reviewer over the pair's edge (capacity
//! 1, cost `-affinity`, scaled to integers by [`Problem`]); a reviewer passes at most L units to
//! the sink. A flow that ships every supply is an assignment (integral: the capacities are), and
//! its cost is minus its total affinity, so a minimum-cost flow is a maximal assignment.
//!
//! **Unlisted pairs without 10^8 edges.** Every pair that is neither listed in `affinity` nor
//! conflicted has an edge of cost 0. We never store these edges: Dijkstra enumerates them
//! lazily. With potentials `p`, the reduced cost of such an edge `a -> r` is `p(a) - p(r)`; for
//! every application the reviewers in decreasing `p(r)` are its unlisted edges in increasing
//! reduced cost. We keep the reviewers in one ordered set by `(-p(r), r)`; when an application
//! is settled at distance `d(a)` it pushes only one heap entry, its cheapest unlisted edge to a
//! reviewer not yet settled (skipping its own listed, conflicted and already assigned
//! reviewers); when that entry is popped it relaxes that reviewer and pushes the next one. As the
//! entries of one application come out in nondecreasing key, the heap pops exactly what Dijkstra
//! on the full graph would, and each application costs as many heap entries as unlisted edges
//! Dijkstra actually looks at, not `reviewers`. Unlisted edges that carry flow are stored, as
//! any assigned pair is, and their backward edges are ordinary edges.
//!
//! **Why the result is optimal.** We add the units one at a time (application by application,
//! in their order, k units each), each along a
//! shortest path in the residual network from its application to the sink (Dijkstra on reduced
//! costs `c(u, v) + p(u) - p(v) >= 0`). This is the successive-shortest-path method: a flow
//! augmented along a shortest path stays of minimum cost among the flows with the same supplies
//! (no negative cycle appears; Ahuja, Magnanti and Orlin, *Network Flows*, ch. 9), so after the
//! last unit the flow is a minimum-cost flow, that is, a maximal assignment. The first
//! potentials are feasible: `p(r) = p(sink) = 0`, `p(a) = -min(0, min over listed r of c(a,
//! r))`. They keep every reviewer with room at the sink's potential (a settled one is settled at
//! the sink's distance, so it is not moved; loads never go down), so the search ends at the first
//! reviewer with room it settles. Dijkstra stops when it settles the sink at distance `D`; then `p(v) += d(v) - D`
//! for every settled node and nothing else. This keeps every residual reduced cost nonnegative:
//! for an edge `u -> v` with both settled, `d(v) <= d(u) + c'`; with `u` settled and `v` not,
//! `d(u) + c' >= D` (else `v` would have been settled before the sink); with `v` settled and `u`
//! not, `d(v) <= D`; and the path's edges get reduced cost 0, so their reversed edges too.
//! Potentials stay within a path's cost (`|p| <= nodes * max |cost|`), distances within three
//! times that, which the scale of [`Problem`] keeps inside `i64`.
//!
//! **Cutting the searches, exactly.** Reviewers' potentials start at 0 and only fall (`d(v) -
//! D <= 0`). Each application keeps its listed pairs sorted by `bound <= c(a, r) - p(r)`: at
//! first the cost, later `c(a, r) - p(r)` as it was when the list was last sorted, still a lower
//! bound since `p(r)` has only fallen since. Scanning a settled application in that order, once
//! `d(a) + bound + p(a)` reaches the sink's tentative distance (set as soon as a reviewer with
//! room is reached), every later pair leads to a node that would settle after the sink, which
//! changes neither the path nor the potentials: the scan stops. An edge whose exact reduced
//! distance reaches that bound is skipped for the same reason. A scan that skips many pairs
//! (their bound was stale) sorts the application's list again with the current potentials.
//!
//! **Infeasibility.** Before the flow, two counts: an application with fewer than k
//! non-conflicted reviewers, or `k * applications > min(L, applications) * reviewers`. Past
//! them, when Dijkstra from application `a0` empties its heap without reaching the sink, the
//! applications it reached, `X`, violate Hall's condition for this b-matching: every reviewer it
//! reached is full, with all its applications in `X` (its backward edges were followed), and
//! every non-conflicted pair between `X` and a reviewer it did not reach already carries flow;
//! so `sum over r of min(L, |X minus r's conflicts|)`, the most reviews `X` could ever get, is at
//! most the flow now into `X`, which is below `k * |X|` since `a0` lacks a reviewer.
//!
//! **Determinism.** Applications are served in their order, the heap breaks ties by node index,
//! the ordered set by reviewer index: the same problem gives the same assignment.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;
use std::ops::Bound;

use crate::problem::Problem;

/// A maximal assignment: the pairs (application, reviewer) by positions, sorted, and their
/// total affinity (the listed affinities of the pairs, added in that order).
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub pairs: Vec<(usize, usize)>,
    pub total_affinity: f64,
}

/// Why no assignment exists, naming applications by their ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Infeasible {
    /// An application with fewer non-conflicted reviewers than k.
    TooFewReviewers { application: String, allowed: usize, needed: usize },
    /// More reviews needed, `k * applications`, than reviewers can give, `min(L, applications)
    /// * reviewers`.
    Capacity { applications: usize, reviewers: usize, needed: u64, available: u64 },
    /// A set of applications (Hall's condition) that needs more reviews than the reviewers who
    /// may review them can give: each at most L, and one per application.
    Hall { applications: Vec<String>, needed: u64, available: u64 },
}

impl fmt::Display for Infeasible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no assignment exists: ")?;
        match self {
            Self::TooFewReviewers { application, allowed, needed } => write!(
                f,
                "application {application} has only {allowed} non-conflicted reviewer{}, needs {needed}",
                plural(*allowed as u64)
            ),
            Self::Capacity { applications, reviewers, needed, available } => write!(
                f,
                "{} applications x k = {} reviews needed > {} reviewers x L = {} reviews available",
                thousands(*applications as u64),
                thousands(*needed),
                thousands(*reviewers as u64),
                thousands(*available)
            ),
            Self::Hall { applications, needed, available } => {
                const SHOWN: usize = 10;
                write!(f, "these {} applications need {} reviews (", applications.len(), thousands(*needed))?;
                for (i, application) in applications.iter().take(SHOWN).enumerate() {
                    write!(f, "{}{application}", if i == 0 { "" } else { ", " })?;
                }
                if applications.len() > SHOWN {
                    write!(f, " and {} more", applications.len() - SHOWN)?;
                }
                write!(
                    f,
                    "), but the reviewers without a conflict with them can give at most {} (each at most L, one per application)",
                    thousands(*available)
                )
            }
        }
    }
}

impl std::error::Error for Infeasible {}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// `3000` as `3,000`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Every application gets exactly k distinct reviewers, no reviewer more than L applications,
/// no conflicted pair, total affinity maximal; or why that cannot be.
pub fn assign(problem: &Problem) -> Result<Assignment, Infeasible> {
    let (n, m, k) = (problem.applications(), problem.reviewers(), problem.k);
    for a in 0..n {
        let allowed = if problem.unlisted { m - problem.conflicts(a).len() } else { problem.listed(a).len() };
        if allowed < k {
            let application = problem.applications[a].clone();
            return Err(Infeasible::TooFewReviewers { application, allowed, needed: k });
        }
    }
    let load = problem.max_load.min(n);
    let needed = k as u64 * n as u64;
    let available = load as u64 * m as u64;
    if needed > available {
        return Err(Infeasible::Capacity { applications: n, reviewers: m, needed, available });
    }
    let mut flow = Flow::new(problem, load);
    for a in 0..n {
        for _ in 0..k {
            flow.augment_from(a as u32).map_err(|reached| hall(problem, load, &reached))?;
        }
    }
    let mut pairs: Vec<(usize, usize)> = flow
        .app_pairs
        .iter()
        .enumerate()
        .flat_map(|(a, reviewers)| reviewers.iter().map(move |&(r, _)| (a, r as usize)))
        .collect();
    pairs.sort_unstable();
    // From +0.0: an empty `sum` of floats is -0.0.
    let total_affinity = pairs.iter().fold(0.0, |total, &(a, r)| total + problem.affinity(a, r as u32));
    Ok(Assignment { pairs, total_affinity })
}

/// An assignment of [`assign_fair`]: the worst pair's affinity first, then the total.
#[derive(Clone, Debug, PartialEq)]
pub struct FairAssignment {
    pub assignment: Assignment,
    /// The largest `t` such that some assignment uses only pairs of affinity at least `t`; none
    /// when there is no application.
    pub worst_pair_affinity: Option<f64>,
}

/// The fairness mode: first the worst assigned pair's affinity as high as it can be (a
/// bottleneck assignment, exact: a binary search over the affinities that occur, 0 included when
/// an unlisted pair may be assigned, each step one [`assign`] of [`Problem::at_least`] that
/// threshold), then, among the assignments that use only pairs at least that good, the total
/// affinity maximal. What it guarantees: no assignment has a better worst pair; none with that
/// worst pair has a larger total. It is not FairFlow's heuristic on each application's sum of
/// affinities (maximising the worst application's sum exactly is NP-hard); every application's
/// sum is at least k times the worst pair. Costs `log2(distinct affinities)` flows.
pub fn assign_fair(problem: &Problem) -> Result<FairAssignment, Infeasible> {
    // Infeasible at any threshold means infeasible as it is: say why, as `assign` does.
    let loosest = assign(problem)?;
    let mut thresholds: Vec<f64> = problem.listed.iter().map(|listed| listed.affinity).collect();
    if problem.unlisted {
        thresholds.push(0.0);
    }
    thresholds.sort_unstable_by(f64::total_cmp);
    thresholds.dedup();
    // Feasible at `thresholds[low]`, infeasible at `thresholds[high]` (none: `len`). The loosest
    // assignment is feasible at its own worst pair, and the most total affinity there.
    let worst = |assignment: &Assignment| {
        assignment.pairs.iter().map(|&(a, r)| problem.affinity(a, r as u32)).min_by(f64::total_cmp)
    };
    let Some(loosest_worst) = worst(&loosest) else {
        return Ok(FairAssignment { assignment: loosest, worst_pair_affinity: None });
    };
    let mut low = thresholds.partition_point(|&t| t < loosest_worst);
    let mut high = thresholds.len();
    let mut best = loosest;
    while low + 1 < high {
        let middle = low + (high - low) / 2;
        match assign(&problem.at_least(thresholds[middle])) {
            Ok(assignment) => {
                low = middle;
                best = assignment;
            }
            Err(_) => high = middle,
        }
    }
    Ok(FairAssignment { worst_pair_affinity: worst(&best), assignment: best })
}

/// The Hall violation of the applications Dijkstra reached (see the module comment).
fn hall(problem: &Problem, load: usize, reached: &[u32]) -> Infeasible {
    // How many applications of the set each reviewer may review.
    let size = reached.len();
    let mut allowed = vec![if problem.unlisted { size } else { 0 }; problem.reviewers()];
    for &a in reached {
        if problem.unlisted {
            for &r in problem.conflicts(a as usize) {
                allowed[r as usize] -= 1;
            }
        } else {
            for listed in problem.listed(a as usize) {
                allowed[listed.reviewer as usize] += 1;
            }
        }
    }
    let available = allowed.iter().map(|&allowed| allowed.min(load) as u64).sum();
    let mut sorted = reached.to_vec();
    sorted.sort_unstable();
    let applications = sorted.iter().map(|&a| problem.applications[a as usize].clone()).collect();
    Infeasible::Hall { applications, needed: (problem.k * size) as u64, available }
}

const UNREACHED: i64 = i64::MAX;
/// The `cursor` of a heap entry that settles its node (not an unlisted edge).
const SETTLE: u32 = u32::MAX;

/// A listed pair in the flow: `bound <= cost - p(reviewer)` at all times.
#[derive(Clone, Copy)]
struct Edge {
    bound: i64,
    cost: i64,
    reviewer: u32,
}

/// An application's listed pairs are sorted again once a scan of them wasted this many pairs
/// (and at least half of those it looked at) on reviewers their bound made look cheaper than
/// they were. In tests, after every wasted pair, so that the brute-force comparisons exercise it.
const REFRESH_WASTED: usize = if cfg!(test) { 1 } else { 8 };

struct Flow<'p> {
    problem: &'p Problem,
    n: usize,
    load: usize,
    /// Applications, then reviewers, then the sink.
    potential: Vec<i64>,
    /// Assigned pairs by application: (reviewer, cost), at most k each.
    app_pairs: Vec<Vec<(u32, i64)>>,
    /// Assigned pairs by reviewer: (application, cost), at most L each.
    reviewer_pairs: Vec<Vec<(u32, i64)>>,
    /// Reviewers by `(-p(r), r)`: unlisted edges in increasing reduced cost.
    by_potential: BTreeSet<(i64, u32)>,
    /// Each application's listed pairs (the CSR of `Problem::listed`), sorted by a lower bound of
    /// `cost - p(r)`, taken when last sorted: reviewers' potentials never rise, so it stays a
    /// lower bound; `refresh` sorts an application's pairs again by their current value.
    edges: Vec<Edge>,
    // Dijkstra's scratch, reset through `touched` only.
    distance: Vec<i64>,
    settled: Vec<bool>,
    /// The node a node was reached from, and for a reviewer the cost of that forward edge.
    parent: Vec<(u32, i64)>,
    touched: Vec<u32>,
    /// (key, node, cursor): `cursor == SETTLE` settles `node`; otherwise `node` is an
    /// application and `cursor` the reviewer of its next unlisted edge.
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
}

impl<'p> Flow<'p> {
    fn new(problem: &'p Problem, load: usize) -> Flow<'p> {
        let (n, m) = (problem.applications(), problem.reviewers());
        // Reviewers and the sink at 0, each application at minus its cheapest edge: every
        // reduced cost is nonnegative, an application's best reviewer is at distance 0, and a
        // reviewer with room is at the sink's potential, so Dijkstra stops at the first one.
        let mut potential = vec![0_i64; n + m + 1];
        for (a, p) in potential.iter_mut().enumerate().take(n) {
            *p = -problem.listed(a).iter().map(|listed| listed.cost).min().unwrap_or(0).min(0);
        }
        let by_potential = (0..m as u32).map(|r| (-potential[n + r as usize], r)).collect();
        Flow {
            problem,
            n,
            load,
            potential,
            app_pairs: vec![Vec::with_capacity(problem.k); n],
            reviewer_pairs: vec![Vec::new(); m],
            by_potential,
            edges: problem
                .listed
                .iter()
                .map(|listed| Edge { bound: listed.cost, cost: listed.cost, reviewer: listed.reviewer })
                .collect(),
            distance: vec![UNREACHED; n + m + 1],
            settled: vec![false; n + m + 1],
            parent: vec![(0, 0); n + m + 1],
            touched: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    fn sink(&self) -> u32 {
        self.potential.len() as u32 - 1
    }

    /// Ships one more unit from application `a0` along a shortest path; without a path, the
    /// applications reached (a Hall violation).
    fn augment_from(&mut self, a0: u32) -> Result<(), Vec<u32>> {
        for &v in &self.touched {
            self.distance[v as usize] = UNREACHED;
            self.settled[v as usize] = false;
        }
        self.touched.clear();
        self.heap.clear();
        let sink = self.sink();
        self.relax(a0, 0, (a0, 0));
        let mut settled_order = Vec::new();
        while let Some(Reverse((key, node, cursor))) = self.heap.pop() {
            if cursor != SETTLE {
                let reviewer = self.n as u32 + cursor;
                if !self.settled[reviewer as usize] {
                    self.relax(reviewer, key, (node, 0));
                }
                self.push_unlisted(node, Bound::Excluded(cursor));
                continue;
            }
            if self.settled[node as usize] || key > self.distance[node as usize] {
                continue;
            }
            self.settled[node as usize] = true;
            settled_order.push(node);
            if node == sink {
                break;
            }
            let p_node = self.potential[node as usize];
            if (node as usize) < self.n {
                let a = node as usize;
                // By bound: once `key + bound + p(a)`, a lower bound of the reduced distance,
                // reaches the sink's tentative distance, no later edge can lead to a node settled
                // before the sink.
                let (mut scanned, mut wasted) = (0_usize, 0_usize);
                for i in self.problem.listed_start[a]..self.problem.listed_start[a + 1] {
                    let edge = self.edges[i];
                    if key + edge.bound + p_node >= self.distance[sink as usize] {
                        break;
                    }
                    scanned += 1;
                    let r = edge.reviewer;
                    if self.app_pairs[a].iter().any(|&(assigned, _)| assigned == r) {
                        continue;
                    }
                    let v = self.n as u32 + r;
                    let distance = key + edge.cost + p_node - self.potential[v as usize];
                    if distance >= self.distance[sink as usize] {
                        wasted += 1;
                        continue; // settled after the sink, if ever: no use
                    }
                    self.relax(v, distance, (node, edge.cost));
                    if self.reviewer_pairs[r as usize].len() < self.load {
                        let to_sink = distance + self.potential[v as usize] - self.potential[sink as usize];
                        self.relax(sink, to_sink, (v, 0));
                    }
                }
                if wasted >= REFRESH_WASTED && 2 * wasted >= scanned {
                    self.refresh(a);
                }
                self.push_unlisted(node, Bound::Unbounded);
            } else {
                let r = node as usize - self.n;
                if self.reviewer_pairs[r].len() < self.load {
                    let reduced = p_node - self.potential[sink as usize];
                    self.relax(sink, key + reduced, (node, 0));
                }
                for i in 0..self.reviewer_pairs[r].len() {
                    let (a, cost) = self.reviewer_pairs[r][i];
                    let reduced = -cost + p_node - self.potential[a as usize];
                    self.relax(a, key + reduced, (node, 0));
                }
            }
        }
        if !self.settled[sink as usize] {
            return Err(settled_order.into_iter().filter(|&v| (v as usize) < self.n).collect());
        }
        let at_sink = self.distance[sink as usize];
        for &v in &settled_order {
            let shift = self.distance[v as usize] - at_sink;
            if shift == 0 {
                continue;
            }
            let old = self.potential[v as usize];
            self.potential[v as usize] = old + shift;
            if v as usize >= self.n && v != sink {
                let r = v - self.n as u32;
                self.by_potential.remove(&(-old, r));
                self.by_potential.insert((-(old + shift), r));
            }
        }
        // Walk back: sink <- reviewer <- application (new pair) <- reviewer (pair undone) ...
        let mut reviewer = self.parent[sink as usize].0;
        loop {
            let (app, cost) = self.parent[reviewer as usize];
            let r = reviewer - self.n as u32;
            self.app_pairs[app as usize].push((r, cost));
            self.reviewer_pairs[r as usize].push((app, cost));
            if app == a0 {
                return Ok(());
            }
            let previous = self.parent[app as usize].0;
            let old = previous - self.n as u32;
            self.app_pairs[app as usize].retain(|&(assigned, _)| assigned != old);
            self.reviewer_pairs[old as usize].retain(|&(assigned, _)| assigned != app);
            reviewer = previous;
        }
    }

    /// Sorts application `a`'s listed pairs again by `cost - p(r)` now.
    fn refresh(&mut self, a: usize) {
        let edges = &mut self.edges[self.problem.listed_start[a]..self.problem.listed_start[a + 1]];
        for edge in edges.iter_mut() {
            edge.bound = edge.cost - self.potential[self.n + edge.reviewer as usize];
        }
        edges.sort_unstable_by_key(|edge| (edge.bound, edge.reviewer));
    }

    fn relax(&mut self, v: u32, key: i64, parent: (u32, i64)) {
        let distance = &mut self.distance[v as usize];
        if key < *distance {
            if *distance == UNREACHED {
                self.touched.push(v);
            }
            *distance = key;
            self.parent[v as usize] = parent;
            self.heap.push(Reverse((key, v, SETTLE)));
        }
    }

    /// Pushes application `a`'s cheapest unlisted edge after `after` to a reviewer not settled.
    fn push_unlisted(&mut self, a: u32, after: Bound<u32>) {
        if !self.problem.unlisted {
            return;
        }
        let n = self.n;
        let from = match after {
            Bound::Excluded(r) => Bound::Excluded((-self.potential[n + r as usize], r)),
            _ => Bound::Unbounded,
        };
        let blocked = self.problem.blocked(a as usize);
        let assigned = &self.app_pairs[a as usize];
        let next = self.by_potential.range((from, Bound::Unbounded)).find(|&&(_, r)| {
            !self.settled[n + r as usize]
                && blocked.binary_search(&r).is_err()
                && !assigned.iter().any(|&(taken, _)| taken == r)
        });
        if let Some(&(minus_p, r)) = next {
            let key = self.distance[a as usize] + self.potential[a as usize] + minus_p;
            if key < self.distance[self.sink() as usize] {
                self.heap.push(Reverse((key, a, r)));
            }
        }
    }
}
