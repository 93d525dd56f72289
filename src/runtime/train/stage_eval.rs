//! What a stage writes besides training: evaluations (and the best weights
//! of every tracked metric), and checkpoints.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::check::types::Stage;
use crate::runtime::eval::EvalMetrics;

use super::checkpoint::{self, Snapshot};
use super::error::{Result, RunError};
use super::log::RunLog;
use super::optim::Optimizer;
use super::stage::{Best, Metric, Progress, StageEnv};

/// Run the stage's evaluators after `step` steps; with `best`, keep the
/// weights of every tracked metric that improved. Returns every evaluator's
/// metrics.
pub(super) fn evaluate_stage(
    stage: &Stage,
    env: &StageEnv,
    step: u64,
    mut best: Option<&mut Vec<Best>>,
    opt: &Optimizer,
    log: &mut RunLog,
) -> Result<Vec<(String, EvalMetrics)>> {
    let cx = super::evaluate::EvalContext {
        models: env.models,
        datasets: env.datasets,
        losses: env.losses,
    };
    let mut all = Vec::new();
    for name in &stage.evaluate {
        let Some(ev) = env.pipeline.evaluator(name) else {
            continue;
        };
        let m = super::evaluate::evaluate(ev, &cx)?;
        log.eval(&stage.name, step, name, &m);
        if let Some(best) = best.as_deref_mut() {
            keep_best(env, name, &m, step, best, opt)?;
        }
        all.push((name.clone(), m));
    }
    Ok(all)
}

/// Keep the weights of every tracked metric of evaluator `name` that
/// improved on its best so far.
fn keep_best(
    env: &StageEnv,
    name: &str,
    m: &EvalMetrics,
    step: u64,
    best: &mut Vec<Best>,
    opt: &Optimizer,
) -> Result<()> {
    for (e, metric) in env.track_best.iter().filter(|(e, _)| e == name) {
        let Some(v) = m.get(metric) else { continue };
        let improved = match best
            .iter()
            .find(|b| &b.evaluator == e && &b.metric == metric)
        {
            Some(b) => v > b.value,
            None => true,
        };
        if !improved {
            continue;
        }
        best.retain(|b| !(&b.evaluator == e && &b.metric == metric));
        best.push(Best {
            evaluator: e.clone(),
            metric: metric.clone(),
            value: v,
            step,
        });
        checkpoint::save(
            &env.dir.join("best").join(format!("{e}.{metric}")),
            &Snapshot {
                step,
                state: serde_json::json!({ "value": v }),
                weights: opt.weights_to_save(),
                moments: Vec::new(),
            },
            1,
        )?;
    }
    Ok(())
}

/// The primary metric of each evaluation.
pub(super) fn primaries(evals: Vec<(String, EvalMetrics)>) -> Vec<Metric> {
    evals
        .into_iter()
        .filter_map(|(evaluator, m)| {
            Some(Metric {
                value: m.primary_value()?,
                metric: m.primary,
                evaluator,
            })
        })
        .collect()
}

/// Write a checkpoint of the stage after `step` steps.
pub(super) fn save_checkpoint(
    env: &StageEnv,
    opt: &Optimizer,
    step: u64,
    progress: &Progress,
    keep: Option<usize>,
) -> Result<()> {
    let state = serde_json::to_value(progress).map_err(|e| RunError::Invalid(e.to_string()))?;
    checkpoint::save(
        &env.dir.join("checkpoints"),
        &Snapshot {
            step,
            state,
            weights: opt.weights_to_save(),
            moments: opt.moments_to_save(),
        },
        keep.unwrap_or(2),
    )?;
    Ok(())
}

/// Remove a directory tree; an absent one is fine.
pub(super) fn remove_tree(path: &Path) -> Result<()> {
    crate::fsio::remove_dir_all(path).map_err(|e| RunError::io(path, e))
}

/// The weights kept for the best value of `evaluator.metric` in a stage
/// directory, if any.
pub fn best_weights(
    stage_dir: &Path,
    evaluator: &str,
    metric: &str,
) -> Result<Option<HashMap<String, Tensor>>> {
    let root = stage_dir.join("best").join(format!("{evaluator}.{metric}"));
    Ok(checkpoint::latest(&root, &Device::Cpu)?.map(|c| c.weights))
}
