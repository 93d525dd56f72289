//! The formatting rules, one by one.

use super::format_source;

fn fmt(src: &str) -> String {
    let out = match format_source(src) {
        Ok(s) => s,
        Err(d) => panic!("does not parse: {d:?}"),
    };
    // Every rule is idempotent.
    assert_eq!(format_source(&out).ok().as_deref(), Some(out.as_str()));
    out
}

#[test]
fn short_chains_stay_on_one_line() {
    assert_eq!(
        fmt("model m=Transformer( \"x\" )->Pooling( mean )"),
        "model m = Transformer(\"x\") -> Pooling(mean)\n"
    );
}

#[test]
fn chains_of_three_or_long_chains_break_under_the_equals() {
    assert_eq!(
        fmt("model m = Transformer(\"x\") -> Pooling(mean) -> Normalize"),
        "model m = Transformer(\"x\")\n        -> Pooling(mean)\n        -> Normalize\n"
    );
    let long = "model sbert = Transformer(\"sentence-transformers/all-MiniLM-L6-v2\", \
                max_seq_length: 128) -> Pooling(mean)";
    assert_eq!(
        fmt(long),
        "model sbert = Transformer(\"sentence-transformers/all-MiniLM-L6-v2\", max_seq_length: 128)\n            -> Pooling(mean)\n"
    );
}

#[test]
fn long_argument_lists_break_one_argument_a_line() {
    let src = format!(
        "evaluator e = Ev(m, d, name: \"{}\", other: [1, 2])",
        "x".repeat(70)
    );
    let want = format!(
        "evaluator e = Ev(m,\n                 d,\n                 name: \"{}\",\n                 other: [1, 2])\n",
        "x".repeat(70)
    );
    assert_eq!(fmt(&src), want);
}

#[test]
fn strings_and_numbers_are_printed_as_written() {
    let src = "let a = \"q\\\"\\$x\\\\ # no\"\nlet b = [2e-5, 1E+3, 10%, -1, 0.50]\n";
    assert_eq!(
        fmt(src),
        "let a = \"q\\\"\\$x\\\\ # no\"\nlet b = [2e-5, 1E+3, 10%, -1, 0.50]\n"
    );
}

#[test]
fn consecutive_bindings_of_one_kind_align_their_equals() {
    let src = "let a = 1\nlet long_name = 2\n# a comment keeps the run\nlet bb = 3\n\nlet c = 4\nmodel m = T(\"x\") -> P\n";
    assert_eq!(
        fmt(src),
        "let a         = 1\nlet long_name = 2\n# a comment keeps the run\nlet bb        = 3\n\nlet c = 4\nmodel m = T(\"x\") -> P\n"
    );
}

#[test]
fn data_blocks_follow_the_reader_or_go_under_it() {
    assert_eq!(
        fmt("data d = tsv(\"a.tsv\"){a:col(0),b:col(1)/5.0,}limit 3"),
        "data d = tsv(\"a.tsv\") { a: col(0), b: col(1) / 5.0 } limit 3\n"
    );
    let src = "data sts_train = tsv(\"${sts}/sts-train.csv\", header: false, quoting: none) { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }\n\
               data sts_dev = tsv(\"${sts}/sts-dev.csv\", header: false, quoting: none) { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }\n";
    let want = "data sts_train = tsv(\"${sts}/sts-train.csv\", header: false, quoting: none)\n                 { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }\n\
                data sts_dev   = tsv(\"${sts}/sts-dev.csv\", header: false, quoting: none)\n                 { sentence1: col(5), sentence2: col(6), score: col(4) / 5.0 }\n";
    assert_eq!(fmt(src), want);
}

#[test]
fn column_expressions_keep_their_parentheses() {
    assert_eq!(
        fmt("data d = tsv(\"a\") { s: (col(1)+1)*2, l: map(col(\"x\"),{\"a\":0}) }"),
        "data d = tsv(\"a\") { s: (col(1) + 1) * 2, l: map(col(\"x\"), {\"a\": 0}) }\n"
    );
}

