//! [`Problem`]: an assignment problem, checked once ([`Problem::new`]): indices in range, no
//! pair listed twice, finite affinities, k and L at least 1; affinities scaled to exact
//! integers for the flow.

use std::fmt;

/// The most applications, and the most reviewers, a problem may hold (indices fit a `u32`, and
/// costs times paths fit an `i64`).
pub const MAX_SIDE: usize = 1 << 24;

/// A problem as the caller states it, by positions in `applications` and `reviewers`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemSpec {
    /// How each application is named in messages (its id as the caller wrote it).
    pub applications: Vec<String>,
    /// How each reviewer is named in messages.
    pub reviewers: Vec<String>,
    /// k: every application gets exactly this many distinct reviewers.
    pub reviewers_per_application: usize,
    /// L: no reviewer gets more applications than this.
    pub max_load: usize,
    /// (application, reviewer, affinity); pairs not listed have affinity 0 and may be assigned.
    pub affinity: Vec<(usize, usize, f64)>,
    /// (application, reviewer) pairs that may not be assigned.
    pub conflicts: Vec<(usize, usize)>,
}

/// Why a [`ProblemSpec`] is not a problem.
#[derive(Clone, Debug, PartialEq)]
pub enum ProblemError {
    TooLarge { side: &'static str, count: usize },
    OutOfRange { what: &'static str, value: usize },
    UnknownIndex { list: &'static str, item: usize, side: &'static str, index: usize },
    NotFinite { application: String, reviewer: String },
    Duplicate { list: &'static str, application: String, reviewer: String },
}

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { side, count } => write!(f, "{count} {side}: at most {MAX_SIDE} are supported"),
            Self::OutOfRange { what, value } => write!(f, "{what} is {value}: it must be between 1 and {MAX_SIDE}"),
            Self::UnknownIndex { list, item, side, index } => {
                write!(f, "{list} entry {item}: {side} index {index} is not in the problem")
            }
            Self::NotFinite { application, reviewer } => {
                write!(f, "affinity of application {application} and reviewer {reviewer} is not a finite number")
            }
            Self::Duplicate { list, application, reviewer } => {
                write!(f, "{list} lists application {application} and reviewer {reviewer} twice")
            }
        }
    }
}

impl std::error::Error for ProblemError {}

/// One listed pair of an application, in the flow's integer costs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listed {
    pub reviewer: u32,
    /// `-round(affinity * scale)`: the flow minimises cost.
    pub cost: i64,
    pub affinity: f64,
}

/// A checked problem. Affinities become integer costs `-round(affinity * scale)`, where `scale`
/// is the largest power of two that keeps every path's cost within `i64` (`|cost| <= 2^59 /
/// (applications + reviewers + 2)`, and at most 2^53 / max |affinity|, past which nothing is
/// gained). Scaling by a power of two is exact in binary floating point, so when every scaled
/// affinity is an integer ([`Problem::costs_are_exact`]: numbers with few binary digits, such as
/// integers or halves) the flow's optimum is exactly the optimum. Otherwise each cost is off by at
/// most 1/2 unit, so the assignment found is optimal within `k * applications / scale` of
/// affinity: 3e-8 at 10,000 applications, k = 3 and affinities up to 1; two assignments whose
/// totals differ by more than that are never confused.
#[derive(Clone, Debug)]
pub struct Problem {
    pub(crate) applications: Vec<String>,
    pub(crate) reviewers: Vec<String>,
    pub(crate) k: usize,
    pub(crate) max_load: usize,
    /// Listed pairs by application (CSR): `listed[listed_start[a]..listed_start[a + 1]]`, sorted
    /// by cost then reviewer, conflicted pairs left out.
    pub(crate) listed_start: Vec<usize>,
    pub(crate) listed: Vec<Listed>,
    /// Conflicts by application (CSR), sorted by reviewer.
    pub(crate) conflict_start: Vec<usize>,
    pub(crate) conflicts: Vec<u32>,
    /// Listed or conflicted reviewers by application (CSR), sorted: the pairs that are not
    /// "unlisted, affinity 0".
    pub(crate) blocked_start: Vec<usize>,
    pub(crate) blocked: Vec<u32>,
    exact: bool,
    /// Whether unlisted, non-conflicted pairs may be assigned (at affinity 0); false only in a
    /// problem [`Problem::at_least`] restricted to positive affinities.
    pub(crate) unlisted: bool,
}

