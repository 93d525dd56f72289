//! Score distillation end to end: MarginMSELoss and DistillKLDivLoss with
//! a teacher model (`teacher:`) take the same first step as with the
//! teacher's scores written into the data as a list column, and a teacher
//! of another width is accepted (only embedding distillation needs equal
//! widths).

use crate::common;

use std::path::Path;
use std::process::Command;

const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "sat", "on", "mat", "runs", "red", "big", "house", "tree",
];

fn text(seed: usize, row: usize) -> String {
    (0..2 + (seed + row) % 3)
        .map(|k| WORDS[(seed * 5 + row * 7 + k * 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rows of (query, positive, negative_1, negative_2).
fn rows() -> Vec<Vec<String>> {
    (0..8)
        .map(|r| (0..4).map(|c| text(c * 3 + 1, r)).collect())
        .collect()
}

/// The teacher's embeddings of `texts`, by `stpipe encode` (mean pooling).
fn encode(dir: &Path, model: &Path, texts: &[String]) -> Vec<Vec<f64>> {
    let input = dir.join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .args(["encode", "--model"])
        .arg(model)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (n(a) * n(b)).max(1e-8)
}

/// The loss of step 1 of a one-step run of `pipeline`.
fn first_loss(dir: &Path, name: &str, pipeline: &str) -> f64 {
    let file = dir.join(format!("{name}.stp"));
    std::fs::write(&file, pipeline).unwrap();
    let run = dir.join(format!("run-{name}"));
    let out = common::stpipe_run(&file, &run)
        .arg("--max-steps")
        .arg("1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        common::output_text(&out)
    );
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let step = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["step"] == 1 && v["loss"].is_object())
        .unwrap_or_else(|| panic!("{name}: no step 1 in\n{log}"));
    step["loss"]["o"].as_f64().unwrap()
}

#[test]
fn a_teacher_model_scores_what_a_score_column_would_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 5);
    common::write_tiny_bert(&dir.join("teacher"), 9);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let rows = rows();
    let flat: Vec<String> = rows.iter().flatten().cloned().collect();
    let emb = encode(dir, &dir.join("teacher"), &flat);
    let mut plain = String::new();
    let mut scored = String::new();
    for (r, row) in rows.iter().enumerate() {
        let e = |c: usize| &emb[r * 4 + c];
        let scores: Vec<f64> = (1..4).map(|c| cosine(e(0), e(c))).collect();
        let obj = serde_json::json!({"q": row[0], "p": row[1], "n": [row[2], row[3]]});
        plain.push_str(&format!("{obj}\n"));
        let mut obj = obj;
        obj["s"] = serde_json::json!(scores);
        scored.push_str(&format!("{obj}\n"));
    }
    std::fs::write(dir.join("data/plain.jsonl"), plain).unwrap();
    std::fs::write(dir.join("data/scored.jsonl"), scored).unwrap();
    // The teacher ends with a Dense of another width: its scores, not its
    // embeddings, are what the student learns.
    let models = "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
                  model t = Transformer(\"teacher\") -> Pooling(mean)\n\
                  model wide = Transformer(\"teacher\") -> Pooling(mean) -> Dense(48, tanh)\n";
    let cols = "{ query: col(\"q\"), positive: col(\"p\"), negative: take(col(\"n\"), 2)";
    let pipeline = |data: &str, loss: &str, extra: &str| {
        format!(
            "{models}data d = jsonl(\"data/{data}.jsonl\") {cols}{extra} }}\n\
             objective o = {loss} on d (batch_size: 8, shuffle: false)\n\
             train m {{ optimizer: AdamW(lr: 1e-3)\n objectives: [o] }}\n"
        )
    };
    for loss in ["MarginMSELoss", "DistillKLDivLoss"] {
        let with_teacher = first_loss(
            dir,
            &format!("{loss}-teacher"),
            &pipeline("plain", &format!("{loss}(m, teacher: t)"), ""),
        );
        let with_column = first_loss(
            dir,
            &format!("{loss}-column"),
            &pipeline(
                "scored",
                &format!("{loss}(m)"),
                ", score: take(col(\"s\"), 3)",
            ),
        );
        assert!(
            with_teacher.is_finite() && with_teacher > 0.0,
            "{loss}: {with_teacher}"
        );
        let rel = (with_teacher - with_column).abs() / with_column.abs().max(1e-12);
        assert!(
            rel < 1e-4,
            "{loss}: teacher {with_teacher} vs column {with_column}"
        );
        let wide = first_loss(
            dir,
            &format!("{loss}-wide"),
            &pipeline("plain", &format!("{loss}(m, teacher: wide)"), ""),
        );
        assert!(wide.is_finite(), "{loss}: {wide}");
    }
}

#[test]
fn a_teacher_and_a_score_column_together_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 5);
    common::write_tiny_bert(&dir.join("teacher"), 9);
    let rows = "{\"q\": \"a\", \"p\": \"b\", \"n\": \"c\", \"s\": [1, 0]}\n";
    std::fs::write(dir.join("d.jsonl"), rows).unwrap();
    let src = "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
               model t = Transformer(\"teacher\") -> Pooling(mean)\n\
               data d = jsonl(\"d.jsonl\") { query: col(\"q\"), positive: col(\"p\"), negative: col(\"n\"), score: take(col(\"s\"), 2) }\n\
               objective o = DistillKLDivLoss(m, teacher: t) on d\n\
               objective p = MarginMSELoss(m, teacher: m) on d\n\
               objective q = MarginMSELoss(m, teacher_similarity: dot) on d\n\
               data pairs = jsonl(\"d.jsonl\") { anchor: col(\"q\"), positive: col(\"p\") }\n\
               objective r = MegaBatchMarginLoss(m, use_mini_batched_version: false, mini_batch_size: 8) on pairs\n\
               train m { objectives: [o, p, q, r] }\n";
    let (r, p) = stpipe::check::check_source("p.stp", src.to_string(), dir, &common::options());
    assert!(p.is_none());
    let codes: Vec<&str> = r.diags.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"unexpected-label"), "{}", r.to_plain());
    assert!(codes.contains(&"teacher-is-student"), "{}", r.to_plain());
    // Options that would have no effect are errors, not ignored.
    let conflicts: Vec<&str> = r
        .diags
        .iter()
        .filter(|d| d.code == "argument-conflict")
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        conflicts
            .iter()
            .any(|m| m.contains("`teacher_similarity` has an effect only with `teacher` given")),
        "{conflicts:?}"
    );
    assert!(
        conflicts.iter().any(|m| m.contains(
            "`mini_batch_size` has an effect only with `use_mini_batched_version: true`"
        )),
        "{conflicts:?}"
    );
}
