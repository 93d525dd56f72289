//! The numeric building blocks every module calls.
//!
//! Modules never call candle's kernels directly for GELU, layer norm, softmax
//! or dropout: they call these functions with the forward context, and this
//! file picks the implementation. With gradients off (encoding, evaluation)
//! it uses fused kernels that have no backward; with gradients on (training)
//! it uses kernels that have one, so every weight gets its gradient. A faster
//! fused kernel can be dropped in here without touching any module.
//!
//! One file per family: [`linear`] (projections, and the weight layouts
//! the inference cache keeps), [`attention`], [`norm`] (layer norm) and
//! [`activations`] (softmax, dropout, GELU). This file holds the context
//! they all read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, TensorId};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::error::Result;
use super::step::Tapes;
use crate::registry::choices::Precision;

mod activations;
mod attention;
mod linear;
mod norm;
#[cfg(test)]
mod test_util;

pub(crate) use activations::dropout_mask;
pub use activations::{dropout, gelu, softmax};
pub use attention::{attention, attention_packed, self_attention, Attn, AttnShape, Proj};
use linear::in_product_form;
pub use linear::{linear, linear_gelu};
pub use norm::{add_layer_norm, layer_norm};

/// How a forward pass runs.
#[derive(Debug)]
pub struct Ctx {
    /// Training mode: dropout is active.
    pub train: bool,
    /// Gradients are needed: use only ops that have a backward.
    pub grad: bool,
    rng: Mutex<StdRng>,
    /// Where encoders that have an explicit training step record it
    /// (`None`: they take the autograd path); see [`crate::runtime::step`].
    /// Shared by the contexts of [`Ctx::columns`].
    tapes: Option<Arc<Tapes>>,
    /// Where this context's tapes go in the backward's order (its column).
    order: usize,
    /// Weights in the layouts the fused inference kernels prefer, made once
    /// per context (`None`: made on every call, i.e. not at all).
    layouts: Option<Mutex<HashMap<(TensorId, WeightLayout), Tensor>>>,
    /// The number format of the linear layers' products (a stage's
    /// `precision`; f32 outside training).
    precision: Precision,
}

/// A weight layout of the inference cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WeightLayout {
    /// For the product: packed for `gemm` ([`kernels::Panels`]) where
    /// its AVX-512 kernels run, else transposed (`[in, out]`).
    Product,
    /// q, k and v weights stacked (`[3 * hidden, hidden]`), in the
    /// product's layout.
    QkvProduct,
    /// Their biases side by side.
    QkvBias,
}

impl Ctx {
    /// Inference: no dropout, fused kernels, no backward.
    pub fn eval() -> Self {
        Ctx {
            train: false,
            grad: false,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            tapes: None,
            order: 0,
            layouts: None,
            precision: Precision::Fp32,
        }
    }

    /// [`Ctx::eval`] that keeps each weight, once, in the layout the fused
    /// kernels run fastest on, for as long as the context lives: for a
    /// whole `encode` call, during which the weights cannot change.
    pub fn eval_cached() -> Self {
        Ctx {
            layouts: Some(Mutex::new(HashMap::new())),
            ..Ctx::eval()
        }
    }

    /// The cached `layout` of `key`, made by `make` on first use; `None`
    /// when this context keeps no cache.
    fn layout(
        &self,
        key: &Tensor,
        layout: WeightLayout,
        make: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Option<Tensor>> {
        let Some(cache) = &self.layouts else {
            return Ok(None);
        };
        let k = (key.id(), layout);
        let mut guard = match cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(t) = guard.get(&k) {
            return Ok(Some(t.clone()));
        }
        let t = make()?;
        guard.insert(k, t.clone());
        Ok(Some(t))
    }

    /// `w` `[out, in]` in the product's layout ([`product_form`]), when
    /// cached.
    fn product_layout(&self, w: &Tensor) -> Result<Option<Tensor>> {
        self.layout(w, WeightLayout::Product, || in_product_form(w))
    }

    /// Training: dropout active (its masks drawn from `seed`), gradients on.
    pub fn train(seed: u64) -> Self {
        Ctx {
            train: true,
            grad: true,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            tapes: None,
            order: 0,
            layouts: None,
            precision: Precision::Fp32,
        }
    }

    /// [`Ctx::train`] in which encoders that have an explicit training step
    /// run it and record their tapes (the same dropout masks, the same
    /// gradients): the caller must run [`Ctx::tapes`]' backward after the
    /// loss's, or the encoder gets no gradient. With `STPIPE_AUTOGRAD=1`
    /// this is [`Ctx::train`].
    pub fn train_explicit(seed: u64) -> Self {
        Ctx {
            tapes: crate::runtime::step::enabled().then(|| Arc::new(Tapes::default())),
            ..Ctx::train(seed)
        }
    }

    /// This context with the linear layers' products in `precision` (a
    /// stage's setting; see [`Precision`]).
    pub fn with_precision(self, precision: Precision) -> Self {
        Ctx { precision, ..self }
    }

    /// This context with the explicit step's forwards reading the linear
    /// weights from `panels`, which the optimizer writes as it updates them
    /// ([`WeightPanels`](crate::runtime::step::WeightPanels)); `None`, or a
    /// context that records no tapes, leaves it as it is.
    pub fn with_weight_panels(
        self,
        panels: Option<Arc<crate::runtime::step::WeightPanels>>,
    ) -> Self {
        if let (Some(t), Some(p)) = (&self.tapes, panels) {
            t.set_weight_panels(p);
        }
        self
    }

    /// The number format of the linear layers' products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The tapes of explicit steps, when this context records them.
    pub fn tapes(&self) -> Option<&Tapes> {
        self.tapes.as_deref()
    }

    /// Where this context's tapes go in the backward's order.
    pub(crate) fn order(&self) -> usize {
        self.order
    }

    /// One context per column of a batch, for forward passes that run at
    /// the same time: each draws its dropout masks from a generator of its
    /// own (seeded from this context's, in column order), so the masks do
    /// not depend on which pass runs first, and they record their tapes
    /// into this context's, backward in column order.
    pub fn columns(&self, n: usize) -> Vec<Ctx> {
        (0..n)
            .map(|order| Ctx {
                train: self.train,
                grad: self.grad,
                rng: Mutex::new(StdRng::seed_from_u64(next_seed(self))),
                tapes: self.tapes.clone(),
                order,
                layouts: None,
                precision: self.precision,
            })
            .collect()
    }

    /// Dropout active with the masks of `train(seed)`, no backward: the
    /// first, activation-free pass of GradCache, whose second pass with
    /// `train(seed)` must see the same masks.
    pub fn train_forward(seed: u64) -> Self {
        Ctx {
            grad: false,
            ..Ctx::train(seed)
        }
    }

    /// Gradients on but dropout off (e.g. gradient checks).
    pub fn eval_with_grad() -> Self {
        Ctx {
            grad: true,
            ..Ctx::eval()
        }
    }
}

/// Whether the fused kernels without a backward can serve `x` (no
/// gradients, f32 on the CPU).
fn fused_ok(x: &Tensor, ctx: &Ctx) -> bool {
    !ctx.grad && x.dtype() == DType::F32 && x.device().is_cpu()
}

/// Whether the fused kernels with a backward can serve `x` (training).
fn fused_ok_grad(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && x.device().is_cpu()
}

/// The next dropout seed of `ctx`'s generator.
fn next_seed(ctx: &Ctx) -> u64 {
    let mut rng = match ctx.rng.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    rng.random::<u64>()
}
