//! `RerankingEvaluator`: each query's candidate documents ranked by
//! similarity to it; the relevant ones should come first. Metrics, as
//! sentence-transformers computes them (sklearn's `average_precision_score`
//! and `ndcg_score`, which average over tied scores): `ndcg_at_10` (the
//! primary), `mrr_at_10` and `map`, averaged over queries.
//!
//! The data has one row per candidate: query, document, label (1 relevant,
//! 0 not). Rows are grouped by query text, in order of first appearance; a
//! query without both a relevant and an irrelevant candidate takes no part,
//! as in sentence-transformers. k is 10, sentence-transformers' default.

use std::collections::HashMap;

use super::{
    math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry, Similarity,
    BATCH_SIZE, MODEL, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES,
};
use crate::registry::{columns, opt, req, ArgError, ArgType::*, Args, Component, Family};

/// The rank cut-off of MRR and NDCG.
const K: usize = 10;

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "Reranking",
        family: Family::Evaluator,
        doc: "Ranking of each query's candidates: rows (query, document, 0/1 label) grouped by query; NDCG@10, MRR@10 and MAP of the relevant documents among the candidates, ranked by similarity to the query.",
        args: &[
            MODEL,
            req("data", Data, "one row per candidate: query, document, label (1 relevant, 0 not)"),
            BATCH_SIZE,
            PROMPTS,
            opt("similarity", Choice(Similarity::NAMES), "cosine", "how candidates are scored against their query"),
            TRUNCATE_DIM,
            TRUNCATE_LAYERS,
        ],
        columns: Some(columns::QUERY_CANDIDATE),
        metrics: &["ndcg_at_10", "mrr_at_10", "map"],
        rules: TRUNCATE_RULES,
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(Reranking {
        common: Common::from_args(a)?,
        similarity: a.choice("similarity")?,
    }))
}

struct Reranking {
    common: Common,
    similarity: Similarity,
}

/// One query's candidates: their scores and relevance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidates {
    pub scores: Vec<f64>,
    pub relevant: Vec<bool>,
}

impl Evaluator for Reranking {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let labels = ds.classes().ok_or_else(|| {
            crate::runtime::Error::Msg(format!("`{}` has no 0/1 labels", ds.name))
        })?;
        let queries = c.encode_column(model, ds, 0)?;
        let docs = c.encode_column(model, ds, 1)?;
        let mut groups: Vec<Candidates> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, e) in ds.examples.iter().enumerate() {
            let g = *index.entry(e.texts[0].as_str()).or_insert_with(|| {
                groups.push(Candidates::default());
                groups.len() - 1
            });
            groups[g]
                .scores
                .push(self.similarity.score(&queries[i], &docs[i]));
            groups[g].relevant.push(labels[i] > 0);
        }
        reranking_metrics(&groups).map_err(math_err("Reranking"))
    }
}

/// Indices of `scores` from the highest down; ties keep their order.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// The runs of equal scores in `order` (indices, highest score first).
fn tie_groups<'a>(order: &'a [usize], scores: &'a [f64]) -> impl Iterator<Item = &'a [usize]> {
    order.chunk_by(move |&a, &b| scores[a] == scores[b])
}

/// sklearn's `average_precision_score`: precision at each distinct score
/// threshold, weighted by the recall it adds.
fn average_precision(c: &Candidates, order: &[usize]) -> f64 {
    let positives = c.relevant.iter().filter(|&&r| r).count() as f64;
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    for group in tie_groups(order, &c.scores) {
        let hits = group.iter().filter(|&&i| c.relevant[i]).count() as f64;
        tp += hits;
        seen += group.len() as f64;
        ap += (hits / positives) * (tp / seen);
    }
    ap
}

