//! `BinaryClassificationEvaluator`: how well a similarity threshold
//! separates pairs labelled 1 (similar, duplicate) from pairs labelled 0.
//!
//! For each similarity function (default cosine) the metrics are, in order,
//! `{fn}_accuracy`, `{fn}_accuracy_threshold`, `{fn}_f1`, `{fn}_f1_threshold`,
//! `{fn}_precision`, `{fn}_recall`, `{fn}_ap`, `{fn}_mcc`; with several
//! functions also `max_{metric}` for each of those (the max over functions,
//! thresholds included, as sentence-transformers does). Primary: `{fn}_ap`
//! with one function, `max_ap` with several.
//!
//! Cosine and dot are similarities (a pair is predicted similar when its
//! score is >= the threshold); euclidean and manhattan are reported as
//! positive *distances* (similar when <= the threshold), as in
//! sentence-transformers 6.2. Scores are f32 like sentence-transformers'
//! and the threshold sweeps reproduce its `find_best_acc_and_threshold` and
//! `find_best_f1_and_threshold` (midpoints computed in f32); average
//! precision is scikit-learn's `average_precision_score`.

use super::{
    check_pairs, math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry,
    Similarity, BATCH_SIZE, MODEL, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES,
};
use crate::registry::{columns, req, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "BinaryClassification",
        family: Family::Evaluator,
        doc: "Classifies pairs as similar (label 1) or not (label 0) by thresholding each similarity (cosine, dot product, Euclidean and Manhattan distance); reports the best accuracy and F1 with their thresholds, precision, recall, average precision and the Matthews correlation, per similarity and as the maximum over them.",
        args: &[MODEL, req("data", Data, "the pairs with 0/1 labels"), BATCH_SIZE, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS],
        rules: TRUNCATE_RULES,
        columns: Some(columns::PAIR_BINARY),
        metrics: &[
            "cosine_ap",
            "cosine_accuracy",
            "cosine_accuracy_threshold",
            "cosine_f1",
            "cosine_f1_threshold",
            "cosine_precision",
            "cosine_recall",
            "cosine_mcc",
            "dot_accuracy",
            "dot_accuracy_threshold",
            "dot_f1",
            "dot_f1_threshold",
            "dot_precision",
            "dot_recall",
            "dot_ap",
            "dot_mcc",
            "euclidean_accuracy",
            "euclidean_accuracy_threshold",
            "euclidean_f1",
            "euclidean_f1_threshold",
            "euclidean_precision",
            "euclidean_recall",
            "euclidean_ap",
            "euclidean_mcc",
            "manhattan_accuracy",
            "manhattan_accuracy_threshold",
            "manhattan_f1",
            "manhattan_f1_threshold",
            "manhattan_precision",
            "manhattan_recall",
            "manhattan_ap",
            "manhattan_mcc",
            "max_accuracy",
            "max_accuracy_threshold",
            "max_f1",
            "max_f1_threshold",
            "max_precision",
            "max_recall",
            "max_ap",
            "max_mcc",
        ],
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(BinaryClassification {
        common: Common::from_args(a)?,
    }))
}

struct BinaryClassification {
    common: Common,
}

