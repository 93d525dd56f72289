//! Parquet sources (every codec pyarrow writes) and list fields: `item`
//! and `take` on Parquet list columns and JSON Lines arrays, bad rows
//! located by row and row group, and the checks on list labels. The
//! fixtures are written by scripts/make_parquet_fixtures.py.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use stpipe::check::{check_source, Options};
use stpipe::runtime::data::{load, DataError, Label, LoadOptions};

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/parquet")
}

fn check(dir: &Path, body: &str) -> (stpipe::diag::Report, Option<stpipe::check::Pipeline>) {
    let opts = Options {
        env: HashMap::new(),
        ..common::options()
    };
    check_source("p.stp", body.to_string(), dir, &opts)
}

fn checked(dir: &Path, body: &str) -> stpipe::check::Pipeline {
    let (r, p) = check(dir, body);
    p.unwrap_or_else(|| panic!("{}", r.to_plain()))
}

/// Where a load failed and why: its row (or line), its row group, its message.
fn bad_row(err: DataError) -> (usize, Option<usize>, String) {
    match err {
        DataError::BadRow {
            line,
            group,
            message,
            ..
        } => (line, group, message),
        other => panic!("not a bad row: {other:?}"),
    }
}

fn codes(dir: &Path, body: &str) -> Vec<String> {
    let (r, p) = check(dir, body);
    assert!(p.is_none(), "expected errors in:\n{body}");
    r.diags.iter().map(|d| d.code.to_string()).collect()
}

#[test]
fn every_codec_reads_the_rows_json_lines_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl: String = (0..50)
        .map(|i| {
            format!(
                "{{\"query\": \"q{i} \\u00e9\", \"answer\": \"a{i}\", \"score\": {}}}\n",
                i as f64 / 50.0
            )
        })
        .collect();
    std::fs::write(tmp.path().join("qa.jsonl"), jsonl).unwrap();
    let cols = "{ anchor: col(\"query\"), positive: col(\"answer\"), score: col(\"score\") }";
    let mut body = format!(
        "data j = jsonl(\"{}\") {cols}\n",
        tmp.path().join("qa.jsonl").display()
    );
    let codecs = ["snappy", "zstd", "gzip", "lz4", "brotli", "none"];
    for c in codecs {
        let f = fixtures().join(format!("qa-{c}.parquet"));
        body.push_str(&format!("data {c} = parquet(\"{}\") {cols}\n", f.display()));
    }
    let p = checked(tmp.path(), &body);
    let opts = LoadOptions::default();
    let want = load(&p, "j", &opts).unwrap();
    assert_eq!(want.len(), 50);
    for c in codecs {
        let got = load(&p, c, &opts).unwrap();
        assert_eq!(got.text_columns, want.text_columns, "{c}");
        let rows = |d: &stpipe::runtime::data::Dataset| -> Vec<(Vec<String>, Option<Label>)> {
            d.examples
                .iter()
                .map(|e| (e.texts.clone(), e.label.clone()))
                .collect()
        };
        assert_eq!(rows(&got), rows(&want), "{c}");
        // Rows are numbered through the row groups (16 rows each).
        assert_eq!(got.examples[49].line, 50, "{c}");
    }
    // `limit` stops inside the second row group.
    let p = checked(
        tmp.path(),
        &format!(
            "data s = parquet(\"{}\") {cols} limit 20\n",
            fixtures().join("qa-snappy.parquet").display()
        ),
    );
    assert_eq!(load(&p, "s", &opts).unwrap().len(), 20);
    // One column of three read (the others are not decoded): the same texts.
    let p = checked(
        tmp.path(),
        &format!(
            "data one = parquet(\"{}\") {{ text: col(\"answer\") }}\n",
            fixtures().join("qa-zstd.parquet").display()
        ),
    );
    let one = load(&p, "one", &opts).unwrap();
    let answers: Vec<String> = want.examples.iter().map(|e| e.texts[1].clone()).collect();
    let got: Vec<String> = one.examples.iter().map(|e| e.texts[0].clone()).collect();
    assert_eq!(got, answers);
}

fn hard_negatives(take: usize, scores: usize, skip: bool) -> String {
    format!(
        "data hn = parquet(\"{}\", skip_bad_rows: {skip}) {{ query: col(\"query\"), positive: item(col(\"pos\"), 0), negative: take(col(\"neg\"), {take}), score: take(col(\"scores\"), {scores}) }}\n",
        fixtures().join("hard-negatives.parquet").display()
    )
}

