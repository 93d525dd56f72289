//! The front end at scale: a 50,000-module chain checks (no recursion
//! over the chain), a file with 20,000 diagnostics keeps all of them in
//! `--format json` while the human output shows the first 100 and counts
//! the rest. (Speed is measured in docs/performance.md, not here.)

use crate::common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stpipe");

#[test]
fn a_very_long_chain_checks() {
    let Some(model) = common::minilm_dir() else {
        return;
    };
    let mut src = format!(
        "model m = Transformer(\"{}\") -> Pooling(mean)",
        model.display()
    );
    for _ in 0..50_000 {
        src.push_str(" -> Normalize");
    }
    src.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let (report, p) = stpipe::check::check_source("long.stp", src, dir.path(), &common::options());
    assert!(!report.has_errors(), "{}", report.to_plain());
    let p = p.unwrap();
    assert_eq!(p.models[0].modules.len(), 50_002);
    assert_eq!(p.models[0].dim, Some(384));
    stpipe::plan::Plan::build(&p).unwrap();
}

#[test]
fn many_diagnostics_are_all_reported_and_the_human_output_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lets.stp");
    let src: String = (0..20_000).map(|i| format!("let v{i} = \"x\"\n")).collect();
    std::fs::write(&file, src).unwrap();
    let json = Command::new(BIN)
        .args(["check", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        doc["files"][0]["diagnostics"].as_array().unwrap().len(),
        20_000
    );
    let human = Command::new(BIN).arg("check").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&human.stderr);
    assert_eq!(err.matches("is never used").count(), 100, "{}", &err[..500]);
    assert!(err.contains("... and 19900 more (0 error(s), 19900 warning(s))"));
    assert!(human.status.success());
}

/// A wrapped loss may be written in place or through a `let`; either way
/// the objective is checked (its wrapped loss's columns included) and
/// reaches the plan.
#[test]
fn a_wrapped_loss_through_a_let_is_checked_like_one_in_place() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_bert(&dir.path().join("tiny"), 5);
    std::fs::write(dir.path().join("pairs.tsv"), common::scored_pairs(8, 1)).unwrap();
    let src = |inner: &str| {
        format!(
            "let inner = CoSENTLoss(m, scale: 10.0)\n\
             model m = Transformer(\"tiny\") -> Pooling(mean)\n\
             data d = tsv(\"pairs.tsv\") {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n\
             objective a = MatryoshkaLoss({inner}, dims: [8, 4]) on d\n\
             train m {{ objectives: [a] }}\n"
        )
    };
    for inner in ["inner", "CoSENTLoss(m, scale: 10.0)", "loss: inner"] {
        let (report, p) =
            stpipe::check::check_source("w.stp", src(inner), dir.path(), &common::options());
        assert!(!report.has_errors(), "{inner}: {}", report.to_plain());
        let p = p.unwrap();
        let o = p.objective("a").expect("objective `a` is checked");
        assert_eq!(o.loss, "MatryoshkaLoss");
        assert_eq!(o.base_loss().0, "CoSENTLoss", "{inner}");
        assert_eq!(o.base_loss().1.f64("scale").unwrap(), 10.0);
        stpipe::plan::Plan::build(&p).unwrap();
    }
    // Through a let, the wrapped loss's data still has to fit it.
    let bad = src("inner").replace(", score: col(2)", "");
    let (report, _) = stpipe::check::check_source("w.stp", bad, dir.path(), &common::options());
    assert!(
        report.to_plain().contains("missing-label"),
        "{}",
        report.to_plain()
    );
}
