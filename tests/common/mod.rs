//! Shared test setup: a fixed environment, the shared model and data
//! directories, and tiny random models made on the fly.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use stpipe::check::Options;
use stpipe::hub::ModelSearch;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// No environment variables (defaults in `${VAR:-default}` apply), models
/// from the shared model directory next to the repository.
pub fn options() -> Options {
    Options {
        env: HashMap::new(),
        models: ModelSearch {
            paths: vec![repo().join("../shared/models")],
            hf_cache: None,
        },
        run_dir: None,
        skip_bad_rows: false,
        save_suffix: None,
    }
}

use candle_core::{Device, Tensor};
use stpipe::runtime::weights::save_safetensors;

/// The shared directory (`../shared` from the crate, or `STPIPE_SHARED`).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("STPIPE_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// The MiniLM model directory, or `None` (with a printed reason) when the
/// shared files are absent.
pub fn minilm_dir() -> Option<PathBuf> {
    let d = shared_dir().join("models/all-MiniLM-L6-v2");
    if d.join("model.safetensors").is_file() {
        Some(d)
    } else {
        eprintln!("SKIPPED: {} is absent", d.display());
        None
    }
}

const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "sat", "on", "mat", "runs", "fast", "slow", "red", "blue", "big",
    "small", "house", "tree", "##s", "##ed", "##ing", "and", "is", "was", "with", ".", ",", "!",
];

/// Write a tiny random 2-layer BERT (config.json, model.safetensors,
/// vocab.txt, tokenizer.json built with the tokenizers crate) into `dir`.
pub fn write_tiny_bert(dir: &Path, seed: u64) {
    write_tiny_bert_with(dir, seed, true);
}

/// The tiny BERT with a tokenizer that keeps case (`lowercase: false`):
/// capitalised words are unknown to its lower-case vocabulary.
pub fn write_tiny_bert_cased(dir: &Path, seed: u64) {
    write_tiny_bert_with(dir, seed, false);
}

fn write_tiny_bert_with(dir: &Path, seed: u64, lowercase: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(WORDS.iter().map(|s| s.to_string()));
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    let tok =
        stpipe::runtime::modules::tokenizer::bert_wordpiece(&dir.join("vocab.txt"), lowercase)
            .unwrap();
    tok.save(dir.join("tokenizer.json"), false).unwrap();

    let (h, layers, inter, max_pos, types) = (32usize, 2usize, 64usize, 64usize, 2usize);
    let config = serde_json::json!({
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": vocab.len(),
        "hidden_size": h,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": inter,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_pos,
        "type_vocab_size": types,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let dev = Device::Cpu;
    let mut k = seed;
    let mut rnd = |shape: &[usize], scale: f64| -> Tensor {
        k += 1;
        let n: usize = shape.iter().product();
        // Deterministic pseudo-random values (xorshift).
        let mut s = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32 * scale as f32
            })
            .collect();
        Tensor::from_vec(v, shape, &dev).unwrap()
    };
    let mut t: Vec<(String, Tensor)> = Vec::new();
    let mut push = |name: &str, shape: &[usize], scale: f64, add_one: bool| {
        let mut x = rnd(shape, scale);
        if add_one {
            x = (x + 1.0).unwrap();
        }
        t.push((name.to_string(), x));
    };
    push(
        "embeddings.word_embeddings.weight",
        &[vocab.len(), h],
        0.5,
        false,
    );
    push(
        "embeddings.position_embeddings.weight",
        &[max_pos, h],
        0.1,
        false,
    );
    push(
        "embeddings.token_type_embeddings.weight",
        &[types, h],
        0.1,
        false,
    );
    push("embeddings.LayerNorm.weight", &[h], 0.1, true);
    push("embeddings.LayerNorm.bias", &[h], 0.1, false);
    for i in 0..layers {
        let p = format!("encoder.layer.{i}.");
        for (n, o, ii) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", inter, h),
            ("output.dense", h, inter),
        ] {
            push(&format!("{p}{n}.weight"), &[o, ii], 0.3, false);
            push(&format!("{p}{n}.bias"), &[o], 0.1, false);
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            push(&format!("{p}{n}.weight"), &[h], 0.1, true);
            push(&format!("{p}{n}.bias"), &[h], 0.1, false);
        }
    }
    save_safetensors(&dir.join("model.safetensors"), &t).unwrap();
}

/// Cosine similarity and max abs difference of two equal-length vectors.
pub fn compare(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut dot, mut na, mut nb, mut maxd) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
        maxd = maxd.max((x - y).abs());
    }
    (dot / (na.sqrt() * nb.sqrt()).max(1e-30), maxd)
}

pub const SENTENCES: &[&str] = &[
    "the cat sat on the mat.",
    "a big dog runs fast",
    "red house",
    "the small blue tree was with a cat and a dog and a house!",
    "cats",
];

