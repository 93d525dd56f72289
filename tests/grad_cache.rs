//! GradCache: CachedMultipleNegativesRankingLoss gives the gradients (and
//! so the update) of MultipleNegativesRankingLoss on the same batch, for
//! any mini-batch size, and replays its dropout masks between its passes.

use crate::common;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use stpipe::registry::choices::Precision;
use stpipe::runtime::loss::{
    Cached, CachedMultipleNegativesRankingLoss, GISTEmbedLoss, Loss, LossInputs, MatryoshkaLoss,
    MegaBatchMarginLoss, MultipleNegativesRankingLoss,
};
use stpipe::runtime::modules::{Module, Pooling, PoolingMode, Transformer};
use stpipe::runtime::train::grad_cache::GradCache;
use stpipe::runtime::train::rng::Rng;
use stpipe::runtime::{Ctx, SentenceEncoder};

fn tiny_model(dir: &std::path::Path) -> SentenceEncoder {
    common::write_tiny_bert(dir, 11);
    let t = Transformer::load(dir, Some(32), &Device::Cpu).unwrap();
    let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Mean]);
    let modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling)];
    SentenceEncoder::new(modules).unwrap()
}

/// Three text columns of `n` rows (anchor, positive, negative).
fn batch(n: usize) -> Vec<Vec<String>> {
    let pairs = common::scored_pairs(n, 3);
    let negatives = common::scored_pairs(n, 8);
    let rows: Vec<(String, String, String)> = pairs
        .lines()
        .zip(negatives.lines())
        .map(|(p, q)| {
            let p: Vec<&str> = p.split('\t').collect();
            let q: Vec<&str> = q.split('\t').collect();
            (p[0].to_string(), p[1].to_string(), q[1].to_string())
        })
        .collect();
    vec![
        rows.iter().map(|r| r.0.clone()).collect(),
        rows.iter().map(|r| r.1.clone()).collect(),
        rows.iter().map(|r| r.2.clone()).collect(),
    ]
}

fn refs(cols: &[Vec<String>]) -> Vec<Vec<&str>> {
    cols.iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect()
}

/// Adds the gradient of every parameter in `store` to `acc`, by name.
fn add(model: &SentenceEncoder, acc: &mut HashMap<String, Vec<f32>>, store: &GradStore) {
    for nv in model.named_vars() {
        let Some(g) = store.get(nv.var.as_tensor()) else {
            continue;
        };
        let v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let slot = acc
            .entry(format!("{}.{}", nv.module, nv.name))
            .or_insert_with(|| vec![0.0; v.len()]);
        slot.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    }
}

/// The uncached gradients: each column embedded with `ctx_for(column,
/// chunk)` over `chunk`-row pieces (the whole batch when `chunk >= n`).
fn reference(
    model: &SentenceEncoder,
    loss: &dyn Loss,
    cols: &[Vec<&str>],
    chunk: usize,
    ctx_for: impl Fn(usize, usize) -> Ctx,
) -> (f32, HashMap<String, Vec<f32>>) {
    let embeddings: Vec<Tensor> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parts: Vec<Tensor> = c
                .chunks(chunk)
                .enumerate()
                .map(|(k, texts)| model.embed(texts, &ctx_for(i, k)).unwrap())
                .collect();
            Tensor::cat(&parts, 0).unwrap()
        })
        .collect();
    let value = loss
        .forward(&LossInputs {
            embeddings,
            ..base_inputs()
        })
        .unwrap();
    let mut acc = HashMap::new();
    add(model, &mut acc, &value.backward().unwrap());
    (value.to_scalar::<f32>().unwrap(), acc)
}

thread_local! {
    /// What the loss sees besides the embeddings (a guide's embeddings).
    static BASE: std::cell::RefCell<LossInputs> = std::cell::RefCell::new(LossInputs::default());
}

fn base_inputs() -> LossInputs {
    BASE.with(|b| b.borrow().clone())
}

fn cached(
    model: &SentenceEncoder,
    loss: &dyn Loss,
    cols: &[Vec<&str>],
    mini_batch: usize,
    dropout: bool,
) -> (f32, HashMap<String, Vec<f32>>) {
    cached_in(model, loss, cols, mini_batch, dropout, Precision::Fp32)
}

