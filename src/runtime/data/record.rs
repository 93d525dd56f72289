//! The recorded result of a costly transform (a mined source): its rows as
//! JSON Lines in `RUN_DIR/data/NAME.jsonl`, one object per row with the
//! columns by name, for the user to read, and `NAME.json` beside it with
//! the fingerprint of the step that made it.
//!
//! The description is removed before the rows are rewritten and written
//! after them, so a crash in between leaves no record (the next run mines
//! again), never rows that a stale description vouches for.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Dataset, Example, Label};

#[derive(Serialize, Deserialize)]
struct Description {
    fingerprint: String,
    rows: usize,
    text_columns: Vec<String>,
    label_column: Option<String>,
    /// Whether the labels are integer classes (else float scores).
    classes: bool,
}

/// Where the rows of source `name` are recorded.
pub fn rows_path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("data").join(format!("{name}.jsonl"))
}

fn description_path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("data").join(format!("{name}.json"))
}

/// Whether a record of `name` made by the step with `fingerprint` exists.
pub fn exists(run_dir: &Path, name: &str, fingerprint: &str) -> bool {
    description(run_dir, name).is_some_and(|d| d.fingerprint == fingerprint)
}

fn description(run_dir: &Path, name: &str) -> Option<Description> {
    let bytes = std::fs::read(description_path(run_dir, name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Record `ds` as made by the step with `fingerprint`.
pub fn write(run_dir: &Path, ds: &Dataset, fingerprint: &str) -> std::io::Result<PathBuf> {
    let dir = run_dir.join("data");
    crate::fsio::create_dir_all(&dir)?;
    let desc_path = description_path(run_dir, &ds.name);
    if desc_path.exists() {
        crate::fsio::remove_file(&desc_path)?;
    }
    // Written field by field: the columns in the source's order.
    let json = |v: &str| serde_json::Value::from(v).to_string();
    let mut text = String::new();
    for e in &ds.examples {
        let mut fields: Vec<String> = ds
            .text_columns
            .iter()
            .zip(&e.texts)
            .map(|(c, t)| format!("{}: {}", json(c), json(t)))
            .collect();
        if let (Some(c), Some(l)) = (&ds.label_column, &e.label) {
            let v = match l {
                Label::Class(k) => serde_json::Value::from(*k),
                Label::Score(s) => serde_json::Value::from(*s as f64),
                Label::Scores(v) => v.iter().map(|s| *s as f64).collect(),
            };
            fields.push(format!("{}: {v}", json(c)));
        }
        text.push('{');
        text.push_str(&fields.join(", "));
        text.push_str("}\n");
    }
    let path = rows_path(run_dir, &ds.name);
    crate::fsio::write_atomic(&path, text.as_bytes())?;
    let desc = Description {
        fingerprint: fingerprint.to_string(),
        rows: ds.len(),
        text_columns: ds.text_columns.clone(),
        label_column: ds.label_column.clone(),
        classes: ds
            .examples
            .iter()
            .any(|e| matches!(e.label, Some(Label::Class(_)))),
    };
    let bytes = serde_json::to_vec_pretty(&desc).map_err(std::io::Error::other)?;
    crate::fsio::write_atomic(&desc_path, &bytes)?;
    Ok(path)
}

/// The recorded rows of `name`, if the record was made by the step with
/// `fingerprint` and reads back whole.
pub fn read(run_dir: &Path, name: &str, fingerprint: &str) -> Option<Dataset> {
    let d = description(run_dir, name).filter(|d| d.fingerprint == fingerprint)?;
    let text = std::fs::read_to_string(rows_path(run_dir, name)).ok()?;
    let mut examples = Vec::with_capacity(d.rows);
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let texts = d
            .text_columns
            .iter()
            .map(|c| v.get(c).and_then(|t| t.as_str()).map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let label = match &d.label_column {
            None => None,
            Some(c) if d.classes => Some(Label::Class(v.get(c)?.as_i64()?)),
            Some(c) => Some(match v.get(c)? {
                serde_json::Value::Array(a) => Label::Scores(
                    a.iter()
                        .map(|x| x.as_f64().map(|x| x as f32))
                        .collect::<Option<_>>()?,
                ),
                x => Label::Score(x.as_f64()? as f32),
            }),
        };
        examples.push(Example {
            texts,
            label,
            line: i + 1,
        });
    }
    (examples.len() == d.rows).then(|| Dataset {
        name: name.to_string(),
        text_columns: d.text_columns,
        label_column: d.label_column,
        examples,
        skipped: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_only_under_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Dataset {
            name: "mined".into(),
            text_columns: vec!["query".into(), "document".into()],
            label_column: Some("label".into()),
            examples: vec![
                Example {
                    texts: vec!["q \"1\"".into(), "d\n1".into()],
                    label: Some(Label::Class(1)),
                    line: 0,
                },
                Example {
                    texts: vec!["q1".into(), "d2".into()],
                    label: Some(Label::Class(0)),
                    line: 0,
                },
            ],
            skipped: 0,
        };
        let path = write(dir.path(), &ds, "fp1").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(exists(dir.path(), "mined", "fp1"));
        assert!(!exists(dir.path(), "mined", "fp2"));
        let back = read(dir.path(), "mined", "fp1").unwrap();
        assert_eq!(back.text_columns, ds.text_columns);
        assert_eq!(back.examples[0].texts, ds.examples[0].texts);
        assert_eq!(back.examples[1].label, Some(Label::Class(0)));
        assert!(read(dir.path(), "mined", "fp2").is_none());
        // Rows cut short (a record tampered with) are not reused.
        std::fs::write(
            &path,
            "{\"query\": \"q\", \"document\": \"d\", \"label\": 1}\n",
        )
        .unwrap();
        assert!(read(dir.path(), "mined", "fp1").is_none());
    }
}