impl Evaluator for BinaryClassification {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let labels = ds.classes().ok_or_else(|| {
            crate::runtime::Error::Msg(format!("`{}` has no class labels", ds.name))
        })?;
        let e1 = c.encode_column(model, ds, 0)?;
        let e2 = c.encode_column(model, ds, 1)?;
        let cfg = BinaryClassificationConfig {
            similarity_fn_names: Similarity::all(),
        };
        let mut m = binary_classification(&e1, &e2, &labels, &cfg)
            .map_err(math_err("BinaryClassification"))?;
        // The registry's primary metric (sentence-transformers' would be
        // `max_ap` with several similarity functions).
        m.primary = "cosine_ap".to_string();
        Ok(m)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BinaryClassificationConfig {
    /// Default `[cosine]` (a model's default `similarity_fn_name`).
    pub similarity_fn_names: Vec<Similarity>,
}

impl Default for BinaryClassificationConfig {
    fn default() -> Self {
        BinaryClassificationConfig {
            similarity_fn_names: vec![Similarity::Cosine],
        }
    }
}

const METRICS: [&str; 8] = [
    "accuracy",
    "accuracy_threshold",
    "f1",
    "f1_threshold",
    "precision",
    "recall",
    "ap",
    "mcc",
];

/// Pair scores for `f` and whether higher means more similar.
fn scores(f: Similarity, e1: &[Vec<f32>], e2: &[Vec<f32>]) -> (Vec<f32>, bool) {
    let higher_is_similar = matches!(f, Similarity::Cosine | Similarity::Dot);
    let sign = if higher_is_similar { 1.0 } else { -1.0 };
    let s = e1
        .iter()
        .zip(e2)
        .map(|(a, b)| (sign * f.score(a, b)) as f32)
        .collect();
    (s, higher_is_similar)
}

/// Rows sorted so that the most similar come first.
fn sorted_rows(scores: &[f32], labels: &[bool], high: bool) -> Vec<(f32, bool)> {
    let mut rows: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    if high {
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    } else {
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    rows
}

/// The threshold between score group `i` and the next, as
/// sentence-transformers picks it (the f32 midpoint, or the score itself
/// when the rounded midpoint would reach the next group).
fn midpoint(rows: &[(f32, bool)], i: usize) -> f32 {
    match rows.get(i + 1) {
        None => rows[i].0,
        Some(next) => {
            let m = (rows[i].0 + next.0) / 2.0;
            if m == next.0 {
                rows[i].0
            } else {
                m
            }
        }
    }
}

/// Best accuracy over thresholds and the threshold reaching it; starts from
/// "every pair dissimilar" with a threshold just past the most similar
/// score.
pub fn find_best_acc_and_threshold(scores: &[f32], labels: &[bool], high: bool) -> (f64, f64) {
    let rows = sorted_rows(scores, labels, high);
    let Some(first) = rows.first() else {
        return (0.0, -1.0);
    };
    let n = rows.len() as f64;
    let mut remaining_negatives = labels.iter().filter(|l| !**l).count();
    let mut max_acc = remaining_negatives as f64 / n;
    let mut best = if high {
        first.0.next_up()
    } else {
        first.0.next_down()
    };
    let mut positives = 0usize;
    for i in 0..rows.len() {
        if rows[i].1 {
            positives += 1;
        } else {
            remaining_negatives -= 1;
        }
        if rows.get(i + 1).is_some_and(|next| next.0 == rows[i].0) {
            continue;
        }
        let acc = (positives + remaining_negatives) as f64 / n;
        if acc > max_acc {
            max_acc = acc;
            best = midpoint(&rows, i);
        }
    }
    (max_acc, best as f64)
}

/// Best F1 over thresholds: `(f1, precision, recall, threshold)`, all 0
/// when no pair is labelled 1.
pub fn find_best_f1_and_threshold(
    scores: &[f32],
    labels: &[bool],
    high: bool,
) -> (f64, f64, f64, f64) {
    let rows = sorted_rows(scores, labels, high);
    let total_positives = labels.iter().filter(|l| **l).count() as f64;
    let (mut best_f1, mut best_p, mut best_r, mut threshold) = (0.0, 0.0, 0.0, 0.0f32);
    let (mut extracted, mut correct) = (0usize, 0usize);
    for i in 0..rows.len() {
        extracted += 1;
        if rows[i].1 {
            correct += 1;
        }
        if rows.get(i + 1).is_some_and(|next| next.0 == rows[i].0) {
            continue;
        }
        if correct > 0 {
            let p = correct as f64 / extracted as f64;
            let r = correct as f64 / total_positives;
            let f1 = 2.0 * p * r / (p + r);
            if f1 > best_f1 {
                (best_f1, best_p, best_r) = (f1, p, r);
                threshold = midpoint(&rows, i);
            }
        }
    }
    (best_f1, best_p, best_r, threshold as f64)
}

/// scikit-learn's `average_precision_score(labels, scores)`: the sum over
/// distinct score thresholds (descending) of `(R_k - R_{k-1}) * P_k`; 0
/// when no label is positive.
pub fn average_precision(labels: &[bool], scores: &[f32]) -> f64 {
    let rows = sorted_rows(scores, labels, true);
    let total_positives = labels.iter().filter(|l| **l).count();
    if total_positives == 0 {
        return 0.0;
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for i in 0..rows.len() {
        if rows[i].1 {
            tp += 1;
        } else {
            fp += 1;
        }
        if rows.get(i + 1).is_some_and(|next| next.0 == rows[i].0) {
            continue;
        }
        let recall = tp as f64 / total_positives as f64;
        ap += (recall - prev_recall) * (tp as f64 / (tp + fp) as f64);
        prev_recall = recall;
    }
    ap
}

/// Matthews correlation coefficient (scikit-learn's: 0 when undefined).
pub fn matthews_corrcoef(labels: &[bool], predicted: &[bool]) -> f64 {
    let (mut tp, mut tn, mut fp, mut fn_) = (0f64, 0f64, 0f64, 0f64);
    for (l, p) in labels.iter().zip(predicted) {
        match (l, p) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fp += 1.0,
            (true, false) => fn_ += 1.0,
        }
    }
    let denom = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_);
    if denom == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fn_) / denom.sqrt()
    }
}

