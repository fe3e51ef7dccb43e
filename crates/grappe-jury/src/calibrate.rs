//! Calibration of reviews: jurors do not use a scale alike (one gives 4s, another 2s to the same
//! work). `z_scores` puts each juror's scores on their own mean and spread; `bias_model` fits
//! score = application quality + juror offset by least squares (offsets summing to zero), so
//! that an application judged by severe jurors is not ranked below one judged by lenient ones.

/// One review: (application, juror, score), by positions.
pub type Review = (usize, usize, f64);

/// Each review's score as a z-score within its juror's reviews (0 for a juror with one review
/// or no spread), in the order given.
pub fn z_scores(reviews: &[Review], jurors: usize) -> Vec<f64> {
    let mut sum = vec![0.0; jurors];
    let mut count = vec![0.0f64; jurors];
    for &(_, j, s) in reviews {
        sum[j] += s;
        count[j] += 1.0;
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 }).collect();
    let mut squares = vec![0.0; jurors];
    for &(_, j, s) in reviews {
        squares[j] += (s - mean[j]).powi(2);
    }
    reviews
        .iter()
        .map(|&(_, j, s)| {
            let sd = if count[j] > 1.0 { (squares[j] / count[j]).sqrt() } else { 0.0 };
            if sd > 0.0 { (s - mean[j]) / sd } else { 0.0 }
        })
        .collect()
}

/// The least-squares fit of score = quality(application) + offset(juror), offsets summing to
/// zero, by alternating exact updates (each step solves one side given the other) until they
/// move less than 1e-12 or after 1000 rounds: (qualities, offsets). Applications with no review
/// get quality NaN.
pub fn bias_model(reviews: &[Review], applications: usize, jurors: usize) -> (Vec<f64>, Vec<f64>) {
    let mut quality = vec![0.0; applications];
    let mut offset = vec![0.0; jurors];
    for _ in 0..1000 {
        let mut sum = vec![0.0; applications];
        let mut count = vec![0.0f64; applications];
        for &(a, j, s) in reviews {
            sum[a] += s - offset[j];
            count[a] += 1.0;
        }
        let next_quality: Vec<f64> =
            sum.iter().zip(&count).map(|(s, c)| if *c > 0.0 { s / c } else { f64::NAN }).collect();
        let mut sum = vec![0.0; jurors];
        let mut count = vec![0.0f64; jurors];
        for &(a, j, s) in reviews {
            sum[j] += s - next_quality[a];
            count[j] += 1.0;
        }
        let mut next_offset: Vec<f64> =
            sum.iter().zip(&count).map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 }).collect();
        // Offsets sum to zero over the jurors who reviewed; qualities take the mean.
        let active = count.iter().filter(|c| **c > 0.0).count().max(1) as f64;
        let shift = next_offset.iter().sum::<f64>() / active;
        next_offset.iter_mut().zip(&count).filter(|(_, c)| **c > 0.0).for_each(|(o, _)| *o -= shift);
        let next_quality: Vec<f64> = next_quality.iter().map(|q| q + shift).collect();
        let moved = next_quality
            .iter()
            .zip(&quality)
            .chain(next_offset.iter().zip(&offset))
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        quality = next_quality;
        offset = next_offset;
        if moved < 1e-12 {
            break;
        }
    }
    (quality, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_severe_juror_is_corrected() {
        // Two jurors review all three applications; the second gives exactly one point less.
        let reviews = [(0, 0, 4.0), (1, 0, 3.0), (2, 0, 2.0), (0, 1, 3.0), (1, 1, 2.0), (2, 1, 1.0)];
        let (quality, offset) = bias_model(&reviews, 3, 2);
        assert!((offset[0] - 0.5).abs() < 1e-9 && (offset[1] + 0.5).abs() < 1e-9, "{offset:?}");
        assert!((quality[0] - 3.5).abs() < 1e-9 && (quality[2] - 1.5).abs() < 1e-9, "{quality:?}");
        // One application reviewed only by the severe juror is not pulled down.
        let reviews = [(0, 0, 4.0), (1, 1, 3.0), (2, 0, 3.0), (2, 1, 2.0)];
        let (quality, _) = bias_model(&reviews, 3, 2);
        assert!((quality[0] - quality[1]).abs() < 1e-9, "4 by the lenient = 3 by the severe: {quality:?}");
    }

    #[test]
    fn z_scores_center_each_juror() {
        let reviews = [(0, 0, 5.0), (1, 0, 3.0), (0, 1, 1.0), (1, 1, 1.0), (2, 2, 4.0)];
        let z = z_scores(&reviews, 3);
        assert_eq!(z[0], 1.0);
        assert_eq!(z[1], -1.0);
        assert_eq!((z[2], z[3], z[4]), (0.0, 0.0, 0.0), "no spread, one review: 0");
        let (quality, _) = bias_model(&[], 2, 1);
        assert!(quality.iter().all(|q| q.is_nan()));
    }
}
