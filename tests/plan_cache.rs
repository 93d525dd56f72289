//! `stpipe run` executes the plan: a step whose fingerprint is unchanged
//! and whose result is recorded is reused, not re-run. Changing only the
//! second stage of a two-stage pipeline reuses the first stage's final
//! weights and ends with the bytes a fresh run of the changed pipeline
//! saves; `stpipe plan` says beforehand which steps a run would reuse; an
//! unchanged pipeline re-runs without training, evaluating or saving.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

const PAIRS: &[(&str, &str, f64)] = &[
    ("the cat sat on the mat", "a cat sat on a mat", 0.9),
    ("a dog runs fast", "the red house is big", 0.1),
    ("a small tree", "the tree is small", 0.8),
    ("the blue cat is slow", "a big dog sat", 0.2),
    ("the house and the tree", "a house with a tree", 0.7),
    ("a cat was with the dog", "the mat is red", 0.1),
    ("the big red house", "a red house is big", 0.9),
    ("a slow dog", "the fast cat", 0.3),
];

fn pipeline(stage2_lr: &str) -> String {
    format!(
        "model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(16, tanh)\n\
         data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
         {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n\
         objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 4)\n\
         objective rank = CoSENTLoss(m) on pairs (batch_size: 4)\n\
         evaluator dev = EmbeddingSimilarity(m, pairs)\n\
         train m as first {{ objectives: [sim]\n epochs: 2\n optimizer: AdamW(lr: 1e-3)\n evaluate: dev }}\n\
         train m as second {{ objectives: [rank]\n epochs: 2\n optimizer: AdamW(lr: {stage2_lr})\n evaluate: dev }}\n\
         save m to \"out\"\n\
         expect dev.spearman_cosine >= -1\n"
    )
}

fn run(dir: &Path, file: &str, run_dir: &str) -> Output {
    Command::new(BIN)
        .arg("run")
        .arg(dir.join(file))
        .arg("--run-dir")
        .arg(dir.join(run_dir))
        .arg("--quiet")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn plan(dir: &Path, file: &str, run_dir: &str) -> String {
    let o = Command::new(BIN)
        .arg("plan")
        .arg(dir.join(file))
        .arg("--run-dir")
        .arg(dir.join(run_dir))
        .output()
        .unwrap();
    ok(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The plan line of a step, by the start of its label.
fn line<'a>(plan: &'a str, label: &str) -> &'a str {
    plan.lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no `{label}` in\n{plan}"))
}

fn training_steps(dir: &Path, run_dir: &str) -> usize {
    std::fs::read_to_string(dir.join(run_dir).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"loss\""))
        .count()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("out/2_Dense/model.safetensors")).unwrap()
}

#[test]
fn only_what_changed_runs_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 9);
    let tsv: String = PAIRS
        .iter()
        .map(|(a, b, s)| format!("{a}\t{b}\t{s}\n"))
        .collect();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/pairs.tsv"), tsv).unwrap();
    std::fs::write(dir.join("p.stp"), pipeline("1e-3")).unwrap();

    // Nothing recorded yet: everything runs.
    let before = plan(dir, "p.stp", "run");
    assert!(line(&before, "train first").ends_with("[runs]"), "{before}");
    ok(&run(dir, "p.stp", "run"));
    let steps_first = training_steps(dir, "run");
    assert_eq!(steps_first, 8, "2 stages x 2 epochs x 2 batches");

    // Unchanged: nothing runs but the expectation.
    let again = plan(dir, "p.stp", "run");
    for step in ["train first", "train second", "save m", "evaluate dev"] {
        assert!(line(&again, step).contains("[reused"), "{step}:\n{again}");
    }
    let saved = weights(dir);
    let err = ok(&run(dir, "p.stp", "run"));
    assert_eq!(training_steps(dir, "run"), steps_first, "{err}");
    assert_eq!(weights(dir), saved);
    assert!(err.contains("dev.spearman_cosine"), "{err}");

    // Stage 2 changed: stage 1 is restored, stage 2 and what follows run.
    std::fs::write(dir.join("p.stp"), pipeline("5e-4")).unwrap();
    let changed = plan(dir, "p.stp", "run");
    assert!(
        line(&changed, "train first").contains("[reused (restored)]"),
        "{changed}"
    );
    assert!(
        line(&changed, "train second").ends_with("[runs]"),
        "{changed}"
    );
    assert!(line(&changed, "save m").ends_with("[runs]"), "{changed}");
    let err = ok(&run(dir, "p.stp", "run"));
    assert!(
        err.contains("train first") && err.contains("reused"),
        "{err}"
    );
    // Stage 2's new steps replace its old ones in the log (no step twice).
    assert_eq!(training_steps(dir, "run"), steps_first, "{err}");
    let log = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let second: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stage"] == "second" && v.get("lr").is_some())
        .map(|v| v["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(second.len(), 4);
    assert!(second.iter().all(|&lr| lr <= 5e-4), "{second:?}");
    let incremental = weights(dir);

    // The same bytes as a fresh run of the changed pipeline.
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    ok(&run(dir, "p.stp", "fresh"));
    assert_eq!(weights(dir), incremental);
}
