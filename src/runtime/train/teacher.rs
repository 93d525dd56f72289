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
    /// A guide's embeddings of every text column: the distinct texts'
    /// embeddings and, per column, each example's row in them.
    Guide { emb: Tensor, ids: Vec<Vec<u32>> },
}

impl Teaching {
    /// The guide's `[batch, dim]` embeddings of each column for the
    /// examples `idx`.
    pub(super) fn guide_rows(
        emb: &Tensor,
        ids: &[Vec<u32>],
        idx: &[usize],
        device: &candle_core::Device,
    ) -> candle_core::Result<Vec<Tensor>> {
        ids.iter()
            .map(|col| {
                let rows: Vec<u32> = idx.iter().map(|&i| col[i]).collect();
                emb.index_select(&Tensor::new(rows.as_slice(), emb.device())?, 0)?
                    .to_device(device)
            })
            .collect()
    }
}

/// Every distinct text of `data` once, and each column's rows as indices
/// into them.
fn distinct_texts(data: &Dataset) -> (Vec<&str>, Vec<Vec<u32>>) {
    let mut at = std::collections::HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let ids = (0..data.text_columns.len())
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
    (distinct, ids)
}

pub(super) fn teach(o: &Objective, data: &Dataset, env: &StageEnv) -> Result<Option<Teaching>> {
    let (loss, args) = o.base_loss();
    let opts = EncodeOptions {
        batch_size: 64,
        progress: env.progress,
        ..EncodeOptions::default()
    };
    let frozen = |arg: &str, name: &str| {
        env.models.get(name).ok_or_else(|| {
            RunError::Invalid(format!(
                "objective `{}`: {arg} `{name}` is not built",
                o.name
            ))
        })
    };
    if let Some(g) = args.values().get("guide").and_then(ArgValue::as_str) {
        let guide = frozen("guide", g)?;
        let (distinct, ids) = distinct_texts(data);
        let emb = guide.encode(&distinct, &opts)?;
        return Ok(Some(Teaching::Guide { emb, ids }));
    }
    let Some(t) = args.values().get("teacher").and_then(ArgValue::as_str) else {
        return Ok(None);
    };
    let teacher = frozen("teacher", t)?;
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
    let (distinct, ids) = distinct_texts(data);
    let columns = ids.len();
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
