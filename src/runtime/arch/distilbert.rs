//! DistilBERT (`distilbert`): BERT's post-norm layers under other names,
//! no segment embeddings, no dropout after the attention's output
//! projection, and optionally fixed sinusoidal positions (which stay
//! untrained, as transformers freezes them).

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
    model_types: &["distilbert"],
    parse,
};

/// The fields of a DistilBERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    #[serde(default = "d_dim")]
    pub dim: usize,
    #[serde(default = "d_layers")]
    pub n_layers: usize,
    #[serde(default = "d_heads")]
    pub n_heads: usize,
    #[serde(default = "d_hidden")]
    pub hidden_dim: usize,
    #[serde(default = "d_drop")]
    pub dropout: f64,
    #[serde(default = "d_drop")]
    pub attention_dropout: f64,
    #[serde(default = "d_act")]
    pub activation: String,
    #[serde(default = "d_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn d_dim() -> usize {
    768
}
fn d_layers() -> usize {
    6
}
fn d_heads() -> usize {
    12
}
fn d_hidden() -> usize {
    3072
}
fn d_drop() -> f64 {
    0.1
}
fn d_act() -> String {
    "gelu".into()
}
fn d_pos() -> usize {
    512
}

/// DistilBERT's layer norms use transformers' fixed epsilon.
const EPS: f64 = 1e-12;

fn parse(raw: &Value, path: &Path) -> Result<Box<dyn ArchSpec>> {
    let c: DistilBertConfig = super::from_value(raw, path)?;
    super::check_heads(path, c.dim, c.n_heads)?;
    Act::from_config(&c.activation, "activation", path)?;
    if c.max_position_embeddings == 0 {
        return Err(Error::config(
            path,
            "max_position_embeddings must be at least 1",
        ));
    }
    Ok(Box::new(c))
}

impl ArchSpec for DistilBertConfig {
    fn model_type(&self) -> &str {
        "distilbert"
    }
    fn hidden_size(&self) -> usize {
        self.dim
    }
    fn position_limit(&self) -> usize {
        self.max_position_embeddings
    }
    fn num_layers(&self) -> usize {
        self.n_layers
    }
    fn num_heads(&self) -> usize {
        self.n_heads
    }
    fn params(&self) -> u64 {
        let (h, i) = (self.dim as u64, self.hidden_dim as u64);
        let pos = if self.sinusoidal_pos_embds {
            0
        } else {
            self.max_position_embeddings as u64
        };
        let emb = (self.vocab_size as u64 + pos) * h + 2 * h;
        emb + self.n_layers as u64 * post_norm::params(h, i)
    }
    fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }
    fn load(&self, config_path: &Path, w: &WeightFile) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(DistilBert::load(self.clone(), config_path, w)?))
    }
}

/// The DistilBERT encoder stack.
#[derive(Debug, Clone)]
pub struct DistilBert {
    config: DistilBertConfig,
    settings: post_norm::Settings,
    word: Var,
    /// Learned positions, or the fixed sinusoidal table (a constant).
    position: Tensor,
    emb_norm: Norm,
    layers: Vec<post_norm::Layer>,
    named: Vec<(String, Var)>,
    extra: Vec<(String, Tensor)>,
}

const NAMES: post_norm::Names = post_norm::Names {
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    inter: "ffn.lin1",
    out: "ffn.lin2",
    out_norm: "output_layer_norm",
};

const POSITIONS: &str = "embeddings.position_embeddings.weight";

impl DistilBert {
    pub fn load(config: DistilBertConfig, config_path: &Path, w: &WeightFile) -> Result<Self> {
        let mut p = Params::new(w, "embeddings.word_embeddings.weight");
        let h = config.dim;
        let word = p.var("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let pos_shape = [config.max_position_embeddings, h];
        let mut extra = Vec::new();
        let position = if config.sinusoidal_pos_embds {
            let t = p.constant(POSITIONS, &pos_shape)?;
            extra.push((POSITIONS.to_string(), t.clone()));
            t
        } else {
            p.var(POSITIONS, &pos_shape)?.as_tensor().clone()
        };
        let emb_norm = p.norm("embeddings.LayerNorm", h, true, EPS)?;
        let stack = post_norm::Stack {
            stem: "transformer.layer.",
            field: "n_layers",
            count: config.n_layers,
            dims: (h, config.hidden_dim),
            eps: EPS,
        };
        let layers = post_norm::load_stack(&mut p, &stack, &NAMES, config_path)?;
        let settings = post_norm::Settings {
            heads: config.n_heads,
            act: Act::from_config(&config.activation, "activation", config_path)?,
            attn_dropout: config.attention_dropout,
            attn_out_dropout: 0.0,
            ffn_dropout: config.dropout,
        };
        Ok(DistilBert {
            config,
            settings,
            word,
            position,
            emb_norm,
            layers,
            named: p.into_named(),
            extra,
        })
    }
}

impl Encoder for DistilBert {
    fn forward_with_states(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        attention_mask: &Tensor,
        ctx: &Ctx,
        states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (_, s) = input_ids.dims2()?;
        parts::check_len(s, self.config.max_position_embeddings)?;
        let x = parts::embed(&self.word, input_ids)?;
        let pos = parts::positions(0, s, input_ids.device())?;
        let x = x.broadcast_add(&self.position.embedding(&pos)?.unsqueeze(0)?)?;
        let mut x = ops::dropout(&self.emb_norm.forward(&x, ctx)?, self.config.dropout, ctx)?;
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
        self.extra.clone()
    }

    fn vocab_rows(&self) -> usize {
        self.config.vocab_size
    }
}
