//! Crash a run at every file-system change it makes, in turn, and resume:
//! every resumed run must end with the bytes an uninterrupted run saves,
//! leave no hidden leftovers (`.tmp`, `.old`, `stpipe-tmp`, `stpipe-old`),
//! and log every step once. The crash comes from `STPIPE_FAILPOINT=N`
//! (`src/fsio.rs`): the process aborts at its N-th change, a write cut half
//! way, as a power cut or `kill -9` would leave it.
//!
//! The run: one stage of 5 steps with checkpoints at steps 2 and 4 (and
//! the final one), evaluations with best weights kept, a save of the best
//! weights and an expectation.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

const PIPELINE: &str = "model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(8, tanh)\n\
    data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
    { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
    data dev = pairs limit 16\n\
    objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8)\n\
    evaluator e = EmbeddingSimilarity(m, dev)\n\
    train m {\n objectives: [sim]\n optimizer: AdamW(lr: 1e-3)\n\
    evaluate: e every 2 steps\n checkpoint: every 2 steps, keep 1\n seed: 7\n}\n\
    save m to \"out\" best by e.spearman_cosine\n\
    expect e.spearman_cosine >= -1\n";

const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "sat", "on", "mat", "runs", "red", "big",
];

/// A fresh workspace: the tiny model, 40 scored pairs, the pipeline.
fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(&tmp.path().join("tiny"), 5);
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let rows: String = (0..40)
        .map(|i| {
            let s = |k: usize| {
                (0..2 + (i + k) % 3)
                    .map(|j| WORDS[(i * 3 + j * 7 + k) % WORDS.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!("{}\t{}\t{:.2}\n", s(0), s(1), (i % 5) as f64 / 4.0)
        })
        .collect();
    std::fs::write(tmp.path().join("data/pairs.tsv"), rows).unwrap();
    std::fs::write(tmp.path().join("p.stp"), PIPELINE).unwrap();
    tmp
}

fn run(dir: &Path, failpoint: Option<u64>) -> Output {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg(dir.join("p.stp"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--quiet")
        .env_remove("STPIPE_FAILPOINT");
    if let Some(n) = failpoint {
        c.env("STPIPE_FAILPOINT", n.to_string());
    }
    c.output().unwrap()
}

fn saved(dir: &Path) -> Vec<Vec<u8>> {
    ["model.safetensors", "2_Dense/model.safetensors"]
        .iter()
        .map(|f| std::fs::read(dir.join("out").join(f)).unwrap())
        .collect()
}

/// Files and directories an interrupted write would leave behind.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp")
                || name.ends_with(".old")
                || name.contains("stpipe-tmp")
                || name.contains("stpipe-old")
            {
                out.push(p.clone());
            }
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// The (stage, step, what) keys of the metrics log must be unique.
fn repeated_log_lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let mut seen = HashSet::new();
    let mut dups = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(stage), Some(step)) = (v["stage"].as_str(), v["step"].as_u64()) else {
            continue;
        };
        let what = v["evaluator"].as_str().unwrap_or("loss");
        if !seen.insert((stage.to_string(), step, what.to_string())) {
            dups.push(line.to_string());
        }
    }
    dups
}

#[test]
fn a_crash_at_any_file_system_change_resumes_to_the_same_bytes() {
    let reference = workspace();
    let o = run(reference.path(), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = saved(reference.path());

    let mut crashed = 0u64;
    for n in 1u64.. {
        let ws = workspace();
        let dir = ws.path();
        let o = run(dir, Some(n));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if o.status.success() {
            // The run made fewer than n changes: every one was a crash point.
            break;
        }
        assert!(
            err.contains("STPIPE_FAILPOINT") && o.status.code().is_none(),
            "failpoint {n}: the run failed instead of crashing:\n{err}"
        );
        crashed += 1;
        let again = run(dir, None);
        let err2 = String::from_utf8_lossy(&again.stderr);
        assert!(
            again.status.success(),
            "failpoint {n} ({}): the resumed run failed:\n{err2}",
            err.lines().last().unwrap_or("")
        );
        assert!(
            saved(dir) == want,
            "failpoint {n} ({}): the resumed run saved other bytes",
            err.lines().last().unwrap_or("")
        );
        let left = leftovers(dir);
        assert!(left.is_empty(), "failpoint {n}: leftovers {left:?}");
        let dups = repeated_log_lines(dir);
        assert!(
            dups.is_empty(),
            "failpoint {n}: repeated log lines {dups:?}"
        );
        assert!(n < 10_000, "the run never finished");
    }
    eprintln!("{crashed} failpoints, {crashed} resumed byte-identical");
    assert!(crashed >= 20, "only {crashed} file-system changes");
}
