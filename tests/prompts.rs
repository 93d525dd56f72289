//! Prompts as sentence-transformers 6 has them: the embeddings of prompted
//! texts with Pooling's `include_prompt` on and off (against the Python
//! library, `tests/fixtures/arch/prompts.json` from
//! `scripts/make_prompt_fixtures.py`), prompts saved with a trained model
//! and read back, and `stpipe encode --prompt-name`.

use crate::common;

use std::process::Command;

use serde_json::Value;
use stpipe::runtime::modules::Pooling;
use stpipe::runtime::{EncodeOptions, SentenceEncoder};

fn reference() -> Value {
    let p = common::repo().join("tests/fixtures/arch/prompts.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// The fixture model with Pooling's `include_prompt` set.
fn model(name: &str, include_prompt: bool) -> SentenceEncoder {
    let dir = common::repo()
        .join("tests/fixtures/arch")
        .join(name)
        .join("model");
    let mut modules = SentenceEncoder::load(&dir).unwrap().into_modules();
    let pooling = modules[1].as_any_mut().downcast_mut::<Pooling>().unwrap();
    pooling.include_prompt = include_prompt;
    SentenceEncoder::new(modules).unwrap()
}

#[test]
fn prompted_embeddings_match_sentence_transformers() {
    let r = reference();
    let prompt = r["prompt"].as_str().unwrap();
    let sentences: Vec<String> = r["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for (name, rec) in r["models"].as_object().unwrap() {
        let enc = model(name, true);
        assert_eq!(
            enc.transformer().prompt_length(prompt).unwrap() as u64,
            rec["prompt_length"].as_u64().unwrap(),
            "{name}"
        );
        let opts = EncodeOptions {
            prompt: Some(prompt.to_string()),
            ..EncodeOptions::default()
        };
        for (key, include) in [("include", true), ("exclude", false)] {
            let got = model(name, include)
                .encode(&sentences, &opts)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let want = rows(&rec[key]);
            for (g, w) in got.iter().zip(&want) {
                let (cos, diff) = common::compare(g, w);
                assert!(cos >= 0.99999 && diff <= 1e-4, "{name} {key}: {cos} {diff}");
            }
        }
        // Leaving the prompt out of the pooling changes the embedding.
        let plain = enc
            .encode(&sentences, &opts)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let (cos, _) = common::compare(&plain[0], &rows(&rec["exclude"])[0]);
        assert!(cos < 0.9999, "{name}: include_prompt made no difference");
        println!("{name}: prompted embeddings match (include_prompt on and off)");
    }
}

fn stpipe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stpipe"));
    c.env_remove("STPIPE_FAILPOINT")
        .stdin(std::process::Stdio::null());
    c
}

#[test]
fn prompts_are_trained_with_saved_and_picked_by_name() {
    let tmp = common::tiny_workspace(32);
    let dir = tmp.path();
    let file = dir.join("p.stp");
    std::fs::write(
        &file,
        "model m = Transformer(\"tiny\", prompts: {query: \"red house \", doc: \"blue tree \"}, default_prompt_name: \"query\")\n\
           -> Pooling(mean, include_prompt: false)\n\
         data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
           { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
         objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8, prompts: {sentence1: \"red house \", sentence2: \"blue tree \"})\n\
         evaluator dev = EmbeddingSimilarity(m, pairs, prompts: {sentence2: \"blue tree \"})\n\
         train m { objectives: [sim]\n max_steps: 2\n evaluate: dev }\n\
         save m to \"out\"\n",
    )
    .unwrap();
    let o = common::stpipe_run(&file, &dir.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    // The objective's prompts change what is trained.
    let text = std::fs::read_to_string(&file).unwrap();
    let plain = dir.join("plain.stp");
    std::fs::write(
        &plain,
        text.replace(
            ", prompts: {sentence1: \"red house \", sentence2: \"blue tree \"})",
            ")",
        )
        .replace("\"out\"", "\"out-plain\""),
    )
    .unwrap();
    let o = common::stpipe_run(&plain, &dir.join("run-plain"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let weights = |d: &str| std::fs::read(dir.join(d).join("model.safetensors")).unwrap();
    assert_ne!(
        weights("out"),
        weights("out-plain"),
        "objective prompts made no difference to training"
    );

    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/config_sentence_transformers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["prompts"]["query"], "red house ");
    assert_eq!(cfg["prompts"]["doc"], "blue tree ");
    assert_eq!(cfg["default_prompt_name"], "query");
    let pool: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/1_Pooling/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pool["include_prompt"], false);
    let loaded = SentenceEncoder::load(&dir.join("out")).unwrap();
    assert_eq!(loaded.transformer().default_prompt(), Some("red house "));

    std::fs::write(dir.join("in.txt"), "the cat sat\na dog runs\n").unwrap();
    let encode = |extra: &[&str]| -> Vec<u8> {
        let o = stpipe()
            .args(["encode", "--model"])
            .arg(dir.join("out"))
            .args(extra)
            .arg(dir.join("in.txt"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", common::output_text(&o));
        o.stdout
    };
    let by_name = encode(&["--prompt-name", "doc"]);
    assert_eq!(by_name, encode(&["--prompt", "blue tree "]));
    // The tiny vocabulary has these words: different prompts, different
    // embeddings even with the prompt left out of the pooling.
    // Without a prompt the default one (`query`) applies.
    assert_eq!(encode(&[]), encode(&["--prompt-name", "query"]));
    assert_ne!(encode(&[]), by_name);

    let o = stpipe()
        .args(["encode", "--model"])
        .arg(dir.join("out"))
        .args(["--prompt-name", "passage"])
        .arg(dir.join("in.txt"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = common::output_text(&o);
    assert!(
        err.contains("no prompt `passage`") && err.contains("`doc`"),
        "{err}"
    );
}
