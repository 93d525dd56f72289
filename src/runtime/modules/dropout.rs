//! `Dropout` on the sentence embedding (sentence-transformers `models.Dropout`).

use std::any::Any;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Features, Module};
use crate::runtime::error::{read_json, write_json, Result};
use crate::runtime::ops::{self, Ctx};

use super::{ModuleCx, ModuleEntry};
use crate::registry::{opt, ArgType::*, Args, Component, Family, ModuleShape};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "Dropout",
        family: Family::Module,
        doc: "Dropout on sentence (or token) embeddings during training.",
        args: &[opt("p", Prob, "0.1", "dropout probability").below(1.0)],
        ..Component::BASE
    },
    shape: ModuleShape::Any,
    build,
};

fn build(a: &Args, _: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    let p = a
        .f64("p")
        .map_err(|e| crate::runtime::Error::Msg(e.to_string()))?;
    Ok(vec![Box::new(Dropout::new(p))])
}

/// Dropout applied to the sentence embedding in training mode.
#[derive(Debug, Clone)]
pub struct Dropout {
    pub p: f64,
}

#[derive(Serialize, Deserialize)]
struct Config {
    dropout: f64,
}

impl Dropout {
    pub fn new(p: f64) -> Self {
        Dropout { p }
    }

    /// Load from a module directory holding `config.json`; a missing file
    /// means the default rate 0.2.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Ok(Dropout::new(0.2));
        }
        let c: Config = read_json(&path)?;
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(crate::runtime::Error::config(
                &path,
                format!("dropout must be in [0, 1), got {}", c.dropout),
            ));
        }
        Ok(Dropout::new(c.dropout))
    }
}

impl Module for Dropout {
    fn type_name(&self) -> &'static str {
        "Dropout"
    }

    fn forward(&self, mut f: Features, ctx: &Ctx) -> Result<Features> {
        let x = Features::need(&f.sentence_embedding, "sentence_embedding", "Dropout")?;
        f.sentence_embedding = Some(ops::dropout(x, self.p, ctx)?);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        None
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("config.json"), &Config { dropout: self.p })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
