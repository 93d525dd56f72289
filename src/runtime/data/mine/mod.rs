//! `mine_hard_negatives`: (anchor, positive) pairs become triplets,
//! n-tuples or labelled pairs with hard negatives found by a model, with
//! the options and semantics of sentence-transformers 6's
//! `util.mine_hard_negatives` (exact search; no cross-encoder rescoring).
//!
//! Queries are the distinct anchors (first appearance order), each with
//! its distinct positives; the corpus is the `corpus` source's texts
//! followed by every positive, each distinct text once. Both sides are
//! encoded once, normalized, and scored by cosine similarity
//! ([`select`]). The run writes the result to its run directory as JSON
//! Lines (`data/NAME.jsonl`) and reuses it while the step's fingerprint
//! (model, data, settings) is unchanged.

pub mod rows;
pub mod select;

use std::collections::HashMap;

use super::{DataError, Dataset, TransformCx, TransformEntry, TransformInput};
use crate::check::types::{ColType, Column};
use crate::data::ArgProblem;
use crate::registry::choices::{MinedFormat, NegativeSampling};
use crate::registry::{maybe, opt, req, ArgType::*, Args, Component, Family, Rule};
use crate::runtime::eval::{encode, side_prompt, Truncate, DOCUMENT_PROMPTS, QUERY_PROMPTS};
use crate::runtime::search::unit_rows;
use select::Settings;

pub const ENTRY: TransformEntry = TransformEntry {
    spec: Component {
        name: "mine_hard_negatives",
        family: Family::Transform,
        doc: "Adds hard negatives to (anchor, positive) pairs, as sentence-transformers' `util.mine_hard_negatives`: the model embeds the distinct anchors and the corpus (the `corpus` source's texts and every positive), and each anchor's most similar texts that are not its positives, within the rank window [range_min, range_max) and past the margin and score filters, become its negatives. Exact search over blocks of queries. Produces (anchor, positive, negative) triplets, (anchor, positive, negative_1 .. negative_n) tuples or (anchor, text, label) pairs, columns named after the input's. The result is written to the run directory as JSON Lines and reused while model, data and settings are unchanged.",
        args: &[
            req("source", Data, "the (anchor, positive) pairs"),
            req("model", Model, "the model that embeds anchors and corpus"),
            maybe("anchor", ColumnName, "the anchor column (default: the first text column)"),
            maybe("positive", ColumnName, "the positive column (default: the second text column)"),
            maybe("corpus", Data, "more candidate texts, besides the positives"),
            maybe("corpus_column", ColumnName, "the corpus column (default: `text`, or the corpus's only text column)"),
            opt("num_negatives", Count, "3", "negatives per anchor").at_least(1.0),
            opt("range_min", Count, "0", "the most similar candidates skipped (likely unlabelled positives)"),
            maybe("range_max", Count, "candidates considered per anchor (default: range_min + num_negatives + the most positives of an anchor, with 10 x num_negatives when a margin or max_score filters)"),
            maybe("max_score", Float, "candidates more similar than this are not negatives"),
            maybe("min_score", Float, "candidates less similar than this are not negatives"),
            maybe("absolute_margin", Float, "a negative's similarity stays this far below the anchor's least similar positive"),
            maybe("margin", Float, "`absolute_margin` under its former name"),
            maybe("relative_margin", Float, "a negative's similarity stays below positive - abs(positive) x this"),
            opt("sampling", Choice(NegativeSampling::NAMES), "top", "the most similar negatives, or a seeded random draw among those that pass"),
            opt("output", Choice(MinedFormat::NAMES), "triplet", "the rows produced"),
            opt("output_scores", Bool, "false", "labeled_pair rows carry the similarity as `score` instead of a 0/1 `label`; triplet and n_tuple rows end with a `score` list, the positive's similarity then each negative's (teacher scores for MarginMSELoss and DistillKLDivLoss)"),
            opt("include_positives", Bool, "false", "keep the positives among the candidates (n_tuple only: a full ranking, e.g. for a Reranking evaluation)"),
            maybe("query_prompt", Str, "prepended to the anchors (default: the model's `query` prompt, else its default prompt)"),
            maybe("corpus_prompt", Str, "prepended to the corpus (default: the model's `document`, `passage` or `corpus` prompt, else its default prompt)"),
            opt("batch_size", Count, "32", "texts encoded at a time").at_least(1.0),
            maybe("chunk_size", Count, "anchors scored against the whole corpus at a time (default: as many as keep one block of scores within 64 MiB)").at_least(1.0),
            opt("seed", Count, "42", "the seed of random sampling"),
        ],
        rules: &[
            Rule::OneOf(&["absolute_margin", "margin"]),
            Rule::Less("range_min", "range_max"),
        ],
        ..Component::BASE
    },
    columns: Some(columns),
    apply,
    recorded: true,
};

