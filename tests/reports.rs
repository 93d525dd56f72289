//! What a run leaves for CI and people: `--report` JUnit XML and JSON
//! (read back with a real XML parser), `curves.png`, `stpipe report`'s
//! report.html, and `--sweep`'s table with per-point run directories.

use crate::common;

use serde_json::Value;

/// The tiny training pipeline with a dev evaluator, a `best by` save and
/// two expectations, one of which (`>= 2`) cannot hold.
fn pipeline() -> String {
    "let lr = 1e-3\n\
     model m = Transformer(\"tiny\") -> Pooling(mean) -> Dense(8, tanh)\n\
     data pairs = tsv(\"data/pairs.tsv\", header: false, quoting: none) \
       { sentence1: col(0), sentence2: col(1), score: col(2) }\n\
     objective sim = CosineSimilarityLoss(m) on pairs (batch_size: 8)\n\
     evaluator dev = EmbeddingSimilarity(m, pairs)\n\
     train m { objectives: [sim]\n max_steps: 4\n optimizer: AdamW(lr: lr)\n evaluate: dev every 2 steps }\n\
     save m to \"out\" best by dev.spearman_cosine\n\
     expect dev.spearman_cosine >= -1\n\
     expect dev.spearman_cosine >= 2\n"
        .to_string()
}

/// The tiny workspace with `text` as pipeline file `name`.
fn workspace(name: &str, text: &str) -> tempfile::TempDir {
    let tmp = common::tiny_workspace(32);
    std::fs::write(tmp.path().join(name), text).unwrap();
    tmp
}

/// `(tests, failures, errors, skipped)` of an element.
fn counts(n: roxmltree::Node) -> (usize, usize, usize, usize) {
    let a = |k: &str| n.attribute(k).unwrap().parse::<usize>().unwrap();
    (a("tests"), a("failures"), a("errors"), a("skipped"))
}

fn suite<'a>(doc: &'a roxmltree::Document, name: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no suite {name}"))
}

