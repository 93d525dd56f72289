//! BERT and the RoBERTa family (`bert`, `roberta`, `xlm-roberta`,
//! `camembert`): post-norm layers, learned absolute positions, segment
//! embeddings. RoBERTa-style models differ only in where positions start
//! (after the padding index) and in having one segment.
//!
//! Written on candle's differentiable ops: every weight is a [`Var`], and
//! the numeric kernels come from [`crate::runtime::ops`], which uses fused
//! kernels without backward only when gradients are off.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor, Var};
use serde::Deserialize;
use serde_json::Value;

use super::parts::{self, Act, Norm, Params};
use super::post_norm;
use super::{ArchEntry, ArchSpec, Encoder};
use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, AttnShape, Ctx};
use crate::runtime::step::bert::{BertStep, Dropouts};
use crate::runtime::step::layer::Ln;
use crate::runtime::weights::WeightFile;

mod decoder;

pub const ENTRY: ArchEntry = ArchEntry {
    model_types: &["bert", "roberta", "xlm-roberta", "camembert"],
    parse,
};

/// The fields of a BERT-family `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// The standard deviation of new weights (TSDAE's decoder).
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
}

fn default_init_range() -> f64 {
    0.02
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

fn parse(raw: &Value, path: &Path) -> Result<Box<dyn ArchSpec>> {
    let c: BertConfig = super::from_value(raw, path)?;
    super::check_heads(path, c.hidden_size, c.num_attention_heads)?;
    Act::from_config(&c.hidden_act, "hidden_act", path)?;
    if let Some(p) = &c.position_embedding_type {
        if p != "absolute" {
            return Err(Error::config(
                path,
                format!("position_embedding_type `{p}` is not supported (absolute)"),
            ));
        }
    }
    if c.roberta_positions() && c.max_position_embeddings <= c.position_start() as usize {
        return Err(Error::config(
            path,
            format!(
                "max_position_embeddings {} leaves no position after the padding index",
                c.max_position_embeddings
            ),
        ));
    }
    Ok(Box::new(c))
}

impl BertConfig {
    /// Whether positions start after the padding index (RoBERTa family).
    pub fn roberta_positions(&self) -> bool {
        self.model_type != "bert"
    }

    /// The first position id.
    fn position_start(&self) -> u32 {
        if self.roberta_positions() {
            self.pad_token_id.unwrap_or(1) + 1
        } else {
            0
        }
    }
}

impl ArchSpec for BertConfig {
    fn model_type(&self) -> &str {
        &self.model_type
    }
    fn hidden_size(&self) -> usize {
        self.hidden_size
    }
    fn position_limit(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_start() as usize)
    }
    fn num_layers(&self) -> usize {
        self.num_hidden_layers
    }
    fn num_heads(&self) -> usize {
        self.num_attention_heads
    }
    fn params(&self) -> u64 {
        let (h, i) = (self.hidden_size as u64, self.intermediate_size as u64);
        let emb = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as u64
            * h
            + 2 * h;
        emb + self.num_hidden_layers as u64 * post_norm::params(h, i)
    }
    fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }
    fn load(&self, config_path: &Path, w: &WeightFile) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(Bert::load(self.clone(), config_path, w)?))
    }
}

/// The BERT encoder stack (embeddings + layers; the pooler is kept for
/// saving, not run).
#[derive(Debug, Clone)]
pub struct Bert {
    pub config: BertConfig,
    settings: post_norm::Settings,
    word: Var,
    position: Var,
    token_type: Var,
    emb_norm: Norm,
    layers: Vec<post_norm::Layer>,
    named: Vec<(String, Var)>,
    pooler: Vec<(String, Tensor)>,
    /// The weights of a decoder over this encoder that the file holds (a
    /// language-model head, cross-attentions), for [`Encoder::tied_decoder`].
    decoder_init: decoder::FileWeights,
    /// The explicit training step, where the model's settings allow it
    /// (erf GELU, every dropout below 1, f32 weights).
    step: Option<Arc<BertStep>>,
}

/// BERT's layer weights (as RoBERTa's).
const NAMES: post_norm::Names = post_norm::Names {
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    inter: "intermediate.dense",
    out: "output.dense",
    out_norm: "output.LayerNorm",
};

