//! Largest-Triangle-Three-Buckets (Sveinn Steinarsson, "Downsampling Time Series for Visual
//! Representation", 2013), written from the thesis's description: keep the first and the last
//! point; split the points between them into `max_points - 2` buckets of equal count; walk the
//! buckets in order and keep, from each, the point that makes the largest triangle with the point
//! kept from the bucket before and the mean of the bucket after (for the last bucket, the last
//! point). One pass, O(n) time, and the line through the points kept keeps the peaks and troughs
//! that a person would see in the whole.

/// At most `max_points` of `points`, chosen by Largest-Triangle-Three-Buckets, in their order.
/// Points with a coordinate that is not finite are left out first. With `max_points` below 3,
/// the first and the last point (or the first alone, or none).
pub fn lttb(points: &[(f64, f64)], max_points: usize) -> Vec<(f64, f64)> {
    let finite = |(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let owned: Vec<(f64, f64)>;
    let points: &[(f64, f64)] = if points.iter().all(finite) {
        points
    } else {
        owned = points.iter().copied().filter(finite).collect();
        &owned
    };
    let n = points.len();
    if n <= max_points {
        return points.to_vec();
    }
    match max_points {
        0 => return Vec::new(),
        1 => return vec![points[0]],
        2 => return vec![points[0], points[n - 1]],
        _ => {}
    }
    // Here n > max_points >= 3, so each of the buckets holds at least one point.
    let buckets = max_points - 2;
    let width = (n - 2) as f64 / buckets as f64;
    let bound = |bucket: usize| (1 + (bucket as f64 * width) as usize).min(n - 1);
    let mut kept = Vec::with_capacity(max_points);
    kept.push(points[0]);
    let mut previous = points[0];
    for bucket in 0..buckets {
        let (start, end) = (bound(bucket), bound(bucket + 1).max(bound(bucket) + 1));
        let next = if bucket + 1 == buckets {
            points[n - 1]
        } else {
            let (next_start, next_end) = (end, bound(bucket + 2).max(end + 1).min(n));
            mean(&points[next_start..next_end])
        };
        let mut best = points[start];
        let mut best_area = -1.0;
        for &candidate in &points[start..end.min(n - 1)] {
            let area = ((previous.0 - next.0) * (candidate.1 - previous.1)
                - (previous.0 - candidate.0) * (next.1 - previous.1))
                .abs();
            // A NaN area (coordinates so large that their products overflow) is never the best.
            if area > best_area {
                best_area = area;
                best = candidate;
            }
        }
        kept.push(best);
        previous = best;
    }
    kept.push(points[n - 1]);
    kept
}

/// The mean of finite points, finite however large they are (each is divided before the sum).
fn mean(points: &[(f64, f64)]) -> (f64, f64) {
    let count = points.len().max(1) as f64;
    points.iter().fold((0.0, 0.0), |(x, y), point| (x + point.0 / count, y + point.1 / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_whole() {
        let points = vec![(0.0, 1.0), (1.0, 2.0), (2.0, 0.5)];
        assert_eq!(lttb(&points, 3), points);
        assert_eq!(lttb(&points, 1000), points);
        assert_eq!(lttb(&points, 2), vec![(0.0, 1.0), (2.0, 0.5)]);
        assert_eq!(lttb(&points, 1), vec![(0.0, 1.0)]);
        assert!(lttb(&points, 0).is_empty());
        assert!(lttb(&[], 10).is_empty());
    }

    #[test]
    fn peaks_survive_and_ends_are_kept() {
        // A flat line with one spike: the spike must be among the points kept.
        let mut points: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), 0.0)).collect();
        points[6_789].1 = 100.0;
        points[1_234].1 = -50.0;
        let kept = lttb(&points, 100);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept.first(), Some(&(0.0, 0.0)));
        assert_eq!(kept.last(), Some(&(9_999.0, 0.0)));
        assert!(kept.contains(&(6_789.0, 100.0)) && kept.contains(&(1_234.0, -50.0)), "{kept:?}");
        assert!(kept.windows(2).all(|pair| pair[0].0 < pair[1].0), "kept in order");
    }

    #[test]
    fn the_bucket_picks_the_largest_triangle() {
        // Five points, three kept: the middle bucket holds (1, 0), (2, 5), (3, 1); the largest
        // triangle with (0, 0) and (4, 0) is the one through (2, 5).
        let points = [(0.0, 0.0), (1.0, 0.0), (2.0, 5.0), (3.0, 1.0), (4.0, 0.0)];
        assert_eq!(lttb(&points, 3), vec![(0.0, 0.0), (2.0, 5.0), (4.0, 0.0)]);
    }

    #[test]
    fn non_finite_and_extreme_points_neither_panic_nor_survive() {
        let mut points = vec![(f64::NAN, 1.0), (0.0, f64::INFINITY), (1.0, f64::MAX), (2.0, -f64::MAX)];
        points.extend((3..5_000).map(|i| (f64::from(i), if i % 2 == 0 { f64::MAX } else { f64::MIN })));
        let kept = lttb(&points, 50);
        assert_eq!(kept.len(), 50);
        assert!(kept.iter().all(|(x, y)| x.is_finite() && y.is_finite()));
        assert_eq!(kept[0], (1.0, f64::MAX));
    }
}
