//! Every loss and every evaluator of the catalogue runs: one tiny pipeline
//! (a random tiny BERT made on the fly, a few rows) trains an objective of
//! each loss and evaluates with each evaluator, and every evaluator must
//! produce exactly the metric names its registry entry declares, its
//! primary metric first.
//!
//! The data of each component is generated from its own description (its
//! `Columns`: text columns, label type, label range, classes), so a new
//! loss or evaluator is covered by adding it to the catalogue; one whose
//! needs the generator cannot meet fails here with its name.

use crate::common;

use std::collections::BTreeSet;

use std::fmt::Write as _;
use std::path::Path;

use stpipe::registry::{catalogue, ArgType, ColType, Columns, Component, Rule};

const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "sat", "on", "mat", "runs", "fast", "slow", "red", "blue", "big",
    "small", "house", "tree",
];

/// A short sentence, different for every (seed, row).
fn sentence(seed: usize, row: usize) -> String {
    let n = 2 + (seed + row) % 4;
    (0..n)
        .map(|k| WORDS[(seed * 7 + row * 3 + k * 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TSV with a header: the text columns the component needs, then its
/// label (`label` or `score`) when it needs one.
fn table(name: &str, cols: &Columns, classes: usize, rows: usize) -> (String, String) {
    let texts = match cols.max_texts {
        Some(m) => m,
        None => cols.min_texts.max(3),
    };
    let mut header: Vec<String> = (0..texts).map(|i| format!("t{i}")).collect();
    let label = cols.label.map(|t| match t {
        ColType::Float | ColType::FloatList => "score",
        _ => "label",
    });
    // A list label: one score per candidate (a JSON array in the cell).
    let list_len = cols.list_label.lengths(texts).last().copied().unwrap_or(0);
    header.extend(label.map(str::to_string));
    let mut out = header.join("\t") + "\n";
    for r in 0..rows {
        let mut fields: Vec<String> = (0..texts).map(|i| sentence(i * 11 + 1, r)).collect();
        match cols.label {
            Some(ColType::Float) => fields.push(format!("{:.3}", (r % 5) as f64 / 4.0)),
            Some(ColType::Int) => fields.push(((r * 7 + r / 3) % classes).to_string()),
            Some(ColType::FloatList) => {
                let s: Vec<String> = (0..list_len)
                    .map(|k| format!("{:.2}", ((r + k * 3) % 7) as f64 / 2.0))
                    .collect();
                fields.push(format!("[{}]", s.join(", ")));
            }
            Some(ColType::Text) | None => {}
        }
        out.push_str(&(fields.join("\t") + "\n"));
    }
    let block: Vec<String> = header
        .iter()
        .map(|h| match cols.label {
            Some(ColType::FloatList) if h == "score" => {
                format!("{h}: take(col(\"{h}\"), {list_len})")
            }
            _ => format!("{h}: col(\"{h}\")"),
        })
        .collect();
    (
        out,
        format!(
            "data {name} = tsv(\"{name}.tsv\") {{ {} }}\n",
            block.join(", ")
        ),
    )
}

/// The number of classes labels may take: the value of the argument the
/// columns name (`num_labels`), else two (0/1).
fn classes(c: &Component) -> usize {
    match c.columns.and_then(|c| c.label_classes) {
        Some(_) => 3,
        None => 2,
    }
}

/// The loss a wrapper loss (MatryoshkaLoss) wraps: a cached one, so that
/// the wrapper and GradCache both run.
const WRAPPED: &str = "CachedMultipleNegativesRankingLoss(m, mini_batch_size: 3)";

/// The columns a loss needs: its own, or those of the loss it wraps.
fn loss_columns(c: &Component) -> Columns {
    c.columns.unwrap_or_else(|| {
        assert!(
            c.args.iter().any(|a| a.ty == ArgType::LossCall),
            "{} declares no columns and wraps no loss",
            c.name
        );
        let wrapped = catalogue::loss("CachedMultipleNegativesRankingLoss").unwrap();
        wrapped.spec.columns.unwrap()
    })
}

/// Arguments for the required ones the generator knows how to fill.
fn call_args(c: &Component, data: Option<&str>, extra: &[(&str, String)]) -> String {
    let mut args = Vec::new();
    for a in c.args.iter().filter(|a| a.required) {
        if let Some((_, v)) = extra.iter().find(|(k, _)| *k == a.name) {
            args.push(format!("{}: {v}", a.name));
            continue;
        }
        let v = match (a.name, a.ty) {
            // A wrapper that embeds every layer cannot wrap a cached loss.
            (_, ArgType::LossCall) if c.rules.iter().any(|r| matches!(r, Rule::Uncached)) => {
                "MultipleNegativesRankingLoss(m)".to_string()
            }
            (_, ArgType::LossCall) => WRAPPED.to_string(),
            // The first evaluator, declared before any that lists others.
            (_, ArgType::Evaluators) => "[e0]".to_string(),
            ("model", ArgType::Model) => "m".to_string(),
            (_, ArgType::Model) => "teacher".to_string(),
            ("data", _) => data.unwrap_or("?").to_string(),
            (_, ArgType::Count) => classes(c).to_string(),
            (name, ty) => panic!(
                "{}: the catalogue test cannot fill the required argument `{name}` ({ty:?}); teach it how",
                c.name
            ),
        };
        args.push(format!("{}: {v}", a.name));
    }
    format!("{}({})", c.name, args.join(", "))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The pipeline and its data files.
fn pipeline(dir: &Path) -> String {
    let mut src = String::from(
        "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
         model teacher = Transformer(\"tiny-teacher\") -> Pooling(mean)\n",
    );
    let mut objectives = Vec::new();
    let mut softmax = None;
    for (i, e) in catalogue::LOSSES.iter().enumerate() {
        let c = &e.spec;
        let cols = loss_columns(c);
        let data = format!("loss{i}");
        let (tsv, decl) = table(&data, &cols, classes(c), 24);
        write(dir, &format!("{data}.tsv"), &tsv);
        src.push_str(&decl);
        let obj = format!("o{i}");
        let _ = writeln!(
            src,
            "objective {obj} = {} on {data} (batch_size: 8)",
            call_args(c, None, &[])
        );
        if cols.label_classes.is_some() {
            softmax = Some(obj.clone());
        }
        objectives.push(obj);
    }
    let mut evaluators = Vec::new();
    for (i, e) in catalogue::EVALUATORS.iter().enumerate() {
        let c = &e.spec;
        let name = format!("e{i}");
        let mut extra: Vec<(&str, String)> = Vec::new();
        let data = format!("eval{i}");
        match c.columns {
            Some(cols) => {
                let (tsv, decl) = table(&data, &cols, classes(c), 20);
                write(dir, &format!("{data}.tsv"), &tsv);
                src.push_str(&decl);
            }
            None => {
                // Named-column sources (retrieval): ids, texts, judgements.
                for a in c.args {
                    let ArgType::DataColumns(need) = a.ty else {
                        continue;
                    };
                    let file = format!("{data}_{}", a.name);
                    let mut tsv = need.join("\t") + "\n";
                    for r in 0..12 {
                        let row: Vec<String> = need
                            .iter()
                            .map(|col| match *col {
                                "id" => format!("{}{r}", &a.name[..1]),
                                "query" => format!("d{}", r % 6),
                                "doc" => format!("c{}", (r * 5) % 12),
                                _ => sentence(a.name.len(), r),
                            })
                            .collect();
                        tsv.push_str(&(row.join("\t") + "\n"));
                    }
                    write(dir, &format!("{file}.tsv"), &tsv);
                    let block: Vec<String> =
                        need.iter().map(|h| format!("{h}: col(\"{h}\")")).collect();
                    let _ = writeln!(
                        src,
                        "data {file} = tsv(\"{file}.tsv\") {{ {} }}",
                        block.join(", ")
                    );
                    extra.push((a.name, file));
                }
            }
        }
        if let Some(s) = &softmax {
            extra.push(("objective", s.clone()));
        }
        let _ = writeln!(
            src,
            "evaluator {name} = {}",
            call_args(c, Some(&data), &extra)
        );
        evaluators.push(name);
    }
    let _ = write!(
        src,
        "train m {{\n  objectives: [{}]\n  max_steps: 2\n  optimizer: AdamW(lr: 1e-3)\n  evaluate: [{}]\n  evaluate_at_start: false\n}}\n",
        objectives.join(", "),
        evaluators.join(", ")
    );
    src
}

#[test]
fn every_loss_trains_and_every_evaluator_gives_its_declared_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 3);
    common::write_tiny_bert(&dir.join("tiny-teacher"), 4);
    let src = pipeline(dir);
    write(dir, "all.stp", &src);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .arg("run")
        .arg(dir.join("all.stp"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{src}\n{stderr}");

    let log = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for l in &lines {
        if let Some(losses) = l.get("loss").and_then(|v| v.as_object()) {
            for (k, v) in losses {
                assert!(v.as_f64().is_some_and(f64::is_finite), "{k}: {v}");
            }
        }
    }
    for (i, e) in catalogue::EVALUATORS.iter().enumerate() {
        let name = format!("e{i}");
        let evals: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l.get("evaluator").and_then(|v| v.as_str()) == Some(name.as_str()))
            .collect();
        assert!(!evals.is_empty(), "{} never evaluated", e.spec.name);
        for ev in evals {
            let got: BTreeSet<&str> = ev["metrics"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want: BTreeSet<String> = e.spec.metrics.iter().map(|m| m.to_string()).collect();
            // A sequence also gives its part's metrics, under its name.
            if e.spec.args.iter().any(|a| a.ty == ArgType::Evaluators) {
                want.extend(
                    catalogue::EVALUATORS[0]
                        .spec
                        .metrics
                        .iter()
                        .map(|m| format!("e0_{m}")),
                );
            }
            let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
            assert_eq!(got, want, "{}: produced vs declared metrics", e.spec.name);
        }
    }
}

/// Each loss alone, for the two steps of a stage: every loss must train
/// (the combined run above only reaches the first objectives of the round
/// robin in two steps).
#[test]
fn every_loss_takes_steps_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 3);
    common::write_tiny_bert(&dir.join("tiny-teacher"), 4);
    let mut src = String::from(
        "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
         model teacher = Transformer(\"tiny-teacher\") -> Pooling(mean)\n",
    );
    for (i, e) in catalogue::LOSSES.iter().enumerate() {
        let c = &e.spec;
        let cols = loss_columns(c);
        let data = format!("loss{i}");
        let (tsv, decl) = table(&data, &cols, classes(c), 24);
        write(dir, &format!("{data}.tsv"), &tsv);
        src.push_str(&decl);
        let _ = writeln!(
            src,
            "objective o{i} = {} on {data} (batch_size: 8)\n\
             train m as s{i} {{ objectives: [o{i}]\n max_steps: 2\n optimizer: AdamW(lr: 1e-3) }}",
            call_args(c, None, &[])
        );
    }
    write(dir, "each.stp", &src);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .arg("run")
        .arg(dir.join("each.stp"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{src}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    for (i, e) in catalogue::LOSSES.iter().enumerate() {
        let steps = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["stage"] == format!("s{i}").as_str() && l.get("loss").is_some())
            .count();
        assert_eq!(steps, 2, "{} did not take its two steps", e.spec.name);
    }
}