impl Bert {
    /// Build from a config and a weights file.
    pub fn load(config: BertConfig, config_path: &Path, w: &WeightFile) -> Result<Self> {
        let mut p = Params::new(w, "embeddings.word_embeddings.weight");
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let word = p.var("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = p.var(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = p.var(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let emb_norm = p.norm("embeddings.LayerNorm", h, true, eps)?;
        let stack = post_norm::Stack::encoder_layers(
            config.num_hidden_layers,
            (h, config.intermediate_size),
            eps,
        );
        let layers = post_norm::load_stack(&mut p, &stack, &NAMES, config_path)?;
        let pooler = p.unread_under("pooler.");
        let decoder_init = decoder::weights_in_file(w, &p.prefix);
        let settings = post_norm::Settings::bert_like(
            config.num_attention_heads,
            &config.hidden_act,
            config.attention_probs_dropout_prob,
            config.hidden_dropout_prob,
            config_path,
        )?;
        let step = explicit_step(
            &config,
            &settings,
            [&word, &position, &token_type],
            &emb_norm,
            &layers,
        );
        Ok(Bert {
            config,
            settings,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            named: p.into_named(),
            pooler,
            decoder_init,
            step,
        })
    }
}

/// The explicit step of this model, when its settings allow one.
fn explicit_step(
    c: &BertConfig,
    s: &post_norm::Settings,
    [word, position, token_type]: [&Var; 3],
    norm: &Norm,
    layers: &[post_norm::Layer],
) -> Option<Arc<BertStep>> {
    let dropout = Dropouts {
        hidden: c.hidden_dropout_prob,
        attn: s.attn_dropout,
        attn_out: s.attn_out_dropout,
        ffn: s.ffn_dropout,
    };
    let probs = [dropout.hidden, dropout.attn, dropout.attn_out, dropout.ffn];
    let f32_cpu = |v: &Var| v.dtype() == DType::F32 && v.device().is_cpu();
    if s.act != Act::Gelu
        || !probs.iter().all(|&p| p < 1.0)
        || ![word, position, token_type].into_iter().all(f32_cpu)
    {
        return None;
    }
    Some(Arc::new(BertStep {
        word: word.clone(),
        position: position.clone(),
        token_type: token_type.clone(),
        norm: Ln {
            w: norm.w.clone(),
            b: norm.b.clone()?,
            eps: norm.eps as f32,
        },
        layers: layers
            .iter()
            .map(post_norm::Layer::explicit_vars)
            .collect::<Option<Vec<_>>>()?,
        heads: c.num_attention_heads,
        hidden: c.hidden_size,
        position_start: c.position_start(),
        dropout,
    }))
}

impl Encoder for Bert {
    fn forward_with_states(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
        states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, s) = input_ids.dims2()?;
        let dev = input_ids.device();
        parts::check_len(s, c.position_limit())?;
        if let (Some(step), None, Some(_)) = (&self.step, &states, ctx.tapes()) {
            if input_ids.device().is_cpu() {
                return step.forward(input_ids, token_type_ids, attention_mask, ctx);
            }
        }
        let mut x = parts::embed(&self.word, input_ids)?;
        let pos = parts::positions(c.position_start(), s, dev)?;
        let pos_emb = self.position.as_tensor().embedding(&pos)?.unsqueeze(0)?;
        x = x.broadcast_add(&pos_emb)?;
        let tt = match token_type_ids {
            Some(t) => t.clone(),
            None => Tensor::zeros((b, s), DType::U32, dev)?,
        };
        x = (x + parts::embed(&self.token_type, &tt)?)?;
        x = self.emb_norm.forward(&x, ctx)?;
        x = ops::dropout(&x, c.hidden_dropout_prob, ctx)?;
        let mask = attention_mask.to_dtype(DType::F32)?;
        let mut states = states;
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(x.clone());
            }
            x = layer.forward(&x, &mask, &self.settings, AttnShape::default(), ctx)?;
        }
        Ok(x)
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.named.clone()
    }

    fn extra_tensors(&self) -> Vec<(String, Tensor)> {
        self.pooler.clone()
    }

    fn vocab_rows(&self) -> usize {
        self.config.vocab_size
    }

    fn token_embeddings(&self) -> Option<&Var> {
        Some(&self.word)
    }

    fn prepare_explicit(&self, ctx: &Ctx) -> Result<bool> {
        match (&self.step, ctx.tapes()) {
            (Some(step), Some(_)) if self.word.device().is_cpu() => {
                step.prepare(ctx)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn tied_decoder(&self, seed: u64) -> Result<Option<Box<dyn super::Decoder>>> {
        Ok(Some(Box::new(decoder::BertDecoder::new(self, seed)?)))
    }
}
