//! The assignment as a min-cost flow, solved exactly: an auction finds a start close to the
//! optimum, successive shortest paths make it optimal.
//!
//! **The network.** A node per application, per reviewer, and a sink. Each application has a
//! supply of k units; an application sends a unit to a reviewer over the pair's edge (capacity
//! 1, cost `-affinity`, scaled to integers by [`Problem`]); a reviewer passes at most L units to
//! the sink (its `out`), which takes `k * applications`. A flow that ships every supply is an
//! assignment (integral: the capacities are), and its cost is minus its total affinity, so a
//! minimum-cost flow is a maximal assignment.
//!
//! **Unlisted pairs without 10^8 edges.** Every pair that is neither listed in `affinity` nor
//! conflicted has an edge of cost 0. We never store these edges. With reviewer prices (the
//! auction) or potentials `p` (the flow), all unlisted edges of an application differ only by the
//! reviewer's price or potential, so one ordered set of reviewers by price (by `(-p(r), r)`)
//! gives every application its unlisted edges best first, skipping its own listed, conflicted
//! and already assigned reviewers. The auction takes the first few; Dijkstra, when it settles an
//! application at distance `d(a)`, pushes only one heap entry, its cheapest unlisted edge to a
//! reviewer not yet settled, and when that entry is popped relaxes that reviewer and pushes the
//! next one. As the entries of one application come out in nondecreasing key, the heap pops
//! exactly what Dijkstra on the full graph would, and each application costs as many heap
//! entries as unlisted edges Dijkstra actually looks at, not `reviewers`. The sink's backward
//! edges (to every reviewer with `out > 0`, reduced cost `p(sink) - p(r)`) are enumerated the
//! same way. Unlisted edges that carry flow are stored, as any assigned pair is.
//!
//! **The auction (a start; exactness does not depend on it).** Applications bid for reviewers
//! (Bertsekas's forward auction, one scale): a reviewer has L slots, each taken at the price its
//! holder bid, and its price is its cheapest slot's once all L are taken, 0 before. An
//! application that lacks `d` reviewers takes the `d` best by value `-cost - price` among those
//! it does not hold, each at the price that leaves it ε short of the next best value, evicting
//! the reviewer's cheapest holder, who bids again. Applications wait in a queue in their order.
//! ε is the largest cost over 2^10; the auction gives up on a price past 4 times the largest
//! cost or after 32 bids per unit (an infeasible problem would bid forever), and the cold start
//! (below) solves the problem instead.
//!
//! **From the auction to an optimal pseudoflow.** Potentials: the sink at 0; a reviewer whose L
//! slots are taken at minus its price, any other at 0; an application at `p(a)`, the best value
//! `-c(a, r) + p(r)` of a pair it does not hold (none: the worst of those it holds). A held pair
//! worth less than `p(a)` (within ε of it, mostly) is dropped: its reviewer keeps its `out` when
//! `p(r) < 0` (a deficit at the reviewer), gives the unit back when `p(r) = 0` (a deficit at the
//! sink). Every residual edge then has a nonnegative reduced cost `c(u, v) + p(u) - p(v)`: a pair
//! not held, `c + p(a) - p(r) >= 0` by the choice of `p(a)`; a held pair backwards, `-c + p(r) -
//! p(a) >= 0` as it was kept; reviewer to sink (room: only reviewers at `p(r) = 0` have room),
//! `p(r) - p(sink) = 0`; sink back to a reviewer, `0 - p(r) >= 0` as prices are not negative. A
//! pseudoflow with such potentials has no negative residual cycle: it is of minimum cost among
//! those with its own excesses (applications short of k) and deficits.
//!
//! **Why the result is optimal.** Successive shortest paths from there: each missing unit
//! (application by application, in their order) goes along a shortest path in the residual
//! network from its application to the nearest node with a deficit (Dijkstra on reduced costs
//! to a virtual goal, reached from each such node at its own distance). A pseudoflow augmented
//! along a shortest path stays of minimum cost for its imbalances (Ahuja, Magnanti and Orlin,
//! *Network Flows*, ch. 9), so when every application has k pairs the excesses are gone, hence
//! the deficits (they add up to the same), and the flow is a minimum-cost flow, that is, a
//! maximal assignment. Dijkstra stops when it settles the goal at distance `D`; then `p(v) +=
//! d(v) - D` for every settled node and nothing else. This keeps every residual reduced cost
//! nonnegative: for an edge `u -> v` with both settled, `d(v) <= d(u) + c'`; with `u` settled and
//! `v` not, `d(u) + c' >= D` (else `v` would have been settled before the goal); with `v` settled
//! and `u` not, `d(v) <= D`; and the path's edges get reduced cost 0, so their reversed edges too.
//! A feasible problem always has such a path (the difference between this pseudoflow and any
//! assignment holds one from each excess to a deficit), so a failed search means no assignment
//! exists; the cold start then runs to explain why.
//!
//! **The cold start** (the explanation, and the tests' oracle): no flow, the sink lacking all its
//! units, reviewers and the sink at potential 0, each application at minus its cheapest edge.
//! It keeps every reviewer with room at the sink's potential (a settled one is settled at the
//! sink's distance, so it is not moved; loads never go down), so a search ends at the first
//! reviewer with room it settles.
//!
//! **Cutting the searches, exactly.** Reviewers' potentials only fall (`d(v) - D <= 0`). Each
//! application keeps its listed pairs sorted by `bound <= c(a, r) - p(r)`: `c(a, r) - p(r)` as it
//! was when the list was last sorted, still a lower bound since `p(r)` has only fallen since.
//! Scanning a settled application in that order, once `d(a) + bound + p(a)` reaches the goal's
//! tentative distance (set as soon as a node with a deficit is reached; a reviewer with room
//! reaches the sink at once), every later pair leads to a node that would settle after the
//! goal, which changes neither the path nor the potentials: the scan stops. An edge whose exact
//! reduced distance reaches that bound is skipped for the same reason. A scan that skips many
//! pairs (their bound was stale) sorts the application's list again with the current potentials.
//! The auction cuts the same way: prices are not negative, so a listed pair is worth at most
//! `-cost`, and an application's listed pairs, by cost, are read only while they may still
//! enter its best few.
//!
//! **Infeasibility.** Before anything, two counts: an application with fewer than k
//! non-conflicted reviewers, or `k * applications > min(L, applications) * reviewers`. Past
//! them, when the cold start's Dijkstra from application `a0` empties its heap without reaching
//! the sink, the applications it reached, `X`, violate Hall's condition for this b-matching:
//! every reviewer it reached is full, with all its applications in `X` (its backward edges were
//! followed), and every non-conflicted pair between `X` and a reviewer it did not reach already
//! carries flow; so `sum over r of min(L, |X minus r's conflicts|)`, the most reviews `X` could
//! ever get, is at most the flow now into `X`, which is below `k * |X|` since `a0` lacks a
//! reviewer.
//!
//! **Integers.** Costs are at most `2^59 / nodes` in absolute value ([`Problem`]). Prices stay
//! below 4 times the largest cost (the auction stops before), so the warm potentials start
//! within 5 times it of 0; from either start, potentials stay within a path's cost of that
//! (`nodes * max |cost|`) and distances within three times, inside `i64`.
//!
//! **Determinism.** Applications bid in queue order and are served in their order, candidates
//! and the heap break ties by index, the ordered sets by reviewer index: the same problem gives
//! the same assignment.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
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
    let load = precheck(problem)?;
    if let Some(auction) = Auction::run(problem, load) {
        let mut flow = Flow::warm(problem, load, auction);
        if flow.fill().is_ok() {
            return Ok(flow.assignment());
        }
    }
    // The auction gave up (no assignment exists, most likely), or no assignment exists (a
    // feasible problem always has a path; see the module comment): the cold start solves or
    // names the Hall set.
    let mut flow = Flow::cold(problem, load);
    flow.fill().map_err(|reached| hall(problem, load, &reached))?;
    Ok(flow.assignment())
}

