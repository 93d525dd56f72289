//! `InformationRetrievalEvaluator`: every query searches the corpus by
//! embedding similarity; the relevance judgements say which documents it
//! should find. Metrics follow sentence-transformers 6 (`compute_metrics`):
//! accuracy@k, precision@k, recall@k, NDCG@k (binary relevance), MRR@10
//! and MAP@100, averaged over the queries that have at least one relevant
//! document.
//!
//! The corpus is encoded and scored in chunks of `corpus_chunk_size`
//! documents (and the queries in blocks), keeping only each query's best
//! 100 hits, so memory is bounded by one chunk's embeddings and one
//! block-by-chunk score matrix, not by corpus size times query count.
//!
//! Judgements: a data source with columns `query` and `doc` (the ids of
//! the query and document sources), and optionally `relevance`: rows whose
//! relevance is not above 0 are not relevant (the TREC convention; e.g.
//! Cranfield's `-1` rows).

use std::collections::{HashMap, HashSet};

use candle_core::Tensor;

use super::{encode, side_prompt, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry};
use super::{Similarity, DOCUMENT_PROMPTS, QUERY_PROMPTS};
use super::{Truncate, BATCH_SIZE, MODEL, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES};
use crate::registry::{maybe, opt, req, ArgError, ArgType::*, Args, Component, Family};
use crate::runtime::data::Dataset;
use crate::runtime::{Error, Result};

const QUERIES: &[&str] = &["id", "text"];
const DOCS: &[&str] = &["id", "text"];
const JUDGEMENTS: &[&str] = &["query", "doc"];

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "InformationRetrieval",
        family: Family::Evaluator,
        doc: "Retrieval quality: every query searches the corpus by embedding similarity; relevance judgements give the expected documents. Queries and corpus need columns `id` and `text`; judgements need `query` and `doc` (matching the ids) and may have `relevance` (rows not above 0 are not relevant). The corpus is scored in chunks, so memory does not grow with corpus size times query count.",
        args: &[
            MODEL,
            req("data", DataColumns(QUERIES), "the queries (`id`, `text`)"),
            req("corpus", DataColumns(DOCS), "the documents (`id`, `text`)"),
            req("relevant", DataColumns(JUDGEMENTS), "relevance judgements (`query`, `doc`, optional `relevance`)"),
            BATCH_SIZE,
            opt("similarity", Choice(Similarity::NAMES), "cosine", "how queries and documents are scored"),
            opt("corpus_chunk_size", Count, "50000", "documents encoded and scored at a time").at_least(1.0),
            maybe("query_prompt", Str, "prepended to every query (default: the model's `query` prompt, else its default prompt)"),
            maybe("corpus_prompt", Str, "prepended to every document (default: the model's `document`, `passage` or `corpus` prompt, else its default prompt)"),
            TRUNCATE_DIM,
            TRUNCATE_LAYERS,
        ],
        rules: TRUNCATE_RULES,
        metrics: &[
            "ndcg_at_10",
            "mrr_at_10",
            "map_at_100",
            "accuracy_at_1",
            "accuracy_at_3",
            "accuracy_at_5",
            "accuracy_at_10",
            "precision_at_1",
            "precision_at_3",
            "precision_at_5",
            "precision_at_10",
            "precision_at_100",
            "recall_at_1",
            "recall_at_3",
            "recall_at_5",
            "recall_at_10",
            "recall_at_100",
            "ndcg_at_1",
            "ndcg_at_3",
            "ndcg_at_5",
            "ndcg_at_100",
        ],
        ..Component::BASE
    },
    build,
};

/// The cut-offs of each metric.
const ACCURACY_AT: [usize; 4] = [1, 3, 5, 10];
const PRECISION_RECALL_AT: [usize; 5] = [1, 3, 5, 10, 100];
const NDCG_AT: [usize; 5] = [1, 3, 5, 10, 100];
const MRR_AT: usize = 10;
const MAP_AT: usize = 100;
/// Hits kept per query: the largest cut-off.
const TOP_K: usize = 100;
/// Queries scored against a corpus chunk at a time.
const QUERY_BLOCK: usize = 256;

