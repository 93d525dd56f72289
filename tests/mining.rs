//! `mine_hard_negatives` against sentence-transformers' `mine_hard_negatives`
//! on real data (Cranfield, all-MiniLM-L6-v2), and the transforms it is used
//! with (`split`, `relevant_pairs`). The fixture is written by
//! `scripts/make_mining_fixture.py`, which reads the data as the pipeline
//! below does.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use stpipe::runtime::data::{load_with, Dataset, Label, LoadEnv, LoadOptions};

use crate::common;

/// The pipeline the fixture script mirrors: its `top` and `wide` settings.
fn pipeline(cran: &Path) -> String {
    format!(
        r#"
model m = Transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length: 128) -> Pooling(mean)
data queries = smart("{c}/cran.qry", ids: position) {{ id: col("id"), text: col("text") }}
data docs = smart("{c}/cran.all.1400") {{ id: col("id"), text: col("text") }} limit 300
data qrels = csv("{c}/cranqrel", delimiter: " ", collapse: true, header: false, quoting: none)
             {{ query: col(0), doc: col(1), relevance: col(2) }}
data pairs = relevant_pairs(queries, corpus: docs, relevant: qrels)
data top = mine_hard_negatives(pairs, model: m, corpus: docs, num_negatives: 2, range_min: 1,
                               range_max: 30, relative_margin: 0.05, max_score: 0.9,
                               output: labeled_pair, output_scores: true)
data wide = mine_hard_negatives(pairs, model: m, corpus: docs, num_negatives: 3,
                                absolute_margin: 0.02, min_score: 0.2,
                                output: labeled_pair, output_scores: true)
"#,
        c = cran.display()
    )
}

fn short(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

type Row = (String, String, f32);

fn rows_of(ds: &Dataset) -> Vec<Row> {
    ds.examples
        .iter()
        .map(|e| {
            let Some(Label::Score(s)) = e.label else {
                panic!("labeled_pair rows with scores carry a float score");
            };
            (short(&e.texts[0]), short(&e.texts[1]), s)
        })
        .collect()
}

/// The rows equal Python's, in order, scores to 1e-5; two rows may trade
/// places only where their scores tie to within that (float rounding
/// decides the order of near-ties differently in torch and in gemm).
fn assert_same_rows(name: &str, ours: &[Row], theirs: &[Row]) {
    assert_eq!(ours.len(), theirs.len(), "{name}: row counts differ");
    let mut swapped = 0;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a.0, b.0, "{name}: row {i} has another query");
        assert!(
            (a.2 - b.2).abs() < 1e-5,
            "{name}: row {i}: score {} vs {}",
            a.2,
            b.2
        );
        if a.1 != b.1 {
            let near = |j: usize| {
                theirs
                    .get(j)
                    .is_some_and(|t| t.1 == a.1 && (t.2 - a.2).abs() < 1e-5)
            };
            assert!(
                near(i + 1) || (i > 0 && near(i - 1)),
                "{name}: row {i}: another text ({a:?} vs {b:?})"
            );
            swapped += 1;
        }
    }
    assert!(
        swapped * 100 <= ours.len(),
        "{name}: {swapped} near-tie swaps"
    );
}

#[test]
fn mined_rows_equal_sentence_transformers() {
    let Some(model_dir) = common::minilm_dir() else {
        return;
    };
    let cran = common::shared_dir().join("data/cranfield");
    if !cran.is_dir() {
        eprintln!("SKIPPED: {} is absent", cran.display());
        return;
    }
    let fixture = common::repo().join("tests/fixtures/mining/cranfield-minilm.tsv");
    let mut want: HashMap<String, Vec<Row>> = HashMap::new();
    for line in std::fs::read_to_string(&fixture).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        want.entry(f[0].to_string()).or_default().push((
            f[1].to_string(),
            f[2].to_string(),
            f[3].parse().unwrap(),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options();
    opts.models.paths = vec![model_dir.parent().unwrap().to_path_buf()];
    let (report, p) = stpipe::check::check_source("mine.stp", pipeline(&cran), dir.path(), &opts);
    let p = p.unwrap_or_else(|| panic!("{:?}", report.diags));
    let m = p.model("m").unwrap();
    let enc = stpipe::runtime::train::build::build_model(m, &opts.models, dir.path(), 1).unwrap();
    let models = HashMap::from([("m".to_string(), enc)]);
    let env = LoadEnv {
        models: Some(&models),
        ..LoadEnv::default()
    };
    for name in ["top", "wide"] {
        let ds = load_with(&p, name, &LoadOptions::default(), &env).unwrap();
        assert_eq!(ds.text_columns, ["query", "document"]);
        assert_eq!(ds.label_column.as_deref(), Some("score"));
        assert_same_rows(name, &rows_of(&ds), &want[name]);
    }
}

/// Splits partition a source; relevant pairs follow the judgements of the
/// queries a split keeps.
#[test]
fn split_parts_partition_and_select_judgements() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut q = String::from("id\ttext\n");
    let mut docs = String::from("id\ttext\n");
    let mut rel = String::from("query\tdoc\trelevance\n");
    for i in 0..20 {
        q.push_str(&format!("q{i}\tquery {i}\n"));
        docs.push_str(&format!("d{i}\tdocument {i}\n"));
        rel.push_str(&format!(
            "q{i}\td{i}\t1\nq{i}\td{}\t-1\nq{i}\tmissing\t1\n",
            (i + 1) % 20
        ));
    }
    std::fs::write(d.join("q.tsv"), q).unwrap();
    std::fs::write(d.join("docs.tsv"), docs).unwrap();
    std::fs::write(d.join("rel.tsv"), rel).unwrap();
    let src = r#"
data queries = tsv("q.tsv")
data docs = tsv("docs.tsv")
data rel = tsv("rel.tsv")
data fit = split(queries, test_size: 0.25, part: training, seed: 3)
data held = split(queries, test_size: 0.25, part: test, seed: 3)
data pairs = relevant_pairs(fit, corpus: docs, relevant: rel)
"#;
    let (report, p) = stpipe::check::check_source("s.stp", src.into(), d, &common::options());
    let p = p.unwrap_or_else(|| panic!("{:?}", report.diags));
    let load = |n: &str| stpipe::runtime::data::load(&p, n, &LoadOptions::default()).unwrap();
    let (fit, held, pairs) = (load("fit"), load("held"), load("pairs"));
    assert_eq!((fit.len(), held.len()), (15, 5));
    let ids =
        |ds: &Dataset| -> Vec<String> { ds.examples.iter().map(|e| e.texts[0].clone()).collect() };
    let (a, b) = (ids(&fit), ids(&held));
    assert!(a.iter().all(|x| !b.contains(x)));
    // File order is kept within a part.
    let pos = |x: &String| x[1..].parse::<usize>().unwrap();
    assert!(a.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));
    // One pair per relevant judgement of a kept query; the -1 rows and the
    // unknown document are left out.
    assert_eq!(pairs.text_columns, ["query", "document"]);
    assert_eq!(pairs.len(), 15);
    for (e, id) in pairs.examples.iter().zip(&a) {
        assert_eq!(e.texts[0], format!("query {}", pos(id)));
        assert_eq!(e.texts[1], format!("document {}", pos(id)));
    }
}
