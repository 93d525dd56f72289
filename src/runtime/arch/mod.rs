//! Encoder architectures, one file each, behind the [`Encoder`] trait.
//!
//! A model directory's `config.json` names its architecture in
//! `model_type`; [`ARCHS`] maps each `model_type` to the file that reads
//! that config ([`ArchSpec`]: the shapes the checker needs) and builds the
//! trainable encoder from a weights file ([`Encoder`]: forward with
//! gradients for every weight, and the tensors to save back under the
//! names Hugging Face writes). The checker and the runtime both go through
//! [`parse_config`], so an architecture or option that `run` cannot do is
//! refused by `check` with the same message.
//!
//! Adding an architecture: a new file here with its config struct, its
//! `ArchSpec` and `Encoder` impls and its `parse` function; one line in
//! [`ARCHS`]. Tests go in the file and a parity fixture in
//! `scripts/make_arch_fixtures.py`.

use std::path::Path;

use candle_core::{Tensor, Var};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::runtime::error::{Error, Result};
use crate::runtime::ops::Ctx;
use crate::runtime::weights::WeightFile;

pub mod bert;
pub mod distilbert;
pub mod modernbert;
pub mod mpnet;
pub mod parts;
pub mod post_norm;

/// A trainable encoder: token ids to contextual token embeddings.
pub trait Encoder: std::fmt::Debug + Send + Sync {
    /// Token embeddings `[batch, seq, hidden]` for ids, segment ids (for
    /// the architectures that have them) and an f32 attention mask, all
    /// `[batch, seq]`, right-padded.
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        self.forward_with_states(input_ids, token_type_ids, attention_mask, ctx, None)
    }

    /// [`Encoder::forward`], and, when `states` is given, the input of
    /// every layer pushed onto it: the embedding layer's output, then each
    /// layer's output but the last's. These are Hugging Face's
    /// `hidden_states` before the final one (which, for architectures with
    /// a final norm, is not the model's output); AdaptiveLayerLoss trains
    /// the sentence embeddings of each.
    fn forward_with_states(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
        states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor>;

    /// Every trainable parameter, named as Hugging Face's `AutoModel`
    /// saves it (no task-head prefix such as `bert.`).
    fn named_vars(&self) -> Vec<(String, Var)>;

    /// Tensors of the file the encoder does not train but a complete saved
    /// model holds (BERT's pooler, fixed sinusoidal positions).
    fn extra_tensors(&self) -> Vec<(String, Tensor)>;

    /// Rows of the token-embedding matrix (the ids it can look up).
    fn vocab_rows(&self) -> usize;

    /// The token-embedding table `[vocab, hidden]`, whose gradient the
    /// optimizer keeps as the rows a step touched.
    fn token_embeddings(&self) -> Option<&Var> {
        None
    }

    /// Whether forwards in `ctx` run an explicit training step
    /// ([`crate::runtime::step`]). The trainer asks only when it can run a
    /// batch's columns side by side, one per thread: an encoder that says
    /// yes marks `ctx`'s tapes as side by side and makes, now, the weight
    /// layouts those forwards share.
    fn prepare_explicit(&self, ctx: &Ctx) -> Result<bool> {
        let _ = ctx;
        Ok(false)
    }

    /// A causal decoder that shares this encoder's weights, with a
    /// cross-attention of its own in every layer and a language-model head
    /// tied to the token embeddings (TSDAE's decoder); its own weights come
    /// from the model's weights file when it holds them, else are drawn
    /// from `seed` as transformers initialises them. `None` for the
    /// architectures transformers has no causal-LM class for.
    fn tied_decoder(&self, seed: u64) -> Result<Option<Box<dyn Decoder>>> {
        let _ = seed;
        Ok(None)
    }
}

/// The model types whose encoders train with an explicit step on the CPU
/// ([`crate::runtime::step`]).
pub const EXPLICIT_STEP_TYPES: &[&str] = bert::ENTRY.model_types;

/// The model types whose encoders give a [`Encoder::tied_decoder`].
pub const DECODER_TYPES: &[&str] = bert::ENTRY.model_types;

