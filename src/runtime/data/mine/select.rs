//! Choosing each query's hard negatives from normalized embeddings, step
//! by step as `sentence_transformers.util.mine_hard_negatives` does
//! (without FAISS, i.e. exact search):
//!
//! 1. the `range_max + max_positives` most similar corpus texts (cosine),
//!    ties by corpus position (fewer when the corpus is smaller);
//! 2. the query's positives are struck out (unless `include_positives`);
//! 3. the margin filters strike out candidates too close to the query's
//!    hardest (least similar) positive, `max_score` / `min_score` those
//!    outside the score range;
//! 4. of the best `range_max` survivors, the first `range_min` are
//!    skipped;
//! 5. the first `num_negatives` are kept (`top`), or that many drawn
//!    uniformly among the survivors (`random`), re-sorted by score.
//!
//! Struck-out and empty slots keep a score of minus infinity, so a query
//! may end with fewer than `num_negatives` real negatives; the output
//! format decides what happens to those (`rows.rs`).
//!
//! Memory: the scores of one block of queries against the whole corpus at
//! a time (`chunk` queries), and the candidates kept per query.

use crate::registry::choices::NegativeSampling;
use crate::runtime::search;
use crate::runtime::train::rng::Rng;

/// The mining settings (the transform's arguments).
#[derive(Debug, Clone)]
pub struct Settings {
    pub num_negatives: usize,
    pub range_min: usize,
    /// `None`: derived from the other settings as sentence-transformers does.
    pub range_max: Option<usize>,
    pub max_score: Option<f32>,
    pub min_score: Option<f32>,
    pub absolute_margin: Option<f32>,
    pub relative_margin: Option<f32>,
    pub sampling: NegativeSampling,
    pub seed: u64,
    pub include_positives: bool,
    /// Queries scored at a time; `None`: as many as keep one block of
    /// scores under [`search::BLOCK_FLOATS`].
    pub chunk: Option<usize>,
}

impl Settings {
    /// `range_max` as given, or as sentence-transformers derives it: room
    /// for the positives, and ten candidates per negative when a filter
    /// may strike some out.
    pub fn range_max(&self, max_positives: usize) -> usize {
        self.range_max.unwrap_or_else(|| {
            let filtered = self.absolute_margin.is_some()
                || self.relative_margin.is_some()
                || self.max_score.is_some();
            let per = if filtered { 10 } else { 1 };
            self.range_min
                .saturating_add(self.num_negatives.saturating_mul(per))
                .saturating_add(max_positives)
        })
    }
}

/// A candidate: its score and corpus position (`None` for an empty slot).
pub type Candidate = (f32, Option<usize>);

