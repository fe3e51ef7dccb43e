//! Leaderboards, pure: scored submissions in, ranked rows out. The public board ranks each
//! team by the best score it was shown; the private board by the best private score among its
//! final submissions (those it chose, at most [`MAX_FINALS`], else its best public one). Ties go
//! to the earlier submission; baselines are placed among the teams but never ranked; unscored
//! submissions never reach these functions.

use std::cmp::Ordering;

/// The most final submissions a team may choose.
pub const MAX_FINALS: usize = 2;

/// One scored submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub submission: i64,
    pub team: i64,
    pub created_at: i64,
    /// Its public score, exact.
    pub public: f64,
    /// What the public board shows of it (the Ladder may show the team's previous best).
    pub shown: f64,
    pub private: f64,
    /// Chosen by its team as a final submission.
    pub chosen: bool,
    pub baseline: bool,
}

/// One line of a board: a team, its submission that counts, and that submission's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// 1, 2, ...; `None` for a baseline.
    pub rank: Option<usize>,
    pub team: i64,
    pub submission: i64,
    pub score: f64,
    pub created_at: i64,
    pub baseline: bool,
}

/// Whether `a` ranks before `b`: a better score, then the earlier submission.
fn order(a: (f64, i64, i64), b: (f64, i64, i64), higher_is_better: bool) -> Ordering {
    let by_score = if higher_is_better { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
    by_score.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

/// The best of `entries` by `score`, ties to the earlier submission.
fn best<'a>(
    entries: impl Iterator<Item = &'a Scored>,
    score: impl Fn(&Scored) -> f64,
    higher_is_better: bool,
) -> Option<&'a Scored> {
    entries.min_by(|a, b| {
        order((score(a), a.created_at, a.submission), (score(b), b.created_at, b.submission), higher_is_better)
    })
}

fn ranked(mut lines: Vec<Standing>, higher_is_better: bool) -> Vec<Standing> {
    lines.sort_by(|a, b| {
        order((a.score, a.created_at, a.submission), (b.score, b.created_at, b.submission), higher_is_better)
    });
    let mut next = 1;
    for line in &mut lines {
        if !line.baseline {
            line.rank = Some(next);
            next += 1;
        }
    }
    lines
}

fn teams(entries: &[Scored]) -> Vec<i64> {
    let mut teams: Vec<i64> = entries.iter().map(|entry| entry.team).collect();
    teams.sort_unstable();
    teams.dedup();
    teams
}

fn standing(entry: &Scored, score: f64) -> Standing {
    Standing {
        rank: None,
        team: entry.team,
        submission: entry.submission,
        score,
        created_at: entry.created_at,
        baseline: entry.baseline,
    }
}

/// The public board: each team's best shown score.
pub fn public_board(entries: &[Scored], higher_is_better: bool) -> Vec<Standing> {
    let lines = teams(entries)
        .into_iter()
        .filter_map(|team| {
            best(entries.iter().filter(|e| e.team == team), |e| e.shown, higher_is_better)
                .map(|entry| standing(entry, entry.shown))
        })
        .collect();
    ranked(lines, higher_is_better)
}

/// A team's final submissions: those it chose (the first [`MAX_FINALS`] by time), else its best
/// public one.
pub fn finals<'a>(team_entries: &[&'a Scored], higher_is_better: bool) -> Vec<&'a Scored> {
    let mut chosen: Vec<&Scored> = team_entries.iter().copied().filter(|entry| entry.chosen).collect();
    chosen.sort_by_key(|entry| (entry.created_at, entry.submission));
    chosen.truncate(MAX_FINALS);
    if chosen.is_empty() {
        chosen.extend(best(team_entries.iter().copied(), |e| e.public, higher_is_better));
    }
    chosen
}

/// The private board: each team's best private score among its final submissions.
pub fn private_board(entries: &[Scored], higher_is_better: bool) -> Vec<Standing> {
    let lines = teams(entries)
        .into_iter()
        .filter_map(|team| {
            let own: Vec<&Scored> = entries.iter().filter(|e| e.team == team).collect();
            best(finals(&own, higher_is_better).into_iter(), |e| e.private, higher_is_better)
                .map(|entry| standing(entry, entry.private))
        })
        .collect();
    ranked(lines, higher_is_better)
}

