//! Adam (`torch.optim.Adam`): bias-corrected moments, with weight decay as
//! an L2 term added to the gradient (`g + weight_decay * p`), not decoupled
//! as in AdamW.

use super::adamw::{adam_step, betas, AdamWConfig, BETAS, EPS, LR};
use super::{MomentsMut, OptimizerEntry, StepAt, UpdateRule};
use crate::registry::{opt, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: OptimizerEntry = OptimizerEntry {
    spec: Component {
        name: "Adam",
        family: Family::Optimizer,
        doc: "Adam with L2 weight decay added to the gradient (not applied to biases and norm weights).",
        args: &[
            LR,
            opt("weight_decay", Float, "0.0", "L2 penalty").at_least(0.0),
            BETAS,
            EPS,
        ],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn UpdateRule>, ArgError> {
    let (beta1, beta2) = betas(a)?;
    Ok(Box::new(Adam(AdamWConfig {
        lr: a.f64("lr")?,
        weight_decay: a.f64("weight_decay")?,
        beta1,
        beta2,
        eps: a.f64("eps")?,
    })))
}

/// Adam's hyper-parameters (the same as AdamW's; only the decay differs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam(pub AdamWConfig);

impl UpdateRule for Adam {
    fn lr(&self) -> f64 {
        self.0.lr
    }

    fn slots(&self) -> usize {
        2
    }

    fn update(&self, param: &mut [f32], grad: &[f32], state: MomentsMut, at: &StepAt) {
        let StepAt {
            lr,
            decay,
            grad_scale,
            step,
        } = *at;
        let wd = if decay {
            self.0.weight_decay as f32
        } else {
            0.0
        };
        adam_step(param, (grad, grad_scale, wd), state, &self.0, lr, 1.0, step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::train::optim::{at, Moments};

    #[test]
    fn l2_decay_enters_the_moments() {
        // p = 1, g = 0, weight_decay 0.5: the gradient becomes 0.5, so the
        // first step moves by lr (m_hat / sqrt(v_hat) = 1), with no
        // decoupled shrink: 1 - 0.1.
        let adam = Adam(AdamWConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamWConfig::default()
        });
        let mut p = vec![1.0f32];
        let mut m = Moments::zeros(1, 2);
        adam.update(&mut p, &[0.0], m.as_mut(), &at(0.1, true, 1.0, 1));
        assert!(
            (p[0] as f64 - (1.0 - 0.1 / (1.0 + 2e-8))).abs() < 1e-6,
            "{}",
            p[0]
        );
        assert!((m.m[0] - 0.05).abs() < 1e-7);
        // Exempt parameters see only their gradient.
        let mut q = vec![1.0f32];
        adam.update(
            &mut q,
            &[0.0],
            Moments::zeros(1, 2).as_mut(),
            &at(0.1, false, 1.0, 1),
        );
        assert_eq!(q[0], 1.0);
    }
}
