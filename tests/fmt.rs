//! `stpipe fmt`: the example pipelines are formatted, formatting is
//! idempotent, keeps every comment, and never changes what `check` says
//! about a file; the command line rewrites, checks (with a diff) and
//! refuses files that do not parse.
//!
//! A longer run of the layout fuzzer:
//!
//! ```text
//! STPIPE_FUZZ_SECS=120 cargo test --test fmt -- --nocapture
//! ```
//!
//! `STPIPE_FUZZ_SEED` picks the seed; a failing input is written to
//! `target/fmt-case.stp`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stpipe::syntax::format::format_source;

fn stpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stpipe"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .unwrap()
}

/// Every `.stp` file under `dir`, recursively, sorted.
fn stp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "stp") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The example pipelines and every test fixture, as text.
fn corpus() -> Vec<(PathBuf, String)> {
    ["pipelines", "tests/invalid", "tests/fixtures"]
        .iter()
        .flat_map(|d| stp_files(&common::repo().join(d)))
        .map(|f| {
            let s = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            (f, s)
        })
        .collect()
}

#[test]
fn example_pipelines_are_formatted() {
    let mut args = vec!["fmt", "--check"];
    let files: Vec<String> = stp_files(&common::repo().join("pipelines"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(files.len() >= 5);
    args.extend(files.iter().map(String::as_str));
    let o = stpipe(&args);
    assert!(
        o.status.success(),
        "`stpipe fmt --check pipelines/*.stp` failed:\n{}",
        common::output_text(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn formatting_twice_changes_nothing_the_second_time() {
    let mut formatted = 0;
    for (f, src) in corpus() {
        let Ok(once) = format_source(&src) else {
            continue;
        };
        let twice = format_source(&once).unwrap_or_else(|d| {
            panic!(
                "{}: the formatted text does not parse: {d:?}\n{once}",
                f.display()
            )
        });
        assert_eq!(once, twice, "{}: not idempotent", f.display());
        formatted += 1;
    }
    assert!(formatted >= 50, "only {formatted} fixtures parse");
}

/// `(code, severity, message)` of every diagnostic `check` gives, in
/// order. Line numbers in messages (`already defined (line 3)`) are
/// places, like spans, and may move.
fn verdict(dir: &Path, text: &str) -> Vec<(String, String, String)> {
    let (report, _) =
        stpipe::check::check_source("x.stp", text.to_string(), dir, &common::options());
    report
        .diags
        .iter()
        .map(|d| {
            (
                d.code.to_string(),
                format!("{:?}", d.level),
                without_line_numbers(&d.message),
            )
        })
        .collect()
}

fn without_line_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("line ") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

use common::Rng;

/// The tokens of a pipeline text (comments are tokens too, whitespace is
/// dropped), good enough to re-lay a file out: strings whole, numbers
/// with their exponent and `%`, names, two-character operators.
fn tokens(s: &str) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let start = i;
        match c[i] {
            ' ' | '\t' | '\r' | '\n' | '\u{feff}' => {
                i += 1;
                continue;
            }
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' && c[i] != '\n' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i = (i + 1).min(c.len());
            }
            '0'..='9' => {
                while i < c.len()
                    && (c[i].is_ascii_alphanumeric()
                        || c[i] == '.'
                        || c[i] == '%'
                        || (matches!(c[i], '-' | '+') && matches!(c[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
            }
            x if x.is_alphanumeric() || x == '_' => {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            _ => {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                i += if ["->", ">=", "<="].contains(&two.as_str()) {
                    2
                } else {
                    1
                };
            }
        }
        out.push(c[start..i].iter().collect());
    }
    out
}

/// The same tokens laid out anew: random whitespace between them, new
/// trailing and own-line comments, optional and trailing commas added or
/// dropped, now and then a token duplicated or dropped.
fn relayout(rng: &mut Rng, base: &str) -> String {
    let mut t = tokens(base);
    for _ in 0..rng.below(3) {
        let i = rng.below(t.len());
        match rng.below(4) {
            _ if t.is_empty() => {}
            0 if t[i] == "," => {
                t.remove(i);
            }
            1 if matches!(t[i].as_str(), ")" | "]" | "}") => t.insert(i, ",".into()),
            2 => {
                let x = t[i].clone();
                t.insert(i, x);
            }
            _ => {
                t.remove(i);
            }
        }
    }
    const GAPS: &[&str] = &[" ", " ", " ", "\n", "  \t", "\r\n", "\n\n\n", "\n    "];
    let mut out = String::new();
    for (k, tok) in t.iter().enumerate() {
        out.push_str(tok);
        if tok.starts_with('#') {
            out.push('\n');
        }
        match rng.below(12) {
            0 => out.push_str(&format!("  # c{k}\n")),
            1 => out.push_str(&format!("\n  # own {k}\n")),
            _ => out.push_str(GAPS[rng.below(GAPS.len())]),
        }
    }
    out
}

#[test]
fn formatting_never_changes_what_check_says() {
    let (secs, seed) = common::fuzz_budget(0x5eed_f0f0_1234_0001);
    let corpus = corpus();
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut cases, mut parsed) = (0usize, 0usize);
    let mut k = 0;
    while k < corpus.len() || Instant::now() < deadline {
        let (path, base) = &corpus[k % corpus.len()];
        // The corpus itself first, then layouts of it.
        let text = if k < corpus.len() {
            base.clone()
        } else {
            relayout(&mut rng, base)
        };
        k += 1;
        cases += 1;
        let Ok(once) = format_source(&text) else {
            continue;
        };
        parsed += 1;
        let dir = path.parent().unwrap();
        let keep = || {
            let out = common::repo().join("target/fmt-case.stp");
            let _ = std::fs::write(&out, &text);
            out.display().to_string()
        };
        assert!(
            stpipe::syntax::parse(&once.replace('\u{feff}', "")).is_ok(),
            "the formatted text does not parse (input in {})",
            keep()
        );
        assert_eq!(
            verdict(dir, &text),
            verdict(dir, &once),
            "check says something else after formatting (input in {})",
            keep()
        );
        assert_eq!(
            format_source(&once).ok().as_deref(),
            Some(once.as_str()),
            "not idempotent (input in {})",
            keep()
        );
    }
    println!("fmt fuzz: {cases} cases, {parsed} parsed, seed {seed}");
    assert!(parsed > corpus.len());
}

/// Comment texts in order, each with whether it is alone on its line.
fn comments(src: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for line in src.lines() {
        let mut in_str = false;
        let mut escape = false;
        for (i, c) in line.char_indices() {
            if in_str {
                if escape {
                    escape = false;
                } else if c == '\\' {
                    escape = true;
                } else if c == '"' {
                    in_str = false;
                }
            } else if c == '"' {
                in_str = true;
            } else if c == '#' {
                let alone = line[..i].trim().is_empty();
                out.push((line[i..].trim_end().to_string(), alone));
                break;
            }
        }
    }
    out
}

/// Comments in every construct: statements, chains, arguments, lists,
/// maps, column blocks and expressions, train blocks, save and expect.
const COMMENTED: &str = r#"# file header
let lr = 2e-5 # trailing a let
# own-line before a model
model m = Transformer("x", # after the first argument
                      # own-line inside arguments
                      max_seq_length: 128) # after the base
          -> Pooling(mean) # in the chain
          # own-line in the chain
          -> Normalize
data d = tsv("a#b.tsv", header: false) # after the reader
         { a: col(0), # after a column
           # own-line in the block
           score: col(4) # inside an expression
                  / 5.0,
           label: map(col(1), {"x": 0, # in a map
                               "y": 1}) } limit 10 # after the limit
objective o = CosineSimilarityLoss(m) on d (batch_size: 16, # in options
                                           shuffle: true)
evaluator e = EmbeddingSimilarity(m, d) # evaluator
train m { # after the brace
  # own-line first in the block
  objectives: [o, # in a list
               o]
  optimizer: AdamW(lr: lr) # a setting
  evaluate: e every 10 steps # evaluate

  # own-line after a blank line
  checkpoint: every 5 steps, keep 2 # checkpoint
  # own-line last in the block
} # after the block
save m to "out" best by e.spearman_cosine # save
expect e.spearman_cosine >= 0.5 # expect
# file footer
"#;

#[test]
fn every_comment_survives_in_order() {
    let out = format_source(COMMENTED).unwrap();
    assert_eq!(comments(COMMENTED), comments(&out), "\n{out}");
    assert_eq!(format_source(&out).unwrap(), out);
    // The layout depends on the tokens and comments, not on the input's
    // indentation or spacing.
    let flat: String = COMMENTED
        .lines()
        .map(|l| l.trim_start().replace(": ", " : ") + "\n")
        .collect();
    assert_eq!(format_source(&flat).unwrap(), out);
}

#[test]
fn check_prints_a_diff_and_fmt_rewrites() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("p.stp");
    let ugly = "let a=1\nmodel m=T(\"x\")->P # keep me\n";
    std::fs::write(&f, ugly).unwrap();
    let path = f.display().to_string();

    let o = stpipe(&["fmt", "--check", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", common::output_text(&o));
    let diff = String::from_utf8_lossy(&o.stdout);
    assert!(diff.contains(&format!("--- a/{path}")), "{diff}");
    assert!(diff.lines().any(|l| l == "-let a=1"), "{diff}");
    assert!(diff.lines().any(|l| l == "+let a = 1"), "{diff}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), ugly);

    let o = stpipe(&["fmt", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", common::output_text(&o));
    let fixed = std::fs::read_to_string(&f).unwrap();
    assert_eq!(fixed, "let a = 1\nmodel m = T(\"x\") -> P  # keep me\n");

    let o = stpipe(&["fmt", "--check", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", common::output_text(&o));
    assert!(o.stdout.is_empty());
    // An unchanged file is not rewritten.
    let o = stpipe(&["fmt", &path]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
}

#[test]
fn files_that_do_not_parse_or_cannot_be_read_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.stp");
    let bad = "model m = Transformer(\"x\"\nlet a  =  1\n";
    std::fs::write(&f, bad).unwrap();
    let path = f.display().to_string();
    for args in [vec!["fmt", &path], vec!["fmt", "--check", &path]] {
        let o = stpipe(&args);
        assert_eq!(o.status.code(), Some(1), "{}", common::output_text(&o));
        let text = common::output_text(&o);
        assert!(
            text.contains("stpipe::syntax") && text.contains("expected"),
            "{text}"
        );
        assert_eq!(std::fs::read_to_string(&f).unwrap(), bad);
    }
    let missing = tmp.path().join("missing.stp").display().to_string();
    let o = stpipe(&["fmt", &missing, &path]);
    assert_eq!(o.status.code(), Some(2), "{}", common::output_text(&o));
    assert!(common::output_text(&o).contains("cannot read"));
    let latin1 = tmp.path().join("latin1.stp");
    std::fs::write(&latin1, b"let a = \"caf\xe9\"\n").unwrap();
    let o = stpipe(&["fmt", &latin1.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", common::output_text(&o));
    assert!(common::output_text(&o).contains("not UTF-8"));
}
