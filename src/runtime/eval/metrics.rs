//! Correlation and similarity metrics used by the evaluators, computed in
//! f64 with the same definitions as scipy (`pearsonr`, `spearmanr` with
//! average ranks for ties) and sentence-transformers' paired distances.

/// Pearson's correlation coefficient; `None` when either side is constant
/// or the lengths differ or are below 2.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Ranks 1..=n with ties given their average rank. NaNs rank last.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) share the mean of ranks i+1..=j+1.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation (Pearson on average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64, *y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Euclidean distance.
pub fn euclidean(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// Manhattan (L1) distance.
pub fn manhattan(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_known_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.0, 6.0, 8.0, 10.0];
        assert!((pearson(&x, &y).unwrap() - 1.0).abs() < 1e-12);
        let z = [5.0, 3.0, 4.0, 1.0, 2.0];
        // scipy.stats.pearsonr([1,2,3,4,5],[5,3,4,1,2]) = -0.8
        assert!((pearson(&x, &z).unwrap() + 0.8).abs() < 1e-12);
        assert_eq!(pearson(&x, &[1.0; 5]), None);
    }

    #[test]
    fn spearman_with_ties_matches_scipy() {
        let ranks = average_ranks(&[10.0, 20.0, 20.0, 5.0]);
        assert_eq!(ranks, vec![2.0, 3.5, 3.5, 1.0]);
        // Ranks [1, 2.5, 2.5, 4, 5] and [1, 3, 2, 4.5, 4.5]: centred, their
        // cross sum is 9 and each sum of squares 9.5, so rho = 18/19.
        let s = spearman(&[1.0, 2.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0, 4.0]).unwrap();
        assert!((s - 18.0 / 19.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn similarities() {
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 2.0, 0.0];
        assert_eq!(cosine(&a, &b), 0.0);
        assert!((cosine(&a, &[3.0, 0.0, 0.0]) - 1.0).abs() < 1e-12);
        assert_eq!(dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
        assert_eq!(euclidean(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
        assert_eq!(manhattan(&[0.0, 0.0], &[3.0, -4.0]), 7.0);
    }
}
