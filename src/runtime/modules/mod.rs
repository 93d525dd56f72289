//! The modules of a sentence-embedding chain. Each file implements one
//! [`Module`]: Transformer -> Pooling -> Dense -> Normalize, and friends.

use std::any::Any;
use std::path::Path;

use candle_core::{Tensor, Var};

use super::error::Result;
use super::ops::Ctx;

pub mod bert;
pub mod dense;
pub mod dropout;
pub mod layer_norm;
pub mod normalize;
pub mod pooling;
pub mod tokenizer;
pub mod transformer;

pub use dense::{Activation, Dense};
pub use dropout::Dropout;
pub use layer_norm::LayerNorm;
pub use normalize::Normalize;
pub use pooling::{Pooling, PoolingMode};
pub use transformer::Transformer;

/// What flows between modules: the tokenised batch, then token embeddings,
/// then a sentence embedding.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Token ids, `[batch, seq]` u32.
    pub input_ids: Option<Tensor>,
    /// Segment ids, `[batch, seq]` u32.
    pub token_type_ids: Option<Tensor>,
    /// 1.0 for real tokens, 0.0 for padding, `[batch, seq]` f32.
    pub attention_mask: Option<Tensor>,
    /// Contextual token embeddings, `[batch, seq, hidden]`.
    pub token_embeddings: Option<Tensor>,
    /// One vector per sentence, `[batch, dim]`.
    pub sentence_embedding: Option<Tensor>,
}

impl Features {
    pub(crate) fn need<'a>(t: &'a Option<Tensor>, what: &str, module: &str) -> Result<&'a Tensor> {
        t.as_ref().ok_or_else(|| {
            super::Error::Msg(format!(
                "{module} needs `{what}`, which the modules before it did not produce"
            ))
        })
    }
}

/// One stage of a sentence-embedding model.
pub trait Module: Send + Sync + std::fmt::Debug {
    /// The short type name (`Transformer`, `Pooling`, ...).
    fn type_name(&self) -> &'static str;

    /// The sentence-transformers class path written in `modules.json`.
    fn st_type(&self) -> String {
        format!("sentence_transformers.models.{}", self.type_name())
    }

    /// Run the module on a batch.
    fn forward(&self, features: Features, ctx: &Ctx) -> Result<Features>;

    /// The dimension of what this module outputs, when it fixes it
    /// (`None` for shape-preserving modules such as Normalize).
    fn out_dim(&self) -> Option<usize>;

    /// Trainable parameters, named as in the module's weights file.
    fn named_vars(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// Write the module's files (config + weights) into `dir`, which exists.
    fn save(&self, dir: &Path) -> Result<()>;

    /// For downcasting (e.g. to reach the Transformer's tokenizer).
    fn as_any(&self) -> &dyn Any;

    /// Mutable downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
