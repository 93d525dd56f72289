//! The optimizer of a stage: one [`UpdateRule`] (AdamW, Adam, SGD; one file
//! each) applied to every trainable tensor (the model's and the losses'
//! heads), with gradient accumulation, clipping by global norm, and the
//! no-decay rule of the Trainer sentence-transformers trains with (biases
//! and norm weights get no weight decay, whichever optimizer). Buffers live across steps and are
//! checkpointed.

pub mod adam;
pub mod adamw;
mod grad;
pub mod sgd;
mod update;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{backprop::GradStore, Tensor, Var};

use super::error::{Result, RunError};
use crate::registry::{ArgError, Args, Component};
use crate::runtime::safetensors_out::Source;
use crate::runtime::step::WeightPanels;
use grad::{Grad, RowGrad, Sink};

/// The optimizer state of one parameter: up to two buffers as long as the
/// parameter (Adam's first and second moments, SGD's momentum); a buffer
/// the rule does not use is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Moments {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Moments {
    /// Zeroed buffers for a parameter of `n` values, `slots` of them.
    pub fn zeros(n: usize, slots: usize) -> Self {
        Moments {
            m: vec![0.0; if slots >= 1 { n } else { 0 }],
            v: vec![0.0; if slots >= 2 { n } else { 0 }],
        }
    }

    /// The buffers, to update.
    pub fn as_mut(&mut self) -> MomentsMut<'_> {
        MomentsMut {
            m: &mut self.m,
            v: &mut self.v,
        }
    }
}

/// The state of a run of a parameter's values: [`Moments`]' buffers, or
/// the part of them that belongs to a slice of the parameter (an unused
/// buffer stays empty).
#[derive(Debug)]
pub struct MomentsMut<'a> {
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
}

impl MomentsMut<'_> {
    /// Split at value `at`: the state of `..at` and of `at..`.
    fn split_at(self, at: usize) -> (Self, Self) {
        let cut = |b: &mut [f32]| b.len().min(at);
        let (m1, m2) = {
            let c = cut(self.m);
            self.m.split_at_mut(c)
        };
        let (v1, v2) = {
            let c = cut(self.v);
            self.v.split_at_mut(c)
        };
        (MomentsMut { m: m1, v: v1 }, MomentsMut { m: m2, v: v2 })
    }
}

/// How one optimizer updates a parameter.
pub trait UpdateRule: Send + Sync {
    /// The base learning rate (the schedule multiplies it).
    fn lr(&self) -> f64;

    /// The update of values whose gradient and state are zero, done
    /// without reading the state, where the rule leaves such state zero
    /// (AdamW: the moments stay zero and only the decoupled weight decay
    /// moves the values; exactly what [`UpdateRule::update`] would do).
    /// `false`, with nothing done, where it does not (a weight decay added
    /// to the gradient makes the state non-zero): the caller then runs
    /// the full update.
    fn zero_state_update(&self, param: &mut [f32], at: &StepAt) -> bool {
        let _ = (param, at);
        false
    }

    /// How many state buffers a parameter needs (see [`Moments`]).
    fn slots(&self) -> usize;

    /// One update of `param` in place, from its (accumulated) gradient
    /// and its state, at the step `at` describes. Every rule is
    /// elementwise: `param` may be any run of a parameter's values (with
    /// the same run of its gradient and state), so that the optimizer can
    /// update a parameter in blocks, in parallel, or row by row.
    fn update(&self, param: &mut [f32], grad: &[f32], state: MomentsMut, at: &StepAt);
}

/// Where an update happens: what the optimizer loop knows of this step and
/// this parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepAt {
    /// The learning rate of this step (the schedule's).
    pub lr: f64,
    /// Whether this parameter gets weight decay.
    pub decay: bool,
    /// What multiplies the gradient first (clipping).
    pub grad_scale: f32,
    /// The 1-based count of optimizer steps taken, this one included.
    pub step: u64,
}

/// A [`StepAt`] from its four fields, in order (for the rules' tests).
#[cfg(test)]
pub(crate) fn at(lr: f64, decay: bool, grad_scale: f32, step: u64) -> StepAt {
    StepAt {
        lr,
        decay,
        grad_scale,
        step,
    }
}

/// A registered optimizer: its description and its constructor.
pub struct OptimizerEntry {
    pub spec: Component,
    pub build: fn(&Args) -> std::result::Result<Box<dyn UpdateRule>, ArgError>,
}

