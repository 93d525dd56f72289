//! What `stpipe` promises about what it reads (issue 8, items 5 to 9): a
//! stalled download fails in time, memory blow-ups are diagnostics, bad
//! data is never trained on silently, every error says where, and secrets
//! never reach the run directory. Each test is named after the item it
//! covers.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use stpipe::check::check_source;
use stpipe::runtime::data::{load, DataError, LoadOptions};
use stpipe::runtime::SentenceEncoder;

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

use common::output_text as text;

/// The codes of a checked pipeline's errors (the pipeline's files are
/// under `dir`).
fn check_errors(dir: &Path, src: &str) -> Vec<(String, String)> {
    let (report, _) = check_source("p.stp", src.to_string(), dir, &common::options());
    report
        .diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.to_string(), d.message.clone()))
        .collect()
}

/// Check `src` (it must be valid) and load its source `name`.
fn load_source(
    dir: &Path,
    src: &str,
    name: &str,
    skip: bool,
) -> Result<stpipe::runtime::data::Dataset, DataError> {
    let (report, p) = check_source("p.stp", src.to_string(), dir, &common::options());
    let p = p.unwrap_or_else(|| panic!("{}", report.to_plain()));
    load(
        &p,
        name,
        &LoadOptions {
            skip_bad_rows: skip,
            max_rows: None,
        },
    )
}

fn bad_row(r: Result<stpipe::runtime::data::Dataset, DataError>) -> (usize, String) {
    match r {
        Err(DataError::BadRow { line, message, .. }) => (line, message),
        other => panic!("expected a bad row, got {other:?}"),
    }
}

