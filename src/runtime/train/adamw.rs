//! AdamW as one fused in-place pass over a parameter, its gradient and its
//! two moment buffers, with the exact update of `torch.optim.AdamW`
//! (decoupled weight decay, bias-corrected moments). The moments are plain
//! `Vec<f32>` owned here, so the whole optimizer state can be checkpointed.
//!
//! Gradient clipping by global norm (`clip_grad_norm_`) is folded into the
//! same pass: the caller computes the clip factor once for all parameters
//! and passes it as `grad_scale`.

use crate::runtime::fp_env::flush;

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

/// Whether a parameter gets weight decay: sentence-transformers exempts
/// biases and LayerNorm weights (`no_decay = ["bias", "LayerNorm.bias",
/// "LayerNorm.weight"]`).
pub fn decays(param_name: &str) -> bool {
    !(param_name.contains("bias")
        || param_name.contains("LayerNorm.weight")
        || param_name.contains("layer_norm.weight"))
}

/// First and second moments of one parameter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Moments {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Moments {
    pub fn zeros(n: usize) -> Self {
        Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
}

/// One AdamW step for one parameter.
///
/// * `step` is the 1-based count of optimizer steps taken, this one included;
/// * `lr` is the scheduled learning rate for this step;
/// * `weight_decay` is 0 for parameters that [`decays`] exempts;
/// * `grad_scale` multiplies the gradient first (clipping; 1 for none).
#[allow(clippy::too_many_arguments)]
pub fn step_in_place(
    param: &mut [f32],
    grad: &[f32],
    moments: &mut Moments,
    cfg: &AdamWConfig,
    lr: f64,
    weight_decay: f64,
    grad_scale: f32,
    step: u64,
) {
    debug_assert_eq!(param.len(), grad.len());
    debug_assert_eq!(param.len(), moments.m.len());
    let t = step.max(1) as i32;
    let bc1 = 1.0 - cfg.beta1.powi(t);
    let bc2 = 1.0 - cfg.beta2.powi(t);
    let step_size = (lr / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let decay = (1.0 - lr * weight_decay) as f32;
    let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
    let (one_b1, one_b2) = (1.0 - b1, 1.0 - b2);
    let eps = cfg.eps as f32;
    let Moments { m, v } = moments;
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = g * grad_scale;
        // Moments of rarely seen rows (word embeddings) decay towards the
        // subnormal range; flushing them keeps this loop at full speed on
        // CPUs that trap on subnormals (see `runtime::fp_env`).
        *m = flush(b1 * *m + one_b1 * g);
        *v = flush(b2 * *v + one_b2 * g * g);
        let denom = v.sqrt() * inv_sqrt_bc2 + eps;
        *p = *p * decay - step_size * *m / denom;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_steps_match_the_torch_update_by_hand() {
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let mut p = vec![1.0f32, -2.0];
        let mut mo = Moments::zeros(2);
        step_in_place(&mut p, &[0.5, 0.0], &mut mo, &cfg, 0.1, 0.5, 1.0, 1);
        // Step 1: m = 0.05, v = 0.00025; bias-corrected m_hat = 0.5,
        // sqrt(v_hat) = 0.5, so the Adam move is lr * 1 = 0.1 (less eps);
        // decay first multiplies by 1 - 0.1 * 0.5 = 0.95.
        let expected0 = 0.95 - 0.1 * 0.5 / (0.5 + 1e-8);
        assert!((p[0] as f64 - expected0).abs() < 1e-6, "{}", p[0]);
        // A zero gradient only decays.
        assert!((p[1] as f64 + 1.9).abs() < 1e-6, "{}", p[1]);

        // Step 2 with gradient 0.25 (m, v carried over).
        let before = p[0] as f64;
        step_in_place(&mut p, &[0.25, 0.0], &mut mo, &cfg, 0.1, 0.5, 1.0, 2);
        let m = 0.9 * 0.05 + 0.1 * 0.25;
        let v: f64 = 0.999 * 0.00025 + 0.001 * 0.0625;
        let (bc1, bc2) = (1.0 - 0.9f64.powi(2), 1.0 - 0.999f64.powi(2));
        let expected = before * 0.95 - (0.1 / bc1) * m / (v.sqrt() / bc2.sqrt() + 1e-8);
        assert!(
            (p[0] as f64 - expected).abs() < 1e-6,
            "{} vs {expected}",
            p[0]
        );
    }

    #[test]
    fn grad_scale_is_applied_before_the_moments() {
        let cfg = AdamWConfig::default();
        let mut a = vec![0.3f32; 4];
        let mut b = a.clone();
        let (mut ma, mut mb) = (Moments::zeros(4), Moments::zeros(4));
        let g = [1.0f32, -2.0, 3.0, 0.5];
        let half: Vec<f32> = g.iter().map(|x| x * 0.5).collect();
        step_in_place(&mut a, &g, &mut ma, &cfg, 1e-3, 0.0, 0.5, 1);
        step_in_place(&mut b, &half, &mut mb, &cfg, 1e-3, 0.0, 1.0, 1);
        assert_eq!(a, b);
        assert_eq!(ma, mb);
    }

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
    }
}
