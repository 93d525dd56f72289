//! One `train` stage: batches from every objective in turn, forward,
//! backward, AdamW, schedule, evaluation, checkpoints, resume.
//!
//! Everything a step does is a pure function of the stage's seed and the
//! step's index: the batches of an epoch come from a generator derived from
//! (seed, objective, epoch), dropout masks from (seed, turn). A checkpoint
//! therefore only needs the weights, the optimizer moments, the step count
//! and the best metric so far; a resumed run takes exactly the steps an
//! uninterrupted one would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::check::types::{ArgValue, Mixing, Pipeline, Stage, Warmup};
use crate::runtime::data::{Dataset, Label};
use crate::runtime::eval::EvalMetrics;
use crate::runtime::loss::{Loss, LossInputs};
use crate::runtime::{Ctx, EncodeOptions, SentenceEncoder};

use super::checkpoint::{self, Checkpoint};
use super::error::{Result, RunError};
use super::log::RunLog;
use super::optim::Optimizer;
use super::rng::Rng;
use super::sampler::{epoch_batches, SampleKeys, Sampler};
use super::schedule::Schedule;

/// The best value of a metric seen during a stage, for `save ... best by`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Best {
    pub evaluator: String,
    pub metric: String,
    pub value: f64,
    pub step: u64,
}

/// The primary metric of one evaluator before training (step 0).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub evaluator: String,
    pub metric: String,
    pub value: f64,
}

/// What a stage reports to the runner.
#[derive(Debug, Clone, Default)]
pub struct StageOutcome {
    /// The best value of every tracked metric during the stage.
    pub best: Vec<Best>,
    /// The untrained model's figures; kept in checkpoints, so a resumed or
    /// already finished stage still reports them.
    pub baseline: Vec<Baseline>,
}

/// What the stage needs from the runner.
pub struct StageEnv<'a> {
    pub pipeline: &'a Pipeline,
    pub models: &'a HashMap<String, SentenceEncoder>,
    pub datasets: &'a HashMap<String, Dataset>,
    pub losses: &'a HashMap<String, Box<dyn Loss>>,
    /// Where this stage keeps checkpoints and its final and best weights.
    pub dir: PathBuf,
    /// The stage's plan fingerprint: checkpoints of another one are ignored.
    pub fingerprint: String,
    /// Metrics to keep the best weights of, `(evaluator, metric)`.
    pub track_best: Vec<(String, String)>,
    pub max_steps: Option<u64>,
    pub progress: bool,
}

/// Trainer progress stored in checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Progress {
    fingerprint: String,
    best: Vec<Best>,
    #[serde(default)]
    baseline: Vec<Baseline>,
}

/// Objective `o`'s batches, epoch by epoch.
struct Feed<'a> {
    name: String,
    data: &'a Dataset,
    loss: &'a dyn Loss,
    sampler: Sampler,
    batch_size: usize,
    shuffle: bool,
    text_hashes: Option<Vec<Vec<u64>>>,
    classes: Option<Vec<i64>>,
    /// Teacher embeddings of column 0, one row per example (distillation).
    teacher: Option<Vec<Vec<f32>>>,
    cache: Option<(usize, Vec<Vec<usize>>)>,
}

fn hash_text(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Feed<'_> {
    fn batches(&mut self, seed: u64, epoch: usize) -> Result<&[Vec<usize>]> {
        if self.cache.as_ref().map(|c| c.0) != Some(epoch) {
            let keys = SampleKeys {
                len: self.data.len(),
                texts: self.text_hashes.as_deref(),
                labels: self.classes.as_deref(),
            };
            let mut rng = Rng::derived(seed, &format!("data.{}.epoch{epoch}", self.name));
            let b = epoch_batches(self.sampler, &keys, self.batch_size, self.shuffle, &mut rng)
                .map_err(|e| RunError::Invalid(format!("objective `{}`: {e}", self.name)))?;
            self.cache = Some((epoch, b));
        }
        Ok(self.cache.as_ref().map(|c| c.1.as_slice()).unwrap_or(&[]))
    }
}

/// The objective and batch of each turn of an epoch.
fn epoch_turns(mixing: Mixing, counts: &[usize], seed: u64, epoch: usize) -> Vec<(usize, usize)> {
    match mixing {
        Mixing::RoundRobin => {
            let m = counts.iter().copied().min().unwrap_or(0);
            (0..m)
                .flat_map(|b| (0..counts.len()).map(move |o| (o, b)))
                .collect()
        }
        Mixing::Proportional => {
            let mut owners: Vec<usize> = counts
                .iter()
                .enumerate()
                .flat_map(|(o, &c)| std::iter::repeat_n(o, c))
                .collect();
            Rng::derived(seed, &format!("mixing.epoch{epoch}")).shuffle(&mut owners);
            let mut next = vec![0usize; counts.len()];
            owners
                .into_iter()
                .map(|o| {
                    next[o] += 1;
                    (o, next[o] - 1)
                })
                .collect()
        }
    }
}

