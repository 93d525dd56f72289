//! `load`: a whole saved sentence-transformers model (its `modules.json`
//! chain) as the base of a new chain.

use super::{Module, ModuleCx, ModuleEntry};
use crate::registry::{req, ArgType::*, Args, Component, Family, ModuleShape};
use crate::runtime::error::{Error, Result};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "load",
        family: Family::Module,
        doc: "A whole saved sentence-transformers model (directory with modules.json, or a Hub id). Must start a chain; more modules may follow it.",
        args: &[req("model", Str, "path of a saved model directory, or a Hub id")],
        ..Component::BASE
    },
    shape: ModuleShape::Base,
    build,
};

fn build(a: &Args, cx: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    let spec = a.str("model").map_err(|e| Error::Msg(e.to_string()))?;
    let dir = crate::runtime::download::resolve(spec, cx.search, cx.base_dir)?;
    if !dir.join("modules.json").is_file() {
        return Err(Error::config(
            &dir.join("modules.json"),
            format!("`load({spec:?})` needs a saved sentence-transformers model; for a bare Hugging Face model use `Transformer({spec:?}) -> Pooling(mean)`"),
        ));
    }
    Ok(crate::runtime::SentenceEncoder::load(&dir)?.into_modules())
}
