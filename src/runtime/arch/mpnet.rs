//! MPNet (`mpnet`): BERT's post-norm layers plus a relative position bias
//! shared by every layer (T5-style buckets of the query-key distance, one
//! learned value per bucket and head), absolute positions counted from
//! after the padding index as in RoBERTa, no segment embeddings.

use std::path::Path;

use candle_core::{DType, Tensor, Var};
use serde::Deserialize;
use serde_json::Value;

use super::parts::{self, Act, Norm, Params};
use super::post_norm;
use super::{ArchEntry, ArchSpec, Encoder};
use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, AttnShape, Ctx};
use crate::runtime::weights::WeightFile;

pub const ENTRY: ArchEntry = ArchEntry {
    model_types: &["mpnet"],
    parse,
};

/// The fields of an MPNet `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct MpNetConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "m_act")]
    pub hidden_act: String,
    #[serde(default = "m_drop")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "m_drop")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "m_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "m_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "m_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "m_pad")]
    pub pad_token_id: u32,
}

fn m_act() -> String {
    "gelu".into()
}
fn m_drop() -> f64 {
    0.1
}
fn m_pos() -> usize {
    514
}
fn m_eps() -> f64 {
    1e-12
}
fn m_buckets() -> usize {
    32
}
fn m_pad() -> u32 {
    1
}

/// Distances from which buckets grow logarithmically up to the last one.
const MAX_DISTANCE: f32 = 128.0;

/// The buckets transformers computes distances into: its
/// `compute_position_bias` uses its default of 32 whatever the config's
/// `relative_attention_num_buckets` (the table's rows) says.
const BUCKETS: usize = 32;

fn parse(raw: &Value, path: &Path) -> Result<Box<dyn ArchSpec>> {
    let c: MpNetConfig = super::from_value(raw, path)?;
    super::check_heads(path, c.hidden_size, c.num_attention_heads)?;
    Act::from_config(&c.hidden_act, "hidden_act", path)?;
    if c.relative_attention_num_buckets < BUCKETS {
        return Err(Error::config(
            path,
            format!(
                "relative_attention_num_buckets {} is below the {BUCKETS} buckets MPNet computes",
                c.relative_attention_num_buckets
            ),
        ));
    }
    if c.max_position_embeddings <= c.pad_token_id as usize + 1 {
        return Err(Error::config(
            path,
            "max_position_embeddings leaves no position after the padding index",
        ));
    }
    Ok(Box::new(c))
}

impl ArchSpec for MpNetConfig {
    fn model_type(&self) -> &str {
        "mpnet"
    }
    fn hidden_size(&self) -> usize {
        self.hidden_size
    }
    fn position_limit(&self) -> usize {
        self.max_position_embeddings - (self.pad_token_id as usize + 1)
    }
    fn num_layers(&self) -> usize {
        self.num_hidden_layers
    }
    fn num_heads(&self) -> usize {
        self.num_attention_heads
    }
    fn params(&self) -> u64 {
        let (h, i) = (self.hidden_size as u64, self.intermediate_size as u64);
        let emb = (self.vocab_size + self.max_position_embeddings) as u64 * h + 2 * h;
        let rel = (self.relative_attention_num_buckets * self.num_attention_heads) as u64;
        emb + rel + self.num_hidden_layers as u64 * post_norm::params(h, i)
    }
    fn pad_token_id(&self) -> Option<u32> {
        Some(self.pad_token_id)
    }
    fn load(&self, config_path: &Path, w: &WeightFile) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(MpNet::load(self.clone(), config_path, w)?))
    }
}

/// The bucket of the distance from query `i` to key `j`, as MPNet (and
/// T5) compute it: exact buckets for small distances, logarithmic ones
/// up to [`MAX_DISTANCE`], keys after the query in the upper half. The
/// logarithm is taken in f32, as torch does, so the bucket edges agree.
pub fn bucket(i: usize, j: usize, num_buckets: usize) -> u32 {
    let half = num_buckets / 2;
    let mut ret = 0;
    // transformers' n = -(j - i): positive when the key precedes the query.
    if j > i {
        ret += half;
    }
    let n = i.abs_diff(j);
    let max_exact = half / 2;
    if n < max_exact {
        return (ret + n) as u32;
    }
    let scaled = (n as f32 / max_exact as f32).ln() / (MAX_DISTANCE / max_exact as f32).ln()
        * (half - max_exact) as f32;
    let large = (max_exact + scaled as usize).min(half - 1);
    (ret + large) as u32
}

