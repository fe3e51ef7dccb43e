//! Calibration of jurors' scores, shown beside the raw means: per-juror z-scores, and a
//! least-squares model `score = quality(application) + offset(juror)`.

use std::fmt;

/// One score: (juror, application, score), by positions.
pub type Review = (usize, usize, f64);

/// Each review's score as a z-score within its juror's reviews: `(score - mean) / sd`, the
/// population standard deviation; 0 for a juror whose scores are all equal (or single). Scores
/// must be finite.
pub fn z_scores(reviews: &[Review], jurors: usize) -> Result<Vec<f64>, CalibrationError> {
    check(reviews, jurors, usize::MAX)?;
    let mut count = vec![0_usize; jurors];
    let mut sum = vec![0.0_f64; jurors];
    for &(juror, _, score) in reviews {
        count[juror] += 1;
        sum[juror] += score;
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(&sum, &count)| sum / count.max(1) as f64).collect();
    let mut squares = vec![0.0_f64; jurors];
    for &(juror, _, score) in reviews {
        squares[juror] += (score - mean[juror]).powi(2);
    }
    let sd: Vec<f64> =
        squares.iter().zip(&count).map(|(&squares, &count)| (squares / count.max(1) as f64).sqrt()).collect();
    Ok(reviews
        .iter()
        .map(|&(juror, _, score)| if sd[juror] > 0.0 { (score - mean[juror]) / sd[juror] } else { 0.0 })
        .collect())
}

/// The least-squares fit of `score = quality(application) + offset(juror)`.
#[derive(Clone, Debug, PartialEq)]
pub struct BiasModel {
    /// By application; `None` for one nobody reviewed.
    pub quality: Vec<Option<f64>>,
    /// By juror; `None` for one who reviewed nothing.
    pub offset: Vec<Option<f64>>,
    /// By juror: the connected part of the design (jurors linked by the applications they share)
    /// it belongs to. Offsets sum to zero within each part; qualities compare only within a part.
    pub component: Vec<Option<usize>>,
}

/// Why scores cannot be calibrated.
#[derive(Clone, Debug, PartialEq)]
pub enum CalibrationError {
    UnknownIndex { review: usize, side: &'static str, index: usize },
    NotFinite { review: usize },
    TooManyJurors { jurors: usize },
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIndex { review, side, index } => {
                write!(f, "review {review}: {side} index {index} is not known")
            }
            Self::NotFinite { review } => write!(f, "review {review}: the score is not a finite number"),
            Self::TooManyJurors { jurors } => {
                write!(f, "{jurors} jurors: the bias model solves a dense system, at most {MAX_JURORS} jurors")
            }
        }
    }
}

impl std::error::Error for CalibrationError {}

/// The bias model's linear system is dense in the jurors of a part: `O(jurors^3)`.
pub const MAX_JURORS: usize = 2000;

fn check(reviews: &[Review], jurors: usize, applications: usize) -> Result<(), CalibrationError> {
    for (review, &(juror, application, score)) in reviews.iter().enumerate() {
        if juror >= jurors {
            return Err(CalibrationError::UnknownIndex { review, side: "juror", index: juror });
        }
        if application >= applications {
            return Err(CalibrationError::UnknownIndex { review, side: "application", index: application });
        }
        if !score.is_finite() {
            return Err(CalibrationError::NotFinite { review });
        }
    }
    Ok(())
}

/// Fits `score = quality(a) + offset(j)` by least squares. The normal equations give `quality(a)
/// = mean over a's reviews of (score - offset(j))`; put into the jurors' equations, they leave a
/// weighted Laplacian system in the offsets, `n_j b_j - sum_{j'} (sum over applications both
/// reviewed of 1 / reviews(a)) b_j' = sum_a (s_ja - mean_a)`, singular once per connected part of
/// the design: in each part one equation is replaced by `sum of offsets = 0`, which makes the
/// solution unique, and the system is solved by Gaussian elimination with partial pivoting.
pub fn bias_model(reviews: &[Review], jurors: usize, applications: usize) -> Result<BiasModel, CalibrationError> {
    check(reviews, jurors, applications)?;
    if jurors > MAX_JURORS {
        return Err(CalibrationError::TooManyJurors { jurors });
    }
    // Connected parts by union-find over jurors, joined through applications.
    let mut parent: Vec<usize> = (0..jurors).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut first_juror = vec![None; applications];
    let mut reviews_of = vec![0_usize; applications];
    let mut score_sum = vec![0.0_f64; applications];
    let mut active = vec![false; jurors];
    for &(juror, application, score) in reviews {
        active[juror] = true;
        reviews_of[application] += 1;
        score_sum[application] += score;
        match first_juror[application] {
            None => first_juror[application] = Some(juror),
            Some(other) => {
                let (x, y) = (find(&mut parent, juror), find(&mut parent, other));
                parent[x.max(y)] = x.min(y);
            }
        }
    }
    let mut component = vec![None; jurors];
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let mut part_of_root = vec![usize::MAX; jurors];
    for juror in 0..jurors {
        if !active[juror] {
            continue;
        }
        let root = find(&mut parent, juror);
        if part_of_root[root] == usize::MAX {
            part_of_root[root] = parts.len();
            parts.push(Vec::new());
        }
        component[juror] = Some(part_of_root[root]);
        parts[part_of_root[root]].push(juror);
    }
    let mut by_juror: Vec<Vec<(usize, f64)>> = vec![Vec::new(); jurors];
    for &(juror, application, score) in reviews {
        by_juror[juror].push((application, score));
    }
    let mut offset = vec![None; jurors];
    for part in &parts {
        let size = part.len();
        let mut position = std::collections::HashMap::with_capacity(size);
        for (i, &juror) in part.iter().enumerate() {
            position.insert(juror, i);
        }
        let mut matrix = vec![vec![0.0_f64; size + 1]; size];
        // Who reviewed each application of this part.
        let mut reviewers_of: std::collections::HashMap<usize, Vec<usize>> = std::collections::HashMap::new();
        for &juror in part {
            for &(application, _) in &by_juror[juror] {
                reviewers_of.entry(application).or_default().push(position[&juror]);
            }
        }
        for (i, &juror) in part.iter().enumerate() {
            for &(application, score) in &by_juror[juror] {
                let count = reviews_of[application] as f64;
                matrix[i][i] += 1.0;
                for &other in &reviewers_of[&application] {
                    matrix[i][other] -= 1.0 / count;
                }
                matrix[i][size] += score - score_sum[application] / count;
            }
        }
        // The rows sum to zero: replace the first by "offsets sum to zero".
        matrix[0] = vec![1.0; size + 1];
        matrix[0][size] = 0.0;
        let solution = solve(matrix);
        for (i, &juror) in part.iter().enumerate() {
            offset[juror] = Some(solution[i]);
        }
    }
    let mut residual_sum = vec![0.0_f64; applications];
    for &(juror, application, score) in reviews {
        residual_sum[application] += score - offset[juror].unwrap_or(0.0);
    }
    let quality =
        (0..applications).map(|a| (reviews_of[a] > 0).then(|| residual_sum[a] / reviews_of[a] as f64)).collect();
    Ok(BiasModel { quality, offset, component })
}