/// What mining found.
#[derive(Debug, Default)]
pub struct Mined {
    /// Per query, up to `num_negatives` candidates, best first; struck-out
    /// ones have a score of minus infinity.
    pub negatives: Vec<Vec<Candidate>>,
    /// Per query, the score of each of its positives.
    pub positive_scores: Vec<Vec<f32>>,
    /// Candidates struck out by each filter, for the log.
    pub skipped: Vec<(&'static str, usize)>,
    pub range_max: usize,
    pub num_negatives: usize,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Mine negatives for every query. `queries` and `corpus` are row-major
/// normalized embeddings of width `dim`; `positives[q]` are query `q`'s
/// positives as corpus positions; `max_positives` is the largest number
/// of pairs any query has (sentence-transformers counts rows, not
/// distinct positives).
pub fn mine(
    queries: &[f32],
    corpus: &[f32],
    dim: usize,
    positives: &[Vec<usize>],
    max_positives: usize,
    s: &Settings,
) -> candle_core::Result<Mined> {
    let nc = corpus.len() / dim.max(1);
    let range_max = s.range_max(max_positives);
    let width = range_max.saturating_add(max_positives);
    let mut mined = Mined {
        range_max,
        num_negatives: s.num_negatives,
        ..Mined::default()
    };
    let mut skipped = [0usize; 4];
    let mut rng = Rng::derived(s.seed, "mine_hard_negatives");
    let mut buf = Vec::with_capacity(nc);
    let chunk = search::block_rows(s.chunk, nc);
    search::score_blocks(queries, corpus, dim, chunk, |qi, row| {
        let mut cands: Vec<Candidate> = search::top_k(row, width, &mut buf)
            .into_iter()
            .map(|(v, i)| (v, Some(i)))
            .collect();
        // Slots a small corpus cannot fill would stay empty: they are
        // left out rather than allocated (`range_max` may be huge).
        cands.truncate(width.min(nc));
        let qv = &queries[qi * dim..(qi + 1) * dim];
        let pos_scores: Vec<f32> = positives[qi]
            .iter()
            .map(|&p| dot(qv, &corpus[p * dim..(p + 1) * dim]))
            .collect();
        filter(&mut cands, &positives[qi], &pos_scores, s, &mut skipped);
        mined.negatives.push(pick(cands, range_max, s, &mut rng));
        mined.positive_scores.push(pos_scores);
    })?;
    let names = [
        "absolute_margin",
        "relative_margin",
        "max_score",
        "min_score",
    ];
    mined.skipped = names
        .into_iter()
        .zip(skipped)
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(mined)
}

/// Strike out positives and the candidates the filters exclude.
fn filter(
    cands: &mut [Candidate],
    positives: &[usize],
    pos_scores: &[f32],
    s: &Settings,
    skipped: &mut [usize; 4],
) {
    if !s.include_positives {
        for c in cands.iter_mut() {
            if c.1.is_some_and(|i| positives.contains(&i)) {
                c.0 = f32::NEG_INFINITY;
            }
        }
    }
    // The hardest positive: the margin is kept from the least similar one.
    let hardest = pos_scores.iter().copied().fold(f32::INFINITY, f32::min);
    let mut strike = |c: &mut Candidate, out: bool, which: usize| {
        if c.0.is_finite() && out {
            c.0 = f32::NEG_INFINITY;
            skipped[which] += 1;
        }
    };
    for c in cands.iter_mut() {
        if let Some(m) = s.absolute_margin {
            strike(c, c.0 + m > hardest, 0);
        }
        if let Some(m) = s.relative_margin {
            strike(c, c.0 > hardest - hardest.abs() * m, 1);
        }
        if let Some(m) = s.max_score {
            strike(c, c.0 > m, 2);
        }
        if let Some(m) = s.min_score {
            strike(c, c.0 < m, 3);
        }
    }
}

/// Steps 4 and 5: the window `[range_min, range_max)` of the survivors,
/// then the top or a random draw of `num_negatives`.
fn pick(
    mut cands: Vec<Candidate>,
    range_max: usize,
    s: &Settings,
    rng: &mut Rng,
) -> Vec<Candidate> {
    // Stable: equal scores keep their order (struck-out ones sink).
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    cands.truncate(range_max);
    let window: Vec<Candidate> = cands.into_iter().skip(s.range_min).collect();
    let n = s.num_negatives.min(window.len());
    match s.sampling {
        NegativeSampling::Top => window.into_iter().take(n).collect(),
        NegativeSampling::Random => {
            let finite = window.iter().filter(|c| c.0.is_finite()).count();
            let options = finite.max(n).min(window.len());
            let mut idx: Vec<usize> = (0..options).collect();
            for i in 0..n {
                let j = i + rng.below((options - i) as u64) as usize;
                idx.swap(i, j);
            }
            let mut out: Vec<Candidate> = idx[..n].iter().map(|&i| window[i]).collect();
            out.sort_by(|a, b| b.0.total_cmp(&a.0));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            num_negatives: 2,
            range_min: 0,
            range_max: None,
            max_score: None,
            min_score: None,
            absolute_margin: None,
            relative_margin: None,
            sampling: NegativeSampling::Top,
            seed: 1,
            include_positives: false,
            chunk: None,
        }
    }

    /// Unit vectors in the plane at these angles (degrees) from the x axis.
    fn at(angles: &[f32]) -> Vec<f32> {
        angles
            .iter()
            .flat_map(|a| {
                let r = a.to_radians();
                [r.cos(), r.sin()]
            })
            .collect()
    }

    fn negatives(m: &Mined, q: usize) -> Vec<Option<usize>> {
        m.negatives[q]
            .iter()
            .map(|c| if c.0.is_finite() { c.1 } else { None })
            .collect()
    }

    // The query points along x; the corpus lies at 0, 10, 20, 30, 40 and
    // 90 degrees, the positive at 20.
    fn case(s: &Settings, chunk: Option<usize>) -> Mined {
        let q = at(&[0.0]);
        let c = at(&[0.0, 10.0, 20.0, 30.0, 40.0, 90.0]);
        let s = Settings { chunk, ..s.clone() };
        mine(&q, &c, 2, &[vec![2]], 1, &s).unwrap()
    }

    #[test]
    fn top_negatives_skip_the_positive_and_keep_the_score_order() {
        let m = case(&settings(), None);
        // range_max = 0 + 2 + 1 = 3; the best 3 + 1 are 0, 10, 20, 30; the
        // positive (20) is struck out.
        assert_eq!(m.range_max, 3);
        assert_eq!(negatives(&m, 0), vec![Some(0), Some(1)]);
        assert!((m.positive_scores[0][0] - 20f32.to_radians().cos()).abs() < 1e-6);
        assert!((m.negatives[0][1].0 - 10f32.to_radians().cos()).abs() < 1e-6);
        // The block size changes nothing.
        assert_eq!(
            negatives(&case(&settings(), Some(1)), 0),
            vec![Some(0), Some(1)]
        );
    }

    #[test]
    fn range_min_skips_the_most_similar_candidates() {
        let s = Settings {
            range_min: 1,
            range_max: Some(4),
            ..settings()
        };
        assert_eq!(negatives(&case(&s, None), 0), vec![Some(1), Some(3)]);
    }

    #[test]
    fn margins_and_max_score_strike_out_near_positives() {
        // cos 20 = 0.9397; an absolute margin of 0.05 strikes out anything
        // above 0.8897: 0 (1.0), 10 (0.985), leaving 30 (0.866), 40 (0.766).
        let s = Settings {
            absolute_margin: Some(0.05),
            ..settings()
        };
        let m = case(&s, None);
        assert_eq!(negatives(&m, 0), vec![Some(3), Some(4)]);
        assert_eq!(m.skipped, vec![("absolute_margin", 2)]);
        // A relative margin of 5% of 0.9397 (0.047) strikes out the same.
        let s = Settings {
            relative_margin: Some(0.05),
            ..settings()
        };
        assert_eq!(negatives(&case(&s, None), 0), vec![Some(3), Some(4)]);
        // max_score 0.9 leaves 30 and 40 too; min_score 0.8 then leaves 30
        // alone, and the second slot stays empty.
        let s = Settings {
            max_score: Some(0.9),
            min_score: Some(0.8),
            ..settings()
        };
        assert_eq!(negatives(&case(&s, None), 0), vec![Some(3), None]);
    }

    #[test]
    fn include_positives_keeps_the_positive_among_the_candidates() {
        let s = Settings {
            include_positives: true,
            num_negatives: 3,
            ..settings()
        };
        assert_eq!(
            negatives(&case(&s, None), 0),
            vec![Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn a_small_corpus_leaves_empty_slots() {
        let q = at(&[0.0]);
        let c = at(&[0.0, 45.0]);
        let m = mine(&q, &c, 2, &[vec![0]], 1, &settings()).unwrap();
        assert_eq!(negatives(&m, 0), vec![Some(1), None]);
        // A huge range_max allocates nothing beyond the corpus.
        let s = Settings {
            range_max: Some(usize::MAX / 4),
            ..settings()
        };
        let m = mine(&q, &c, 2, &[vec![0]], 1, &s).unwrap();
        assert_eq!(negatives(&m, 0), vec![Some(1), None]);
    }

    #[test]
    fn random_sampling_draws_among_the_survivors_by_seed() {
        let s = Settings {
            sampling: NegativeSampling::Random,
            num_negatives: 2,
            range_max: Some(5),
            ..settings()
        };
        let draws: Vec<Vec<Option<usize>>> = (0..20)
            .map(|seed| negatives(&case(&Settings { seed, ..s.clone() }, None), 0))
            .collect();
        for d in &draws {
            assert_eq!(d.len(), 2);
            assert!(d.iter().all(|x| x.is_some() && *x != Some(2)), "{d:?}");
            // Re-sorted by score: corpus order here.
            assert!(d[0] < d[1], "{d:?}");
        }
        assert!(
            draws.iter().any(|d| *d != draws[0]),
            "the seed changes the draw"
        );
        assert_eq!(
            draws[3],
            negatives(&case(&Settings { seed: 3, ..s }, None), 0)
        );
    }
}