fn cached_in(
    model: &SentenceEncoder,
    loss: &dyn Loss,
    cols: &[Vec<&str>],
    mini_batch: usize,
    dropout: bool,
    precision: Precision,
) -> (f32, HashMap<String, Vec<f32>>) {
    let step = GradCache {
        model,
        loss,
        prompts: vec![None; cols.len()],
        mini_batch,
        seed: 99,
        dropout,
        precision,
    };
    let mut acc = HashMap::new();
    let value = step
        .run(cols, base_inputs(), &mut |g| {
            add(model, &mut acc, g);
            Ok(())
        })
        .unwrap();
    (value.to_scalar::<f32>().unwrap(), acc)
}

/// max |a - b| / max |b| over every parameter; the worst parameter. A
/// parameter whose exact gradient is zero (the attention key bias: softmax
/// ignores a shift shared by all keys) holds only rounding noise, so the
/// denominator is at least 1e-3 of the largest gradient of the model.
fn worst_relative_error(
    got: &HashMap<String, Vec<f32>>,
    want: &HashMap<String, Vec<f32>>,
) -> (f32, String) {
    assert_eq!(got.len(), want.len(), "parameters with a gradient");
    let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let global = want.values().map(|w| max_abs(w)).fold(0.0f32, f32::max);
    let mut worst = (0.0f32, String::new());
    for (name, w) in want {
        let g = &got[name];
        let scale = max_abs(w).max(1e-3 * global).max(1e-30);
        let diff = g
            .iter()
            .zip(w)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        if diff / scale > worst.0 {
            worst = (diff / scale, name.clone());
        }
    }
    worst
}

/// The cached loss and gradients `got` equal the uncached `want`: the
/// loss and every parameter within 1e-5 (relative); `what` names the case.
fn assert_same_step(
    what: &str,
    (got_loss, got): (f32, &HashMap<String, Vec<f32>>),
    (want_loss, want): (f32, &HashMap<String, Vec<f32>>),
) {
    assert!(
        (got_loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
        "{what}: loss {got_loss} vs {want_loss}"
    );
    let (err, name) = worst_relative_error(got, want);
    eprintln!("{what}: worst relative error {err:.1e} ({name})");
    assert!(err < 1e-5, "{what}: {name} off by {err:e}");
}

#[test]
fn cached_mnrl_gives_the_gradients_of_mnrl_for_any_mini_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(13);
    let cols = refs(&owned);
    let mnrl = MultipleNegativesRankingLoss::default();
    let (want_loss, want) = reference(&model, &mnrl, &cols, usize::MAX, |_, _| {
        Ctx::eval_with_grad()
    });
    assert!(want.len() > 10, "gradients reach the model: {}", want.len());
    for mini_batch in [1, 4, 5, 13, 64] {
        let loss = CachedMultipleNegativesRankingLoss::new(mnrl.clone(), mini_batch);
        let (got_loss, got) = cached(&model, &loss, &cols, mini_batch, false);
        assert_same_step(
            &format!("mini-batch {mini_batch}"),
            (got_loss, &got),
            (want_loss, &want),
        );
    }
}

/// CachedMNRL over 9 pairs in mini-batches of 4 with dropout, in
/// `precision`, against the uncached loss over embeddings made with the
/// masks GradCache draws for each (column, mini-batch): both gradients,
/// after checking they agree (loss and every parameter within 1e-5).
fn replayed(
    model: &SentenceEncoder,
    cols: &[Vec<&str>],
    precision: Precision,
) -> HashMap<String, Vec<f32>> {
    let loss = CachedMultipleNegativesRankingLoss::new(MultipleNegativesRankingLoss::default(), 4);
    let ctx = |i: usize, k: usize| {
        Ctx::train(Rng::derived(99, &format!("gradcache.col{i}.mb{k}")).next_u64())
            .with_precision(precision)
    };
    let (want_loss, want) = reference(model, &loss.inner, cols, 4, ctx);
    let (got_loss, got) = cached_in(model, &loss, cols, 4, true, precision);
    assert_same_step(&precision.to_string(), (got_loss, &got), (want_loss, &want));
    want
}