/// Gaussian elimination with partial pivoting on an augmented `n x (n + 1)` matrix, nonsingular.
fn solve(mut matrix: Vec<Vec<f64>>) -> Vec<f64> {
    let n = matrix.len();
    for column in 0..n {
        let pivot =
            (column..n).max_by(|&x, &y| matrix[x][column].abs().total_cmp(&matrix[y][column].abs())).unwrap_or(column);
        matrix.swap(column, pivot);
        let head = matrix[column][column];
        if head == 0.0 {
            continue;
        }
        for row in column + 1..n {
            let factor = matrix[row][column] / head;
            if factor != 0.0 {
                let (above, below) = matrix.split_at_mut(row);
                for (target, &source) in below[0][column..].iter_mut().zip(&above[column][column..]) {
                    *target -= factor * source;
                }
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| matrix[row][k] * x[k]).sum();
        let head = matrix[row][row];
        x[row] = if head == 0.0 { 0.0 } else { (matrix[row][n] - rest) / head };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn z_scores_are_per_juror_and_zero_for_a_constant_juror() {
        let reviews = [(0, 0, 2.0), (0, 1, 4.0), (1, 0, 3.0), (1, 1, 3.0), (2, 2, 5.0)];
        assert_eq!(z_scores(&reviews, 3).unwrap(), vec![-1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            z_scores(&[(3, 0, 1.0)], 3),
            Err(CalibrationError::UnknownIndex { review: 0, side: "juror", index: 3 })
        );
        assert_eq!(z_scores(&[(0, 0, f64::NAN)], 1), Err(CalibrationError::NotFinite { review: 0 }));
    }

    #[test]
    fn the_bias_model_recovers_additive_scores_in_each_connected_part() {
        // Part one: jurors 0, 1, 2 over applications 0..4, offsets +1, 0, -1. Part two: juror 3
        // alone on application 5. Juror 4 reviewed nothing, application 4 nobody.
        let quality = [3.0, 1.0, 4.0, 2.0];
        let offsets = [1.0, 0.0, -1.0];
        let design = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3), (0, 3), (1, 0)];
        let mut reviews: Vec<Review> = design.iter().map(|&(j, a)| (j, a, quality[a] + offsets[j])).collect();
        reviews.push((3, 5, 4.5));
        let model = bias_model(&reviews, 5, 6).unwrap();
        for (j, &expected) in offsets.iter().enumerate() {
            assert!(close(model.offset[j].unwrap(), expected), "{model:?}");
        }
        for (a, &expected) in quality.iter().enumerate() {
            assert!(close(model.quality[a].unwrap(), expected), "{model:?}");
        }
        assert_eq!(model.offset[3], Some(0.0));
        assert_eq!(model.quality[5], Some(4.5));
        assert_eq!((model.offset[4], model.quality[4]), (None, None));
        assert_eq!(model.component, vec![Some(0), Some(0), Some(0), Some(1), None]);
    }

    #[test]
    fn the_bias_model_is_the_least_squares_fit_with_offsets_summing_to_zero() {
        // Noisy scores: the residuals are orthogonal to every application's and juror's indicator
        // (the normal equations), and the offsets sum to zero.
        let reviews = [(0, 0, 3.0), (0, 1, 5.0), (1, 0, 2.0), (1, 2, 4.5), (2, 1, 3.5), (2, 2, 1.0), (0, 2, 2.0)];
        let model = bias_model(&reviews, 3, 3).unwrap();
        let residual = |&(j, a, s): &Review| s - model.quality[a].unwrap() - model.offset[j].unwrap();
        for index in 0..3 {
            let by_juror: f64 = reviews.iter().filter(|r| r.0 == index).map(residual).sum();
            let by_application: f64 = reviews.iter().filter(|r| r.1 == index).map(residual).sum();
            assert!(close(by_juror, 0.0) && close(by_application, 0.0), "{model:?}");
        }
        assert!(close(model.offset.iter().map(|o| o.unwrap()).sum::<f64>(), 0.0));
    }
}
