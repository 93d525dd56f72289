//! Hover: the registry's description of the component, argument or
//! setting under the cursor, or what a binding is bound to.
//!
//! The text is the registry's own (`Component::doc`, `ArgSpec::doc`), as
//! `stpipe components` prints it, so the editor and the reference never
//! disagree.

use std::fmt::Write as _;

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Position};

use super::scan::{Binding, Doc, TokKind};
use super::text::LineMap;
use crate::diag::Span;
use crate::registry::{self, ArgSpec, ArgType, Component, Family};

/// Longest statement text shown for a binding.
const MAX_SHOWN: usize = 800;

/// The hover at `pos`, if anything there is known.
pub fn hover(text: &str, lines: &LineMap, pos: Position) -> Option<Hover> {
    let offset = lines.offset(text, pos);
    let doc = Doc::new(text);
    let k = doc.token_at(offset)?;
    let t = doc.toks[k];
    let (value, start, end) = match t.kind {
        TokKind::Word => (word_markdown(&doc, k)?, t.start, t.end),
        TokKind::Str => {
            let (name, a, b) = doc.interpolation_at(k, offset)?;
            (binding_markdown(&doc, doc.binding(name)?), a, b)
        }
        _ => return None,
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(lines.range(text, Span::new(start, end))),
    })
}

/// What word token `k` is, by its place: a statement keyword, an argument
/// or setting name (before `:`), a component where one is expected, a
/// binding, a choice value, a metric, or any component called by name.
fn word_markdown(doc: &Doc, k: usize) -> Option<String> {
    let t = doc.toks[k];
    let word = t.text;
    if doc.stmts.iter().any(|s| s.first == k) {
        return keyword_markdown(word);
    }
    let next = doc.toks.get(k + 1).map(|n| n.text);
    let slot = doc.slot_at(k, t.start);
    if next == Some(":") {
        if let Some(c) = slot.args_of {
            if let Some(a) = c.arg(word) {
                return Some(arg_markdown(c, a));
            }
            if c.family == Family::Stage {
                return stage_item_markdown(word);
            }
        }
    }
    let expected = slot
        .families
        .iter()
        .find_map(|f| registry::lookup(*f, word));
    if let Some(c) = expected {
        return Some(component_markdown(c));
    }
    if let Some(b) = doc.binding(word) {
        return Some(binding_markdown(doc, b));
    }
    if let Some(spec) = slot.value_of {
        if let ArgType::Choice(words) = spec.ty {
            if words.contains(&word) {
                return Some(choice_markdown(word, spec));
            }
        }
    }
    if let Some(ev) = &slot.metrics_of {
        return metric_markdown(doc, ev, word);
    }
    if next == Some("(") {
        return super::slot::any_component(word).map(component_markdown);
    }
    None
}

/// A component: its name and family, its doc, its arguments, the data it
/// needs and the metrics it produces.
pub fn component_markdown(c: &Component) -> String {
    let mut s = format!("**{}** ({})\n\n{}\n", c.name, c.family.noun(), c.doc);
    if !c.args.is_empty() {
        s.push_str("\nArguments:\n");
        for a in c.args {
            let _ = writeln!(s, "- `{}`: {}; {}", a.name, type_text(a), default_text(a));
        }
    }
    if let Some(cols) = c.columns {
        let _ = write!(s, "\nData: {}.\n", cols.describe());
    }
    if !c.metrics.is_empty() {
        let m: Vec<String> = c.metrics.iter().map(|m| format!("`{m}`")).collect();
        let _ = write!(s, "\nMetrics (primary first): {}.\n", m.join(", "));
    }
    s
}

/// One argument: whose it is, its type, range and default, its doc.
pub fn arg_markdown(c: &Component, a: &ArgSpec) -> String {
    let owner = match c.family {
        Family::Stage => "setting of a `train` block".to_string(),
        Family::ObjectiveOptions => "option of an objective".to_string(),
        f => format!("argument of `{}` ({})", c.name, f.noun()),
    };
    format!(
        "**{}**{}: {owner}\n\n{}; {}\n\n{}",
        a.name,
        if a.variadic { "..." } else { "" },
        type_text(a),
        default_text(a),
        a.doc
    )
}

/// The type of an argument with its range: `number, > 0`.
pub fn type_text(a: &ArgSpec) -> String {
    let range = a.range.describe();
    if range.is_empty() {
        a.ty.describe()
    } else {
        format!("{}, {range}", a.ty.describe())
    }
}

fn default_text(a: &ArgSpec) -> String {
    match (a.required, a.default) {
        (true, _) => "required".to_string(),
        (false, Some(d)) => format!("default `{d}`"),
        (false, None) => "optional".to_string(),
    }
}

