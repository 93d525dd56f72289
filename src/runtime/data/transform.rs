//! Sources built from other sources: `zip` and `triplets`.

use super::{DataError, Dataset, Example, Label};
use crate::check::types::LabelValue;

/// Join line-aligned sources row by row, stopping at the shortest.
pub(super) fn zip(name: &str, parts: Vec<Dataset>) -> Result<Dataset, DataError> {
    let labelled: Vec<&str> = parts
        .iter()
        .filter(|d| d.label_column.is_some())
        .map(|d| d.name.as_str())
        .collect();
    if labelled.len() > 1 {
        return Err(DataError::Source {
            name: name.to_string(),
            message: format!(
                "more than one zipped source has a label column ({})",
                labelled.join(", ")
            ),
            help: "keep the label or score column in one source only".to_string(),
        });
    }
    let n = parts.iter().map(Dataset::len).min().unwrap_or(0);
    let mut ds = Dataset {
        name: name.to_string(),
        text_columns: parts.iter().flat_map(|d| d.text_columns.clone()).collect(),
        label_column: parts.iter().find_map(|d| d.label_column.clone()),
        examples: Vec::with_capacity(n),
        skipped: parts.iter().map(|d| d.skipped).sum(),
    };
    for i in 0..n {
        let mut texts = Vec::new();
        let mut label = None;
        for d in &parts {
            let e = &d.examples[i];
            texts.extend(e.texts.iter().cloned());
            label = label.or(e.label);
        }
        ds.examples.push(Example { texts, label });
    }
    Ok(ds)
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
            match e.label {
                Some(Label::Class(k)) => k as f64 == want,
                Some(Label::Score(s)) => s as f64 == want,
                None => false,
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