#[test]
fn list_columns_become_n_tuples_and_score_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let p = checked(tmp.path(), &hard_negatives(3, 4, true));
    let cols: Vec<&str> = p.data[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cols,
        [
            "query",
            "positive",
            "negative_1",
            "negative_2",
            "negative_3",
            "score"
        ]
    );
    let ds = load(&p, "hn", &LoadOptions::default()).unwrap();
    // Row 7 has two negatives: skipped; rows with four give their first three.
    assert_eq!((ds.len(), ds.skipped), (9, 1));
    let e = &ds.examples[1];
    assert_eq!(
        e.texts,
        [
            "query 1",
            "positive 1",
            "negative 1.0",
            "negative 1.1",
            "negative 1.2"
        ]
    );
    assert_eq!(e.label, Some(Label::Scores(vec![8.9, 4.9, 3.9, 2.9])));

    // Without skipping, row 7 is the error, with its row group.
    let p = checked(tmp.path(), &hard_negatives(3, 4, false));
    let err = load(&p, "hn", &LoadOptions::default()).unwrap_err();
    let shown = err.to_string();
    let (line, group, message) = bad_row(err);
    assert_eq!((line, group), (7, Some(1)));
    assert!(
        message.contains("negative_3") && message.contains("has 2 element(s)"),
        "{message}"
    );
    assert!(
        shown.contains("hard-negatives.parquet: row 7 (row group 1)"),
        "{shown}"
    );
}

#[test]
fn list_labels_are_checked_against_the_losses_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let model = "model m = Transformer(\"tiny\") -> Pooling(mean)\n";
    common::write_tiny_bert(&tmp.path().join("tiny"), 5);
    let with = |take: usize, scores: usize, loss: &str| {
        format!(
            "{model}{}objective o = {loss}(m) on hn (batch_size: 4)\ntrain m {{ objectives: [o] }}\n",
            hard_negatives(take, scores, true)
        )
    };
    // Four candidates, four scores: DistillKLDiv; MarginMSE takes four
    // scores or three margins.
    checked(tmp.path(), &with(3, 4, "DistillKLDivLoss"));
    checked(tmp.path(), &with(3, 4, "MarginMSELoss"));
    checked(tmp.path(), &with(3, 3, "MarginMSELoss"));
    assert!(
        codes(tmp.path(), &with(3, 3, "DistillKLDivLoss")).contains(&"label-length".to_string())
    );
    assert!(codes(tmp.path(), &with(2, 4, "MarginMSELoss")).contains(&"label-length".to_string()));
    // Score lists are no classes to group batches by.
    let grouped = with(3, 4, "MarginMSELoss").replace(
        "(batch_size: 4)",
        "(batch_size: 4, sampler: group_by_label)",
    );
    assert!(codes(tmp.path(), &grouped).contains(&"sampler-needs-label".to_string()));
    // A list label where one value belongs.
    assert!(codes(tmp.path(), &with(1, 2, "CoSENTLoss"))
        .iter()
        .any(|c| c == "label-type" || c == "text-columns"));
    // One score where DistillKLDiv needs a list.
    let one = format!(
        "{model}data hn = parquet(\"{}\") {{ query: col(\"query\"), positive: item(col(\"pos\"), 0), negative: item(col(\"neg\"), 0), score: item(col(\"scores\"), 0) }}\nobjective o = DistillKLDivLoss(m) on hn\ntrain m {{ objectives: [o] }}\n",
        fixtures().join("hard-negatives.parquet").display()
    );
    assert!(codes(tmp.path(), &one).contains(&"label-type".to_string()));
}

#[test]
fn misused_lists_are_check_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixtures().join("hard-negatives.parquet");
    let src = |cols: &str| format!("data d = parquet(\"{}\") {{ {cols} }}\n", f.display());
    let cases = [
        // A list read as one text.
        (
            "anchor: col(\"query\"), positive: col(\"neg\")",
            "list-as-text",
        ),
        // More taken than the first rows hold (row 7 is past the peek, but
        // two elements are fewer than 5 in every row).
        (
            "anchor: col(\"query\"), negative: take(col(\"neg\"), 5)",
            "bad-list",
        ),
        ("anchor: item(col(\"query\"), 0)", "bad-list"),
        (
            "anchor: col(\"query\"), negative: take(col(\"neg\"), 0)",
            "bad-column",
        ),
        (
            "anchor: col(\"query\"), negative: take(col(\"neg\"))",
            "bad-column",
        ),
        (
            "anchor: col(\"query\"), score: take(col(\"scores\"), 2) * 2",
            "list-arithmetic",
        ),
        (
            "anchor: col(\"query\"), score: take(col(\"neg\"), 2)",
            "label-type",
        ),
        (
            "anchor: col(\"query\"), negative: take(col(\"neg\"), 2), negative_1: col(\"query\")",
            "duplicate-column",
        ),
        ("anchor: col(0)", "bad-column"),
    ];
    for (cols, code) in cases {
        let got = codes(tmp.path(), &src(cols));
        assert!(got.iter().any(|c| c == code), "{cols}: {got:?}");
    }
    // Not a Parquet file at all.
    std::fs::write(tmp.path().join("fake.parquet"), "a\tb\n").unwrap();
    let got = codes(
        tmp.path(),
        "data d = parquet(\"fake.parquet\") { a: col(\"a\") }\n",
    );
    assert!(!got.is_empty());
}

