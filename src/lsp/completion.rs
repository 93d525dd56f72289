//! Completion: what may be written at the cursor, by its place (see
//! [`Slot`]): component names of the expected family, argument or setting
//! names not given yet, binding names of the expected kind defined above,
//! choice words, metric names after `EVALUATOR.`, statement keywords.

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, Documentation, MarkupContent,
    MarkupKind, Position,
};

use super::hover::{arg_markdown, component_markdown, type_text};
use super::scan::{Doc, TokKind};
use super::slot::{ChainPos, Slot};
use super::text::LineMap;
use crate::check::BindKind;
use crate::registry::catalogue::MODULES;
use crate::registry::{self, Family, ModuleShape};

/// The completions at `pos` (an empty list where nothing is known).
pub fn complete(text: &str, lines: &LineMap, pos: Position) -> CompletionResponse {
    let offset = lines.offset(text, pos);
    let doc = Doc::new(text);
    let slot = match context_end(&doc, offset) {
        Some(k) => doc.slot_at(k, offset),
        None => in_string(&doc, offset),
    };
    let mut items = Vec::new();
    keys(&slot, &mut items);
    bindings(&doc, &slot, &mut items);
    words(&slot, &mut items);
    metrics(&doc, &slot, &mut items);
    components(&slot, &mut items);
    CompletionResponse::Array(items)
}

/// The tokens that make the context of the cursor: those before it, less
/// the word being typed. `None` inside a string.
fn context_end(doc: &Doc, offset: usize) -> Option<usize> {
    let k = doc.toks.partition_point(|t| t.end <= offset);
    if let Some(t) = doc.toks.get(k) {
        if t.start < offset && t.kind == TokKind::Str {
            return None;
        }
    }
    match doc.toks.get(k.wrapping_sub(1)) {
        Some(t) if t.kind == TokKind::Word && t.end == offset => Some(k - 1),
        // An unterminated string runs to the cursor at the end of a line.
        Some(t) if t.kind == TokKind::Str && t.end == offset && !closed(t.text) => None,
        _ => Some(k),
    }
}

fn closed(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[b.len() - 1] == b'"' && b[b.len() - 2] != b'\\'
}

/// Inside a string: `let` names after an unclosed `${`.
fn in_string(doc: &Doc, offset: usize) -> Slot {
    let k = doc.toks.partition_point(|t| t.end < offset);
    let mut slot = Slot::default();
    let Some(t) = doc.toks.get(k).filter(|t| t.kind == TokKind::Str) else {
        return slot;
    };
    let before = doc.src.get(t.start..offset).unwrap_or("");
    let open = before.rfind("${");
    if open.is_some_and(|i| !before[i..].contains('}')) {
        slot.stmt = doc.stmt_of(k);
        slot.bindings.push(crate::check::BindKind::Let);
    }
    slot
}

fn markdown(value: String) -> Option<Documentation> {
    Some(Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    }))
}

/// Argument or setting names not given yet, as `name: `.
fn keys(slot: &Slot, items: &mut Vec<CompletionItem>) {
    if let Some(c) = slot.args_of {
        for (i, a) in c.args.iter().enumerate() {
            let filled = i < slot.positional && !a.variadic;
            if filled || slot.given.iter().any(|g| g == a.name) {
                continue;
            }
            items.push(CompletionItem {
                label: a.name.to_string(),
                kind: Some(CompletionItemKind::FIELD),
                detail: Some(type_text(a)),
                documentation: markdown(arg_markdown(c, a)),
                insert_text: Some(format!("{}: ", a.name)),
                sort_text: Some(format!("0{}", a.name)),
                ..CompletionItem::default()
            });
        }
    }
    for k in &slot.extra_keys {
        items.push(CompletionItem {
            label: k.to_string(),
            kind: Some(CompletionItemKind::FIELD),
            insert_text: Some(format!("{k}: ")),
            sort_text: Some(format!("0{k}")),
            ..CompletionItem::default()
        });
    }
}

/// Names bound above the cursor's statement, of the kinds the place takes.
fn bindings(doc: &Doc, slot: &Slot, items: &mut Vec<CompletionItem>) {
    let before = slot.stmt.unwrap_or(usize::MAX);
    let mut seen = Vec::new();
    for b in &doc.bindings {
        if b.stmt >= before || !slot.bindings.contains(&b.kind) || seen.contains(&b.name) {
            continue;
        }
        seen.push(b.name);
        let detail = match b.component {
            Some(c) => format!("{} = {c}", b.kind.noun()),
            None => b.kind.noun().to_string(),
        };
        items.push(CompletionItem {
            label: b.name.to_string(),
            kind: Some(CompletionItemKind::VARIABLE),
            detail: Some(detail),
            sort_text: Some(format!("1{}", b.name)),
            ..CompletionItem::default()
        });
    }
}

fn words(slot: &Slot, items: &mut Vec<CompletionItem>) {
    for w in &slot.words {
        let keyword = matches!(*w, "true" | "false") || super::scan::STATEMENTS.contains(w);
        items.push(CompletionItem {
            label: w.to_string(),
            kind: Some(if keyword {
                CompletionItemKind::KEYWORD
            } else {
                CompletionItemKind::ENUM_MEMBER
            }),
            detail: slot
                .value_of
                .map(|a| format!("{}: {}", a.name, type_text(a))),
            sort_text: Some(format!("2{w}")),
            ..CompletionItem::default()
        });
    }
}

