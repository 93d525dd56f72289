//! One `train` stage: batches from every objective in turn, forward,
//! backward, optimizer, schedule, evaluation, checkpoints, resume.
//!
//! Everything a step does is a pure function of the stage's seed and the
//! step's index (see [`super::feed`]; dropout masks come from (seed,
//! turn)). A checkpoint therefore only needs the weights, the optimizer
//! state, the step count and the best metrics so far; a resumed run takes
//! exactly the steps an uninterrupted one would. The final checkpoint is
//! marked finished: a later run with the same fingerprint reuses it
//! without training, loading data or evaluating ([`restore_finished`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::check::types::{Pipeline, Stage};
use crate::registry::choices::Precision;
use crate::runtime::data::Dataset;
use crate::runtime::loss::{Loss, LossInputs, TextBatch};
use crate::runtime::{Ctx, SentenceEncoder};

use super::checkpoint;
use super::error::{Result, RunError};
use super::feed::{counts_for, epoch_turns, feeds, steps, Feed, Steps};
use super::grad_cache::GradCache;
use super::log::RunLog;
use super::optim::Optimizer;
use super::rng::Rng;
use super::stage_eval::{evaluate_stage, primaries, remove_tree, save_checkpoint};

/// The best value of a metric seen during a stage, for `save ... best by`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Best {
    pub evaluator: String,
    pub metric: String,
    pub value: f64,
    pub step: u64,
}

/// The primary metric of one evaluator at some point of a stage.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Metric {
    pub evaluator: String,
    pub metric: String,
    pub value: f64,
}

/// Kept for readers of the earlier name.
pub type Baseline = Metric;

/// What a stage reports to the runner.
#[derive(Debug, Clone, Default)]
pub struct StageOutcome {
    /// The best value of every tracked metric during the stage.
    pub best: Vec<Best>,
    /// The untrained model's figures; kept in checkpoints, so a resumed or
    /// already finished stage still reports them.
    pub baseline: Vec<Metric>,
    /// The figures of the stage's last evaluation (also kept).
    pub last: Vec<Metric>,
}

/// What the stage needs from the runner.
pub struct StageEnv<'a> {
    pub pipeline: &'a Pipeline,
    pub models: &'a HashMap<String, SentenceEncoder>,
    pub datasets: &'a HashMap<String, Dataset>,
    pub losses: &'a HashMap<String, Box<dyn Loss>>,
    /// Where this stage keeps checkpoints and its best weights.
    pub dir: PathBuf,
    /// The stage's fingerprint: checkpoints of another one are ignored.
    pub fingerprint: String,
    /// Metrics to keep the best weights of, `(evaluator, metric)`.
    pub track_best: Vec<(String, String)>,
    pub max_steps: Option<u64>,
    pub progress: bool,
}

/// Trainer progress stored in checkpoints.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub fingerprint: String,
    pub best: Vec<Best>,
    #[serde(default)]
    pub baseline: Vec<Metric>,
    /// The final checkpoint of a completed stage.
    #[serde(default)]
    pub finished: bool,
    #[serde(default)]
    pub last: Vec<Metric>,
}

impl Progress {
    fn outcome(self) -> StageOutcome {
        StageOutcome {
            best: self.best,
            baseline: self.baseline,
            last: self.last,
        }
    }
}

/// The progress of a stage's finished final checkpoint in `dir`, when its
/// fingerprint is `fingerprint`.
pub fn finished(dir: &std::path::Path, fingerprint: &str) -> Option<Progress> {
    let (_, state) = checkpoint::latest_state(&dir.join("checkpoints"))?;
    let p: Progress = serde_json::from_value(state).ok()?;
    (p.finished && p.fingerprint == fingerprint).then_some(p)
}

/// Every trainable tensor of a stage by checkpoint name: the model's, then
/// its objectives' loss heads.
fn stage_vars(stage: &Stage, env: &StageEnv, model: &SentenceEncoder) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = model
        .named_vars()
        .into_iter()
        .map(|v| (format!("{}.{}", v.module, v.name), v.var))
        .collect();
    for o in &stage.objectives {
        if let Some(loss) = env.losses.get(o) {
            for (n, v) in loss.trainable_vars() {
                vars.push((format!("loss.{o}.{n}"), v));
            }
        }
    }
    vars
}