/// The columns mining reads and the names of those it writes.
struct Names {
    anchor: String,
    positive: String,
    corpus: Option<String>,
    output: MinedFormat,
}

impl Names {
    fn layout(&self, num_negatives: usize, scores: bool) -> rows::Layout<'_> {
        rows::Layout {
            anchor: &self.anchor,
            positive: &self.positive,
            format: self.output,
            scores,
            num_negatives,
        }
    }
}

fn problem(arg: &'static str, message: String, help: impl Into<String>) -> ArgProblem {
    ArgProblem {
        arg,
        code: "bad-mining",
        message,
        help: help.into(),
    }
}

fn arg_bug(e: crate::registry::ArgError) -> ArgProblem {
    problem(
        "source",
        e.to_string(),
        "this is an stpipe bug; please report it",
    )
}

/// The columns read and written, from the arguments and the text columns
/// of the pairs and the corpus (at check time and at run time alike).
fn names(args: &Args, pairs: &[String], corpus: Option<&[String]>) -> Result<Names, ArgProblem> {
    let pick = |arg: &'static str, nth: usize| -> Result<String, ArgProblem> {
        match args.opt_str(arg).map_err(arg_bug)? {
            Some(c) if pairs.iter().any(|p| p == c) => Ok(c.to_string()),
            Some(c) => Err(problem(
                arg,
                format!("the pairs have no text column `{c}`"),
                format!("their text columns are: {}", pairs.join(", ")),
            )),
            None => pairs.get(nth).cloned().ok_or_else(|| {
                problem(
                    "source",
                    format!("mining needs (anchor, positive) pairs, and the source has {} text column(s)", pairs.len()),
                    "give a source with an anchor and a positive text column",
                )
            }),
        }
    };
    let (anchor, positive) = (pick("anchor", 0)?, pick("positive", 1)?);
    if anchor == positive {
        return Err(problem(
            "positive",
            format!("the anchor and the positive are the same column `{anchor}`"),
            "name two different columns with `anchor:` and `positive:`",
        ));
    }
    let corpus = match corpus {
        None => None,
        Some(cols) => Some(match args.opt_str("corpus_column").map_err(arg_bug)? {
            Some(c) if cols.iter().any(|x| x == c) => c.to_string(),
            Some(c) => {
                return Err(problem(
                    "corpus_column",
                    format!("the corpus has no text column `{c}`"),
                    format!("its text columns are: {}", cols.join(", ")),
                ))
            }
            None if cols.iter().any(|x| x == "text") => "text".to_string(),
            None if cols.len() == 1 => cols[0].clone(),
            None => {
                return Err(problem(
                    "corpus",
                    format!(
                        "the corpus has no `text` column and {} text columns",
                        cols.len()
                    ),
                    "say which holds the documents with `corpus_column:`",
                ))
            }
        }),
    };
    let output: MinedFormat = args.choice("output").map_err(arg_bug)?;
    if args.bool("include_positives").map_err(arg_bug)? && output != MinedFormat::NTuple {
        return Err(problem(
            "include_positives",
            "`include_positives: true` keeps the ranking only with `output: n_tuple`".into(),
            "add `output: n_tuple` (sentence-transformers switches to it by itself)",
        ));
    }
    let taken = rows::Layout {
        anchor: &anchor,
        positive: &positive,
        format: output,
        scores: false,
        num_negatives: args.usize("num_negatives").map_err(arg_bug)?,
    }
    .column_names();
    for (i, c) in taken.iter().enumerate() {
        if taken[..i].contains(c) {
            return Err(problem(
                "source",
                format!("the mined rows would have two columns named `{c}`"),
                "rename the pairs' columns in their source's column block",
            ));
        }
    }
    Ok(Names {
        anchor,
        positive,
        corpus,
        output,
    })
}