/// The MPNet encoder stack (the pooler is kept for saving, not run).
#[derive(Debug, Clone)]
pub struct MpNet {
    config: MpNetConfig,
    settings: post_norm::Settings,
    word: Var,
    position: Var,
    emb_norm: Norm,
    /// `[buckets, heads]`.
    rel_bias: Var,
    layers: Vec<post_norm::Layer>,
    named: Vec<(String, Var)>,
    pooler: Vec<(String, Tensor)>,
}

const NAMES: post_norm::Names = post_norm::Names {
    q: "attention.attn.q",
    k: "attention.attn.k",
    v: "attention.attn.v",
    attn_out: "attention.attn.o",
    attn_norm: "attention.LayerNorm",
    inter: "intermediate.dense",
    out: "output.dense",
    out_norm: "output.LayerNorm",
};

impl MpNet {
    pub fn load(config: MpNetConfig, config_path: &Path, w: &WeightFile) -> Result<Self> {
        let mut p = Params::new(w, "embeddings.word_embeddings.weight");
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let word = p.var("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = p.var(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let emb_norm = p.norm("embeddings.LayerNorm", h, true, eps)?;
        let stack = post_norm::Stack::encoder_layers(
            config.num_hidden_layers,
            (h, config.intermediate_size),
            eps,
        );
        let layers = post_norm::load_stack(&mut p, &stack, &NAMES, config_path)?;
        let rel_bias = p.var(
            "encoder.relative_attention_bias.weight",
            &[
                config.relative_attention_num_buckets,
                config.num_attention_heads,
            ],
        )?;
        let pooler = p.unread_under("pooler.");
        let settings = post_norm::Settings::bert_like(
            config.num_attention_heads,
            &config.hidden_act,
            config.attention_probs_dropout_prob,
            config.hidden_dropout_prob,
            config_path,
        )?;
        Ok(MpNet {
            config,
            settings,
            word,
            position,
            emb_norm,
            rel_bias,
            layers,
            named: p.into_named(),
            pooler,
        })
    }

    /// The position bias `[heads, s, s]` every layer adds to its scores.
    fn position_bias(&self, s: usize, dev: &candle_core::Device) -> Result<Tensor> {
        let ids: Vec<u32> = (0..s * s)
            .map(|ij| bucket(ij / s, ij % s, BUCKETS))
            .collect();
        let ids = Tensor::from_vec(ids, s * s, dev)?;
        let heads = self.config.num_attention_heads;
        Ok(self
            .rel_bias
            .as_tensor()
            .embedding(&ids)?
            .reshape((s, s, heads))?
            .permute((2, 0, 1))?
            .contiguous()?)
    }
}

impl Encoder for MpNet {
    fn forward_with_states(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
        states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (_, s) = input_ids.dims2()?;
        let dev = input_ids.device();
        parts::check_len(s, c.position_limit())?;
        let x = parts::embed(&self.word, input_ids)?;
        let pos = parts::positions(c.pad_token_id + 1, s, dev)?;
        let x = x.broadcast_add(&self.position.as_tensor().embedding(&pos)?.unsqueeze(0)?)?;
        let mut x = ops::dropout(&self.emb_norm.forward(&x, ctx)?, c.hidden_dropout_prob, ctx)?;
        let mask = attention_mask.to_dtype(DType::F32)?;
        let bias = self.position_bias(s, dev)?;
        let shape = AttnShape {
            bias: Some(&bias),
            window: None,
        };
        let mut states = states;
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(x.clone());
            }
            x = layer.forward(&x, &mask, &self.settings, shape, ctx)?;
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
}

#[cfg(test)]
mod tests {
    use super::bucket;

    /// The first distance of each bucket, from transformers'
    /// `MPNetEncoder.relative_position_bucket` (torch, 32 buckets).
    #[test]
    fn buckets_match_transformers() {
        let first = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 23, 32, 46, 64, 91];
        for (b, &n) in first.iter().enumerate() {
            // Key before the query by n: bucket b; one less: the previous.
            assert_eq!(bucket(n + 5, 5, 32), b as u32, "distance {n}");
            if n > 0 {
                assert_eq!(bucket(n + 4, 5, 32), b.saturating_sub(1) as u32);
            }
            // Key after the query: the upper half.
            if n > 0 {
                assert_eq!(bucket(0, n, 32), 16 + b as u32, "distance -{n}");
            }
        }
        assert_eq!(bucket(0, 600, 32), 31);
        assert_eq!(bucket(600, 0, 32), 15);
    }
}
