//! The sentence-transformers directory format, both ways.

use crate::common;

use std::path::Path;

use candle_core::{Device, Tensor};
use stpipe::runtime::modules::{
    Activation, Dense, Features, LayerNorm, Module, Normalize, Pooling, PoolingMode, Transformer,
};
use stpipe::runtime::{Ctx, EncodeOptions, SentenceEncoder};

fn chain(dir: &Path) -> SentenceEncoder {
    common::write_tiny_bert(dir, 11);
    let t = Transformer::load(dir, Some(24), &Device::Cpu).unwrap();
    let pooling = Pooling::new(
        t.hidden_size(),
        &[PoolingMode::Cls, PoolingMode::Max, PoolingMode::Mean],
    );
    let dense = Dense::new(96, 8, true, Activation::Tanh, 5, &Device::Cpu).unwrap();
    SentenceEncoder::new(vec![
        Box::new(t),
        Box::new(pooling),
        Box::new(dense),
        Box::new(Normalize::new()),
    ])
    .unwrap()
}

fn read(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn save_writes_the_legacy_layout_and_reloads_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = chain(&tmp.path().join("src"));
    let out = tmp.path().join("saved");
    enc.save(&out).unwrap();

    let modules = read(&out.join("modules.json"));
    let types: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Dense",
            "sentence_transformers.models.Normalize"
        ]
    );
    let paths: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["", "1_Pooling", "2_Dense", "3_Normalize"]);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "2_Dense/model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(out.join("3_Normalize").is_dir());
    let pool = read(&out.join("1_Pooling/config.json"));
    assert_eq!(pool["word_embedding_dimension"], 32);
    assert_eq!(pool["pooling_mode_cls_token"], true);
    assert_eq!(pool["pooling_mode_max_tokens"], true);
    assert_eq!(pool["pooling_mode_mean_tokens"], true);
    assert_eq!(pool["pooling_mode_lasttoken"], false);
    let dense = read(&out.join("2_Dense/config.json"));
    assert_eq!(dense["in_features"], 96);
    assert_eq!(dense["out_features"], 8);
    assert_eq!(dense["bias"], true);
    assert_eq!(
        dense["activation_function"],
        "torch.nn.modules.activation.Tanh"
    );
    let st = candle_core::safetensors::load(out.join("2_Dense/model.safetensors"), &Device::Cpu)
        .unwrap();
    assert_eq!(st["linear.weight"].dims(), [8, 96]);
    assert_eq!(st["linear.bias"].dims(), [8]);
    assert_eq!(
        read(&out.join("sentence_bert_config.json"))["max_seq_length"],
        24
    );

    let again = SentenceEncoder::load(&out).unwrap();
    let a = enc
        .encode(common::SENTENCES, &EncodeOptions::default())
        .unwrap();
    let b = again
        .encode(common::SENTENCES, &EncodeOptions::default())
        .unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());

    // Saving over an existing model replaces it and leaves no temp dirs.
    again.save(&out).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("stpipe-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(SentenceEncoder::load(&out).is_ok());
}

#[test]
fn encode_returns_input_order_and_batches_do_not_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = chain(tmp.path());
    let one_by_one: Vec<Vec<f32>> = common::SENTENCES
        .iter()
        .map(|s| {
            enc.encode(&[*s], &EncodeOptions::default())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
                .remove(0)
        })
        .collect();
    let opts = EncodeOptions {
        batch_size: 2,
        ..Default::default()
    };
    let batched = enc
        .encode(common::SENTENCES, &opts)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (a, b) in one_by_one.iter().zip(&batched) {
        let (cos, diff) = common::compare(a, b);
        assert!(
            cos > 0.999999 && diff < 1e-5,
            "padding changed an embedding: {cos} {diff}"
        );
    }
}

#[test]
fn plain_hf_dir_is_transformer_plus_mean() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(tmp.path(), 3);
    let enc = SentenceEncoder::load(tmp.path()).unwrap();
    let types: Vec<&str> = enc.modules().iter().map(|m| m.type_name()).collect();
    assert_eq!(types, ["Transformer", "Pooling"]);
    assert_eq!(enc.dim(), 32);
}