/// A causal language model over an encoder's weights, conditioned on one
/// vector per row (TSDAE's decoder: BERT's `...ForCausalLM` with
/// `is_decoder` and `add_cross_attention`).
pub trait Decoder: std::fmt::Debug + Send + Sync {
    /// Hidden states `[batch, t, hidden]` of input ids `[batch, t]`, each
    /// position attending to itself and the positions before it, and to
    /// `memory` `[batch, 1, hidden]`.
    fn forward(&self, ids: &Tensor, memory: &Tensor, ctx: &Ctx) -> Result<Tensor>;

    /// Vocabulary logits `[n, vocab]` of hidden states `[n, hidden]`.
    fn logits(&self, hidden: &Tensor, ctx: &Ctx) -> Result<Tensor>;

    /// The decoder's own parameters (its cross-attentions and the head's
    /// transform and bias), by their Hugging Face names.
    fn named_vars(&self) -> Vec<(String, Var)>;
}

/// What a `config.json` says about an architecture: the shapes the checker
/// reads, and the constructor of the encoder.
pub trait ArchSpec: std::fmt::Debug + Send + Sync {
    /// The `model_type` as written in config.json.
    fn model_type(&self) -> &str;
    fn hidden_size(&self) -> usize;
    /// The longest input the positions allow.
    fn position_limit(&self) -> usize;
    fn num_layers(&self) -> usize;
    fn num_heads(&self) -> usize;
    /// Trainable parameters.
    fn params(&self) -> u64;
    /// The padding id the config declares.
    fn pad_token_id(&self) -> Option<u32>;
    /// Build the encoder from a weights file (`config_path` labels errors).
    fn load(&self, config_path: &Path, w: &WeightFile) -> Result<Box<dyn Encoder>>;
}

/// One architecture: the `model_type`s it reads and its config parser.
pub struct ArchEntry {
    pub model_types: &'static [&'static str],
    pub parse: fn(&Value, &Path) -> Result<Box<dyn ArchSpec>>,
}

/// Every architecture stpipe runs.
pub const ARCHS: &[ArchEntry] = &[
    bert::ENTRY,
    distilbert::ENTRY,
    mpnet::ENTRY,
    modernbert::ENTRY,
];

/// Every supported `model_type`, for messages.
pub fn supported_model_types() -> Vec<&'static str> {
    ARCHS
        .iter()
        .flat_map(|a| a.model_types.iter().copied())
        .collect()
}

/// Read the architecture from a parsed `config.json` at `path`. A config
/// without `model_type` is read as BERT (old checkpoints omit it).
pub fn parse_config(raw: &Value, path: &Path) -> Result<Box<dyn ArchSpec>> {
    let model_type = match raw.get("model_type") {
        None | Some(Value::Null) => "bert",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Error::config(
                path,
                format!("model_type must be a string, not {other}"),
            ))
        }
    };
    let entry = ARCHS
        .iter()
        .find(|a| a.model_types.contains(&model_type))
        .ok_or_else(|| {
            Error::config(
                path,
                format!(
                    "model_type `{model_type}` is not supported (supported: {})",
                    supported_model_types().join(", ")
                ),
            )
        })?;
    (entry.parse)(raw, path)
}

/// Read and parse `config.json`: the architecture and the raw JSON (saved
/// back unchanged).
pub fn read_config(path: &Path) -> Result<(Box<dyn ArchSpec>, Value)> {
    let raw: Value = crate::runtime::error::read_json(path)?;
    Ok((parse_config(&raw, path)?, raw))
}

/// Deserialize an architecture's config struct, errors naming the file.
pub(crate) fn from_value<T: DeserializeOwned>(raw: &Value, path: &Path) -> Result<T> {
    serde_json::from_value(raw.clone()).map_err(|e| Error::config(path, e.to_string()))
}

/// Heads must divide the width evenly.
pub(crate) fn check_heads(path: &Path, hidden: usize, heads: usize) -> Result<()> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(Error::config(
            path,
            format!("the width {hidden} must be a multiple of the {heads} attention heads"),
        ));
    }
    Ok(())
}
