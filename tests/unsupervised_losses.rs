//! The losses that run models over the texts themselves: TSDAE
//! (DenoisingAutoEncoderLoss) against sentence-transformers' value and
//! gradients on committed fixtures, and against its own autograd path with
//! the explicit step; ContrastiveTension's copy of the model.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, TensorId, Var};
use stpipe::runtime::loss::{
    ContrastiveTensionLoss, ContrastiveTensionLossInBatchNegatives, DenoisingAutoEncoderLoss, Loss,
    LossInputs, Similarity, TextBatch,
};
use stpipe::runtime::modules::{Activation, Dense, Module, Pooling, PoolingMode, Transformer};
use stpipe::runtime::{Ctx, SentenceEncoder};

fn fixture(arch: &str) -> PathBuf {
    common::repo().join("tests/fixtures/tsdae").join(arch)
}

/// The model's and the loss's parameters, by the names of the fixture.
fn all_vars(model: &SentenceEncoder, loss: &dyn Loss) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = model
        .named_vars()
        .into_iter()
        .map(|v| (v.name, v.var))
        .collect();
    vars.extend(loss.trainable_vars());
    vars
}

/// The loss of `columns` under `ctx` and every parameter's gradient.
fn run(
    model: &SentenceEncoder,
    loss: &dyn Loss,
    columns: &[Vec<&str>],
    ctx: &Ctx,
    seed: u64,
) -> (f64, HashMap<TensorId, Vec<f32>>) {
    let batch = TextBatch {
        columns,
        prompts: vec![None; columns.len()],
        inputs: LossInputs {
            seed,
            ..LossInputs::default()
        },
    };
    let value = loss.forward_texts(model, batch, ctx).unwrap();
    let grads = value.backward().unwrap();
    let mut sink = common::GradCollect::default();
    sink.add(all_vars(model, loss).iter().map(|(_, v)| v), &grads);
    if let Some(t) = ctx.tapes() {
        t.backward(&grads, &mut sink).unwrap();
    }
    (value.to_scalar::<f32>().unwrap() as f64, sink.vars)
}

fn tsdae_matches_sentence_transformers(arch: &str) {
    let dir = fixture(arch);
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("loss.json")).unwrap()).unwrap();
    let pairs = want["pairs"].as_array().unwrap();
    let damaged: Vec<&str> = pairs.iter().map(|p| p[0].as_str().unwrap()).collect();
    let original: Vec<&str> = pairs.iter().map(|p| p[1].as_str().unwrap()).collect();
    let model = SentenceEncoder::load(&dir.join("model")).unwrap();
    // The decoder's own weights all come from the fixture's file.
    let loss = DenoisingAutoEncoderLoss::new(&model, 0.6, 0).unwrap();
    let ids = model.tokenize(&original).unwrap().input_ids.unwrap();
    let ids: Vec<Vec<u32>> = ids.to_vec2().unwrap();
    let want_ids: Vec<Vec<u32>> = serde_json::from_value(want["original_ids"].clone()).unwrap();
    assert_eq!(ids, want_ids, "{arch}: token ids");

    let (value, grads) = run(
        &model,
        &loss,
        &[damaged, original],
        &Ctx::eval_with_grad(),
        0,
    );
    let want_value = want["loss"].as_f64().unwrap();
    assert!(
        (value - want_value).abs() < 1e-5,
        "{arch}: loss {value} vs sentence-transformers {want_value}"
    );
    let reference =
        candle_core::safetensors::load(dir.join("grads.safetensors"), &Device::Cpu).unwrap();
    let total: f64 = reference
        .values()
        .map(|t| {
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        })
        .sum::<f64>()
        .sqrt();
    let vars = all_vars(&model, &loss);
    assert_eq!(vars.len(), reference.len(), "{arch}: parameters");
    let mut bad = Vec::new();
    let mut worst = 0f64;
    for (name, var) in &vars {
        let r = reference
            .get(name)
            .unwrap_or_else(|| panic!("{arch}: no reference gradient for {name}"));
        let r = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let g = grads
            .get(&var.as_tensor().id())
            .cloned()
            .unwrap_or_else(|| vec![0.0; r.len()]);
        let diff = g
            .iter()
            .zip(&r)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm = r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        // Relative to the parameter's own gradient, or to the whole one for
        // those that are zero in exact arithmetic (the cross-attention's
        // query and key, the self-attention's key bias).
        let rel = diff / norm.max(1e-3 * total);
        worst = worst.max(rel);
        if rel.is_nan() || rel >= 1e-4 {
            bad.push(format!("{name}: relative error {rel:e} (norm {norm:e})"));
        }
    }
    assert!(bad.is_empty(), "{arch}:\n{}", bad.join("\n"));
    eprintln!(
        "{arch}: loss {value} (sentence-transformers {want_value}), {} gradients compared, worst relative error {worst:.1e}",
        vars.len()
    );
}

#[test]
fn tsdae_bert_matches_sentence_transformers() {
    tsdae_matches_sentence_transformers("bert");
}

