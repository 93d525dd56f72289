//! Learning-rate schedules with the semantics of sentence-transformers'
//! `fit` (which uses the `transformers` schedule functions): the factor for
//! optimizer step `k` (0-based) is `lambda(k)`, so a warm-up starts at 0.
//! A linear warm-up of `warmup` steps is common to all but `Constant`;
//! each file gives the shape after it, as a function of the progress
//! `(k - warmup) / (total - warmup)`.

pub mod constant;
pub mod warmup_constant;
pub mod warmup_cosine;
pub mod warmup_cosine_with_hard_restarts;
pub mod warmup_linear;

use crate::registry::{opt, ArgError, ArgSpec, ArgType, Args, Component};

/// The `warmup` argument of the warm-up schedules.
pub(crate) const WARMUP: ArgSpec = opt(
    "warmup",
    ArgType::StepsOrPercent,
    "0",
    "warm-up length: steps (`100`) or a share of all steps (`10%`)",
);

/// The shape of a schedule after its warm-up.
pub trait LrSchedule: Send + Sync + std::fmt::Debug {
    /// The factor at `progress` in [0, 1] of the steps after warm-up
    /// (beyond 1 when a run goes on past its planned total).
    fn after_warmup(&self, progress: f64) -> f64;
}

/// A registered scheduler: its description and its constructor.
pub struct SchedulerEntry {
    pub spec: Component,
    pub build: fn(&Args) -> Result<Box<dyn LrSchedule>, ArgError>,
}

/// A schedule bound to a warm-up length and a total number of steps.
#[derive(Debug)]
pub struct Schedule {
    pub shape: Box<dyn LrSchedule>,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn new(shape: Box<dyn LrSchedule>, warmup_steps: u64, total_steps: u64) -> Self {
        Schedule {
            shape,
            warmup_steps,
            total_steps,
        }
    }

    /// Warm-up given as a fraction of the total steps (`warmup: 10%`),
    /// rounded up as sentence-transformers does (`math.ceil`).
    pub fn warmup_from_fraction(fraction: f64, total_steps: u64) -> u64 {
        (fraction * total_steps as f64).ceil().max(0.0) as u64
    }

    /// The multiplier of the base learning rate at optimizer step `step`.
    pub fn factor(&self, step: u64) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            return s / w.max(1.0);
        }
        self.shape.after_warmup((s - w) / (t - w).max(1.0))
    }
}

#[cfg(test)]
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}
