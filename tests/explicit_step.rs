//! The explicit training step of the BERT family gives the gradients of the
//! autograd path: the same batch (padded rows, dropout on, with the same
//! masks) through `Ctx::train` and through `Ctx::train_explicit`, every
//! parameter's gradient compared (relative error below 1e-4), for the
//! tiny random BERT made here, the committed RoBERTa-family fixtures and,
//! where it is present, the real all-MiniLM-L6-v2.

use crate::common;

use std::collections::HashMap;

use candle_core::{Device, Tensor, TensorId, Var};
use stpipe::runtime::loss::{CosineSimilarityLoss, Loss, LossInputs};
use stpipe::runtime::modules::{Module, Pooling, PoolingMode, Transformer};
use stpipe::runtime::{Ctx, SentenceEncoder};

fn model(dir: &std::path::Path, modes: &[PoolingMode]) -> SentenceEncoder {
    let t = Transformer::load(dir, Some(64), &Device::Cpu).unwrap();
    let pooling = Pooling::new(t.hidden_size(), modes);
    let modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling)];
    SentenceEncoder::new(modules).unwrap()
}

const A: &[&str] = &[
    "cats",
    "the cat sat on the mat .",
    "a big dog runs fast and the small cat runs slow with a red house !",
    "tree",
    "the dog was red",
];
const B: &[&str] = &[
    "the small blue tree was with a cat and a dog and a house ! the end",
    "dog",
    "red",
    "the mat is big",
    "a cat",
];

/// Loss value and every parameter's gradient (by variable) of one step
/// of CosineSimilarityLoss on (A, B) under `ctx`.
fn step(enc: &SentenceEncoder, ctx: &Ctx) -> (f32, HashMap<TensorId, Vec<f32>>) {
    let ea = enc.embed(A, ctx).unwrap();
    let eb = enc.embed(B, ctx).unwrap();
    let scores = Tensor::new(&[0.1f32, 0.9, 0.4, 0.7, 0.3], &Device::Cpu).unwrap();
    let loss = CosineSimilarityLoss
        .forward(&LossInputs::new(vec![ea, eb]).with_scores(scores))
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut sink = common::GradCollect::default();
    let vars: Vec<Var> = enc.vars();
    sink.add(&vars, &grads);
    if let Some(t) = ctx.tapes() {
        t.backward(&grads, &mut sink).unwrap();
    }
    (loss.to_scalar::<f32>().unwrap(), sink.vars)
}

/// The worst per-parameter relative error `|a - b| / |b|` (L2 norms).
fn compare(enc: &SentenceEncoder, seed: u64) -> f64 {
    let (la, ga) = step(enc, &Ctx::train(seed));
    let explicit = Ctx::train_explicit(seed);
    let (lb, gb) = step(enc, &explicit);
    assert!(
        (la - lb).abs() <= 1e-5 * la.abs().max(1.0),
        "loss {la} (autograd) vs {lb} (explicit)"
    );
    // The key bias has no gradient in exact arithmetic (it adds the same
    // `q . b` to every score of a softmax row): both paths give rounding
    // noise there, compared against the size of the whole gradient.
    let total = ga
        .values()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut worst = 0f64;
    let mut bad = Vec::new();
    for nv in enc.named_vars() {
        let id = nv.var.as_tensor().id();
        let a = ga
            .get(&id)
            .unwrap_or_else(|| panic!("autograd: no gradient for {}", nv.name));
        let b = gb
            .get(&id)
            .unwrap_or_else(|| panic!("explicit: no gradient for {}", nv.name));
        let (mut diff, mut norm) = (0f64, 0f64);
        for (x, y) in a.iter().zip(b) {
            diff += ((x - y) as f64).powi(2);
            norm += (*x as f64).powi(2);
        }
        let zero_in_theory = nv.name.contains("key.bias");
        let rel = if zero_in_theory {
            diff.sqrt() / total
        } else {
            diff.sqrt() / norm.sqrt().max(1e-12)
        };
        if rel.is_nan() || rel >= 1e-4 {
            bad.push(format!(
                "{}: relative error {rel:e} (norm {:e})",
                nv.name,
                norm.sqrt()
            ));
        }
        assert!(b.iter().all(|v| v.is_finite() && !v.is_subnormal()));
        worst = worst.max(rel);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    worst
}

#[test]
fn tiny_bert_gradients_equal_autograd_with_dropout_and_padding() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(tmp.path(), 11);
    for modes in [
        &[PoolingMode::Mean][..],
        &[PoolingMode::Cls, PoolingMode::Max, PoolingMode::Mean][..],
    ] {
        let enc = model(tmp.path(), modes);
        for seed in [1, 7] {
            let worst = compare(&enc, seed);
            eprintln!("tiny bert {modes:?} seed {seed}: worst relative error {worst:e}");
        }
    }
}

#[test]
fn roberta_family_fixtures_gradients_equal_autograd() {
    for arch in ["bert", "roberta", "xlm-roberta", "camembert"] {
        let dir = common::repo()
            .join("tests/fixtures/arch")
            .join(arch)
            .join("model");
        let enc = model(&dir, &[PoolingMode::Mean]);
        let worst = compare(&enc, 3);
        eprintln!("{arch}: worst relative error {worst:e}");
    }
}

#[test]
fn minilm_gradients_equal_autograd() {
    let Some(dir) = common::minilm_dir() else {
        eprintln!("skipped: the shared all-MiniLM-L6-v2 is absent");
        return;
    };
    let enc = model(&dir, &[PoolingMode::Mean]);
    let worst = compare(&enc, 5);
    eprintln!("all-MiniLM-L6-v2: worst relative error {worst:e}");
}

#[test]
fn no_tape_is_recorded_outside_an_explicit_context() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(tmp.path(), 11);
    let enc = model(tmp.path(), &[PoolingMode::Mean]);
    for ctx in [Ctx::train(1), Ctx::eval(), Ctx::eval_with_grad()] {
        assert!(ctx.tapes().is_none());
        enc.embed(A, &ctx).unwrap();
    }
}