/// The two counts that refuse a problem before any flow; L capped at the applications.
fn precheck(problem: &Problem) -> Result<usize, Infeasible> {
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
    Ok(load)
}

/// The successive-shortest-path solver alone, from the cold start: the oracle the tests compare
/// the warm start with.
#[cfg(test)]
pub(crate) fn assign_cold(problem: &Problem) -> Result<Assignment, Infeasible> {
    let load = precheck(problem)?;
    let mut flow = Flow::cold(problem, load);
    flow.fill().map_err(|reached| hall(problem, load, &reached))?;
    Ok(flow.assignment())
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

/// The forward auction (one scale) that starts the flow near the optimum.
///
/// Applications bid for reviewers; a reviewer has L slots, each taken at the price its holder
/// bid; its price is its cheapest slot's, 0 while one is free. An application that lacks `d`
/// reviewers takes the `d` best by value `-cost - price` among those it does not hold, each at
/// the price that leaves it ε short of the next best value (outbidding the cheapest holder, who
/// bids again). Prices only rise.
struct Auction<'p> {
    problem: &'p Problem,
    load: usize,
    /// Each reviewer's taken slots: a min-heap of (price, holder).
    slots: Vec<BinaryHeap<Reverse<(i64, u32)>>>,
    /// Each reviewer's price: its cheapest slot's when all L are taken, else 0.
    prices: Vec<i64>,
    /// Reviewers by `(price, r)`: the unlisted pairs of an application in decreasing value.
    by_price: BTreeSet<(i64, u32)>,
    /// Each application's reviewers: (reviewer, cost).
    held: Vec<Vec<(u32, i64)>>,
    queue: VecDeque<u32>,
    queued: Vec<bool>,
    /// Scratch of `best`: (value, reviewer, cost).
    candidates: Vec<(i64, u32, i64)>,
    epsilon: i64,
    /// No price goes past it (the auction gives up first).
    price_cap: i64,
}