/// The Ladder (Blum and Hardt, 2015): the score the public board shows for a new submission,
/// given the best it showed the team before. A score that beats that best by more than `step`
/// is shown rounded to a multiple of `step`; any other shows the previous best again, so that
/// small, possibly lucky, gains on the public part teach nothing.
pub fn ladder(previous: Option<f64>, score: f64, step: f64, higher_is_better: bool) -> f64 {
    let rounded = (score / step).round() * step;
    match previous {
        None => rounded,
        Some(previous) => {
            let gain = if higher_is_better { score - previous } else { previous - score };
            if gain > step { rounded } else { previous }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(submission: i64, team: i64, created_at: i64, public: f64, private: f64) -> Scored {
        Scored { submission, team, created_at, public, shown: public, private, chosen: false, baseline: false }
    }

    #[test]
    fn public_board_ranks_teams_by_their_best_and_ties_go_to_the_earlier() {
        let entries = [
            entry(1, 10, 100, 0.5, 0.4),
            entry(2, 10, 200, 0.8, 0.1),
            entry(3, 20, 150, 0.8, 0.9),
            entry(4, 30, 50, 0.2, 0.2),
        ];
        let board = public_board(&entries, true);
        let order: Vec<(Option<usize>, i64, i64)> = board.iter().map(|s| (s.rank, s.team, s.submission)).collect();
        assert_eq!(order, vec![(Some(1), 20, 3), (Some(2), 10, 2), (Some(3), 30, 4)]);
        let lower = public_board(&entries, false);
        assert_eq!(lower[0].team, 30, "lower is better: 0.2 first");
    }

    #[test]
    fn private_board_uses_the_finals_chosen_else_the_best_public() {
        let mut entries = vec![entry(1, 10, 100, 0.5, 0.9), entry(2, 10, 200, 0.8, 0.1), entry(3, 20, 150, 0.6, 0.5)];
        // Team 10 chose nothing: its best public (0.8) counts, privately 0.1.
        let board = private_board(&entries, true);
        assert_eq!((board[0].team, board[0].score), (20, 0.5));
        assert_eq!((board[1].team, board[1].score), (10, 0.1));
        // Now it chooses its first submission: 0.9.
        entries[0].chosen = true;
        let board = private_board(&entries, true);
        assert_eq!((board[0].team, board[0].score, board[0].rank), (10, 0.9, Some(1)));
    }

    #[test]
    fn at_most_two_finals_count_the_earliest_chosen() {
        let mut entries: Vec<Scored> = (1..=3).map(|i| entry(i, 10, i * 10, 0.5, i as f64)).collect();
        for entry in &mut entries {
            entry.chosen = true;
        }
        let own: Vec<&Scored> = entries.iter().collect();
        let chosen: Vec<i64> = finals(&own, true).iter().map(|e| e.submission).collect();
        assert_eq!(chosen, vec![1, 2]);
        assert_eq!(private_board(&entries, true)[0].score, 2.0, "the third chosen is not a final");
    }

    #[test]
    fn baselines_are_placed_but_not_ranked() {
        let mut entries = vec![entry(1, 10, 100, 0.9, 0.9), entry(2, 20, 100, 0.5, 0.5), entry(3, 30, 100, 0.4, 0.4)];
        entries[0].baseline = true;
        let board = public_board(&entries, true);
        let ranks: Vec<Option<usize>> = board.iter().map(|s| s.rank).collect();
        assert_eq!(ranks, vec![None, Some(1), Some(2)]);
    }

    #[test]
    fn the_ladder_shows_only_gains_larger_than_its_step() {
        assert!((ladder(None, 0.8234, 0.01, true) - 0.82).abs() < 1e-12);
        assert_eq!(ladder(Some(0.82), 0.829, 0.01, true), 0.82, "a gain of 0.009 shows nothing");
        assert!((ladder(Some(0.82), 0.835, 0.01, true) - 0.84).abs() < 1e-12, "a gain of 0.015 shows, rounded");
        assert_eq!(ladder(Some(0.82), 0.5, 0.01, true), 0.82, "a worse score shows the previous best");
        assert!((ladder(Some(1.0), 0.5, 0.1, false) - 0.5).abs() < 1e-12, "lower is better: a drop of 0.5");
        assert_eq!(ladder(Some(1.0), 0.95, 0.1, false), 1.0);
    }
}