fn model<'a>(stage: &Stage, env: &StageEnv<'a>) -> Result<&'a SentenceEncoder> {
    env.models.get(&stage.model).ok_or_else(|| {
        RunError::Invalid(format!(
            "stage `{}`: model `{}` is not built",
            stage.name, stage.model
        ))
    })
}

/// Set the weights of a finished stage (model and loss heads) from its
/// final checkpoint, without its data; `None` when there is none.
pub fn restore_finished(stage: &Stage, env: &StageEnv) -> Result<Option<StageOutcome>> {
    let Some(c) = checkpoint::latest(&env.dir.join("checkpoints"), &candle_core::Device::Cpu)?
    else {
        return Ok(None);
    };
    let p: Progress = match serde_json::from_value::<Progress>(c.state) {
        Ok(p) if p.finished && p.fingerprint == env.fingerprint => p,
        _ => return Ok(None),
    };
    for (name, var) in stage_vars(stage, env, model(stage, env)?) {
        let w = c.weights.get(&name).ok_or_else(|| {
            RunError::Invalid(format!("the final checkpoint has no tensor `{name}`"))
        })?;
        var.set(w)?;
    }
    Ok(Some(p.outcome()))
}

/// Train one stage; returns the best metric values seen, the baseline and
/// the last figures.
pub fn run_stage(stage: &Stage, env: &StageEnv, log: &mut RunLog) -> Result<StageOutcome> {
    let model = model(stage, env)?;
    let mut feeds = feeds(stage, env)?;
    let plan = steps(stage, &mut feeds, env.max_steps)?;
    let mut opt = Optimizer::new(
        stage_vars(stage, env, model),
        super::build::build_optimizer(stage)?,
    )?;
    if let Some(table) = model.transformer().encoder.token_embeddings() {
        opt.keep_rows(table);
    }
    let (mut progress, start) = resume(stage, env, &mut opt, log)?;
    log.forget_stage(&stage.name, start)?;
    if start == 0 && stage.evaluate_at_start && !stage.evaluate.is_empty() {
        // The untrained baseline: logged as step 0, never kept as "best".
        progress.baseline = primaries(evaluate_stage(stage, env, 0, None, &opt, log)?);
    }
    train(
        stage,
        env,
        &mut feeds,
        &plan,
        &mut opt,
        &mut progress,
        start,
        log,
    )?;
    // The final state, so that a re-run with the same fingerprint skips the
    // stage entirely.
    progress.finished = true;
    save_checkpoint(env, &opt, plan.total, &progress, stage.checkpoint_keep)?;
    Ok(progress.outcome())
}