/// The metrics of the evaluator named before `.`.
fn metrics(doc: &Doc, slot: &Slot, items: &mut Vec<CompletionItem>) {
    let Some(ev) = &slot.metrics_of else { return };
    for (i, (label, of)) in metric_names(doc, ev, 0).into_iter().enumerate() {
        items.push(CompletionItem {
            label,
            kind: Some(CompletionItemKind::FIELD),
            detail: Some(format!("metric of {of}")),
            sort_text: Some(format!("0{i:03}")),
            ..CompletionItem::default()
        });
    }
}

/// The metrics of evaluator binding `ev` with the component that gives
/// each: its own, then, for an evaluator made of evaluators (Sequential),
/// each part's under the part's name (`dev_spearman_cosine`), as the
/// checker names them.
fn metric_names(doc: &Doc, ev: &str, depth: usize) -> Vec<(String, &'static str)> {
    let Some(b) = doc.binding(ev) else {
        return Vec::new();
    };
    let Some(c) = b
        .component
        .and_then(|c| registry::lookup(Family::Evaluator, c))
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, &'static str)> =
        c.metrics.iter().map(|m| (m.to_string(), c.name)).collect();
    if depth > 4 || !c.args.iter().any(|a| a.ty == registry::ArgType::Evaluators) {
        return out;
    }
    // The names in the statement's `[...]` that are other evaluators.
    let Some(stmt) = doc.stmts.get(b.stmt) else {
        return out;
    };
    let toks = &doc.toks[stmt.first..stmt.end.min(doc.toks.len())];
    let Some(open) = toks.iter().position(|t| t.text == "[") else {
        return out;
    };
    for t in toks[open + 1..].iter().take_while(|t| t.text != "]") {
        let is_part = t.kind == TokKind::Word
            && t.text != ev
            && doc
                .binding(t.text)
                .is_some_and(|p| p.kind == BindKind::Evaluator);
        if is_part {
            for (m, of) in metric_names(doc, t.text, depth + 1) {
                out.push((format!("{}_{m}", t.text), of));
            }
        }
    }
    out
}

/// Components of the expected families; in a model chain, a base only
/// first and never after `->`.
fn components(slot: &Slot, items: &mut Vec<CompletionItem>) {
    for f in &slot.families {
        for c in registry::family(*f) {
            if *f == Family::Module {
                let base = MODULES
                    .iter()
                    .any(|m| m.spec.name == c.name && m.shape == ModuleShape::Base);
                match slot.chain {
                    Some(ChainPos::Base) if !base => continue,
                    Some(ChainPos::After) if base => continue,
                    _ => {}
                }
            }
            items.push(CompletionItem {
                label: c.name.to_string(),
                kind: Some(CompletionItemKind::CLASS),
                detail: Some(c.family.noun().to_string()),
                documentation: markdown(component_markdown(c)),
                sort_text: Some(format!("3{}", c.name)),
                ..CompletionItem::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(src: &str) -> Vec<String> {
        let at = src.find('|').unwrap();
        let text = src.replace('|', "");
        let lines = LineMap::new(&text);
        match complete(&text, &lines, lines.position(&text, at)) {
            CompletionResponse::Array(v) => v.into_iter().map(|i| i.label).collect(),
            CompletionResponse::List(l) => l.items.into_iter().map(|i| i.label).collect(),
        }
    }

    #[test]
    fn chain_arguments_bindings_and_metrics() {
        let after = labels("model m = Transformer(\"x\") -> Po|");
        assert!(after.contains(&"Pooling".to_string()));
        assert!(after.contains(&"Dense".to_string()));
        assert!(!after.contains(&"Transformer".to_string()));
        let args = labels("model m = Transformer(\"x\", max_seq_length: 8, |");
        assert!(args.contains(&"do_lower_case".to_string()));
        assert!(!args.contains(&"max_seq_length".to_string()));
        let src = "model m = Transformer(\"x\") -> Pooling(mean)\ndata d = tsv(\"x\")\n\
                   evaluator e = EmbeddingSimilarity(m, d)\nexpect e.|";
        assert!(labels(src).contains(&"spearman_cosine".to_string()));
        // A Sequential's metrics: its own, then each part's under its name.
        let src = "model m = Transformer(\"x\") -> Pooling(mean)\ndata d = tsv(\"x\")\n\
                   evaluator dev = EmbeddingSimilarity(m, d)\n\
                   evaluator pm = ParaphraseMining(m, d)\n\
                   evaluator all = Sequential(m, [dev, pm])\nexpect all.|";
        let got = labels(src);
        for want in [
            "sequential_score",
            "dev_spearman_cosine",
            "pm_average_precision",
        ] {
            assert!(got.contains(&want.to_string()), "{want}: {got:?}");
        }
        let src = "model m = Transformer(\"x\") -> Pooling(mean)\ndata d = tsv(\"x\")\n\
                   objective o = CosineSimilarityLoss(|";
        let got = labels(src);
        assert!(got.contains(&"m".to_string()), "{got:?}");
        assert!(!got.contains(&"d".to_string()), "{got:?}");
        let s = labels("let root = \"x\"\ndata d = tsv(\"${ro|");
        assert_eq!(s, vec!["root".to_string()]);
    }
}
