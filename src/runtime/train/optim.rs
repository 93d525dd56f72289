//! The optimizer of a stage: AdamW over every trainable tensor (the model's
//! and the losses' heads), with gradient accumulation and clipping by global
//! norm, keeping its buffers alive across steps.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use super::adamw::{self, AdamWConfig, Moments};
use super::error::{Result, RunError};

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

/// AdamW with `fit` semantics over named variables.
pub struct Optimizer {
    params: Vec<Param>,
    pub config: AdamWConfig,
    /// Optimizer steps taken.
    pub steps: u64,
}

impl Optimizer {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
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
                decay: adamw::decays(&name),
                name,
                var,
                moments: Moments::zeros(n),
                grad: vec![0.0; n],
                value: Vec::with_capacity(n),
            });
        }
        Ok(Optimizer {
            params,
            config,
            steps: 0,
        })
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
            .map(|p| adamw::sum_of_squares(&p.grad))
            .sum::<f64>()
            .sqrt()
    }

    /// Clip (when `max_grad_norm > 0`), take one AdamW step at learning rate
    /// `lr`, and clear the accumulated gradients. Returns the gradient norm
    /// before clipping.
    pub fn step(&mut self, lr: f64, max_grad_norm: f64) -> Result<f64> {
        let norm = self.grad_norm();
        let scale = if max_grad_norm > 0.0 {
            adamw::clip_factor(norm, max_grad_norm)
        } else {
            1.0
        };
        self.steps += 1;
        let cfg = self.config;
        for p in &mut self.params {
            let t = p.var.as_tensor();
            p.value.clear();
            p.value.extend(t.flatten_all()?.to_vec1::<f32>()?);
            let wd = if p.decay { cfg.weight_decay } else { 0.0 };
            adamw::step_in_place(
                &mut p.value,
                &p.grad,
                &mut p.moments,
                &cfg,
                lr,
                wd,
                scale,
                self.steps,
            );
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

    /// The moments by parameter name (for checkpoints).
    pub fn moments(&self) -> HashMap<String, Moments> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.moments.clone()))
            .collect()
    }

    /// Restore weights and moments written by [`Self::weights`] and
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
            if m.m.len() != p.grad.len() || m.v.len() != p.grad.len() {
                return Err(RunError::Invalid(format!(
                    "checkpoint moments of `{}` have the wrong size",
                    p.name
                )));
            }
            p.moments = m.clone();
        }
        self.steps = steps;
        Ok(())
    }
}