#[test]
fn tsdae_roberta_matches_sentence_transformers() {
    tsdae_matches_sentence_transformers("roberta");
}

fn tiny(dir: &Path, seed: u64) -> SentenceEncoder {
    common::write_tiny_bert(dir, seed);
    let t = Transformer::load(dir, Some(32), &Device::Cpu).unwrap();
    let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Cls]);
    let modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling)];
    SentenceEncoder::new(modules).unwrap()
}

const SENTENCES: &[&str] = &[
    "the cat sat on the mat .",
    "a big dog runs fast and the small cat runs slow with a red house !",
    "tree",
    "the dog was red",
    "the small blue tree was with a cat",
];

/// The largest relative error between two gradient sets, per variable.
fn worst(a: &HashMap<TensorId, Vec<f32>>, b: &HashMap<TensorId, Vec<f32>>) -> f64 {
    let total = a
        .values()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert_eq!(a.len(), b.len());
    a.iter()
        .map(|(id, x)| {
            let y = &b[id];
            let d = x
                .iter()
                .zip(y)
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            let n = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            d / n.max(1e-3 * total)
        })
        .fold(0.0, f64::max)
}

#[test]
fn tsdae_with_the_explicit_step_gives_the_autograd_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path(), 5);
    let loss = DenoisingAutoEncoderLoss::new(&model, 0.6, 9).unwrap();
    // One column: the loss damages it from the batch's seed, the same way
    // both times; dropout on, with the same masks on both paths.
    let cols = vec![SENTENCES.to_vec()];
    let (la, ga) = run(&model, &loss, &cols, &Ctx::train(3), 11);
    let explicit = Ctx::train_explicit(3);
    let (lb, gb) = run(&model, &loss, &cols, &explicit, 11);
    assert!((la - lb).abs() < 1e-5 * la.abs().max(1.0), "{la} vs {lb}");
    let w = worst(&ga, &gb);
    assert!(w < 1e-4, "worst relative error {w:e}");
    // The shared weights get gradient from both the encoder and the decoder.
    let word = model.transformer().encoder.token_embeddings().unwrap();
    assert!(gb[&word.as_tensor().id()].iter().any(|g| *g != 0.0));
}

#[test]
fn tsdae_refuses_models_it_cannot_decode_for() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = tiny(tmp.path(), 5);
    model.push(Box::new(
        Dense::new(32, 8, true, Activation::Tanh, 1, &Device::Cpu).unwrap(),
    ));
    let e = DenoisingAutoEncoderLoss::new(&model, 0.6, 0).unwrap_err();
    assert!(e.to_string().contains("as wide as the Transformer"), "{e}");
    let distil = common::repo().join("tests/fixtures/arch/distilbert/model");
    let model = SentenceEncoder::load(&distil).unwrap();
    let e = DenoisingAutoEncoderLoss::new(&model, 0.6, 0).unwrap_err();
    assert!(e.to_string().contains("has no decoder"), "{e}");
}

#[test]
fn contrastive_tension_trains_an_independent_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path(), 8);
    let loss = ContrastiveTensionLoss::new(&model, 4).unwrap();
    // The copy starts equal to the model but shares no storage with it.
    let copy = loss.copy();
    for (a, b) in model.named_vars().iter().zip(copy.named_vars()) {
        assert_eq!(a.name, b.name);
        assert_ne!(a.var.as_tensor().id(), b.var.as_tensor().id());
        let (x, y) = (a.var.flatten_all().unwrap(), b.var.flatten_all().unwrap());
        assert_eq!(
            x.to_vec1::<f32>().unwrap(),
            y.to_vec1::<f32>().unwrap(),
            "{}",
            a.name
        );
    }
    let cols = vec![SENTENCES.to_vec()];
    let (value, grads) = run(&model, &loss, &cols, &Ctx::train_explicit(1), 2);
    assert!(value.is_finite() && value > 0.0);
    let has = |v: &Var| {
        grads
            .get(&v.as_tensor().id())
            .is_some_and(|g| g.iter().any(|x| *x != 0.0))
    };
    assert!(
        model.named_vars().iter().any(|v| has(&v.var)),
        "the model trains"
    );
    assert!(
        copy.named_vars().iter().any(|v| has(&v.var)),
        "the copy trains"
    );
    // The value from the embeddings, with labels from token identity: rows
    // 0 and 4 of 5 are positive pairs (pos_neg_ratio 4).
    let ctx = Ctx::eval();
    let a = copy.embed(SENTENCES, &ctx).unwrap();
    let b = model.embed(SENTENCES, &ctx).unwrap();
    let labels = Tensor::new(&[1f32, 1.0, 1.0, 1.0, 1.0], &Device::Cpu).unwrap();
    let all_positive = loss
        .forward(&LossInputs::new(vec![a, b]).with_scores(labels))
        .unwrap();
    assert!(all_positive.to_scalar::<f32>().unwrap().is_finite());
}

