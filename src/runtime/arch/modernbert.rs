//! ModernBERT (`modernbert`): pre-norm layers without biases (by
//! default), rotary positions instead of position embeddings, a GeGLU
//! feed-forward, and attention that alternates between global layers and
//! local ones that see only keys within `local_attention / 2` positions
//! (each kind with its own rotary base). The first layer has no
//! attention norm (the embeddings are normed already); a final norm
//! closes the stack.
//!
//! Both config layouts are read: transformers 5's `layer_types` and
//! `rope_parameters`, and the original `global_attn_every_n_layers`,
//! `global_rope_theta` and `local_rope_theta`.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use serde::Deserialize;
use serde_json::Value;

use super::parts::{self, Act, Linear, Norm, Params};
use super::{ArchEntry, ArchSpec, Encoder};
use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, AttnShape, Ctx};
use crate::runtime::weights::WeightFile;

pub const ENTRY: ArchEntry = ArchEntry {
    model_types: &["modernbert"],
    parse,
};

/// The fields of a ModernBERT `config.json` the encoder needs, as read.
#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "r_act")]
    hidden_activation: String,
    #[serde(default = "r_pos")]
    max_position_embeddings: usize,
    #[serde(default = "r_eps")]
    norm_eps: f64,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    attention_dropout: f64,
    #[serde(default)]
    embedding_dropout: f64,
    #[serde(default)]
    mlp_dropout: f64,
    #[serde(default = "r_local")]
    local_attention: usize,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default = "r_every")]
    global_attn_every_n_layers: usize,
    #[serde(default)]
    rope_parameters: Option<Value>,
    #[serde(default)]
    global_rope_theta: Option<f64>,
    #[serde(default)]
    local_rope_theta: Option<f64>,
    #[serde(default)]
    rope_scaling: Option<Value>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn r_act() -> String {
    "gelu".into()
}
fn r_pos() -> usize {
    8192
}
fn r_eps() -> f64 {
    1e-5
}
fn r_local() -> usize {
    128
}
fn r_every() -> usize {
    3
}

/// transformers' default rotary bases of global and local layers.
const GLOBAL_THETA: f64 = 160_000.0;
const LOCAL_THETA: f64 = 10_000.0;

/// A ModernBERT config, resolved: the kind of every layer and its base.
#[derive(Debug, Clone)]
pub struct ModernBertConfig {
    raw: RawConfig,
    /// `true` for a local (sliding-window) layer.
    local: Vec<bool>,
    global_theta: f64,
    local_theta: f64,
    act: Act,
}

fn parse(raw: &Value, path: &Path) -> Result<Box<dyn ArchSpec>> {
    Ok(Box::new(parse_resolved(raw, path)?))
}

/// The config with every layer's kind and the rotary bases resolved.
fn parse_resolved(raw: &Value, path: &Path) -> Result<ModernBertConfig> {
    let r: RawConfig = super::from_value(raw, path)?;
    super::check_heads(path, r.hidden_size, r.num_attention_heads)?;
    if let Some(hd) = r
        .head_dim
        .filter(|&hd| hd * r.num_attention_heads != r.hidden_size)
    {
        return Err(Error::config(
            path,
            format!("head_dim {hd} times the heads differs from hidden_size; not supported"),
        ));
    }
    let act = Act::from_config(&r.hidden_activation, "hidden_activation", path)?;
    if r.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::config(path, "rope_scaling is not supported"));
    }
    let local = match &r.layer_types {
        Some(kinds) => {
            if kinds.len() != r.num_hidden_layers {
                return Err(Error::config(
                    path,
                    format!(
                        "layer_types lists {} layers for num_hidden_layers {}",
                        kinds.len(),
                        r.num_hidden_layers
                    ),
                ));
            }
            kinds
                .iter()
                .map(|k| match k.as_str() {
                    "full_attention" => Ok(false),
                    "sliding_attention" => Ok(true),
                    other => Err(Error::config(
                        path,
                        format!("layer type `{other}` is not supported (full_attention, sliding_attention)"),
                    )),
                })
                .collect::<Result<Vec<bool>>>()?
        }
        None => {
            if r.global_attn_every_n_layers == 0 {
                return Err(Error::config(
                    path,
                    "global_attn_every_n_layers must be at least 1",
                ));
            }
            (0..r.num_hidden_layers)
                .map(|i| i % r.global_attn_every_n_layers != 0)
                .collect()
        }
    };
    let theta = |kind: &str, old: Option<f64>, default: f64| -> Result<f64> {
        let Some(p) = r.rope_parameters.as_ref().and_then(|p| p.get(kind)) else {
            return Ok(old.unwrap_or(default));
        };
        if let Some(t) = p.get("rope_type").and_then(Value::as_str) {
            if t != "default" {
                return Err(Error::config(
                    path,
                    format!("rope_type `{t}` of {kind} is not supported (default)"),
                ));
            }
        }
        Ok(p.get("rope_theta")
            .and_then(Value::as_f64)
            .or(old)
            .unwrap_or(default))
    };
    let global_theta = theta("full_attention", r.global_rope_theta, GLOBAL_THETA)?;
    let local_theta = theta("sliding_attention", r.local_rope_theta, LOCAL_THETA)?;
    Ok(ModernBertConfig {
        raw: r,
        local,
        global_theta,
        local_theta,
        act,
    })
}

