//! Training objectives over sentence embeddings, with the semantics of
//! sentence-transformers' losses (`compute_loss_from_embeddings`).
//!
//! A loss sees the embeddings the model produced for each text column of a
//! batch (in the data source's column order) plus the batch's float scores,
//! integer labels or teacher embeddings, and returns a scalar tensor whose
//! `backward()` reaches the embeddings (and the loss's own trainable
//! variables, e.g. [`SoftmaxLoss`]'s classifier).
//!
//! Everything is built from candle ops that have a backward pass; losses are
//! dtype-generic (f64 in the gradient tests), and half-precision embeddings
//! are upcast to f32 first, as sentence-transformers does for CoSENT.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor, Var};

pub use crate::registry::choices::Similarity;
use crate::registry::{ArgError, Args, Component};
use crate::runtime::{Ctx, SentenceEncoder};

pub mod adaptive_layer;
pub mod angle;
pub mod batch_all_triplet;
pub mod batch_hard_soft_margin_triplet;
pub mod batch_hard_triplet;
pub mod batch_semi_hard_triplet;
mod batch_triplet;
pub mod cached;
pub mod cached_mnrl;
pub mod cached_mnsrl;
pub mod contrastive;
pub mod contrastive_tension;
pub mod contrastive_tension_in_batch;
pub mod cosent;
pub mod cosine_similarity;
pub mod deletion_noise;
pub mod denoising_auto_encoder;
pub mod distill_kl_div;
pub mod gist;
pub mod gor;
pub mod margin_mse;
pub mod matryoshka;
pub mod matryoshka_2d;
pub mod mega_batch_margin;
pub mod mnrl;
pub mod mnsrl;
pub mod mse;
pub mod online_contrastive;
pub mod ops;
pub mod softmax;
pub mod triplet;

#[cfg(test)]
pub(crate) mod testutil;

pub use adaptive_layer::AdaptiveLayerLoss;
pub use angle::AnglELoss;
pub use batch_all_triplet::BatchAllTripletLoss;
pub use batch_hard_soft_margin_triplet::BatchHardSoftMarginTripletLoss;
pub use batch_hard_triplet::BatchHardTripletLoss;
pub use batch_semi_hard_triplet::BatchSemiHardTripletLoss;
pub use cached::Cached;
pub use cached_mnrl::CachedMultipleNegativesRankingLoss;
pub use cached_mnsrl::CachedMultipleNegativesSymmetricRankingLoss;
pub use contrastive::ContrastiveLoss;
pub use contrastive_tension::ContrastiveTensionLoss;
pub use contrastive_tension_in_batch::ContrastiveTensionLossInBatchNegatives;
pub use cosent::CoSENTLoss;
pub use cosine_similarity::CosineSimilarityLoss;
pub use denoising_auto_encoder::DenoisingAutoEncoderLoss;
pub use distill_kl_div::DistillKLDivLoss;
pub use gist::GISTEmbedLoss;
pub use gor::GlobalOrthogonalRegularizationLoss;
pub use margin_mse::MarginMSELoss;
pub use matryoshka::MatryoshkaLoss;
pub use mega_batch_margin::MegaBatchMarginLoss;
pub use mnrl::MultipleNegativesRankingLoss;
pub use mnsrl::MultipleNegativesSymmetricRankingLoss;
pub use mse::MSELoss;
pub use online_contrastive::OnlineContrastiveLoss;
pub use softmax::SoftmaxLoss;
pub use triplet::TripletLoss;

/// What a loss is built from besides its checked arguments.
#[derive(Debug, Clone)]
pub struct LossCx<'a> {
    /// The objective's name (seeds a loss's own initial weights).
    pub objective: String,
    /// The width of the model's sentence embeddings.
    pub dim: usize,
    /// The stage's seed.
    pub seed: u64,
    pub device: Device,
    /// The model the objective trains, as it stands when the loss is built
    /// (when its stage starts): the losses that keep a copy of it
    /// (ContrastiveTensionLoss) or decode with its weights
    /// (DenoisingAutoEncoderLoss) need it; `None` where no model is at hand
    /// (the embedding-level unit tests), which those losses refuse.
    pub model: Option<&'a SentenceEncoder>,
}

impl LossCx<'_> {
    /// The model, for the losses that cannot be built without it.
    pub(crate) fn need_model(&self, loss: &str) -> Result<&SentenceEncoder> {
        match self.model {
            Some(m) => Ok(m),
            None => bail!("{loss} is built from the model it trains, and none was given"),
        }
    }
}

