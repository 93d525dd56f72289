//! What a teacher model gives an objective, computed once before the stage
//! trains (the teacher is frozen, so its outputs never change):
//!
//! - for embedding distillation (MSELoss), its embedding of every row's
//!   first column;
//! - for score distillation (MarginMSELoss, DistillKLDivLoss with
//!   `teacher:`), its similarity between every row's first column and each
//!   other column, `[rows, columns - 1]`: the label those losses would
//!   otherwise read from the data. Each distinct text is encoded once.

use candle_core::Tensor;

use crate::check::types::Objective;
use crate::registry::choices::Similarity;
use crate::registry::{catalogue, ArgValue};
use crate::runtime::data::Dataset;
use crate::runtime::EncodeOptions;

use super::error::{Result, RunError};
use super::stage::StageEnv;

/// A teacher's contribution to each row of an objective's data.
pub(super) enum Teaching {
    /// Embeddings of column 0, one row per example.
    Embeddings(Vec<Vec<f32>>),
    /// Scores of (column 0, column i) for i >= 1, one row per example.
    Scores(Vec<Vec<f32>>),
}

pub(super) fn teach(o: &Objective, data: &Dataset, env: &StageEnv) -> Result<Option<Teaching>> {
    let (loss, args) = o.base_loss();
    let Some(t) = args.values().get("teacher").and_then(ArgValue::as_str) else {
        return Ok(None);
    };
    let teacher = env.models.get(t).ok_or_else(|| {
        RunError::Invalid(format!(
            "objective `{}`: teacher `{t}` is not built",
            o.name
        ))
    })?;
    let opts = EncodeOptions {
        batch_size: 64,
        progress: env.progress,
        ..EncodeOptions::default()
    };
    let scores = catalogue::loss(loss)
        .and_then(|e| e.spec.columns)
        .is_some_and(|c| c.label_from == Some("teacher"));
    if !scores {
        let texts: Vec<&str> = data.examples.iter().map(|e| e.texts[0].as_str()).collect();
        return Ok(Some(Teaching::Embeddings(
            teacher.encode(&texts, &opts)?.to_vec2::<f32>()?,
        )));
    }
    let similarity: Similarity = args
        .choice("teacher_similarity")
        .map_err(|e| RunError::Invalid(format!("objective `{}`: {e}", o.name)))?;
    // Every distinct text once, and each column's rows as indices into them.
    let mut at = std::collections::HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let columns = data.text_columns.len();
    let ids: Vec<Vec<u32>> = (0..columns)
        .map(|c| {
            data.examples
                .iter()
                .map(|e| {
                    let t = e.texts[c].as_str();
                    *at.entry(t).or_insert_with(|| {
                        distinct.push(t);
                        (distinct.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    let emb = teacher.encode(&distinct, &opts)?;
    let rows = |c: usize| -> candle_core::Result<Tensor> {
        let idx = Tensor::new(ids[c].as_slice(), emb.device())?;
        emb.index_select(&idx, 0)
    };
    let query = rows(0)?;
    let per_candidate = (1..columns)
        .map(|c| similarity.pairwise(&query, &rows(c)?))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let scores = Tensor::stack(&per_candidate, 1)?.to_vec2::<f32>()?;
    Ok(Some(Teaching::Scores(scores)))
}