fn build(a: &Args) -> std::result::Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(InformationRetrieval {
        model: a.str("model")?.to_string(),
        queries: a.str("data")?.to_string(),
        corpus: a.str("corpus")?.to_string(),
        relevant: a.str("relevant")?.to_string(),
        batch_size: a.usize("batch_size")?.max(1),
        similarity: a.choice("similarity")?,
        chunk: a.usize("corpus_chunk_size")?.max(1),
        query_prompt: a.opt_str("query_prompt")?.map(str::to_string),
        corpus_prompt: a.opt_str("corpus_prompt")?.map(str::to_string),
        truncate: Truncate::from_args(a)?,
    }))
}

struct InformationRetrieval {
    model: String,
    queries: String,
    corpus: String,
    relevant: String,
    batch_size: usize,
    similarity: Similarity,
    chunk: usize,
    query_prompt: Option<String>,
    corpus_prompt: Option<String>,
    truncate: Truncate,
}

/// The values of a named column.
pub(crate) fn named<'d>(ds: &'d Dataset, name: &str) -> Result<Vec<&'d str>> {
    let i = ds
        .text_columns
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| Error::Msg(format!("data source `{}` has no column `{name}`", ds.name)))?;
    Ok(ds.examples.iter().map(|e| e.texts[i].as_str()).collect())
}

/// The judgement rows that say relevant, as (query id, document id) in
/// row order (ids trimmed).
pub(crate) fn relevant_rows(ds: &Dataset) -> Result<Vec<(&str, &str)>> {
    let queries = named(ds, "query")?;
    let docs = named(ds, "doc")?;
    let relevance = if ds.text_columns.iter().any(|c| c == "relevance") {
        Some(named(ds, "relevance")?)
    } else {
        None
    };
    let mut out = Vec::new();
    for (row, (q, d)) in queries.iter().zip(&docs).enumerate() {
        if let Some(rel) = &relevance {
            let v: f64 = rel[row].trim().parse().map_err(|_| {
                Error::Msg(format!(
                    "data source `{}`, row {}: relevance `{}` is not a number",
                    ds.name,
                    row + 1,
                    rel[row]
                ))
            })?;
            if v <= 0.0 {
                continue;
            }
        }
        out.push((q.trim(), d.trim()));
    }
    Ok(out)
}

/// Relevant document ids per query id, from the judgements.
fn judgements(ds: &Dataset) -> Result<HashMap<String, HashSet<String>>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (q, d) in relevant_rows(ds)? {
        out.entry(q.to_string()).or_default().insert(d.to_string());
    }
    Ok(out)
}

/// One query's best hits: `(score, document index)`.
pub type Hits = Vec<(f32, usize)>;

/// Keep the best `TOP_K` of `hits`, ordered by score (descending), then by
/// document id (ascending) as sentence-transformers breaks ties.
fn keep_best(hits: &mut Hits, ids: &[&str]) {
    let order = |a: &(f32, usize), b: &(f32, usize)| {
        b.0.total_cmp(&a.0).then_with(|| ids[a.1].cmp(ids[b.1]))
    };
    if hits.len() > TOP_K {
        hits.select_nth_unstable_by(TOP_K - 1, order);
        hits.truncate(TOP_K);
    }
    hits.sort_by(order);
}

/// Scores `[queries, docs]` of one query block against one corpus chunk.
fn scores(sim: Similarity, q: &Tensor, d: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(sim.matrix(q, d)?.to_vec2::<f32>()?)
}

fn to_tensor(rows: &[Vec<f32>]) -> Result<Tensor> {
    let dim = rows.first().map_or(0, Vec::len);
    Ok(Tensor::from_vec(
        rows.concat(),
        (rows.len(), dim),
        &candle_core::Device::Cpu,
    )?)
}

