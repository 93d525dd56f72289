//! The explicit training step of the BERT family gives the gradients of the
//! autograd path: the same batch (padded rows, dropout on, with the same
//! masks) through `Ctx::train` and through `Ctx::train_explicit`, every
//! parameter's gradient compared (relative error below 1e-4), for the
//! tiny random BERT made here, the committed RoBERTa-family fixtures and,
//! where it is present, the real all-MiniLM-L6-v2.

use crate::common;

use std::collections::HashMap;

use candle_core::{Device, Tensor, TensorId, Var};
use stpipe::registry::choices::Precision;
use stpipe::runtime::loss::{CosineSimilarityLoss, Loss, LossInputs};
use stpipe::runtime::modules::{Module, Pooling, PoolingMode, Transformer};
use stpipe::runtime::step::WeightPanels;
use stpipe::runtime::train::optim::{adamw::AdamWConfig, Optimizer};
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

/// The worst per-parameter relative error `|a - b| / |b|` (L2 norms)
/// between the autograd and the explicit step in f32 (each below 1e-4).
fn compare(enc: &SentenceEncoder, seed: u64) -> f64 {
    let (la, ga) = step(enc, &Ctx::train(seed));
    let (lb, gb) = step(enc, &Ctx::train_explicit(seed));
    assert!(
        (la - lb).abs() <= 1e-5 * la.abs().max(1.0),
        "loss {la} (autograd) vs {lb} (explicit)"
    );
    worst_error(enc, &ga, &gb, 1e-4)
}

/// The worst per-parameter relative error of gradients `gb` against `ga`
/// (L2 norms), every parameter's below `tol`.
fn worst_error(
    enc: &SentenceEncoder,
    ga: &HashMap<TensorId, Vec<f32>>,
    gb: &HashMap<TensorId, Vec<f32>>,
    tol: f64,
) -> f64 {
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
        let (diff, norm) = squares(a, b);
        let zero_in_theory = nv.name.contains("key.bias");
        let rel = if zero_in_theory {
            diff.sqrt() / total
        } else {
            diff.sqrt() / norm.sqrt().max(1e-12)
        };
        if rel.is_nan() || rel >= tol {
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

/// The gradients of one step in bf16 through the autograd path and the
/// explicit step, and through the explicit step in f32.
type Bf16Grads = [HashMap<TensorId, Vec<f32>>; 3];

fn bf16_steps(enc: &SentenceEncoder, seed: u64) -> Bf16Grads {
    let bf16 = |c: Ctx| c.with_precision(Precision::Bf16);
    let (la, ga) = step(enc, &bf16(Ctx::train(seed)));
    let (lb, gb) = step(enc, &bf16(Ctx::train_explicit(seed)));
    assert!(
        (la - lb).abs() <= 1e-2 * la.abs().max(1.0),
        "loss {la} (autograd) vs {lb} (explicit), bf16"
    );
    let (_, g32) = step(enc, &Ctx::train_explicit(seed));
    [ga, gb, g32]
}

/// `precision: bf16` means the same on both paths: the explicit step's
/// bf16 products (on AVX512-BF16, else f32 products over rounded operands)
/// give the gradients of the autograd path's rounding ops, as closely as
/// the f32 paths agree, where the two paths' f32 sums agree (the small
/// models here); and bf16 is not f32: the gradients move by about bf16's
/// precision.
#[test]
fn bf16_explicit_gradients_equal_bf16_autograd() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(tmp.path(), 11);
    let mut dirs = vec![tmp.path().to_path_buf()];
    for arch in ["roberta", "xlm-roberta"] {
        dirs.push(
            common::repo()
                .join("tests/fixtures/arch")
                .join(arch)
                .join("model"),
        );
    }
    for dir in dirs {
        let enc = model(&dir, &[PoolingMode::Mean]);
        let [ga, gb, g32] = bf16_steps(&enc, 5);
        let same = worst_error(&enc, &ga, &gb, 1e-4);
        let moved = worst_error(&enc, &g32, &gb, 0.1);
        eprintln!(
            "{}: bf16 explicit vs autograd {same:e}; bf16 vs f32 {moved:e}",
            dir.display()
        );
        assert!(
            moved > 1e-3 && moved > 100.0 * same,
            "bf16 should move the gradients ({moved:e}) well beyond the paths' difference ({same:e})"
        );
    }
}

/// Architectures without an explicit step train `precision: bf16` through
/// the autograd path's rounding ops: the gradients move from f32's (the
/// same path without them gives the same bits), by no more than bf16's
/// precision, and stay finite. (These fixtures' small random weights move
/// less than a trained model's: the RoBERTa fixture, which has the
/// explicit step, moves by 1.4e-4 too.)
#[test]
fn autograd_only_architectures_train_in_bf16() {
    for arch in ["distilbert", "mpnet", "modernbert"] {
        let dir = common::repo()
            .join("tests/fixtures/arch")
            .join(arch)
            .join("model");
        let enc = model(&dir, &[PoolingMode::Mean]);
        let (l32, g32) = step(&enc, &Ctx::train_explicit(2));
        let (l16, g16) = step(
            &enc,
            &Ctx::train_explicit(2).with_precision(Precision::Bf16),
        );
        let moved = distance(&g32, &g16);
        eprintln!("{arch}: loss {l32} (f32) vs {l16} (bf16); gradients {moved:e} apart");
        assert!(g16.values().flatten().all(|v| v.is_finite()));
        assert!(
            (l32 - l16).abs() <= 0.05 * l32.abs().max(1e-3),
            "{arch}: loss {l32} vs {l16}"
        );
        assert!(
            moved > 1e-5 && moved < 0.05,
            "{arch}: bf16 gradients {moved:e} from f32's"
        );
    }
}

/// `(sum (a - b)^2, sum a^2)`.
fn squares(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(d, n), (x, y)| {
        (d + ((x - y) as f64).powi(2), n + (*x as f64).powi(2))
    })
}