fn batch_tensors<'d>(
    feed: &Feed<'d>,
    idx: &[usize],
    device: &Device,
) -> Result<(Vec<Vec<&'d str>>, LossInputs)> {
    let ncols = feed.data.text_columns.len();
    let cols: Vec<Vec<&str>> = (0..ncols)
        .map(|c| {
            idx.iter()
                .map(|&i| feed.data.examples[i].texts[c].as_str())
                .collect()
        })
        .collect();
    let mut inputs = LossInputs::default();
    let labels: Vec<Option<Label>> = idx.iter().map(|&i| feed.data.examples[i].label).collect();
    if labels.iter().all(Option::is_some) && !labels.is_empty() {
        match labels[0] {
            Some(Label::Score(_)) => {
                let v: Vec<f32> = labels
                    .iter()
                    .map(|l| match l {
                        Some(Label::Score(s)) => *s,
                        Some(Label::Class(c)) => *c as f32,
                        None => 0.0,
                    })
                    .collect();
                inputs.scores = Some(Tensor::from_vec(v, idx.len(), device)?);
            }
            _ => {
                let v: Vec<i64> = labels
                    .iter()
                    .map(|l| match l {
                        Some(Label::Class(c)) => *c,
                        Some(Label::Score(s)) => *s as i64,
                        None => 0,
                    })
                    .collect();
                inputs.labels = Some(Tensor::from_vec(v, idx.len(), device)?);
            }
        }
    }
    if let Some(t) = &feed.teacher {
        let dim = t.first().map_or(0, Vec::len);
        let rows: Vec<f32> = idx.iter().flat_map(|&i| t[i].iter().copied()).collect();
        inputs.teacher = Some(Tensor::from_vec(rows, (idx.len(), dim), device)?);
    }
    Ok((cols, inputs))
}