/// The error loading `dir` gives (it must fail).
fn load_err(dir: &Path) -> String {
    match SentenceEncoder::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn encode(model: &Path, input: &Path) -> Output {
    Command::new(BIN)
        .args(["encode", "--model"])
        .arg(model)
        .arg(input)
        .output()
        .unwrap()
}

#[test]
fn item_5_a_stalled_download_fails_with_a_message_in_time() {
    // A proxy that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "a sentence\n").unwrap();
    let run = |offline: bool| {
        let mut c = Command::new(BIN);
        c.args(["encode", "--model", "some-org/some-model"])
            .arg(tmp.path().join("in.txt"))
            .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("HF_HOME", tmp.path().join("hf"))
            .env("STPIPE_DOWNLOAD_STALL_SECS", "2")
            .env_remove("STPIPE_MODEL_PATH")
            .env_remove("HF_HUB_CACHE")
            .env_remove("TRANSFORMERS_OFFLINE")
            .env_remove("STPIPE_OFFLINE")
            .stdin(Stdio::null());
        if offline {
            c.env("HF_HUB_OFFLINE", "1");
        } else {
            c.env_remove("HF_HUB_OFFLINE");
        }
        let start = Instant::now();
        let o = c.output().unwrap();
        (o, start.elapsed())
    };
    // Offline: no connection at all.
    let (o, _) = run(true);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("offline mode is on"), "{}", text(&o));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Online, stalled: a clear message long before a minute.
    let (o, took) = run(false);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("download failed") && t.contains("no data arrived"),
        "{t}"
    );
    assert!(took < Duration::from_secs(50), "took {took:?}");
    assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn item_6_memory_blow_ups_are_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 3);
    // Wider than any embedding: refused by its range.
    let errs = check_errors(
        dir,
        "model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(100000000)\nsave m to \"out\"\n",
    );
    assert!(errs.iter().any(|(c, _)| c == "out-of-range"), "{errs:?}");
    // Within range, but a trillion weights: refused with the estimate.
    if Path::new("/proc/meminfo").is_file() {
        let errs = check_errors(
            dir,
            "model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(1048576) -> Dense(1048576)\nsave m to \"out\"\n",
        );
        assert!(
            errs.iter()
                .any(|(c, m)| c == "out-of-memory" && m.contains("GiB of weights")),
            "{errs:?}"
        );
        // A batch of a billion texts is refused, unless a cached loss
        // embeds it 16 texts at a time.
        std::fs::write(dir.join("pairs.tsv"), "a cat\ta dog\nthe mat\ta red mat\n").unwrap();
        let batch = |loss: &str| {
            check_errors(
                dir,
                &format!(
                    "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
                     data d = tsv(\"pairs.tsv\") {{ anchor: col(0), positive: col(1) }}\n\
                     objective o = {loss} on d (batch_size: 1000000000)\n\
                     train m {{ objectives: [o] }}\n"
                ),
            )
        };
        let errs = batch("MultipleNegativesRankingLoss(m)");
        assert!(
            errs.iter()
                .any(|(c, m)| c == "out-of-memory" && m.contains("of activations")),
            "{errs:?}"
        );
        for cached in [
            "CachedMultipleNegativesRankingLoss(m, mini_batch_size: 16)",
            "MatryoshkaLoss(CachedMultipleNegativesRankingLoss(m, mini_batch_size: 16), dims: [8])",
        ] {
            let errs = batch(cached);
            assert!(
                !errs.iter().any(|(c, _)| c == "out-of-memory"),
                "{cached}: {errs:?}"
            );
        }
    } else {
        eprintln!("SKIPPED (memory estimate): /proc/meminfo is absent");
    }
    // A 20 MB line is cut before tokenization: its embedding is that of
    // its beginning (the model keeps 64 tokens either way).
    let words = ["the", "cat", "sat", "on", "a", "red", "mat"];
    let long: String = (0..3_000_000)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let head: String = long.chars().take(2_000).collect();
    let input = dir.join("in.txt");
    std::fs::write(&input, format!("{long}\n{head}\n")).unwrap();
    let o = encode(&dir.join("tiny"), &input);
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<Vec<f32>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], rows[1]);

    // Encoding on the CPU computes at most 1,024 token rows at a time, so
    // even a batch_size of 40,000 texts stays within 1.5 GB.
    let sixty: String = head.chars().take(300).collect();
    let many: String = (0..40_000).map(|i| format!("{sixty} {i}\n")).collect();
    std::fs::write(&input, many).unwrap();
    let limited = |setup: &str, args: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 1500000 && {setup} exec '{BIN}' {args}"))
            .env_remove("STPIPE_BATCH_TOKENS")
            .current_dir(dir)
            .stdout(Stdio::null())
            .output()
            .unwrap()
    };
    let args = format!(
        "encode --model '{}' --batch-size 40000 '{}'",
        dir.join("tiny").display(),
        input.display()
    );
    let o = limited("", &args);
    assert!(o.status.success(), "{}", text(&o));

    // An allocation that fails (here under `ulimit -v`, a batch of 40,000
    // texts with the token limit lifted needs 2.6 GB for one attention
    // map) ends with a message, not an abort.
    let o = limited("export STPIPE_BATCH_TOKENS=0 &&", &args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("out of memory: an allocation of") && t.contains("lower batch_size"),
        "{t}"
    );
}

/// The tiny model with one weight replaced by NaNs.
fn nan_model(dir: &Path) {
    common::write_tiny_bert(dir, 4);
    let path = dir.join("model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    for (name, t) in &mut tensors {
        if name == "embeddings.LayerNorm.weight" {
            *t = Tensor::full(f32::NAN, t.dims(), &Device::Cpu).unwrap();
        }
    }
    stpipe::runtime::weights::save_safetensors(&path, &tensors).unwrap();
}

