//! Evaluator math over precomputed embeddings, with sentence-transformers'
//! metric names and primary metrics. The runtime encodes the evaluation
//! data with the model and hands the embeddings (one `Vec<f32>` per text)
//! to these functions.

pub mod binary;
pub mod label_accuracy;
pub mod metrics;
pub mod similarity;

use thiserror::Error;

/// Why an evaluation could not be computed.
#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    #[error("evaluation set is empty")]
    Empty,
    #[error("{what}: expected {expected} entries, got {got}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("embedding {index} has dimension {got}, the first one has {expected}")]
    DimensionMismatch {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("label {value} at index {index} is not 0 or 1")]
    NotBinary { index: usize, value: i64 },
    #[error("unknown similarity function `{0}` (cosine, dot, euclidean, manhattan)")]
    UnknownSimilarity(String),
}

/// An evaluator's result: metrics in sentence-transformers' order, and the
/// name of the one that decides the best model.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalMetrics {
    pub entries: Vec<(String, f64)>,
    pub primary: String,
}

impl EvalMetrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    pub fn primary_value(&self) -> Option<f64> {
        self.get(&self.primary)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Prefixes every metric (and the primary) with `name_`, as
    /// sentence-transformers' `prefix_name_to_metrics` does for a named
    /// evaluator; an empty name changes nothing.
    pub fn prefixed(mut self, name: &str) -> Self {
        if name.is_empty() {
            return self;
        }
        for (k, _) in &mut self.entries {
            *k = format!("{name}_{k}");
        }
        if !self.primary.starts_with(&format!("{name}_")) {
            self.primary = format!("{name}_{}", self.primary);
        }
        self
    }

    pub(crate) fn push(&mut self, name: impl Into<String>, value: f64) {
        self.entries.push((name.into(), value));
    }
}

/// The similarity functions of sentence-transformers' evaluators
/// (`SimilarityFunction`), in the names the metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarityFn {
    Cosine,
    Dot,
    Euclidean,
    Manhattan,
}

impl SimilarityFn {
    pub const ALL: [SimilarityFn; 4] = [
        SimilarityFn::Cosine,
        SimilarityFn::Dot,
        SimilarityFn::Euclidean,
        SimilarityFn::Manhattan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SimilarityFn::Cosine => "cosine",
            SimilarityFn::Dot => "dot",
            SimilarityFn::Euclidean => "euclidean",
            SimilarityFn::Manhattan => "manhattan",
        }
    }

    pub fn parse(s: &str) -> Result<Self, EvalError> {
        match s {
            "cosine" | "cos_sim" => Ok(SimilarityFn::Cosine),
            "dot" | "dot_score" | "dot_product" => Ok(SimilarityFn::Dot),
            "euclidean" => Ok(SimilarityFn::Euclidean),
            "manhattan" => Ok(SimilarityFn::Manhattan),
            other => Err(EvalError::UnknownSimilarity(other.to_string())),
        }
    }

    /// sentence-transformers' `pairwise_*_sim`: cosine and dot as they are,
    /// distances negated so that larger is more similar.
    pub fn similarity(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            SimilarityFn::Cosine => metrics::cosine(a, b),
            SimilarityFn::Dot => metrics::dot(a, b),
            SimilarityFn::Euclidean => -metrics::euclidean(a, b),
            SimilarityFn::Manhattan => -metrics::manhattan(a, b),
        }
    }
}

/// Checks two embedding lists pair up: same length (`expected`), non-empty,
/// one dimension throughout.
pub(crate) fn check_pairs(
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    expected: usize,
) -> Result<(), EvalError> {
    if e1.is_empty() {
        return Err(EvalError::Empty);
    }
    for (what, e) in [("embeddings1", e1), ("embeddings2", e2)] {
        if e.len() != expected {
            return Err(EvalError::LengthMismatch {
                what,
                expected,
                got: e.len(),
            });
        }
    }
    let dim = e1[0].len();
    for (index, row) in e1.iter().chain(e2).enumerate() {
        if row.len() != dim {
            return Err(EvalError::DimensionMismatch {
                index: index % expected,
                expected: dim,
                got: row.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testdata {
    /// `x[i][j] = sin(0.37 (97c + 13i + j) + 0.5)` as f32, each row scaled
    /// by `1 + (i mod m) * step`: the inputs of the Python reference runs.
    pub fn gen(c: usize, n: usize, d: usize, m: usize, step: f32) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                let s = 1.0 + (i % m) as f32 * step;
                (0..d)
                    .map(|j| ((0.37 * (c * 97 + i * 13 + j) as f64 + 0.5).sin() as f32) * s)
                    .collect()
            })
            .collect()
    }

    pub fn pairs() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        (gen(0, 12, 6, 4, 0.5), gen(1, 12, 6, 3, 0.7))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixing_and_lookup() {
        let mut m = EvalMetrics {
            entries: vec![],
            primary: "accuracy".into(),
        };
        m.push("accuracy", 0.5);
        let p = m.clone().prefixed("nli");
        assert_eq!(p.primary, "nli_accuracy");
        assert_eq!(p.get("nli_accuracy"), Some(0.5));
        assert_eq!(p.primary_value(), Some(0.5));
        assert_eq!(m.clone().prefixed(""), m);
        assert_eq!(SimilarityFn::parse("dot_score"), Ok(SimilarityFn::Dot));
        assert!(SimilarityFn::parse("jaccard").is_err());
    }

    #[test]
    fn pair_checks() {
        let a = vec![vec![1.0f32, 2.0]];
        assert_eq!(check_pairs(&[], &[], 0), Err(EvalError::Empty));
        assert!(check_pairs(&a, &[], 1).is_err());
        assert!(check_pairs(&a, &[vec![1.0]], 1).is_err());
        assert!(check_pairs(&a, &a, 1).is_ok());
    }
}