/// `rows` scored sentence pairs over [`WORDS`]-like words, deterministic
/// in `seed` (TSV: sentence1, sentence2, score in [0, 1]).
pub fn scored_pairs(rows: usize, seed: usize) -> String {
    const W: &[&str] = &[
        "the", "a", "cat", "dog", "sat", "on", "mat", "runs", "red", "big",
    ];
    (0..rows)
        .map(|i| {
            let s = |k: usize| {
                (0..2 + (i + k + seed) % 3)
                    .map(|j| W[(i * 3 + j * 7 + k + seed) % W.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!("{}\t{}\t{:.2}\n", s(0), s(1), ((i + seed) % 5) as f64 / 4.0)
        })
        .collect()
}

/// A temporary directory with the tiny model in `tiny/` and `rows` scored
/// pairs in `data/pairs.tsv` (data in its own directory: a save may not
/// lie in a data directory).
pub fn tiny_workspace(rows: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_bert(&tmp.path().join("tiny"), 5);
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/pairs.tsv"), scored_pairs(rows, 0)).unwrap();
    tmp
}

/// A training pipeline over the tiny model and `data/pairs.tsv`, saving
/// to `out`; `train` goes into the train block.
pub fn tiny_pipeline(out: &str, train: &str) -> String {
    format!(
        "model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(8, tanh)\n\
         data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
         {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n\
         objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8, shuffle: true)\n\
         train m {{\n optimizer: AdamW(lr: 1e-3)\n objectives: [sim]\n {train}\n}}\n\
         save m to \"{out}\"\n"
    )
}

/// The bytes of a saved tiny model's weight files.
pub fn saved_weights(out: &Path) -> Vec<Vec<u8>> {
    ["model.safetensors", "2_Dense/model.safetensors"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap_or_else(|e| panic!("{}: {e}", out.display())))
        .collect()
}

/// `stpipe run FILE --run-dir RUN --quiet` in FILE's directory's terms.
pub fn stpipe_run(file: &Path, run_dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.arg("run")
        .arg(file)
        .arg("--run-dir")
        .arg(run_dir)
        .arg("--quiet")
        .env_remove("STPIPE_FAILPOINT")
        .stdin(std::process::Stdio::null());
    c
}

/// Every file under `dir` with its bytes (a snapshot to compare).
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// A command's stdout and stderr together, with the graphical report's
/// wrapping undone (one space for every run of whitespace and frame
/// characters), for searching messages.
pub fn output_text(o: &std::process::Output) -> String {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    all.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A small deterministic generator for randomised tests: xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// A randomised test's time budget and seed: `STPIPE_FUZZ_SECS` (default
/// 3 s) and `STPIPE_FUZZ_SEED` (default `seed`).
pub fn fuzz_budget(seed: u64) -> (f64, u64) {
    let var = |name: &str| std::env::var(name).ok();
    (
        var("STPIPE_FUZZ_SECS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
        var("STPIPE_FUZZ_SEED")
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed),
    )
}

/// `stpipe` run in `dir`, with no failpoint armed and no input.
pub fn stpipe_in(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.current_dir(dir)
        .env_remove("STPIPE_FAILPOINT")
        .stdin(std::process::Stdio::null());
    c
}

/// A JSON file's value.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The (anchor, positive) pairs of an architecture fixture's
/// `grads.json` (`tests/fixtures/arch/NAME`).
pub fn fixture_pairs(dir: &Path) -> (Vec<String>, Vec<String>) {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("grads.json")).unwrap()).unwrap();
    let texts = |k: &str| -> Vec<String> {
        spec[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    (texts("anchors"), texts("positives"))
}

/// Dense gradients by variable: autograd's (added with `add`) and those the
/// explicit backward delivers (as a `GradSink`), summed.
#[derive(Default)]
pub struct GradCollect {
    pub vars: HashMap<candle_core::TensorId, Vec<f32>>,
}

impl GradCollect {
    pub fn slot(&mut self, var: &candle_core::Var) -> &mut Vec<f32> {
        self.vars
            .entry(var.as_tensor().id())
            .or_insert_with(|| vec![0.0; var.elem_count()])
    }

    /// Adds the gradient of each of `vars` in `grads`.
    pub fn add<'a>(
        &mut self,
        vars: impl IntoIterator<Item = &'a candle_core::Var>,
        grads: &candle_core::backprop::GradStore,
    ) {
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                self.slot(v).iter_mut().zip(g).for_each(|(a, b)| *a += b);
            }
        }
    }
}

impl stpipe::runtime::step::GradSink for GradCollect {
    fn buffer(&mut self, var: &candle_core::Var) -> Option<(&mut [f32], f32)> {
        Some((self.slot(var).as_mut_slice(), 1.0))
    }

    fn buffers(&mut self, vars: &[candle_core::Var]) -> Vec<stpipe::runtime::step::Buf<'_>> {
        for v in vars {
            self.slot(v);
        }
        let mut by_id: std::collections::HashMap<_, _> = self.vars.iter_mut().collect();
        vars.iter()
            .map(|v| {
                let b = by_id.remove(&v.as_tensor().id())?;
                Some((b.as_mut_slice(), 1.0))
            })
            .collect()
    }

    fn add_rows(&mut self, var: &candle_core::Var, ids: &[u32], grads: &[f32]) {
        let w = var.dims()[1];
        let buf = self.slot(var);
        for (&id, g) in ids.iter().zip(grads.chunks(w)) {
            let dst = &mut buf[id as usize * w..(id as usize + 1) * w];
            dst.iter_mut().zip(g).for_each(|(d, g)| *d += g);
        }
    }
}
