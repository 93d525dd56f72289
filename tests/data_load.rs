//! Every data source of the example pipelines loads from the shared data
//! with the row counts that data/SOURCES.md gives; bad rows are located.

use crate::common;

use std::collections::HashMap;

use stpipe::check::{check_file, check_source, Options};
use stpipe::runtime::data::{load, DataError, Label, LoadOptions};

fn shared_data_present() -> bool {
    let ok = common::repo()
        .join("../shared/data/stsbenchmark/sts-train.csv")
        .is_file();
    if !ok {
        eprintln!("skipped: ../shared/data is absent");
    }
    ok
}

fn load_all(file: &str) -> HashMap<String, stpipe::runtime::data::Dataset> {
    let f = common::repo().join("pipelines").join(file);
    let (report, p) = check_file(&f, &common::options()).unwrap();
    let p = p.unwrap_or_else(|| panic!("{}", report.to_plain()));
    p.data
        .iter()
        .map(|d| {
            let ds = load(&p, &d.name, &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{file}: {}: {e}", d.name));
            (d.name.clone(), ds)
        })
        .collect()
}

#[test]
fn sts_rows_and_scores() {
    if !shared_data_present() {
        return;
    }
    let d = load_all("sts.stp");
    assert_eq!(d["sts_train"].len(), 5749);
    assert_eq!(d["sts_dev"].len(), 1500);
    assert_eq!(d["sts_test"].len(), 1379);
    let train = &d["sts_train"];
    assert_eq!(train.text_columns, vec!["sentence1", "sentence2"]);
    let scores = train.scores().unwrap();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    // First row of sts-train.csv: score 5.000, "A plane is taking off."
    assert_eq!(train.examples[0].texts[0], "A plane is taking off.");
    assert_eq!(train.examples[0].label, Some(Label::Score(1.0)));
}

/// `normalize(col(4), 0, 5)` reads the STS scores as `col(4) / 5.0` does
/// (the seed's STSDataReader normalisation), and `normalize(x, 1, 3)` is
/// `(x - 1) / 2` on hand-made rows.
#[test]
fn normalize_rescales_scores() {
    if shared_data_present() {
        let sts = common::repo().join("../shared/data/stsbenchmark/sts-dev.csv");
        let src = |score: &str| {
            format!(
                "data s = tsv(\"{}\", header: false, quoting: none) {{ sentence1: col(5), sentence2: col(6), score: {score} }}\n",
                sts.display()
            )
        };
        let a = inline(&common::repo(), &src("normalize(col(4), 0, 5)"));
        let b = inline(&common::repo(), &src("col(4) / 5.0"));
        let (a, b) = (
            load(&a, "s", &LoadOptions::default())
                .unwrap()
                .scores()
                .unwrap(),
            load(&b, "s", &LoadOptions::default())
                .unwrap()
                .scores()
                .unwrap(),
        );
        assert_eq!(a.len(), 1500);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("p.tsv"), "a\tb\t1\nc\td\t2.5\ne\tf\t3\n").unwrap();
    let p = inline(
        tmp.path(),
        "data s = tsv(\"p.tsv\", header: false) { sentence1: col(0), sentence2: col(1), score: normalize(col(2), 1, 3) }\n",
    );
    let scores = load(&p, "s", &LoadOptions::default())
        .unwrap()
        .scores()
        .unwrap();
    assert_eq!(scores, vec![0.0, 0.75, 1.0]);
}

#[test]
fn nli_pairs_triplets_mrpc_and_parallel() {
    if !shared_data_present() {
        return;
    }
    let d = load_all("multitask.stp");
    assert_eq!(d["nli_pairs"].len(), 9842);
    let classes = d["nli_pairs"].classes().unwrap();
    assert!(classes.iter().all(|c| (0..3).contains(c)));
    let t = &d["nli_triplets"];
    assert_eq!(t.text_columns, vec!["anchor", "positive", "negative"]);
    // SOURCES.md: grouping by premise gives about 2,900 triplets.
    assert!((2500..3500).contains(&t.len()), "{} triplets", t.len());
    assert!(t.examples.iter().all(|e| e.texts[1] != e.texts[2]));
    assert_eq!(d["mrpc_train"].len(), 3668);
    assert_eq!(d["mrpc_dev"].len(), 408);

    let d = load_all("distill.stp");
    assert_eq!(d["parallel_train"].len(), 5749);
    assert_eq!(d["parallel_train"].text_columns, vec!["english", "german"]);
    assert_eq!(d["parallel_dev"].len(), 1000);
}

fn inline(dir: &std::path::Path, body: &str) -> stpipe::check::Pipeline {
    let opts = Options {
        env: HashMap::new(),
        ..common::options()
    };
    let (report, p) = check_source("p.stp", body.to_string(), dir, &opts);
    p.unwrap_or_else(|| panic!("{}", report.to_plain()))
}

#[test]
fn bad_rows_stop_with_the_line_or_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("pairs.tsv"),
        // The checker peeks at the first rows only: the bad row comes later.
        "a\tb\t0.5\na\tb\t0.5\na\tb\t0.5\na\tb\t0.5\na\tb\t0.5\na\tb\t0.5\n\
         c\td\tnot-a-number\ne\tf\t1.0\n",
    )
    .unwrap();
    let p = inline(
        tmp.path(),
        "data pairs = tsv(\"pairs.tsv\", header: false) { sentence1: col(0), sentence2: col(1), score: col(2) / 5.0 }\n",
    );
    let err = load(&p, "pairs", &LoadOptions::default()).unwrap_err();
    match &err {
        DataError::BadRow { line, message, .. } => {
            assert_eq!(*line, 7);
            assert!(
                message.contains("`not-a-number` is not a number"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let ds = load(
        &p,
        "pairs",
        &LoadOptions {
            skip_bad_rows: true,
            max_rows: None,
        },
    )
    .unwrap();
    assert_eq!((ds.len(), ds.skipped), (7, 1));
    let capped = load(
        &p,
        "pairs",
        &LoadOptions {
            skip_bad_rows: true,
            max_rows: Some(1),
        },
    )
    .unwrap();
    assert_eq!(capped.len(), 1);

    // The source itself may ask for bad rows to be skipped.
    let p = inline(
        tmp.path(),
        "data pairs = tsv(\"pairs.tsv\", header: false, skip_bad_rows: true) { sentence1: col(0), sentence2: col(1), score: col(2) / 5.0 }\n",
    );
    let ds = load(&p, "pairs", &LoadOptions::default()).unwrap();
    assert_eq!((ds.len(), ds.skipped), (7, 1));
}