/// What a binding is: its kind, name, line and its statement.
fn binding_markdown(doc: &Doc, b: &Binding) -> String {
    let line = doc
        .src
        .get(..b.start)
        .map_or(0, |s| s.matches('\n').count())
        + 1;
    let mut text: String = doc.stmt_text(b.stmt).chars().take(MAX_SHOWN).collect();
    if text.len() < doc.stmt_text(b.stmt).len() {
        text.push_str(" ...");
    }
    let kw = doc.stmts.get(b.stmt).map_or("let", |s| s.kw);
    format!(
        "{kw} `{}`: {} (line {line})\n\n```stp\n{text}\n```",
        b.name,
        b.kind.noun()
    )
}

fn choice_markdown(word: &str, spec: &ArgSpec) -> String {
    format!(
        "`{word}`: a value of `{}` ({})\n\n{}",
        spec.name,
        spec.ty.describe(),
        spec.doc
    )
}

fn metric_markdown(doc: &Doc, ev: &str, word: &str) -> Option<String> {
    let comp = doc.binding(ev)?.component?;
    let c = registry::lookup(Family::Evaluator, comp)?;
    let i = c.metrics.iter().position(|m| *m == word)?;
    let primary = if i == 0 { ", its primary metric" } else { "" };
    Some(format!(
        "`{word}`: a metric of evaluator `{ev}` (`{}`){primary}",
        c.name
    ))
}

fn stage_item_markdown(word: &str) -> Option<String> {
    let text = match word {
        "evaluate" => "**evaluate**: setting of a `train` block\n\n`evaluate: EVALUATOR` or `evaluate: [EVALUATORS] every N steps`: evaluates during training, and always at each epoch end.",
        "checkpoint" => "**checkpoint**: setting of a `train` block\n\n`checkpoint: every N steps, keep K`: writes resumable checkpoints, keeping the last K.",
        _ => return None,
    };
    Some(text.to_string())
}

fn keyword_markdown(word: &str) -> Option<String> {
    let text = match word {
        "let" => "`let NAME = VALUE`: names a value, used as a value or as `${NAME}` in strings (and replaced by `--set NAME=VALUE`).",
        "model" => "`model NAME = BASE -> MODULE -> ...`: a model chain, from a `Transformer(...)` or `load(...)` base through modules such as `Pooling(mean)`.",
        "data" => "`data NAME = READER(path, ...) { column: expr, ... } limit N`: a data source (or `TRANSFORM(sources, ...)`).",
        "objective" => "`objective NAME = LOSS(model, ...) on DATA (batch_size: N, ...)`: a loss over a data source.",
        "evaluator" => "`evaluator NAME = EVALUATOR(model, DATA, ...)`: an evaluation, with metrics for `expect` and `save ... best by`.",
        "train" => registry::stage().doc,
        "save" => "`save MODEL to \"path\" [best by EVALUATOR.METRIC]`: saves the model as it is at this point of the file.",
        "expect" => "`expect EVALUATOR.METRIC >= VALUE`: fails the run when the final evaluation misses the threshold.",
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hover_at(src: &str, needle: &str) -> Option<String> {
        let lines = LineMap::new(src);
        let at = src.find(needle).unwrap() + 1;
        let h = hover(src, &lines, lines.position(src, at))?;
        match h.contents {
            HoverContents::Markup(m) => Some(m.value),
            _ => None,
        }
    }

    #[test]
    fn components_arguments_settings_and_bindings() {
        let src = "let bs = 16\nmodel m = Transformer(\"x\") -> Pooling(mean)\n\
                   data d = tsv(\"d.tsv\")\n\
                   objective o = CosineSimilarityLoss(m) on d (batch_size: bs)\n\
                   train m { objectives: [o]\n epochs: 1 }\n";
        let pooling = registry::lookup(Family::Module, "Pooling").unwrap();
        assert!(hover_at(src, "Pooling").unwrap().contains(pooling.doc));
        let bs = registry::objective_options().arg("batch_size").unwrap();
        assert!(hover_at(src, "batch_size").unwrap().contains(bs.doc));
        let epochs = registry::stage().arg("epochs").unwrap();
        assert!(hover_at(src, "epochs").unwrap().contains(epochs.doc));
        assert!(hover_at(src, "bs)").unwrap().contains("let bs = 16"));
        assert!(hover_at(src, "mean").unwrap().contains("a value of `mode`"));
        assert!(hover_at(src, "train")
            .unwrap()
            .contains(registry::stage().doc));
    }
}
