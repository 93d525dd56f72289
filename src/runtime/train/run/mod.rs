//! Executing a checked pipeline: the plan's steps in dependency order,
//! each executed, restored from its recorded result, or skipped
//! ([`super::cache`]), with a run directory holding the resolved pipeline,
//! the metrics log, checkpoints, recorded evaluations and a summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;

use crate::check::types::{Pipeline, Stage};
use crate::hub::ModelSearch;
use crate::plan::{Plan, StepKind};
use crate::runtime::data::{self, Dataset};
use crate::runtime::eval::EvalMetrics;
use crate::runtime::loss::Loss;
use crate::runtime::SentenceEncoder;

use super::build::{build_loss, build_model};
use super::cache::{self, Action};
use super::error::{Result, RunError};
use super::log::RunLog;
pub use super::outcome::{ExpectOutcome, RunSummary, StepOutcome, StepStatus};
use super::stage::{run_stage, Metric, StageEnv, StageOutcome};

mod loading;
mod lock;
mod outputs;
mod reuse;
use lock::{clean_run_dir, RunDirLock};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where checkpoints, the metrics log and the summary go.
    pub run_dir: PathBuf,
    pub search: ModelSearch,
    /// Cap every stage at this many optimizer steps (smoke runs).
    pub max_steps: Option<u64>,
    /// Read at most this many rows of every data source (smoke runs).
    pub limit: Option<usize>,
    pub skip_bad_rows: bool,
    pub progress: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::io(path, source)
}

/// Write a file atomically (temporary file, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fsio::write_atomic(path, bytes).map_err(io_err(path))
}

/// Run a checked pipeline: the summary of what it did, and the error that
/// stopped it if one did (the summary then still holds the outcomes of the
/// steps before it, the failed step and those not reached). `source` is the
/// pipeline text as checked (after `--set`), kept in the run directory for
/// `stpipe report`.
pub fn run(p: &Pipeline, plan: &Plan, opts: &RunOptions, source: &str) -> (RunSummary, Result<()>) {
    let mut summary = RunSummary::default();
    let r = run_into(p, plan, opts, source, &mut summary);
    if let Err(e) = &r {
        summary.error = Some(p.redact(&e.to_string()));
        // Written whatever the run reached: the report of a failed run.
        if let Ok(s) = serde_json::to_string_pretty(&summary) {
            let _ = write_atomic(&opts.run_dir.join("summary.json"), p.redact(&s).as_bytes());
        }
    }
    (summary, r)
}

fn run_into(
    p: &Pipeline,
    plan: &Plan,
    opts: &RunOptions,
    source: &str,
    summary: &mut RunSummary,
) -> Result<()> {
    crate::runtime::fp_env::ensure();
    crate::fsio::create_dir_all(&opts.run_dir).map_err(io_err(&opts.run_dir))?;
    let _lock = RunDirLock::acquire(&opts.run_dir)?;
    clean_run_dir(&opts.run_dir)?;
    let resolved = serde_json::to_string_pretty(p).map_err(|e| RunError::Invalid(e.to_string()))?;
    write_atomic(
        &opts.run_dir.join("pipeline.json"),
        p.redact(&resolved).as_bytes(),
    )?;
    write_atomic(
        &opts.run_dir.join("pipeline.stp"),
        p.redact(source).as_bytes(),
    )?;
    let pipeline = p.clone();
    let mut log =
        RunLog::open(&opts.run_dir, opts.progress)?.redacting(move |t| pipeline.redact(t));
    log.note(&crate::runtime::process::cpu_summary());

    let actions = cache::actions(plan, opts);
    let plan_text = plan.to_text_with(&|n| Some(actions[n.index()].describe().to_string()));
    write_atomic(
        &opts.run_dir.join("plan.txt"),
        p.redact(&plan_text).as_bytes(),
    )?;
    let mut ex = Executor {
        p,
        source,
        plan,
        opts,
        models: HashMap::new(),
        datasets: HashMap::new(),
        losses: HashMap::new(),
        metrics: HashMap::new(),
        summary: std::mem::take(summary),
    };
    let mut failure = None;
    for n in plan.execution_order() {
        let step = &plan.graph[n];
        let mut outcome = StepOutcome {
            label: p.redact(&step.label),
            kind: step.kind.tag().to_string(),
            status: StepStatus::NotRun,
            seconds: 0.0,
            detail: None,
            error: None,
        };
        // After a failure, the steps left are listed as not run.
        if failure.is_none() {
            failure = ex.step(n, actions[n.index()], &mut log, &mut outcome).err();
        }
        ex.summary.steps.push(outcome);
    }
    *summary = ex.summary;
    if let Some(e) = failure {
        return Err(e);
    }
    let s =
        serde_json::to_string_pretty(&*summary).map_err(|e| RunError::Invalid(e.to_string()))?;
    write_atomic(&opts.run_dir.join("summary.json"), p.redact(&s).as_bytes())?;
    Ok(())
}