/// The metrics of one similarity function, in [`METRICS`] order.
fn metrics_for(scores: &[f32], labels: &[bool], high: bool) -> [f64; 8] {
    let (acc, acc_t) = find_best_acc_and_threshold(scores, labels, high);
    let (f1, p, r, f1_t) = find_best_f1_and_threshold(scores, labels, high);
    let signed: Vec<f32> = scores.iter().map(|s| if high { *s } else { -*s }).collect();
    let ap = average_precision(labels, &signed);
    let t = f1_t as f32;
    let predicted: Vec<bool> = scores
        .iter()
        .map(|s| if high { *s >= t } else { *s <= t })
        .collect();
    let mcc = matthews_corrcoef(labels, &predicted);
    [acc, acc_t, f1, f1_t, p, r, ap, mcc]
}

/// Evaluates pairs `(e1[i], e2[i])` with 0/1 `labels`.
pub fn binary_classification(
    e1: &[Vec<f32>],
    e2: &[Vec<f32>],
    labels: &[i64],
    config: &BinaryClassificationConfig,
) -> Result<EvalMetrics, EvalError> {
    check_pairs(e1, e2, labels.len())?;
    let labels: Vec<bool> = labels
        .iter()
        .enumerate()
        .map(|(index, &value)| match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(EvalError::NotBinary { index, value }),
        })
        .collect::<Result<_, _>>()?;
    let mut fns = config.similarity_fn_names.clone();
    if fns.is_empty() {
        fns.push(Similarity::Cosine);
    }
    let primary = if fns.len() > 1 {
        "max_ap".to_string()
    } else {
        format!("{}_ap", fns[0].name())
    };
    let mut out = EvalMetrics {
        entries: Vec::with_capacity(METRICS.len() * (fns.len() + 1)),
        primary,
    };
    let mut max = [f64::NEG_INFINITY; 8];
    for f in &fns {
        let (s, high) = scores(*f, e1, e2);
        let values = metrics_for(&s, &labels, high);
        for (k, v) in values.iter().enumerate() {
            out.push(format!("{}_{}", f.name(), METRICS[k]), *v);
            max[k] = max[k].max(*v);
        }
    }
    if fns.len() > 1 {
        for (k, v) in max.iter().enumerate() {
            out.push(format!("max_{}", METRICS[k]), *v);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "binary_tests.rs"]
mod tests;