#[test]
fn a_null_text_is_a_located_bad_row() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!(
        "data d = parquet(\"{}\") {{ anchor: col(\"query\"), positive: col(\"answer\") }}\n",
        fixtures().join("nulls.parquet").display()
    );
    let p = checked(tmp.path(), &body);
    let (line, group, message) = bad_row(load(&p, "d", &LoadOptions::default()).unwrap_err());
    assert_eq!((line, group), (4, Some(0)));
    assert!(message.contains("null"), "{message}");
}

#[test]
fn json_lines_arrays_read_as_lists_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = String::from(
        "{\"q\": \"a\", \"neg\": [\"x\", \"y\"], \"s\": [1, 0.5, 0]}\n\
         {\"q\": \"b\", \"neg\": [\"z\", \"w\", \"v\"], \"s\": [2, 1, \"0.25\"]}\n",
    );
    for i in 0..4 {
        rows.push_str(&format!(
            "{{\"q\": \"f{i}\", \"neg\": [\"p\", \"q\"], \"s\": [1, 1, 1]}}\n"
        ));
    }
    // Past the rows the checker reads: a null negative.
    rows.push_str("{\"q\": \"c\", \"neg\": [\"u\", null], \"s\": [1, 1, 1]}\n");
    std::fs::write(tmp.path().join("d.jsonl"), &rows).unwrap();
    let src = |skip: bool| {
        format!("data d = jsonl(\"d.jsonl\", skip_bad_rows: {skip}) {{ query: col(\"q\"), neg: take(col(\"neg\"), 2), score: take(col(\"s\"), 3) }}\n")
    };
    let p = checked(tmp.path(), &src(true));
    let ds = load(&p, "d", &LoadOptions::default()).unwrap();
    assert_eq!((ds.len(), ds.skipped), (6, 1));
    assert_eq!(ds.examples[1].texts, ["b", "z", "w"]);
    assert_eq!(
        ds.examples[1].label,
        Some(Label::Scores(vec![2.0, 1.0, 0.25]))
    );
    let p = checked(tmp.path(), &src(false));
    let (line, group, message) = bad_row(load(&p, "d", &LoadOptions::default()).unwrap_err());
    assert_eq!((line, group), (7, None));
    assert!(
        message.contains("element 1 of the list is null"),
        "{message}"
    );
    // In the rows the checker reads, the same null is a check error.
    std::fs::write(
        tmp.path().join("d.jsonl"),
        rows.lines().rev().collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    assert!(codes(tmp.path(), &src(true)).contains(&"bad-list".to_string()));
}

#[test]
fn binary_text_must_be_utf8_and_scores_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let src = |skip: bool| {
        format!(
            "data d = parquet(\"{}\", skip_bad_rows: {skip}) {{ sentence1: col(\"text\"), sentence2: col(\"n\"), score: col(\"score\") }}\n",
            fixtures().join("odd.parquet").display()
        )
    };
    // A binary column holding UTF-8 reads as text; integers as their
    // digits.
    let p = checked(tmp.path(), &src(true));
    let ds = load(&p, "d", &LoadOptions::default()).unwrap();
    // Row 2 is not UTF-8 and row 3's score is NaN: both bad rows; rows 1
    // and 4 remain.
    assert_eq!(ds.skipped, 2);
    assert_eq!(ds.examples[0].texts, ["plain", "1"]);
    assert_eq!(ds.examples[1].texts, ["last", "4"]);
    let p = checked(tmp.path(), &src(false));
    let (line, group, message) = bad_row(load(&p, "d", &LoadOptions::default()).unwrap_err());
    assert_eq!((line, group), (2, Some(0)));
    assert!(message.contains("not UTF-8"), "{message}");
}

#[test]
fn an_object_read_as_one_text_is_a_check_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "{\"q\": \"a\", \"meta\": {\"source\": \"x\"}}\n{\"q\": \"b\", \"meta\": {\"source\": \"y\"}}\n";
    std::fs::write(tmp.path().join("d.jsonl"), rows).unwrap();
    let got = codes(
        tmp.path(),
        "data d = jsonl(\"d.jsonl\") { anchor: col(\"q\"), positive: col(\"meta\") }\n",
    );
    assert!(got.contains(&"object-as-text".to_string()), "{got:?}");
}