/// Whether a parameter gets weight decay, by the rule of the Trainer
/// sentence-transformers trains with (`get_decay_parameter_names`): not
/// biases and not norms, i.e. no name (lower-cased) containing `bias`,
/// `layernorm` or `rmsnorm`, with a component `norm` or one ending in
/// `_norm` (DistilBERT's `sa_layer_norm`, ModernBERT's `attn_norm`,
/// `final_norm`, `embeddings.norm`). Every norm stpipe builds is named so.
pub fn decays(param_name: &str) -> bool {
    let n = param_name.to_lowercase();
    let norm_part = n
        .split('.')
        .any(|part| part == "norm" || part.ends_with("_norm"));
    !(n.contains("bias") || n.contains("layernorm") || n.contains("rmsnorm") || norm_part)
}

/// Sum of squares of a gradient, in f64, for the global norm.
///
/// Summed one after the other, the 11 M gradients of a small model's
/// layers are a chain of dependent additions (~12 ms a step on a 3.5 GHz
/// core). Instead fixed blocks are summed in parallel, each with eight
/// running sums (one vector register), and the blocks' sums added in
/// order: the result depends only on the values, never on the threads.
pub fn sum_of_squares(grad: &[f32]) -> f64 {
    use rayon::prelude::*;
    let partials: Vec<f64> = grad.par_chunks(SQUARES_BLOCK).map(block_squares).collect();
    partials.iter().sum()
}

/// The values of a block of [`sum_of_squares`].
const SQUARES_BLOCK: usize = 1 << 16;

/// One block's sum of squares, in eight running sums (one vector
/// register) added at the end.
fn block_squares(g: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    squares_into(g, &mut acc);
    acc.iter().sum::<f64>()
}

simd_dispatch!(fn squares_into(g: &[f32], acc: &mut [f64; 8]) => squares_into_generic);

/// `acc[i % 8] += g[i]^2` (in f64), lane by lane.
#[inline(always)]
fn squares_into_generic(g: &[f32], acc: &mut [f64; 8]) {
    let mut lanes = g.chunks_exact(8);
    for c in &mut lanes {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v as f64) * (v as f64);
        }
    }
    for (a, &v) in acc.iter_mut().zip(lanes.remainder()) {
        *a += (v as f64) * (v as f64);
    }
}

/// The factor `clip_grad_norm_` multiplies every gradient by, given the
/// global L2 norm of all gradients: `min(1, max_norm / (norm + 1e-6))`.
pub fn clip_factor(total_norm: f64, max_norm: f64) -> f32 {
    let coef = max_norm / (total_norm + 1e-6);
    coef.min(1.0) as f32
}

/// One trainable tensor and its optimizer buffers.
struct Param {
    name: String,
    var: Var,
    decay: bool,
    moments: Moments,
    /// Gradient accumulated over the micro-batches of the current step.
    grad: Grad,
}

impl Param {
    /// A gradient kept as rows becomes dense, keeping what it holds (it
    /// was asked for as a dense buffer).
    fn make_dense(&mut self) {
        if let Grad::Rows(r) = &self.grad {
            self.grad = Grad::Dense(r.to_dense(self.var.elem_count()));
        }
    }
}

/// An update rule over named variables, with `fit`'s semantics.
pub struct Optimizer {
    params: Vec<Param>,
    /// Each parameter's index by its variable.
    by_var: HashMap<candle_core::TensorId, usize>,
    rule: Box<dyn UpdateRule>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The panels of the weights the explicit step's forward reads, written
    /// by each update (where `gemm` runs its AVX-512 kernels).
    panels: Option<Arc<WeightPanels>>,
}

impl Optimizer {
    pub fn new(vars: Vec<(String, Var)>, rule: Box<dyn UpdateRule>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        let mut params = Vec::with_capacity(vars.len());
        let mut by_var = HashMap::new();
        for (name, var) in vars {
            if !seen.insert(name.clone()) {
                return Err(RunError::Invalid(format!(
                    "two trainable tensors share the name `{name}`"
                )));
            }
            let n = var.elem_count();
            by_var.insert(var.as_tensor().id(), params.len());
            params.push(Param {
                decay: decays(&name),
                name,
                var,
                moments: Moments::zeros(n, rule.slots()),
                grad: Grad::Dense(vec![0.0; n]),
            });
        }
        Ok(Optimizer {
            params,
            by_var,
            rule,
            steps: 0,
            panels: WeightPanels::new(),
        })
    }

    /// Keep the gradient of `var`, a `[rows, width]` table, as the rows a
    /// step touched (no dense buffer as large as the table); the update
    /// keeps the dense semantics.
    pub fn keep_rows(&mut self, var: &Var) {
        let Some(&i) = self.by_var.get(&var.as_tensor().id()) else {
            return;
        };
        if let [_, width] = var.dims() {
            let width = *width;
            self.params[i].grad = Grad::Rows(RowGrad::new(width));
        }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        self.rule.lr()
    }

