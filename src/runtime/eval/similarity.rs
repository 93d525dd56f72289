//! `EmbeddingSimilarityEvaluator`: Pearson and Spearman correlations
//! between gold scores and the similarity of each pair's embeddings.
//!
//! Metrics, for each similarity function in the configured order:
//! `pearson_{fn}`, `spearman_{fn}`; with more than one function also
//! `pearson_max` and `spearman_max`. The primary metric is
//! `spearman_{main_similarity}` when a main similarity is set, else
//! `spearman_max` with several functions, else `spearman_{fn}`. A
//! correlation that is undefined (constant scores) is NaN, as scipy's.

use super::metrics::{pearson, spearman};
use super::{
    check_pairs, math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry,
    Similarity, BATCH_SIZE, MODEL, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES,
};
use crate::registry::{columns, req, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "EmbeddingSimilarity",
        family: Family::Evaluator,
        doc: "Correlation (Pearson, Spearman) between embedding similarities of text pairs and gold scores.",
        args: &[MODEL, req("data", Data, "the pairs and their scores"), BATCH_SIZE, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS],
        rules: TRUNCATE_RULES,
        columns: Some(columns::PAIR_SCORE),
        metrics: &[
            "spearman_cosine",
            "pearson_cosine",
            "spearman_euclidean",
            "pearson_euclidean",
            "spearman_manhattan",
            "pearson_manhattan",
            "spearman_dot",
            "pearson_dot",
            "spearman_max",
            "pearson_max",
        ],
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(EmbeddingSimilarity {
        common: Common::from_args(a)?,
    }))
}

struct EmbeddingSimilarity {
    common: Common,
}

