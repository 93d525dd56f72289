//! Pieces every architecture is built from: a weights reader that records
//! each parameter under its Hugging Face name, linear layers and layer
//! norms with optional biases, the activations config files name.

use std::path::Path;

use candle_core::{DType, Tensor, Var};

use crate::runtime::error::{Error, Result};
use crate::runtime::ops::{self, Ctx};
use crate::runtime::weights::WeightFile;

/// Reads an architecture's parameters from a weights file whose names may
/// carry a task-head prefix (`bert.`, `roberta.`, `model.`), recording each
/// under its name without the prefix, as `AutoModel` saves it.
pub struct Params<'a> {
    pub w: &'a WeightFile,
    /// The prefix found in the file before the architecture's names.
    pub prefix: String,
    named: Vec<(String, Var)>,
    consumed: Vec<String>,
}

impl<'a> Params<'a> {
    /// `anchor` is a name every checkpoint of the architecture holds (the
    /// token embeddings); the shortest prefix before it is the file's.
    pub fn new(w: &'a WeightFile, anchor: &str) -> Self {
        let mut best: Option<String> = None;
        for name in w.names() {
            if let Some(p) = name.strip_suffix(anchor) {
                if (p.is_empty() || p.ends_with('.'))
                    && best.as_ref().is_none_or(|b| p.len() < b.len())
                {
                    best = Some(p.to_string());
                }
            }
        }
        Params {
            w,
            prefix: best.unwrap_or_default(),
            named: Vec::new(),
            consumed: Vec::new(),
        }
    }

    /// The trainable tensor `name` of `shape` (old `gamma`/`beta` names of
    /// layer norms are read too).
    pub fn var(&mut self, name: &str, shape: &[usize]) -> Result<Var> {
        let full = format!("{}{name}", self.prefix);
        let mut names = vec![full.clone()];
        for (new, old) in [(".weight", ".gamma"), (".bias", ".beta")] {
            if let Some(stem) = name.strip_suffix(new) {
                if stem.ends_with("LayerNorm") || stem.ends_with("layer_norm") {
                    names.push(format!("{}{stem}{old}", self.prefix));
                }
            }
        }
        let v = self.w.var_any(&names, shape)?;
        self.consumed.extend(names);
        self.named.push((name.to_string(), v.clone()));
        Ok(v)
    }

    /// A tensor read as a constant (not trained), kept for saving.
    pub fn constant(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let t = self.w.var(&full, shape)?.as_tensor().detach();
        self.consumed.push(full);
        Ok(t)
    }