#[test]
fn newer_layout_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    common::write_tiny_bert(d, 3);
    std::fs::write(
        d.join("tokenizer_config.json"),
        r#"{"model_max_length": 20, "tokenizer_class": "BertTokenizer"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(d.join("1_Pooling")).unwrap();
    std::fs::write(
        d.join("1_Pooling/config.json"),
        r#"{"embedding_dimension": 32, "pooling_mode": ["mean", "cls"], "include_prompt": true}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.base.modules.transformer.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.base.modules.pooling.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.base.modules.normalize.Normalize"}]"#,
    )
    .unwrap();
    let enc = SentenceEncoder::load(d).unwrap();
    assert_eq!(enc.transformer().max_seq_length, 20);
    let pooling = enc.modules()[1].as_any().downcast_ref::<Pooling>().unwrap();
    // Listed order, as sentence-transformers 6 concatenates.
    assert_eq!(pooling.modes(), [PoolingMode::Mean, PoolingMode::Cls]);
    assert_eq!(enc.dim(), 64);
    let e = enc.encode(&["the cat"], &EncodeOptions::default()).unwrap();
    let norm = e
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn layer_norm_and_dropout_modules_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut enc = chain(&tmp.path().join("src"));
    enc.push(Box::new(LayerNorm::new(8, &Device::Cpu).unwrap()));
    enc.push(Box::new(stpipe::runtime::modules::Dropout::new(0.3)));
    let out = tmp.path().join("m");
    enc.save(&out).unwrap();
    let again = SentenceEncoder::load(&out).unwrap();
    let types: Vec<&str> = again.modules().iter().map(|m| m.type_name()).collect();
    assert_eq!(
        types,
        [
            "Transformer",
            "Pooling",
            "Dense",
            "Normalize",
            "LayerNorm",
            "Dropout"
        ]
    );
    assert_eq!(again.named_vars().len(), enc.named_vars().len());
}

/// Pooling on hand-made token embeddings: every mode, padding ignored.
#[test]
fn pooling_modes_respect_the_mask() {
    let dev = Device::Cpu;
    // batch 2, seq 3, dim 2; the second sentence has one padding token.
    let te = Tensor::new(
        &[
            [[1f32, -1.], [3., 5.], [2., 0.]],
            [[4f32, 2.], [-2., 6.], [100., 100.]],
        ],
        &dev,
    )
    .unwrap();
    let mask = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &dev).unwrap();
    let run = |modes: &[PoolingMode]| -> Vec<Vec<f32>> {
        let f = Features {
            token_embeddings: Some(te.clone()),
            attention_mask: Some(mask.clone()),
            ..Default::default()
        };
        let out = Pooling::new(2, modes).forward(f, &Ctx::eval()).unwrap();
        out.sentence_embedding.unwrap().to_vec2::<f32>().unwrap()
    };
    assert_eq!(run(&[PoolingMode::Cls]), [[1., -1.], [4., 2.]]);
    assert_eq!(run(&[PoolingMode::Max]), [[3., 5.], [4., 6.]]);
    assert_eq!(run(&[PoolingMode::Mean]), [[2., 4. / 3.], [1., 4.]]);
    let s = run(&[PoolingMode::MeanSqrtLenTokens]);
    assert!((s[0][0] - 6. / 3f32.sqrt()).abs() < 1e-5 && (s[1][1] - 8. / 2f32.sqrt()).abs() < 1e-5);
    // weights 1, 2, 3 (masked).
    let w = run(&[PoolingMode::WeightedMean]);
    assert!((w[0][0] - (1. + 6. + 6.) / 6.).abs() < 1e-5);
    assert!((w[1][1] - (2. + 12.) / 3.).abs() < 1e-5);
    assert_eq!(run(&[PoolingMode::LastToken]), [[2., 0.], [-2., 6.]]);
    // Concatenation follows the listed order (sentence-transformers 6).
    let cat = run(&[PoolingMode::Mean, PoolingMode::Cls, PoolingMode::Max]);
    assert_eq!(cat[1], [1., 4., 4., 2., 4., 6.]);
}

#[test]
fn listed_pooling_order_saves_in_the_listed_layout() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(&tmp.path().join("src"), 4);
    let t = Transformer::load(&tmp.path().join("src"), None, &Device::Cpu).unwrap();
    let h = t.hidden_size();
    // Not the fixed legacy order: only the listed layout can say it.
    let modes = [PoolingMode::Mean, PoolingMode::Cls];
    let enc = SentenceEncoder::new(vec![Box::new(t), Box::new(Pooling::new(h, &modes))]).unwrap();
    let out = tmp.path().join("saved");
    enc.save(&out).unwrap();
    let pool = read(&out.join("1_Pooling/config.json"));
    assert_eq!(pool["embedding_dimension"], h);
    assert_eq!(pool["pooling_mode"], serde_json::json!(["mean", "cls"]));
    assert_eq!(pool["include_prompt"], true);
    let again = SentenceEncoder::load(&out).unwrap();
    let p = again.modules()[1]
        .as_any()
        .downcast_ref::<Pooling>()
        .unwrap();
    assert_eq!(p.modes(), modes);
    let a = enc
        .encode(&["the cat sat"], &EncodeOptions::default())
        .unwrap();
    let b = again
        .encode(&["the cat sat"], &EncodeOptions::default())
        .unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
}
