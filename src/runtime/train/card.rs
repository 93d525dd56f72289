//! The model card: the `README.md` that `save` writes next to the model, as
//! sentence-transformers' `model.save()` does, so that the directory can
//! go to the Hugging Face Hub as it is. Front matter with the Hub's fields
//! (`library_name`, `pipeline_tag`, `tags` with each `loss:NAME`,
//! `base_model` for a Hub id), then the model (base, modules, widths), how
//! to use it, how it was trained (stages, objectives and their data with
//! row counts), the evaluation figures known when it was saved, and the
//! pipeline file itself.

use std::collections::HashMap;
use std::fmt::Write;

use crate::check::types::{call_label, call_label_without, Pipeline, Step};
use crate::runtime::eval::EvalMetrics;
use crate::runtime::SentenceEncoder;

use super::outcome::RunSummary;

/// What the card is made of.
pub struct CardInput<'a> {
    pub pipeline: &'a Pipeline,
    /// The pipeline text as checked.
    pub source: &'a str,
    /// The saved model's binding name.
    pub model: &'a str,
    pub encoder: &'a SentenceEncoder,
    /// Rows of the data sources of the model's objectives.
    pub rows: HashMap<String, usize>,
    pub summary: &'a RunSummary,
    /// Every evaluation of the run so far: (stage, step, evaluator, metrics).
    pub evaluations: &'a [(String, u64, String, EvalMetrics)],
    /// `best by EVALUATOR.METRIC` of the save, if any.
    pub best_by: Option<(String, String)>,
    /// The smoke-run flags of the run (`--max-steps 3 --limit 40`), if any.
    pub smoke: Option<String>,
}

/// A setting's word as the pipeline writes it (`no_duplicates`).
fn word<T: serde::Serialize + std::fmt::Debug>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{x:?}"))
}

/// A Hub id (`org/name`) as opposed to a local path: only those go into
/// `base_model`, which the Hub links.
fn hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        && !spec.starts_with('.')
}

/// The card's Markdown.
pub fn render(c: &CardInput) -> String {
    let p = c.pipeline;
    let model = p.model(c.model);
    let base = model
        .and_then(|m| m.modules.first())
        .and_then(|m| m.model_spec())
        .unwrap_or("a model built from scratch")
        .to_string();
    let objectives: Vec<&crate::check::types::Objective> = p
        .objectives
        .iter()
        .filter(|o| o.model == c.model && trained(p, c.model, &o.name))
        .collect();
    let mut s = String::new();
    front_matter(&mut s, &base, &objectives);
    let _ = writeln!(
        s,
        "# {} (sentence-transformers, trained with stpipe)\n",
        c.model
    );
    let _ = writeln!(
        s,
        "This is a [sentence-transformers](https://www.SBERT.net) model based on `{base}`: it maps sentences and paragraphs to a {}-dimensional dense vector space, for semantic similarity, search, clustering and classification. It was trained by stpipe from the pipeline at the end of this card.\n",
        c.encoder.dim()
    );
    details(&mut s, c, &base);
    usage(&mut s);
    training(&mut s, c, &objectives);
    evaluation(&mut s, c);
    let _ = writeln!(
        s,
        "## Pipeline\n\n```\n{}\n```\n\n## Framework\n\n- stpipe {}\n",
        c.source.trim_end(),
        env!("CARGO_PKG_VERSION")
    );
    p.redact(&s)
}

/// Whether a stage of `model` trains objective `name`.
fn trained(p: &Pipeline, model: &str, name: &str) -> bool {
    p.stages()
        .any(|st| st.model == model && st.objectives.iter().any(|o| o == name))
}

fn front_matter(s: &mut String, base: &str, objectives: &[&crate::check::types::Objective]) {
    s.push_str("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n- sentence-transformers\n- sentence-similarity\n- feature-extraction\n- stpipe\n");
    let mut losses: Vec<&str> = objectives.iter().map(|o| o.loss.as_str()).collect();
    losses.dedup();
    for l in losses {
        let _ = writeln!(s, "- loss:{l}");
    }
    if hub_id(base) {
        let _ = writeln!(s, "base_model: {base}");
    }
    s.push_str("---\n\n");
}

fn details(s: &mut String, c: &CardInput, base: &str) {
    let model = c.pipeline.model(c.model);
    let max_len = model
        .and_then(|m| m.modules.first())
        .and_then(|m| m.args.values().get("max_seq_length"))
        .and_then(|v| v.as_i64());
    let _ = writeln!(s, "## Model details\n");
    let _ = writeln!(s, "- **Base model:** `{base}`");
    if let Some(l) = max_len {
        let _ = writeln!(s, "- **Maximum sequence length:** {l} tokens");
    }
    let _ = writeln!(s, "- **Output dimensionality:** {}", c.encoder.dim());
    let _ = writeln!(s, "- **Similarity function:** cosine similarity\n");
    let _ = writeln!(s, "### Modules\n\n| # | module |\n|---|---|");
    for (i, m) in model
        .map(|m| m.modules.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let _ = writeln!(s, "| {i} | `{}` |", m.label().replace('|', "\\|"));
    }
    s.push('\n');
}

