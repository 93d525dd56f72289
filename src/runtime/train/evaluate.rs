//! Running an evaluator of the pipeline on the current state of a model.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::check::types::{ArgValue, Evaluator};
use crate::runtime::eval::{
    binary::{binary_classification, BinaryClassificationConfig},
    label_accuracy::{argmax_rows, label_accuracy},
    similarity::{embedding_similarity, EmbeddingSimilarityConfig},
    EvalMetrics, SimilarityFn,
};
use crate::runtime::loss::{Loss, LossInputs};
use crate::runtime::{EncodeOptions, SentenceEncoder};

use super::error::{unsupported, Result, RunError};
use crate::runtime::data::Dataset;

/// What an evaluator may need besides its model and data.
pub struct EvalContext<'a> {
    pub models: &'a HashMap<String, SentenceEncoder>,
    pub datasets: &'a HashMap<String, Dataset>,
    /// Losses by objective name (LabelAccuracy uses a classifier's).
    pub losses: &'a HashMap<String, Box<dyn Loss>>,
}

fn batch_size(e: &Evaluator) -> usize {
    e.args
        .get("batch_size")
        .and_then(ArgValue::as_i64)
        .unwrap_or(32)
        .max(1) as usize
}

fn column(ds: &Dataset, i: usize) -> Vec<&str> {
    ds.examples.iter().map(|e| e.texts[i].as_str()).collect()
}

fn encode_rows(model: &SentenceEncoder, texts: &[&str], bs: usize) -> Result<Vec<Vec<f32>>> {
    let opts = EncodeOptions {
        batch_size: bs,
        ..EncodeOptions::default()
    };
    Ok(model.encode(texts, &opts)?.to_vec2::<f32>()?)
}

fn lookup<'m, T>(map: &'m HashMap<String, T>, key: &str, what: &str) -> Result<&'m T> {
    map.get(key)
        .ok_or_else(|| RunError::Invalid(format!("{what} `{key}` is not available")))
}

fn text_columns(e: &Evaluator, ds: &Dataset, n: usize) -> Result<()> {
    if ds.text_columns.len() < n {
        return Err(RunError::Invalid(format!(
            "evaluator `{}` needs {n} text columns; `{}` has {}",
            e.name,
            ds.name,
            ds.text_columns.len()
        )));
    }
    Ok(())
}

/// Run evaluator `e`; metrics carry sentence-transformers' names without a
/// prefix (`spearman_cosine`).
pub fn evaluate(e: &Evaluator, cx: &EvalContext) -> Result<EvalMetrics> {
    let model = lookup(cx.models, &e.model, "model")?;
    let ds = lookup(cx.datasets, &e.data, "data source")?;
    let bs = batch_size(e);
    let metric_err = |err: crate::runtime::eval::EvalError| {
        RunError::Invalid(format!("evaluator `{}`: {err}", e.name))
    };
    match e.kind.as_str() {
        "EmbeddingSimilarity" => {
            text_columns(e, ds, 2)?;
            let scores: Vec<f64> = ds
                .scores()
                .ok_or_else(|| RunError::Invalid(format!("`{}` has no scores", ds.name)))?
                .into_iter()
                .map(f64::from)
                .collect();
            let e1 = encode_rows(model, &column(ds, 0), bs)?;
            let e2 = encode_rows(model, &column(ds, 1), bs)?;
            embedding_similarity(
                &e1,
                &e2,
                &scores,
                &EmbeddingSimilarityConfig::all_with_cosine_primary(),
            )
            .map_err(metric_err)
        }
        "BinaryClassification" => {
            text_columns(e, ds, 2)?;
            let labels = ds
                .classes()
                .ok_or_else(|| RunError::Invalid(format!("`{}` has no class labels", ds.name)))?;
            let e1 = encode_rows(model, &column(ds, 0), bs)?;
            let e2 = encode_rows(model, &column(ds, 1), bs)?;
            let cfg = BinaryClassificationConfig {
                similarity_fn_names: SimilarityFn::ALL.to_vec(),
            };
            let mut m = binary_classification(&e1, &e2, &labels, &cfg).map_err(metric_err)?;
            // The registry names cosine_ap the primary metric.
            m.primary = "cosine_ap".to_string();
            Ok(m)
        }
        "LabelAccuracy" => {
            text_columns(e, ds, 2)?;
            let objective = e
                .args
                .get("objective")
                .and_then(ArgValue::as_str)
                .unwrap_or_default();
            let loss = lookup(cx.losses, objective, "objective")?;
            let labels = ds
                .classes()
                .ok_or_else(|| RunError::Invalid(format!("`{}` has no class labels", ds.name)))?;
            let e1 = encode_rows(model, &column(ds, 0), bs)?;
            let e2 = encode_rows(model, &column(ds, 1), bs)?;
            let to_t = |rows: &[Vec<f32>]| -> Result<Tensor> {
                let dim = rows.first().map_or(0, Vec::len);
                Ok(Tensor::from_vec(
                    rows.concat(),
                    (rows.len(), dim),
                    model.device(),
                )?)
            };
            let inputs = LossInputs::new(vec![to_t(&e1)?, to_t(&e2)?]);
            let logits = loss.logits(&inputs)?.ok_or_else(|| {
                RunError::Invalid(format!(
                    "evaluator `{}`: objective `{objective}` has no classifier",
                    e.name
                ))
            })?;
            let preds = argmax_rows(&logits.to_vec2::<f32>()?);
            label_accuracy(&preds, &labels).map_err(metric_err)
        }
        "MSE" => {
            text_columns(e, ds, 2)?;
            let teacher_name = e
                .args
                .get("teacher")
                .and_then(ArgValue::as_str)
                .unwrap_or_default();
            let teacher = lookup(cx.models, teacher_name, "teacher model")?;
            let source = encode_rows(teacher, &column(ds, 0), bs)?;
            let target = encode_rows(model, &column(ds, 1), bs)?;
            let (mut sum, mut n) = (0.0f64, 0usize);
            for (a, b) in source.iter().zip(&target) {
                if a.len() != b.len() {
                    return Err(RunError::Invalid(format!(
                        "evaluator `{}`: teacher width {} differs from the student's {}",
                        e.name,
                        a.len(),
                        b.len()
                    )));
                }
                for (x, y) in a.iter().zip(b) {
                    let d = (*x - *y) as f64;
                    sum += d * d;
                    n += 1;
                }
            }
            // sentence-transformers' MSEEvaluator reports -100 * MSE.
            let mse = if n == 0 { 0.0 } else { sum / n as f64 };
            Ok(EvalMetrics {
                entries: vec![("negative_mse".to_string(), -100.0 * mse)],
                primary: "negative_mse".to_string(),
            })
        }
        other => Err(unsupported(
            &format!("evaluator `{}`", e.name),
            &format!("`{other}` is checked but has no runtime implementation yet"),
            "use EmbeddingSimilarity, BinaryClassification, LabelAccuracy or MSE in runs",
        )),
    }
}