/// ε is the largest cost over 2^this. A coarser ε makes fewer bids and leaves more pairs for
/// the flow to repair: on the benchmark (`bench/assign`), 2^10 is about the best trade.
const EPSILON_SHIFT: u32 = 10;
/// Bids the auction may make, per unit of supply (then it gives up).
const BIDS_PER_UNIT: usize = if cfg!(test) { 4 } else { 32 };

impl<'p> Auction<'p> {
    /// One scale, ε a 1024th of the largest cost; none when it gives up, on a price past the
    /// cap or too many bids (an infeasible problem bids forever).
    fn run(problem: &'p Problem, load: usize) -> Option<Auction<'p>> {
        let (n, m) = (problem.applications(), problem.reviewers());
        let largest = problem.listed.iter().map(|listed| listed.cost.abs()).max().unwrap_or(0).max(1);
        let mut auction = Auction {
            problem,
            load,
            slots: vec![BinaryHeap::new(); m],
            prices: vec![0; m],
            by_price: (0..m as u32).map(|r| (0, r)).collect(),
            held: vec![Vec::with_capacity(problem.k); n],
            queue: (0..n as u32).collect(),
            queued: vec![true; n],
            candidates: Vec::new(),
            epsilon: (largest >> EPSILON_SHIFT).max(1),
            price_cap: 4 * largest,
        };
        let budget = BIDS_PER_UNIT * problem.k * n + 64;
        let mut bids = 0;
        while let Some(a) = auction.queue.pop_front() {
            auction.queued[a as usize] = false;
            bids += 1;
            if bids > budget || auction.bid(a).is_err() {
                return None;
            }
        }
        Some(auction)
    }

    fn price(&self, r: u32) -> i64 {
        self.prices[r as usize]
    }

    /// Reviewer `r`'s price from its slots again, after they changed.
    fn reprice(&mut self, r: u32) {
        let slots = &self.slots[r as usize];
        let new = if slots.len() < self.load { 0 } else { slots.peek().map_or(0, |&Reverse((price, _))| price) };
        let old = std::mem::replace(&mut self.prices[r as usize], new);
        if new != old {
            self.by_price.remove(&(old, r));
            self.by_price.insert((new, r));
        }
    }

    /// The `limit` best reviewers application `a` does not hold, in `candidates`, by value
    /// then reviewer. Prices are nonnegative, so a listed pair is worth at most its affinity:
    /// the listed pairs, by decreasing affinity, are scanned only while they may still enter.
    fn best(&mut self, a: usize, limit: usize) {
        let problem = self.problem;
        let held = &self.held[a];
        let not_held = |r: u32| !held.iter().any(|&(taken, _)| taken == r);
        let candidates = &mut self.candidates;
        candidates.clear();
        if problem.unlisted {
            let blocked = problem.blocked(a);
            let unlisted =
                self.by_price.iter().filter(|&&(_, r)| blocked.binary_search(&r).is_err() && not_held(r)).take(limit);
            for &(price, r) in unlisted {
                offer(candidates, limit, (-price, r, 0));
            }
        }
        for listed in problem.listed(a) {
            if candidates.len() == limit && -listed.cost < candidates[limit - 1].0 {
                break;
            }
            if not_held(listed.reviewer) {
                let value = -listed.cost - self.prices[listed.reviewer as usize];
                offer(candidates, limit, (value, listed.reviewer, listed.cost));
            }
        }
    }

    /// Application `a` bids for the reviewers it lacks; `Err` past the price cap.
    fn bid(&mut self, a: u32) -> Result<(), ()> {
        let lacking = self.problem.k - self.held[a as usize].len();
        if lacking == 0 {
            return Ok(());
        }
        self.best(a as usize, lacking + 1);
        let next = self.candidates.get(lacking).map(|&(value, _, _)| value);
        for i in 0..lacking.min(self.candidates.len()) {
            let (_, r, cost) = self.candidates[i];
            let old = self.price(r);
            let price = match next {
                Some(next) => -cost - next + self.epsilon,
                None => old + self.epsilon,
            };
            if price > self.price_cap {
                return Err(());
            }
            let slots = &mut self.slots[r as usize];
            if slots.len() == self.load {
                let Reverse((_, holder)) = slots.pop().expect("a full reviewer has a cheapest slot");
                self.held[holder as usize].retain(|&(taken, _)| taken != r);
                if !self.queued[holder as usize] {
                    self.queued[holder as usize] = true;
                    self.queue.push_back(holder);
                }
            }
            slots.push(Reverse((price, a)));
            self.held[a as usize].push((r, cost));
            self.reprice(r);
        }
        Ok(())
    }
}

/// Keeps `candidates` the `limit` best (value, reviewer, cost) offered, by value then reviewer,
/// sorted: a better one goes in its place, the last one out.
fn offer(candidates: &mut Vec<(i64, u32, i64)>, limit: usize, candidate: (i64, u32, i64)) {
    let key = |c: &(i64, u32, i64)| (c.0, Reverse(c.1));
    let at = candidates.partition_point(|c| key(c) > key(&candidate));
    if at < limit {
        if candidates.len() == limit {
            candidates.pop();
        }
        candidates.insert(at, candidate);
    }
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
    /// Each reviewer's flow to the sink, at most L; above its pairs by its deficit.
    out: Vec<u32>,
    /// Units the sink still lacks: `k * applications` minus the flows into it.
    sink_deficit: u64,
    /// Reviewers by `(-p(r), r)`: unlisted edges (and the sink's backward edges) in increasing
    /// reduced cost.
    by_potential: BTreeSet<(i64, u32)>,
    /// Each application's listed pairs (the CSR of `Problem::listed`), sorted by a lower bound of
    /// `cost - p(r)`, taken when last sorted: reviewers' potentials never rise, so it stays a
    /// lower bound; `refresh` sorts an application's pairs again by their current value.
    edges: Vec<Edge>,
    // Dijkstra's scratch, reset through `touched` only; one more node than `potential`: the
    // goal, reached from every node with a deficit.
    distance: Vec<i64>,
    settled: Vec<bool>,
    /// The node a node was reached from, and for a reviewer the cost of that forward edge.
    parent: Vec<(u32, i64)>,
    touched: Vec<u32>,
    /// (key, node, cursor): `cursor == SETTLE` settles `node`; otherwise `node` is an
    /// application or the sink and `cursor` the reviewer of its next lazy edge.
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
}

impl<'p> Flow<'p> {
    fn empty(problem: &'p Problem, load: usize, potential: Vec<i64>) -> Flow<'p> {
        let (n, m) = (problem.applications(), problem.reviewers());
        let by_potential = (0..m as u32).map(|r| (-potential[n + r as usize], r)).collect();
        let edges = problem
            .listed
            .iter()
            .map(|listed| Edge {
                bound: listed.cost - potential[n + listed.reviewer as usize],
                cost: listed.cost,
                reviewer: listed.reviewer,
            })
            .collect();
        Flow {
            problem,
            n,
            load,
            potential,
            app_pairs: vec![Vec::with_capacity(problem.k); n],
            reviewer_pairs: vec![Vec::new(); m],
            out: vec![0; m],
            sink_deficit: (problem.k * n) as u64,
            by_potential,
            edges,
            distance: vec![UNREACHED; n + m + 2],
            settled: vec![false; n + m + 2],
            parent: vec![(0, 0); n + m + 2],
            touched: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// No flow. Reviewers and the sink at 0, each application at minus its cheapest edge: every
    /// reduced cost is nonnegative, an application's best reviewer is at distance 0, and a
    /// reviewer with room is at the sink's potential, so Dijkstra stops at the first one.
    fn cold(problem: &'p Problem, load: usize) -> Flow<'p> {
        let (n, m) = (problem.applications(), problem.reviewers());
        let mut potential = vec![0_i64; n + m + 1];
        for (a, p) in potential.iter_mut().enumerate().take(n) {
            *p = -problem.listed(a).iter().map(|listed| listed.cost).min().unwrap_or(0).min(0);
        }
        Flow::empty(problem, load, potential)
    }

    /// The auction's pairs and prices made 0-optimal (see the module comment): `p(r) = -price`
    /// for a reviewer with all L slots held, else 0; the sink at 0; `p(a)` the best value of a
    /// pair `a` does not hold; a held pair worth less than that is dropped, its reviewer keeping
    /// its flow to the sink (a deficit).
    fn warm(problem: &'p Problem, load: usize, auction: Auction<'p>) -> Flow<'p> {
        let (n, m) = (problem.applications(), problem.reviewers());
        let mut potential = vec![0_i64; n + m + 1];
        for r in 0..m as u32 {
            let slots = &auction.slots[r as usize];
            if slots.len() == load {
                potential[n + r as usize] = -auction.price(r);
            }
        }
        let mut flow = Flow::empty(problem, load, potential);
        for (a, held) in auction.held.iter().enumerate() {
            let potential = &flow.potential;
            let value = |r: u32, cost: i64| -cost + potential[n + r as usize];
            let not_held = |r: u32| !held.iter().any(|&(taken, _)| taken == r);
            let listed = problem.listed(a).iter().filter(|listed| not_held(listed.reviewer));
            let mut best = listed.map(|listed| value(listed.reviewer, listed.cost)).max();
            if problem.unlisted {
                let blocked = problem.blocked(a);
                let unlisted = flow
                    .by_potential
                    .iter()
                    .find(|&&(_, r)| blocked.binary_search(&r).is_err() && not_held(r))
                    .map(|&(minus_p, _)| -minus_p);
                best = best.max(unlisted);
            }
            let p_a = best.unwrap_or_else(|| held.iter().map(|&(r, cost)| value(r, cost)).min().unwrap_or(0));
            let kept: Vec<(u32, i64)> = held.iter().copied().filter(|&(r, cost)| value(r, cost) >= p_a).collect();
            flow.potential[a] = p_a;
            for (r, cost) in kept {
                flow.app_pairs[a].push((r, cost));
                flow.reviewer_pairs[r as usize].push((a as u32, cost));
                flow.out[r as usize] += 1;
                flow.sink_deficit -= 1;
            }
        }
        // A dropped pair leaves its reviewer's flow to the sink where it was (a deficit at the
        // reviewer) when its potential is below the sink's; at the sink's, it leaves the sink
        // one unit short instead, the cheaper target to reach.
        for r in 0..m {
            if flow.potential[n + r] < 0 {
                let dropped = (load - flow.reviewer_pairs[r].len()) as u32;
                flow.out[r] += dropped;
                flow.sink_deficit -= u64::from(dropped);
            }
        }
        for a in 0..n {
            flow.refresh(a);
        }
        flow
    }

    fn sink(&self) -> u32 {
        self.potential.len() as u32 - 1
    }

    fn goal(&self) -> u32 {
        self.potential.len() as u32
    }

    /// Every application's missing units, in order; without a path, the applications reached.
    fn fill(&mut self) -> Result<(), Vec<u32>> {
        for a in 0..self.n {
            while self.app_pairs[a].len() < self.problem.k {
                self.augment_from(a as u32)?;
            }
        }
        Ok(())
    }

    fn assignment(&self) -> Assignment {
        let problem = self.problem;
        let mut pairs: Vec<(usize, usize)> = self
            .app_pairs
            .iter()
            .enumerate()
            .flat_map(|(a, reviewers)| reviewers.iter().map(move |&(r, _)| (a, r as usize)))
            .collect();
        pairs.sort_unstable();
        // From +0.0: an empty `sum` of floats is -0.0.
        let total_affinity = pairs.iter().fold(0.0, |total, &(a, r)| total + problem.affinity(a, r as u32));
        Assignment { pairs, total_affinity }
    }

    /// Ships one more unit from application `a0` along a shortest path to a node with a
    /// deficit; without a path, the applications reached (a Hall violation from the cold start).
    fn augment_from(&mut self, a0: u32) -> Result<(), Vec<u32>> {
        for &v in &self.touched {
            self.distance[v as usize] = UNREACHED;
            self.settled[v as usize] = false;
        }
        self.touched.clear();
        self.heap.clear();
        let (sink, goal) = (self.sink(), self.goal());
        self.relax(a0, 0, (a0, 0));
        let mut settled_order = Vec::new();
        while let Some(Reverse((key, node, cursor))) = self.heap.pop() {
            if cursor != SETTLE {
                let reviewer = self.n as u32 + cursor;
                if !self.settled[reviewer as usize] {
                    self.reach(reviewer, key, (node, 0));
                }
                self.push_lazy(node, Bound::Excluded(cursor));
                continue;
            }
            if self.settled[node as usize] || key > self.distance[node as usize] {
                continue;
            }
            self.settled[node as usize] = true;
            if node == goal {
                break;
            }
            settled_order.push(node);
            let p_node = self.potential[node as usize];
            if node == sink {
                if self.sink_deficit == 0 {
                    self.push_lazy(node, Bound::Unbounded);
                }
            } else if (node as usize) < self.n {
                let a = node as usize;
                // By bound: once `key + bound + p(a)`, a lower bound of the reduced distance,
                // reaches the goal's tentative distance, no later edge can lead to a node settled
                // before the goal.
                let (mut scanned, mut wasted) = (0_usize, 0_usize);
                for i in self.problem.listed_start[a]..self.problem.listed_start[a + 1] {
                    let edge = self.edges[i];
                    if key + edge.bound + p_node >= self.distance[goal as usize] {
                        break;
                    }
                    scanned += 1;
                    let r = edge.reviewer;
                    if self.app_pairs[a].iter().any(|&(assigned, _)| assigned == r) {
                        continue;
                    }
                    let v = self.n as u32 + r;
                    let distance = key + edge.cost + p_node - self.potential[v as usize];
                    if distance >= self.distance[goal as usize] {
                        wasted += 1;
                        continue; // settled after the goal, if ever: no use
                    }
                    self.reach(v, distance, (node, edge.cost));
                }
                if wasted >= REFRESH_WASTED && 2 * wasted >= scanned {
                    self.refresh(a);
                }
                self.push_lazy(node, Bound::Unbounded);
            } else {
                // Its edge to the sink, if it has room, was relaxed with it (`reach`).
                let r = node as usize - self.n;
                for i in 0..self.reviewer_pairs[r].len() {
                    let (a, cost) = self.reviewer_pairs[r][i];
                    let reduced = -cost + p_node - self.potential[a as usize];
                    self.relax(a, key + reduced, (node, 0));
                }
            }
        }
        if !self.settled[goal as usize] {
            return Err(settled_order.into_iter().filter(|&v| (v as usize) < self.n).collect());
        }
        let at_goal = self.distance[goal as usize];
        for &v in &settled_order {
            let shift = self.distance[v as usize] - at_goal;
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
        // Walk back from the node whose deficit the unit fills: a new pair (application ->
        // reviewer), a pair undone (reviewer -> application), a reviewer's flow to the sink up
        // (reviewer -> sink) or down (sink -> reviewer).
        let n = self.n as u32;
        let mut v = self.parent[goal as usize].0;
        if v == sink {
            self.sink_deficit -= 1;
        }
        while v != a0 {
            let (u, cost) = self.parent[v as usize];
            if v == sink {
                self.out[(u - n) as usize] += 1;
            } else if v >= n {
                let r = v - n;
                if u == sink {
                    self.out[r as usize] -= 1;
                } else {
                    self.app_pairs[u as usize].push((r, cost));
                    self.reviewer_pairs[r as usize].push((u, cost));
                }
            } else {
                let old = u - n;
                self.app_pairs[v as usize].retain(|&(assigned, _)| assigned != old);
                self.reviewer_pairs[old as usize].retain(|&(assigned, _)| assigned != v);
            }
            v = u;
        }
        Ok(())
    }

    /// Sorts application `a`'s listed pairs again by `cost - p(r)` now.
    fn refresh(&mut self, a: usize) {
        let edges = &mut self.edges[self.problem.listed_start[a]..self.problem.listed_start[a + 1]];
        for edge in edges.iter_mut() {
            edge.bound = edge.cost - self.potential[self.n + edge.reviewer as usize];
        }
        edges.sort_unstable_by_key(|edge| (edge.bound, edge.reviewer));
    }

    fn relax(&mut self, v: u32, key: i64, parent: (u32, i64)) -> bool {
        let distance = &mut self.distance[v as usize];
        if key < *distance {
            if *distance == UNREACHED {
                self.touched.push(v);
            }
            *distance = key;
            self.parent[v as usize] = parent;
            self.heap.push(Reverse((key, v, SETTLE)));
            return true;
        }
        false
    }

    /// Relaxes reviewer or sink `v`, and the goal through it when it has a deficit.
    fn reach(&mut self, v: u32, key: i64, parent: (u32, i64)) {
        if !self.relax(v, key, parent) {
            return;
        }
        let sink = self.sink();
        if v == sink {
            if self.sink_deficit > 0 {
                self.relax(self.goal(), key, (v, 0));
            }
            return;
        }
        let r = v as usize - self.n;
        if self.out[r] as usize > self.reviewer_pairs[r].len() {
            self.relax(self.goal(), key, (v, 0));
        }
        // Room: the sink's tentative distance too, so that the searches are cut early.
        if (self.out[r] as usize) < self.load {
            let reduced = self.potential[v as usize] - self.potential[sink as usize];
            self.reach(sink, key + reduced, (v, 0));
        }
    }

    /// Pushes the next lazy edge after reviewer `after` of application `a` (its cheapest
    /// unlisted edge to a reviewer not settled) or of the sink (its cheapest backward edge to a
    /// reviewer not settled).
    fn push_lazy(&mut self, node: u32, after: Bound<u32>) {
        let n = self.n;
        let is_sink = node == self.sink();
        if !is_sink && !self.problem.unlisted {
            return;
        }
        let from = match after {
            Bound::Excluded(r) => Bound::Excluded((-self.potential[n + r as usize], r)),
            _ => Bound::Unbounded,
        };
        let next = if is_sink {
            self.by_potential
                .range((from, Bound::Unbounded))
                .find(|&&(_, r)| !self.settled[n + r as usize] && self.out[r as usize] > 0)
        } else {
            let blocked = self.problem.blocked(node as usize);
            let assigned = &self.app_pairs[node as usize];
            self.by_potential.range((from, Bound::Unbounded)).find(|&&(_, r)| {
                !self.settled[n + r as usize]
                    && blocked.binary_search(&r).is_err()
                    && !assigned.iter().any(|&(taken, _)| taken == r)
            })
        };
        if let Some(&(minus_p, r)) = next {
            let key = self.distance[node as usize] + self.potential[node as usize] + minus_p;
            if key < self.distance[self.goal() as usize] {
                self.heap.push(Reverse((key, node, r)));
            }
        }
    }
}