impl Evaluator for InformationRetrieval {
    fn evaluate(&self, cx: &EvalCx) -> Result<EvalMetrics> {
        let model = cx.model(&self.model)?;
        let (qs, docs) = (cx.dataset(&self.queries)?, cx.dataset(&self.corpus)?);
        let relevant = judgements(cx.dataset(&self.relevant)?)?;
        // Queries without a relevant document take no part (as in ST).
        let (qids, qtexts): (Vec<&str>, Vec<&str>) = named(qs, "id")?
            .into_iter()
            .zip(named(qs, "text")?)
            .filter(|(id, _)| relevant.get(id.trim()).is_some_and(|r| !r.is_empty()))
            .unzip();
        if qids.is_empty() {
            return Err(Error::Msg(format!(
                "InformationRetrieval: no query of `{}` has a relevant document in `{}`",
                qs.name, self.relevant
            )));
        }
        let doc_ids: Vec<&str> = named(docs, "id")?.into_iter().map(str::trim).collect();
        let doc_texts = named(docs, "text")?;
        let query_prompt = side_prompt(model, self.query_prompt.as_deref(), QUERY_PROMPTS);
        let corpus_prompt = side_prompt(model, self.corpus_prompt.as_deref(), DOCUMENT_PROMPTS);
        let query_emb = encode(model, &qtexts, self.batch_size, query_prompt, self.truncate)?;
        let chunks = (0..doc_texts.len()).step_by(self.chunk).map(|start| {
            let end = (start + self.chunk).min(doc_texts.len());
            encode(
                model,
                &doc_texts[start..end],
                self.batch_size,
                corpus_prompt,
                self.truncate,
            )
        });
        let hits = rank(&query_emb, chunks, &doc_ids, self.similarity)?;
        let ranked: Vec<Vec<&str>> = hits
            .iter()
            .map(|h| h.iter().map(|&(_, d)| doc_ids[d]).collect())
            .collect();
        let rel: Vec<&HashSet<String>> =
            qids.iter().filter_map(|q| relevant.get(q.trim())).collect();
        ir_metrics(&ranked, &rel).map_err(super::math_err("InformationRetrieval"))
    }
}

/// Each query's best hits over a corpus given as consecutive chunks of
/// document embeddings (encoded lazily, one chunk alive at a time).
pub fn rank(
    queries: &[Vec<f32>],
    chunks: impl Iterator<Item = Result<Vec<Vec<f32>>>>,
    doc_ids: &[&str],
    sim: Similarity,
) -> Result<Vec<Hits>> {
    let mut hits: Vec<Hits> = vec![Vec::new(); queries.len()];
    let mut start = 0;
    for chunk in chunks {
        let chunk = chunk?;
        let docs = to_tensor(&chunk)?;
        for qstart in (0..queries.len()).step_by(QUERY_BLOCK) {
            let qend = (qstart + QUERY_BLOCK).min(queries.len());
            let q = to_tensor(&queries[qstart..qend])?;
            for (row, s) in scores(sim, &q, &docs)?.into_iter().enumerate() {
                let h = &mut hits[qstart + row];
                h.extend(s.into_iter().enumerate().map(|(j, v)| (v, start + j)));
                keep_best(h, doc_ids);
            }
        }
        start += chunk.len();
    }
    Ok(hits)
}

/// `sum(rel_i / log2(i + 2))` over the first `k` relevances.
fn dcg_at(relevances: impl Iterator<Item = f64>, k: usize) -> f64 {
    relevances
        .take(k)
        .enumerate()
        .map(|(i, r)| r / ((i + 2) as f64).log2())
        .sum()
}