/// The relative distance of all gradients `gb` from `ga` (one L2 norm over
/// every parameter).
fn distance(ga: &HashMap<TensorId, Vec<f32>>, gb: &HashMap<TensorId, Vec<f32>>) -> f64 {
    let (diff, norm) = ga
        .iter()
        .map(|(id, a)| squares(a, &gb[id]))
        .fold((0.0, 0.0), |(d, n), (x, y)| (d + x, n + y));
    (diff / norm).sqrt()
}

/// On a real model the two paths' f32 sums differ in their last bits (the
/// packed and the padded products), and rounding to bf16 grows such a
/// difference layer by layer to bf16's own noise: a value near a rounding
/// boundary lands on either side. So on all-MiniLM-L6-v2 the paths agree
/// to well within the distance between bf16 and f32, not to f32's.
#[test]
fn minilm_bf16_gradients_agree_within_bf16_noise() {
    let Some(dir) = common::minilm_dir() else {
        eprintln!("skipped: the shared all-MiniLM-L6-v2 is absent");
        return;
    };
    let enc = model(&dir, &[PoolingMode::Mean]);
    let [ga, gb, g32] = bf16_steps(&enc, 5);
    let (same, moved) = (distance(&ga, &gb), distance(&g32, &gb));
    eprintln!("all-MiniLM-L6-v2: bf16 explicit vs autograd {same:e}; bf16 vs f32 {moved:e}");
    assert!(
        same < 0.7 * moved && moved < 0.05,
        "bf16 paths {same:e} apart, bf16 and f32 {moved:e}"
    );
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

/// The model's values after four AdamW steps on (A, B), the forwards
/// reading the linear weights from the optimizer's panels (`panels`) or as
/// stored; and how many weights had panels written.
fn train_four_steps(enc: &SentenceEncoder, panels: bool) -> (Vec<Vec<f32>>, usize) {
    let named = enc
        .named_vars()
        .into_iter()
        .map(|n| (format!("{}.{}", n.module, n.name), n.var))
        .collect();
    let rule = AdamWConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let mut opt = Optimizer::new(named, Box::new(rule)).unwrap();
    for k in 0..4 {
        let store = opt.weight_panels().filter(|_| panels);
        let ctx = Ctx::train_explicit(k).with_weight_panels(store);
        let cols = ctx.columns(2);
        let ea = enc.embed(A, &cols[0]).unwrap();
        let eb = enc.embed(B, &cols[1]).unwrap();
        let scores = Tensor::new(&[0.1f32, 0.9, 0.4, 0.7, 0.3], &Device::Cpu).unwrap();
        let loss = CosineSimilarityLoss
            .forward(&LossInputs::new(vec![ea, eb]).with_scores(scores))
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.accumulate_tapes(ctx.tapes().unwrap(), &grads, 1.0)
            .unwrap();
        opt.accumulate(&grads, 1.0).unwrap();
        opt.step(1e-2, 1.0).unwrap();
    }
    let values = enc
        .vars()
        .iter()
        .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let written = opt.weight_panels().map_or(0, |p| p.written());
    (values, written)
}

/// Trained with its forwards reading the weights from the panels the
/// optimizer writes as it updates them, a model takes the same steps to
/// the bit as one whose forwards read the weights as stored (and, in this
/// debug build, every panel handed out is checked against the weight
/// packed afresh). The tiny BERT's panels are narrower than 64 outputs;
/// MiniLM's are whole, where it is present.
#[test]
fn optimizer_written_panels_train_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = vec![tmp.path().to_path_buf()];
    common::write_tiny_bert(&dirs[0], 3);
    dirs.extend(common::minilm_dir());
    for dir in dirs {
        let plain = train_four_steps(&model(&dir, &[PoolingMode::Mean]), false);
        let (values, written) = train_four_steps(&model(&dir, &[PoolingMode::Mean]), true);
        assert!(
            values == plain.0,
            "{}: the panels changed a step",
            dir.display()
        );
        assert_eq!(plain.1, 0);
        if WeightPanels::new().is_some() {
            // Six linear weights a layer.
            assert!(written >= 6, "{}: {written} panels written", dir.display());
        } else {
            println!("the weight panels serve only gemm's AVX-512 kernels: not run here");
        }
    }
}
