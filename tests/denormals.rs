//! A training step produces no subnormal floats, even on threads that do
//! not flush them: every tensor of the forward graph and every gradient of
//! the backward pass of a padded batch is checked (padding is what used to
//! make them: the softmax probabilities of masked tokens came out as
//! `e^-87 / sum`, subnormal, and fed the attention matmuls of the backward).
//!
//! This binary never calls `fp_env::ensure`, so its threads run with the
//! CPU's default floating-point environment; the test asserts that first.

use crate::common;

use candle_core::{DType, Device, Tensor};
use stpipe::runtime::fp_env;
use stpipe::runtime::loss::{CosineSimilarityLoss, Loss, LossInputs};
use stpipe::runtime::modules::{Module, Pooling, PoolingMode, Transformer};
use stpipe::runtime::{Ctx, SentenceEncoder};

fn subnormals(t: &Tensor) -> usize {
    if !matches!(t.dtype(), DType::F32) {
        return 0;
    }
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v.iter().filter(|x| x.is_subnormal()).count()
}

#[test]
fn a_padded_training_step_makes_no_subnormals() {
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert!(
            !fp_env::enabled_on_this_thread(),
            "this test must run without flush-to-zero"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(tmp.path(), 11);
    let t = Transformer::load(tmp.path(), Some(48), &Device::Cpu).unwrap();
    let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Mean]);
    let modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling)];
    let enc = SentenceEncoder::new(modules).unwrap();

    // Lengths from 1 to ~20 tokens: most rows of the batch are padded.
    let a = [
        "cats",
        "the cat sat on the mat .",
        "a big dog runs fast and the small cat runs slow with a red house !",
        "tree",
    ];
    let b = [
        "the small blue tree was with a cat and a dog and a house ! the end",
        "dog",
        "red",
        "the mat is big",
    ];
    let ctx = Ctx::train(5);
    let ea = enc.embed(&a, &ctx).unwrap();
    let eb = enc.embed(&b, &ctx).unwrap();
    let scores = Tensor::new(&[0.1f32, 0.9, 0.4, 0.7], &Device::Cpu).unwrap();
    let loss = CosineSimilarityLoss
        .forward(&LossInputs::new(vec![ea, eb]).with_scores(scores))
        .unwrap();
    let grads = loss.backward().unwrap();

    let mut checked = 0;
    for node in loss.sorted_nodes() {
        assert_eq!(subnormals(node), 0, "forward tensor {:?}", node.dims());
        checked += 1;
    }
    let ids: Vec<_> = grads.get_ids().copied().collect();
    assert!(!ids.is_empty());
    for id in ids {
        let g = grads.get_id(id).unwrap();
        assert_eq!(subnormals(g), 0, "gradient of shape {:?}", g.dims());
        checked += 1;
    }
    assert!(checked > 100, "only {checked} tensors checked");
}
