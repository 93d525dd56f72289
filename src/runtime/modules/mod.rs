//! The modules of a sentence-embedding chain. Each file implements one
//! [`Module`]: Transformer -> Pooling -> Dense -> Normalize, and friends.

use std::any::Any;
use std::path::Path;

use candle_core::{Tensor, Var};

use super::error::Result;
use super::ops::Ctx;

pub mod dense;
pub mod dropout;
pub mod layer_norm;
pub mod load;
pub mod normalize;
pub mod pooling;
pub mod tokenizer;
pub mod transformer;

use candle_core::Device;

use crate::hub::ModelSearch;
use crate::registry::{Args, Component, ModuleShape};

pub use dense::{Activation, Dense};
pub use dropout::Dropout;
pub use layer_norm::LayerNorm;
pub use normalize::Normalize;
pub use pooling::{Pooling, PoolingMode};
pub use transformer::Transformer;

/// What a module is built from besides its checked arguments.
pub struct ModuleCx<'a> {
    /// The width of what precedes the module (0 for a chain's base).
    pub in_dim: usize,
    /// Seeds a new module's initial weights.
    pub seed: u64,
    pub device: &'a Device,
    /// Where models named by a path or Hub id are looked for.
    pub search: &'a ModelSearch,
    /// The pipeline's directory (relative model paths start there).
    pub base_dir: &'a Path,
}

/// A registered module: its description, where it may stand in a chain,
/// and its constructor (a base may yield several modules: `load`).
pub struct ModuleEntry {
    pub spec: Component,
    pub shape: ModuleShape,
    pub build: fn(&Args, &ModuleCx) -> Built,
}

/// What a module constructor yields: the modules it adds to the chain.
pub type Built = Result<Vec<Box<dyn Module>>>;

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
    /// Tokens at the start of every row that belong to a prompt (the
    /// first special token included), which Pooling leaves out when its
    /// `include_prompt` is off.
    pub prompt_length: Option<usize>,
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