impl Problem {
    pub fn new(mut spec: ProblemSpec) -> Result<Problem, ProblemError> {
        let n = spec.applications.len();
        let m = spec.reviewers.len();
        if n > MAX_SIDE {
            return Err(ProblemError::TooLarge { side: "applications", count: n });
        }
        if m > MAX_SIDE {
            return Err(ProblemError::TooLarge { side: "reviewers", count: m });
        }
        for (what, value) in
            [("reviewers_per_application", spec.reviewers_per_application), ("max_load", spec.max_load)]
        {
            if value == 0 || value > MAX_SIDE {
                return Err(ProblemError::OutOfRange { what, value });
            }
        }
        let check = |list: &'static str, item: usize, a: usize, r: usize| {
            if a >= n {
                return Err(ProblemError::UnknownIndex { list, item, side: "application", index: a });
            }
            if r >= m {
                return Err(ProblemError::UnknownIndex { list, item, side: "reviewer", index: r });
            }
            Ok(())
        };
        let name = |a: usize, r: usize| (spec.applications[a].clone(), spec.reviewers[r].clone());
        let mut max_abs = 0.0_f64;
        for (item, &(a, r, affinity)) in spec.affinity.iter().enumerate() {
            check("affinity", item, a, r)?;
            if !affinity.is_finite() {
                let (application, reviewer) = name(a, r);
                return Err(ProblemError::NotFinite { application, reviewer });
            }
            max_abs = max_abs.max(affinity.abs());
        }
        for (item, &(a, r)) in spec.conflicts.iter().enumerate() {
            check("conflicts", item, a, r)?;
        }

        let mut conflicts: Vec<(u32, u32)> = spec.conflicts.iter().map(|&(a, r)| (a as u32, r as u32)).collect();
        conflicts.sort_unstable();
        if let Some(pair) = conflicts.windows(2).find(|pair| pair[0] == pair[1]) {
            let (application, reviewer) = name(pair[0].0 as usize, pair[0].1 as usize);
            return Err(ProblemError::Duplicate { list: "conflicts", application, reviewer });
        }
        // Consumed as it is narrowed: the caller's pairs are freed before the problem is built.
        let mut affinity: Vec<(u32, u32, f64)> = std::mem::take(&mut spec.affinity)
            .into_iter()
            .map(|(a, r, affinity)| (a as u32, r as u32, affinity))
            .collect();
        affinity.sort_unstable_by_key(|&(a, r, _)| (a, r));
        if let Some(pair) = affinity.windows(2).find(|pair| (pair[0].0, pair[0].1) == (pair[1].0, pair[1].1)) {
            let (application, reviewer) = name(pair[0].0 as usize, pair[0].1 as usize);
            return Err(ProblemError::Duplicate { list: "affinity", application, reviewer });
        }

