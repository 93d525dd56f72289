//! `--set NAME=VALUE`: a `let` binding from the command line, checked like
//! the file (its diagnostics in place), changing what runs (fingerprints,
//! weights); a name the file does not bind is a diagnostic.

use crate::common;

use serde_json::Value;

const PIPELINE: &str = "let lr = 1e-3\nlet bs = 8\n\
    model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(8, tanh)\n\
    data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
      { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
    objective sim = CosineSimilarityLoss(m) on pairs (batch_size: bs)\n\
    train m { objectives: [sim]\n max_steps: 2\n optimizer: AdamW(lr: lr) }\n\
    save m to \"out\"\n";

#[test]
fn set_overrides_are_checked_and_change_the_run() {
    let tmp = common::tiny_workspace(32);
    let dir = tmp.path();
    std::fs::write(dir.join("p.stp"), PIPELINE).unwrap();

    // Checked like the file: a bad value is reported where the binding is used.
    let o = common::stpipe_in(dir)
        .args([
            "--set",
            "bs=\"eight\"",
            "--set",
            "lrr=2",
            "check",
            "--format",
            "json",
            "p.stp",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let diags = doc["files"][0]["diagnostics"].as_array().unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"unknown-override"), "{codes:?}");
    assert!(codes.contains(&"type-mismatch"), "{codes:?}");
    let unknown = diags
        .iter()
        .find(|d| d["code"] == "unknown-override")
        .unwrap();
    assert!(
        unknown["help"].as_str().unwrap().contains("lr, bs"),
        "{unknown}"
    );
    let mismatch = diags.iter().find(|d| d["code"] == "type-mismatch").unwrap();
    assert_eq!(mismatch["line"], 5, "{mismatch}");

    // A changed value is another plan step, and other weights.
    let plan = |set: &[&str]| -> String {
        let mut c = common::stpipe_in(dir);
        for s in set {
            c.args(["--set", s]);
        }
        let o = c.args(["plan", "p.stp"]).output().unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let train_line = |p: &str| {
        p.lines()
            .find(|l| l.contains(" train "))
            .unwrap()
            .to_string()
    };
    assert_ne!(train_line(&plan(&[])), train_line(&plan(&["lr=5e-4"])));
    assert_eq!(train_line(&plan(&["lr=1e-3"])), train_line(&plan(&[])));

    let run = |set: &[&str], run_dir: &str| -> Vec<u8> {
        let mut c = common::stpipe_in(dir);
        for s in set {
            c.args(["--set", s]);
        }
        let o = c
            .args(["run", "p.stp", "--quiet", "--run-dir", run_dir])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
        std::fs::read(dir.join("out/model.safetensors")).unwrap()
    };
    let base = run(&[], "run-a");
    let other = run(&["lr=1e-2", "bs=4"], "run-b");
    assert_ne!(base, other, "--set changed nothing");
    assert_eq!(run(&["lr=1e-3", "bs=8"], "run-c"), base);
}
