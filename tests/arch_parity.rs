//! Parity of every architecture with Python sentence-transformers and
//! torch, on the tiny random models of `tests/fixtures/arch` (written by
//! `scripts/make_arch_fixtures.py`): embeddings, token ids, the loss and
//! gradients of one MultipleNegativesRankingLoss step, bare Hugging Face
//! directories, and the saved layout.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use stpipe::registry::Args;
use stpipe::runtime::loss::{LossCx, LossInputs};
use stpipe::runtime::{Ctx, EncodeOptions, SentenceEncoder};

/// The fixtures: every directory of `tests/fixtures/arch` with a
/// `grads.json`, named by `model_type`. Every architecture stpipe runs
/// must have one (so a new one cannot go untested).
fn archs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(common::repo().join("tests/fixtures/arch"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("grads.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for t in stpipe::runtime::arch::supported_model_types() {
        assert!(
            names.iter().any(|n| n == t),
            "no parity fixture for model_type `{t}`"
        );
    }
    names
}

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/arch").join(name)
}

fn sentences() -> Vec<String> {
    std::fs::read_to_string(common::repo().join("tests/fixtures/parity/sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Min cosine and max abs difference of two row sets.
fn rows_agree(got: &[Vec<f32>], want: &[Vec<f32>]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let (mut cos, mut diff) = (1f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len());
        let (c, d) = common::compare(g, w);
        cos = cos.min(c);
        diff = diff.max(d);
    }
    (cos, diff)
}

fn check_embeddings(name: &str, enc: &SentenceEncoder) {
    assert_encodes(name, enc, &fixture(name).join("embeddings.safetensors"));
}

/// `enc`'s embeddings of the parity sentences against the `embeddings`
/// tensor of `reference`: cosine >= 0.99999, max abs diff <= 1e-4.
fn assert_encodes(name: &str, enc: &SentenceEncoder, reference: &Path) {
    let want = tensors(reference)["embeddings"].to_vec2::<f32>().unwrap();
    let got = enc
        .encode(&sentences(), &EncodeOptions::default())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let (cos, diff) = rows_agree(&got, &want);
    println!("{name}: min cosine {cos:.9}, max abs diff {diff:.2e}");
    assert!(cos >= 0.99999, "{name}: min cosine {cos}");
    assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
}

#[test]
fn embeddings_match_sentence_transformers() {
    for name in &archs() {
        let enc = SentenceEncoder::load(&fixture(name).join("model")).unwrap();
        assert_eq!(enc.transformer().arch.model_type(), *name);
        check_embeddings(name, &enc);
    }
}

#[test]
fn token_ids_match_the_fast_tokenizer() {
    for name in &archs() {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("tokens.json")).unwrap(),
        )
        .unwrap();
        let enc = SentenceEncoder::load(&fixture(name).join("model")).unwrap();
        let t = enc.transformer();
        assert_eq!(
            t.max_seq_length as u64,
            spec["max_seq_length"].as_u64().unwrap()
        );
        let texts: Vec<&str> = spec["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let f = t.tokenize(&texts, &Device::Cpu).unwrap();
        let ids = f.input_ids.unwrap().to_vec2::<u32>().unwrap();
        let mask = f.attention_mask.unwrap().to_vec2::<f32>().unwrap();
        for (i, want) in spec["ids"].as_array().unwrap().iter().enumerate() {
            let want: Vec<u32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let got: Vec<u32> = ids[i]
                .iter()
                .zip(&mask[i])
                .filter(|(_, &m)| m > 0.5)
                .map(|(&id, _)| id)
                .collect();
            assert_eq!(got, want, "{name}: text {i} {:?}", texts[i]);
        }
        for pair in spec["pairs"].as_array().unwrap() {
            let (a, b) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            let want: Vec<u32> = pair[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            // transformers encodes an empty second text as no pair.
            let got = if b.is_empty() {
                t.tokenizer.inner().encode(a, true).unwrap()
            } else {
                t.tokenizer.inner().encode((a, b), true).unwrap()
            };
            assert_eq!(got.get_ids(), want.as_slice(), "{name}: pair {a:?} / {b:?}");
        }
        println!(
            "{name}: {} texts and {} pairs tokenize as in transformers",
            texts.len(),
            spec["pairs"].as_array().unwrap().len()
        );
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `||a - b|| / ||b||`.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn one_training_step_matches_torch() {
    for name in &archs() {
        let dir = fixture(name);
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("grads.json")).unwrap())
                .unwrap();
        let want = tensors(&dir.join("grads.safetensors"));
        let enc = SentenceEncoder::load(&dir.join("model")).unwrap();
        let (anchors, positives) = common::fixture_pairs(&dir);
        // Dropout off, gradients on: the reference ran torch in eval mode.
        let ctx = Ctx::eval_with_grad();
        let entry = &stpipe::runtime::loss::mnrl::ENTRY;
        let args = Args::defaults(&entry.spec);
        let loss = (entry.build)(
            &args,
            &LossCx {
                objective: "parity".into(),
                dim: enc.dim(),
                seed: 0,
                device: Device::Cpu,
                model: None,
            },
        )
        .unwrap();
        let inputs = LossInputs {
            embeddings: vec![
                enc.embed(&refs(&anchors), &ctx).unwrap(),
                enc.embed(&refs(&positives), &ctx).unwrap(),
            ],
            ..Default::default()
        };
        let value = loss.forward(&inputs).unwrap();
        let got_loss = value.to_scalar::<f32>().unwrap() as f64;
        let want_loss = want["loss"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!(
            (got_loss - want_loss).abs() <= 1e-4 * want_loss.abs().max(1e-6),
            "{name}: loss {got_loss} vs torch {want_loss}"
        );
        let grads = value.backward().unwrap();
        let vars: HashMap<String, candle_core::Var> = enc
            .named_vars()
            .into_iter()
            .filter(|v| v.module == 0)
            .map(|v| (v.name, v.var))
            .collect();
        // Every weight of the encoder takes part in training.
        let untouched: Vec<&String> = vars
            .iter()
            .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(
            untouched.is_empty(),
            "{name}: no gradient for {untouched:?}"
        );
        let mut worst = 0f64;
        for w in spec["weights"].as_array().unwrap() {
            let w = w.as_str().unwrap();
            let var = vars
                .get(w)
                .unwrap_or_else(|| panic!("{name}: no parameter `{w}`"));
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for `{w}`"));
            // For an embedding matrix only the rows the batch touched are
            // stored: every other row of both gradients must be zero.
            let g = match want.get(&format!("rows.{w}")) {
                Some(rows) => {
                    let rows: Vec<u32> = rows
                        .to_vec1::<i64>()
                        .unwrap()
                        .into_iter()
                        .map(|r| r as u32)
                        .collect();
                    let total = g
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
                    let kept = g.index_select(&idx, 0).unwrap();
                    let inside = kept
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    assert!(
                        (total - inside).abs() <= 1e-6 * total.max(1e-12),
                        "{name}: {w} has gradient outside the batch's rows"
                    );
                    kept
                }
                None => g.clone(),
            };
            let e = rel_err(&g, &want[&format!("grad.{w}")]);
            assert!(e < 1e-4, "{name}: gradient of {w}: relative error {e:.2e}");
            worst = worst.max(e);
        }
        println!(
            "{name}: loss {got_loss:.7} (torch {want_loss:.7}), worst gradient relative error {worst:.2e} over {} weights",
            spec["weights"].as_array().unwrap().len()
        );
    }
}

/// Copy the Hugging Face files of a fixture model, without the
/// sentence-transformers ones.
fn bare_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().to_string();
        let st_file = n == "modules.json"
            || n.starts_with("sentence_")
            || n == "config_sentence_transformers.json"
            || n.starts_with('1');
        if e.file_type().unwrap().is_file() && !st_file {
            std::fs::copy(e.path(), to.join(&n)).unwrap();
        }
    }
}

#[test]
fn bare_hugging_face_directories_load_with_mean_pooling() {
    let tmp = tempfile::tempdir().unwrap();
    for name in &archs() {
        let bare = tmp.path().join(name);
        bare_copy(&fixture(name).join("model"), &bare);
        let enc = SentenceEncoder::load(&bare).unwrap();
        let types: Vec<&str> = enc.modules().iter().map(|m| m.type_name()).collect();
        assert_eq!(types, ["Transformer", "Pooling"], "{name}");
        check_embeddings(name, &enc);
    }
}

/// The tensor names of a model directory's weights file.
fn weight_names(dir: &Path) -> Vec<String> {
    let st = dir.join("model.safetensors");
    let mut names: Vec<String> = if st.is_file() {
        tensors(&st).into_keys().collect()
    } else {
        candle_core::pickle::read_all(dir.join("pytorch_model.bin"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    names.sort();
    names
}

#[test]
fn saved_models_keep_the_hugging_face_names_and_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    for name in &archs() {
        let src = fixture(name).join("model");
        let enc = SentenceEncoder::load(&src).unwrap();
        let out = tmp.path().join(name);
        enc.save(&out).unwrap();
        assert_eq!(weight_names(&out), weight_names(&src), "{name}");
        let again = SentenceEncoder::load(&out).unwrap();
        check_embeddings(name, &again);
    }
}

/// A Hub id resolves through the Hugging Face cache layout
/// (`models--org--name/snapshots/<rev>/`, `refs/main`), with no network:
/// `Transformer("org/name")` checks, trains and saves from the cache.
#[test]
fn hub_ids_resolve_through_the_hugging_face_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let repo_dir = cache.join("models--acme--tiny-bert");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    bare_copy(
        &fixture("bert").join("model"),
        &repo_dir.join("snapshots").join(rev),
    );
    // An older snapshot that refs/main does not name is ignored.
    bare_copy(
        &fixture("roberta").join("model"),
        &repo_dir.join("snapshots/old"),
    );
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), rev).unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(
        tmp.path().join("data/pairs.tsv"),
        common::scored_pairs(16, 1),
    )
    .unwrap();
    let file = tmp.path().join("hub.stp");
    std::fs::write(
        &file,
        "model m = Transformer(\"acme/tiny-bert\") -> Pooling(mean)\n\
         data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
           { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
         objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8)\n\
         train m { objectives: [sim]\n max_steps: 1 }\n\
         save m to \"out\"\n",
    )
    .unwrap();
    let o = common::stpipe_run(&file, &tmp.path().join("run"))
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("STPIPE_MODEL_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let saved = SentenceEncoder::load(&tmp.path().join("out")).unwrap();
    assert_eq!(saved.transformer().arch.model_type(), "bert");
}

/// The real all-mpnet-base-v2 (from PyPI, see
/// tests/fixtures/parity/mpnet/README.md) against sentence-transformers.
#[test]
fn all_mpnet_base_v2_matches_sentence_transformers() {
    let dir = match std::env::var_os("STPIPE_MPNET") {
        Some(d) => PathBuf::from(d),
        None => common::shared_dir().join("models/all-mpnet-base-v2"),
    };
    let dir = if dir.join("modules.json").is_file() {
        dir
    } else {
        common::repo().join("../cache/all-mpnet-base-v2")
    };
    if !dir.join("modules.json").is_file() {
        eprintln!(
            "SKIPPED: all-mpnet-base-v2 is absent (set STPIPE_MPNET; see tests/fixtures/parity/mpnet/README.md)"
        );
        return;
    }
    let enc = SentenceEncoder::load(&dir).unwrap();
    assert_eq!(enc.transformer().arch.model_type(), "mpnet");
    assert_eq!(enc.dim(), 768);
    assert_encodes(
        "all-mpnet-base-v2",
        &enc,
        &common::repo().join("tests/fixtures/parity/mpnet/embeddings.safetensors"),
    );
}

/// The prefix each architecture's task-head checkpoints (`*ForMaskedLM`,
/// `BertForPreTraining`) put before the encoder's names; an architecture
/// not listed is tested with `encoder.`.
const HEAD_PREFIX: &[(&str, &str)] = &[
    ("bert", "bert."),
    ("distilbert", "distilbert."),
    ("mpnet", "mpnet."),
    ("roberta", "roberta."),
    ("xlm-roberta", "roberta."),
    ("camembert", "roberta."),
    ("modernbert", "model."),
];

/// A checkpoint saved with a task head (prefixed encoder names, head
/// tensors besides) loads as the bare encoder and saves under
/// `AutoModel`'s names, without the head.
#[test]
fn task_head_checkpoints_load_and_save_as_automodel() {
    let tmp = tempfile::tempdir().unwrap();
    for name in &archs() {
        let prefix = HEAD_PREFIX
            .iter()
            .find(|(n, _)| n == name)
            .map_or("encoder.", |(_, p)| *p);
        let src = fixture(name).join("model");
        let dir = tmp.path().join(name);
        bare_copy(&src, &dir);
        let names = weight_names(&src);
        let w = stpipe::runtime::weights::WeightFile::load_from_dir(&src, &Device::Cpu).unwrap();
        let mut tensors: Vec<(String, Tensor)> = names
            .iter()
            .map(|n| (format!("{prefix}{n}"), w.tensor(n).unwrap().clone()))
            .collect();
        let h = tensors[0].1.dims().last().copied().unwrap();
        tensors.push((
            "lm_head.dense.weight".into(),
            Tensor::zeros((h, h), candle_core::DType::F32, &Device::Cpu).unwrap(),
        ));
        let _ = std::fs::remove_file(dir.join("pytorch_model.bin"));
        stpipe::runtime::weights::save_safetensors(&dir.join("model.safetensors"), &tensors)
            .unwrap();
        let enc = SentenceEncoder::load(&dir).unwrap();
        check_embeddings(name, &enc);
        let out = tmp.path().join(format!("{name}-saved"));
        enc.save(&out).unwrap();
        assert_eq!(weight_names(&out), names, "{name}");
    }
}

/// ModernBERT configs as the released models write them (before
/// transformers 5): `global_attn_every_n_layers` and the two rotary bases
/// instead of `layer_types` and `rope_parameters`.
#[test]
fn modernbert_reads_both_config_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    // (That the bases are read, and which layer is local, is unit-tested
    // in src/runtime/arch/modernbert.rs: this random model is too flat to
    // show a swapped base.)
    let write = |name: &str, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| -> PathBuf {
        let dir = tmp.path().join(name);
        bare_copy(&fixture("modernbert").join("model"), &dir);
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        edit(cfg.as_object_mut().unwrap());
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        dir
    };
    let old = |global: f64, local: f64| {
        move |c: &mut serde_json::Map<String, Value>| {
            c.remove("layer_types");
            c.remove("rope_parameters");
            c.insert("global_attn_every_n_layers".into(), 3.into());
            c.insert("global_rope_theta".into(), global.into());
            c.insert("local_rope_theta".into(), local.into());
        }
    };
    let legacy = write("legacy", &old(160_000.0, 10_000.0));
    check_embeddings("modernbert", &SentenceEncoder::load(&legacy).unwrap());
    // A layer list that does not fit the layers, and an unsupported
    // rotary scaling, are refused.
    let short = write("short", &|c| {
        c.insert("layer_types".into(), serde_json::json!(["full_attention"]));
    });
    let e = SentenceEncoder::load(&short).unwrap_err().to_string();
    assert!(e.contains("layer_types"), "{e}");
    let scaled = write("scaled", &|c| {
        c.insert(
            "rope_parameters".into(),
            serde_json::json!({"full_attention": {"rope_type": "yarn", "rope_theta": 1.0}}),
        );
    });
    let e = SentenceEncoder::load(&scaled).unwrap_err().to_string();
    assert!(e.contains("rope_type `yarn`"), "{e}");
}

