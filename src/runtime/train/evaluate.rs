//! Running an evaluator of the pipeline on the current state of a model.

use std::collections::HashMap;

use crate::check::types::Evaluator;
use crate::runtime::eval::{EvalCx, EvalMetrics};
use crate::runtime::loss::Loss;
use crate::runtime::SentenceEncoder;

use super::build::build_evaluator;
use super::error::{Result, RunError};
use crate::runtime::data::Dataset;

/// What an evaluator may need besides its model and data.
pub struct EvalContext<'a> {
    pub models: &'a HashMap<String, SentenceEncoder>,
    pub datasets: &'a HashMap<String, Dataset>,
    /// Losses by objective name (LabelAccuracy uses a classifier's).
    pub losses: &'a HashMap<String, Box<dyn Loss>>,
}

/// Run evaluator `e`; metrics carry sentence-transformers' names without a
/// prefix (`spearman_cosine`).
pub fn evaluate(e: &Evaluator, cx: &EvalContext) -> Result<EvalMetrics> {
    let ev = build_evaluator(e)?;
    let cx = EvalCx {
        models: cx.models,
        datasets: cx.datasets,
        losses: cx.losses,
    };
    ev.evaluate(&cx)
        .map_err(|err| RunError::Invalid(format!("evaluator `{}`: {err}", e.name)))
}
