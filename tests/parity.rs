//! Parity with Python sentence-transformers: the fixtures in
//! `tests/fixtures/parity` were written by `scripts/make_parity_fixtures.py`.

use crate::common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use stpipe::runtime::{EncodeOptions, SentenceEncoder};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn sentences() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn reference(path: &Path) -> Vec<Vec<f32>> {
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    t["embeddings"].to_vec2::<f32>().unwrap()
}

fn check(name: &str, enc: &SentenceEncoder, expected: &[Vec<f32>]) {
    let s = sentences();
    assert_eq!(s.len(), expected.len());
    let got = enc
        .encode(&s, &EncodeOptions::default())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let (mut min_cos, mut max_diff) = (1f64, 0f64);
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g.len(), e.len());
        let (c, d) = common::compare(g, e);
        min_cos = min_cos.min(c);
        max_diff = max_diff.max(d);
    }
    println!(
        "{name}: {} sentences, min cosine {min_cos:.9}, max abs diff {max_diff:.3e}",
        got.len()
    );
    assert!(min_cos >= 0.99999, "{name}: min cosine {min_cos}");
    assert!(max_diff <= 1e-4, "{name}: max abs diff {max_diff}");
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(model) = common::minilm_dir() else {
        return;
    };
    let enc = SentenceEncoder::load(&model).unwrap();
    assert_eq!(enc.dim(), 384);
    assert_eq!(enc.transformer().max_seq_length, 256);
    check(
        "minilm",
        &enc,
        &reference(&fixtures().join("minilm/embeddings.safetensors")),
    );
}

/// A text's embedding does not depend on its batch-mates, to the bit:
/// whatever the batch size, and so whatever the token count of a batch
/// (the products cut tokens into runs, and a lone token at the end of one
/// once summed in another order).
#[test]
fn minilm_bits_do_not_depend_on_the_batch_size() {
    let Some(model) = common::minilm_dir() else {
        return;
    };
    let enc = SentenceEncoder::load(&model).unwrap();
    let s = sentences();
    let encode = |batch_size: usize| {
        let opts = EncodeOptions {
            batch_size,
            ..Default::default()
        };
        enc.encode(&s, &opts).unwrap().to_vec2::<f32>().unwrap()
    };
    let default = encode(EncodeOptions::default().batch_size);
    for batch_size in [1, 7, 49] {
        assert!(
            encode(batch_size) == default,
            "batch size {batch_size} changed an embedding's bits"
        );
    }
}

#[test]
fn cls_max_mean_dense_normalize_matches_sentence_transformers() {
    let Some(model) = common::minilm_dir() else {
        return;
    };
    // Assemble the fixture with the shared transformer weights.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cmm");
    copy_tree(&fixtures().join("cmm-dense128"), &dir);
    std::fs::remove_file(dir.join("embeddings.safetensors")).unwrap();
    std::os::unix::fs::symlink(
        model.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let enc = SentenceEncoder::load(&dir).unwrap();
    let types: Vec<&str> = enc.modules().iter().map(|m| m.type_name()).collect();
    assert_eq!(types, ["Transformer", "Pooling", "Dense", "Normalize"]);
    assert_eq!(enc.dim(), 128);
    let expected = reference(&fixtures().join("cmm-dense128/embeddings.safetensors"));
    check("cmm-dense128", &enc, &expected);

    // Saved by stpipe (legacy layout) and reloaded: same embeddings.
    let out = tmp.path().join("resaved");
    enc.save(&out).unwrap();
    let again = SentenceEncoder::load(&out).unwrap();
    check("cmm-dense128 re-saved", &again, &expected);
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}