/// Train one stage; returns the best metric values seen and the baseline.
pub fn run_stage(stage: &Stage, env: &StageEnv, log: &mut RunLog) -> Result<StageOutcome> {
    let model = env.models.get(&stage.model).ok_or_else(|| {
        RunError::Invalid(format!(
            "stage `{}`: model `{}` is not built",
            stage.name, stage.model
        ))
    })?;
    let device = model.device().clone();

    // Objectives and their data.
    let mut feeds = Vec::new();
    for name in &stage.objectives {
        let o = env.pipeline.objective(name).ok_or_else(|| {
            RunError::Invalid(format!("stage `{}`: no objective `{name}`", stage.name))
        })?;
        let data = env.datasets.get(&o.data).ok_or_else(|| {
            RunError::Invalid(format!(
                "objective `{name}`: data `{}` is not loaded",
                o.data
            ))
        })?;
        if data.is_empty() {
            return Err(RunError::Invalid(format!(
                "objective `{name}`: data source `{}` has no rows",
                o.data
            )));
        }
        let loss = env
            .losses
            .get(name)
            .ok_or_else(|| RunError::Invalid(format!("objective `{name}` has no loss")))?;
        let sampler = o.sampler;
        let teacher = match o.args.values().get("teacher").and_then(ArgValue::as_str) {
            Some(t) => {
                let teacher = env.models.get(t).ok_or_else(|| {
                    RunError::Invalid(format!("objective `{name}`: teacher `{t}` is not built"))
                })?;
                let texts: Vec<&str> = data.examples.iter().map(|e| e.texts[0].as_str()).collect();
                let opts = EncodeOptions {
                    batch_size: 64,
                    progress: env.progress,
                    ..EncodeOptions::default()
                };
                Some(teacher.encode(&texts, &opts)?.to_vec2::<f32>()?)
            }
            None => None,
        };
        feeds.push(Feed {
            name: name.clone(),
            data,
            loss: loss.as_ref(),
            sampler,
            batch_size: o.batch_size.max(1),
            shuffle: o.shuffle,
            text_hashes: (sampler == Sampler::NoDuplicates).then(|| {
                data.examples
                    .iter()
                    .map(|e| e.texts.iter().map(|t| hash_text(t)).collect())
                    .collect()
            }),
            classes: data.classes(),
            teacher,
            cache: None,
        });
    }
    let counts: Vec<usize> = feeds
        .iter_mut()
        .map(|f| f.batches(stage.seed, 0).map(<[_]>::len))
        .collect::<Result<_>>()?;
    let turns_per_epoch = epoch_turns(stage.mixing, &counts, stage.seed, 0).len();
    if turns_per_epoch == 0 {
        return Err(RunError::Invalid(format!(
            "stage `{}` has no batches",
            stage.name
        )));
    }
    let accum = stage.gradient_accumulation.max(1);
    let epoch_steps = (stage.epochs * turns_per_epoch).div_ceil(accum) as u64;
    let mut total = stage.max_steps.unwrap_or(epoch_steps);
    if let Some(cap) = env.max_steps {
        total = total.min(cap);
    }
    let warmup = match stage.warmup {
        Warmup::Steps(s) => s,
        Warmup::Fraction(f) => Schedule::warmup_from_fraction(f, total),
    };
    let schedule = Schedule::new(super::build::build_schedule(stage)?, warmup, total);

    // Every trainable tensor: the model's, then the losses' heads.
    let mut vars: Vec<(String, candle_core::Var)> = model
        .named_vars()
        .into_iter()
        .map(|v| (format!("{}.{}", v.module, v.name), v.var))
        .collect();
    for f in &feeds {
        for (n, v) in f.loss.trainable_vars() {
            vars.push((format!("loss.{}.{n}", f.name), v));
        }
    }
    let mut opt = Optimizer::new(vars, super::build::build_optimizer(stage)?)?;

    // Resume.
    let ckpt_dir = env.dir.join("checkpoints");
    let best_dir = env.dir.join("best");
    let mut best: Vec<Best> = Vec::new();
    let mut baseline: Vec<Baseline> = Vec::new();
    let mut start = 0u64;
    if let Some(c) = checkpoint::latest(&ckpt_dir, &device)? {
        let p: Option<Progress> = serde_json::from_value(c.state.clone()).ok();
        match p {
            Some(p) if p.fingerprint == env.fingerprint => {
                opt.restore(&c.weights, &c.moments, c.step)?;
                best = p.best;
                baseline = p.baseline;
                start = c.step;
                log.note(&format!(
                    "stage `{}`: resuming from the checkpoint at step {}",
                    stage.name, c.step
                ));
            }
            _ => {
                // They would outlive this run's own checkpoints (pruning
                // keeps the highest steps) and hide them from a resume.
                log.note(&format!(
                    "stage `{}`: ignoring checkpoints of a different configuration in {} (removed)",
                    stage.name,
                    ckpt_dir.display()
                ));
                remove_tree(&ckpt_dir)?;
            }
        }
    }
    if start == 0 {
        // Best weights kept by another configuration (or a smoke run) must
        // not stand in for this run's: a fresh start tracks them anew.
        remove_tree(&best_dir)?;
    }

    if start == 0 && stage.evaluate_at_start && !stage.evaluate.is_empty() {
        // The untrained baseline: logged as step 0, never kept as "best".
        baseline = evaluate_stage(stage, env, 0, None, &best_dir, &opt, log)?
            .into_iter()
            .filter_map(|(evaluator, m)| {
                Some(Baseline {
                    value: m.primary_value()?,
                    metric: m.primary,
                    evaluator,
                })
            })
            .collect();
    }
    let bar = log.stage_bar(&stage.name, total, start);
    let total_turns = if stage.max_steps.is_some() || env.max_steps.is_some() {
        total as usize * accum
    } else {
        (stage.epochs * turns_per_epoch).min(total as usize * accum)
    };
    let mut evaluated_at = None;
    let started = Instant::now();
    let mut examples_done = 0usize;
    for k in start..total {
        let mut losses: Vec<(String, f32)> = Vec::new();
        let first = k as usize * accum;
        let last = (first + accum).min(total_turns.max(first + 1));
        let micro = (last - first) as f32;
        let mut crossed_epoch = false;
        for g in first..last {
            let epoch = g / turns_per_epoch;
            let turns = epoch_turns(
                stage.mixing,
                &counts_for(&mut feeds, stage.seed, epoch)?,
                stage.seed,
                epoch,
            );
            let Some(&(o, b)) = turns.get(g % turns_per_epoch) else {
                continue;
            };
            if (g + 1) % turns_per_epoch == 0 {
                crossed_epoch = true;
            }
            let feed = &mut feeds[o];
            let idx = feed.batches(stage.seed, epoch)?[b].clone();
            let (cols, mut inputs) = batch_tensors(feed, &idx, &device)?;
            let ctx = Ctx::train(Rng::derived(stage.seed, &format!("dropout.turn{g}")).next_u64());
            inputs.embeddings = cols
                .iter()
                .map(|c| model.embed(c, &ctx))
                .collect::<std::result::Result<_, _>>()?;
            let loss = feed.loss.forward(&inputs)?;
            let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(RunError::NonFiniteLoss {
                    stage: stage.name.clone(),
                    objective: feed.name.clone(),
                    step: k + 1,
                    value,
                });
            }
            let grads = loss.backward()?;
            opt.accumulate(&grads, 1.0 / micro)?;
            losses.push((feed.name.clone(), value));
            examples_done += idx.len();
        }
        let lr = opt.lr() * schedule.factor(k);
        let grad_norm = opt.step(lr, stage.max_grad_norm)?;
        let step = k + 1;
        let rate = examples_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        log.step(&stage.name, step, &losses, lr, grad_norm, rate, &bar);

        let every = stage.evaluate_every.is_some_and(|n| n > 0 && step % n == 0);
        if every || crossed_epoch || step == total {
            evaluate_stage(stage, env, step, Some(&mut best), &best_dir, &opt, log)?;
            evaluated_at = Some(step);
        }
        if let Some(n) = stage.checkpoint_every {
            if n > 0 && step % n == 0 && step < total {
                save_checkpoint(
                    &ckpt_dir,
                    env,
                    &opt,
                    step,
                    (&best, &baseline),
                    stage.checkpoint_keep,
                )?;
            }
        }
    }
    if evaluated_at.is_none() && start == total && !stage.evaluate.is_empty() {
        log.note(&format!(
            "stage `{}`: already trained ({total} steps)",
            stage.name
        ));
    }
    bar.finish_and_clear();
    // The final state, so that a re-run with the same fingerprint skips the
    // stage entirely.
    save_checkpoint(
        &ckpt_dir,
        env,
        &opt,
        total,
        (&best, &baseline),
        stage.checkpoint_keep,
    )?;
    Ok(StageOutcome { best, baseline })
}

