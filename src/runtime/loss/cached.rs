//! What the Cached... losses share: a loss whose value and gradients are
//! another's, computed by the trainer with GradCache (`train/grad_cache.rs`)
//! `mini_batch_size` texts at a time. Not a component itself.

use candle_core::{Result, Tensor, Var};

use super::{Loss, LossInputs};
use crate::registry::choices::Similarity;
use crate::registry::{opt, ArgError, ArgSpec, ArgType::Count, Args};

/// The argument every cached loss adds to its uncached one's.
pub(super) const MINI_BATCH_SIZE: ArgSpec = opt(
    "mini_batch_size",
    Count,
    "32",
    "texts embedded at a time: bounds memory, not the batch size; the gradients do not depend on it",
)
.at_least(1.0);

/// The checked `mini_batch_size` (at least 1).
pub(super) fn mini_batch_size(a: &Args) -> std::result::Result<usize, ArgError> {
    Ok(a.usize("mini_batch_size")?.max(1))
}

/// The `build` of a cached in-batch negatives loss named `name`: its
/// uncached loss from `scale` and `similarity` (`new`), under GradCache.
pub(super) fn build_in_batch<L: Loss + 'static>(
    name: &'static str,
    a: &Args,
    new: fn(f64, Similarity) -> Result<L>,
) -> Result<Box<dyn Loss>> {
    let inner = new(
        a.f64("scale").map_err(super::arg)?,
        a.choice("similarity").map_err(super::arg)?,
    )?;
    let n = mini_batch_size(a).map_err(super::arg)?;
    Ok(Box::new(Cached::with_name(name, inner, n)))
}

/// `inner` under GradCache, named `name`.
#[derive(Debug, Clone)]
pub struct Cached<L> {
    name: &'static str,
    pub inner: L,
    pub mini_batch_size: usize,
}

impl<L> Cached<L> {
    pub fn with_name(name: &'static str, inner: L, mini_batch_size: usize) -> Self {
        Cached {
            name,
            inner,
            mini_batch_size: mini_batch_size.max(1),
        }
    }
}

impl<L: Loss> Loss for Cached<L> {
    fn name(&self) -> &str {
        self.name
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        self.inner.forward(inputs)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.inner.trainable_vars()
    }

    fn mini_batch_size(&self) -> Option<usize> {
        Some(self.mini_batch_size)
    }
}
