//! A company against its peers (same size class, same NAF section), under k-anonymity: a group of
//! fewer than [`K_ANONYMITY`] distinct companies gives nothing at all, never a partial figure.
//!
//! Each company counts once, by its latest diagnostic (the caller passes one per company; a
//! company given twice counts once, by its last entry). Figures are medians per dimension and
//! overall, and the company's percentile rank in the group, itself included:
//! `100 * (below + equal / 2) / n`, rounded half up, where `equal` counts the company too.

use std::collections::BTreeMap;

use crate::diagnostic::{Dimension, Scores};

/// The fewest distinct companies a group must hold for any figure of it to be shown.
pub const K_ANONYMITY: usize = 5;

/// A group's aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// Distinct companies in the group (at least [`K_ANONYMITY`]).
    pub companies: usize,
    /// The median of each dimension, in the order of [`Dimension::ALL`].
    pub medians: [f64; 5],
    pub median_overall: f64,
}

/// Where one company stands in its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub benchmark: Benchmark,
    /// Percentile ranks, 0 to 100, in the order of [`Dimension::ALL`].
    pub percentiles: [u8; 5],
    pub percentile_overall: u8,
}

fn distinct(group: &[(i64, Scores)]) -> Option<Vec<Scores>> {
    let by_company: BTreeMap<i64, Scores> = group.iter().copied().collect();
    (by_company.len() >= K_ANONYMITY).then(|| by_company.into_values().collect())
}

fn median(mut values: Vec<u8>) -> f64 {
    values.sort_unstable();
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        f64::from(values[middle])
    } else {
        (f64::from(values[middle - 1]) + f64::from(values[middle])) / 2.0
    }
}

fn aggregate(scores: &[Scores]) -> Benchmark {
    Benchmark {
        companies: scores.len(),
        medians: Dimension::ALL.map(|dimension| median(scores.iter().map(|each| each.get(dimension)).collect())),
        median_overall: median(scores.iter().map(Scores::overall).collect()),
    }
}

/// The group's medians; none under [`K_ANONYMITY`] distinct companies.
pub fn benchmark(group: &[(i64, Scores)]) -> Option<Benchmark> {
    distinct(group).map(|scores| aggregate(&scores))
}

fn percentile(own: u8, all: impl Iterator<Item = u8>) -> u8 {
    let (mut below, mut equal, mut n) = (0u32, 0u32, 0u32);
    for value in all {
        n += 1;
        match value.cmp(&own) {
            std::cmp::Ordering::Less => below += 1,
            std::cmp::Ordering::Equal => equal += 1,
            std::cmp::Ordering::Greater => {}
        }
    }
    // 100 * (below + equal / 2) / n, half up, in integers.
    u8::try_from((100 * (2 * below + equal) + n) / (2 * n.max(1))).unwrap_or(100)
}

/// `company`'s position in `group`; none if the group has fewer than [`K_ANONYMITY`] distinct
/// companies or `company` is not in it.
pub fn position(company: i64, group: &[(i64, Scores)]) -> Option<Position> {
    let own = group.iter().rev().find(|(id, _)| *id == company)?.1;
    let scores = distinct(group)?;
    Some(Position {
        percentiles: Dimension::ALL
            .map(|dimension| percentile(own.get(dimension), scores.iter().map(|each| each.get(dimension)))),
        percentile_overall: percentile(own.overall(), scores.iter().map(Scores::overall)),
        benchmark: aggregate(&scores),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(value: i64) -> Scores {
        Scores::from_values([value; 5]).expect("in range")
    }

    fn group(values: &[(i64, i64)]) -> Vec<(i64, Scores)> {
        values.iter().map(|(id, value)| (*id, scores(*value))).collect()
    }

    #[test]
    fn under_k_distinct_companies_nothing() {
        let four = group(&[(1, 10), (2, 20), (3, 30), (4, 40)]);
        assert_eq!(benchmark(&four), None);
        assert_eq!(position(1, &four), None);
        // Five diagnostics of four companies are still four companies.
        let repeated = group(&[(1, 10), (2, 20), (3, 30), (4, 40), (4, 50)]);
        assert_eq!(benchmark(&repeated), None);
    }

    #[test]
    fn at_k_medians_and_percentiles() {
        let five = group(&[(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]);
        let shown = benchmark(&five).expect("five companies");
        assert_eq!((shown.companies, shown.medians, shown.median_overall), (5, [30.0; 5], 30.0));
        let top = position(5, &five).expect("in the group");
        // Four below, itself equal: (4 + 0.5) / 5 = 90.
        assert_eq!((top.percentiles, top.percentile_overall), ([90; 5], 90));
        assert_eq!(position(1, &five).map(|position| position.percentile_overall), Some(10));
        assert_eq!(position(9, &five), None);
        let six = group(&[(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 50)]);
        assert_eq!(benchmark(&six).map(|shown| shown.median_overall), Some(35.0));
        assert_eq!(position(6, &six).map(|position| position.percentile_overall), Some(83));
    }
}