/// A registered loss: its description and its constructor.
pub struct LossEntry {
    pub spec: Component,
    pub build: fn(&Args, &LossCx) -> Result<Box<dyn Loss>>,
}

/// An argument error as a candle error (for constructors).
pub(crate) fn arg(e: ArgError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// What a loss sees of one batch.
#[derive(Debug, Clone, Default)]
pub struct LossInputs {
    /// One `[batch, dim]` tensor per text column, in the data source's
    /// column order (`[sentence1, sentence2]`, `[anchor, positive,
    /// negative...]`).
    pub embeddings: Vec<Tensor>,
    /// Float targets, `[batch]` (CosineSimilarityLoss, CoSENT, AnglE).
    pub scores: Option<Tensor>,
    /// Integer class labels, `[batch]`, u32 or i64 (SoftmaxLoss).
    pub labels: Option<Tensor>,
    /// Precomputed target embeddings for distillation (MSELoss):
    /// `[batch, dim]` (the same target for every column) or
    /// `[batch, columns, dim]` (one per column).
    pub teacher: Option<Tensor>,
    /// A frozen guide model's embeddings of each text column, `[batch, dim]`
    /// each, in column order (GISTEmbedLoss).
    pub guide: Option<Vec<Tensor>>,
    /// The embeddings of each earlier layer (the embedding layer's output
    /// first), each `[column][batch, dim]` like `embeddings`, for the losses
    /// that want them ([`Loss::wants_layers`]: AdaptiveLayerLoss).
    pub layers: Option<Vec<Vec<Tensor>>>,
    /// A seed of this batch for losses that draw at random (MatryoshkaLoss's
    /// `n_dims_per_step`); the trainer derives it from the stage's seed and
    /// the turn, so a resumed run draws what an uninterrupted one does.
    pub seed: u64,
}

impl LossInputs {
    /// Inputs with only embeddings.
    pub fn new(embeddings: Vec<Tensor>) -> Self {
        LossInputs {
            embeddings,
            ..Default::default()
        }
    }

    pub fn with_scores(mut self, scores: Tensor) -> Self {
        self.scores = Some(scores);
        self
    }

    pub fn with_labels(mut self, labels: Tensor) -> Self {
        self.labels = Some(labels);
        self
    }

    pub fn with_teacher(mut self, teacher: Tensor) -> Self {
        self.teacher = Some(teacher);
        self
    }

    /// The column embeddings, checked: at least `min` (and at most `max`)
    /// columns, each 2-d with the same `[batch, dim]`, upcast to f32 when in
    /// half precision. Returns them with `(batch, dim)`.
    pub fn columns(
        &self,
        loss: &str,
        min: usize,
        max: Option<usize>,
    ) -> Result<(Vec<Tensor>, usize, usize)> {
        let n = self.embeddings.len();
        if n < min || max.is_some_and(|m| n > m) {
            let expected = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            bail!("{loss} expects {expected} text columns, got {n}");
        }
        let mut shape = None;
        let mut out = Vec::with_capacity(n);
        for (i, e) in self.embeddings.iter().enumerate() {
            let dims = e.dims2().map_err(|_| {
                candle_core::Error::Msg(format!(
                    "{loss}: embeddings of column {i} must be [batch, dim], got {:?}",
                    e.dims()
                ))
            })?;
            match shape {
                None => shape = Some(dims),
                Some(s) if s != dims => bail!(
                    "{loss}: embeddings of column {i} have shape {dims:?}, column 0 has {s:?}"
                ),
                _ => {}
            }
            out.push(ops::float(e)?);
        }
        let (batch, dim) = shape.unwrap_or((0, 0));
        if batch == 0 {
            bail!("{loss}: empty batch");
        }
        Ok((out, batch, dim))
    }

    /// The float scores as a `[batch, k]` tensor of `dtype`: a list label
    /// as it is, one score per example as `[batch, 1]`.
    pub fn score_matrix(
        &self,
        loss: &str,
        batch: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some(s) = self.scores.as_ref() else {
            bail!("{loss} needs teacher scores per example");
        };
        let s = match s.rank() {
            1 => s.unsqueeze(1)?,
            _ => s.clone(),
        };
        match s.dims() {
            [b, _] if *b == batch => s.to_dtype(dtype)?.to_device(device),
            d => bail!("{loss} expects {batch} rows of scores, got shape {d:?}"),
        }
    }

    /// The float scores as a `[batch]` tensor of `dtype`; integer labels
    /// stand in when there are no scores (sentence-transformers' losses
    /// take one label column of any dtype and cast it).
    pub fn scores_for(
        &self,
        loss: &str,
        batch: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some(s) = self.scores.as_ref().or(self.labels.as_ref()) else {
            bail!("{loss} needs a score (or label) per example");
        };
        if s.elem_count() != batch {
            bail!(
                "{loss} expects {batch} scores (one per example), got shape {:?}",
                s.dims()
            );
        }
        s.flatten_all()?.to_dtype(dtype)?.to_device(device)
    }
}

/// A batch as texts, for the losses that run models themselves
/// ([`Loss::forward_texts`]).
pub struct TextBatch<'a> {
    /// The texts of each text column, in the data source's column order.
    pub columns: &'a [Vec<&'a str>],
    /// The prompt prepended to each column's texts.
    pub prompts: Vec<Option<&'a str>>,
    /// Everything else the loss sees (scores, labels, the batch's seed);
    /// `embeddings` is empty.
    pub inputs: LossInputs,
}

