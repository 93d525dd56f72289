//! Evaluators: each file is one registered evaluator (its description,
//! how it encodes its data, and its metric math over the embeddings, with
//! sentence-transformers' metric names and primary metrics). The math
//! functions take precomputed embeddings (one `Vec<f32>` per text), so
//! they are tested against the Python library's figures without a model.

pub mod binary;
pub mod information_retrieval;
pub mod label_accuracy;
pub mod metrics;
pub mod mse;
pub mod paraphrase_mining;
pub mod reranking;
pub mod sequential;
pub mod similarity;
pub mod translation;
pub mod triplet;

use std::collections::HashMap;

use crate::registry::{maybe, opt, req, ArgError, ArgSpec, ArgType, Args, Component, Rule};
use crate::runtime::data::Dataset;
use crate::runtime::loss::Loss;
use crate::runtime::{EncodeOptions, SentenceEncoder};

/// What an evaluator reads when it runs: the pipeline's models (as
/// trained so far), data sources and losses (LabelAccuracy uses a
/// SoftmaxLoss's classifier), by name.
pub struct EvalCx<'a> {
    pub models: &'a HashMap<String, SentenceEncoder>,
    pub datasets: &'a HashMap<String, Dataset>,
    pub losses: &'a HashMap<String, Box<dyn Loss>>,
}

fn missing(what: &str, name: &str) -> crate::runtime::Error {
    crate::runtime::Error::Msg(format!("{what} `{name}` is not available to the evaluator"))
}

impl EvalCx<'_> {
    pub fn model(&self, name: &str) -> crate::runtime::Result<&SentenceEncoder> {
        self.models.get(name).ok_or_else(|| missing("model", name))
    }

    pub fn dataset(&self, name: &str) -> crate::runtime::Result<&Dataset> {
        self.datasets
            .get(name)
            .ok_or_else(|| missing("data source", name))
    }

    pub fn loss(&self, objective: &str) -> crate::runtime::Result<&dyn Loss> {
        self.losses
            .get(objective)
            .map(|l| l.as_ref())
            .ok_or_else(|| missing("objective", objective))
    }
}

/// The model prompts `encode_query` looks for, in order.
pub(crate) const QUERY_PROMPTS: &[&str] = &["query"];
/// The model prompts `encode_document` looks for, in order.
pub(crate) const DOCUMENT_PROMPTS: &[&str] = &["document", "passage", "corpus"];

/// The prompt of one side of a retrieval task, as sentence-transformers'
/// `encode_query` and `encode_document` choose it: the one given, else the
/// model's prompt of the first of `names` it has, else its default prompt.
pub(crate) fn side_prompt<'a>(
    model: &'a SentenceEncoder,
    given: Option<&'a str>,
    names: &[&str],
) -> Option<&'a str> {
    let t = model.transformer();
    given
        .or_else(|| names.iter().find_map(|n| t.prompt(n)))
        .or_else(|| t.default_prompt())
}

/// An evaluator of the pipeline, built from its checked arguments.
pub trait Evaluator: Send + Sync {
    /// Evaluate the current state of the models; metrics carry
    /// sentence-transformers' names without a prefix (`spearman_cosine`).
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics>;
}

/// A registered evaluator: its description and its constructor.
pub struct EvaluatorEntry {
    pub spec: Component,
    pub build: fn(&Args) -> Result<Box<dyn Evaluator>, ArgError>,
}

/// The arguments most evaluators take.
pub(crate) const MODEL: ArgSpec = req("model", ArgType::Model, "the model evaluated");
pub(crate) const BATCH_SIZE: ArgSpec =
    opt("batch_size", ArgType::Count, "32", "encoding batch size").at_least(1.0);
pub(crate) const PROMPTS: ArgSpec = maybe(
    "prompts",
    ArgType::StrMap,
    "a prompt per text column of the data, `{sentence1: \"query: \"}`; a column without one gets the model's default prompt",
);

/// Evaluate truncated embeddings (a Matryoshka model at a smaller width).
pub(crate) const TRUNCATE_DIM: ArgSpec = maybe(
    "truncate_dim",
    ArgType::Count,
    "evaluate only the first `d` dimensions of every embedding, as a user of a Matryoshka model truncates them (default: all)",
)
.at_least(1.0);

/// Evaluate the model cut after its first layers (a model trained with
/// AdaptiveLayerLoss or Matryoshka2dLoss).
pub(crate) const TRUNCATE_LAYERS: ArgSpec = maybe(
    "truncate_layers",
    ArgType::Count,
    "evaluate the embeddings of the model cut after its first `k` Transformer layers, the ones AdaptiveLayerLoss trains (default: all layers)",
)
.at_least(1.0);

/// The rules of the evaluators that take [`TRUNCATE_DIM`] and
/// [`TRUNCATE_LAYERS`].
pub(crate) const TRUNCATE_RULES: &[Rule] = &[
    Rule::AtMostWidth("truncate_dim"),
    Rule::AtMostLayers("truncate_layers"),
];

