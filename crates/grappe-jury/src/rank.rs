//! Rankings from jurors' orderings, for comparison with the calibrated scores: Borda and
//! Schulze. An ordering lists candidates (by position) best first; it may leave some out.

/// Borda: in an ordering of `len` candidates, the one at place `i` (from 0) gets `len - 1 - i`
/// points; candidates it leaves out get none. Returns (candidate, points), most points first,
/// ties by candidate. Orderings that name a candidate out of range or twice are skipped
/// entries-wise: an unknown candidate is ignored, a repeated one counts at its first place.
pub fn borda(orderings: &[Vec<usize>], candidates: usize) -> Vec<(usize, u64)> {
    let mut points = vec![0_u64; candidates];
    for ordering in orderings {
        let ranked = clean(ordering, candidates);
        for (place, &candidate) in ranked.iter().enumerate() {
            points[candidate] += (ranked.len() - 1 - place) as u64;
        }
    }
    let mut ranking: Vec<(usize, u64)> = points.into_iter().enumerate().collect();
    ranking.sort_by_key(|&(candidate, points)| (std::cmp::Reverse(points), candidate));
    ranking
}

/// Schulze: `d[x][y]`, the orderings that put x above y (a listed candidate is above every one
/// left out); the strongest path strengths `p` (widest paths, Floyd-Warshall); x ranks above y
/// when `p[x][y] > p[y][x]`, a transitive relation. Returns the candidates in that order, each
/// with how many others it beats, ties by candidate. `O(candidates^3)`.
pub fn schulze(orderings: &[Vec<usize>], candidates: usize) -> Vec<(usize, usize)> {
    let c = candidates;
    let mut d = vec![0_u64; c * c];
    for ordering in orderings {
        let ranked = clean(ordering, c);
        let mut listed = vec![false; c];
        for (place, &x) in ranked.iter().enumerate() {
            listed[x] = true;
            for &y in &ranked[place + 1..] {
                d[x * c + y] += 1;
            }
        }
        for &x in &ranked {
            for y in (0..c).filter(|&y| !listed[y]) {
                d[x * c + y] += 1;
            }
        }
    }
    let mut p = vec![0_u64; c * c];
    for x in 0..c {
        for y in 0..c {
            if x != y && d[x * c + y] > d[y * c + x] {
                p[x * c + y] = d[x * c + y];
            }
        }
    }
    for k in 0..c {
        for x in (0..c).filter(|&x| x != k) {
            for y in (0..c).filter(|&y| y != k && y != x) {
                let through = p[x * c + k].min(p[k * c + y]);
                if through > p[x * c + y] {
                    p[x * c + y] = through;
                }
            }
        }
    }
    let mut ranking: Vec<(usize, usize)> =
        (0..c).map(|x| (x, (0..c).filter(|&y| p[x * c + y] > p[y * c + x]).count())).collect();
    ranking.sort_by_key(|&(candidate, beaten)| (std::cmp::Reverse(beaten), candidate));
    ranking
}

/// The ordering's candidates in range, each at its first place.
fn clean(ordering: &[usize], candidates: usize) -> Vec<usize> {
    let mut seen = vec![false; candidates];
    ordering
        .iter()
        .copied()
        .filter(|&candidate| candidate < candidates && !std::mem::replace(&mut seen[candidate], true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wikipedia's Schulze example: 45 voters, candidates A..E; E > A > C > B > D.
    fn wikipedia() -> Vec<Vec<usize>> {
        let groups: [(usize, &str); 8] = [
            (5, "ACBED"),
            (5, "ADECB"),
            (8, "BEDAC"),
            (3, "CABED"),
            (7, "CAEBD"),
            (2, "CBADE"),
            (7, "DCEBA"),
            (8, "EBADC"),
        ];
        groups
            .iter()
            .flat_map(|&(count, order)| {
                std::iter::repeat_n(order.bytes().map(|b| (b - b'A') as usize).collect::<Vec<_>>(), count)
            })
            .collect()
    }

    #[test]
    fn schulze_ranks_wikipedias_example_e_a_c_b_d() {
        let order: Vec<usize> = schulze(&wikipedia(), 5).into_iter().map(|(candidate, _)| candidate).collect();
        assert_eq!(order, vec![4, 0, 2, 1, 3]);
    }

    #[test]
    fn borda_counts_places_and_skips_unknown_or_repeated_candidates() {
        // A: 2 + 0 + 1, B: 1 + 2 + 0 (its repeat ignored), C: 0 + 1 + 0 (unknown 9 ignored).
        let orderings = vec![vec![0, 1, 2], vec![1, 2, 0, 1], vec![0, 9, 1]];
        assert_eq!(borda(&orderings, 3), vec![(0, 3), (1, 3), (2, 1)]);
        assert_eq!(borda(&[], 2), vec![(0, 0), (1, 0)]);
    }

    #[test]
    fn schulze_puts_listed_candidates_above_those_left_out() {
        let orderings = vec![vec![2], vec![2, 0], vec![1]];
        assert_eq!(schulze(&orderings, 3), vec![(2, 2), (0, 0), (1, 0)]);
    }
}
