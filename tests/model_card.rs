//! `save` writes a model card (README.md) next to the model, as
//! sentence-transformers does: Hub front matter, the model, its training
//! (objectives with data row counts, stage settings), the evaluation
//! figures known when saved, and the pipeline itself.

use crate::common;

use std::process::Command;

#[test]
fn a_saved_model_has_its_card() {
    let tmp = common::tiny_workspace(32);
    let dir = tmp.path();
    let pipeline = "let lr = 1e-3\n\
        model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(8, tanh)\n\
        data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
          { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
        objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8, sampler: no_duplicates)\n\
        evaluator dev = EmbeddingSimilarity(m, pairs)\n\
        train m { objectives: [sim]\n max_steps: 4\n optimizer: AdamW(lr: lr)\n evaluate: dev every 2 steps }\n\
        save m to \"out\" best by dev.spearman_cosine\n";
    std::fs::write(dir.join("p.stp"), pipeline).unwrap();
    let o = common::stpipe_run(&dir.join("p.stp"), &dir.join("run"))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let card = std::fs::read_to_string(dir.join("out/README.md")).unwrap();
    assert!(
        card.starts_with(
            "---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n"
        ),
        "{card}"
    );
    let front = card.split("\n---\n").next().unwrap();
    assert!(front.contains("\n- loss:CosineSimilarityLoss"), "{front}");
    // A local directory is no Hub id: no `base_model`.
    assert!(!front.contains("base_model"), "{front}");
    for needle in [
        "- **Output dimensionality:** 8",
        "| 2 | `Dense(activation: tanh, bias: true, out_features: 8)` |",
        "| sim | `CosineSimilarityLoss` | pairs | 32 | 8 | no_duplicates |",
        "optimizer `AdamW(",
        "lr: 0.001",
        "| dev | spearman_cosine | ",
        "best `dev.spearman_cosine`",
        "## Pipeline\n\n```\nlet lr = 1e-3\n",
    ] {
        assert!(card.contains(needle), "the card lacks {needle:?}:\n{card}");
    }
    // `max_steps` is the stage's own setting, not a smoke run's flag.
    assert!(!card.contains("smoke run"), "{card}");
    let o = Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .current_dir(dir)
        .args(["encode", "--model", "out"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"a cat\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        o.status.success(),
        "the carded model loads: {}",
        common::output_text(&o)
    );
}