#[test]
fn contrastive_tension_with_the_explicit_step_gives_the_autograd_gradients() {
    // Two encoders (the model and its copy) record their tapes in one
    // context: each must get its own gradients.
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path(), 6);
    let cols = vec![SENTENCES.to_vec()];
    let losses: Vec<Box<dyn Loss>> = vec![
        Box::new(
            ContrastiveTensionLossInBatchNegatives::new(&model, 20.0, Similarity::Cosine).unwrap(),
        ),
        Box::new(ContrastiveTensionLoss::new(&model, 2).unwrap()),
    ];
    for loss in &losses {
        let (la, ga) = run(&model, loss.as_ref(), &cols, &Ctx::train(4), 5);
        let (lb, gb) = run(&model, loss.as_ref(), &cols, &Ctx::train_explicit(4), 5);
        assert!(
            (la - lb).abs() < 1e-5 * la.abs().max(1.0),
            "{}: {la} vs {lb}",
            loss.name()
        );
        let w = worst(&ga, &gb);
        assert!(w < 1e-4, "{}: worst relative error {w:e}", loss.name());
    }
}

#[test]
fn contrastive_tension_in_batch_trains_its_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path(), 8);
    let loss =
        ContrastiveTensionLossInBatchNegatives::new(&model, 20.0, Similarity::Cosine).unwrap();
    assert!((loss.scale().unwrap() - 20.0).abs() < 1e-4);
    let cols = vec![SENTENCES.to_vec()];
    let (value, grads) = run(&model, &loss, &cols, &Ctx::train_explicit(1), 2);
    assert!(value.is_finite());
    let vars = loss.trainable_vars();
    assert_eq!(vars[0].0, "logit_scale");
    let g = &grads[&vars[0].1.as_tensor().id()];
    assert!(g[0] != 0.0 && g[0].is_finite());
    assert!(vars.iter().any(|(n, _)| n.starts_with("model1.0.")));
}

/// A stage of the three losses, each with what it trains besides the
/// model (a copy, a scale, a decoder), checkpointed every 2 steps.
const RESUME_PIPELINE: &str = "model m = Transformer(\"tiny\") -> Pooling(cls)\n\
    data s = tsv(\"data/s.tsv\", header: false, quoting: none) { text: col(0) }\n\
    objective ct = ContrastiveTensionLossInBatchNegatives(m) on s (batch_size: 8)\n\
    objective ts = DenoisingAutoEncoderLoss(m) on s (batch_size: 8)\n\
    objective cp = ContrastiveTensionLoss(m, pos_neg_ratio: 2) on s (batch_size: 8)\n\
    train m {\n objectives: [ct, ts, cp]\n max_steps: 6\n optimizer: AdamW(lr: 1e-3)\n\
    checkpoint: every 2 steps, keep 1\n seed: 3\n}\n\
    save m to \"out\"\n";

fn resume_run(dir: &Path, out: &str, failpoint: Option<u64>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.arg("run")
        .arg(dir.join("p.stp"))
        .arg("--run-dir")
        .arg(dir.join(out))
        .arg("--quiet")
        .env_remove("STPIPE_FAILPOINT");
    if let Some(n) = failpoint {
        c.env("STPIPE_FAILPOINT", n.to_string());
    }
    c.output().unwrap()
}

#[test]
fn runs_with_copies_scales_and_decoders_resume_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_tiny_bert(&dir.join("tiny"), 4);
    let rows: String = (0..24)
        .map(|i| {
            format!(
                "{}\n",
                SENTENCES[i % SENTENCES.len()].replace("the", ["the", "a", "one"][i % 3])
            )
        })
        .collect();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/s.tsv"), rows).unwrap();
    std::fs::write(dir.join("p.stp"), RESUME_PIPELINE).unwrap();
    let o = resume_run(dir, "run-a", None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read(dir.join("out/model.safetensors")).unwrap();
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    // Crash at every third file-system change of a fresh run, then resume.
    let mut crashes = 0;
    for n in (1..).step_by(3) {
        let run = format!("run-{n}");
        let o = resume_run(dir, &run, Some(n));
        if o.status.success() {
            break;
        }
        crashes += 1;
        let o = resume_run(dir, &run, None);
        assert!(
            o.status.success(),
            "after a crash at change {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = std::fs::read(dir.join("out/model.safetensors")).unwrap();
        assert!(
            got == want,
            "a run crashed at change {n} and resumed saved other weights"
        );
        std::fs::remove_dir_all(dir.join("out")).unwrap();
    }
    eprintln!("{crashes} crashes, each resumed to the same bytes");
    assert!(crashes >= 3, "only {crashes} crashes");
}

#[test]
fn tsdae_names_the_file_whose_decoder_weight_has_the_wrong_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let src = fixture("bert").join("model");
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(
        src.join("1_Pooling/config.json"),
        dir.join("1_Pooling/config.json"),
    )
    .unwrap();
    let file = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let bad = Tensor::zeros((3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    tensors.insert("cls.predictions.transform.dense.weight".into(), bad);
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let model = SentenceEncoder::load(&dir).unwrap();
    let e = DenoisingAutoEncoderLoss::new(&model, 0.6, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(e.contains("cls.predictions.transform.dense.weight"), "{e}");
}