impl ArchSpec for ModernBertConfig {
    fn model_type(&self) -> &str {
        "modernbert"
    }
    fn hidden_size(&self) -> usize {
        self.raw.hidden_size
    }
    fn position_limit(&self) -> usize {
        self.raw.max_position_embeddings
    }
    fn num_layers(&self) -> usize {
        self.raw.num_hidden_layers
    }
    fn num_heads(&self) -> usize {
        self.raw.num_attention_heads
    }
    fn params(&self) -> u64 {
        let r = &self.raw;
        let (h, i, n) = (
            r.hidden_size as u64,
            r.intermediate_size as u64,
            r.num_hidden_layers as u64,
        );
        let nb = |on: bool, x: u64| if on { x } else { 0 };
        let norm = h + nb(r.norm_bias, h);
        let attn = 3 * h * h + nb(r.attention_bias, 3 * h) + h * h + nb(r.attention_bias, h);
        let mlp = 2 * i * h + nb(r.mlp_bias, 2 * i) + i * h + nb(r.mlp_bias, h);
        // Every layer but the first has an attention norm.
        r.vocab_size as u64 * h + norm + n * (attn + mlp + norm) + n.saturating_sub(1) * norm + norm
    }
    fn pad_token_id(&self) -> Option<u32> {
        self.raw.pad_token_id
    }
    fn load(&self, config_path: &Path, w: &WeightFile) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(ModernBert::load(self.clone(), config_path, w)?))
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Option<Norm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: Norm,
    wi: Linear,
    mlp_wo: Linear,
    local: bool,
}

/// The ModernBERT encoder stack.
#[derive(Debug, Clone)]
pub struct ModernBert {
    config: ModernBertConfig,
    word: Var,
    emb_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    named: Vec<(String, Var)>,
}

impl ModernBert {
    pub fn load(config: ModernBertConfig, config_path: &Path, w: &WeightFile) -> Result<Self> {
        let r = &config.raw;
        let mut p = Params::new(w, "embeddings.tok_embeddings.weight");
        p.check_layer_count(
            "layers.",
            "num_hidden_layers",
            r.num_hidden_layers,
            config_path,
        )?;
        let (h, i, eps) = (r.hidden_size, r.intermediate_size, r.norm_eps);
        let word = p.var("embeddings.tok_embeddings.weight", &[r.vocab_size, h])?;
        let emb_norm = p.norm("embeddings.norm", h, r.norm_bias, eps)?;
        let mut layers = Vec::with_capacity(r.num_hidden_layers);
        for (n, &local) in config.local.iter().enumerate() {
            let l = format!("layers.{n}.");
            let attn_norm = if n == 0 {
                None
            } else {
                Some(p.norm(&format!("{l}attn_norm"), h, r.norm_bias, eps)?)
            };
            layers.push(Layer {
                attn_norm,
                wqkv: p.linear(&format!("{l}attn.Wqkv"), 3 * h, h, r.attention_bias)?,
                wo: p.linear(&format!("{l}attn.Wo"), h, h, r.attention_bias)?,
                mlp_norm: p.norm(&format!("{l}mlp_norm"), h, r.norm_bias, eps)?,
                wi: p.linear(&format!("{l}mlp.Wi"), 2 * i, h, r.mlp_bias)?,
                mlp_wo: p.linear(&format!("{l}mlp.Wo"), h, i, r.mlp_bias)?,
                local,
            });
        }
        let final_norm = p.norm("final_norm", h, r.norm_bias, eps)?;
        Ok(ModernBert {
            named: p.into_named(),
            config,
            word,
            emb_norm,
            layers,
            final_norm,
        })
    }

    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        mask: &Tensor,
        rope: &Rope,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let r = &self.config.raw;
        let normed = match &l.attn_norm {
            Some(n) => n.forward(x, ctx)?,
            None => x.clone(),
        };
        let h = r.hidden_size;
        let qkv = l.wqkv.forward(&normed, ctx)?;
        let (cos, sin) = if l.local {
            (&rope.local_cos, &rope.local_sin)
        } else {
            (&rope.global_cos, &rope.global_sin)
        };
        let heads = r.num_attention_heads;
        let q = rotate(&qkv.narrow(2, 0, h)?, heads, cos, sin)?;
        let k = rotate(&qkv.narrow(2, h, h)?, heads, cos, sin)?;
        let v = qkv.narrow(2, 2 * h, h)?;
        let shape = AttnShape {
            bias: None,
            window: l.local.then_some(r.local_attention / 2),
        };
        let a = ops::Attn {
            mask,
            heads,
            dropout_p: r.attention_dropout,
            shape,
        };
        let attn = ops::attention(&q, &k, &v, a, ctx)?;
        let attn = ops::dropout(&l.wo.forward(&attn, ctx)?, r.attention_dropout, ctx)?;
        let x = (x + attn)?;
        let gates = l.wi.forward(&l.mlp_norm.forward(&x, ctx)?, ctx)?;
        let i = r.intermediate_size;
        let glu = (self
            .config
            .act
            .apply(&gates.narrow(2, 0, i)?.contiguous()?, ctx)?
            * gates.narrow(2, i, i)?)?;
        let mlp = l
            .mlp_wo
            .forward(&ops::dropout(&glu, r.mlp_dropout, ctx)?, ctx)?;
        Ok((x + mlp)?)
    }
}

