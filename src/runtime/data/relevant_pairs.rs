//! `relevant_pairs`: (query text, document text) training pairs from the
//! three sources an InformationRetrieval evaluation reads (queries, corpus,
//! relevance judgements), the pairs a retrieval recipe trains on and mines
//! hard negatives for.
//!
//! One pair per distinct relevant judgement, in judgement order. A
//! judgement whose query is not among the queries is left out without
//! complaint (that is how a `split` of the queries selects the training
//! judgements), and so is one whose document is not in the corpus (a
//! `--limit` smoke run reads part of the corpus); how many were left out
//! goes to the run's log. No pair at all is an error.

use std::collections::{HashMap, HashSet};

use super::{DataError, Dataset, Example, TransformCx, TransformEntry, TransformInput};
use crate::check::types::{ColType, Column};
use crate::data::ArgProblem;
use crate::registry::{req, ArgType::*, Component, Family};
use crate::runtime::eval::information_retrieval::{named, relevant_rows};

const IDS_AND_TEXTS: &[&str] = &["id", "text"];
const JUDGEMENTS: &[&str] = &["query", "doc"];

pub const ENTRY: TransformEntry = TransformEntry {
    spec: Component {
        name: "relevant_pairs",
        family: Family::Transform,
        doc: "(query, document) text pairs from retrieval data: one per distinct relevant judgement (rows with a `relevance` not above 0 are not relevant), in judgement order. Judgements of queries or documents the sources lack are left out (a `split` of the queries selects the training judgements). Produces columns `query`, `document`.",
        args: &[
            req("queries", DataColumns(IDS_AND_TEXTS), "the queries (`id`, `text`)"),
            req("corpus", DataColumns(IDS_AND_TEXTS), "the documents (`id`, `text`)"),
            req("relevant", DataColumns(JUDGEMENTS), "relevance judgements (`query`, `doc`, optional `relevance`)"),
        ],
        ..Component::BASE
    },
    columns: Some(columns),
    apply,
    recorded: false,
};

fn columns(_: &TransformInput) -> Result<Vec<Column>, ArgProblem> {
    Ok(vec![
        Column::derived("query", ColType::Text),
        Column::derived("document", ColType::Text),
    ])
}

fn texts_by_id<'d>(
    cx: &TransformCx,
    ds: &'d Dataset,
) -> Result<HashMap<&'d str, &'d str>, DataError> {
    let ids = named(ds, "id").map_err(|e| cx.bug(&e.to_string()))?;
    let texts = named(ds, "text").map_err(|e| cx.bug(&e.to_string()))?;
    let mut out = HashMap::new();
    for (row, (id, text)) in ids.into_iter().zip(texts).enumerate() {
        if out.insert(id.trim(), text).is_some() {
            return Err(cx.fail(
                format!(
                    "`{}` has the id `{}` twice (again in row {})",
                    ds.name,
                    id.trim(),
                    row + 1
                ),
                "ids must be unique: a judgement could not say which of the two it means",
            ));
        }
    }
    Ok(out)
}

fn apply(cx: TransformCx) -> Result<Dataset, DataError> {
    let (queries, corpus) = (cx.input("queries")?, cx.input("corpus")?);
    let judged = cx.input("relevant")?;
    let rows =
        relevant_rows(judged).map_err(|e| cx.fail(e.to_string(), "relevance must be a number"))?;
    let q = texts_by_id(&cx, queries)?;
    let d = texts_by_id(&cx, corpus)?;
    let mut seen = HashSet::new();
    let mut examples = Vec::new();
    let (mut no_query, mut no_doc) = (0usize, 0usize);
    for (qid, did) in rows {
        let (Some(qt), Some(dt)) = (q.get(qid), d.get(did)) else {
            if !q.contains_key(qid) {
                no_query += 1;
            } else {
                no_doc += 1;
            }
            continue;
        };
        if seen.insert((qid, did)) {
            examples.push(Example {
                texts: vec![qt.to_string(), dt.to_string()],
                label: None,
                line: 0,
            });
        }
    }
    if examples.is_empty() {
        return Err(cx.fail(
            format!(
                "no relevant judgement of `{}` names both a query of `{}` and a document of `{}`",
                judged.name, queries.name, corpus.name
            ),
            "check that the judgements' `query` and `doc` columns hold the ids of the query and document sources (Cranfield numbers its queries by position: `ids: position`)",
        ));
    }
    if no_query + no_doc > 0 {
        (cx.note)(&format!(
            "data `{}`: {} pair(s); left out {no_query} judgement(s) of queries not in `{}` and {no_doc} of documents not in `{}`",
            cx.source.name,
            examples.len(),
            queries.name,
            corpus.name
        ));
    }
    Ok(Dataset {
        name: cx.source.name.clone(),
        text_columns: vec!["query".into(), "document".into()],
        label_column: None,
        examples,
        skipped: 0,
    })
}
