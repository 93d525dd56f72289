//! `Pooling`: token embeddings -> one sentence embedding.
//!
//! Several modes concatenate in the order they are listed, as
//! sentence-transformers 6 does; the legacy config layout (one flag per
//! mode) implies the fixed order cls, max, mean, mean_sqrt_len_tokens,
//! weightedmean, lasttoken, which older versions used. A model is saved in
//! the layout it was read from; a new one in the legacy layout when its
//! order is the fixed one (every version reads it), else in the listed
//! layout. Padding never contributes; nor do prompt tokens when
//! `include_prompt` is off.

use std::any::Any;
use std::path::Path;

use candle_core::{DType, Tensor};
use serde_json::{json, Value};

use super::{Features, Module};
use crate::runtime::error::{read_json, write_json, Error, Result};
use crate::runtime::ops::Ctx;

pub use crate::registry::choices::PoolingMode;
use crate::registry::{opt, ArgType, Args, Component, Family, ModuleShape};

use super::{ModuleCx, ModuleEntry};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "Pooling",
        family: Family::Module,
        doc: "Token embeddings to one sentence embedding. Several modes concatenate in the order listed (`Pooling(cls, mean, max)`), as sentence-transformers 6 does, multiplying the width.",
        args: &[
            opt("mode", ArgType::Choice(PoolingMode::NAMES), "mean", "pooling mode(s), positional or as a list").variadic(),
            opt("include_prompt", ArgType::Bool, "true", "pool the prompt's tokens too; `false` leaves them out (as INSTRUCTOR-style models train)"),
        ],
        ..Component::BASE
    },
    shape: ModuleShape::Pool { modes: "mode" },
    build,
};

fn build(a: &Args, cx: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    let modes = a
        .choices::<PoolingMode>("mode")
        .map_err(|e| Error::Msg(e.to_string()))?;
    let mut p = Pooling::new(cx.in_dim, &modes);
    p.include_prompt = a
        .bool("include_prompt")
        .map_err(|e| Error::Msg(e.to_string()))?;
    Ok(vec![Box::new(p)])
}

impl PoolingMode {
    /// The legacy `pooling_mode_*` key.
    pub fn config_key(self) -> &'static str {
        match self {
            PoolingMode::Cls => "pooling_mode_cls_token",
            PoolingMode::Max => "pooling_mode_max_tokens",
            PoolingMode::Mean => "pooling_mode_mean_tokens",
            PoolingMode::MeanSqrtLenTokens => "pooling_mode_mean_sqrt_len_tokens",
            PoolingMode::WeightedMean => "pooling_mode_weightedmean_tokens",
            PoolingMode::LastToken => "pooling_mode_lasttoken",
        }
    }

    /// Parse a mode as sentence-transformers' configs spell it (the
    /// pipeline name or the usual aliases: `cls_token`, `mean_tokens`...).
    pub fn parse_config(s: &str) -> Option<Self> {
        if let Some(m) = PoolingMode::from_name(s) {
            return Some(m);
        }
        Some(match s.to_ascii_lowercase().as_str() {
            "cls_token" => PoolingMode::Cls,
            "max_tokens" => PoolingMode::Max,
            "mean_tokens" => PoolingMode::Mean,
            "mean_sqrt_len" => PoolingMode::MeanSqrtLenTokens,
            "weightedmean_tokens" | "weighted_mean" => PoolingMode::WeightedMean,
            "last_token" | "last" => PoolingMode::LastToken,
            _ => return None,
        })
    }
}

/// How `1_Pooling/config.json` names the modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `word_embedding_dimension` and a `pooling_mode_*` flag per mode.
    Flags,
    /// `embedding_dimension` and a `pooling_mode` list (ST 6).
    Listed,
}

/// Pools `[batch, seq, dim]` token embeddings into `[batch, k * dim]`.
#[derive(Debug, Clone)]
pub struct Pooling {
    pub dim: usize,
    /// The active modes, in concatenation order.
    modes: Vec<PoolingMode>,
    layout: Layout,
    /// Pool prompt tokens too.
    pub include_prompt: bool,
}

