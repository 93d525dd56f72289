//! `triplets`: labelled pairs (e.g. NLI premise, hypothesis, label) grouped
//! on an anchor column into (anchor, positive, negative) triplets.

use super::{DataError, Dataset, Example, Label, TransformCx, TransformEntry};
use crate::check::types::{DataKind, LabelValue};
use crate::registry::{opt, req, ArgType::*, Component, Family};

pub const ENTRY: TransformEntry = TransformEntry {
    spec: Component {
        name: "triplets",
        family: Family::Transform,
        doc: "Turns labelled pairs into (anchor, positive, negative) triplets by grouping rows on an anchor column (e.g. NLI premise): every positive of an anchor is paired with one of its negatives. Produces columns `anchor`, `positive`, `negative`.",
        args: &[
            req("source", Data, "the labelled pairs"),
            req("by", ColumnName, "the anchor column rows are grouped on"),
            req("positive", LabelValue, "label of positive rows"),
            req("negative", LabelValue, "label of negative rows"),
            opt("text", ColumnName, "the first text column that is not `by`", "the column holding the candidate texts"),
            opt("label", ColumnName, "label", "the label column"),
        ],
        ..Component::BASE
    },
    columns: None,
    apply,
    recorded: false,
};

fn apply(mut cx: TransformCx) -> Result<Dataset, DataError> {
    let source = cx.source;
    match (&source.kind, cx.inputs.pop().map(|(_, d)| d)) {
        (
            DataKind::Triplets {
                by,
                text,
                label,
                positive,
                negative,
                ..
            },
            Some(pairs),
        ) => triplets(&source.name, &pairs, by, text, label, positive, negative),
        _ => Err(DataError::Source {
            name: source.name.clone(),
            message: "is not a triplets source".into(),
            help: "this is an stpipe bug".into(),
        }),
    }
}

/// Where the grouping, text and label values of a pair live.
enum Slot {
    Text(usize),
    Label,
}

fn slot(pairs: &Dataset, column: &str) -> Option<Slot> {
    if pairs.label_column.as_deref() == Some(column) {
        return Some(Slot::Label);
    }
    pairs
        .text_columns
        .iter()
        .position(|c| c == column)
        .map(Slot::Text)
}

fn label_matches(e: &Example, slot: &Slot, want: &LabelValue) -> bool {
    match slot {
        Slot::Text(i) => {
            let text = e.texts[*i].trim();
            match want {
                LabelValue::Str(s) => text == s,
                LabelValue::Int(k) => text == k.to_string(),
            }
        }
        Slot::Label => {
            let want = match want {
                LabelValue::Int(k) => *k as f64,
                LabelValue::Str(s) => match s.trim().parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => return false,
                },
            };
            match &e.label {
                Some(Label::Class(k)) => *k as f64 == want,
                Some(Label::Score(s)) => *s as f64 == want,
                Some(Label::Scores(_)) | None => false,
            }
        }
    }
}

/// Group labelled pairs on `by` into (anchor, positive, negative) triplets:
/// anchors in order of first appearance; the k-th positive of an anchor is
/// paired with its (k mod n)-th negative, so the result does not depend on
/// any random draw. Anchors lacking a positive or a negative give nothing.
pub(super) fn triplets(
    name: &str,
    pairs: &Dataset,
    by: &str,
    text: &str,
    label: &str,
    positive: &LabelValue,
    negative: &LabelValue,
) -> Result<Dataset, DataError> {
    let missing = |col: &str| DataError::Source {
        name: name.to_string(),
        message: format!("source `{}` has no column `{col}`", pairs.name),
        help: format!(
            "its columns are: {}",
            pairs
                .text_columns
                .iter()
                .chain(pairs.label_column.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let Some(Slot::Text(by_i)) = slot(pairs, by) else {
        return Err(missing(by));
    };
    let Some(Slot::Text(text_i)) = slot(pairs, text) else {
        return Err(missing(text));
    };
    let label_slot = slot(pairs, label).ok_or_else(|| missing(label))?;

    let mut order: Vec<&str> = Vec::new();
    let mut groups: std::collections::HashMap<&str, (Vec<&str>, Vec<&str>)> =
        std::collections::HashMap::new();
    for e in &pairs.examples {
        let anchor = e.texts[by_i].as_str();
        let entry = groups.entry(anchor).or_insert_with(|| {
            order.push(anchor);
            (Vec::new(), Vec::new())
        });
        if label_matches(e, &label_slot, positive) {
            entry.0.push(e.texts[text_i].as_str());
        } else if label_matches(e, &label_slot, negative) {
            entry.1.push(e.texts[text_i].as_str());
        }
    }
    let mut examples = Vec::new();
    for anchor in order {
        let (pos, neg) = &groups[anchor];
        if neg.is_empty() {
            continue;
        }
        for (k, p) in pos.iter().enumerate() {
            examples.push(Example {
                texts: vec![
                    anchor.to_string(),
                    p.to_string(),
                    neg[k % neg.len()].to_string(),
                ],
                label: None,
                line: 0,
            });
        }
    }
    Ok(Dataset {
        name: name.to_string(),
        text_columns: vec!["anchor".into(), "positive".into(), "negative".into()],
        label_column: None,
        examples,
        skipped: pairs.skipped,
    })
}
