//! A trainable BERT-family encoder (BERT, MiniLM, RoBERTa, XLM-RoBERTa).
//!
//! Written on candle's differentiable ops: every weight is a [`Var`], and
//! the numeric kernels come from [`crate::runtime::ops`], which uses fused
//! kernels without backward only when gradients are off.

use std::path::Path;

use candle_core::{DType, Tensor, Var};
use serde::Deserialize;

use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, Ctx};
use crate::runtime::weights::WeightFile;

/// The fields of a Hugging Face `config.json` that the encoder needs.
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

impl BertConfig {
    /// The longest input the position embeddings allow (RoBERTa's
    /// positions start after the padding index).
    pub fn position_limit(&self) -> usize {
        if self.roberta_positions() {
            self.max_position_embeddings
                .saturating_sub(self.pad_token_id.unwrap_or(1) as usize + 1)
        } else {
            self.max_position_embeddings
        }
    }

    /// Whether positions start after the padding index (RoBERTa family).
    pub fn roberta_positions(&self) -> bool {
        matches!(
            self.model_type.as_str(),
            "roberta" | "xlm-roberta" | "camembert"
        )
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        let supported = ["bert", "roberta", "xlm-roberta", "camembert"];
        if !supported.contains(&self.model_type.as_str()) {
            return Err(Error::config(
                path,
                format!(
                    "model_type `{}` is not supported (supported: {})",
                    self.model_type,
                    supported.join(", ")
                ),
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(Error::config(
                path,
                "hidden_size must be a multiple of num_attention_heads",
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "relu") {
            return Err(Error::config(
                path,
                format!(
                    "hidden_act `{}` is not supported (gelu, relu)",
                    self.hidden_act
                ),
            ));
        }
        if let Some(p) = &self.position_embedding_type {
            if p != "absolute" {
                return Err(Error::config(
                    path,
                    format!("position_embedding_type `{p}` is not supported (absolute)"),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Linear {
    w: Var,
    b: Var,
}

impl Linear {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        ops::linear(x, self.w.as_tensor(), Some(self.b.as_tensor()), ctx)
    }

    fn proj(&self) -> ops::Proj<'_> {
        (self.w.as_tensor(), self.b.as_tensor())
    }
}

#[derive(Debug, Clone)]
struct Norm {
    w: Var,
    b: Var,
}

#[derive(Debug, Clone)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// The BERT encoder stack (embeddings + layers; no pooler).
#[derive(Debug, Clone)]
pub struct Bert {
    pub config: BertConfig,
    /// The prefix its tensors carried in the weights file (`""`, `bert.`, ...).
    pub prefix: String,
    word: Var,
    position: Var,
    token_type: Var,
    emb_norm: Norm,
    layers: Vec<Layer>,
    /// Every parameter by its name in the weights file, in load order.
    named: Vec<(String, Var)>,
    /// Tensors the encoder does not use (the pooler), kept so that a saved
    /// model is complete for other tools.
    pub passthrough: Vec<(String, Tensor)>,
}

impl Bert {
    /// Build from a config and a weights file.
    pub fn load(config: BertConfig, config_path: &Path, w: &WeightFile) -> Result<Self> {
        config.validate(config_path)?;
        let prefix = detect_prefix(w);
        // Layers in the weights beyond `num_hidden_layers` would be
        // silently dropped: the config and the weights must agree.
        let layer_prefix = format!("{prefix}encoder.layer.");
        let in_weights = w
            .names()
            .filter_map(|n| {
                n.strip_prefix(&layer_prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |m| m + 1);
        if in_weights > config.num_hidden_layers {
            return Err(Error::config(
                config_path,
                format!(
                    "num_hidden_layers is {}, but {} holds {in_weights} layers",
                    config.num_hidden_layers,
                    w.path.display()
                ),
            ));
        }
        let h = config.hidden_size;
        let mut named = Vec::new();
        let mut get = |name: &str, shape: &[usize]| -> Result<Var> {
            let full = format!("{prefix}{name}");
            let mut names = vec![full.clone()];
            if let Some(stem) = name.strip_suffix(".weight") {
                if stem.ends_with("LayerNorm") {
                    names.push(format!("{prefix}{stem}.gamma"));
                }
            }
            if let Some(stem) = name.strip_suffix(".bias") {
                if stem.ends_with("LayerNorm") {
                    names.push(format!("{prefix}{stem}.beta"));
                }
            }
            let v = w.var_any(&names, shape)?;
            named.push((full, v.clone()));
            Ok(v)
        };
        let word = get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let emb_norm = Norm {
            w: get("embeddings.LayerNorm.weight", &[h])?,
            b: get("embeddings.LayerNorm.bias", &[h])?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let i_size = config.intermediate_size;
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}.");
            let mut lin = |name: &str, out: usize, inp: usize| -> Result<Linear> {
                Ok(Linear {
                    w: get(&format!("{p}{name}.weight"), &[out, inp])?,
                    b: get(&format!("{p}{name}.bias"), &[out])?,
                })
            };
            let q = lin("attention.self.query", h, h)?;
            let k = lin("attention.self.key", h, h)?;
            let v = lin("attention.self.value", h, h)?;
            let attn_out = lin("attention.output.dense", h, h)?;
            let inter = lin("intermediate.dense", i_size, h)?;
            let out = lin("output.dense", h, i_size)?;
            let attn_norm = Norm {
                w: get(&format!("{p}attention.output.LayerNorm.weight"), &[h])?,
                b: get(&format!("{p}attention.output.LayerNorm.bias"), &[h])?,
            };
            let out_norm = Norm {
                w: get(&format!("{p}output.LayerNorm.weight"), &[h])?,
                b: get(&format!("{p}output.LayerNorm.bias"), &[h])?,
            };
            layers.push(Layer {
                q,
                k,
                v,
                attn_out,
                attn_norm,
                inter,
                out,
                out_norm,
            });
        }
        let pooler = format!("{prefix}pooler.");
        let mut passthrough: Vec<(String, Tensor)> = w
            .names()
            .filter(|n| n.starts_with(&pooler))
            .filter_map(|n| w.tensor(n).map(|t| (n.to_string(), t.clone())))
            .collect();
        passthrough.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Bert {
            config,
            prefix,
            passthrough,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            named,
        })
    }

    /// Rows of the token embedding matrix (the ids it can look up).
    pub fn vocab_rows(&self) -> usize {
        self.word.as_tensor().dims().first().copied().unwrap_or(0)
    }

    /// Every trainable parameter, named as in the weights file.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.named.clone()
    }

    /// Token embeddings `[batch, seq, hidden]` for ids, segment ids and an
    /// f32 attention mask, all `[batch, seq]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, s) = input_ids.dims2()?;
        let dev = input_ids.device();
        let max_pos = if c.roberta_positions() {
            c.max_position_embeddings
                .saturating_sub(c.pad_token_id.unwrap_or(1) as usize + 1)
        } else {
            c.max_position_embeddings
        };
        if s > max_pos {
            return Err(Error::Msg(format!(
                "sequence of {s} tokens exceeds the model's {max_pos} positions"
            )));
        }
        let ids = input_ids.flatten_all()?;
        let mut x = self
            .word
            .as_tensor()
            .embedding(&ids)?
            .reshape((b, s, c.hidden_size))?;
        let start = if c.roberta_positions() {
            c.pad_token_id.unwrap_or(1) + 1
        } else {
            0
        };
        let pos = Tensor::arange(start, start + s as u32, dev)?;
        let pos_emb = self.position.as_tensor().embedding(&pos)?.unsqueeze(0)?;
        x = x.broadcast_add(&pos_emb)?;
        let tt = match token_type_ids {
            Some(t) => t.flatten_all()?,
            None => Tensor::zeros(b * s, DType::U32, dev)?,
        };
        let tt_emb = self
            .token_type
            .as_tensor()
            .embedding(&tt)?
            .reshape((b, s, c.hidden_size))?;
        x = (x + tt_emb)?;
        x = norm(&x, &self.emb_norm, c.layer_norm_eps, ctx)?;
        x = ops::dropout(&x, c.hidden_dropout_prob, ctx)?;

        let mask = attention_mask.to_dtype(DType::F32)?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &mask, ctx)?;
        }
        Ok(x)
    }

    fn layer_forward(&self, l: &Layer, x: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let c = &self.config;
        let attn = ops::self_attention(
            x,
            l.q.proj(),
            l.k.proj(),
            l.v.proj(),
            mask,
            c.num_attention_heads,
            c.attention_probs_dropout_prob,
            ctx,
        )?;
        let attn = ops::dropout(&l.attn_out.forward(&attn, ctx)?, c.hidden_dropout_prob, ctx)?;
        let x = add_norm(&attn, x, &l.attn_norm, c.layer_norm_eps, ctx)?;
        let inter = if c.hidden_act == "relu" {
            l.inter.forward(&x, ctx)?.relu()?
        } else {
            ops::linear_gelu(&x, l.inter.w.as_tensor(), Some(l.inter.b.as_tensor()), ctx)?
        };
        let out = ops::dropout(&l.out.forward(&inter, ctx)?, c.hidden_dropout_prob, ctx)?;
        add_norm(&out, &x, &l.out_norm, c.layer_norm_eps, ctx)
    }
}

fn add_norm(x: &Tensor, residual: &Tensor, n: &Norm, eps: f64, ctx: &Ctx) -> Result<Tensor> {
    ops::add_layer_norm(x, residual, n.w.as_tensor(), n.b.as_tensor(), eps, ctx)
}

fn norm(x: &Tensor, n: &Norm, eps: f64, ctx: &Ctx) -> Result<Tensor> {
    ops::layer_norm(x, n.w.as_tensor(), n.b.as_tensor(), eps, ctx)
}

/// The prefix the file puts before `embeddings.word_embeddings.weight`.
fn detect_prefix(w: &WeightFile) -> String {
    const KEY: &str = "embeddings.word_embeddings.weight";
    let mut best: Option<String> = None;
    for name in w.names() {
        if let Some(p) = name.strip_suffix(KEY) {
            if best.as_ref().is_none_or(|b| p.len() < b.len()) {
                best = Some(p.to_string());
            }
        }
    }
    best.unwrap_or_default()
}

/// Read and validate `config.json`.
pub fn read_config(path: &Path) -> Result<(BertConfig, serde_json::Value)> {
    let raw: serde_json::Value = crate::runtime::error::read_json(path)?;
    let cfg: BertConfig =
        serde_json::from_value(raw.clone()).map_err(|e| Error::config(path, e.to_string()))?;
    Ok((cfg, raw))
}