    /// A linear layer `[out, in]`, with a bias when `bias`.
    pub fn linear(&mut self, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            w: self.var(&format!("{name}.weight"), &[out, inp])?,
            b: if bias {
                Some(self.var(&format!("{name}.bias"), &[out])?)
            } else {
                None
            },
        })
    }

    /// A layer norm over `h`, with a bias when `bias`.
    pub fn norm(&mut self, name: &str, h: usize, bias: bool, eps: f64) -> Result<Norm> {
        let w = self.var(&format!("{name}.weight"), &[h])?;
        let b = if bias {
            Some(self.var(&format!("{name}.bias"), &[h])?)
        } else {
            None
        };
        let zeros = Tensor::zeros(h, DType::F32, w.as_tensor().device())?;
        Ok(Norm { w, b, zeros, eps })
    }

    /// Layers numbered in the file under `{prefix}{stem}N.`: more than the
    /// config declares would be silently dropped, so it is an error.
    pub fn check_layer_count(
        &self,
        stem: &str,
        field: &str,
        declared: usize,
        config_path: &Path,
    ) -> Result<()> {
        let lp = format!("{}{stem}", self.prefix);
        let in_file = self
            .w
            .names()
            .filter_map(|n| {
                n.strip_prefix(&lp)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |m| m + 1);
        if in_file > declared {
            return Err(Error::config(
                config_path,
                format!(
                    "{field} is {declared}, but {} holds {in_file} layers",
                    self.w.path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Tensors under `{prefix}{stem}` that were not read (a pooler), by
    /// their names without the prefix, sorted.
    pub fn unread_under(&self, stem: &str) -> Vec<(String, Tensor)> {
        let p = format!("{}{stem}", self.prefix);
        let mut out: Vec<(String, Tensor)> = self
            .w
            .names()
            .filter(|n| n.starts_with(&p) && !self.consumed.iter().any(|c| c == n))
            .filter_map(|n| {
                let t = self.w.tensor(n)?.to_dtype(DType::F32).ok()?;
                Some((n[self.prefix.len()..].to_string(), t))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The parameters read, in order.
    pub fn into_named(self) -> Vec<(String, Var)> {
        self.named
    }
}

/// `x @ w^T (+ b)`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub w: Var,
    pub b: Option<Var>,
}

impl Linear {
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        ops::linear(
            x,
            self.w.as_tensor(),
            self.b.as_ref().map(|b| b.as_tensor()),
            ctx,
        )
    }

    /// The weight and bias, for attention projections (which, where the
    /// architecture has biases, always have one).
    pub fn proj(&self) -> Result<ops::Proj<'_>> {
        match &self.b {
            Some(b) => Ok((self.w.as_tensor(), b.as_tensor())),
            None => Err(Error::Msg("an attention projection without bias".into())),
        }
    }

    /// `act(x @ w^T + b)`, fused for GELU.
    pub fn forward_act(&self, x: &Tensor, act: Act, ctx: &Ctx) -> Result<Tensor> {
        let b = self.b.as_ref().map(|b| b.as_tensor());
        match act {
            Act::Gelu => ops::linear_gelu(x, self.w.as_tensor(), b, ctx),
            _ => act.apply(&ops::linear(x, self.w.as_tensor(), b, ctx)?, ctx),
        }
    }
}

/// Layer normalisation; without a bias where the architecture has none.
#[derive(Debug, Clone)]
pub struct Norm {
    pub w: Var,
    pub b: Option<Var>,
    zeros: Tensor,
    pub eps: f64,
}

impl Norm {
    /// A norm over trained `w` and `b`.
    pub fn new(w: Var, b: Option<Var>, eps: f64) -> Result<Self> {
        let zeros = Tensor::zeros(w.dim(0)?, DType::F32, w.as_tensor().device())?;
        Ok(Norm { w, b, zeros, eps })
    }

    fn bias(&self) -> &Tensor {
        self.b.as_ref().map_or(&self.zeros, |b| b.as_tensor())
    }

    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        ops::layer_norm(x, self.w.as_tensor(), self.bias(), self.eps, ctx)
    }

    /// `norm(x + residual)`.
    pub fn add_forward(&self, x: &Tensor, residual: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        ops::add_layer_norm(x, residual, self.w.as_tensor(), self.bias(), self.eps, ctx)
    }
}

/// The activations configs name (`hidden_act`, `activation`,
/// `hidden_activation`), as transformers' `ACT2FN` defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Exact (erf) GELU: `gelu`, `gelu_python`.
    Gelu,
    /// The tanh approximation: `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`.
    GeluTanh,
    Relu,
    /// `silu`, `swish`.
    Silu,
}

impl Act {
    pub const NAMES: &str =
        "gelu, gelu_python, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish";

    pub fn parse(name: &str) -> Option<Act> {
        Some(match name {
            "gelu" | "gelu_python" => Act::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "relu" => Act::Relu,
            "silu" | "swish" => Act::Silu,
            _ => return None,
        })
    }

    /// Parse or say which names are supported.
    pub fn from_config(name: &str, field: &str, path: &Path) -> Result<Act> {
        Act::parse(name).ok_or_else(|| {
            Error::config(
                path,
                format!("{field} `{name}` is not supported ({})", Act::NAMES),
            )
        })
    }

    pub fn apply(self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        Ok(match self {
            Act::Gelu => return ops::gelu(x, ctx),
            Act::GeluTanh => x.gelu()?,
            Act::Relu => x.relu()?,
            Act::Silu => x.silu()?,
        })
    }
}

/// Position ids `start..start + s` as a `[s]` u32 tensor. RoBERTa-style
/// models count from `padding_idx + 1`: right padding gets later positions
/// instead of the padding position, which only padded rows see.
pub fn positions(start: u32, s: usize, dev: &candle_core::Device) -> Result<Tensor> {
    Ok(Tensor::arange(start, start + s as u32, dev)?)
}

/// Token embeddings `[b, s, h]` of `ids` `[b, s]`.
pub fn embed(table: &Var, ids: &Tensor) -> Result<Tensor> {
    let (b, s) = ids.dims2()?;
    let h = table.as_tensor().dim(1)?;
    Ok(table
        .as_tensor()
        .embedding(&ids.flatten_all()?)?
        .reshape((b, s, h))?)
}

/// An input longer than the positions is an error, not a gather out of
/// range.
pub fn check_len(s: usize, limit: usize) -> Result<()> {
    if s > limit {
        return Err(Error::Msg(format!(
            "sequence of {s} tokens exceeds the model's {limit} positions"
        )));
    }
    Ok(())
}