fn usage(s: &mut String) {
    s.push_str("## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\nmodel = SentenceTransformer(\"path/to/this/directory\")\nembeddings = model.encode([\"The weather is lovely today.\", \"It's so sunny outside!\"])\nprint(model.similarity(embeddings, embeddings))\n```\n\nor, without Python: `stpipe encode --model path/to/this/directory sentences.txt`.\n\n");
}

fn training(s: &mut String, c: &CardInput, objectives: &[&crate::check::types::Objective]) {
    let p = c.pipeline;
    let _ = writeln!(s, "## Training\n\n### Objectives and data\n");
    let _ = writeln!(
        s,
        "| objective | loss | data | rows | batch size | sampler |\n|---|---|---|---|---|---|"
    );
    for o in objectives {
        let rows = c
            .rows
            .get(&o.data)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {rows} | {} | {} |",
            o.name,
            call_label_without(&o.loss, &o.args, &["model"]).replace('|', "\\|"),
            o.data,
            o.batch_size,
            word(&o.sampler)
        );
    }
    let _ = writeln!(s, "\n### Stages\n");
    for st in p.stages().filter(|st| st.model == c.model) {
        let length = match st.max_steps {
            Some(n) => format!("at most {n} steps"),
            None => format!("{} epoch(s)", st.epochs),
        };
        let _ = writeln!(
            s,
            "- `{}`: objectives {}; {length}; optimizer `{}`; scheduler `{}`; gradient clipping {}; gradient accumulation {}; seed {}; objectives mixed {}; precision {}",
            st.name,
            st.objectives.join(", "),
            call_label(&st.optimizer.name, &st.optimizer.args),
            call_label(&st.scheduler.name, &st.scheduler.args),
            st.max_grad_norm,
            st.gradient_accumulation,
            st.seed,
            word(&st.mixing),
            word(&st.precision),
        );
    }
    if let Some(flags) = &c.smoke {
        let _ = writeln!(
            s,
            "\n**A smoke run** (`{flags}`): the stages were cut short; the figures below are not those of the full recipe."
        );
    }
    s.push('\n');
}

fn evaluation(s: &mut String, c: &CardInput) {
    let evaluators: Vec<&str> = c
        .pipeline
        .evaluators
        .iter()
        .filter(|e| e.model == c.model)
        .map(|e| e.name.as_str())
        .collect();
    let rows: Vec<&(String, String, f64)> = c
        .summary
        .final_metrics
        .iter()
        .filter(|(e, _, _)| evaluators.contains(&e.as_str()))
        .collect();
    let _ = writeln!(s, "## Evaluation\n");
    if rows.is_empty() {
        let _ = writeln!(
            s,
            "No evaluation of this model had run when it was saved.\n"
        );
        return;
    }
    let _ = writeln!(s, "| evaluator | metric | before training | when saved | best during training |\n|---|---|---|---|---|");
    for (e, m, v) in rows {
        let before = c
            .summary
            .baseline(e, m)
            .map(|b| format!("{b:.4}"))
            .unwrap_or_else(|| "-".into());
        let best = c
            .evaluations
            .iter()
            .filter(|(stage, _, name, _)| {
                name == e
                    && c.pipeline
                        .stages()
                        .any(|st| &st.name == stage && st.model == c.model)
            })
            .filter_map(|(stage, step, _, x)| {
                x.get(m).filter(|v| v.is_finite()).map(|v| (v, stage, step))
            })
            .fold(None, |b: Option<(f64, &String, &u64)>, x| match b {
                Some(b) if b.0 >= x.0 => Some(b),
                _ => Some(x),
            })
            .map(|(v, stage, step)| format!("{v:.4} ({stage}, step {step})"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "| {e} | {m} | {before} | {v:.4} | {best} |");
    }
    if let Some((e, m)) = &c.best_by {
        let _ = writeln!(s, "\nThe saved weights are those with the best `{e}.{m}` during training (`save ... best by {e}.{m}`).");
    }
    s.push('\n');
}

/// The `best by` of the save of `model` to `path`, if any.
pub fn best_by_of(p: &Pipeline, model: &str, path: &str) -> Option<(String, String)> {
    p.steps.iter().find_map(|s| match s {
        Step::Save(sv) if sv.model == model && sv.path.display().to_string() == path => sv
            .best_by
            .as_ref()
            .map(|b| (b.evaluator.clone(), b.metric.clone())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hub_ids_are_base_models() {
        assert!(hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        for local in [
            "tiny",
            "./models/x",
            "/abs/model",
            "../a/b",
            "a/b/c",
            "a b/c",
        ] {
            assert!(!hub_id(local), "{local}");
        }
    }
}
