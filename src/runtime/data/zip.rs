//! `zip`: line-aligned sources joined row by row (e.g. English sentences
//! and their German translations for distillation).

use super::{DataError, Dataset, Example, TransformCx, TransformEntry};
use crate::check::types::DataKind;
use crate::registry::{req, ArgType::*, Component, Family};

pub const ENTRY: TransformEntry = TransformEntry {
    spec: Component {
        name: "zip",
        family: Family::Transform,
        doc: "Joins line-aligned sources row by row: the columns of the first source, then those of the next (names must differ). The sources must have the same number of rows.",
        args: &[req("sources", Data, "two or more data sources").variadic()],
        ..Component::BASE
    },
    columns: None,
    apply,
    recorded: false,
};

fn apply(cx: TransformCx) -> Result<Dataset, DataError> {
    let source = cx.source;
    let parts = cx.inputs.into_iter().map(|(_, d)| d).collect();
    match &source.kind {
        DataKind::Zip { .. } => zip(&source.name, parts),
        _ => Err(DataError::Source {
            name: source.name.clone(),
            message: "is not a zip of sources".into(),
            help: "this is an stpipe bug".into(),
        }),
    }
}

/// Join line-aligned sources row by row; they must have equal lengths
/// (a shorter file is a sign of misaligned data, not something to drop
/// rows for silently).
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
    if let Some(longer) = parts.iter().find(|d| d.len() != n) {
        let sizes: Vec<String> = parts
            .iter()
            .map(|d| format!("`{}` {} rows", d.name, d.len()))
            .collect();
        return Err(DataError::Source {
            name: name.to_string(),
            message: format!(
                "the zipped sources have different lengths ({}); `{}` has extra rows",
                sizes.join(", "),
                longer.name
            ),
            help: "zip joins line-aligned files: give them the same number of rows (or the same `limit`)"
                .to_string(),
        });
    }
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
            label = label.or(e.label.clone());
        }
        let line = parts[0].examples[i].line;
        ds.examples.push(Example { texts, label, line });
    }
    Ok(ds)
}
