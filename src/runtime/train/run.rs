//! Executing a whole checked pipeline: stages in order, then saves and
//! expectations, with a run directory holding the resolved pipeline, the
//! metrics log, checkpoints and a summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::check::types::{Pipeline, Step};
use crate::hub::ModelSearch;
use crate::plan::{Plan, StepKind};
use crate::runtime::data::{self, Dataset, LoadOptions};
use crate::runtime::loss::Loss;
use crate::runtime::SentenceEncoder;

use super::build::{build_loss, build_model};
use super::error::{Result, RunError};
use super::evaluate::{evaluate, EvalContext};
use super::log::RunLog;
use super::stage::{best_weights, run_stage, StageEnv};

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

/// The outcome of one `expect`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExpectOutcome {
    pub evaluator: String,
    pub metric: String,
    pub op: String,
    pub threshold: f64,
    pub value: f64,
    pub passed: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub saved: Vec<PathBuf>,
    pub expectations: Vec<ExpectOutcome>,
    /// The last value of every evaluator's primary metric.
    pub final_metrics: Vec<(String, String, f64)>,
    /// Every evaluator's primary metric before training: its step-0 value in
    /// the first stage that evaluated it (see the stage setting
    /// `evaluate_at_start`). Kept in checkpoints, so resumed and finished
    /// runs report it too.
    pub baseline_metrics: Vec<(String, String, f64)>,
}

