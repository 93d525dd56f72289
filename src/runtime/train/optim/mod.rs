//! The optimizer of a stage: one [`UpdateRule`] (AdamW, Adam, SGD; one file
//! each) applied to every trainable tensor (the model's and the losses'
//! heads), with gradient accumulation, clipping by global norm, and the
//! no-decay rule of the Trainer sentence-transformers trains with (biases
//! and norm weights get no weight decay, whichever optimizer). Buffers live across steps and are
//! checkpointed.

pub mod adam;
pub mod adamw;
pub mod sgd;

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use super::error::{Result, RunError};
use crate::registry::{ArgError, Args, Component};

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
}

/// How one optimizer updates a parameter.
pub trait UpdateRule: Send + Sync {
    /// The base learning rate (the schedule multiplies it).
    fn lr(&self) -> f64;

    /// How many state buffers a parameter needs (see [`Moments`]).
    fn slots(&self) -> usize;

    /// One update of `param` in place, from its (accumulated) gradient
    /// and its state, at the step `at` describes.
    fn update(&self, param: &mut [f32], grad: &[f32], state: &mut Moments, at: &StepAt);
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

/// Sum of squares of a gradient, for the global norm.
pub fn sum_of_squares(grad: &[f32]) -> f64 {
    grad.iter().map(|&g| (g as f64) * (g as f64)).sum()
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
    grad: Vec<f32>,
    /// Scratch copy of the parameter's values.
    value: Vec<f32>,
}

/// An update rule over named variables, with `fit`'s semantics.
pub struct Optimizer {
    params: Vec<Param>,
    rule: Box<dyn UpdateRule>,
    /// Optimizer steps taken.
    pub steps: u64,
}

impl Optimizer {
    pub fn new(vars: Vec<(String, Var)>, rule: Box<dyn UpdateRule>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        let mut params = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !seen.insert(name.clone()) {
                return Err(RunError::Invalid(format!(
                    "two trainable tensors share the name `{name}`"
                )));
            }
            let n = var.elem_count();
            params.push(Param {
                decay: decays(&name),
                name,
                var,
                moments: Moments::zeros(n, rule.slots()),
                grad: vec![0.0; n],
                value: Vec::with_capacity(n),
            });
        }
        Ok(Optimizer {
            params,
            rule,
            steps: 0,
        })
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
                for (acc, x) in p.grad.iter_mut().zip(g) {
                    *acc += scale * x;
                }
            }
        }
        Ok(())
    }

    /// The global L2 norm of the accumulated gradients.
    pub fn grad_norm(&self) -> f64 {
        self.params
            .iter()
            .map(|p| sum_of_squares(&p.grad))
            .sum::<f64>()
            .sqrt()
    }

    /// Clip (when `max_grad_norm > 0`), take one step at learning rate
    /// `lr`, and clear the accumulated gradients. Returns the gradient norm
    /// before clipping.
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> Result<f64> {
        let norm = self.grad_norm();
        let scale = if max_grad_norm > 0.0 {
            clip_factor(norm, max_grad_norm)
        } else {
            1.0
        };
        self.steps += 1;
        for p in &mut self.params {
            let t = p.var.as_tensor();
            p.value.clear();
            p.value.extend(t.flatten_all()?.to_vec1::<f32>()?);
            let at = StepAt {
                lr,
                decay: p.decay,
                grad_scale: scale,
                step: self.steps,
            };
            self.rule.update(&mut p.value, &p.grad, &mut p.moments, &at);
            let updated = Tensor::from_slice(&p.value, t.shape(), t.device())?;
            p.var.set(&updated)?;
            p.grad.iter_mut().for_each(|g| *g = 0.0);
        }
        Ok(norm)
    }

    /// Current values of every parameter, by name (for checkpoints).
    pub fn weights(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect()
    }

    /// The optimizer state by parameter name (for checkpoints).
    pub fn moments(&self) -> HashMap<String, Moments> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.moments.clone()))
            .collect()
    }

    /// Restore weights and state written by [`Self::weights`] and
    /// [`Self::moments`]; every parameter must be present with its shape.
    pub fn restore(
        &mut self,
        weights: &HashMap<String, Tensor>,
        moments: &HashMap<String, Moments>,
        steps: u64,
    ) -> Result<()> {
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
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_and_decay_rules() {
        let norm = (sum_of_squares(&[3.0, 4.0]) + sum_of_squares(&[0.0])).sqrt();
        assert_eq!(norm, 5.0);
        assert!((clip_factor(norm, 1.0) - 0.2).abs() < 1e-6);
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("encoder.layer.0.output.LayerNorm.weight"));
        assert!(!decays("embeddings.LayerNorm.weight"));
        assert!(!decays("transformer.layer.0.sa_layer_norm.weight"));
        assert!(!decays("layers.1.attn_norm.weight"));
        assert!(!decays("embeddings.norm.weight"));
        assert!(!decays("final_norm.weight"));
        assert!(decays("layers.0.attn.Wqkv.weight"));
        assert!(!decays("encoder.relative_attention_bias.weight"));
        assert!(decays("normalizer.weight"));
    }
}
