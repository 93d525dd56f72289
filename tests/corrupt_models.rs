//! Broken model directories give clear errors naming the file, never panics.

use crate::common;

use std::path::Path;

use candle_core::{Device, Tensor};
use stpipe::runtime::SentenceEncoder;

fn st_model(dir: &Path) {
    common::write_tiny_bert(dir, 5);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
    )
    .unwrap();
}

fn load_err(dir: &Path) -> String {
    match SentenceEncoder::load(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn intact_model_with_absent_normalize_folder_loads() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    let enc = SentenceEncoder::load(tmp.path()).unwrap();
    assert_eq!(enc.modules().len(), 3);
}

#[test]
fn missing_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    std::fs::remove_file(tmp.path().join("vocab.txt")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("tokenizer.json") && e.contains("missing"), "{e}");
}

#[test]
fn corrupt_tokenizer_json() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    std::fs::write(tmp.path().join("tokenizer.json"), "{not json").unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn wrong_tensor_shape() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    let path = tmp.path().join("model.safetensors");
    let mut t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    t.insert(
        "encoder.layer.1.attention.self.key.weight".into(),
        Tensor::zeros((32, 31), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let list: Vec<(String, Tensor)> = t.into_iter().collect();
    stpipe::runtime::weights::save_safetensors(&path, &list).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors"), "{e}");
    assert!(
        e.contains("encoder.layer.1.attention.self.key.weight"),
        "{e}"
    );
    assert!(e.contains("[32, 31]") && e.contains("[32, 32]"), "{e}");
}

#[test]
fn missing_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    let path = tmp.path().join("model.safetensors");
    let mut t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    t.remove("encoder.layer.0.output.dense.bias");
    let list: Vec<(String, Tensor)> = t.into_iter().collect();
    stpipe::runtime::weights::save_safetensors(&path, &list).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("encoder.layer.0.output.dense.bias"),
        "{e}"
    );
}

#[test]
fn unknown_module_type() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    std::fs::write(
        tmp.path().join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_CNN","type":"sentence_transformers.models.CNN"}]"#,
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("modules.json") && e.contains("sentence_transformers.models.CNN"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors"), "{e}");
    // A file cut inside its header fails the same way.
    std::fs::write(&path, &bytes[..20]).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn missing_weights_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("missing"),
        "{e}"
    );
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn bad_pooling_and_dense_configs() {
    let tmp = tempfile::tempdir().unwrap();
    st_model(tmp.path());
    std::fs::write(
        tmp.path().join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 48}"#,
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("1_Pooling") && e.contains("48"), "{e}");
    std::fs::write(
        tmp.path().join("1_Pooling/config.json"),
        r#"{"pooling_mode": "median"}"#,
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("1_Pooling"), "{e}");
}

#[test]
fn missing_directory_and_invalid_json() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_err(&tmp.path().join("nope"));
    assert!(e.contains("nope"), "{e}");
    st_model(tmp.path());
    std::fs::write(tmp.path().join("modules.json"), "[{").unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("modules.json"), "{e}");
}