/// One whole step of `stpipe run` against torch (scripts/make_step_fixtures.py):
/// the same 8 pairs in one batch, MultipleNegativesRankingLoss, clipping
/// to norm 1, AdamW (lr 1e-3, weight decay 0.01 except biases and norms,
/// as sentence-transformers' Trainer decides), dropout set to 0 in
/// config.json on both sides. The logged loss and the saved weights must
/// agree with torch's.
#[test]
fn one_stpipe_run_step_matches_torch() {
    let tmp = tempfile::tempdir().unwrap();
    for name in &archs() {
        let fx = fixture(name);
        let dir = tmp.path().join(name);
        copy_dir(&fx.join("model"), &dir.join("model"));
        let cfg_path = dir.join("model/config.json");
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        for (k, v) in cfg.as_object_mut().unwrap() {
            if k.contains("dropout") && v.is_number() {
                *v = 0.0.into();
            }
        }
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(fx.join("grads.json")).unwrap()).unwrap();
        let (anchors, positives) = common::fixture_pairs(&fx);
        let rows: String = anchors
            .iter()
            .zip(positives)
            .map(|(a, p)| format!("{a}\t{p}\n"))
            .collect();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/pairs.tsv"), rows).unwrap();
        let file = dir.join("step.stp");
        std::fs::write(
            &file,
            "model m = Transformer(\"model\") -> Pooling(mean)\n\
             data d = tsv(\"data/pairs.tsv\", header: false, quoting: none) { anchor: col(0), positive: col(1) }\n\
             objective o = MultipleNegativesRankingLoss(m, scale: 20.0) on d (batch_size: 8, shuffle: false)\n\
             train m { objectives: [o]\n max_steps: 1\n optimizer: AdamW(lr: 1e-3, weight_decay: 0.01)\n\
               scheduler: Constant\n max_grad_norm: 1.0 }\n\
             save m to \"out\"\n",
        )
        .unwrap();
        let o = common::stpipe_run(&file, &dir.join("run"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", common::output_text(&o));

        let want = tensors(&fx.join("step.safetensors"));
        let log = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
        let loss = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|l| l.get("loss")?.get("o")?.as_f64())
            .unwrap();
        let want_loss = want["loss"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!(
            (loss - want_loss).abs() <= 1e-5 * want_loss,
            "{name}: loss {loss} vs torch {want_loss}"
        );
        let before = tensors(&weights_file(&fx.join("model"), &dir));
        let after = tensors(&dir.join("out/model.safetensors"));
        let grads = tensors(&fx.join("grads.safetensors"));
        let mut worst = 0f64;
        for w in spec["weights"].as_array().unwrap() {
            let w = w.as_str().unwrap();
            let (mut got, mut old) = (after[w].clone(), before[w].clone());
            if let Some(r) = grads.get(&format!("rows.{w}")) {
                let idx = r.to_dtype(candle_core::DType::U32).unwrap();
                // A row no batch token uses only decays.
                let u = want[&format!("untouched_row.{w}")]
                    .to_vec1::<i64>()
                    .unwrap()[0] as usize;
                let e = rel_err(&got.get(u).unwrap(), &want[&format!("after_untouched.{w}")]);
                assert!(e < 1e-6, "{name}: untouched row of {w}: {e:.2e}");
                got = got.index_select(&idx, 0).unwrap();
                old = old.index_select(&idx, 0).unwrap();
            }
            // Compare the updates (after - before), not the weights, so
            // that the step itself is measured.
            let ours = (got - &old).unwrap();
            let theirs = (&want[&format!("after.{w}")] - &old).unwrap();
            let e = rel_err(&ours, &theirs);
            assert!(e < 2e-4, "{name}: update of {w}: relative error {e:.2e}");
            worst = worst.max(e);
        }
        println!("{name}: step loss {loss:.7} (torch {want_loss:.7}), worst update relative error {worst:.2e}");
    }
}

/// The weights file of a model directory (a pickle-only one is re-saved
/// as safetensors into `scratch`).
fn weights_file(dir: &Path, scratch: &Path) -> PathBuf {
    let st = dir.join("model.safetensors");
    if st.is_file() {
        return st;
    }
    // The pickle-only fixture: read through stpipe's loader and re-save.
    let w = stpipe::runtime::weights::WeightFile::load_from_dir(dir, &Device::Cpu).unwrap();
    let tensors: Vec<(String, Tensor)> = w
        .names()
        .map(|n| (n.to_string(), w.tensor(n).unwrap().clone()))
        .collect();
    let out = scratch.join("before.safetensors");
    stpipe::runtime::weights::save_safetensors(&out, &tensors).unwrap();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Weights split into shards with a `model.safetensors.index.json`, as
/// large Hub models ship them.
#[test]
fn sharded_weights_load_through_their_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sharded");
    copy_dir(&fixture("bert").join("model"), &dir);
    let w = stpipe::runtime::weights::WeightFile::load_from_dir(&dir, &Device::Cpu).unwrap();
    let names = weight_names(&dir);
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (part, shard) in [
        (a, "model-00001-of-00002.safetensors"),
        (b, "model-00002-of-00002.safetensors"),
    ] {
        let tensors: Vec<(String, Tensor)> = part
            .iter()
            .map(|n| (n.clone(), w.tensor(n).unwrap().clone()))
            .collect();
        stpipe::runtime::weights::save_safetensors(&dir.join(shard), &tensors).unwrap();
        for n in part {
            map.insert(n.clone(), shard.into());
        }
    }
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = dir.join("model.safetensors.index.json");
    let write_index = |map: &serde_json::Map<String, Value>| {
        std::fs::write(
            &index,
            serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
        )
        .unwrap()
    };
    write_index(&map);
    check_embeddings("bert", &SentenceEncoder::load(&dir).unwrap());
    // A tensor the index promises but its shard lacks, and a shard path
    // leaving the directory, are errors naming the index.
    let mut missing = map.clone();
    missing.insert(
        "encoder.layer.9.output.dense.weight".into(),
        "model-00001-of-00002.safetensors".into(),
    );
    write_index(&missing);
    let e = SentenceEncoder::load(&dir).unwrap_err().to_string();
    assert!(e.contains("encoder.layer.9.output.dense.weight"), "{e}");
    let mut outside = map.clone();
    outside.insert(a[0].clone(), "../elsewhere.safetensors".into());
    write_index(&outside);
    let e = SentenceEncoder::load(&dir).unwrap_err().to_string();
    assert!(e.contains("not a file of the model directory"), "{e}");
}
