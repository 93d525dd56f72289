//! Steps the run does not execute again: a reusable step's recorded
//! result set up for the steps that need it ([`Executor::restore`]), or a
//! step reported as reused and not needed ([`Executor::report_skipped`]).

use std::path::Path;

use petgraph::graph::NodeIndex;

use super::{cache, io_err, Executor};
use crate::plan::StepKind;
use crate::runtime::data;
use crate::runtime::eval::EvalMetrics;
use crate::runtime::train::error::{Result, RunError};
use crate::runtime::train::log::RunLog;
use crate::runtime::train::outcome::StepStatus;
use crate::runtime::train::stage::{restore_finished, StageOutcome};

impl Executor<'_> {
    /// Set up a reusable step's recorded result for a step that needs it.
    pub(super) fn restore(&mut self, n: NodeIndex, log: &mut RunLog) -> Result<StepStatus> {
        let label = self.plan.graph[n].label.clone();
        match self.plan.graph[n].kind.clone() {
            StepKind::Train { stage, .. } => {
                let stage = self.stage(&stage)?.clone();
                self.ensure_losses(stage.objectives.iter().map(String::as_str))?;
                let outcome = restore_finished(&stage, &self.env(&stage, n))?.ok_or_else(|| {
                    RunError::Invalid(format!(
                        "stage `{}`: its finished checkpoint disappeared",
                        stage.name
                    ))
                })?;
                log.note(&format!(
                    "{label}: unchanged, reused (its final weights restored)"
                ));
                self.record_stage(&outcome);
            }
            StepKind::Evaluate { evaluator, .. } => {
                let path = cache::evaluation_file(self.opts, &self.plan.graph[n].fingerprint);
                let bytes = std::fs::read(&path).map_err(io_err(&path))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| RunError::Invalid(format!("{}: {e}", path.display())))?;
                let m = metrics_from_json(&v);
                if let Some(x) = m.primary_value() {
                    self.summary.set_final(&evaluator, &m.primary, x);
                }
                self.metrics.insert(n, m);
            }
            StepKind::Save {
                model, best: true, ..
            } => self.apply_best(n, &model, log)?,
            StepKind::LoadData { data, .. } => {
                let Some(ds) = self.recorded_data(&data) else {
                    // The record went away since the plan was made.
                    return self.execute(n, log).map(|()| StepStatus::Executed);
                };
                log.note(&format!(
                    "data `{data}`: unchanged, {} rows reused from {}",
                    ds.len(),
                    data::record::rows_path(&self.opts.run_dir, &data).display()
                ));
                self.datasets.insert(data, ds);
            }
            _ => return self.execute(n, log).map(|()| StepStatus::Executed),
        }
        self.summary.reused.push(label);
        Ok(StepStatus::Reused)
    }

    /// A step neither executed nor restored: reusable, and not needed. Its
    /// figures still go into the summary.
    pub(super) fn report_skipped(&mut self, n: NodeIndex, log: &mut RunLog) {
        let step = &self.plan.graph[n];
        if let StepKind::Train { stage, .. } = &step.kind {
            let dir = cache::stage_dir(self.opts, stage);
            if let Some(p) = crate::runtime::train::stage::finished(&dir, &self.fingerprint(n)) {
                self.record_stage(&StageOutcome {
                    best: p.best,
                    baseline: p.baseline,
                    last: p.last,
                });
            }
        }
        if let StepKind::Save { path, .. } = &step.kind {
            // What a crash left next to a complete save.
            let _ = crate::runtime::st_format::save::clean_leftovers_of(Path::new(path));
        }
        if matches!(
            step.kind,
            StepKind::Train { .. } | StepKind::Evaluate { .. } | StepKind::Save { .. }
        ) {
            log.note(&format!("{}: unchanged, reused", step.label));
            self.summary.reused.push(step.label.clone());
        }
    }
}

/// Metrics as recorded by [`Executor::evaluate`].
fn metrics_from_json(v: &serde_json::Value) -> EvalMetrics {
    let entries = v["metrics"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    // An undefined figure (NaN) is recorded as null.
                    Some((
                        e[0].as_str()?.to_string(),
                        e[1].as_f64().unwrap_or(f64::NAN),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    EvalMetrics {
        entries,
        primary: v["primary"].as_str().unwrap_or_default().to_string(),
    }
}