fn text_names(cols: &[Column]) -> Vec<String> {
    cols.iter()
        .filter(|c| c.name != "label" && c.name != "score")
        .map(|c| c.name.clone())
        .collect()
}

fn columns(t: &TransformInput) -> Result<Vec<Column>, ArgProblem> {
    let src = t.source("source").ok_or_else(|| {
        problem(
            "source",
            "the pairs are not a checked data source".into(),
            "name a data source declared before this one",
        )
    })?;
    let corpus = t.source("corpus").map(|c| text_names(&c.columns));
    let n = names(t.args, &text_names(&src.columns), corpus.as_deref())?;
    let args = t.args;
    let (num, range_min) = (
        args.usize("num_negatives").map_err(arg_bug)?,
        args.usize("range_min").map_err(arg_bug)?,
    );
    if let Some(max) = args.opt_usize("range_max").map_err(arg_bug)? {
        if num > max.saturating_sub(range_min) {
            return Err(problem(
                "num_negatives",
                format!("{num} negatives cannot come from the {} candidates between range_min {range_min} and range_max {max}", max.saturating_sub(range_min)),
                "lower num_negatives or range_min, or raise range_max",
            ));
        }
    }
    let scores = args.bool("output_scores").map_err(arg_bug)?;
    let layout = n.layout(num, scores);
    let list_len = layout.score_list_len();
    let cols = layout.column_names();
    Ok(cols
        .iter()
        .map(|c| {
            let ty = match c.as_str() {
                "label" if n.output == MinedFormat::LabeledPair => ColType::Int,
                "score" if n.output == MinedFormat::LabeledPair => ColType::Float,
                "score" if list_len.is_some() => ColType::FloatList,
                _ => ColType::Text,
            };
            Column {
                list_len: list_len.filter(|_| ty == ColType::FloatList),
                ..Column::derived(c, ty)
            }
        })
        .collect())
}

fn settings(args: &Args) -> Result<Settings, crate::registry::ArgError> {
    let f32_of = |name: &str| -> Result<Option<f32>, crate::registry::ArgError> {
        Ok(args.opt_f64(name)?.map(|v| v as f32))
    };
    Ok(Settings {
        num_negatives: args.usize("num_negatives")?,
        range_min: args.usize("range_min")?,
        range_max: args.opt_usize("range_max")?,
        max_score: f32_of("max_score")?,
        min_score: f32_of("min_score")?,
        absolute_margin: f32_of("absolute_margin")?.or(f32_of("margin")?),
        relative_margin: f32_of("relative_margin")?,
        sampling: args.choice("sampling")?,
        seed: args.i64("seed")? as u64,
        include_positives: args.bool("include_positives")?,
        chunk: args.opt_usize("chunk_size")?,
    })
}

/// The distinct anchors, each with its distinct positives (as corpus
/// positions), and the corpus.
pub struct Problem<'d> {
    pub queries: Vec<&'d str>,
    pub positives: Vec<Vec<usize>>,
    pub corpus: Vec<&'d str>,
    /// The most pairs any anchor has (rows, duplicates counted).
    pub max_positives: usize,
}