/// The state of a run: what the executed and restored steps produced.
struct Executor<'a> {
    p: &'a Pipeline,
    /// The pipeline text as checked (for the model card).
    source: &'a str,
    plan: &'a Plan,
    opts: &'a RunOptions,
    models: HashMap<String, SentenceEncoder>,
    datasets: HashMap<String, Dataset>,
    /// Losses by objective name.
    losses: HashMap<String, Box<dyn Loss>>,
    /// The metrics of the evaluation steps, by step.
    metrics: HashMap<NodeIndex, EvalMetrics>,
    summary: RunSummary,
}

impl Executor<'_> {
    fn fingerprint(&self, n: NodeIndex) -> String {
        cache::run_fingerprint(&self.plan.graph[n].fingerprint, self.opts)
    }

    fn stage(&self, name: &str) -> Result<&Stage> {
        self.p
            .stages()
            .find(|s| s.name == name)
            .ok_or_else(|| RunError::Invalid(format!("no stage `{name}`")))
    }

    fn model(&self, name: &str) -> Result<&SentenceEncoder> {
        self.models
            .get(name)
            .ok_or_else(|| RunError::Invalid(format!("model `{name}` is not built")))
    }

    /// The seed a model's new modules are initialised from: that of its
    /// first stage.
    fn seed_of(&self, model: &str) -> u64 {
        self.p
            .stages()
            .find(|s| s.model == model)
            .map(|s| s.seed)
            .unwrap_or(42)
    }

    /// Build the losses of `objectives` not built yet.
    fn ensure_losses<'o>(&mut self, objectives: impl IntoIterator<Item = &'o str>) -> Result<()> {
        for name in objectives {
            if self.losses.contains_key(name) {
                continue;
            }
            let Some(o) = self.p.objective(name) else {
                continue;
            };
            let loss = build_loss(o, self.model(&o.model)?, self.seed_of(&o.model))?;
            self.losses.insert(name.to_string(), loss);
        }
        Ok(())
    }

    fn env(&self, stage: &Stage, n: NodeIndex) -> StageEnv<'_> {
        // `save ... best by` steps of this model between this stage and
        // the model's next one say which best weights to keep.
        let track_best = self
            .p
            .steps
            .iter()
            .skip_while(
                |s| !matches!(s, crate::check::types::Step::Train(t) if t.name == stage.name),
            )
            .skip(1)
            .take_while(
                |s| !matches!(s, crate::check::types::Step::Train(t) if t.model == stage.model),
            )
            .filter_map(|s| match s {
                crate::check::types::Step::Save(sv) if sv.model == stage.model => sv
                    .best_by
                    .as_ref()
                    .map(|b| (b.evaluator.clone(), b.metric.clone())),
                _ => None,
            })
            .collect();
        StageEnv {
            pipeline: self.p,
            models: &self.models,
            datasets: &self.datasets,
            losses: &self.losses,
            dir: cache::stage_dir(self.opts, &stage.name),
            fingerprint: self.fingerprint(n),
            track_best,
            max_steps: self.opts.max_steps,
            progress: self.opts.progress,
        }
    }

    /// Step `n` as `action` says, timed, into `outcome`; the error that
    /// stops the run, if any.
    fn step(
        &mut self,
        n: NodeIndex,
        action: Action,
        log: &mut RunLog,
        outcome: &mut StepOutcome,
    ) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = if crate::runtime::signals::requested() {
            Err(RunError::Interrupted {
                at: None,
                resume: "run the same command to continue: finished steps are reused".into(),
            })
        } else {
            match action {
                Action::Skip => {
                    self.report_skipped(n, log);
                    Ok(StepStatus::Reused)
                }
                Action::Restore => self.restore(n, log),
                Action::Execute => self.execute(n, log).map(|()| StepStatus::Executed),
            }
        };
        outcome.seconds = t0.elapsed().as_secs_f64();
        match r {
            Ok(status) => {
                outcome.status = status;
                outcome.detail = self.detail(n, log).map(|d| self.p.redact(&d));
                Ok(())
            }
            Err(e) => {
                outcome.status = StepStatus::Failed;
                outcome.error = Some(self.p.redact(&e.to_string()));
                Err(e)
            }
        }
    }

    fn execute(&mut self, n: NodeIndex, log: &mut RunLog) -> Result<()> {
        match self.plan.graph[n].kind.clone() {
            StepKind::LoadModel { model } => {
                let m = self
                    .p
                    .model(&model)
                    .ok_or_else(|| RunError::Invalid(format!("no model `{model}`")))?;
                let enc =
                    build_model(m, &self.opts.search, &self.p.base_dir, self.seed_of(&model))?;
                self.models.insert(model, enc);
            }
            StepKind::LoadData {
                data: name,
                recorded,
            } => {
                let ds = self.load_data(&name, log)?;
                if ds.skipped > 0 {
                    log.note(&format!("data `{name}`: skipped {} bad row(s)", ds.skipped));
                }
                if recorded {
                    let fp = cache::data_fingerprint(&self.plan.graph[n].fingerprint, self.opts);
                    let path = data::record::write(&self.opts.run_dir, &ds, &fp)
                        .map_err(io_err(&self.opts.run_dir))?;
                    log.note(&format!(
                        "data `{name}`: {} rows written to {}",
                        ds.len(),
                        path.display()
                    ));
                }
                self.datasets.insert(name, ds);
            }
            StepKind::Train { stage, .. } => {
                let stage = self.stage(&stage)?.clone();
                self.ensure_losses(stage.objectives.iter().map(String::as_str))?;
                let outcome = run_stage(&stage, &self.env(&stage, n), log)?;
                self.record_stage(&outcome);
            }
            StepKind::Evaluate { evaluator, .. } => self.evaluate(n, &evaluator, log)?,
            StepKind::Save { model, path, best } => self.save(n, &model, &path, best, log)?,
            StepKind::Expect {
                evaluator,
                metric,
                op,
                value,
            } => self.expect(n, evaluator, metric, op, value)?,
        }
        Ok(())
    }

    /// A line on what step `n` produced, for the run's reports.
    fn detail(&self, n: NodeIndex, log: &RunLog) -> Option<String> {
        match &self.plan.graph[n].kind {
            StepKind::LoadModel { model } => self
                .models
                .get(model)
                .map(|m| format!("{} dimensions", m.dim())),
            StepKind::LoadData { data, .. } => self.datasets.get(data).map(|d| {
                let mut s = format!("{} rows", d.len());
                if d.skipped > 0 {
                    s.push_str(&format!(", {} bad rows skipped", d.skipped));
                }
                s
            }),
            StepKind::Evaluate { .. } => self.metrics.get(&n).map(|m| {
                m.entries
                    .iter()
                    .map(|(k, v)| format!("{k} = {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            StepKind::Save { path, .. } => Some(format!("saved to {path}")),
            StepKind::Expect { .. } => self
                .summary
                .expectations
                .last()
                .map(|e| format!("got {:.4} (needs {} {})", e.value, e.op, e.threshold)),
            StepKind::Train { stage, .. } => log.last_steps.get(stage).map(|(step, losses)| {
                let losses: Vec<String> =
                    losses.iter().map(|(o, l)| format!("{o} {l:.4}")).collect();
                format!("reached step {step}; last loss {}", losses.join(", "))
            }),
        }
    }

    fn record_stage(&mut self, outcome: &StageOutcome) {
        // The first stage's figure is the untrained model's; a later
        // stage's baseline is the model after the stages before it.
        for b in &outcome.baseline {
            if !self
                .summary
                .baseline_metrics
                .iter()
                .any(|(e, _, _)| e == &b.evaluator)
            {
                self.summary.baseline_metrics.push((
                    b.evaluator.clone(),
                    b.metric.clone(),
                    b.value,
                ));
            }
        }
        for Metric {
            evaluator,
            metric,
            value,
        } in &outcome.last
        {
            self.summary.set_final(evaluator, metric, *value);
        }
    }
}

/// `--max-steps N --limit N` of a smoke run, as typed.
fn smoke_flags(opts: &RunOptions) -> Option<String> {
    let mut f = Vec::new();
    if let Some(n) = opts.max_steps {
        f.push(format!("--max-steps {n}"));
    }
    if let Some(n) = opts.limit {
        f.push(format!("--limit {n}"));
    }
    (!f.is_empty()).then(|| f.join(" "))
}