/// The metrics of ranked document ids per query against each query's
/// relevant ids.
pub fn ir_metrics(
    ranked: &[Vec<&str>],
    relevant: &[&HashSet<String>],
) -> std::result::Result<EvalMetrics, EvalError> {
    if ranked.is_empty() {
        return Err(EvalError::Empty);
    }
    if ranked.len() != relevant.len() {
        return Err(EvalError::LengthMismatch {
            what: "relevance judgements",
            expected: ranked.len(),
            got: relevant.len(),
        });
    }
    let n = ranked.len() as f64;
    let mut acc = [0f64; ACCURACY_AT.len()];
    let mut prec = [0f64; PRECISION_RECALL_AT.len()];
    let mut rec = [0f64; PRECISION_RECALL_AT.len()];
    let mut ndcg = [0f64; NDCG_AT.len()];
    let (mut mrr, mut map) = (0f64, 0f64);
    for (hits, rel) in ranked.iter().zip(relevant) {
        let is_rel: Vec<bool> = hits.iter().map(|d| rel.contains(*d)).collect();
        let found = |k: usize| is_rel.iter().take(k).filter(|&&r| r).count() as f64;
        for (i, &k) in ACCURACY_AT.iter().enumerate() {
            acc[i] += f64::from(u8::from(found(k) > 0.0));
        }
        for (i, &k) in PRECISION_RECALL_AT.iter().enumerate() {
            prec[i] += found(k) / k as f64;
            rec[i] += found(k) / rel.len() as f64;
        }
        if let Some(rank) = is_rel.iter().take(MRR_AT).position(|&r| r) {
            mrr += 1.0 / (rank + 1) as f64;
        }
        for (i, &k) in NDCG_AT.iter().enumerate() {
            let dcg = dcg_at(is_rel.iter().map(|&r| f64::from(u8::from(r))), k);
            let ideal = dcg_at(std::iter::repeat_n(1.0, rel.len()), k);
            ndcg[i] += dcg / ideal;
        }
        let (mut correct, mut sum) = (0f64, 0f64);
        for (rank, &r) in is_rel.iter().take(MAP_AT).enumerate() {
            if r {
                correct += 1.0;
                sum += correct / (rank + 1) as f64;
            }
        }
        map += sum / MAP_AT.min(rel.len()) as f64;
    }
    let mut out = EvalMetrics {
        entries: Vec::new(),
        primary: "ndcg_at_10".to_string(),
    };
    for (i, k) in NDCG_AT.iter().enumerate() {
        if *k == 10 {
            out.push("ndcg_at_10", ndcg[i] / n);
        }
    }
    out.push(format!("mrr_at_{MRR_AT}"), mrr / n);
    out.push(format!("map_at_{MAP_AT}"), map / n);
    for (i, k) in ACCURACY_AT.iter().enumerate() {
        out.push(format!("accuracy_at_{k}"), acc[i] / n);
    }
    for (i, k) in PRECISION_RECALL_AT.iter().enumerate() {
        out.push(format!("precision_at_{k}"), prec[i] / n);
    }
    for (i, k) in PRECISION_RECALL_AT.iter().enumerate() {
        out.push(format!("recall_at_{k}"), rec[i] / n);
    }
    for (i, k) in NDCG_AT.iter().enumerate() {
        if *k != 10 {
            out.push(format!("ndcg_at_{k}"), ndcg[i] / n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::eval::math_err;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_by_hand() -> std::result::Result<(), EvalError> {
        // Query 1: relevant {a, c}, ranking b a c: first hit at rank 2.
        // Query 2: relevant {z} (not retrieved), ranking x y.
        let r1 = set(&["a", "c"]);
        let r2 = set(&["z"]);
        let m = ir_metrics(&[vec!["b", "a", "c"], vec!["x", "y"]], &[&r1, &r2])?;
        let get = |k: &str| m.get(k).unwrap_or(f64::NAN);
        assert_eq!(get("accuracy_at_1"), 0.0);
        assert_eq!(get("accuracy_at_3"), 0.5);
        assert!((get("mrr_at_10") - 0.25).abs() < 1e-12);
        assert!((get("precision_at_3") - (2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((get("recall_at_3") - 0.5).abs() < 1e-12);
        // AP of query 1: (1/2 + 2/3) / min(100, 2); query 2: 0.
        assert!((get("map_at_100") - (0.5 + 2.0 / 3.0) / 2.0 / 2.0).abs() < 1e-12);
        // NDCG@10 of query 1: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3).
        let l = |x: f64| x.log2();
        let q1 = (1.0 / l(3.0) + 1.0 / l(4.0)) / (1.0 + 1.0 / l(3.0));
        assert!((get("ndcg_at_10") - q1 / 2.0).abs() < 1e-12);
        assert_eq!(m.primary, "ndcg_at_10");
        assert_eq!(m.entries.len(), ENTRY.spec.metrics.len());
        Ok(())
    }

    #[test]
    fn keeps_the_best_hits_with_id_ties() {
        let ids = ["d3", "d1", "d2"];
        let mut h: Hits = vec![(0.5, 0), (0.9, 2), (0.5, 1)];
        keep_best(&mut h, &ids);
        assert_eq!(h, vec![(0.9, 2), (0.5, 1), (0.5, 0)]);
        let mut many: Hits = (0..300).map(|i| (i as f32, i % 3)).collect();
        keep_best(&mut many, &ids);
        assert_eq!(many.len(), TOP_K);
        assert_eq!(many[0].0, 299.0);
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // InformationRetrievalEvaluator of sentence-transformers 6.2.0 with
        // corpus_chunk_size 7 on these float32 embeddings and judgements
        // (scripts/evaluator_reference_values.py); q9 has no relevant
        // document and takes no part.
        use crate::runtime::eval::testdata::gen;
        let q = gen(4, 10, 6, 3, 0.4);
        let d = gen(5, 40, 6, 4, 0.3);
        let doc_ids: Vec<String> = (0..40).map(|j| format!("d{j:02}")).collect();
        let ids: Vec<&str> = doc_ids.iter().map(String::as_str).collect();
        let rel: Vec<HashSet<String>> = (0..9)
            .map(|i: usize| {
                [(3 * i) % 40, (7 * i + 1) % 40, (i * i) % 40]
                    .iter()
                    .map(|j| format!("d{j:02}"))
                    .collect()
            })
            .collect();
        let chunks = d.chunks(7).map(|c| Ok(c.to_vec()));
        let hits = rank(&q[..9], chunks, &ids, Similarity::Cosine)?;
        let ranked: Vec<Vec<&str>> = hits
            .iter()
            .map(|h| h.iter().map(|&(_, j)| ids[j]).collect())
            .collect();
        let m = ir_metrics(&ranked, &rel.iter().collect::<Vec<_>>())
            .map_err(math_err("InformationRetrieval"))?;
        let want = [
            ("accuracy_at_1", 0.1111111111111111),
            ("accuracy_at_3", 0.3333333333333333),
            ("accuracy_at_5", 0.3333333333333333),
            ("accuracy_at_10", 0.4444444444444444),
            ("precision_at_1", 0.1111111111111111),
            ("precision_at_3", 0.1111111111111111),
            ("precision_at_5", 0.06666666666666668),
            ("precision_at_10", 0.044444444444444446),
            ("precision_at_100", 0.026666666666666665),
            ("recall_at_1", 0.037037037037037035),
            ("recall_at_3", 0.12962962962962962),
            ("recall_at_5", 0.12962962962962962),
            ("recall_at_10", 0.16666666666666666),
            ("recall_at_100", 1.0),
            ("ndcg_at_1", 0.1111111111111111),
            ("ndcg_at_3", 0.11227685393520709),
            ("ndcg_at_5", 0.11227685393520709),
            ("ndcg_at_10", 0.12872584898886627),
            ("ndcg_at_100", 0.3722601532893351),
            ("mrr_at_10", 0.19907407407407407),
            ("map_at_100", 0.13990101980834863),
        ];
        for (name, v) in want {
            let got = m.get(name).unwrap_or(f64::NAN);
            assert!((got - v).abs() < 1e-12, "{name}: {got} vs {v}");
        }
        Ok(())
    }
}