        let scale = cost_scale(max_abs, n + m + 2);
        let mut exact = true;
        let mut listed_start = vec![0; n + 1];
        let mut listed = Vec::with_capacity(affinity.len());
        let mut conflict_start = vec![0; n + 1];
        let mut blocked_start = vec![0; n + 1];
        let mut blocked = Vec::with_capacity(affinity.len() + conflicts.len());
        let (mut i, mut j) = (0, 0);
        for a in 0..n as u32 {
            // Merge this application's listed and conflicted reviewers, both sorted.
            loop {
                let next_listed = affinity.get(i).filter(|entry| entry.0 == a).map(|entry| entry.1);
                let next_conflict = conflicts.get(j).filter(|entry| entry.0 == a).map(|entry| entry.1);
                match (next_listed, next_conflict) {
                    (Some(r), conflict) if conflict.is_none_or(|c| r < c) => {
                        let scaled = affinity[i].2 * scale;
                        exact &= scaled.fract() == 0.0;
                        listed.push(Listed { reviewer: r, cost: -(scaled.round() as i64), affinity: affinity[i].2 });
                        blocked.push(r);
                        i += 1;
                    }
                    (listed_reviewer, Some(c)) => {
                        if listed_reviewer == Some(c) {
                            i += 1; // a conflict wins over its affinity
                        }
                        blocked.push(c);
                        j += 1;
                    }
                    // (Some, None) took the first arm.
                    (_, None) => break,
                }
            }
            // By cost, cheapest (highest affinity) first, for Dijkstra's lazy enumeration.
            listed[listed_start[a as usize]..].sort_unstable_by_key(|entry| (entry.cost, entry.reviewer));
            listed_start[a as usize + 1] = listed.len();
            conflict_start[a as usize + 1] = j;
            blocked_start[a as usize + 1] = blocked.len();
        }
        let conflicts = conflicts.into_iter().map(|(_, r)| r).collect();
        Ok(Problem {
            applications: spec.applications,
            reviewers: spec.reviewers,
            k: spec.reviewers_per_application,
            max_load: spec.max_load,
            listed_start,
            listed,
            conflict_start,
            conflicts,
            blocked_start,
            blocked,
            exact,
            unlisted: true,
        })
    }

    /// The same problem where only pairs of affinity at least `threshold` may be assigned: listed
    /// pairs below it become conflicts, unlisted pairs (affinity 0) are dropped when `threshold >
    /// 0`. Costs are the same, so optima compare exactly.
    pub(crate) fn at_least(&self, threshold: f64) -> Problem {
        let n = self.applications();
        let mut restricted = self.clone();
        restricted.unlisted = self.unlisted && threshold <= 0.0;
        restricted.listed.clear();
        restricted.conflicts.clear();
        for a in 0..n {
            let mut conflicts: Vec<u32> = self.conflicts(a).to_vec();
            for listed in self.listed(a) {
                if listed.affinity >= threshold {
                    restricted.listed.push(*listed);
                } else {
                    conflicts.push(listed.reviewer);
                }
            }
            conflicts.sort_unstable();
            restricted.conflicts.extend(conflicts);
            restricted.listed_start[a + 1] = restricted.listed.len();
            restricted.conflict_start[a + 1] = restricted.conflicts.len();
        }
        restricted
    }

    /// Whether every affinity became an integer cost exactly, so that the optimum found is the
    /// optimum to the last bit (see the type's comment).
    pub fn costs_are_exact(&self) -> bool {
        self.exact
    }

    pub fn applications(&self) -> usize {
        self.applications.len()
    }

    pub fn reviewers(&self) -> usize {
        self.reviewers.len()
    }

    pub(crate) fn listed(&self, a: usize) -> &[Listed] {
        &self.listed[self.listed_start[a]..self.listed_start[a + 1]]
    }

    pub(crate) fn conflicts(&self, a: usize) -> &[u32] {
        &self.conflicts[self.conflict_start[a]..self.conflict_start[a + 1]]
    }

    pub(crate) fn blocked(&self, a: usize) -> &[u32] {
        &self.blocked[self.blocked_start[a]..self.blocked_start[a + 1]]
    }

    /// The affinity of a pair: listed, or 0.
    pub(crate) fn affinity(&self, a: usize, r: u32) -> f64 {
        self.listed(a).iter().find(|entry| entry.reviewer == r).map_or(0.0, |entry| entry.affinity)
    }
}

/// The largest power of two `s` with `max_abs * s <= 2^59 / nodes` and `max_abs * s <= 2^53`: a
/// path has fewer than `nodes` edges, so no sum of costs the flow forms leaves `i64` (reduced
/// distances stay within three times a path's cost; see `assign.rs`).
fn cost_scale(max_abs: f64, nodes: usize) -> f64 {
    if max_abs == 0.0 {
        return 1.0;
    }
    let bound = ((1_u64 << 59) as f64 / nodes as f64).min((1_u64 << 53) as f64);
    let mut scale = 1.0_f64;
    while max_abs * scale * 2.0 <= bound {
        scale *= 2.0;
    }
    while max_abs * scale > bound {
        scale /= 2.0;
    }
    scale
}
