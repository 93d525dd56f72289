//! Model chains: module names, arguments, order and embedding widths,
//! from each module's registry description (its `ModuleShape`).

use std::path::{Path, PathBuf};

use super::args::{to_args, BoundArgs};
use super::Checker;
use crate::check::types::{ArgValue, Model, Module};
use crate::diag::{Diag, Span};
use crate::registry::{catalogue, Component, Family, ModuleShape};
use crate::syntax::ast;

/// The state of a chain while it is checked.
struct Chain {
    /// Width of what flows out of the last module, when known.
    dim: Option<usize>,
    /// Where that width was decided (for two-place diagnostics).
    dim_span: Option<Span>,
    /// Whether the chain yields sentence embeddings yet.
    pooled: bool,
    /// The Transformer's number of layers, when known.
    layers: Option<usize>,
    /// The Transformer's `model_type` and width, when known.
    model_type: Option<String>,
    hidden_size: Option<usize>,
    ok: bool,
}

impl Checker<'_> {
    pub(crate) fn check_model(&mut self, name: &ast::Ident, chain: &[ast::Call]) -> Option<Model> {
        let mut modules = Vec::new();
        let mut st = Chain {
            dim: None,
            dim_span: None,
            pooled: false,
            layers: None,
            model_type: None,
            hidden_size: None,
            ok: true,
        };
        for (i, call) in chain.iter().enumerate() {
            let Some(comp) = self.lookup_component(Family::Module, &call.name) else {
                st.ok = false;
                continue;
            };
            let Some(shape) = catalogue::module(comp.name).map(|e| e.shape) else {
                st.ok = false;
                continue;
            };
            if !self.check_position(comp, shape, i, call, &st) {
                st.ok = false;
                if i > 0 && shape == ModuleShape::Base {
                    continue;
                }
            }
            let Some(args) = self.bind(comp, &call.args, call.span) else {
                st.ok = false;
                st.dim = None;
                continue;
            };
            let in_dim = st.dim;
            let dir = match shape {
                ModuleShape::Base => self.check_base(comp, &args, call.span, &mut st),
                _ => {
                    self.check_width(comp, shape, &args, call, &mut st);
                    None
                }
            };
            modules.push(Module {
                kind: comp.name.to_string(),
                args: to_args(comp, &args),
                dir,
                in_dim,
                out_dim: st.dim,
            });
        }
        if st.ok && !st.pooled && !modules.is_empty() {
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
            st.ok = false;
        }
        st.ok.then(|| Model {
            name: name.name.clone(),
            span: name.span,
            modules,
            dim: st.dim,
            layers: st.layers,
            model_type: st.model_type,
            hidden_size: st.hidden_size,
        })
    }

    /// A base starts the chain, only a base; sentence modules need pooled
    /// embeddings before them.
    fn check_position(
        &mut self,
        comp: &Component,
        shape: ModuleShape,
        i: usize,
        call: &ast::Call,
        st: &Chain,
    ) -> bool {
        let base = shape == ModuleShape::Base;
        if i == 0 && !base {
            self.err(
                Diag::error(
                    "chain-start",
                    call.name.span,
                    format!("a model chain must start with Transformer(...) or load(...), not {}", comp.name),
                )
                .help("start with `Transformer(\"sentence-transformers/all-MiniLM-L6-v2\")` or `load(\"path/of/saved/model\")`"),
            );
            return false;
        }
        if i > 0 && base {
            self.err(
                Diag::error(
                    "chain-start",
                    call.name.span,
                    format!("{} can only start a model chain", comp.name),
                )
                .help("a model has one base: put it first"),
            );
            return false;
        }
        let needs_sentences = matches!(shape, ModuleShape::Project { .. } | ModuleShape::Keep);
        if i > 0 && !st.pooled && needs_sentences {
            self.err(
                Diag::error(
                    "needs-pooling",
                    call.name.span,
                    format!("{} needs sentence embeddings, but the Transformer before it gives token embeddings", comp.name),
                )
                .help("add `-> Pooling(mean)` after the Transformer"),
            );
            return false;
        }
        if st.pooled && matches!(shape, ModuleShape::Pool { .. }) {
            self.err(
                Diag::error(
                    "double-pooling",
                    call.name.span,
                    "the model is already pooled to sentence embeddings",
                )
                .help("use one Pooling; give it several modes to concatenate them: `Pooling(cls, mean)`"),
            );
            return false;
        }
        true
    }

    /// The width after a non-base module.
    fn check_width(
        &mut self,
        comp: &Component,
        shape: ModuleShape,
        args: &BoundArgs,
        call: &ast::Call,
        st: &mut Chain,
    ) {
        match shape {
            ModuleShape::Pool { modes } => {
                st.pooled = true;
                let list: Vec<String> = match args.get(modes).map(|v| &v.0) {
                    Some(ArgValue::List(l)) => l
                        .iter()
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect(),
                    Some(v) => v.as_str().map(str::to_string).into_iter().collect(),
                    None => Vec::new(),
                };
                if list.is_empty() {
                    self.err(
                        Diag::error(
                            "empty-pooling",
                            call.span,
                            format!("{} needs at least one mode", comp.name),
                        )
                        .help("e.g. `Pooling(mean)`"),
                    );
                    st.ok = false;
                }
                for (k, m) in list.iter().enumerate() {
                    if list[..k].contains(m) {
                        self.err(
                            Diag::error(
                                "duplicate-argument",
                                call.span,
                                format!("pooling mode `{m}` is given twice"),
                            )
                            .help("give each pooling mode once"),
                        );
                        st.ok = false;
                    }
                }
                st.dim = st.dim.map(|d| d * list.len().max(1));
                st.dim_span = Some(call.span);
            }
            ModuleShape::Project { out, input } => {
                if let (Some((ArgValue::Int(given), gspan)), Some(have)) = (args.get(input), st.dim)
                {
                    if *given as usize != have {
                        let mut d = Diag::error(
                            "dimension-mismatch",
                            *gspan,
                            format!(
                                "{} takes {given} input features, but what precedes it gives {have}",
                                comp.name
                            ),
                        )
                        .label(format!("{input}: {given}"));
                        if let Some(prev) = st.dim_span {
                            d = d.also(prev, format!("this gives {have}"));
                        }
                        self.err(d.help(format!(
                            "remove `{input}` (it is inferred), or make it {have}"
                        )));
                        st.ok = false;
                    }
                }
                st.dim = args
                    .get(out)
                    .and_then(|v| v.0.as_i64())
                    .map(|v| v.max(0) as usize);
                st.dim_span = Some(call.span);
            }
            ModuleShape::Keep | ModuleShape::Any | ModuleShape::Base => {}
        }
    }

    /// A chain's base: find its directory and read its width (and, for a
    /// Transformer, check that its config is one the runtime runs).
    fn check_base(
        &mut self,
        comp: &Component,
        args: &BoundArgs,
        call_span: Span,
        st: &mut Chain,
    ) -> Option<PathBuf> {
        let spec = args
            .get("model")
            .and_then(|v| v.0.as_str().map(str::to_string))
            .unwrap_or_default();
        let span = args.get("model").map(|a| a.1).unwrap_or(call_span);
        let dir = self.locate_model(&spec, span);
        st.dim_span = Some(call_span);
        let Some(d) = dir.as_deref() else {
            // Not local (a Hub id downloaded at run time): widths unknown.
            st.dim = None;
            st.pooled = comp.name == "load";
            return None;
        };
        if comp.name == "load" && !d.join("modules.json").is_file() {
            self.err(
                Diag::error(
                    "not-a-sentence-model",
                    span,
                    format!("`{spec}` has no modules.json: it is not a saved sentence-transformers model"),
                )
                .help(format!(
                    "start a chain from a bare Hugging Face model with `Transformer(\"{spec}\") -> Pooling(mean)`"
                )),
            );
            st.ok = false;
            st.dim = None;
            return None;
        }
        let transformer_dir = if comp.name == "load" {
            let (w, pooled) = saved_model_width(d);
            st.dim = w;
            st.pooled = pooled;
            saved_transformer_dir(d)
        } else {
            st.pooled = false;
            Some(d.to_path_buf())
        };
        if let Some(td) = transformer_dir {
            match crate::runtime::modules::transformer::inspect(&td) {
                Ok(info) => {
                    st.layers = Some(info.num_layers);
                    st.model_type = Some(info.model_type.clone());
                    st.hidden_size = Some(info.hidden_size);
                    if comp.name != "load" {
                        st.dim = Some(info.hidden_size);
                    }
                    if let Some((ArgValue::Int(n), nspan)) = args.get("max_seq_length") {
                        if *n as usize > info.max_positions {
                            self.err(
                                Diag::error(
                                    "out-of-range",
                                    *nspan,
                                    format!(
                                        "max_seq_length {n} is more than the {} positions of `{spec}`",
                                        info.max_positions
                                    ),
                                )
                                .help(format!("at most {}", info.max_positions)),
                            );
                            st.ok = false;
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let help = format!(
                        "stpipe runs model_type {}; docs/architecture.md lists the config settings each reads",
                        crate::runtime::arch::supported_model_types().join(", ")
                    );
                    self.err(
                        Diag::error(
                            "unsupported-model",
                            span,
                            format!("`{spec}` cannot be run: {msg}"),
                        )
                        .help(help),
                    );
                    st.ok = false;
                    st.dim = None;
                }
            }
        }
        dir
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

/// The Transformer directory of a saved sentence-transformers model (the
/// module of type `...Transformer` in modules.json; the directory itself
/// for a plain Hugging Face model).
pub(crate) fn saved_transformer_dir(dir: &Path) -> Option<PathBuf> {
    let Some(modules) = read_json(&dir.join("modules.json")) else {
        return Some(dir.to_path_buf());
    };
    modules.as_array()?.iter().find_map(|m| {
        let ty = m.get("type").and_then(|t| t.as_str())?;
        let path = m.get("path").and_then(|p| p.as_str()).unwrap_or("");
        ty.ends_with("Transformer").then(|| dir.join(path))
    })
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
            // Both config layouts, read as the runtime reads them.
            dim = crate::runtime::modules::Pooling::load(&path)
                .ok()
                .and_then(|p| crate::runtime::Module::out_dim(&p));
        } else if ty.ends_with("Dense") {
            dim = read_json(&path.join("config.json"))
                .and_then(|c| c.get("out_features").and_then(|v| v.as_u64()))
                .map(|v| v as usize);
        }
    }
    (dim, pooled)
}
