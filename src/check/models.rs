//! Model chains: module names, arguments and embedding widths.

use std::path::{Path, PathBuf};

use super::Checker;
use crate::check::types::{Activation, ArgValue, Model, Module, PoolingMode};
use crate::diag::Diag;
use crate::registry::Family;
use crate::syntax::ast;

impl Checker<'_> {
    pub(crate) fn check_model(&mut self, name: &ast::Ident, chain: &[ast::Call]) -> Option<Model> {
        let mut modules = Vec::new();
        let mut dim: Option<usize> = None;
        let mut ok = true;
        // Whether the chain yields sentence embeddings yet (after Pooling
        // or a whole pretrained model).
        let mut pooled = false;
        for (i, call) in chain.iter().enumerate() {
            let Some(comp) = self.lookup_component(Family::Module, &call.name) else {
                ok = false;
                continue;
            };
            let is_base = matches!(comp.name, "Transformer" | "load");
            if i == 0 && !is_base {
                self.err(
                    Diag::error(
                        "chain-start",
                        call.name.span,
                        format!("a model chain must start with Transformer(...) or load(...), not {}", comp.name),
                    )
                    .help("start with `Transformer(\"sentence-transformers/all-MiniLM-L6-v2\")` or `load(\"path/of/saved/model\")`"),
                );
                ok = false;
            } else if i > 0 && is_base {
                self.err(
                    Diag::error(
                        "chain-start",
                        call.name.span,
                        format!("{} can only start a model chain", comp.name),
                    )
                    .help("a model has one base: put it first"),
                );
                ok = false;
                continue;
            }
            if !is_base && !pooled && i > 0 && comp.name != "Pooling" && comp.name != "Dropout" {
                self.err(
                    Diag::error(
                        "needs-pooling",
                        call.name.span,
                        format!("{} needs sentence embeddings, but the Transformer before it gives token embeddings", comp.name),
                    )
                    .help("add `-> Pooling(mean)` after the Transformer"),
                );
                ok = false;
            }
            let Some(args) = self.bind(comp, &call.args, call.span) else {
                ok = false;
                dim = None;
                continue;
            };
            let get = |k: &str| args.get(k).map(|(v, _)| v.clone());
            let module = match comp.name {
                "Transformer" => {
                    let spec = get("model")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let span = args.get("model").map(|a| a.1).unwrap_or(call.span);
                    let dir = self.locate_model(&spec, span);
                    let hidden = dir.as_deref().and_then(transformer_width);
                    if dir.is_some() && hidden.is_none() {
                        self.err(
                            Diag::warning(
                                "model-config",
                                span,
                                format!(
                                    "could not read `hidden_size` from the config.json of `{spec}`"
                                ),
                            )
                            .help("dimensions after the Transformer will not be checked"),
                        );
                    }
                    dim = hidden;
                    Module::Transformer {
                        model: spec,
                        dir,
                        max_seq_length: get("max_seq_length")
                            .and_then(|v| v.as_i64())
                            .map(|v| v as usize),
                        do_lower_case: get("do_lower_case")
                            .and_then(|v| v.as_bool())
                            .unwrap_or(false),
                        hidden_size: hidden,
                    }
                }
                "load" => {
                    let spec = get("model")
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let span = args.get("model").map(|a| a.1).unwrap_or(call.span);
                    let dir = self.locate_model(&spec, span);
                    let (d, has_pooling) = match dir.as_deref() {
                        Some(d) => saved_model_width(d),
                        None => (None, true),
                    };
                    pooled = has_pooling;
                    dim = d;
                    Module::Pretrained {
                        model: spec,
                        dir,
                        dim: d,
                    }
                }
                "Pooling" => {
                    if pooled {
                        self.err(
                            Diag::error(
                                "double-pooling",
                                call.name.span,
                                "the model is already pooled to sentence embeddings",
                            )
                            .help("use one Pooling; give it several modes to concatenate them: `Pooling(cls, mean)`"),
                        );
                        ok = false;
                    }
                    pooled = true;
                    let modes: Vec<PoolingMode> = match get("mode") {
                        Some(ArgValue::List(l)) => l
                            .iter()
                            .filter_map(|m| m.as_str().and_then(PoolingMode::parse))
                            .collect(),
                        _ => vec![PoolingMode::Mean],
                    };
                    if modes.is_empty() {
                        self.err(
                            Diag::error(
                                "empty-pooling",
                                call.span,
                                "Pooling needs at least one mode",
                            )
                            .help("e.g. `Pooling(mean)`"),
                        );
                        ok = false;
                    }
                    let mut seen = Vec::new();
                    for m in &modes {
                        if seen.contains(m) {
                            self.err(
                                Diag::error(
                                    "duplicate-argument",
                                    call.span,
                                    format!("pooling mode `{m:?}` is given twice").to_lowercase(),
                                )
                                .help("give each pooling mode once"),
                            );
                            ok = false;
                        }
                        seen.push(*m);
                    }
                    let out = dim.map(|d| d * modes.len().max(1));
                    let m = Module::Pooling {
                        modes,
                        in_dim: dim,
                        out_dim: out,
                    };
                    dim = out;
                    m
                }
                "Dense" => {
                    let out = get("out_features").and_then(|v| v.as_i64()).unwrap_or(0);
                    if out <= 0 {
                        let span = args.get("out_features").map(|a| a.1).unwrap_or(call.span);
                        self.err(
                            Diag::error(
                                "out-of-range",
                                span,
                                "Dense needs a positive output width",
                            )
                            .help("e.g. `Dense(256, tanh)`"),
                        );
                        ok = false;
                    }
                    let m = Module::Dense {
                        in_features: dim,
                        out_features: out.max(0) as usize,
                        activation: get("activation")
                            .and_then(|v| v.as_str().and_then(Activation::parse))
                            .unwrap_or(Activation::Tanh),
                        bias: get("bias").and_then(|v| v.as_bool()).unwrap_or(true),
                    };
                    dim = Some(out.max(0) as usize);
                    m
                }
                "Normalize" => Module::Normalize,
                "LayerNorm" => Module::LayerNorm { dim },
                _ => Module::Dropout {
                    p: get("p").and_then(|v| v.as_f64()).unwrap_or(0.1),
                },
            };
            modules.push(module);
        }
        if ok && !pooled && !modules.is_empty() {
            let last = chain.last().map(|c| c.span).unwrap_or(name.span);
            self.err(
                Diag::error(
                    "needs-pooling",
                    last,
                    format!(
                        "model `{}` gives token embeddings, not sentence embeddings",
                        name.name
                    ),
                )
                .help("add `-> Pooling(mean)` after the Transformer"),
            );
            ok = false;
        }
        ok.then(|| Model {
            name: name.name.clone(),
            span: name.span,
            modules,
            dim,
        })
    }

    /// Find a model directory. A path that is not there is an error; a Hub
    /// id that is not cached is a warning (the runtime downloads it).
    fn locate_model(&mut self, spec: &str, span: crate::diag::Span) -> Option<PathBuf> {
        if spec.is_empty() {
            self.err(
                Diag::error("model-not-found", span, "empty model name")
                    .help("give a model directory or a Hub id"),
            );
            return None;
        }
        match self.opts.models.locate(spec, &self.base_dir) {
            Ok(l) => Some(l.dir),
            Err(nf) => {
                if crate::hub::is_hub_id(spec) {
                    self.err(
                        Diag::warning(
                            "model-not-local",
                            span,
                            format!("model `{spec}` is not available locally; it will be downloaded when the pipeline runs"),
                        )
                        .help(format!("{}; its width cannot be checked until then", nf.hint)),
                    );
                } else {
                    self.err(
                        Diag::error(
                            "model-not-found",
                            span,
                            format!("model directory `{spec}` not found"),
                        )
                        .help(nf.hint),
                    );
                }
                None
            }
        }
    }
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    let f = std::fs::File::open(p).ok()?;
    // Configs are small; refuse anything huge.
    let meta = f.metadata().ok()?;
    if meta.len() > 16 * 1024 * 1024 {
        return None;
    }
    serde_json::from_reader(std::io::BufReader::new(f)).ok()
}