#[test]
fn dropout_masks_are_replayed_between_the_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(9);
    let cols = refs(&owned);
    let want = replayed(&model, &cols, Precision::Fp32);
    // And dropout did act: eval-mode gradients differ.
    let loss = CachedMultipleNegativesRankingLoss::new(MultipleNegativesRankingLoss::default(), 4);
    let (_, eval) = cached(&model, &loss, &cols, 4, false);
    assert!(worst_relative_error(&eval, &want).0 > 1e-3);
}

/// In bf16 both passes of GradCache round alike (the first pass's
/// embeddings are what the second recomputes), so it still gives the
/// gradients of the uncached loss in bf16, and they are not f32's.
#[test]
fn cached_mnrl_in_bf16_gives_the_gradients_of_mnrl_in_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(9);
    let cols = refs(&owned);
    let bf16 = replayed(&model, &cols, Precision::Bf16);
    let f32_grads = replayed(&model, &cols, Precision::Fp32);
    let (moved, _) = worst_relative_error(&f32_grads, &bf16);
    assert!(moved > 1e-3, "bf16 moved the gradients by {moved:e} only");
}

#[test]
fn matryoshka_over_a_cached_loss_stays_cached_and_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(10);
    let cols = refs(&owned);
    let width = model.dim();
    let dims = [width, width / 2, 3];
    let plain = MatryoshkaLoss::new(
        Box::new(MultipleNegativesRankingLoss::default()),
        &dims,
        None,
        -1,
    )
    .unwrap();
    let wrapped = MatryoshkaLoss::new(
        Box::new(CachedMultipleNegativesRankingLoss::new(
            MultipleNegativesRankingLoss::default(),
            3,
        )),
        &dims,
        None,
        -1,
    )
    .unwrap();
    assert_eq!(wrapped.mini_batch_size(), Some(3));
    let (want_loss, want) = reference(&model, &plain, &cols, usize::MAX, |_, _| {
        Ctx::eval_with_grad()
    });
    let (got_loss, got) = cached(&model, &wrapped, &cols, 3, false);
    assert_same_step("matryoshka", (got_loss, &got), (want_loss, &want));
}

#[test]
fn cached_gist_gives_the_gradients_of_gist() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(11);
    let cols = refs(&owned);
    // A guide's embeddings of each column: the tiny model of another seed.
    let guide_dir = tmp.path().join("guide");
    let guide = {
        common::write_tiny_bert(&guide_dir, 4);
        let t = Transformer::load(&guide_dir, Some(32), &Device::Cpu).unwrap();
        let pooling = Pooling::new(t.hidden_size(), &[PoolingMode::Mean]);
        let modules: Vec<Box<dyn Module>> = vec![Box::new(t), Box::new(pooling)];
        SentenceEncoder::new(modules).unwrap()
    };
    let embedded: Vec<Tensor> = cols
        .iter()
        .map(|c| guide.embed(c, &Ctx::eval()).unwrap().detach())
        .collect();
    BASE.with(|b| {
        *b.borrow_mut() = LossInputs {
            guide: Some(embedded),
            ..LossInputs::default()
        }
    });
    let gist = GISTEmbedLoss {
        temperature: 0.05,
        margin_strategy: stpipe::registry::choices::MarginStrategy::Absolute,
        margin: 0.05,
        contrast_anchors: true,
        contrast_positives: true,
    };
    let (want_loss, want) = reference(&model, &gist, &cols, usize::MAX, |_, _| {
        Ctx::eval_with_grad()
    });
    for mini_batch in [1, 4, 11] {
        let loss = Cached::with_name("CachedGISTEmbedLoss", gist.clone(), mini_batch);
        let (got_loss, got) = cached(&model, &loss, &cols, mini_batch, false);
        assert_same_step(
            &format!("mini-batch {mini_batch}"),
            (got_loss, &got),
            (want_loss, &want),
        );
    }
}

#[test]
fn mini_batched_mega_batch_margin_gives_the_full_batch_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let owned = batch(12);
    let cols = refs(&owned[..2]);
    let mega = MegaBatchMarginLoss {
        positive_margin: 0.9,
        negative_margin: -0.5,
    };
    let (want_loss, want) = reference(&model, &mega, &cols, usize::MAX, |_, _| {
        Ctx::eval_with_grad()
    });
    let loss = Cached::with_name("MegaBatchMarginLoss", mega, 5);
    let (got_loss, got) = cached(&model, &loss, &cols, 5, false);
    assert_same_step("mega-batch margin", (got_loss, &got), (want_loss, &want));
}