impl Evaluator for EmbeddingSimilarity {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let scores: Vec<f64> = ds
            .scores()
            .ok_or_else(|| crate::runtime::Error::Msg(format!("`{}` has no scores", ds.name)))?
            .into_iter()
            .map(f64::from)
            .collect();
        let e1 = c.encode_column(model, ds, 0)?;
        let e2 = c.encode_column(model, ds, 1)?;
        embedding_similarity(
            &e1,
            &e2,
            &scores,
            &EmbeddingSimilarityConfig::all_with_cosine_primary(),
        )
        .map_err(math_err("EmbeddingSimilarity"))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSimilarityConfig {
    /// Default `[cosine]` (a model's default `similarity_fn_name`).
    pub similarity_fn_names: Vec<Similarity>,
    /// Fixes the primary metric to `spearman_{main}`.
    pub main_similarity: Option<Similarity>,
}

impl Default for EmbeddingSimilarityConfig {
    fn default() -> Self {
        EmbeddingSimilarityConfig {
            similarity_fn_names: vec![Similarity::Cosine],
            main_similarity: None,
        }
    }
}

impl EmbeddingSimilarityConfig {
    /// All four functions (cosine, euclidean, manhattan, dot), primary
    /// `spearman_cosine`.
    pub fn all_with_cosine_primary() -> Self {
        EmbeddingSimilarityConfig {
            similarity_fn_names: vec![
                Similarity::Cosine,
                Similarity::Euclidean,
                Similarity::Manhattan,
                Similarity::Dot,
            ],
            main_similarity: Some(Similarity::Cosine),
        }
    }
}

/// Max ignoring NaNs (NaN when all are).
fn nan_max(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(f64::NAN, f64::max)
}

/// Correlations of `scores` with the similarities of `e1[i]` and `e2[i]`.
pub fn embedding_similarity(
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    scores: &[f64],
    config: &EmbeddingSimilarityConfig,
) -> Result<EvalMetrics, EvalError> {
    check_pairs(e1, e2, scores.len())?;
    let mut fns = config.similarity_fn_names.clone();
    if fns.is_empty() {
        fns.push(config.main_similarity.unwrap_or(Similarity::Cosine));
    }
    let primary = match (config.main_similarity, fns.len()) {
        (Some(main), _) => format!("spearman_{}", main.name()),
        (None, 1) => format!("spearman_{}", fns[0].name()),
        (None, _) => "spearman_max".to_string(),
    };
    let mut out = EvalMetrics {
        entries: Vec::with_capacity(2 * fns.len() + 2),
        primary,
    };
    let mut pearsons = Vec::new();
    let mut spearmans = Vec::new();
    for f in &fns {
        let sims: Vec<f64> = e1.iter().zip(e2).map(|(a, b)| f.score(a, b)).collect();
        let p = pearson(scores, &sims).unwrap_or(f64::NAN);
        let s = spearman(scores, &sims).unwrap_or(f64::NAN);
        out.push(format!("pearson_{}", f.name()), p);
        out.push(format!("spearman_{}", f.name()), s);
        pearsons.push(p);
        spearmans.push(s);
    }
    if fns.len() > 1 {
        out.push("pearson_max", nan_max(pearsons.into_iter()));
        out.push("spearman_max", nan_max(spearmans.into_iter()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::eval::testdata::pairs;

    #[test]
    fn hand_computed() -> Result<(), EvalError> {
        // Cosines of the pairs: (1,0)-(1,0) = 1, (1,0)-(1,1) = 1/sqrt(2),
        // (1,0)-(0,1) = 0; gold 0.9, 0.5, 0.1 are linear in neither, but
        // the order agrees: spearman 1. Pearson of (1, 0.7071, 0) with
        // (0.9, 0.5, 0.1) computed below from the definition.
        let e1 = vec![vec![1.0, 0.0]; 3];
        let e2 = vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![0.0, 1.0]];
        let gold = [0.9, 0.5, 0.1];
        let m = embedding_similarity(&e1, &e2, &gold, &Default::default())?;
        assert_eq!(
            m.names().collect::<Vec<_>>(),
            ["pearson_cosine", "spearman_cosine"]
        );
        assert_eq!(m.primary, "spearman_cosine");
        assert!((m.get("spearman_cosine").unwrap_or(0.0) - 1.0).abs() < 1e-12);
        let x = [1.0, 0.5f64.sqrt(), 0.0];
        let mx = x.iter().sum::<f64>() / 3.0;
        let (dx, dy): (Vec<f64>, Vec<f64>) =
            x.iter().zip(gold).map(|(a, b)| (a - mx, b - 0.5)).unzip();
        let r = dx.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>()
            / (dx.iter().map(|a| a * a).sum::<f64>().sqrt()
                * dy.iter().map(|b| b * b).sum::<f64>().sqrt());
        assert!((m.get("pearson_cosine").unwrap_or(0.0) - r).abs() < 1e-12);
        // Constant gold scores: undefined correlations are NaN.
        let m = embedding_similarity(&e1, &e2, &[1.0; 3], &Default::default())?;
        assert!(m.get("pearson_cosine").is_some_and(f64::is_nan));
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<(), EvalError> {
        // EmbeddingSimilarityEvaluator(similarity_fn_names=[cosine,
        // euclidean, manhattan, dot]) of sentence-transformers 6.2.0 on the
        // same float32 embeddings.
        let (e1, e2) = pairs();
        let gold: Vec<f64> = (0..12).map(|i| ((i * 7) % 5) as f64 / 4.0).collect();
        let mut cfg = EmbeddingSimilarityConfig::all_with_cosine_primary();
        cfg.main_similarity = None;
        let m = embedding_similarity(&e1, &e2, &gold, &cfg)?;
        let expected = [
            ("pearson_cosine", -0.32105106040221626),
            ("spearman_cosine", -0.32448305995590454),
            ("pearson_euclidean", -0.2912768435175162),
            ("spearman_euclidean", -0.26029959754704424),
            ("pearson_manhattan", -0.2524422336966706),
            ("spearman_manhattan", -0.349443295337128),
            ("pearson_dot", -0.36304466052602113),
            ("spearman_dot", -0.3672720348951446),
            ("pearson_max", -0.2524422336966706),
            ("spearman_max", -0.26029959754704424),
        ];
        assert_eq!(m.entries.len(), expected.len());
        for ((name, got), (want_name, want)) in m.entries.iter().zip(expected) {
            assert_eq!(name, want_name);
            assert!((got - want).abs() < 1e-6, "{name}: {got} vs {want}");
        }
        assert_eq!(m.primary, "spearman_max");
        let m = embedding_similarity(
            &e1,
            &e2,
            &gold,
            &EmbeddingSimilarityConfig::all_with_cosine_primary(),
        )?;
        assert_eq!(m.primary, "spearman_cosine");
        Ok(())
    }

    #[test]
    fn input_errors() {
        let e = vec![vec![1.0f32, 0.0]; 2];
        let cfg = EmbeddingSimilarityConfig::default();
        assert!(embedding_similarity(&e, &e, &[1.0], &cfg).is_err());
        assert_eq!(
            embedding_similarity(&[], &[], &[], &cfg),
            Err(EvalError::Empty)
        );
    }
}