#[test]
fn item_7_bad_data_and_models_are_never_used_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pairs = |rows: usize, bad: Option<(usize, &str)>| -> String {
        (1..=rows)
            .map(|i| match bad {
                Some((at, score)) if at == i => format!("a b\tc d\t{score}\n"),
                _ => format!("a b\tc d\t0.{}\n", i % 10),
            })
            .collect()
    };
    let scored = |file: &str| {
        format!(
            "model m = Transformer(\"../shared/models/all-MiniLM-L6-v2\") -> Pooling(mean)\n\
             data d = tsv(\"{file}\", header: false, quoting: none) {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n\
             objective o = CosineSimilarityLoss(m) on d\ntrain m {{ objectives: [o] }}\n"
        )
    };
    common::write_tiny_bert(&dir.join("tiny"), 1);
    let tiny_scored =
        |file: &str| scored(file).replace("../shared/models/all-MiniLM-L6-v2", "tiny");

    // A score out of [0, 1] at row 300 (the checker sees the first rows).
    std::fs::write(dir.join("late.tsv"), pairs(400, Some((300, "1.7")))).unwrap();
    let (line, message) = bad_row(load_source(dir, &tiny_scored("late.tsv"), "d", false));
    assert_eq!(line, 300, "{message}");
    assert!(message.contains("1.7"), "{message}");

    // zip of 10 and 8 rows.
    std::fs::write(dir.join("ten.txt"), "a\n".repeat(10)).unwrap();
    std::fs::write(dir.join("eight.txt"), "b\n".repeat(8)).unwrap();
    let src = "data a = tsv(\"ten.txt\", header: false) { anchor: col(0) }\n\
               data b = tsv(\"eight.txt\", header: false) { positive: col(0) }\n\
               data p = zip(a, b)\n";
    match load_source(dir, src, "p", true) {
        Err(DataError::Source { message, .. }) => {
            assert!(message.contains("different lengths"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // JSON null, arrays and objects are not texts.
    for (value, what) in [
        ("null", "null"),
        ("[1, 2]", "array"),
        ("{\"x\": 1}", "object"),
    ] {
        let mut rows: String = (0..8)
            .map(|i| format!("{{\"query\": \"q{i}\", \"answer\": \"a{i}\"}}\n"))
            .collect();
        rows.push_str(&format!("{{\"query\": \"q\", \"answer\": {value}}}\n"));
        std::fs::write(dir.join("qa.jsonl"), rows).unwrap();
        let src =
            "data qa = jsonl(\"qa.jsonl\") { anchor: col(\"query\"), positive: col(\"answer\") }\n";
        let (line, message) = bad_row(load_source(dir, src, "qa", false));
        assert_eq!(line, 9, "{value}: {message}");
        assert!(message.contains(what), "{value}: {message}");
    }

    // An unterminated quote on line 3 of 25 swallows 23 lines: an error
    // there, or 23 skipped lines.
    let mut rows: String = (0..25).map(|i| format!("s{i},t{i}\n")).collect();
    rows = rows.replacen("s2,t2", "s2,\"t2", 1);
    std::fs::write(dir.join("quote.csv"), rows).unwrap();
    let src = "data q = csv(\"quote.csv\", header: false) { anchor: col(0), positive: col(1) }\n";
    let (line, message) = bad_row(load_source(dir, src, "q", false));
    assert_eq!(line, 3, "{message}");
    assert!(message.contains("never closed"), "{message}");
    let ds = load_source(dir, src, "q", true).unwrap();
    assert_eq!((ds.len(), ds.skipped), (2, 23));

    // A config that does not match its weights.
    for (layers, wants) in [(1, "num_hidden_layers"), (3, "encoder.layer.2")] {
        let m = dir.join(format!("layers-{layers}"));
        common::write_tiny_bert(&m, 2);
        let cfg = std::fs::read_to_string(m.join("config.json")).unwrap();
        let cfg = cfg.replace(
            "\"num_hidden_layers\": 2",
            &format!("\"num_hidden_layers\": {layers}"),
        );
        std::fs::write(m.join("config.json"), cfg).unwrap();
        let err = match SentenceEncoder::load(&m) {
            Ok(_) => panic!("num_hidden_layers {layers} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(wants), "{layers}: {err}");
    }

    // max_seq_length 0: refused by the checker, and in a model directory.
    let errs = check_errors(
        dir,
        "model m = Transformer(\"tiny\", max_seq_length: 0) -> Pooling(mean)\nsave m to \"out\"\n",
    );
    assert!(errs.iter().any(|(c, _)| c == "out-of-range"), "{errs:?}");
    let zero = dir.join("zero");
    common::write_tiny_bert(&zero, 2);
    std::fs::write(
        zero.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 0}"#,
    )
    .unwrap();
    let err = load_err(&zero);
    assert!(err.contains("max_seq_length 0"), "{err}");

    // NaN weights: no `null` embeddings, no NaN score.
    nan_model(&dir.join("nan"));
    std::fs::write(dir.join("in.txt"), "the cat\n").unwrap();
    let o = encode(&dir.join("nan"), &dir.join("in.txt"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not finite"), "{}", text(&o));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/pairs.tsv"), common::scored_pairs(16, 0)).unwrap();
    std::fs::write(
        dir.join("eval.stp"),
        "model m = Transformer(\"nan\") -> Pooling(mean)\n\
         data d = tsv(\"data/pairs.tsv\", header: false, quoting: none) { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
         evaluator e = EmbeddingSimilarity(m, d)\nexpect e.spearman_cosine > -2\n",
    )
    .unwrap();
    let o = common::stpipe_run(&dir.join("eval.stp"), &dir.join("run"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not finite"), "{}", text(&o));
}

#[test]
fn item_8_every_error_says_where() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 6);
    let pairs_src = |file: &str, extra: &str| {
        format!(
            "data d = tsv(\"{file}\", header: false, quoting: none{extra}) {{ anchor: col(0), positive: col(1) }}\n"
        )
    };

    // A data file that is not UTF-8 on line 2: a check error there.
    std::fs::write(dir.join("early.tsv"), b"a\tb\ncaf\xe9\tb\n").unwrap();
    let errs = check_errors(dir, &pairs_src("early.tsv", ""));
    assert!(
        errs.iter()
            .any(|(c, m)| c == "not-utf8" && m.contains("line 2")),
        "{errs:?}"
    );
    // Beyond what the checker reads: a located row error, or skipped.
    let mut late = "a\tb\n".repeat(20_000).into_bytes();
    late.extend_from_slice(b"caf\xe9\tb\nc\td\n");
    std::fs::write(dir.join("late.tsv"), late).unwrap();
    let (line, message) = bad_row(load_source(dir, &pairs_src("late.tsv", ""), "d", false));
    assert_eq!(line, 20_001);
    assert!(message.contains("not UTF-8"), "{message}");
    let ds = load_source(dir, &pairs_src("late.tsv", ""), "d", true).unwrap();
    assert_eq!((ds.len(), ds.skipped), (20_001, 1));

    // An `encode` input that is not UTF-8 on line 3.
    std::fs::write(dir.join("in.txt"), b"one\ntwo\nthr\xffee\n").unwrap();
    let o = encode(&dir.join("tiny"), &dir.join("in.txt"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("in.txt:3: the line is not UTF-8"),
        "{}",
        text(&o)
    );

    // A pipeline that is not UTF-8: exit 1 with the place.
    std::fs::write(
        dir.join("bad.stp"),
        b"# fine\nmodel m = Transformer(\"caf\xe9\")\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("check")
        .arg(dir.join("bad.stp"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not UTF-8") && text(&o).contains("bad.stp:2:"),
        "{}",
        text(&o)
    );

    // A byte-order mark is not part of the first header or token.
    std::fs::write(dir.join("bom.csv"), "\u{feff}query,answer\nq,a\n").unwrap();
    let src =
        "\u{feff}data d = csv(\"bom.csv\") { anchor: col(\"query\"), positive: col(\"answer\") }\n";
    let ds = load_source(dir, src, "d", false).unwrap();
    assert_eq!(ds.len(), 1);

    // Empty and header-only files, at check time, with their file.
    std::fs::write(dir.join("empty.tsv"), "").unwrap();
    std::fs::write(dir.join("header.csv"), "query,answer\n").unwrap();
    let errs = check_errors(
        dir,
        &(pairs_src("empty.tsv", "")
            + "data h = csv(\"header.csv\") { anchor: col(\"query\"), positive: col(\"answer\") }\n"),
    );
    assert!(
        errs.iter()
            .any(|(c, m)| c == "empty-data" && m.contains("empty.tsv")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(c, m)| c == "empty-data" && m.contains("header.csv") && m.contains("no rows")),
        "{errs:?}"
    );

    // A FIFO is not "not found".
    let fifo = dir.join("fifo.tsv");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let errs = check_errors(dir, &pairs_src("fifo.tsv", ""));
        assert!(
            errs.iter().any(|(_, m)| m.contains("not a regular file")),
            "{errs:?}"
        );
    } else {
        eprintln!("SKIPPED (FIFO): mkfifo failed");
    }

    // A tokenizer larger than the model's embeddings: the token is named,
    // no backtrace.
    let small = dir.join("small-vocab");
    common::write_tiny_bert(&small, 6);
    let path = small.join("model.safetensors");
    let tensors: Vec<(String, Tensor)> = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            let t = if n == "embeddings.word_embeddings.weight" {
                t.narrow(0, 0, 10).unwrap()
            } else {
                t
            };
            (n, t)
        })
        .collect();
    stpipe::runtime::weights::save_safetensors(&path, &tensors).unwrap();
    let cfg = std::fs::read_to_string(small.join("config.json")).unwrap();
    let cfg = cfg.replace("\"vocab_size\": 31", "\"vocab_size\": 10");
    std::fs::write(small.join("config.json"), cfg).unwrap();
    std::fs::write(dir.join("tree.txt"), "tree house\n").unwrap();
    let o = encode(&small, &dir.join("tree.txt"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("token `") && t.contains("beyond the model's 10 token embeddings"),
        "{t}"
    );
    assert!(!t.contains("panicked") && !t.contains("backtrace"), "{t}");
}

#[test]
fn item_9_secrets_never_reach_the_run_directory_and_module_paths_stay_inside() {
    let ws = common::tiny_workspace(24);
    let dir = ws.path();
    // A secret in an environment variable, used in a path.
    let secret = "s3cr3t-7f2a91";
    std::fs::create_dir_all(dir.join(secret)).unwrap();
    std::fs::copy(
        dir.join("data/pairs.tsv"),
        dir.join(secret).join("pairs.tsv"),
    )
    .unwrap();
    let src = common::tiny_pipeline("out", "max_steps: 3")
        .replace("data/pairs.tsv", "${PRIVATE_DIR}/pairs.tsv");
    std::fs::write(dir.join("p.stp"), src).unwrap();
    let o = common::stpipe_run(&dir.join("p.stp"), &dir.join("run"))
        .env("PRIVATE_DIR", dir.join(secret))
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains(secret), "printed: {t}");
    for root in ["run", "out"] {
        for (p, bytes) in common::tree(&dir.join(root)) {
            let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "{} holds the secret", p.display());
        }
    }
    let recorded = std::fs::read_to_string(dir.join("run/pipeline.json")).unwrap_or_default();
    assert!(recorded.contains("${PRIVATE_DIR}"), "{recorded}");

    // modules.json paths may not leave the model directory.
    for path in ["../elsewhere", "/etc", "1_Pooling/../../x"] {
        let m = dir.join("escape");
        let _ = std::fs::remove_dir_all(&m);
        common::write_tiny_bert(&m, 1);
        std::fs::write(
            m.join("modules.json"),
            format!(
                r#"[{{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}},
                   {{"idx":1,"name":"1","path":"{path}","type":"sentence_transformers.models.Pooling"}}]"#
            ),
        )
        .unwrap();
        let err = load_err(&m);
        assert!(err.contains("leaves the model directory"), "{path}: {err}");
    }
}