impl<'d> Problem<'d> {
    pub fn new(pairs: &[(&'d str, &'d str)], extra: &[&'d str]) -> Problem<'d> {
        let mut corpus: Vec<&str> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for &t in extra.iter().chain(pairs.iter().map(|(_, p)| p)) {
            at.entry(t).or_insert_with(|| {
                corpus.push(t);
                corpus.len() - 1
            });
        }
        let mut queries: Vec<&str> = Vec::new();
        let mut q_at: HashMap<&str, usize> = HashMap::new();
        let mut positives: Vec<Vec<usize>> = Vec::new();
        let mut rows: Vec<usize> = Vec::new();
        for &(a, p) in pairs {
            let q = *q_at.entry(a).or_insert_with(|| {
                queries.push(a);
                positives.push(Vec::new());
                rows.push(0);
                queries.len() - 1
            });
            rows[q] += 1;
            let c = at[p];
            if !positives[q].contains(&c) {
                positives[q].push(c);
            }
        }
        Problem {
            queries,
            positives,
            corpus,
            max_positives: rows.into_iter().max().unwrap_or(0),
        }
    }
}

fn apply(cx: TransformCx) -> Result<Dataset, DataError> {
    let args = cx.args()?;
    let pairs = cx.input("source")?;
    let corpus_ds = cx
        .inputs
        .iter()
        .find(|(a, _)| *a == "corpus")
        .map(|(_, d)| d);
    let n = names(
        args,
        &pairs.text_columns,
        corpus_ds.map(|d| &d.text_columns[..]),
    )
    .map_err(|p| cx.fail(p.message, p.help))?;
    let s = settings(args)?;
    let model_name = args.str("model")?;
    let model = (cx.models)(model_name)
        .ok_or_else(|| cx.bug(&format!("model `{model_name}` is not built")))?;
    let col = |ds: &Dataset, c: &str| ds.text_columns.iter().position(|x| x == c);
    let (ai, pi) = match (col(pairs, &n.anchor), col(pairs, &n.positive)) {
        (Some(a), Some(p)) => (a, p),
        _ => return Err(cx.bug("the pairs lack the checked columns")),
    };
    let pair_texts: Vec<(&str, &str)> = pairs
        .examples
        .iter()
        .map(|e| (e.texts[ai].as_str(), e.texts[pi].as_str()))
        .collect();
    let extra: Vec<&str> = match (corpus_ds, &n.corpus) {
        (Some(d), Some(c)) => {
            let i = col(d, c).ok_or_else(|| cx.bug("the corpus lacks the checked column"))?;
            d.examples.iter().map(|e| e.texts[i].as_str()).collect()
        }
        _ => Vec::new(),
    };
    if pair_texts.is_empty() {
        return Err(cx.fail(
            format!("`{}` has no pairs to mine negatives for", pairs.name),
            "give a source with at least one row",
        ));
    }
    let pb = Problem::new(&pair_texts, &extra);
    let batch = args.usize("batch_size")?;
    let qp = side_prompt(model, args.opt_str("query_prompt")?, QUERY_PROMPTS);
    let cp = side_prompt(model, args.opt_str("corpus_prompt")?, DOCUMENT_PROMPTS);
    let enc_err = |e: crate::runtime::Error| {
        cx.fail(format!("cannot encode for mining: {e}"), "check the model")
    };
    (cx.note)(&format!(
        "data `{}`: mining with `{model_name}`: {} distinct anchors, a corpus of {} distinct texts",
        cx.source.name,
        pb.queries.len(),
        pb.corpus.len()
    ));
    let c_emb =
        unit_rows(encode(model, &pb.corpus, batch, cp, Truncate::default()).map_err(enc_err)?);
    let q_emb =
        unit_rows(encode(model, &pb.queries, batch, qp, Truncate::default()).map_err(enc_err)?);
    let dim = model.dim();
    let mined =
        select::mine(&q_emb, &c_emb, dim, &pb.positives, pb.max_positives, &s).map_err(|e| {
            cx.fail(
                format!("mining failed: {e}"),
                "this is an stpipe bug; please report it",
            )
        })?;
    drop((q_emb, c_emb));
    let scores = args.bool("output_scores")?;
    let ds = rows::build(
        &cx.source.name,
        &n.layout(s.num_negatives, scores),
        &pb,
        &mined,
    );
    (cx.note)(&rows::summary(&cx.source.name, &pb, &mined, &ds, n.output));
    if ds.is_empty() {
        return Err(cx.fail(
            format!(
                "mining found no negatives for any of the {} anchors",
                pb.queries.len()
            ),
            "widen range_max, or loosen range_min, the margins and max_score",
        ));
    }
    Ok(ds)
}