#[test]
fn a_failing_expect_gives_junit_json_curves_and_a_report_page() {
    let tmp = workspace("p.stp", &pipeline());
    let dir = tmp.path();
    let o = common::stpipe_in(dir)
        .args(["run", "p.stp", "--quiet", "--run-dir", "run"])
        .args(["--report", "reports/junit.xml", "--report", "report.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", common::output_text(&o));

    let xml = std::fs::read_to_string(dir.join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    // check + 6 steps (model, data, train, evaluate, save) + 2 expects.
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(counts(root), (cases.len(), 1, 0, 0), "{xml}");
    assert_eq!(counts(suite(&doc, "check")), (1, 0, 0, 0));
    assert_eq!(counts(suite(&doc, "expect")), (2, 1, 0, 0));
    let failing = cases
        .iter()
        .find(|c| c.children().any(|k| k.has_tag_name("failure")))
        .unwrap();
    assert_eq!(
        failing.attribute("name"),
        Some("expect dev.spearman_cosine >= 2")
    );
    let failure = failing
        .children()
        .find(|k| k.has_tag_name("failure"))
        .unwrap();
    assert!(failure
        .attribute("message")
        .unwrap()
        .contains("does not hold >= 2"));
    let steps = suite(&doc, "steps");
    let names: Vec<&str> = steps
        .children()
        .filter_map(|c| c.attribute("classname"))
        .collect();
    for kind in [
        "stpipe.load-model",
        "stpipe.load-data",
        "stpipe.train",
        "stpipe.save",
    ] {
        assert!(names.contains(&kind), "{kind} missing from {names:?}");
    }

    let json: Value = common::read_json(&dir.join("report.json"));
    assert_eq!(json["status"], "expectation_failed");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["expectations"].as_array().unwrap().len(), 2);
    assert!(json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "executed"));

    let png = std::fs::read(dir.join("run/curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1400);

    let o = common::stpipe_in(dir)
        .args(["report", "run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let html = std::fs::read_to_string(dir.join("run/report.html")).unwrap();
    for needle in [
        "<img id=\"curves\"",
        "src=\"data:image/png;base64,",
        "<table id=\"final-metrics\"",
        "<table id=\"expectations\"",
        "<table id=\"steps\"",
        "<pre id=\"pipeline\">let lr = 1e-3",
        "<pre id=\"plan\">",
        "FAIL",
        "dev.spearman_cosine &gt;= 2",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle}");
    }
    assert!(!html.contains("<script"), "the page needs no script");
}

#[test]
fn an_invalid_pipeline_and_a_failed_step_are_reported() {
    let tmp = workspace(
        "bad.stp",
        &pipeline().replace("Pooling(mean)", "Pooling(meen)"),
    );
    let dir = tmp.path();
    let o = common::stpipe_in(dir)
        .args(["run", "bad.stp", "--quiet", "--report", "bad.xml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let xml = std::fs::read_to_string(dir.join("bad.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(counts(doc.root_element()), (1, 1, 0, 0), "{xml}");
    assert!(xml.contains("meen"), "{xml}");

    // A bad row past what the checker peeks at fails the data step at run time.
    let mut rows = common::scored_pairs(40, 1);
    rows.push_str("a cat\ta dog\tnot-a-number\n");
    std::fs::write(dir.join("data/pairs.tsv"), rows).unwrap();
    std::fs::write(dir.join("p.stp"), pipeline()).unwrap();
    let o = common::stpipe_in(dir)
        .args([
            "run", "p.stp", "--quiet", "--report", "r.xml", "--report", "r.json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", common::output_text(&o));
    let xml = std::fs::read_to_string(dir.join("r.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let (tests, failures, errors, skipped) = counts(doc.root_element());
    assert_eq!((failures, errors), (0, 1), "{xml}");
    assert!(skipped >= 3 && tests > skipped, "{xml}");
    let error = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    assert!(
        error.attribute("message").unwrap().contains("not-a-number"),
        "{xml}"
    );
    let json: Value = common::read_json(&dir.join("r.json"));
    assert_eq!(json["status"], "error");
    assert!(
        json["error"].as_str().unwrap().contains("pairs.tsv"),
        "{json}"
    );
}

#[test]
fn a_sweep_runs_each_value_once_and_writes_the_table() {
    let tmp = workspace(
        "p.stp",
        &pipeline().replace("expect dev.spearman_cosine >= 2\n", ""),
    );
    let dir = tmp.path();
    let sweep = |values: &str| {
        common::stpipe_in(dir)
            .args([
                "run",
                "p.stp",
                "--quiet",
                "--run-dir",
                "sw",
                "--sweep",
                values,
            ])
            .output()
            .unwrap()
    };
    let o = sweep("lr=1e-3,5e-3,1e-2");
    assert!(o.status.success(), "{}", common::output_text(&o));
    let md = std::fs::read_to_string(dir.join("sw/sweep.md")).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 5, "{md}");
    assert!(
        lines[0].starts_with("| lr | status | expect | dev.spearman_cosine |"),
        "{md}"
    );
    for (line, v) in lines[2..].iter().zip(["1e-3", "5e-3", "1e-2"]) {
        assert!(
            line.starts_with(&format!("| {v} | passed | 1/1 held | ")),
            "{md}"
        );
        assert!(dir.join(format!("out@lr={v}/model.safetensors")).exists());
        assert!(dir.join(format!("sw/lr={v}/curves.png")).exists());
    }
    assert_ne!(
        std::fs::read(dir.join("out@lr=1e-3/model.safetensors")).unwrap(),
        std::fs::read(dir.join("out@lr=1e-2/model.safetensors")).unwrap()
    );
    let json: Value = common::read_json(&dir.join("sw/sweep.json"));
    assert_eq!(json["points"].as_array().unwrap().len(), 3);

    // Again with one more value: only the new point trains.
    let o = sweep("lr=1e-3,5e-3,1e-2,2e-2");
    assert!(o.status.success(), "{}", common::output_text(&o));
    for v in ["1e-3", "5e-3", "1e-2"] {
        let s: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("sw/lr={v}/summary.json"))).unwrap(),
        )
        .unwrap();
        let train = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "train")
            .unwrap();
        assert_eq!(train["status"], "reused", "lr={v}: {s}");
    }
    let s: Value = common::read_json(&dir.join("sw/lr=2e-2/summary.json"));
    let train = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "train")
        .unwrap();
    assert_eq!(train["status"], "executed");
    assert_eq!(
        std::fs::read_to_string(dir.join("sw/sweep.md"))
            .unwrap()
            .lines()
            .count(),
        6
    );

    // A report that cannot be written fails a run that otherwise passed.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let o = common::stpipe_in(dir)
        .args([
            "run",
            "p.stp",
            "--quiet",
            "--run-dir",
            "plain",
            "--report",
            "a-file/r.xml",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", common::output_text(&o));
    assert!(common::output_text(&o).contains("cannot write the report a-file/r.xml"));

    // A swept name the file does not bind is a diagnostic; so is sweeping a --set name.
    let o = sweep("lrr=1,2");
    assert_eq!(o.status.code(), Some(1));
    assert!(common::output_text(&o).contains("lrr"));
    let o = common::stpipe_in(dir)
        .args([
            "--set",
            "lr=1e-3",
            "run",
            "p.stp",
            "--sweep",
            "lr=1e-3,2e-3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn report_flags_are_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let o = common::stpipe_in(tmp.path())
        .args(["run", "p.stp", "--report", "out.txt"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(common::output_text(&o).contains("*.xml"));
    let o = common::stpipe_in(tmp.path())
        .args(["run", "p.stp", "--sweep", "lr=1e-3,,2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = common::stpipe_in(tmp.path())
        .args(["report", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(common::output_text(&o).contains("metrics.jsonl"));
}
