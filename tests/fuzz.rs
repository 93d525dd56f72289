//! No input makes the checker panic: random and mutated pipeline text goes
//! through parse + check (and the diagnostics renderer).
//!
//! A short run is part of `cargo test`. For a long run:
//!
//! ```text
//! STPIPE_FUZZ_SECS=600 cargo test --test fuzz -- --nocapture
//! ```
//!
//! `STPIPE_FUZZ_SEED` picks the seed. A crashing input is written to
//! `target/fuzz-crash.stp`.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Rng;

const DICTIONARY: &[&str] = &[
    "let",
    "model",
    "data",
    "objective",
    "evaluator",
    "train",
    "save",
    "expect",
    "on",
    "to",
    "best",
    "by",
    "limit",
    "every",
    "steps",
    "keep",
    "as",
    "true",
    "false",
    "->",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "=",
    ">=",
    "<",
    "%",
    "/",
    "*",
    "+",
    "-",
    "#",
    "\"",
    "\n",
    "Transformer",
    "Pooling",
    "Dense",
    "Normalize",
    "LayerNorm",
    "Dropout",
    "load",
    "tsv",
    "csv",
    "jsonl",
    "zip",
    "triplets",
    "col",
    "map",
    "CosineSimilarityLoss",
    "SoftmaxLoss",
    "MultipleNegativesRankingLoss",
    "MSELoss",
    "EmbeddingSimilarity",
    "LabelAccuracy",
    "BinaryClassification",
    "MSE",
    "AdamW",
    "WarmupLinear",
    "objectives",
    "epochs",
    "evaluate",
    "checkpoint",
    "teacher",
    "num_labels",
    "batch_size",
    "sampler",
    "0",
    "1",
    "-1",
    "2e-5",
    "10%",
    "150%",
    "1e400",
    "99999999999999999999999",
    "0.0",
    "\"${STPIPE_DATA}\"",
    "\"${X:-${Y:-z}}\"",
    "\"${\"",
    "\"\\$\"",
    "\"../../shared/data/snli/validation.tsv\"",
    "\"/dev/null\"",
    "\"/\"",
    "\"\"",
    "é",
    "\u{1F600}",
    "\t",
    "\r\n",
    "sbert",
    "sts_train",
    "dev",
    "spearman_cosine",
    "mean",
    "cls",
    "tanh",
    "label",
    "score",
    "premise",
];

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn mutate(rng: &mut Rng, corpus: &[(PathBuf, String)]) -> (PathBuf, String) {
    let (path, base) = rng.pick(corpus).clone();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = match rng.below(6) {
        // Token edits.
        0..=2 => {
            let mut t = tokens(&base);
            for _ in 0..1 + rng.below(3) {
                if t.is_empty() {
                    break;
                }
                let i = rng.below(t.len());
                match rng.below(7) {
                    0 => {
                        t.remove(i);
                    }
                    5 | 6 => {
                        // Same-shape replacement: a word for a word, a
                        // number for a number (keeps the syntax valid).
                        let words: Vec<&str> = DICTIONARY
                            .iter()
                            .copied()
                            .filter(|w| w.chars().all(|c| c.is_alphanumeric() || c == '_'))
                            .collect();
                        let same: Vec<&str> = words
                            .iter()
                            .copied()
                            .filter(|w| {
                                w.chars().all(|c| c.is_ascii_digit())
                                    == t[i].chars().all(|c| c.is_ascii_digit())
                            })
                            .collect();
                        if t[i].chars().all(|c| c.is_alphanumeric() || c == '_') && !same.is_empty()
                        {
                            t[i] = rng.pick(&same).to_string();
                        }
                    }
                    1 => {
                        let x = t[i].clone();
                        t.insert(i, x);
                    }
                    2 => {
                        let j = rng.below(t.len());
                        t.swap(i, j);
                    }
                    3 => t[i] = rng.pick(DICTIONARY).to_string(),
                    _ => t.insert(i, rng.pick(DICTIONARY).to_string()),
                }
            }
            t.concat()
        }
        // Byte edits, then lossy UTF-8.
        3 => {
            let mut b = base.into_bytes();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len() + 1);
                match rng.below(3) {
                    0 if i < b.len() => {
                        b.remove(i);
                    }
                    1 if i < b.len() => b[i] = rng.next() as u8,
                    _ => b.insert(i, rng.next() as u8),
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        // Truncation, or splicing two files.
        4 => {
            if rng.below(2) == 0 {
                let cut = rng.below(base.len() + 1);
                String::from_utf8_lossy(&base.as_bytes()[..cut]).into_owned()
            } else {
                let (_, other) = rng.pick(corpus);
                let a = rng.below(base.len() + 1);
                let b = rng.below(other.len() + 1);
                let mut v = base.as_bytes()[..a].to_vec();
                v.extend_from_slice(&other.as_bytes()[b..]);
                String::from_utf8_lossy(&v).into_owned()
            }
        }
        // Token soup.
        _ => {
            let n = rng.below(80);
            (0..n)
                .map(|_| *rng.pick(DICTIONARY))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    (dir, text)
}

fn corpus() -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for d in ["pipelines", "tests/invalid"] {
        let dir = common::repo().join(d);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "stp"))
            .collect();
        files.sort();
        for f in files {
            let s = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            v.push((f, s));
        }
    }
    v
}

fn run_one(dir: &Path, text: &str, opts: &stpipe::check::Options) {
    let (report, _) = stpipe::check::check_source("fuzz.stp", text.to_string(), dir, opts);
    // Spans index the report's source (the text without a byte-order mark).
    let src = report.source.as_str();
    assert!(src.len() <= text.len());
    for d in &report.diags {
        assert!(d.span.start <= d.span.end && d.span.end <= src.len());
        assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
    }
    let _ = report.to_plain();
    let _ = report.to_json();
    for d in report.miette() {
        let mut s = String::new();
        let _ = miette::GraphicalReportHandler::new().render_report(&mut s, &d);
    }
}

#[test]
fn mutated_pipelines_never_panic() {
    let (secs, seed) = common::fuzz_budget(0x5eed_1234_abcd_0001);
    let corpus = corpus();
    let opts = common::options();
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut cases = 0u64;
    let mut errors = 0u64;
    while Instant::now() < deadline {
        let (dir, text) = mutate(&mut rng, &corpus);
        let r = std::panic::catch_unwind(|| run_one(&dir, &text, &opts));
        if r.is_err() {
            let out = common::repo().join("target/fuzz-crash.stp");
            let _ = std::fs::write(&out, &text);
            panic!("checker panicked on input written to {}", out.display());
        }
        if stpipe::syntax::parse(&text).is_err() {
            errors += 1;
        }
        cases += 1;
    }
    println!("fuzz: {cases} cases in {secs} s ({errors} with syntax errors), seed {seed}");
    assert!(cases > 0);
}
