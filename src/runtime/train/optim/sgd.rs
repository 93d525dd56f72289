//! SGD (`torch.optim.SGD`): `g + weight_decay * p`, then with momentum the
//! buffer `b = momentum * b + (1 - dampening) * g` (the first step sets
//! `b = g`), Nesterov's variant `g + momentum * b`, and `p -= lr * g`.

use super::{MomentsMut, OptimizerEntry, StepAt, UpdateRule};
use crate::registry::{opt, ArgError, ArgType::*, Args, Component, Family, Range, Rule};
use crate::runtime::fp_env::flush;

pub const ENTRY: OptimizerEntry = OptimizerEntry {
    spec: Component {
        name: "SGD",
        family: Family::Optimizer,
        doc: "Stochastic gradient descent with optional momentum (Nesterov's too) and L2 weight decay (not applied to biases and norm weights).",
        args: &[
            opt("lr", Float, "0.01", "learning rate").above(0.0),
            opt("momentum", Float, "0.0", "momentum factor").at_least(0.0),
            opt("weight_decay", Float, "0.0", "L2 penalty").at_least(0.0),
            opt("dampening", Float, "0.0", "dampening of the momentum").at_least(0.0),
            opt("nesterov", Bool, "false", "Nesterov momentum (needs momentum > 0 and no dampening)"),
        ],
        rules: &[
            Rule::WhenTrue("nesterov", "momentum", Range { lo: Some((0.0, false)), hi: None }),
            Rule::WhenTrue("nesterov", "dampening", Range { lo: Some((0.0, true)), hi: Some((0.0, true)) }),
        ],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn UpdateRule>, ArgError> {
    Ok(Box::new(Sgd {
        lr: a.f64("lr")?,
        momentum: a.f64("momentum")?,
        weight_decay: a.f64("weight_decay")?,
        dampening: a.f64("dampening")?,
        nesterov: a.bool("nesterov")?,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl UpdateRule for Sgd {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn slots(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }

    fn update(&self, param: &mut [f32], grad: &[f32], state: MomentsMut, at: &StepAt) {
        let StepAt {
            lr,
            decay,
            grad_scale,
            step,
        } = *at;
        let wd = if decay { self.weight_decay as f32 } else { 0.0 };
        let (mu, damp, lr) = (self.momentum as f32, self.dampening as f32, lr as f32);
        for (i, p) in param.iter_mut().enumerate() {
            let mut g = grad[i] * grad_scale + wd * *p;
            if mu != 0.0 {
                let b = &mut state.m[i];
                *b = if step <= 1 {
                    g
                } else {
                    flush(mu * *b + (1.0 - damp) * g)
                };
                g = if self.nesterov { g + mu * *b } else { *b };
            }
            *p -= lr * g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::train::optim::{at, Moments};

    fn sgd(momentum: f64, nesterov: bool) -> Sgd {
        Sgd {
            lr: 0.1,
            momentum,
            weight_decay: 0.0,
            dampening: 0.0,
            nesterov,
        }
    }

    #[test]
    fn momentum_by_hand() {
        // Gradients 1 then 1 with momentum 0.9: buffers 1 then 1.9, moves
        // 0.1 and 0.19; Nesterov moves 0.1 * (1 + 0.9) and 0.1 * (1 + 1.71).
        let mut p = vec![0.0f32];
        let s = sgd(0.9, false);
        let mut st = Moments::zeros(1, s.slots());
        s.update(&mut p, &[1.0], st.as_mut(), &at(0.1, true, 1.0, 1));
        s.update(&mut p, &[1.0], st.as_mut(), &at(0.1, true, 1.0, 2));
        assert!((p[0] + 0.29).abs() < 1e-6, "{}", p[0]);
        let n = sgd(0.9, true);
        let (mut q, mut st) = (vec![0.0f32], Moments::zeros(1, 1));
        n.update(&mut q, &[1.0], st.as_mut(), &at(0.1, true, 1.0, 1));
        n.update(&mut q, &[1.0], st.as_mut(), &at(0.1, true, 1.0, 2));
        assert!((q[0] + 0.19 + 0.271).abs() < 1e-6, "{}", q[0]);
        // Plain SGD keeps no state.
        assert_eq!(sgd(0.0, false).slots(), 0);
        let mut r = vec![1.0f32];
        let mut none = Moments::zeros(1, 0);
        Sgd {
            weight_decay: 0.5,
            ..sgd(0.0, false)
        }
        .update(&mut r, &[0.0], none.as_mut(), &at(0.1, true, 1.0, 1));
        assert!((r[0] - 0.95).abs() < 1e-7);
    }
}