/// Continue from the newest checkpoint of this configuration, if any;
/// checkpoints and best weights of another configuration are removed.
fn resume(
    stage: &Stage,
    env: &StageEnv,
    opt: &mut Optimizer,
    log: &mut RunLog,
) -> Result<(Progress, u64)> {
    let ckpt_dir = env.dir.join("checkpoints");
    let mut progress = Progress {
        fingerprint: env.fingerprint.clone(),
        ..Progress::default()
    };
    let mut start = 0;
    let (latest, damaged) = checkpoint::latest_with_notes(&ckpt_dir, &candle_core::Device::Cpu)?;
    for note in damaged {
        log.note(&format!("stage `{}`: {note}", stage.name));
    }
    if let Some(c) = latest {
        match serde_json::from_value::<Progress>(c.state.clone()) {
            Ok(p) if p.fingerprint == env.fingerprint => {
                opt.restore(&c.weights, &c.moments, c.step)?;
                progress = Progress {
                    finished: false,
                    ..p
                };
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
        remove_tree(&env.dir.join("best"))?;
    }
    Ok((progress, start))
}

/// The optimizer steps `start..total`, with evaluations and checkpoints.
#[allow(clippy::too_many_arguments)]
fn train(
    stage: &Stage,
    env: &StageEnv,
    feeds: &mut [Feed],
    plan: &Steps,
    opt: &mut Optimizer,
    progress: &mut Progress,
    start: u64,
    log: &mut RunLog,
) -> Result<()> {
    if let Some(how) = crate::runtime::step::bf16::describe(stage.precision) {
        log.note(&format!("stage `{}`: {how}", stage.name));
    }
    let bar = log.stage_bar(&stage.name, plan.total, start);
    let started = Instant::now();
    let mut examples_done = 0usize;
    for k in start..plan.total {
        let first = k as usize * plan.accum;
        let last = (first + plan.accum).min(plan.total_turns.max(first + 1));
        let mut losses: Vec<(String, f32)> = Vec::new();
        let mut crossed_epoch = false;
        for g in first..last {
            let Some((name, value, n)) =
                turn(stage, env, feeds, plan, opt, g, k, (last - first) as f32)?
            else {
                continue;
            };
            crossed_epoch |= (g + 1) % plan.turns_per_epoch == 0;
            losses.push((name, value));
            examples_done += n;
        }
        let lr = opt.lr() * plan.schedule.factor(k);
        let grad_norm = opt.step(lr, stage.max_grad_norm)?;
        let step = k + 1;
        let rate = examples_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        log.step(&stage.name, step, &losses, lr, grad_norm, rate, &bar);

        let every = stage.evaluate_every.is_some_and(|n| n > 0 && step % n == 0);
        if every || crossed_epoch || step == plan.total {
            let evals = evaluate_stage(stage, env, step, Some(&mut progress.best), opt, log)?;
            if !evals.is_empty() {
                progress.last = primaries(evals);
            }
        }
        let periodic = stage
            .checkpoint_every
            .is_some_and(|n| n > 0 && step % n == 0);
        let stop = crate::runtime::signals::requested();
        if (periodic || stop) && step < plan.total {
            save_checkpoint(env, opt, step, progress, stage.checkpoint_keep)?;
        }
        if stop && step < plan.total {
            bar.finish_and_clear();
            return Err(RunError::Interrupted {
                at: Some((stage.name.clone(), step)),
                resume: format!(
                    "a checkpoint is written at step {step}: run the same command to resume from it"
                ),
            });
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// One batch (turn `g` of optimizer step `k`): forward, loss, backward,
/// gradients accumulated with weight `1 / micro`. Returns the objective,
/// the loss value and the batch size; `None` when the turn has no batch.
#[allow(clippy::too_many_arguments)]
fn turn(
    stage: &Stage,
    env: &StageEnv,
    feeds: &mut [Feed],
    plan: &Steps,
    opt: &mut Optimizer,
    g: usize,
    k: u64,
    micro: f32,
) -> Result<Option<(String, f32, usize)>> {
    let model = model(stage, env)?;
    let epoch = g / plan.turns_per_epoch;
    let turns = epoch_turns(
        stage.mixing,
        &counts_for(feeds, stage.seed, epoch)?,
        stage.seed,
        epoch,
    );
    let Some(&(o, b)) = turns.get(g % plan.turns_per_epoch) else {
        return Ok(None);
    };
    let feed = &mut feeds[o];
    let idx = feed.batches(stage.seed, epoch)?[b].clone();
    let (cols, mut inputs) = feed.batch(&idx, model.device())?;
    let dropout_seed = Rng::derived(stage.seed, &format!("dropout.turn{g}")).next_u64();
    inputs.seed = Rng::derived(stage.seed, &format!("loss.turn{g}")).next_u64();
    let cached = feed.loss.mini_batch_size().map(|mini_batch| GradCache {
        model,
        loss: feed.loss,
        prompts: (0..cols.len()).map(|i| feed.prompt(i)).collect(),
        mini_batch,
        seed: dropout_seed,
        dropout: true,
        precision: stage.precision,
    });
    let (loss, grads) = match cached {
        // GradCache accumulates the gradients itself, mini-batch by mini-batch.
        Some(step) => {
            let loss = step.run(&cols, inputs, &mut |g| opt.accumulate(g, 1.0 / micro))?;
            (loss, None)
        }
        None => {
            let pass = Pass {
                model,
                feed,
                cols: &cols,
                seed: dropout_seed,
                precision: stage.precision,
            };
            let (loss, grads) = if feed.loss.wants_layers() {
                pass.with_layers(inputs)?
            } else {
                pass.explicit(inputs, opt, micro)?
            };
            (loss, Some(grads))
        }
    };
    let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Err(RunError::NonFiniteLoss {
            stage: stage.name.clone(),
            objective: feed.name.clone(),
            step: k + 1,
            value,
        });
    }
    if let Some(grads) = grads {
        opt.accumulate(&grads, 1.0 / micro)?;
    }
    Ok(Some((feed.name.clone(), value, idx.len())))
}

/// One batch's forward and backward through autograd (the losses without
/// GradCache).
struct Pass<'a, 'f> {
    model: &'a SentenceEncoder,
    feed: &'a Feed<'f>,
    cols: &'a [Vec<&'a str>],
    /// The seed of the batch's dropout masks.
    seed: u64,
    precision: Precision,
}

impl Pass<'_, '_> {
    /// Every column's final and earlier layers' embeddings, in one
    /// forward pass each (AdaptiveLayerLoss).
    fn with_layers(&self, mut inputs: LossInputs) -> Result<(Tensor, GradStore)> {
        let ctx = Ctx::train(self.seed).with_precision(self.precision);
        let mut layers: Vec<Vec<Tensor>> = Vec::new();
        for (i, c) in self.cols.iter().enumerate() {
            let (last, earlier) = self.model.embed_layers(c, self.feed.prompt(i), &ctx)?;
            inputs.embeddings.push(last);
            layers.resize_with(earlier.len(), Vec::new);
            for (l, e) in earlier.into_iter().enumerate() {
                layers[l].push(e);
            }
        }
        inputs.layers = Some(layers);
        let loss = self.feed.loss.forward(&inputs)?;
        let grads = loss.backward()?;
        Ok((loss, grads))
    }

    /// The columns' embeddings (or the loss's own pass over the texts).
    /// Encoders with an explicit step record it in the context; their
    /// gradients are accumulated here, after the loss's backward.
    fn explicit(
        &self,
        mut inputs: LossInputs,
        opt: &mut Optimizer,
        micro: f32,
    ) -> Result<(Tensor, GradStore)> {
        let ctx = Ctx::train_explicit(self.seed)
            .with_precision(self.precision)
            .with_weight_panels(opt.weight_panels());
        let prompts: Vec<Option<&str>> =
            (0..self.cols.len()).map(|i| self.feed.prompt(i)).collect();
        let loss = if self.feed.loss.runs_models() {
            // The loss embeds (or decodes) the texts with its own models
            // and the trained one (ContrastiveTension, TSDAE).
            let batch = TextBatch {
                columns: self.cols,
                prompts,
                inputs,
            };
            self.feed.loss.forward_texts(self.model, batch, &ctx)?
        } else {
            inputs.embeddings = embed_columns(self.model, self.cols, &prompts, &ctx)?;
            self.feed.loss.forward(&inputs)?
        };
        let grads = loss.backward()?;
        if let Some(tapes) = ctx.tapes() {
            opt.accumulate_tapes(tapes, &grads, 1.0 / micro)?;
        }
        Ok((loss, grads))
    }
}

/// Every column's embeddings, each column in a context of its own
/// ([`Ctx::columns`]: its own dropout masks, its tapes backward in column
/// order). Where the encoder runs its explicit step and rayon has threads
/// to spare, the columns run at the same time: each forward then keeps a
/// core busy from start to end, where one column alone splits every
/// product and kernel over the cores and waits at each join.
fn embed_columns(
    model: &SentenceEncoder,
    cols: &[Vec<&str>],
    prompts: &[Option<&str>],
    ctx: &Ctx,
) -> Result<Vec<Tensor>> {
    use rayon::prelude::*;
    let ctxs = ctx.columns(cols.len());
    let concurrent = cols.len() > 1
        && rayon::current_num_threads() > 1
        && model.transformer().encoder.prepare_explicit(ctx)?;
    let embed = |((c, p), cx): ((&Vec<&str>, &Option<&str>), &Ctx)| model.embed_prompted(c, *p, cx);
    let out: std::result::Result<Vec<Tensor>, _> = if concurrent {
        cols.par_iter().zip(prompts).zip(&ctxs).map(embed).collect()
    } else {
        cols.iter().zip(prompts).zip(&ctxs).map(embed).collect()
    };
    Ok(out?)
}