#[test]
fn trailing_commas_go_except_in_column_functions() {
    assert_eq!(
        fmt("let a = f(x, [1, 2,], {k: 1,},)"),
        "let a = f(x, [1, 2], {k: 1})\n"
    );
    // `col("a",)` is a plain call there (the checker refuses it), `col("a")`
    // a column: the comma stays.
    assert_eq!(
        fmt("data d = tsv(\"a\") { l: map(col(\"a\",), {\"x\": 0,}) }"),
        "data d = tsv(\"a\") { l: map(col(\"a\",), {\"x\": 0,}) }\n"
    );
}

#[test]
fn objectives_put_on_data_under_the_loss() {
    let src = "objective nli = MultipleNegativesRankingLoss(sbert, scale: 20.0) on nli_triplets (batch_size: 64, sampler: no_duplicates)";
    assert_eq!(
        fmt(src),
        "objective nli = MultipleNegativesRankingLoss(sbert, scale: 20.0)\n                on nli_triplets (batch_size: 64, sampler: no_duplicates)\n"
    );
    assert_eq!(
        fmt("objective o=L(m)on d(batch_size:16)"),
        "objective o = L(m) on d (batch_size: 16)\n"
    );
}

#[test]
fn train_blocks_have_one_setting_a_line() {
    let src = "train m as s { objectives: [o], epochs: 1, evaluate: e every 1 step \
               checkpoint: every 5 steps , keep 2, }";
    assert_eq!(
        fmt(src),
        "train m as s {\n  objectives: [o]\n  epochs: 1\n  evaluate: e every 1 step\n  checkpoint: every 5 steps, keep 2\n}\n"
    );
    assert_eq!(fmt("train m {  }"), "train m {}\n");
    assert_eq!(fmt("train m { # why\n}"), "train m {  # why\n}\n");
}

#[test]
fn save_and_expect() {
    assert_eq!(
        fmt("save m to\"out\"best by e . m\nexpect e.m>=0.84"),
        "save m to \"out\" best by e.m\nexpect e.m >= 0.84\n"
    );
}

#[test]
fn blank_lines_collapse_to_one_and_keep_groups() {
    let src = "\n\n# head\n\n\n\nlet a = 1\n\n\n\nlet b = 2\nlet c = 3\n\n\n";
    assert_eq!(fmt(src), "# head\n\nlet a = 1\n\nlet b = 2\nlet c = 3\n");
    let block = "train m {\n\n  epochs: 1\n\n\n  seed: 2\n\n}";
    assert_eq!(fmt(block), "train m {\n  epochs: 1\n\n  seed: 2\n}\n");
}

#[test]
fn comments_stay_where_they_were() {
    let src = "let a = 1 # one\n  # own\nlet b = f(x, # after x\n  y) # after call\n# end";
    assert_eq!(
        fmt(src),
        "let a = 1  # one\n# own\nlet b = f(x,  # after x\n          y)  # after call\n# end\n"
    );
}

#[test]
fn trailing_comments_of_consecutive_lines_align() {
    let src = "train m {\n  epochs: 1 # a\n  optimizer: AdamW(lr: 2e-5) # b\n\n  seed: 1 # c\n}";
    assert_eq!(
        fmt(src),
        "train m {\n  epochs: 1                   # a\n  optimizer: AdamW(lr: 2e-5)  # b\n\n  seed: 1  # c\n}\n"
    );
}

#[test]
fn own_line_comments_inside_lists_break_them() {
    assert_eq!(
        fmt("let l = [a,\n# why b\nb]"),
        "let l = [a,\n         # why b\n         b]\n"
    );
}

#[test]
fn byte_order_mark_is_kept_and_line_ends_become_newlines() {
    assert_eq!(
        fmt("\u{feff}let a = 1\r\nlet b = 2 # c\r\n"),
        "\u{feff}let a = 1\nlet b = 2  # c\n"
    );
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(fmt(""), "");
    assert_eq!(fmt("  \n\n"), "");
    assert_eq!(fmt("# only\n\n\n#  two  \n"), "# only\n\n#  two\n");
}

#[test]
fn files_that_do_not_parse_are_not_formatted() {
    let d = format_source("model m = \nlet = 3")
        .err()
        .unwrap_or_default();
    assert!(!d.is_empty());
    assert!(d.iter().all(|d| d.code == "syntax"));
    let deep = format!("let a = {}1{}", "[".repeat(100), "]".repeat(100));
    assert!(format_source(&deep).is_err());
}