impl Pooling {
    /// A pooling layer over `dim`-wide token embeddings, concatenating the
    /// modes in the order given (each once). No mode means mean.
    pub fn new(dim: usize, modes: &[PoolingMode]) -> Self {
        let mut active: Vec<PoolingMode> = Vec::new();
        for m in modes {
            if !active.contains(m) {
                active.push(*m);
            }
        }
        if active.is_empty() {
            active.push(PoolingMode::Mean);
        }
        let fixed: Vec<PoolingMode> = PoolingMode::all()
            .into_iter()
            .filter(|m| active.contains(m))
            .collect();
        let layout = if fixed == active {
            Layout::Flags
        } else {
            Layout::Listed
        };
        Pooling {
            dim,
            modes: active,
            layout,
            include_prompt: true,
        }
    }

    pub fn modes(&self) -> &[PoolingMode] {
        &self.modes
    }

    /// Read `config.json` in the legacy (`word_embedding_dimension`,
    /// `pooling_mode_*` flags) or the newer (`embedding_dimension`,
    /// `pooling_mode` string or list) layout.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let v: Value = read_json(&path)?;
        let dim = v
            .get("word_embedding_dimension")
            .or_else(|| v.get("embedding_dimension"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                Error::config(
                    &path,
                    "no `word_embedding_dimension` / `embedding_dimension`",
                )
            })? as usize;
        let mut modes = Vec::new();
        let listed = v.get("pooling_mode").is_some();
        let mut parse_name = |s: &str| -> Result<()> {
            let m = PoolingMode::parse_config(s)
                .ok_or_else(|| Error::config(&path, format!("unknown pooling mode `{s}`")))?;
            modes.push(m);
            Ok(())
        };
        match v.get("pooling_mode") {
            Some(Value::String(s)) => parse_name(s)?,
            Some(Value::Array(list)) => {
                for item in list {
                    match item.as_str() {
                        Some(s) => parse_name(s)?,
                        None => {
                            return Err(Error::config(
                                &path,
                                "`pooling_mode` list must hold strings",
                            ))
                        }
                    }
                }
            }
            _ => {}
        }
        if !listed {
            for m in PoolingMode::all() {
                if v.get(m.config_key()).and_then(Value::as_bool) == Some(true) {
                    modes.push(m);
                }
            }
        }
        let mut p = Pooling::new(dim, &modes);
        if listed {
            p.layout = Layout::Listed;
        }
        p.include_prompt = match v.get("include_prompt") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::config(
                    &path,
                    "`include_prompt` must be true or false",
                ))
            }
        };
        Ok(p)
    }
}

/// `sum_s m[b, s] * te[b, s, :]` for token embeddings `te` `[b, s, h]`
/// and a mask `m` `[b, s, 1]` of zeros and ones: `[b, h]`.
///
/// As one product per text (`m^T @ te`), not an elementwise product of
/// `te`'s size summed over `s`: a product with 0 or 1 is exact, and the
/// sums are added in the same order from the first token on, so the
/// bits are the same; but nothing as large as `te` is made, forward or
/// backward, and no elementwise pass over it wakes candle's thread pool
/// (on a CPU whose cores the encoder's own threads keep busy, its
/// spin-waits cost more than the pass: 2-5% of a MiniLM training step).
fn masked_sum(te: &Tensor, m: &Tensor) -> Result<Tensor> {
    Ok(m.transpose(1, 2)?
        .contiguous()?
        .matmul(&te.contiguous()?)?
        .squeeze(1)?)
}