    /// Add `scale` times the gradients of `grads` to the accumulated ones.
    pub fn accumulate(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        for p in &mut self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let g = g.flatten_all()?.to_vec1::<f32>()?;
                match &mut p.grad {
                    Grad::Dense(acc) => {
                        for (acc, x) in acc.iter_mut().zip(g) {
                            *acc += scale * x;
                        }
                    }
                    Grad::Rows(r) => {
                        let w = r.width.max(1);
                        for (row, vals) in g.chunks(w).enumerate() {
                            if vals.iter().any(|v| *v != 0.0) {
                                r.add(row as u32, vals, scale);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Run the explicit backward passes recorded in `tapes` with the output
    /// gradients of `grads`, adding `scale` times the encoder's gradients.
    pub fn accumulate_tapes(
        &mut self,
        tapes: &crate::runtime::step::Tapes,
        grads: &GradStore,
        scale: f32,
    ) -> Result<()> {
        let mut sink = Sink { opt: self, scale };
        tapes.backward(grads, &mut sink)?;
        Ok(())
    }

    /// The store of weight panels this optimizer writes, for the training
    /// contexts' forwards ([`Ctx::with_weight_panels`](crate::runtime::ops::Ctx::with_weight_panels)).
    pub fn weight_panels(&self) -> Option<Arc<WeightPanels>> {
        self.panels.clone()
    }

    /// The global L2 norm of the accumulated gradients.
    pub fn grad_norm(&self) -> f64 {
        update::grad_norm(&self.params)
    }

    /// Clip (when `max_grad_norm > 0`), take one step at learning rate
    /// `lr`, and clear the accumulated gradients. Returns the gradient norm
    /// before clipping. Parameters are updated in place in their storage,
    /// all of them in one parallel pass ([`update`]).
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> Result<f64> {
        let norm = self.grad_norm();
        let grad_scale = if max_grad_norm > 0.0 {
            clip_factor(norm, max_grad_norm)
        } else {
            1.0
        };
        self.steps += 1;
        let step = self.steps;
        let at = |p: &Param| StepAt {
            lr,
            decay: p.decay,
            grad_scale,
            step,
        };
        update::update_all(
            &mut self.params,
            self.rule.as_ref(),
            at,
            self.panels.as_deref(),
        )?;
        Ok(norm)
    }

    /// Current values of every parameter, by name: an owned copy of
    /// [`Self::weights_to_save`], for tests that compare optimizers.
    #[cfg(test)]
    pub(crate) fn weights(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect()
    }

    /// The optimizer state by parameter name: an owned copy of
    /// [`Self::moments_to_save`], for tests that compare optimizers.
    #[cfg(test)]
    pub(crate) fn moments(&self) -> HashMap<String, Moments> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.moments.clone()))
            .collect()
    }

    /// The weights by name, borrowed, for a checkpoint written from them.
    pub(crate) fn weights_to_save(&self) -> Vec<(&str, Source<'_>)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), Source::Tensor(p.var.as_tensor())))
            .collect()
    }

    /// The optimizer state by parameter name, borrowed, for a checkpoint.
    pub(crate) fn moments_to_save(&self) -> Vec<(&str, &Moments)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), &p.moments))
            .collect()
    }

    /// Restore weights and state as a checkpoint holds them (written from
    /// [`Self::weights_to_save`] and [`Self::moments_to_save`]); every
    /// parameter must be present with its shape.
    pub fn restore(
        &mut self,
        weights: &HashMap<String, Tensor>,
        moments: &HashMap<String, Moments>,
        steps: u64,
    ) -> Result<()> {
        // The weights change here, not in an update.
        if let Some(store) = &self.panels {
            store.forget();
        }
        for p in &mut self.params {
            let w = weights.get(&p.name).ok_or_else(|| {
                RunError::Invalid(format!("the checkpoint has no tensor `{}`", p.name))
            })?;
            if w.shape() != p.var.shape() {
                return Err(RunError::Invalid(format!(
                    "checkpoint tensor `{}` has shape {:?}, the model {:?}",
                    p.name,
                    w.dims(),
                    p.var.dims()
                )));
            }
            p.var.set(w)?;
            let m = moments.get(&p.name).ok_or_else(|| {
                RunError::Invalid(format!("the checkpoint has no moments for `{}`", p.name))
            })?;
            if m.m.len() != p.moments.m.len() || m.v.len() != p.moments.v.len() {
                return Err(RunError::Invalid(format!(
                    "checkpoint optimizer state of `{}` has the wrong size",
                    p.name
                )));
            }
            p.moments = m.clone();
            if let Grad::Rows(r) = &mut p.grad {
                r.mark_live(&p.moments.m, &p.moments.v);
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
