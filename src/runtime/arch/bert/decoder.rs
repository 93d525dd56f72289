//! TSDAE's decoder for the BERT family: transformers'
//! `BertLMHeadModel` / `RobertaForCausalLM` (`is_decoder`,
//! `add_cross_attention`) with every weight it shares with the encoder
//! tied to it, as sentence-transformers' DenoisingAutoEncoderLoss builds it
//! with `tie_encoder_decoder=True`.
//!
//! What is shared: the embeddings and, in every layer, the self-attention,
//! its output and norm, the feed-forward and its norm, and the head's
//! output matrix (the token embeddings, as transformers ties it). What the
//! decoder has of its own: in every layer a cross-attention block between
//! the self-attention and the feed-forward (query, key, value, output
//! projection, norm), and the head's transform (dense, activation, norm)
//! and output bias. Those come from the model's weights file when it holds
//! them (a checkpoint saved with its language-model head, such as
//! `bert-base-uncased`'s `cls.predictions.*`), else are drawn as
//! transformers' `_init_weights` draws them: projections from
//! `N(0, initializer_range)` with zero biases, norms at 1 and 0.
//!
//! The self-attention is causal and, as in sentence-transformers (which
//! passes no decoder attention mask), not masked otherwise: padding at the
//! end of a row is seen only by later padding positions, whose predictions
//! the loss ignores. The memory is one vector per row (the sentence
//! embedding), never padding, so the cross-attention's softmax is 1: its
//! query and key still exist (and get the zero gradient torch gives them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor, Var};

use super::Bert;
use crate::runtime::arch::parts::{self, Act, Linear, Norm};
use crate::runtime::arch::Decoder;
use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, AttnShape, Ctx};
use crate::runtime::train::rng::Rng;
use crate::runtime::weights::WeightFile;

/// The cross-attention block of one layer.
#[derive(Debug)]
struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm: Norm,
}

/// The decoder: the encoder (whose clone shares its weights), the
/// cross-attentions and the head.
#[derive(Debug)]
pub struct BertDecoder {
    base: Bert,
    cross: Vec<CrossAttention>,
    head_dense: Linear,
    head_act: Act,
    head_norm: Norm,
    head_bias: Var,
    named: Vec<(String, Var)>,
}

/// Whether `name` (without the base model's prefix, for the layers) is a
/// weight of the decoder alone.
fn decoder_only(name: &str) -> bool {
    name.contains(".crossattention.")
        || name.starts_with("cls.predictions.")
        || name.starts_with("lm_head.")
}

/// The decoder's own weights that a model's file holds.
#[derive(Debug, Clone)]
pub(super) struct FileWeights {
    /// The file, for messages.
    path: PathBuf,
    /// By their names without the base model's prefix.
    tensors: Vec<(String, Tensor)>,
}

/// The decoder's own weights in a model's file, by their names without the
/// base model's prefix (`bert.`, `roberta.`); the head's output matrix is
/// left out (it is the token embeddings).
pub(super) fn weights_in_file(w: &WeightFile, prefix: &str) -> FileWeights {
    let mut tensors: Vec<(String, Tensor)> = w
        .names()
        .filter_map(|n| {
            let rel = n.strip_prefix(prefix).unwrap_or(n);
            let head_matrix = rel.ends_with("decoder.weight");
            (decoder_only(rel) && !head_matrix).then(|| (rel.to_string(), n))
        })
        .filter_map(|(rel, n)| Some((rel, w.tensor(n)?.to_dtype(DType::F32).ok()?)))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    FileWeights {
        path: w.path.clone(),
        tensors,
    }
}

/// Makes the decoder's own parameters: from the file's tensors when there,
/// else new, and records their names.
struct Init<'a> {
    path: &'a Path,
    file: HashMap<&'a str, &'a Tensor>,
    rng: Rng,
    std: f64,
    device: candle_core::Device,
    named: Vec<(String, Var)>,
}

