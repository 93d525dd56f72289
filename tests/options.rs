//! Options that were once accepted by `stpipe check` and then dropped or
//! changed at run time now change the run, each shown by a run that uses
//! it: `WarmupCosineWithHardRestarts(num_cycles)`, the similarity of
//! `MultipleNegativesRankingLoss`, `Transformer(do_lower_case)`, and the
//! BinaryClassification metrics that `expect` and `best by` once rejected.

use crate::common;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

const TRIPLETS: &str = "anchor\tpositive\tnegative\n\
    the cat sat\ta cat sat on the mat\tthe red house\n\
    a big dog\tthe dog runs fast\ta small tree\n\
    the blue house\ta big red house\tthe cat is slow\n\
    a small tree\tthe tree is small\ta dog runs\n\
    the mat\ta cat on the mat\tthe big house\n\
    a red dog\tthe dog is red\ta blue tree\n";

const PAIRS: &str = "sentence1\tsentence2\tlabel\n\
    the cat sat\ta cat sat on the mat\t1\n\
    a big dog\tthe red house\t0\n\
    the blue house\ta big red house\t1\n\
    a small tree\tthe cat is slow\t0\n\
    the mat\ta cat on the mat\t1\n\
    a red dog\ta blue tree\t0\n";

fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::write_tiny_bert(&tmp.path().join("tiny"), 5);
    // Data in its own directory: a save may not lie in a data directory.
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/triplets.tsv"), TRIPLETS).unwrap();
    std::fs::write(tmp.path().join("data/pairs.tsv"), PAIRS).unwrap();
    tmp
}

/// Run `src` in `dir` under run directory `name`; the metrics log lines.
fn run(dir: &Path, name: &str, src: &str) -> Vec<serde_json::Value> {
    let file = dir.join(format!("{name}.stp"));
    std::fs::write(&file, src).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .arg("--run-dir")
        .arg(dir.join(name))
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{src}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join(name).join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn mnrl(similarity: &str, scheduler: &str) -> String {
    format!(
        "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
         data t = tsv(\"data/triplets.tsv\")\n\
         objective o = MultipleNegativesRankingLoss(m, similarity: {similarity}) on t (batch_size: 3, shuffle: false)\n\
         train m {{ objectives: [o]\n epochs: 3\n optimizer: AdamW(lr: 1e-2)\n scheduler: {scheduler} }}\n"
    )
}

fn series(lines: &[serde_json::Value], key: &str) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.get("lr").is_some())
        .map(|l| match key {
            "lr" => l["lr"].as_f64().unwrap(),
            _ => l["loss"]["o"].as_f64().unwrap(),
        })
        .collect()
}

#[test]
fn num_cycles_shapes_the_learning_rate() {
    let tmp = workspace();
    let one = run(
        tmp.path(),
        "one",
        &mnrl("cosine", "WarmupCosineWithHardRestarts(num_cycles: 1)"),
    );
    let three = run(
        tmp.path(),
        "three",
        &mnrl("cosine", "WarmupCosineWithHardRestarts(num_cycles: 3)"),
    );
    let (a, b) = (series(&one, "lr"), series(&three, "lr"));
    assert_eq!(a.len(), 6);
    // One cycle decays monotonically; three restart at steps 3 and 5
    // (0-based 2 and 4 of 6).
    assert!(a.windows(2).all(|w| w[1] <= w[0]), "{a:?}");
    assert!(b[2] > b[1] && b[4] > b[3], "{b:?}");
    assert_ne!(a, b);
}

#[test]
fn the_similarity_of_multiple_negatives_ranking_loss_is_the_one_asked_for() {
    let tmp = workspace();
    let losses: Vec<Vec<f64>> = ["cosine", "dot", "euclidean", "manhattan"]
        .iter()
        .map(|s| series(&run(tmp.path(), s, &mnrl(s, "Constant")), "loss"))
        .collect();
    for i in 0..losses.len() {
        for j in i + 1..losses.len() {
            assert_ne!(losses[i][0], losses[j][0], "similarities {i} and {j}");
        }
    }
}

#[test]
fn do_lower_case_lowercases_inputs() {
    let tmp = workspace();
    common::write_tiny_bert_cased(&tmp.path().join("cased"), 5);
    let embed = |lower: &str, text: &str| -> Vec<f32> {
        let src = format!(
            "model m = Transformer(\"cased\"{lower}) -> Pooling(mean)\n\
             data t = tsv(\"data/triplets.tsv\")\n\
             objective o = MultipleNegativesRankingLoss(m) on t\n\
             train m {{ objectives: [o]\n max_steps: 1 }}\n"
        );
        let (report, p) = stpipe::check::check_source("p.stp", src, tmp.path(), &common::options());
        let p = p.unwrap_or_else(|| panic!("{}", report.to_plain()));
        let enc = stpipe::runtime::train::build::build_model(
            &p.models[0],
            &common::options().models,
            tmp.path(),
            1,
        )
        .unwrap();
        enc.encode(&[text], &Default::default())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let lower = ", do_lower_case: true";
    assert_eq!(embed(lower, "The Cat SAT"), embed(lower, "the cat sat"));
    assert_ne!(embed("", "The Cat SAT"), embed("", "the cat sat"));
    assert_ne!(
        embed(", do_lower_case: false", "The Cat SAT"),
        embed(lower, "The Cat SAT")
    );
}

#[test]
fn every_binary_classification_metric_can_be_expected_and_kept_best() {
    let tmp = workspace();
    let src = "model m = Transformer(\"tiny\") -> Pooling(mean)\n\
         data p = tsv(\"data/pairs.tsv\")\n\
         objective o = OnlineContrastiveLoss(m) on p (batch_size: 3)\n\
         evaluator e = BinaryClassification(m, p)\n\
         train m { objectives: [o]\n max_steps: 2\n evaluate: e every 1 steps }\n\
         save m to \"out\" best by e.cosine_mcc\n\
         expect e.max_accuracy_threshold > -1000\n\
         expect e.euclidean_f1_threshold >= 0\n\
         expect e.dot_mcc >= -1\n";
    let lines = run(tmp.path(), "binary", src);
    let e = lines.iter().rev().find(|l| l["evaluator"] == "e").unwrap();
    for m in [
        "cosine_mcc",
        "max_accuracy_threshold",
        "euclidean_f1_threshold",
    ] {
        assert!(e["metrics"][m].as_f64().is_some(), "{m}");
    }
    assert!(tmp.path().join("out/modules.json").is_file());
}