impl RunSummary {
    pub fn failed_expectations(&self) -> Vec<&ExpectOutcome> {
        self.expectations.iter().filter(|e| !e.passed).collect()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a file atomically (temporary file, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn stage_seed(p: &Pipeline, model: &str) -> u64 {
    p.stages()
        .find(|s| s.model == model)
        .map(|s| s.seed)
        .unwrap_or(42)
}

/// What a stage's checkpoints must match to be resumed: the plan's
/// fingerprint and the options that change what the steps do. A smoke run
/// (`--max-steps` shortens the schedule, `--limit` the data) is not resumed
/// by a full run in the same run directory, nor the other way round.
fn checkpoint_fingerprint(plan: &str, opts: &RunOptions) -> String {
    let mut fp = plan.to_string();
    if let Some(n) = opts.max_steps {
        fp.push_str(&format!("+max-steps={n}"));
    }
    if let Some(n) = opts.limit {
        fp.push_str(&format!("+limit={n}"));
    }
    fp
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

/// Run a checked pipeline.
pub fn run(p: &Pipeline, plan: &Plan, opts: &RunOptions) -> Result<RunSummary> {
    crate::runtime::fp_env::ensure();
    std::fs::create_dir_all(&opts.run_dir).map_err(io_err(&opts.run_dir))?;
    let resolved = serde_json::to_vec_pretty(p).map_err(|e| RunError::Invalid(e.to_string()))?;
    write_atomic(&opts.run_dir.join("pipeline.json"), &resolved)?;
    let mut log = RunLog::open(&opts.run_dir, opts.progress)?;
    log.note(&crate::runtime::process::cpu_summary());

    // Models, data and losses.
    let mut models: HashMap<String, SentenceEncoder> = HashMap::new();
    for m in &p.models {
        let enc = build_model(m, &opts.search, &p.base_dir, stage_seed(p, &m.name))?;
        models.insert(m.name.clone(), enc);
    }
    let load_opts = LoadOptions {
        skip_bad_rows: opts.skip_bad_rows,
        max_rows: opts.limit,
    };
    let mut datasets: HashMap<String, Dataset> = HashMap::new();
    let needed = p
        .objectives
        .iter()
        .map(|o| o.data.as_str())
        .chain(p.evaluators.iter().flat_map(|e| e.args.data_sources()));
    for name in needed {
        if !datasets.contains_key(name) {
            let ds = data::load(p, name, &load_opts)?;
            if ds.skipped > 0 {
                log.note(&format!("data `{name}`: skipped {} bad row(s)", ds.skipped));
            }
            datasets.insert(name.to_string(), ds);
        }
    }
    let mut losses: HashMap<String, Box<dyn Loss>> = HashMap::new();
    for o in &p.objectives {
        let dim = models.get(&o.model).map(SentenceEncoder::dim).unwrap_or(0);
        losses.insert(o.name.clone(), build_loss(o, dim, stage_seed(p, &o.model))?);
    }

    let fingerprints: HashMap<String, String> = plan
        .steps()
        .filter_map(|(_, s)| match &s.kind {
            StepKind::Train { stage, .. } => Some((stage.clone(), s.fingerprint.clone())),
            _ => None,
        })
        .collect();

    let mut summary = RunSummary::default();
    // The directory of the last stage that trained each model.
    let mut last_stage_dir: HashMap<String, PathBuf> = HashMap::new();
    for (i, step) in p.steps.iter().enumerate() {
        match step {
            Step::Train(stage) => {
                let track_best = p.steps[i + 1..]
                    .iter()
                    .take_while(|s| !matches!(s, Step::Train(t) if t.model == stage.model))
                    .filter_map(|s| match s {
                        Step::Save(sv) if sv.model == stage.model => sv
                            .best_by
                            .as_ref()
                            .map(|b| (b.evaluator.clone(), b.metric.clone())),
                        _ => None,
                    })
                    .collect();
                let dir = opts.run_dir.join("stages").join(&stage.name);
                let env = StageEnv {
                    pipeline: p,
                    models: &models,
                    datasets: &datasets,
                    losses: &losses,
                    dir: dir.clone(),
                    fingerprint: checkpoint_fingerprint(
                        fingerprints.get(&stage.name).map_or("", String::as_str),
                        opts,
                    ),
                    track_best,
                    max_steps: opts.max_steps,
                    progress: opts.progress,
                };
                let outcome = run_stage(stage, &env, &mut log)?;
                // The first stage's figure is the untrained model's; a later
                // stage's baseline is the model after the stages before it.
                for b in outcome.baseline {
                    if !summary
                        .baseline_metrics
                        .iter()
                        .any(|(n, _, _)| n == &b.evaluator)
                    {
                        summary
                            .baseline_metrics
                            .push((b.evaluator, b.metric, b.value));
                    }
                }
                last_stage_dir.insert(stage.model.clone(), dir);
            }
            Step::Save(sv) => {
                let model = models.get(&sv.model).ok_or_else(|| {
                    RunError::Invalid(format!("save: model `{}` is not built", sv.model))
                })?;
                if let (Some(b), Some(dir)) = (&sv.best_by, last_stage_dir.get(&sv.model)) {
                    match best_weights(dir, &b.evaluator, &b.metric)? {
                        Some(w) => {
                            for v in model.named_vars() {
                                if let Some(t) = w.get(&format!("{}.{}", v.module, v.name)) {
                                    v.var.set(t)?;
                                }
                            }
                            log.note(&format!(
                                "save `{}`: using the weights with the best {}.{}",
                                sv.model, b.evaluator, b.metric
                            ));
                        }
                        None => log.note(&format!(
                            "save `{}`: {}.{} was never evaluated; saving the last weights",
                            sv.model, b.evaluator, b.metric
                        )),
                    }
                }
                model.save(&sv.path)?;
                log.note(&format!("saved `{}` to {}", sv.model, sv.path.display()));
                summary.saved.push(sv.path.clone());
            }
            Step::Expect(ex) => {
                let ev = p.evaluator(&ex.metric.evaluator).ok_or_else(|| {
                    RunError::Invalid(format!("no evaluator `{}`", ex.metric.evaluator))
                })?;
                let cx = EvalContext {
                    models: &models,
                    datasets: &datasets,
                    losses: &losses,
                };
                let m = evaluate(ev, &cx)?;
                log.eval("expect", 0, &ev.name, &m);
                let value = m.get(&ex.metric.metric).ok_or_else(|| {
                    RunError::Invalid(format!(
                        "evaluator `{}` produced no metric `{}`",
                        ev.name, ex.metric.metric
                    ))
                })?;
                summary.expectations.push(ExpectOutcome {
                    evaluator: ev.name.clone(),
                    metric: ex.metric.metric.clone(),
                    op: ex.op.to_string(),
                    threshold: ex.value,
                    value,
                    passed: compare(value, ex.op, ex.value),
                });
            }
        }
    }
    for (_, _, name, m) in &log.evaluations {
        if let Some(v) = m.primary_value() {
            summary.final_metrics.retain(|(n, _, _)| n != name);
            summary
                .final_metrics
                .push((name.clone(), m.primary.clone(), v));
        }
    }
    let s = serde_json::to_vec_pretty(&summary).map_err(|e| RunError::Invalid(e.to_string()))?;
    write_atomic(&opts.run_dir.join("summary.json"), &s)?;
    Ok(summary)
}
