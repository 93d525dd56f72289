//! The batches of a stage: each objective's examples, sampled into batches
//! epoch by epoch, and the turns that interleave the objectives.
//!
//! Everything here is a pure function of the stage's seed and the turn's
//! index: the batches of an epoch come from a generator derived from
//! (seed, objective, epoch), so a resumed run takes exactly the batches an
//! uninterrupted one would.

use candle_core::{Device, Tensor};

use crate::check::types::{Mixing, Stage, Warmup};
use crate::runtime::data::{Dataset, Label};
use crate::runtime::loss::{Loss, LossInputs};

use super::error::{Result, RunError};
use super::rng::Rng;
use super::sampler::{epoch_batches, SampleKeys, Sampler};
use super::schedule::Schedule;
use super::stage::StageEnv;
use super::teacher::Teaching;

/// Objective `o`'s batches, epoch by epoch.
pub(super) struct Feed<'a> {
    pub name: String,
    data: &'a Dataset,
    pub loss: &'a dyn Loss,
    sampler: Sampler,
    batch_size: usize,
    shuffle: bool,
    text_hashes: Option<Vec<Vec<u64>>>,
    classes: Option<Vec<i64>>,
    /// What a teacher model gives each example (distillation).
    teacher: Option<Teaching>,
    cache: Option<(usize, Vec<Vec<usize>>)>,
    /// The prompt of each text column, in column order.
    prompts: Vec<Option<String>>,
}

fn hash_text(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Feed<'_> {
    /// The prompt prepended to text column `c`.
    pub fn prompt(&self, c: usize) -> Option<&str> {
        self.prompts.get(c).and_then(|p| p.as_deref())
    }

    pub fn batches(&mut self, seed: u64, epoch: usize) -> Result<&[Vec<usize>]> {
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

    /// The texts of a batch by column, and what the loss sees besides.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Result<(Vec<Vec<&str>>, LossInputs)> {
        let ncols = self.data.text_columns.len();
        let cols: Vec<Vec<&str>> = (0..ncols)
            .map(|c| {
                idx.iter()
                    .map(|&i| self.data.examples[i].texts[c].as_str())
                    .collect()
            })
            .collect();
        let mut inputs = LossInputs::default();
        let labels: Vec<Option<&Label>> = idx
            .iter()
            .map(|&i| self.data.examples[i].label.as_ref())
            .collect();
        if labels.iter().all(Option::is_some) && !labels.is_empty() {
            match labels[0] {
                Some(Label::Scores(first)) => {
                    // One row of scores per example: `[batch, n]`. Every
                    // row of a source has the same length (`take`).
                    let n = first.len();
                    let mut v: Vec<f32> = Vec::with_capacity(n * labels.len());
                    for l in &labels {
                        match l {
                            Some(Label::Scores(s)) if s.len() == n => v.extend_from_slice(s),
                            _ => {
                                return Err(RunError::Invalid(format!(
                                    "objective `{}`: the rows' score lists differ in length",
                                    self.name
                                )))
                            }
                        }
                    }
                    inputs.scores = Some(Tensor::from_vec(v, (idx.len(), n), device)?);
                }
                Some(Label::Score(_)) => {
                    let v: Vec<f32> = labels
                        .iter()
                        .map(|l| match l {
                            Some(Label::Score(s)) => *s,
                            Some(Label::Class(c)) => *c as f32,
                            Some(Label::Scores(_)) | None => 0.0,
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
                            Some(Label::Scores(_)) | None => 0,
                        })
                        .collect();
                    inputs.labels = Some(Tensor::from_vec(v, idx.len(), device)?);
                }
            }
        }
        match &self.teacher {
            Some(Teaching::Embeddings(t)) => inputs.teacher = Some(rows_of(t, idx, device)?),
            Some(Teaching::Scores(s)) => inputs.scores = Some(rows_of(s, idx, device)?),
            Some(Teaching::Guide { emb, ids }) => {
                inputs.guide = Some(Teaching::guide_rows(emb, ids, idx, device)?)
            }
            None => {}
        }
        Ok((cols, inputs))
    }
}

/// Rows `idx` of a per-example table, as a `[idx.len(), width]` tensor.
fn rows_of(table: &[Vec<f32>], idx: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let width = table.first().map_or(0, Vec::len);
    let rows: Vec<f32> = idx.iter().flat_map(|&i| table[i].iter().copied()).collect();
    Tensor::from_vec(rows, (idx.len(), width), device)
}

/// The feeds of a stage's objectives (teacher embeddings computed once).
pub(super) fn feeds<'a>(stage: &Stage, env: &'a StageEnv) -> Result<Vec<Feed<'a>>> {
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
        let teacher = super::teacher::teach(o, data, env)?;
        feeds.push(Feed {
            name: name.clone(),
            data,
            loss: loss.as_ref(),
            sampler: o.sampler,
            batch_size: o.batch_size.max(1),
            shuffle: o.shuffle,
            text_hashes: (o.sampler == Sampler::NoDuplicates).then(|| {
                data.examples
                    .iter()
                    .map(|e| e.texts.iter().map(|t| hash_text(t)).collect())
                    .collect()
            }),
            classes: data.classes(),
            teacher,
            cache: None,
            prompts: (0..data.text_columns.len())
                .map(|i| data.column_prompt(i, &o.prompts).map(str::to_string))
                .collect(),
        });
    }
    Ok(feeds)
}

/// The objective and batch of each turn of an epoch.
pub(super) fn epoch_turns(
    mixing: Mixing,
    counts: &[usize],
    seed: u64,
    epoch: usize,
) -> Vec<(usize, usize)> {
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

pub(super) fn counts_for(feeds: &mut [Feed], seed: u64, epoch: usize) -> Result<Vec<usize>> {
    feeds
        .iter_mut()
        .map(|f| f.batches(seed, epoch).map(<[_]>::len))
        .collect()
}

/// How long a stage runs.
#[derive(Debug)]
pub(super) struct Steps {
    pub turns_per_epoch: usize,
    /// Batches accumulated per optimizer step.
    pub accum: usize,
    /// Optimizer steps.
    pub total: u64,
    /// Batches over all steps.
    pub total_turns: usize,
    pub schedule: Schedule,
}

/// The stage's length and schedule, from its data and settings
/// (`max_steps` is the run's `--max-steps` cap).
pub(super) fn steps(stage: &Stage, feeds: &mut [Feed], max_steps: Option<u64>) -> Result<Steps> {
    let counts = counts_for(feeds, stage.seed, 0)?;
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
    if let Some(cap) = max_steps {
        total = total.min(cap);
    }
    let warmup = match stage.warmup {
        Warmup::Steps(s) => s,
        Warmup::Fraction(f) => Schedule::warmup_from_fraction(f, total),
    };
    let total_turns = if stage.max_steps.is_some() || max_steps.is_some() {
        total as usize * accum
    } else {
        (stage.epochs * turns_per_epoch).min(total as usize * accum)
    };
    Ok(Steps {
        turns_per_epoch,
        accum,
        total,
        total_turns,
        schedule: Schedule::new(super::build::build_schedule(stage)?, warmup, total),
    })
}
