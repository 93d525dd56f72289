//! The steps that produce a run's results: evaluations (recorded for
//! reuse), expectations, and saves (with `best by`, the best weights of
//! the model's last stage).

use std::path::PathBuf;

use petgraph::graph::NodeIndex;

use super::{cache, io_err, write_atomic, Executor};
use crate::plan::StepKind;
use crate::runtime::train::error::{Result, RunError};
use crate::runtime::train::evaluate::{evaluate, EvalContext};
use crate::runtime::train::log::RunLog;
use crate::runtime::train::outcome::ExpectOutcome;
use crate::runtime::train::stage_eval::best_weights;

impl Executor<'_> {
    pub(super) fn evaluate(
        &mut self,
        n: NodeIndex,
        evaluator: &str,
        log: &mut RunLog,
    ) -> Result<()> {
        let ev = self
            .p
            .evaluator(evaluator)
            .ok_or_else(|| RunError::Invalid(format!("no evaluator `{evaluator}`")))?
            .clone();
        // A classifier it reads (LabelAccuracy) may belong to an objective
        // no stage trained.
        self.ensure_losses(ev.args.values().get("objective").and_then(|v| v.as_str()))?;
        let cx = EvalContext {
            models: &self.models,
            datasets: &self.datasets,
            losses: &self.losses,
        };
        let m = evaluate(&ev, &cx)?;
        log.final_eval(&ev.name, &m)?;
        let path = cache::evaluation_file(self.opts, &self.plan.graph[n].fingerprint);
        if let Some(dir) = path.parent() {
            crate::fsio::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let doc = serde_json::json!({
            "fingerprint": self.fingerprint(n),
            "evaluator": ev.name,
            "primary": m.primary,
            "metrics": m.entries.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
        });
        let bytes =
            serde_json::to_vec_pretty(&doc).map_err(|e| RunError::Invalid(e.to_string()))?;
        write_atomic(&path, &bytes)?;
        if let Some(x) = m.primary_value() {
            self.summary.set_final(&ev.name, &m.primary, x);
        }
        self.metrics.insert(n, m);
        Ok(())
    }

    /// `save`: the model (its best weights first, with `best by`), with
    /// the marker that lets a later run reuse the step and the model card.
    pub(super) fn save(
        &mut self,
        n: NodeIndex,
        model: &str,
        path: &str,
        best: bool,
        log: &mut RunLog,
    ) -> Result<()> {
        if best {
            self.apply_best(n, model, log)?;
        }
        let marker = serde_json::json!({
            "fingerprint": self.fingerprint(n),
            "pipeline": self.p.file.display().to_string(),
            "model": model,
        });
        let bytes =
            serde_json::to_vec_pretty(&marker).map_err(|e| RunError::Invalid(e.to_string()))?;
        let card = self.card(model, path, log)?;
        let path = PathBuf::from(path);
        self.model(model)?.save_with(
            &path,
            &[
                (cache::MODEL_MARKER, bytes),
                ("README.md", card.into_bytes()),
            ],
        )?;
        log.note(&format!("saved `{model}` to {}", path.display()));
        self.summary.saved.push(path);
        Ok(())
    }

    /// `expect`: the figure an evaluation step produced, against its
    /// threshold.
    pub(super) fn expect(
        &mut self,
        n: NodeIndex,
        evaluator: String,
        metric: String,
        op: String,
        threshold: f64,
    ) -> Result<()> {
        let source = self
            .plan
            .inputs(n)
            .into_iter()
            .find(|i| matches!(self.plan.graph[*i].kind, StepKind::Evaluate { .. }));
        let m = source.and_then(|i| self.metrics.get(&i)).ok_or_else(|| {
            RunError::Invalid(format!("evaluator `{evaluator}` was not evaluated"))
        })?;
        let value = m.get(&metric).ok_or_else(|| {
            RunError::Invalid(format!(
                "evaluator `{evaluator}` produced no metric `{metric}`"
            ))
        })?;
        self.summary.expectations.push(ExpectOutcome {
            passed: compare(value, &op, threshold),
            evaluator,
            metric,
            op,
            threshold,
            value,
        });
        Ok(())
    }

    /// `save ... best by`: set the best weights of the model's last stage
    /// on the model (they stay its state from here on).
    pub(super) fn apply_best(&mut self, n: NodeIndex, model: &str, log: &mut RunLog) -> Result<()> {
        let StepKind::Save { path, .. } = &self.plan.graph[n].kind else {
            return Ok(());
        };
        let best = self.p.steps.iter().find_map(|s| match s {
            crate::check::types::Step::Save(sv)
                if sv.model == model && sv.path.display().to_string() == *path =>
            {
                sv.best_by.clone()
            }
            _ => None,
        });
        let Some(b) = best else {
            return Ok(());
        };
        let Some(stage) = self.last_stage(n) else {
            log.note(&format!(
                "save `{model}`: no stage trained it; saving its weights as they are"
            ));
            return Ok(());
        };
        let dir = cache::stage_dir(self.opts, &stage);
        match best_weights(&dir, &b.evaluator, &b.metric)? {
            Some(w) => {
                for v in self.model(model)?.named_vars() {
                    if let Some(t) = w.get(&format!("{}.{}", v.module, v.name)) {
                        v.var.set(t)?;
                    }
                }
                log.note(&format!(
                    "save `{model}`: using the weights with the best {}.{}",
                    b.evaluator, b.metric
                ));
            }
            None => log.note(&format!(
                "save `{model}`: {}.{} was never evaluated; saving the last weights",
                b.evaluator, b.metric
            )),
        }
        Ok(())
    }

    /// The stage whose weights a step's model state comes from.
    fn last_stage(&self, n: NodeIndex) -> Option<String> {
        let mut cur = self.plan.state_input(n)?;
        loop {
            match &self.plan.graph[cur].kind {
                StepKind::Train { stage, .. } => return Some(stage.clone()),
                StepKind::LoadModel { .. } => return None,
                _ => cur = self.plan.state_input(cur)?,
            }
        }
    }
}

/// Whether `value op threshold` holds (`op` as the checker admits it).
fn compare(value: f64, op: &str, threshold: f64) -> bool {
    match op {
        ">=" => value >= threshold,
        "<=" => value <= threshold,
        ">" => value > threshold,
        "<" => value < threshold,
        _ => false,
    }
}
