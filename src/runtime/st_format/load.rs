//! Reading a sentence-transformers model directory.

use std::path::Path;

use candle_core::Device;
use serde::Deserialize;

use crate::runtime::encoder::SentenceEncoder;
use crate::runtime::error::{read_json, Error, Result};
use crate::runtime::modules::{
    Dense, Dropout, LayerNorm, Module, Normalize, Pooling, PoolingMode, Transformer,
};

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    idx: Option<usize>,
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    ty: String,
}

/// The module kinds stpipe implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transformer,
    Pooling,
    Dense,
    Normalize,
    LayerNorm,
    Dropout,
}

/// Map a class path from `modules.json` to a module kind. Any
/// sentence-transformers class path (legacy `sentence_transformers.models.X`
/// or the newer module packages) ending in a supported class name is
/// accepted.
fn kind_of(ty: &str) -> Option<Kind> {
    if !ty.starts_with("sentence_transformers") {
        return None;
    }
    Some(match ty.rsplit('.').next()? {
        "Transformer" => Kind::Transformer,
        "Pooling" => Kind::Pooling,
        "Dense" => Kind::Dense,
        "Normalize" => Kind::Normalize,
        "LayerNorm" => Kind::LayerNorm,
        "Dropout" => Kind::Dropout,
        _ => return None,
    })
}

/// Load a model directory into an encoder on `device`.
pub fn load_dir(dir: &Path, device: &Device) -> Result<SentenceEncoder> {
    if !dir.is_dir() {
        return Err(Error::missing(dir, "model directory"));
    }
    let mpath = dir.join("modules.json");
    if !mpath.is_file() {
        // A plain Hugging Face model: Transformer + mean pooling, as
        // sentence-transformers does.
        let t = Transformer::load(dir, None, device)?;
        let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Mean]);
        return SentenceEncoder::new(vec![Box::new(t), Box::new(pooling)]);
    }
    let mut entries: Vec<ModuleEntry> = read_json(&mpath)?;
    entries.sort_by_key(|e| e.idx.unwrap_or(usize::MAX));
    if entries.is_empty() {
        return Err(Error::config(&mpath, "no modules are listed"));
    }
    let mut modules: Vec<Box<dyn Module>> = Vec::with_capacity(entries.len());
    let mut width: Option<usize> = None;
    for e in &entries {
        let kind = kind_of(&e.ty).ok_or_else(|| Error::UnknownModule {
            path: mpath.clone(),
            ty: e.ty.clone(),
        })?;
        // A module path must stay inside the model directory (no `..`,
        // not absolute): a downloaded model must not read elsewhere.
        let inside = std::path::Path::new(&e.path).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !inside {
            return Err(Error::config(
                &mpath,
                format!(
                    "module path `{}` leaves the model directory; module paths must be relative, without `..`",
                    e.path
                ),
            ));
        }
        let mdir = dir.join(&e.path);
        let m: Box<dyn Module> = match kind {
            Kind::Transformer => Box::new(Transformer::load(&mdir, None, device)?),
            Kind::Pooling => {
                let p = Pooling::load(&mdir)?;
                check_width(
                    width,
                    p.dim,
                    &mdir.join("config.json"),
                    "word_embedding_dimension",
                )?;
                Box::new(p)
            }
            Kind::Dense => {
                let d = Dense::load(&mdir, device)?;
                check_width(
                    width,
                    d.in_features,
                    &mdir.join("config.json"),
                    "in_features",
                )?;
                Box::new(d)
            }
            Kind::LayerNorm => {
                let l = LayerNorm::load(&mdir, device)?;
                check_width(width, l.dim, &mdir.join("config.json"), "dimension")?;
                Box::new(l)
            }
            // Normalize has no files; its folder may be absent.
            Kind::Normalize => Box::new(Normalize::new()),
            Kind::Dropout => Box::new(Dropout::load(&mdir)?),
        };
        if let Some(d) = m.out_dim() {
            width = Some(d);
        }
        modules.push(m);
    }
    let mut enc = SentenceEncoder::new(modules).map_err(|e| match e {
        Error::Msg(m) => Error::config(&mpath, m),
        other => other,
    })?;
    read_prompts(dir, enc.transformer_mut())?;
    Ok(enc)
}

/// The prompts and default prompt of `config_sentence_transformers.json`,
/// when the directory has one.
fn read_prompts(dir: &Path, t: &mut Transformer) -> Result<()> {
    let path = dir.join("config_sentence_transformers.json");
    if !path.is_file() {
        return Ok(());
    }
    let v: serde_json::Value = read_json(&path)?;
    if let Some(map) = v.get("prompts").and_then(|p| p.as_object()) {
        let mut prompts = Vec::with_capacity(map.len());
        for (name, text) in map {
            let text = text
                .as_str()
                .ok_or_else(|| Error::config(&path, format!("prompt `{name}` must be a string")))?;
            prompts.push((name.clone(), text.to_string()));
        }
        t.prompts = prompts;
    }
    if let Some(name) = v.get("default_prompt_name").and_then(|n| n.as_str()) {
        t.set_default_prompt_name(Some(name.to_string()))
            .map_err(|e| Error::config(&path, e.to_string()))?;
    }
    Ok(())
}

fn check_width(prev: Option<usize>, got: usize, path: &Path, key: &str) -> Result<()> {
    match prev {
        Some(p) if p != got => Err(Error::config(
            path,
            format!("`{key}` is {got} but the module before outputs {p}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_types_old_and_new() {
        assert_eq!(
            kind_of("sentence_transformers.models.Transformer"),
            Some(Kind::Transformer)
        );
        assert_eq!(
            kind_of("sentence_transformers.base.modules.pooling.Pooling"),
            Some(Kind::Pooling)
        );
        assert_eq!(kind_of("sentence_transformers.models.CLIPModel"), None);
        assert_eq!(kind_of("my.Dense"), None);
    }
}