impl Init<'_> {
    /// The tensor `names[0]` (or one of its other names) of `shape` from the
    /// file, else `fresh()`.
    fn var(&mut self, names: &[&str], shape: &[usize], fresh: Fresh) -> Result<Var> {
        let found = names.iter().find_map(|n| self.file.get(n).copied());
        let t = match found {
            Some(t) if t.dims() == shape => t.clone(),
            Some(t) => {
                return Err(Error::Weights {
                    path: self.path.to_path_buf(),
                    msg: format!(
                        "the decoder weight `{}` has shape {:?}, expected {shape:?}",
                        names[0],
                        t.dims()
                    ),
                })
            }
            None => {
                let n: usize = shape.iter().product();
                let v = match fresh {
                    Fresh::Normal => self.normal(n),
                    Fresh::Zeros => vec![0f32; n],
                    Fresh::Ones => vec![1f32; n],
                };
                Tensor::from_vec(v, shape, &self.device)?
            }
        };
        let v = Var::from_tensor(&t)?;
        self.named.push((names[0].to_string(), v.clone()));
        Ok(v)
    }

    /// `n` draws of `N(0, std)` (Box-Muller).
    fn normal(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = ((self.rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let u2 = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let r = (-2.0 * u1.ln()).sqrt() * self.std;
            let th = std::f64::consts::TAU * u2;
            out.push((r * th.cos()) as f32);
            out.push((r * th.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            w: self.var(&[&format!("{name}.weight")], &[out, inp], Fresh::Normal)?,
            b: Some(self.var(&[&format!("{name}.bias")], &[out], Fresh::Zeros)?),
        })
    }

    fn norm(&mut self, name: &str, h: usize, eps: f64) -> Result<Norm> {
        let w = self.var(&[&format!("{name}.weight")], &[h], Fresh::Ones)?;
        let b = self.var(&[&format!("{name}.bias")], &[h], Fresh::Zeros)?;
        Norm::new(w, Some(b), eps)
    }
}

#[derive(Clone, Copy)]
enum Fresh {
    Normal,
    Zeros,
    Ones,
}

impl BertDecoder {
    pub fn new(enc: &Bert, seed: u64) -> Result<Self> {
        let c = &enc.config;
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let mut init = Init {
            path: &enc.decoder_init.path,
            file: enc
                .decoder_init
                .tensors
                .iter()
                .map(|(n, t)| (n.as_str(), t))
                .collect(),
            rng: Rng::derived(seed, "tsdae.decoder"),
            std: c.initializer_range,
            device: enc.word.device().clone(),
            named: Vec::new(),
        };
        let mut cross = Vec::with_capacity(enc.layers.len());
        for i in 0..enc.layers.len() {
            let p = format!("encoder.layer.{i}.crossattention.");
            cross.push(CrossAttention {
                q: init.linear(&format!("{p}self.query"), h, h)?,
                k: init.linear(&format!("{p}self.key"), h, h)?,
                v: init.linear(&format!("{p}self.value"), h, h)?,
                out: init.linear(&format!("{p}output.dense"), h, h)?,
                norm: init.norm(&format!("{p}output.LayerNorm"), h, eps)?,
            });
        }
        // BERT's head applies the config's activation, RoBERTa's always
        // the exact GELU; their weights are named differently.
        let (head_dense, head_norm, head_bias, head_act) = if c.roberta_positions() {
            (
                init.linear("lm_head.dense", h, h)?,
                init.norm("lm_head.layer_norm", h, eps)?,
                init.var(
                    &["lm_head.bias", "lm_head.decoder.bias"],
                    &[c.vocab_size],
                    Fresh::Zeros,
                )?,
                Act::Gelu,
            )
        } else {
            (
                init.linear("cls.predictions.transform.dense", h, h)?,
                init.norm("cls.predictions.transform.LayerNorm", h, eps)?,
                init.var(
                    &["cls.predictions.bias", "cls.predictions.decoder.bias"],
                    &[c.vocab_size],
                    Fresh::Zeros,
                )?,
                enc.settings.act,
            )
        };
        Ok(BertDecoder {
            base: enc.clone(),
            cross,
            head_dense,
            head_act,
            head_norm,
            head_bias,
            named: init.named,
        })
    }
}

impl CrossAttention {
    /// `norm(x + dropout(out(attention(x -> memory))))`.
    fn forward(&self, x: &Tensor, memory: &Tensor, base: &Bert, ctx: &Ctx) -> Result<Tensor> {
        let s = &base.settings;
        let (b, t, h) = x.dims3()?;
        let m = memory.dim(1)?;
        let d = h / s.heads;
        let heads = |y: &Tensor, len: usize| -> Result<Tensor> {
            Ok(y.reshape((b, len, s.heads, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = heads(&(self.q.forward(x, ctx)? * (1.0 / (d as f64).sqrt()))?, t)?;
        let k = heads(&self.k.forward(memory, ctx)?, m)?;
        let v = heads(&self.v.forward(memory, ctx)?, m)?;
        let probs = ops::softmax(&q.matmul(&k.t()?.contiguous()?)?, ctx)?;
        let probs = ops::dropout(&probs, s.attn_dropout, ctx)?;
        let attn = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, h))?;
        let attn = ops::dropout(&self.out.forward(&attn, ctx)?, s.attn_out_dropout, ctx)?;
        self.norm.add_forward(&attn, x, ctx)
    }
}

/// `[heads, t, t]`: 0 where a position may attend (itself and before),
/// -1e9 after it (its softmax weight is then exactly 0, as with torch's
/// mask of the lowest float).
fn causal_bias(heads: usize, t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..heads * t * t)
        .map(|hij| {
            let ij = hij % (t * t);
            if ij % t > ij / t {
                -1e9
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (heads, t, t), device)?)
}

impl Decoder for BertDecoder {
    fn forward(&self, ids: &Tensor, memory: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let enc = &self.base;
        let c = &enc.config;
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        parts::check_len(t, crate::runtime::arch::ArchSpec::position_limit(c))?;
        let mut x = parts::embed(&enc.word, ids)?;
        let pos = parts::positions(c.position_start(), t, dev)?;
        x = x.broadcast_add(&enc.position.as_tensor().embedding(&pos)?.unsqueeze(0)?)?;
        let segments = Tensor::zeros((b, t), DType::U32, dev)?;
        x = (x + parts::embed(&enc.token_type, &segments)?)?;
        x = enc.emb_norm.forward(&x, ctx)?;
        x = ops::dropout(&x, c.hidden_dropout_prob, ctx)?;
        let keys = Tensor::ones((b, t), DType::F32, dev)?;
        let causal = causal_bias(enc.settings.heads, t, dev)?;
        let shape = AttnShape {
            bias: Some(&causal),
            window: None,
        };
        let memory = memory.to_dtype(x.dtype())?;
        for (layer, cross) in enc.layers.iter().zip(&self.cross) {
            x = layer.attention_block(&x, &keys, &enc.settings, shape, ctx)?;
            x = cross.forward(&x, &memory, enc, ctx)?;
            x = layer.ffn_block(&x, &enc.settings, ctx)?;
        }
        Ok(x)
    }

    fn logits(&self, hidden: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let x = self.head_dense.forward(hidden, ctx)?;
        let x = self
            .head_norm
            .forward(&self.head_act.apply(&x, ctx)?, ctx)?;
        ops::linear(
            &x,
            self.base.word.as_tensor(),
            Some(self.head_bias.as_tensor()),
            ctx,
        )
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.named.clone()
    }
}