/// How evaluated embeddings are cut: to their first `dim` values, and
/// after the first `layers` Transformer layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Truncate {
    pub dim: Option<usize>,
    pub layers: Option<usize>,
}

impl Truncate {
    /// The `truncate_dim` and `truncate_layers` arguments, where the
    /// evaluator declares them.
    pub fn from_args(a: &Args) -> Result<Self, ArgError> {
        let get = |name: &str| match a.declares(name) {
            true => a.opt_usize(name),
            false => Ok(None),
        };
        Ok(Truncate {
            dim: get("truncate_dim")?,
            layers: get("truncate_layers")?,
        })
    }
}

/// The model, data source, batch size and prompts every evaluator names.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub model: String,
    pub data: String,
    pub batch_size: usize,
    /// Prompts by text column name.
    pub prompts: Vec<(String, String)>,
    /// Evaluate the first this-many dimensions (of the first this-many
    /// layers) only.
    pub truncate: Truncate,
}

impl Common {
    pub fn from_args(a: &Args) -> Result<Self, ArgError> {
        Ok(Common {
            model: a.str("model")?.to_string(),
            data: a.str("data")?.to_string(),
            batch_size: a.usize("batch_size")?.max(1),
            prompts: a.str_map("prompts")?,
            // Not every evaluator can truncate (LabelAccuracy's classifier
            // and MSE's teacher have the full width).
            truncate: Truncate::from_args(a)?,
        })
    }

    /// Embeddings of text column `i` of `ds` by `model`, with the column's
    /// prompt, else the model's default one.
    pub fn encode_column(
        &self,
        model: &SentenceEncoder,
        ds: &Dataset,
        i: usize,
    ) -> crate::runtime::Result<Vec<Vec<f32>>> {
        let texts = column(ds, i)?;
        let prompt = ds
            .column_prompt(i, &self.prompts)
            .or_else(|| model.transformer().default_prompt());
        encode(model, &texts, self.batch_size, prompt, self.truncate)
    }
}

/// The texts of column `i` of a data source.
pub(crate) fn column(ds: &Dataset, i: usize) -> crate::runtime::Result<Vec<&str>> {
    if ds.text_columns.len() <= i {
        return Err(crate::runtime::Error::Msg(format!(
            "data source `{}` has {} text column(s); the evaluator needs column {}",
            ds.name,
            ds.text_columns.len(),
            i + 1
        )));
    }
    Ok(ds.examples.iter().map(|e| e.texts[i].as_str()).collect())
}

/// Embeddings of `texts` in order, each distinct text encoded once, cut to
/// their first `truncate_dim` values when given (not renormalised, as
/// sentence-transformers' `truncate_dim`); an embedding with a NaN or
/// infinite value is an error (a diverged model must not evaluate to a
/// number).
pub(crate) fn encode(
    model: &SentenceEncoder,
    texts: &[&str],
    batch_size: usize,
    prompt: Option<&str>,
    truncate: Truncate,
) -> crate::runtime::Result<Vec<Vec<f32>>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let slots: Vec<usize> = texts
        .iter()
        .map(|t| {
            *index.entry(t).or_insert_with(|| {
                distinct.push(t);
                distinct.len() - 1
            })
        })
        .collect();
    let opts = EncodeOptions {
        batch_size,
        prompt: prompt.map(str::to_string),
        layers: truncate.layers,
        ..EncodeOptions::default()
    };
    let mut rows = model.encode(&distinct, &opts)?.to_vec2::<f32>()?;
    if let Some(d) = truncate.dim {
        let width = rows.first().map_or(d, Vec::len);
        if d > width {
            return Err(crate::runtime::Error::Msg(format!(
                "truncate_dim {d} is wider than the model's {width}-dimensional embeddings"
            )));
        }
        rows.iter_mut().for_each(|r| r.truncate(d));
    }
    if let Some(i) = rows.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
        return Err(crate::runtime::Error::Msg(format!(
            "the model's embedding of {:?} is not finite (NaN or infinite weights?)",
            shorten(distinct[i])
        )));
    }
    Ok(slots.into_iter().map(|s| rows[s].clone()).collect())
}

fn shorten(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// Evaluator math errors as runtime errors, naming the evaluator.
pub(crate) fn math_err(evaluator: &str) -> impl Fn(EvalError) -> crate::runtime::Error + '_ {
    move |e| crate::runtime::Error::Msg(format!("{evaluator}: {e}"))
}

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

pub use crate::registry::choices::Similarity;

impl Similarity {
    /// sentence-transformers' `pairwise_*_sim` of two embeddings: cosine
    /// and dot as they are, distances negated so that larger is more
    /// similar.
    pub fn score(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Similarity::Cosine => metrics::cosine(a, b),
            Similarity::Dot => metrics::dot(a, b),
            Similarity::Euclidean => -metrics::euclidean(a, b),
            Similarity::Manhattan => -metrics::manhattan(a, b),
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