impl Module for Pooling {
    fn type_name(&self) -> &'static str {
        "Pooling"
    }

    fn forward(&self, mut f: Features, _ctx: &Ctx) -> Result<Features> {
        let te = Features::need(&f.token_embeddings, "token_embeddings", "Pooling")?;
        let (b, s, _h) = te.dims3()?;
        let mut mask = match &f.attention_mask {
            Some(m) => m.to_dtype(te.dtype())?,
            None => Tensor::ones((b, s), te.dtype(), te.device())?,
        };
        if let Some(n) = f.prompt_length.filter(|&n| !self.include_prompt && n > 0) {
            // Right padding: the prompt is the first `n` positions.
            let keep: Vec<f32> = (0..s).map(|j| if j < n { 0.0 } else { 1.0 }).collect();
            let keep = Tensor::from_vec(keep, (1, s), te.device())?.to_dtype(te.dtype())?;
            mask = mask.broadcast_mul(&keep)?;
        }
        let m3 = mask.unsqueeze(2)?; // [b, s, 1]
        let mut outs = Vec::with_capacity(self.modes.len());
        let mut sum_cache: Option<(Tensor, Tensor)> = None;
        let mut sums = |te: &Tensor| -> Result<(Tensor, Tensor)> {
            if let Some(c) = &sum_cache {
                return Ok(c.clone());
            }
            let sum = masked_sum(te, &m3)?;
            let count = m3.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            sum_cache = Some((sum.clone(), count.clone()));
            Ok((sum, count))
        };
        for mode in &self.modes {
            let out = match mode {
                PoolingMode::Cls => te.narrow(1, 0, 1)?.squeeze(1)?,
                PoolingMode::Max => {
                    let penalty = ((&m3 - 1.0)? * 1e9)?;
                    te.broadcast_add(&penalty)?.max(1)?
                }
                PoolingMode::Mean => {
                    let (sum, count) = sums(te)?;
                    sum.broadcast_div(&count)?
                }
                PoolingMode::MeanSqrtLenTokens => {
                    let (sum, count) = sums(te)?;
                    sum.broadcast_div(&count.sqrt()?)?
                }
                PoolingMode::WeightedMean => {
                    let pos = Tensor::arange(1u32, s as u32 + 1, te.device())?
                        .to_dtype(te.dtype())?
                        .reshape((1, s, 1))?;
                    let w = m3.broadcast_mul(&pos)?;
                    let sum = te.broadcast_mul(&w)?.sum(1)?;
                    let total = w.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                    sum.broadcast_div(&total)?
                }
                PoolingMode::LastToken => {
                    // Right padding: the last real token is at len - 1.
                    let len = mask.sum_keepdim(1)?; // [b, 1]
                    let pos = Tensor::arange(1u32, s as u32 + 1, te.device())?
                        .to_dtype(DType::F32)?
                        .reshape((1, s))?;
                    let onehot = pos
                        .broadcast_eq(&len.to_dtype(DType::F32)?)?
                        .to_dtype(te.dtype())?
                        .unsqueeze(2)?;
                    masked_sum(te, &onehot)?
                }
            };
            outs.push(out);
        }
        let emb = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 1)?
        };
        f.sentence_embedding = Some(emb);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        Some(self.dim * self.modes.len())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let v = match self.layout {
            Layout::Flags => {
                let mut v = json!({ "word_embedding_dimension": self.dim });
                if let Some(obj) = v.as_object_mut() {
                    for m in PoolingMode::all() {
                        obj.insert(m.config_key().into(), Value::Bool(self.modes.contains(&m)));
                    }
                    obj.insert("include_prompt".into(), Value::Bool(self.include_prompt));
                }
                v
            }
            Layout::Listed => json!({
                "embedding_dimension": self.dim,
                "pooling_mode": self.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
                "include_prompt": self.include_prompt,
            }),
        };
        write_json(&dir.join("config.json"), &v)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// [`masked_sum`] gives the bits of the masked elementwise product
    /// summed over the tokens, and the same gradient.
    #[test]
    fn masked_sum_is_the_elementwise_one() {
        for (b, s, h) in [
            (3usize, 7usize, 40usize),
            (2, 128, 384),
            (2, 300, 384),
            (1, 1030, 96),
        ] {
            let vals: Vec<f32> = (0..b * s * h)
                .map(|i| (i as f32 * 0.731).sin() * 3.0)
                .collect();
            let te = Var::from_tensor(&Tensor::from_vec(vals, (b, s, h), &Device::Cpu).unwrap())
                .unwrap();
            let w: Vec<f32> = (0..b * s)
                .map(|i| [1.0, 1.0, 0.0, 1.0, 0.0][i % 5])
                .collect();
            let w = Tensor::from_vec(w, (b, s, 1), &Device::Cpu).unwrap();
            let up = Tensor::from_vec(
                (0..b * h).map(|i| i as f32 - 50.0).collect::<Vec<f32>>(),
                (b, h),
                &Device::Cpu,
            )
            .unwrap();
            let by_product = masked_sum(te.as_tensor(), &w).unwrap();
            let by_sum = te.as_tensor().broadcast_mul(&w).unwrap().sum(1).unwrap();
            let bits = |t: &Tensor| {
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&by_product), bits(&by_sum), "{b}x{s}x{h}");
            let grad = |out: &Tensor| {
                let g = (out * &up).unwrap().sum_all().unwrap().backward().unwrap();
                g.get(te.as_tensor()).unwrap().clone()
            };
            assert_eq!(
                bits(&grad(&by_product)),
                bits(&grad(&by_sum)),
                "{b}x{s}x{h}"
            );
        }
    }
}
