//! AdaptiveLayerLoss and Matryoshka2dLoss through whole models: on the
//! tiny random models of `tests/fixtures/arch` (bert, distilbert, mpnet,
//! modernbert), the loss over every earlier layer's embeddings equals
//! sentence-transformers' on the same pairs (written by
//! scripts/make_adaptive_layer_fixture.py), which checks each
//! architecture's layer outputs as well as the loss.

use crate::common;

use stpipe::registry::choices::LayerWeighting;
use stpipe::runtime::loss::{
    AdaptiveLayerLoss, Loss, LossInputs, MatryoshkaLoss, MultipleNegativesRankingLoss,
};
use stpipe::runtime::{Ctx, SentenceEncoder};

fn mnrl() -> Box<dyn Loss> {
    Box::new(
        MultipleNegativesRankingLoss::new(20.0, stpipe::runtime::loss::Similarity::Cosine).unwrap(),
    )
}

#[test]
fn every_layer_loss_equals_sentence_transformers() {
    let root = common::repo().join("tests/fixtures/arch");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("adaptive_layer.json")).unwrap())
            .unwrap();
    for name in ["bert", "distilbert", "mpnet", "modernbert"] {
        let model = SentenceEncoder::load(&root.join(name).join("model")).unwrap();
        let (anchors, positives) = common::fixture_pairs(&root.join(name));
        let ctx = Ctx::eval_with_grad();
        let mut inputs = LossInputs::default();
        let mut layers: Vec<Vec<candle_core::Tensor>> = Vec::new();
        for col in [&anchors, &positives] {
            let refs: Vec<&str> = col.iter().map(String::as_str).collect();
            let (last, earlier) = model.embed_layers(&refs, None, &ctx).unwrap();
            inputs.embeddings.push(last);
            layers.resize_with(earlier.len(), Vec::new);
            for (l, e) in earlier.into_iter().enumerate() {
                layers[l].push(e);
            }
        }
        // The final layer's embeddings are the model's own.
        let refs: Vec<&str> = anchors.iter().map(String::as_str).collect();
        let plain = model.embed(&refs, &Ctx::eval()).unwrap();
        let diff = (plain - &inputs.embeddings[0])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6, "{name}");
        inputs.layers = Some(layers);
        let dim = model.dim();
        let cases: Vec<(&str, AdaptiveLayerLoss)> = vec![
            (
                "adaptive_defaults",
                AdaptiveLayerLoss::new(mnrl(), -1, 1.0, 1.0, 1.0, 0.3, LayerWeighting::Uniform),
            ),
            (
                "adaptive_log",
                AdaptiveLayerLoss::new(mnrl(), -1, 0.9, 0.7, 1.3, 0.5, LayerWeighting::Log),
            ),
            (
                "adaptive_no_kl_linear",
                AdaptiveLayerLoss::new(mnrl(), -1, 1.0, 1.0, 1.0, 0.0, LayerWeighting::Linear),
            ),
            (
                "matryoshka_2d",
                AdaptiveLayerLoss::new(
                    Box::new(MatryoshkaLoss::new(mnrl(), &[dim, dim / 2], None, -1).unwrap()),
                    -1,
                    1.0,
                    1.0,
                    1.0,
                    0.3,
                    LayerWeighting::Uniform,
                ),
            ),
        ];
        for (case, loss) in cases {
            let got = loss.forward(&inputs).unwrap().to_scalar::<f32>().unwrap() as f64;
            let reference = want[name][case].as_f64().unwrap();
            let rel = (got - reference).abs() / reference.abs();
            assert!(
                rel < 1e-6,
                "{name} {case}: {got} vs sentence-transformers {reference}"
            );
        }
    }
}

#[test]
fn a_model_cut_after_k_layers_embeds_as_the_loss_trained_it() {
    let root = common::repo().join("tests/fixtures/arch");
    let texts = ["a man is playing a guitar.", "two dogs run on the beach"];
    for name in ["bert", "modernbert"] {
        let model = SentenceEncoder::load(&root.join(name).join("model")).unwrap();
        let ctx = Ctx::eval();
        let (last, earlier) = model.embed_layers(&texts, None, &ctx).unwrap();
        let layers = earlier.len();
        assert!(layers >= 2, "{name}: {layers} layers");
        let same = |a: &candle_core::Tensor, b: &candle_core::Tensor| {
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            d.to_scalar::<f32>().unwrap() < 1e-6
        };
        for (k, state) in earlier.iter().enumerate().skip(1) {
            let cut = model.embed_after(&texts, None, k, &ctx).unwrap();
            assert!(same(&cut, state), "{name}: layer {k}");
            assert!(!same(&cut, &last), "{name}: layer {k} is not the final one");
        }
        assert!(same(
            &model.embed_after(&texts, None, layers, &ctx).unwrap(),
            &last
        ));
        assert!(model.embed_after(&texts, None, 0, &ctx).is_err());
        assert!(model.embed_after(&texts, None, layers + 1, &ctx).is_err());
        // The encode path (evaluators, `stpipe encode --layers`) agrees.
        let opts = stpipe::runtime::EncodeOptions {
            layers: Some(1),
            ..Default::default()
        };
        let encoded = model.encode(&texts, &opts).unwrap();
        assert!(same(&encoded, &earlier[1]), "{name}: encode with layers 1");
    }
}
