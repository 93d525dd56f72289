//! Training mode is real: dropout acts only in train mode, and gradients
//! reach every parameter of Transformer -> Pooling -> Dense.

use crate::common;

use candle_core::{Device, Tensor};
use stpipe::runtime::modules::{
    Activation, Dense, Module, Normalize, Pooling, PoolingMode, Transformer,
};
use stpipe::runtime::{Ctx, EncodeOptions, SentenceEncoder};

fn tiny_chain(dir: &std::path::Path, modes: &[PoolingMode], normalize: bool) -> SentenceEncoder {
    common::write_tiny_bert(dir, 7);
    let t = Transformer::load(dir, Some(32), &Device::Cpu).unwrap();
    let pooling = Pooling::new(t.hidden_size(), modes);
    let pd = pooling.out_dim().unwrap();
    let dense = Dense::new(pd, 16, true, Activation::Tanh, 3, &Device::Cpu).unwrap();
    let mut modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling), Box::new(dense)];
    if normalize {
        modules.push(Box::new(Normalize::new()));
    }
    SentenceEncoder::new(modules).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn dropout_acts_in_train_mode_only() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = tiny_chain(tmp.path(), &[PoolingMode::Mean], false);
    let eval = Ctx::eval();
    let a = enc.embed(common::SENTENCES, &eval).unwrap();
    let b = enc.embed(common::SENTENCES, &eval).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0, "eval forwards must be identical");

    let train = Ctx::train(42);
    let c = enc.embed(common::SENTENCES, &train).unwrap();
    let d = enc.embed(common::SENTENCES, &train).unwrap();
    assert!(
        max_abs_diff(&c, &d) > 1e-4,
        "train forwards must differ (dropout)"
    );
    assert!(max_abs_diff(&a, &c) > 1e-4, "train differs from eval");

    // Same seed, same masks: training is reproducible.
    let e = enc.embed(common::SENTENCES, &Ctx::train(42)).unwrap();
    assert_eq!(max_abs_diff(&c, &e), 0.0);

    // Eval with gradients (composed kernels) matches eval with fused kernels.
    let g = enc
        .embed(common::SENTENCES, &Ctx::eval_with_grad())
        .unwrap();
    assert!(
        max_abs_diff(&a, &g) < 1e-5,
        "fused and composed kernels agree"
    );
}

#[test]
fn gradients_reach_every_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let all = [
        PoolingMode::Cls,
        PoolingMode::Max,
        PoolingMode::Mean,
        PoolingMode::MeanSqrtLenTokens,
        PoolingMode::WeightedMean,
        PoolingMode::LastToken,
    ];
    let enc = tiny_chain(tmp.path(), &all, true);
    let emb = enc.embed(common::SENTENCES, &Ctx::train(1)).unwrap();
    let (n, d) = emb.dims2().unwrap();
    let proj = Tensor::arange(0u32, (n * d) as u32, &Device::Cpu)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .reshape((n, d))
        .unwrap()
        .sin()
        .unwrap();
    let loss = (emb * proj).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = enc.named_vars();
    // 5 embedding tensors + 16 per layer * 2 layers + Dense weight and bias.
    assert_eq!(vars.len(), 5 + 16 * 2 + 2);
    for v in &vars {
        let g = grads
            .get(v.var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {} ({})", v.name, v.module_type));
        assert_eq!(g.dims(), v.var.dims());
        let mag = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            mag > 0.0 && mag.is_finite(),
            "zero gradient for {} ({})",
            v.name,
            v.module_type
        );
    }
    assert!(vars
        .iter()
        .any(|v| v.name == "encoder.layer.1.output.LayerNorm.weight"));
    assert!(vars
        .iter()
        .any(|v| v.name == "linear.weight" && v.module == 2));
}

#[test]
fn an_sgd_step_changes_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = tiny_chain(tmp.path(), &[PoolingMode::Mean], false);
    let before = enc
        .encode(common::SENTENCES, &EncodeOptions::default())
        .unwrap();
    let emb = enc
        .embed(common::SENTENCES, &Ctx::eval_with_grad())
        .unwrap();
    let loss = emb.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for v in enc.vars() {
        let g = grads.get(v.as_tensor()).unwrap();
        v.set(&(v.as_tensor() - (g * 1e-3).unwrap()).unwrap())
            .unwrap();
    }
    let after = enc
        .encode(common::SENTENCES, &EncodeOptions::default())
        .unwrap();
    assert!(max_abs_diff(&before, &after) > 1e-5);
    let norm_before = before
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let norm_after = after
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        norm_after < norm_before,
        "descending the loss lowers it: {norm_before} -> {norm_after}"
    );
}

/// `encode` runs batches side by side (two at a time where rayon has the
/// threads); every text's embedding is still the one its batch gives when
/// embedded alone, in the input's order.
#[test]
fn batches_encoded_side_by_side_equal_each_batch_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = tiny_chain(tmp.path(), &[PoolingMode::Mean], false);
    let texts: Vec<String> = (0..23)
        .map(|i| {
            let s = common::SENTENCES[i % common::SENTENCES.len()];
            format!("{s} {}", "word ".repeat(i % 7))
        })
        .collect();
    let opts = EncodeOptions {
        batch_size: 3,
        ..EncodeOptions::default()
    };
    let all = enc.encode(&texts, &opts).unwrap().to_vec2::<f32>().unwrap();
    // encode's batches: the texts by length, longest first, 3 at a time.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(texts[i].chars().count()));
    for chunk in order.chunks(3) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let alone = enc
            .embed(&batch, &Ctx::eval_cached())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (&i, row) in chunk.iter().zip(alone) {
            assert_eq!(all[i], row, "text {i}");
        }
    }
}
