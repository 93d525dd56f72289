//! `LayerNorm` on the sentence embedding (sentence-transformers
//! `models.LayerNorm`: `config.json` {dimension}, weights `norm.weight`,
//! `norm.bias`).

use std::any::Any;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::{Features, Module};
use crate::runtime::error::{read_json, write_json, Result};
use crate::runtime::ops::{self, Ctx};
use crate::runtime::weights::{save_safetensors, vars_to_tensors, WeightFile};

use super::{ModuleCx, ModuleEntry};
use crate::registry::{Args, Component, Family, ModuleShape};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "LayerNorm",
        family: Family::Module,
        doc: "Layer normalisation of sentence embeddings (a trained scale and shift).",
        ..Component::BASE
    },
    shape: ModuleShape::Keep,
    build,
};

fn build(_: &Args, cx: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    Ok(vec![Box::new(LayerNorm::new(cx.in_dim, cx.device)?)])
}

/// A trainable layer norm over the sentence embedding.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub dim: usize,
    pub weight: Var,
    pub bias: Var,
    pub eps: f64,
}

#[derive(Serialize, Deserialize)]
struct Config {
    dimension: usize,
}

impl LayerNorm {
    /// A fresh layer norm (weight 1, bias 0).
    pub fn new(dim: usize, device: &Device) -> Result<Self> {
        Ok(LayerNorm {
            dim,
            weight: Var::from_tensor(&Tensor::ones(dim, candle_core::DType::F32, device)?)?,
            bias: Var::from_tensor(&Tensor::zeros(dim, candle_core::DType::F32, device)?)?,
            eps: 1e-5,
        })
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let c: Config = read_json(&dir.join("config.json"))?;
        let w = WeightFile::load_from_dir(dir, device)?;
        Ok(LayerNorm {
            dim: c.dimension,
            weight: w.var("norm.weight", &[c.dimension])?,
            bias: w.var("norm.bias", &[c.dimension])?,
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    fn type_name(&self) -> &'static str {
        "LayerNorm"
    }

    fn forward(&self, mut f: Features, ctx: &Ctx) -> Result<Features> {
        let x = Features::need(&f.sentence_embedding, "sentence_embedding", "LayerNorm")?;
        f.sentence_embedding = Some(ops::layer_norm(
            x,
            self.weight.as_tensor(),
            self.bias.as_tensor(),
            self.eps,
            ctx,
        )?);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        Some(self.dim)
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        vec![
            ("norm.weight".into(), self.weight.clone()),
            ("norm.bias".into(), self.bias.clone()),
        ]
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_json(
            &dir.join("config.json"),
            &Config {
                dimension: self.dim,
            },
        )?;
        save_safetensors(
            &dir.join("model.safetensors"),
            &vars_to_tensors(&self.named_vars()),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