/// Remove a directory tree; an absent one is fine.
fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RunError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn counts_for(feeds: &mut [Feed], seed: u64, epoch: usize) -> Result<Vec<usize>> {
    feeds
        .iter_mut()
        .map(|f| f.batches(seed, epoch).map(<[_]>::len))
        .collect()
}

fn save_checkpoint(
    dir: &Path,
    env: &StageEnv,
    opt: &Optimizer,
    step: u64,
    (best, baseline): (&[Best], &[Baseline]),
    keep: Option<usize>,
) -> Result<()> {
    let state = serde_json::to_value(Progress {
        fingerprint: env.fingerprint.clone(),
        best: best.to_vec(),
        baseline: baseline.to_vec(),
    })
    .map_err(|e| RunError::Invalid(e.to_string()))?;
    checkpoint::save(
        dir,
        &Checkpoint {
            step,
            state,
            weights: opt.weights(),
            moments: opt.moments(),
        },
        keep.unwrap_or(2),
    )?;
    Ok(())
}

/// Run the stage's evaluators after `step` steps; with `best`, keep the
/// weights of every tracked metric that improved. Returns every evaluator's
/// metrics.
fn evaluate_stage(
    stage: &Stage,
    env: &StageEnv,
    step: u64,
    best: Option<&mut Vec<Best>>,
    best_dir: &Path,
    opt: &Optimizer,
    log: &mut RunLog,
) -> Result<Vec<(String, EvalMetrics)>> {
    let cx = super::evaluate::EvalContext {
        models: env.models,
        datasets: env.datasets,
        losses: env.losses,
    };
    let mut best = best;
    let mut all = Vec::new();
    for name in &stage.evaluate {
        let Some(ev) = env.pipeline.evaluator(name) else {
            continue;
        };
        let m = super::evaluate::evaluate(ev, &cx)?;
        log.eval(&stage.name, step, name, &m);
        all.push((name.clone(), m.clone()));
        let Some(best) = best.as_deref_mut() else {
            continue;
        };
        for (e, metric) in &env.track_best {
            if e != name {
                continue;
            }
            let Some(v) = m.get(metric) else { continue };
            let improved = match best
                .iter()
                .find(|b| &b.evaluator == e && &b.metric == metric)
            {
                Some(b) => v > b.value,
                None => true,
            };
            if improved {
                best.retain(|b| !(&b.evaluator == e && &b.metric == metric));
                best.push(Best {
                    evaluator: e.clone(),
                    metric: metric.clone(),
                    value: v,
                    step,
                });
                let root = best_dir.join(format!("{e}.{metric}"));
                checkpoint::save(
                    &root,
                    &Checkpoint {
                        step,
                        state: serde_json::json!({ "value": v }),
                        weights: opt.weights(),
                        moments: HashMap::new(),
                    },
                    1,
                )?;
            }
        }
    }
    Ok(all)
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
