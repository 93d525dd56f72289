//! Every reader reads gzip-compressed files (by magic bytes, whatever the
//! name), with the same rows and the same located diagnostics as the
//! plain file; a damaged or misnamed `.gz` is a diagnostic that says so.

use crate::common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use stpipe::check::{check_source, Options};
use stpipe::runtime::data::{load, DataError, LoadOptions};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn check(dir: &Path, body: &str) -> (stpipe::diag::Report, Option<stpipe::check::Pipeline>) {
    let opts = Options {
        env: HashMap::new(),
        ..common::options()
    };
    check_source("p.stp", body.to_string(), dir, &opts)
}

fn texts(ds: &stpipe::runtime::data::Dataset) -> Vec<String> {
    ds.examples.iter().map(|e| format!("{e:?}")).collect()
}

#[test]
fn compressed_sources_read_as_the_plain_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tsv = common::scored_pairs(300, 3);
    let jsonl: String = (0..50)
        .map(|i| format!("{{\"query\": \"q{i} \\u00e9\", \"answer\": \"a{i}\"}}\n"))
        .collect();
    std::fs::write(dir.join("pairs.tsv"), &tsv).unwrap();
    std::fs::write(dir.join("pairs.tsv.gz"), gz(tsv.as_bytes())).unwrap();
    // Compressed, and not named so: read by its magic bytes.
    std::fs::write(dir.join("pairs-gz.tsv"), gz(tsv.as_bytes())).unwrap();
    std::fs::write(dir.join("qa.jsonl"), &jsonl).unwrap();
    std::fs::write(dir.join("qa.jsonl.gz"), gz(jsonl.as_bytes())).unwrap();
    let pairs = |f: &str| {
        format!("tsv(\"{f}\", header: false, quoting: none) {{ sentence1: col(0), sentence2: col(1), score: col(2) }}")
    };
    let qa =
        |f: &str| format!("jsonl(\"{f}\") {{ anchor: col(\"query\"), positive: col(\"answer\") }}");
    let body = format!(
        "data a = {}\ndata b = {}\ndata c = {}\ndata d = {}\ndata e = {}\n",
        pairs("pairs.tsv"),
        pairs("pairs.tsv.gz"),
        pairs("pairs-gz.tsv"),
        qa("qa.jsonl"),
        qa("qa.jsonl.gz")
    );
    let (report, p) = check(dir, &body);
    let p = p.unwrap_or_else(|| panic!("{}", report.to_plain()));
    let opts = LoadOptions::default();
    let plain = load(&p, "a", &opts).unwrap();
    assert_eq!(plain.len(), 300);
    for name in ["b", "c"] {
        assert_eq!(
            texts(&load(&p, name, &opts).unwrap()),
            texts(&plain),
            "{name}"
        );
    }
    let j = load(&p, "d", &opts).unwrap();
    assert_eq!(j.len(), 50);
    assert_eq!(texts(&load(&p, "e", &opts).unwrap()), texts(&j));
}

#[test]
fn bad_rows_damaged_and_misnamed_gzip_are_located_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = |f: &str| {
        format!("data d = tsv(\"{f}\", header: false, quoting: none) {{ sentence1: col(0), sentence2: col(1), score: col(2) }}\n")
    };

    // A bad row past the peek: the same line as in the plain file.
    let mut rows = common::scored_pairs(40, 1);
    rows.push_str("a cat\ta dog\tnot-a-number\n");
    std::fs::write(dir.join("bad.tsv.gz"), gz(rows.as_bytes())).unwrap();
    let (r, p) = check(dir, &src("bad.tsv.gz"));
    let p = p.unwrap_or_else(|| panic!("{}", r.to_plain()));
    match load(&p, "d", &LoadOptions::default()).unwrap_err() {
        DataError::BadRow { line, message, .. } => {
            assert_eq!(line, 41);
            assert!(message.contains("not-a-number"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Plain text named `.gz`: refused at check time, with the reason.
    std::fs::write(dir.join("plain.tsv.gz"), rows.as_bytes()).unwrap();
    let (r, p) = check(dir, &src("plain.tsv.gz"));
    assert!(p.is_none());
    let d = r
        .diags
        .iter()
        .find(|d| d.code == "unreadable-file")
        .unwrap_or_else(|| panic!("{}", r.to_plain()));
    assert!(d.message.contains("gzip magic bytes"), "{}", d.message);
    assert!(d.help.as_deref().unwrap_or_default().contains("gzip -t"));

    // Cut after the part the checker reads: found by the run, as gzip damage.
    let big: String = (0..60_000)
        .map(|i| {
            format!(
                "s{i} {}\tt{} x\t0.{}\n",
                i * 7919 % 10007,
                i * 31 % 977,
                i % 10
            )
        })
        .collect();
    let full = gz(big.as_bytes());
    std::fs::write(dir.join("cut.tsv.gz"), &full[..full.len() * 9 / 10]).unwrap();
    let (r, p) = check(dir, &src("cut.tsv.gz"));
    let p = p.unwrap_or_else(|| panic!("{}", r.to_plain()));
    let err = load(&p, "d", &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(
        shown.contains("cut.tsv.gz") && shown.contains("gzip -t"),
        "{shown}"
    );
}
