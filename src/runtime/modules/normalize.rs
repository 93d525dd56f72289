//! `Normalize`: L2-normalise the sentence embedding.

use std::any::Any;
use std::path::Path;

use super::{Features, Module};
use crate::runtime::error::Result;
use crate::runtime::ops::Ctx;

use super::{ModuleCx, ModuleEntry};
use crate::registry::{Args, Component, Family, ModuleShape};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "Normalize",
        family: Family::Module,
        doc: "Scales sentence embeddings to unit length.",
        ..Component::BASE
    },
    shape: ModuleShape::Keep,
    build,
};

fn build(_: &Args, _: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    Ok(vec![Box::new(Normalize)])
}

/// Scales every sentence embedding to unit L2 norm.
#[derive(Debug, Clone, Default)]
pub struct Normalize;

impl Normalize {
    pub fn new() -> Self {
        Normalize
    }
}

/// L2-normalise the rows of `x` (`[batch, dim]`), as torch's
/// `F.normalize(p=2, dim=1, eps=1e-12)`.
pub fn l2_normalize(x: &candle_core::Tensor) -> Result<candle_core::Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

impl Module for Normalize {
    fn type_name(&self) -> &'static str {
        "Normalize"
    }

    fn forward(&self, mut f: Features, _ctx: &Ctx) -> Result<Features> {
        let x = Features::need(&f.sentence_embedding, "sentence_embedding", "Normalize")?;
        f.sentence_embedding = Some(l2_normalize(x)?);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        None
    }

    fn save(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