/// cos and sin tables `[seq, head_dim]` of both kinds of layer.
struct Rope {
    global_cos: Tensor,
    global_sin: Tensor,
    local_cos: Tensor,
    local_sin: Tensor,
}

/// `cat(freqs, freqs)` of positions `0..s` times `theta^(-2k/d)`, in f32
/// as transformers computes it, as (cos, sin).
fn rope_tables(s: usize, d: usize, theta: f64, dev: &Device) -> Result<(Tensor, Tensor)> {
    let half = d / 2;
    let inv: Vec<f32> = (0..half)
        .map(|k| 1.0 / (theta as f32).powf((2 * k) as f32 / d as f32))
        .collect();
    let mut ang = Vec::with_capacity(s * d);
    for pos in 0..s {
        for _ in 0..2 {
            ang.extend(inv.iter().map(|f| pos as f32 * f));
        }
    }
    let ang = Tensor::from_vec(ang, (s, d), dev)?;
    Ok((ang.cos()?, ang.sin()?))
}

/// Rotary embedding of `x` `[b, s, heads * d]`: each head's vector is
/// rotated by position, `x * cos + rotate_half(x) * sin`, where
/// `rotate_half` swaps the two halves and negates the second.
fn rotate(x: &Tensor, heads: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    let d = h / heads;
    let x4 = x.reshape((b, s, heads, d))?;
    let x1 = x4.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x4.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let cos = cos.reshape((1, s, 1, d))?;
    let sin = sin.reshape((1, s, 1, d))?;
    let y = (x4.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?;
    Ok(y.reshape((b, s, h))?)
}

impl Encoder for ModernBert {
    fn forward_with_states(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
        states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let r = &self.config.raw;
        let (_, s) = input_ids.dims2()?;
        let dev = input_ids.device();
        parts::check_len(s, r.max_position_embeddings)?;
        let x = parts::embed(&self.word, input_ids)?;
        let mut x = ops::dropout(&self.emb_norm.forward(&x, ctx)?, r.embedding_dropout, ctx)?;
        let d = r.hidden_size / r.num_attention_heads;
        let (global_cos, global_sin) = rope_tables(s, d, self.config.global_theta, dev)?;
        let (local_cos, local_sin) = rope_tables(s, d, self.config.local_theta, dev)?;
        let rope = Rope {
            global_cos,
            global_sin,
            local_cos,
            local_sin,
        };
        let mask = attention_mask.to_dtype(DType::F32)?;
        let mut states = states;
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(x.clone());
            }
            x = self.layer_forward(layer, &x, &mask, &rope, ctx)?;
        }
        self.final_norm.forward(&x, ctx)
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.named.clone()
    }

    fn extra_tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn vocab_rows(&self) -> usize {
        self.config.raw.vocab_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(extra: Value) -> ModernBertConfig {
        let mut v = serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
            "num_attention_heads": 2, "intermediate_size": 16,
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        parse_resolved(&v, Path::new("config.json")).unwrap()
    }

    #[test]
    fn both_layouts_give_the_layer_kinds_and_bases() {
        let old = parsed(serde_json::json!({
            "global_attn_every_n_layers": 2, "global_rope_theta": 1000.0, "local_rope_theta": 50.0,
        }));
        assert_eq!(old.local, [false, true, false, true]);
        assert_eq!((old.global_theta, old.local_theta), (1000.0, 50.0));
        let new = parsed(serde_json::json!({
            "layer_types": ["sliding_attention", "full_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {
                "full_attention": {"rope_type": "default", "rope_theta": 7.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 3.0},
            },
        }));
        assert_eq!(new.local, [true, false, false, true]);
        assert_eq!((new.global_theta, new.local_theta), (7.0, 3.0));
        let default = parsed(serde_json::json!({}));
        assert_eq!(default.local, [false, true, true, false]);
        assert_eq!(
            (default.global_theta, default.local_theta),
            (GLOBAL_THETA, LOCAL_THETA)
        );
    }

    #[test]
    fn rotary_tables_follow_the_formula() {
        let (cos, sin) = rope_tables(4, 4, 100.0, &Device::Cpu).unwrap();
        let (cos, sin) = (cos.to_vec2::<f32>().unwrap(), sin.to_vec2::<f32>().unwrap());
        // d = 4: frequencies 1 and 100^(-1/2) = 0.1, each twice.
        for (k, f) in [1.0f32, 0.1, 1.0, 0.1].iter().enumerate() {
            assert!((cos[3][k] - (3.0 * f).cos()).abs() < 1e-6);
            assert!((sin[3][k] - (3.0 * f).sin()).abs() < 1e-6);
        }
    }
}