impl TextBatch<'_> {
    /// The embeddings `model` gives column `c` in `ctx`.
    pub fn embed(&self, model: &SentenceEncoder, c: usize, ctx: &Ctx) -> Result<Tensor> {
        let Some(texts) = self.columns.get(c) else {
            bail!("the batch has no text column {c}");
        };
        let prompt = self.prompts.get(c).copied().flatten();
        model
            .embed_prompted(texts, prompt, ctx)
            .map_err(candle_core::Error::wrap)
    }
}

/// A training objective.
pub trait Loss: Send + Sync {
    /// The sentence-transformers class name, e.g. `"CoSENTLoss"`.
    fn name(&self) -> &str;

    /// The scalar loss of one batch.
    fn forward(&self, inputs: &LossInputs) -> Result<Tensor>;

    /// The loss's own parameters (named as in a sentence-transformers state
    /// dict), which the optimizer updates along with the model's.
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        vec![]
    }

    /// `Some(n)` for losses computed with GradCache (the Cached... losses):
    /// the trainer embeds a batch `n` texts at a time and backpropagates
    /// through the loss's gradient with respect to the embeddings, so that
    /// memory is bounded by `n` texts (`train/grad_cache.rs`).
    fn mini_batch_size(&self) -> Option<usize> {
        None
    }

    /// Whether the loss needs the embeddings of every earlier layer
    /// ([`LossInputs::layers`]) besides the final ones.
    fn wants_layers(&self) -> bool {
        false
    }

    /// Whether the loss runs models over the batch's texts itself
    /// ([`Loss::forward_texts`]: a copy of the model, a decoder) instead of
    /// seeing only the trained model's embedding of each column.
    fn runs_models(&self) -> bool {
        false
    }

    /// The scalar loss of a batch of texts, for the losses that
    /// [`Loss::runs_models`]: `model` is the model the objective trains,
    /// `ctx` the step's forward context (its dropout masks, and the tapes
    /// of encoders with an explicit step, whose backward the trainer runs
    /// after the loss's).
    fn forward_texts(
        &self,
        model: &SentenceEncoder,
        batch: TextBatch,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let _ = (model, batch, ctx);
        bail!("{} does not run models itself", self.name())
    }

    /// Class logits `[batch, num_labels]` for losses that classify
    /// ([`SoftmaxLoss`]); `None` for the others.
    fn logits(&self, _inputs: &LossInputs) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// Saves a loss's trainable variables (if any) as a safetensors file, keyed
/// by their names (`classifier.weight`, `classifier.bias`).
pub fn save_vars(loss: &dyn Loss, path: &Path) -> Result<()> {
    let tensors: HashMap<String, Tensor> = loss
        .trainable_vars()
        .into_iter()
        .map(|(k, v)| (k, v.as_detached_tensor()))
        .collect();
    candle_core::safetensors::save(&tensors, path)
}

/// Loads a loss's trainable variables from a file written by [`save_vars`]
/// (or by torch's `save_model` of the same module); every variable must be
/// present with its shape.
pub fn load_vars(loss: &dyn Loss, path: &Path) -> Result<()> {
    let vars = loss.trainable_vars();
    if vars.is_empty() {
        return Ok(());
    }
    let device = vars[0].1.device().clone();
    let tensors = candle_core::safetensors::load(path, &device)?;
    for (name, var) in vars {
        let Some(t) = tensors.get(&name) else {
            bail!("{}: no tensor `{name}` in {}", loss.name(), path.display());
        };
        if t.dims() != var.dims() {
            bail!(
                "{}: tensor `{name}` in {} has shape {:?}, expected {:?}",
                loss.name(),
                path.display(),
                t.dims(),
                var.dims()
            );
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
