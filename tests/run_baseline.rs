//! The untrained baseline: a stage evaluates its model once before the first
//! step (logged as step 0, reported in the summary as "before training"),
//! never keeps those weights as the best, and `evaluate_at_start: false`
//! turns it off.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

const SENTENCES: &[&str] = &[
    "the cat sat on the mat",
    "a dog runs fast",
    "the red house is big",
    "a small tree",
    "the blue cat is slow",
    "a big dog sat on a mat",
    "the house and the tree",
    "a cat was with the dog",
];

fn pairs() -> String {
    let mut out = String::new();
    for (i, a) in SENTENCES.iter().enumerate() {
        for (j, b) in SENTENCES.iter().enumerate().skip(i + 1) {
            let score = if (i + j) % 3 == 0 { 0.9 } else { 0.2 };
            out.push_str(&format!("{a}\t{b}\t{score}\n"));
        }
    }
    out
}

fn pipeline(train_extra: &str) -> String {
    format!(
        "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
         data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
         {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n\
         objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8)\n\
         evaluator dev = EmbeddingSimilarity(m, pairs)\n\
         train m {{\n\
           objectives: [sim]\n\
           optimizer: AdamW(lr: 1e-3)\n\
           evaluate: dev every 2 steps\n\
           {train_extra}\
         }}\n\
         save m to \"out\" best by dev.spearman_cosine\n"
    )
}

/// Run `src` in `dir` (written on the first call); returns (stderr, metrics
/// log lines, summary.json).
fn run(dir: &Path, src: &str) -> (String, Vec<serde_json::Value>, serde_json::Value) {
    if !dir.join("tiny").exists() {
        common::write_tiny_bert(&dir.join("tiny"), 11);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/pairs.tsv"), pairs()).unwrap();
    }
    let file = dir.join("p.stp");
    std::fs::write(&file, src).unwrap();
    let run_dir = dir.join("run");
    let out = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--quiet")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stpipe run failed:\n{err}");
    let log = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let lines = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    (err, lines, summary)
}

/// The steps at which evaluator `dev` ran during the stage.
fn eval_steps(lines: &[serde_json::Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|v| v["evaluator"] == "dev" && v["stage"] != "expect")
        .map(|v| v["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_untrained_model_is_evaluated_first_and_reported_as_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let (err, lines, summary) = run(tmp.path(), &pipeline(""));
    // 28 pairs in batches of 8: 4 steps; evaluated before, at 2 and at 4.
    assert_eq!(eval_steps(&lines), vec![0, 2, 4]);
    let step0 = lines
        .iter()
        .find(|v| v["evaluator"] == "dev" && v["step"] == 0)
        .unwrap();
    let before = step0["metrics"]["spearman_cosine"].as_f64().unwrap();
    // The first training step is logged after the baseline.
    let first_eval = lines.iter().position(|v| v["evaluator"] == "dev").unwrap();
    let first_step = lines.iter().position(|v| v.get("loss").is_some()).unwrap();
    assert!(
        first_eval < first_step,
        "baseline logged after training began"
    );

    let baseline = summary["baseline_metrics"].as_array().unwrap();
    assert_eq!(baseline.len(), 1, "{summary}");
    assert_eq!(baseline[0][0], "dev");
    assert_eq!(baseline[0][1], "spearman_cosine");
    assert_eq!(baseline[0][2].as_f64().unwrap(), before);
    assert!(
        err.contains(&format!("(before training {before:.4})")),
        "the summary does not show the baseline:\n{err}"
    );

    // The best weights come from a training step, never from step 0.
    let best: Vec<u64> = std::fs::read_dir(
        tmp.path()
            .join("run/stages/stage1/best/dev.spearman_cosine"),
    )
    .unwrap()
    .flatten()
    .filter_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.strip_prefix("step-")?.parse().ok()
    })
    .collect();
    assert_eq!(best.len(), 1, "{best:?}");
    assert!(
        best[0] == 2 || best[0] == 4,
        "the best weights are not from a training step: {best:?}"
    );

    // Run again: the stage is finished and not evaluated anew, but the
    // summary still has the baseline (kept in the checkpoint).
    let (_, lines2, summary2) = run(tmp.path(), &pipeline(""));
    assert_eq!(
        eval_steps(&lines2),
        vec![0, 2, 4],
        "the re-run evaluated again"
    );
    assert_eq!(summary2["baseline_metrics"], summary["baseline_metrics"]);
}

#[test]
fn evaluate_at_start_false_skips_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lines, summary) = run(tmp.path(), &pipeline("evaluate_at_start: false\n"));
    assert_eq!(eval_steps(&lines), vec![2, 4]);
    assert_eq!(summary["baseline_metrics"].as_array().unwrap().len(), 0);
}
