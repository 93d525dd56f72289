//! The post-norm encoder layer BERT, DistilBERT and MPNet share:
//! self-attention, its output projection, `norm(x + attention)`, then a
//! feed-forward network and `norm(x + ffn)`. The architectures differ in
//! the weights' names, where dropout applies, and what is added to the
//! attention scores.

use candle_core::Tensor;

use super::parts::{Act, Linear, Norm, Params};
use crate::runtime::error::Result;
use crate::runtime::ops::{self, AttnShape, Ctx};
use crate::runtime::step::layer::{LayerVars, Lin, Ln};

/// Names of a layer's weights below its prefix (without `.weight`).
pub struct Names {
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub attn_out: &'static str,
    pub attn_norm: &'static str,
    pub inter: &'static str,
    pub out: &'static str,
    pub out_norm: &'static str,
}

/// How a layer runs, from the architecture's config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub heads: usize,
    pub act: Act,
    /// On the attention probabilities.
    pub attn_dropout: f64,
    /// On the attention's output projection (DistilBERT has none).
    pub attn_out_dropout: f64,
    /// On the feed-forward output.
    pub ffn_dropout: f64,
}

impl Settings {
    /// BERT's config fields, which MPNet shares: `hidden_act`, and the
    /// hidden dropout after both the attention output and the
    /// feed-forward.
    pub fn bert_like(
        heads: usize,
        hidden_act: &str,
        attention_dropout: f64,
        hidden_dropout: f64,
        config_path: &std::path::Path,
    ) -> crate::runtime::Result<Self> {
        Ok(Settings {
            heads,
            act: Act::from_config(hidden_act, "hidden_act", config_path)?,
            attn_dropout: attention_dropout,
            attn_out_dropout: hidden_dropout,
            ffn_dropout: hidden_dropout,
        })
    }
}

/// One post-norm layer.
#[derive(Debug, Clone)]
pub struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// Trainable parameters of a layer of width `h` and feed-forward width `i`:
/// q, k, v and the output projection, the two feed-forward projections,
/// two layer norms.
pub fn params(h: u64, i: u64) -> u64 {
    4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
}

/// Where a stack of layers is and how wide it is.
pub struct Stack<'a> {
    /// The layers' common prefix, numbered after it (`encoder.layer.`).
    pub stem: &'a str,
    /// The config field that counts them (for messages).
    pub field: &'a str,
    pub count: usize,
    /// Width and feed-forward width.
    pub dims: (usize, usize),
    pub eps: f64,
}

impl Stack<'static> {
    /// BERT's layout, which MPNet shares: `encoder.layer.N`, counted by
    /// `num_hidden_layers`.
    pub fn encoder_layers(count: usize, dims: (usize, usize), eps: f64) -> Self {
        Stack {
            stem: "encoder.layer.",
            field: "num_hidden_layers",
            count,
            dims,
            eps,
        }
    }
}

/// Read every layer of `stack`; more layers in the file than the config
/// declares is an error.
pub fn load_stack(
    p: &mut Params,
    stack: &Stack,
    names: &Names,
    config_path: &std::path::Path,
) -> Result<Vec<Layer>> {
    p.check_layer_count(stack.stem, stack.field, stack.count, config_path)?;
    (0..stack.count)
        .map(|i| {
            Layer::load(
                p,
                &format!("{}{i}.", stack.stem),
                names,
                stack.dims,
                stack.eps,
            )
        })
        .collect()
}

impl Layer {
    /// Read the layer under `prefix` (`encoder.layer.3.`).
    pub fn load(
        p: &mut Params,
        prefix: &str,
        n: &Names,
        (h, i): (usize, usize),
        eps: f64,
    ) -> Result<Self> {
        let mut lin = |name: &str, out: usize, inp: usize| {
            p.linear(&format!("{prefix}{name}"), out, inp, true)
        };
        let (q, k, v) = (lin(n.q, h, h)?, lin(n.k, h, h)?, lin(n.v, h, h)?);
        let attn_out = lin(n.attn_out, h, h)?;
        let inter = lin(n.inter, i, h)?;
        let out = lin(n.out, h, i)?;
        Ok(Layer {
            q,
            k,
            v,
            attn_out,
            inter,
            out,
            attn_norm: p.norm(&format!("{prefix}{}", n.attn_norm), h, true, eps)?,
            out_norm: p.norm(&format!("{prefix}{}", n.out_norm), h, true, eps)?,
        })
    }

    /// The layer's weights for the explicit training step, where every
    /// projection and norm has a bias (as BERT's do).
    pub(crate) fn explicit_vars(&self) -> Option<LayerVars> {
        let lin = |l: &Linear| {
            Some(Lin {
                w: l.w.clone(),
                b: l.b.clone()?,
            })
        };
        let ln = |n: &Norm| {
            Some(Ln {
                w: n.w.clone(),
                b: n.b.clone()?,
                eps: n.eps as f32,
            })
        };
        Some(LayerVars {
            q: lin(&self.q)?,
            k: lin(&self.k)?,
            v: lin(&self.v)?,
            o: lin(&self.attn_out)?,
            norm1: ln(&self.attn_norm)?,
            inter: lin(&self.inter)?,
            out: lin(&self.out)?,
            norm2: ln(&self.out_norm)?,
        })
    }

    /// The layer's output for `x` `[batch, seq, hidden]` and the key mask.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        s: &Settings,
        shape: AttnShape,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let x = self.attention_block(x, mask, s, shape, ctx)?;
        self.ffn_block(&x, s, ctx)
    }

    /// The first half of the layer: `norm(x + dropout(out(attention(x))))`.
    pub fn attention_block(
        &self,
        x: &Tensor,
        mask: &Tensor,
        s: &Settings,
        shape: AttnShape,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let a = ops::Attn {
            mask,
            heads: s.heads,
            dropout_p: s.attn_dropout,
            shape,
        };
        let (q, k, v) = (self.q.proj()?, self.k.proj()?, self.v.proj()?);
        let attn = ops::self_attention(x, q, k, v, a, ctx)?;
        let attn = ops::dropout(&self.attn_out.forward(&attn, ctx)?, s.attn_out_dropout, ctx)?;
        self.attn_norm.add_forward(&attn, x, ctx)
    }

    /// The second half: `norm(x + dropout(out(act(inter(x)))))`.
    pub fn ffn_block(&self, x: &Tensor, s: &Settings, ctx: &Ctx) -> Result<Tensor> {
        let inter = self.inter.forward_act(x, s.act, ctx)?;
        let out = ops::dropout(&self.out.forward(&inter, ctx)?, s.ffn_dropout, ctx)?;
        self.out_norm.add_forward(&out, x, ctx)
    }
}
