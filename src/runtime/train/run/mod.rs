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
use super::evaluate::{evaluate, EvalContext};
use super::log::RunLog;
pub use super::outcome::{ExpectOutcome, RunSummary, StepOutcome, StepStatus};
use super::stage::{restore_finished, run_stage, Metric, StageEnv, StageOutcome};
use super::stage_eval::best_weights;

mod loading;
mod lock;
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

fn compare(value: f64, op: &str, threshold: f64) -> bool {
    match op {
        ">=" => value >= threshold,
        "<=" => value <= threshold,
        ">" => value > threshold,
        "<" => value < threshold,
        _ => false,
    }
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
    let order = plan.execution_order();
    let mut failure = None;
    for n in &order {
        let n = *n;
        let step = &plan.graph[n];
        let mut outcome = StepOutcome {
            label: p.redact(&step.label),
            kind: step.kind.tag().to_string(),
            status: StepStatus::NotRun,
            seconds: 0.0,
            detail: None,
            error: None,
        };
        if failure.is_none() {
            let t0 = std::time::Instant::now();
            let r = if crate::runtime::signals::requested() {
                Err(RunError::Interrupted {
                    at: None,
                    resume: "run the same command to continue: finished steps are reused".into(),
                })
            } else {
                match actions[n.index()] {
                    Action::Skip => {
                        ex.report_skipped(n, &mut log);
                        Ok(StepStatus::Reused)
                    }
                    Action::Restore => ex.restore(n, &mut log),
                    Action::Execute => ex.execute(n, &mut log).map(|()| StepStatus::Executed),
                }
            };
            outcome.seconds = t0.elapsed().as_secs_f64();
            match r {
                Ok(status) => {
                    outcome.status = status;
                    outcome.detail = ex.detail(n, &log).map(|d| p.redact(&d));
                }
                Err(e) => {
                    outcome.status = StepStatus::Failed;
                    outcome.error = Some(p.redact(&e.to_string()));
                    failure = Some(e);
                }
            }
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
            StepKind::Save { model, path, best } => {
                if best {
                    self.apply_best(n, &model, log)?;
                }
                let marker = serde_json::json!({
                    "fingerprint": self.fingerprint(n),
                    "pipeline": self.p.file.display().to_string(),
                    "model": model,
                });
                let bytes = serde_json::to_vec_pretty(&marker)
                    .map_err(|e| RunError::Invalid(e.to_string()))?;
                let card = self.card(&model, &path, log)?;
                let path = PathBuf::from(path);
                self.model(&model)?.save_with(
                    &path,
                    &[
                        (cache::MODEL_MARKER, bytes),
                        ("README.md", card.into_bytes()),
                    ],
                )?;
                log.note(&format!("saved `{model}` to {}", path.display()));
                self.summary.saved.push(path);
            }
            StepKind::Expect {
                evaluator,
                metric,
                op,
                value: threshold,
            } => {
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
            }
        }
        Ok(())
    }

    /// Set up a reusable step's recorded result for a step that needs it.
    fn restore(&mut self, n: NodeIndex, log: &mut RunLog) -> Result<StepStatus> {
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

    /// A step neither executed nor restored: reusable, and not needed. Its
    /// figures still go into the summary.
    fn report_skipped(&mut self, n: NodeIndex, log: &mut RunLog) {
        let step = &self.plan.graph[n];
        if let StepKind::Train { stage, .. } = &step.kind {
            let dir = cache::stage_dir(self.opts, stage);
            if let Some(p) = super::stage::finished(&dir, &self.fingerprint(n)) {
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

    fn evaluate(&mut self, n: NodeIndex, evaluator: &str, log: &mut RunLog) -> Result<()> {
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

    /// `save ... best by`: set the best weights of the model's last stage
    /// on the model (they stay its state from here on).
    fn apply_best(&mut self, n: NodeIndex, model: &str, log: &mut RunLog) -> Result<()> {
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
