//! AdamW (`torch.optim.AdamW`): decoupled weight decay and bias-corrected
//! moments, as one fused in-place pass over a parameter, its gradient and
//! its two moment buffers. The default of sentence-transformers' `fit`.

use super::{MomentsMut, OptimizerEntry, StepAt, UpdateRule};
use crate::registry::{opt, ArgError, ArgType::*, Args, Component, Family};
use crate::runtime::fp_env::flush;

pub(super) const BETAS: crate::registry::ArgSpec = opt(
    "betas",
    FloatPair,
    "[0.9, 0.999]",
    "moment decay rates, each in [0, 1)",
);
/// The learning rate of the Adam family (sentence-transformers' default).
pub(super) const LR: crate::registry::ArgSpec =
    opt("lr", Float, "2e-5", "learning rate").above(0.0);
pub(super) const EPS: crate::registry::ArgSpec =
    opt("eps", Float, "1e-8", "numerical stabiliser").above(0.0);

pub const ENTRY: OptimizerEntry = OptimizerEntry {
    spec: Component {
        name: "AdamW",
        family: Family::Optimizer,
        doc: "Adam with decoupled weight decay (not applied to biases and norm weights), as in sentence-transformers.",
        args: &[
            LR,
            opt("weight_decay", Float, "0.01", "decoupled weight decay").at_least(0.0),
            BETAS,
            EPS,
        ],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn UpdateRule>, ArgError> {
    Ok(Box::new(AdamWConfig::from_args(a)?))
}

/// Hyper-parameters; defaults are those of sentence-transformers' `fit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 2e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// `(beta1, beta2)` from a `betas` argument.
pub(super) fn betas(a: &Args) -> Result<(f64, f64), ArgError> {
    let b = a.f64_list("betas")?;
    match b.as_slice() {
        [b1, b2] => Ok((*b1, *b2)),
        _ => Err(ArgError {
            component: a.component_name().to_string(),
            name: "betas".into(),
            problem: "is not a pair".into(),
        }),
    }
}

impl AdamWConfig {
    pub(super) fn from_args(a: &Args) -> Result<Self, ArgError> {
        let (beta1, beta2) = betas(a)?;
        Ok(AdamWConfig {
            lr: a.f64("lr")?,
            weight_decay: a.f64("weight_decay")?,
            beta1,
            beta2,
            eps: a.f64("eps")?,
        })
    }
}

/// The bias-corrected Adam move of one parameter in place, on the gradient
/// `grad * grad_scale + l2 * param` (`l2` is Adam's L2 term, 0 for AdamW);
/// `decay` multiplies the parameter first (AdamW's decoupled decay; 1 for
/// none).
#[allow(clippy::too_many_arguments)]
pub(super) fn adam_step(
    param: &mut [f32],
    (grad, grad_scale, l2): (&[f32], f32, f32),
    moments: MomentsMut,
    cfg: &AdamWConfig,
    lr: f64,
    decay: f32,
    step: u64,
) {
    let t = step.max(1) as i32;
    let bc1 = 1.0 - cfg.beta1.powi(t);
    let bc2 = 1.0 - cfg.beta2.powi(t);
    let k = AdamConsts {
        step_size: (lr / bc1) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        b1: cfg.beta1 as f32,
        b2: cfg.beta2 as f32,
        eps: cfg.eps as f32,
        decay,
        grad_scale,
        l2,
    };
    let MomentsMut { m, v } = moments;
    adam_loop(param, grad, m, v, k);
}

/// The per-step constants of [`adam_loop`].
#[derive(Clone, Copy)]
struct AdamConsts {
    step_size: f32,
    inv_sqrt_bc2: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    decay: f32,
    grad_scale: f32,
    l2: f32,
}

simd_dispatch!(fn adam_loop(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: AdamConsts) => adam_loop_generic);

#[inline(always)]
fn adam_loop_generic(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: AdamConsts) {
    let (one_b1, one_b2) = (1.0 - k.b1, 1.0 - k.b2);
    for (((p, m), v), &g) in param
        .iter_mut()
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(grad)
    {
        let g = if k.l2 == 0.0 {
            g * k.grad_scale
        } else {
            g * k.grad_scale + k.l2 * *p
        };
        // Moments of rarely seen rows (word embeddings) decay towards the
        // subnormal range; flushing them keeps this loop at full speed on
        // CPUs that trap on subnormals (see `runtime::fp_env`).
        *m = flush(k.b1 * *m + one_b1 * g);
        *v = flush(k.b2 * *v + one_b2 * g * g);
        let denom = v.sqrt() * k.inv_sqrt_bc2 + k.eps;
        *p = *p * k.decay - k.step_size * *m / denom;
    }
}

impl AdamWConfig {
    /// The decoupled weight decay's factor at `at`.
    fn shrink(&self, at: &StepAt) -> f32 {
        let wd = if at.decay { self.weight_decay } else { 0.0 };
        (1.0 - at.lr * wd) as f32
    }
}

impl UpdateRule for AdamWConfig {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn slots(&self) -> usize {
        2
    }

    /// Zero moments stay zero under a zero gradient (`b * 0 + (1 - b) * 0`)
    /// and the move `step_size * 0 / (0 + eps)` is zero: only the decay
    /// `p * shrink` is left, the same bits as the full update.
    fn zero_state_update(&self, param: &mut [f32], at: &StepAt) -> bool {
        let shrink = self.shrink(at);
        if shrink != 1.0 {
            param.iter_mut().for_each(|p| *p *= shrink);
        }
        true
    }

    fn update(&self, param: &mut [f32], grad: &[f32], state: MomentsMut, at: &StepAt) {
        let StepAt {
            lr,
            grad_scale,
            step,
            ..
        } = *at;
        debug_assert_eq!(param.len(), grad.len());
        let shrink = self.shrink(at);
        adam_step(
            param,
            (grad, grad_scale, 0.0),
            state,
            self,
            lr,
            shrink,
            step,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::train::optim::{at, Moments};

    #[test]
    fn first_steps_match_the_torch_update_by_hand() {
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let mut p = vec![1.0f32, -2.0];
        let mut mo = Moments::zeros(2, 2);
        cfg.update(&mut p, &[0.5, 0.0], mo.as_mut(), &at(0.1, true, 1.0, 1));
        // Step 1: m = 0.05, v = 0.00025; bias-corrected m_hat = 0.5,
        // sqrt(v_hat) = 0.5, so the Adam move is lr * 1 = 0.1 (less eps);
        // decay first multiplies by 1 - 0.1 * 0.5 = 0.95.
        let expected0 = 0.95 - 0.1 * 0.5 / (0.5 + 1e-8);
        assert!((p[0] as f64 - expected0).abs() < 1e-6, "{}", p[0]);
        // A zero gradient only decays.
        assert!((p[1] as f64 + 1.9).abs() < 1e-6, "{}", p[1]);

        // Step 2 with gradient 0.25 (m, v carried over).
        let before = p[0] as f64;
        cfg.update(&mut p, &[0.25, 0.0], mo.as_mut(), &at(0.1, true, 1.0, 2));
        let m = 0.9 * 0.05 + 0.1 * 0.25;
        let v: f64 = 0.999 * 0.00025 + 0.001 * 0.0625;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
        let expected = before * 0.95 - (0.1 / bc1) * m / (v.sqrt() / bc2.sqrt() + 1e-8);
        assert!(
            (p[0] as f64 - expected).abs() < 1e-6,
            "{} vs {expected}",
            p[0]
        );
        // No decay for exempt parameters.
        let mut q = vec![1.0f32];
        cfg.update(
            &mut q,
            &[0.0],
            Moments::zeros(1, 2).as_mut(),
            &at(0.1, false, 1.0, 1),
        );
        assert_eq!(q[0], 1.0);
    }

    #[test]
    fn grad_scale_is_applied_before_the_moments() {
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        };
        let mut a = vec![0.3f32; 4];
        let mut b = a.clone();
        let (mut ma, mut mb) = (Moments::zeros(4, 2), Moments::zeros(4, 2));
        let g = [1.0f32, -2.0, 3.0, 0.5];
        let half: Vec<f32> = g.iter().map(|x| x * 0.5).collect();
        cfg.update(&mut a, &g, ma.as_mut(), &at(1e-3, true, 0.5, 1));
        cfg.update(&mut b, &half, mb.as_mut(), &at(1e-3, true, 1.0, 1));
        assert_eq!(a, b);
        assert_eq!(ma, mb);
    }
}