/// `hidden_size` (or its equivalents) from a transformer's config.json.
pub(crate) fn transformer_width(dir: &Path) -> Option<usize> {
    let cfg = read_json(&dir.join("config.json"))?;
    ["hidden_size", "dim", "d_model", "n_embd"]
        .iter()
        .find_map(|k| cfg.get(k).and_then(|v| v.as_u64()))
        .map(|v| v as usize)
}

/// Width of a saved sentence-transformers model, from modules.json and the
/// modules' configs; and whether it yields sentence embeddings (has a
/// Pooling). Unknown width: `None`.
pub(crate) fn saved_model_width(dir: &Path) -> (Option<usize>, bool) {
    let Some(modules) = read_json(&dir.join("modules.json")) else {
        // A plain transformer directory.
        return (transformer_width(dir), false);
    };
    let Some(list) = modules.as_array() else {
        return (None, true);
    };
    let mut dim = None;
    let mut pooled = false;
    for m in list {
        let ty = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let path = dir.join(m.get("path").and_then(|p| p.as_str()).unwrap_or(""));
        if ty.ends_with("Transformer") {
            dim = transformer_width(&path);
        } else if ty.ends_with("Pooling") {
            pooled = true;
            if let Some(cfg) = read_json(&path.join("config.json")) {
                let w = cfg
                    .get("word_embedding_dimension")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize)
                    .or(dim);
                let modes = cfg
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, v)| {
                                k.starts_with("pooling_mode_") && v.as_bool() == Some(true)
                            })
                            .count()
                    })
                    .unwrap_or(1)
                    .max(1);
                dim = w.map(|w| w * modes);
            }
        } else if ty.ends_with("Dense") {
            dim = read_json(&path.join("config.json"))
                .and_then(|c| c.get("out_features").and_then(|v| v.as_u64()))
                .map(|v| v as usize);
        }
    }
    (dim, pooled)
}