/// sklearn's `ndcg_score` at `k` with tie-averaged gains, binary relevance.
fn ndcg(c: &Candidates, order: &[usize], k: usize) -> f64 {
    let discount = |rank: usize| {
        if rank < k {
            1.0 / ((rank + 2) as f64).log2()
        } else {
            0.0
        }
    };
    let (mut dcg, mut rank) = (0.0, 0usize);
    for group in tie_groups(order, &c.scores) {
        let gain = group.iter().filter(|&&i| c.relevant[i]).count() as f64 / group.len() as f64;
        dcg += gain * (rank..rank + group.len()).map(discount).sum::<f64>();
        rank += group.len();
    }
    let positives = c.relevant.iter().filter(|&&r| r).count();
    let ideal: f64 = (0..positives).map(discount).sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

/// The reciprocal rank of the first relevant candidate within the top `k`.
fn reciprocal_rank(c: &Candidates, order: &[usize], k: usize) -> f64 {
    order
        .iter()
        .take(k)
        .position(|&i| c.relevant[i])
        .map_or(0.0, |r| 1.0 / (r + 1) as f64)
}

/// The reranking metrics over every query with both a relevant and an
/// irrelevant candidate.
pub fn reranking_metrics(groups: &[Candidates]) -> Result<EvalMetrics, EvalError> {
    let (mut map, mut mrr, mut ndcg_sum, mut n) = (0.0, 0.0, 0.0, 0usize);
    for c in groups {
        if c.scores.len() != c.relevant.len() {
            return Err(EvalError::LengthMismatch {
                what: "relevance labels",
                expected: c.scores.len(),
                got: c.relevant.len(),
            });
        }
        if !c.relevant.iter().any(|&r| r) || c.relevant.iter().all(|&r| r) {
            continue;
        }
        let order = descending(&c.scores);
        map += average_precision(c, &order);
        mrr += reciprocal_rank(c, &order, K);
        ndcg_sum += ndcg(c, &order, K);
        n += 1;
    }
    if n == 0 {
        return Err(EvalError::Empty);
    }
    let n = n as f64;
    Ok(EvalMetrics {
        entries: vec![
            ("ndcg_at_10".into(), ndcg_sum / n),
            ("mrr_at_10".into(), mrr / n),
            ("map".into(), map / n),
        ],
        primary: "ndcg_at_10".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(scores: &[f64], relevant: &[u8]) -> Candidates {
        Candidates {
            scores: scores.to_vec(),
            relevant: relevant.iter().map(|&r| r == 1).collect(),
        }
    }

    #[test]
    fn by_hand() -> Result<(), EvalError> {
        // Ranked: irrelevant (0.9), relevant (0.8), irrelevant (0.5),
        // relevant (0.1). AP = (1/2 + 2/4) / 2 = 0.5; MRR = 1/2;
        // DCG = 1/log2(3) + 1/log2(5), ideal = 1 + 1/log2(3).
        let c = cands(&[0.9, 0.8, 0.5, 0.1], &[0, 1, 0, 1]);
        let m = reranking_metrics(std::slice::from_ref(&c))?;
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((m.get("map").unwrap_or(0.0) - 0.5).abs() < 1e-12);
        assert!((m.get("mrr_at_10").unwrap_or(0.0) - 0.5).abs() < 1e-12);
        assert!((m.get("ndcg_at_10").unwrap_or(0.0) - dcg / ideal).abs() < 1e-12);
        // A query with only relevant (or only irrelevant) candidates takes
        // no part; none left is an error.
        let only = cands(&[0.3, 0.2], &[1, 1]);
        let m2 = reranking_metrics(&[c, only.clone()])?;
        assert_eq!(m2.get("map"), m.get("map"));
        assert_eq!(reranking_metrics(&[only]), Err(EvalError::Empty));
        Ok(())
    }

    #[test]
    fn ties_are_averaged_as_sklearn_does() {
        // One relevant and one irrelevant candidate tied at the top, one
        // irrelevant below: AP = 1/2 (one threshold holds both), NDCG's
        // tied gain 1/2 over ranks 1 and 2: (1 + 1/log2 3) / 2.
        let c = cands(&[0.7, 0.7, 0.1], &[0, 1, 0]);
        let order = descending(&c.scores);
        assert!((average_precision(&c, &order) - 0.5).abs() < 1e-12);
        assert!((ndcg(&c, &order, 10) - (1.0 + 1.0 / 3f64.log2()) / 2.0).abs() < 1e-12);
        // Past k, nothing counts.
        let deep = cands(&[0.9, 0.8, 0.7, 0.1], &[0, 0, 0, 1]);
        let order = descending(&deep.scores);
        assert_eq!(ndcg(&deep, &order, 3), 0.0);
        assert_eq!(reciprocal_rank(&deep, &order, 3), 0.0);
    }

    #[test]
    fn matches_sentence_transformers() -> Result<(), EvalError> {
        // RerankingEvaluator of sentence-transformers 6.2.0 on the float32
        // embeddings of scripts/evaluator_reference_values.py (cosine).
        let q = crate::runtime::eval::testdata::gen(8, 6, 5, 3, 0.3);
        let d = crate::runtime::eval::testdata::gen(9, 6 * 12, 5, 4, 0.2);
        let groups: Vec<Candidates> = (0..6)
            .map(|i| Candidates {
                scores: (0..12)
                    .map(|j| Similarity::Cosine.score(&q[i], &d[i * 12 + j]))
                    .collect(),
                relevant: (0..12).map(|j| (i + j) % 4 == 0).collect(),
            })
            .collect();
        let m = reranking_metrics(&groups)?;
        for (k, want) in [
            ("map", 0.331511544011544),
            ("mrr_at_10", 0.2555555555555556),
            ("ndcg_at_10", 0.4329908269618012),
        ] {
            let got = m.get(k).unwrap_or(-1.0);
            assert!((got - want).abs() < 1e-6, "{k}: {got} vs {want}");
        }
        Ok(())
    }
}
