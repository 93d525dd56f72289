//! `ParaphraseMiningEvaluator`: every sentence is compared with every other
//! one, the most similar pairs are mined (each sentence's `top_k` nearest
//! neighbours by cosine, at most `max_pairs` pairs overall, best first), and
//! the mined list is scored against the known paraphrase pairs: average
//! precision over the list (primary) and the precision, recall and F1 at
//! the threshold that maximises F1, as sentence-transformers 6 computes
//! them (pairs of equal score are taken together).
//!
//! The data are sentence pairs with a 0/1 label, as paraphrase corpora
//! come (MRPC): the sentences are the distinct texts of both columns, the
//! pairs labelled 1 are the paraphrases (`add_transitive_closure` adds
//! every pair within a group of paraphrases). The similarities are
//! computed a block of sentences at a time against all of them
//! (`runtime::search`), so memory grows with the number of sentences, not
//! its square.

use std::collections::HashMap;

use super::{encode, math_err, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry};
use super::{Truncate, BATCH_SIZE, MODEL, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES};
use crate::registry::{columns, maybe, opt, req, ArgError, ArgType::*, Args, Component, Family};
use crate::runtime::data::Label;
use crate::runtime::search;

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "ParaphraseMining",
        family: Family::Evaluator,
        doc: "Paraphrase mining: all sentences of the data (the distinct texts of both columns) are compared with each other, the most similar pairs are mined (each sentence's top_k nearest by cosine, at most max_pairs), and the list is scored against the pairs labelled 1: average precision, and precision, recall and F1 at the best threshold.",
        args: &[
            MODEL,
            req("data", Data, "sentence pairs, labelled 1 when they are paraphrases"),
            BATCH_SIZE,
            opt("top_k", Count, "100", "nearest neighbours mined per sentence").at_least(1.0),
            opt("max_pairs", Count, "500000", "pairs mined at most, the most similar kept").at_least(1.0),
            opt("add_transitive_closure", Bool, "false", "paraphrases of paraphrases are paraphrases: every pair within a group counts"),
            maybe("chunk_size", Count, "sentences scored against all the others at a time (default: as many as keep one block of scores within 64 MiB)").at_least(1.0),
            TRUNCATE_DIM,
            TRUNCATE_LAYERS,
        ],
        columns: Some(columns::PAIR_BINARY),
        metrics: &["average_precision", "f1", "precision", "recall", "threshold"],
        rules: TRUNCATE_RULES,
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(ParaphraseMining {
        model: a.str("model")?.to_string(),
        data: a.str("data")?.to_string(),
        batch_size: a.usize("batch_size")?.max(1),
        top_k: a.usize("top_k")?.max(1),
        max_pairs: a.usize("max_pairs")?.max(1),
        closure: a.bool("add_transitive_closure")?,
        chunk: a.opt_usize("chunk_size")?,
        truncate: Truncate::from_args(a)?,
    }))
}

struct ParaphraseMining {
    model: String,
    data: String,
    batch_size: usize,
    top_k: usize,
    max_pairs: usize,
    closure: bool,
    chunk: Option<usize>,
    truncate: Truncate,
}

impl Evaluator for ParaphraseMining {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let (model, ds) = (cx.model(&self.model)?, cx.dataset(&self.data)?);
        let mut at: HashMap<&str, usize> = HashMap::new();
        let mut sentences: Vec<&str> = Vec::new();
        let mut pairs = Vec::new();
        for e in &ds.examples {
            let mut ids = [0usize; 2];
            for (k, t) in e.texts.iter().take(2).enumerate() {
                ids[k] = *at.entry(t.as_str()).or_insert_with(|| {
                    sentences.push(t.as_str());
                    sentences.len() - 1
                });
            }
            let positive = match e.label {
                Some(Label::Class(c)) => c == 1,
                Some(Label::Score(s)) => s == 1.0,
                Some(Label::Scores(_)) | None => false,
            };
            if positive {
                pairs.push((ids[0], ids[1]));
            }
        }
        let default = model.transformer().default_prompt();
        let emb = encode(model, &sentences, self.batch_size, default, self.truncate)?;
        let dim = emb.first().map_or(0, Vec::len);
        let unit = search::unit_rows(emb);
        let mined = mine_pairs(&unit, dim, self.top_k, self.max_pairs, self.chunk)?;
        let truth = Paraphrases::new(sentences.len(), &pairs, self.closure);
        paraphrase_metrics(&mined, &truth).map_err(math_err("ParaphraseMining"))
    }
}

/// The known paraphrase pairs, as unordered pairs of sentence positions.
pub struct Paraphrases {
    pairs: std::collections::HashSet<(usize, usize)>,
}

impl Paraphrases {
    /// From labelled pairs; with `closure`, every pair of sentences joined
    /// by a chain of paraphrases. A sentence paired with itself cannot be
    /// mined and does not count.
    pub fn new(n: usize, pairs: &[(usize, usize)], closure: bool) -> Self {
        let key = |a: usize, b: usize| (a.min(b), a.max(b));
        let mut set: std::collections::HashSet<(usize, usize)> = pairs
            .iter()
            .filter(|(a, b)| a != b)
            .map(|&(a, b)| key(a, b))
            .collect();
        if closure {
            let mut parent: Vec<usize> = (0..n).collect();
            fn root(p: &mut [usize], mut x: usize) -> usize {
                while p[x] != x {
                    p[x] = p[p[x]];
                    x = p[x];
                }
                x
            }
            for &(a, b) in &set {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
            }
            let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
            for &(a, b) in &set {
                for x in [a, b] {
                    groups.entry(root(&mut parent, x)).or_default().push(x);
                }
            }
            for mut g in groups.into_values() {
                g.sort_unstable();
                g.dedup();
                for i in 0..g.len() {
                    for j in i + 1..g.len() {
                        set.insert((g[i], g[j]));
                    }
                }
            }
        }
        Paraphrases { pairs: set }
    }

    fn contains(&self, a: usize, b: usize) -> bool {
        self.pairs.contains(&(a.min(b), a.max(b)))
    }
}

/// A mined pair: its similarity and the two sentence positions (i < j).
pub type Pair = (f32, usize, usize);

/// The most similar pairs of the unit rows `emb` (width `dim`): each
/// sentence's `top_k` nearest others, each pair once, the `max_pairs`
/// best, best first (ties by position).
pub fn mine_pairs(
    emb: &[f32],
    dim: usize,
    top_k: usize,
    max_pairs: usize,
    chunk: Option<usize>,
) -> candle_core::Result<Vec<Pair>> {
    let n = emb.len() / dim.max(1);
    let mut found: HashMap<(usize, usize), f32> = HashMap::new();
    let mut buf = Vec::with_capacity(n);
    search::score_blocks(emb, emb, dim, search::block_rows(chunk, n), |i, row| {
        let near = search::top_k(row, top_k + 1, &mut buf);
        for (s, j) in near.into_iter().filter(|&(_, j)| j != i).take(top_k) {
            found.entry((i.min(j), i.max(j))).or_insert(s);
        }
    })?;
    let mut pairs: Vec<Pair> = found.into_iter().map(|((i, j), s)| (s, i, j)).collect();
    let order = |a: &Pair, b: &Pair| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2)));
    if pairs.len() > max_pairs {
        pairs.select_nth_unstable_by(max_pairs - 1, order);
        pairs.truncate(max_pairs);
    }
    pairs.sort_by(order);
    Ok(pairs)
}

/// Average precision of the mined list, and the precision, recall, F1 and
/// threshold where F1 is best; pairs of equal score are taken together.
pub fn paraphrase_metrics(mined: &[Pair], truth: &Paraphrases) -> Result<EvalMetrics, EvalError> {
    if mined.is_empty() {
        return Err(EvalError::Empty);
    }
    let total = truth.pairs.len();
    let (mut extracted, mut correct, mut previous) = (0usize, 0usize, 0usize);
    let (mut ap, mut best) = (0.0f64, (0.0f64, 0.0f64, 0.0f64, 0.0f64));
    for (idx, &(score, i, j)) in mined.iter().enumerate() {
        extracted += 1;
        if truth.contains(i, j) {
            correct += 1;
        }
        if mined.get(idx + 1).is_some_and(|next| next.0 == score) {
            continue;
        }
        if correct > previous {
            let precision = correct as f64 / extracted as f64;
            let recall = if total > 0 {
                correct as f64 / total as f64
            } else {
                0.0
            };
            let f1 = 2.0 * precision * recall / (precision + recall);
            ap += precision * (correct - previous) as f64;
            if f1 > best.0 {
                let next = mined[(idx + 1).min(mined.len() - 1)].0;
                best = (f1, precision, recall, (score as f64 + next as f64) / 2.0);
            }
        }
        previous = correct;
    }
    let ap = if total > 0 { ap / total as f64 } else { 0.0 };
    Ok(EvalMetrics {
        entries: vec![
            ("average_precision".into(), ap),
            ("f1".into(), best.0),
            ("precision".into(), best.1),
            ("recall".into(), best.2),
            ("threshold".into(), best.3),
        ],
        primary: "average_precision".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::eval::testdata::gen;

    fn close(m: &EvalMetrics, want: &[(&str, f64)]) {
        for &(k, v) in want {
            let got = m.get(k).unwrap_or(f64::NAN);
            assert!((got - v).abs() < 1e-9, "{k}: {got} vs {v}");
        }
    }

    #[test]
    fn by_hand() -> Result<(), EvalError> {
        // Four sentences on the unit circle at 0, 10, 90 and 105 degrees:
        // the pairs by similarity are (0,1) at cos 10, (2,3) at cos 15,
        // (1,2) at cos 80, (0,2), (1,3) and (0,3).
        let at = |d: f32| vec![d.to_radians().cos(), d.to_radians().sin()];
        let emb = search::unit_rows(vec![at(0.0), at(10.0), at(90.0), at(105.0)]);
        let mined = mine_pairs(&emb, 2, 3, 100, None).unwrap();
        assert_eq!(mined.len(), 6);
        assert_eq!((mined[0].1, mined[0].2), (0, 1));
        assert_eq!((mined[1].1, mined[1].2), (2, 3));
        // Paraphrases (0,1) and (1,2): found 1st and 3rd. AP = (1/1 + 2/3) / 2.
        let truth = Paraphrases::new(4, &[(0, 1), (2, 1)], false);
        let m = paraphrase_metrics(&mined, &truth)?;
        close(
            &m,
            &[
                ("average_precision", (1.0 + 2.0 / 3.0) / 2.0),
                ("precision", 2.0 / 3.0),
                ("recall", 1.0),
                ("f1", 0.8),
            ],
        );
        assert_eq!(m.primary, "average_precision");
        // The closure adds (0,2), found 4th: AP = (1 + 2/3 + 3/4) / 3.
        let truth = Paraphrases::new(4, &[(0, 1), (2, 1)], true);
        assert_eq!(truth.pairs.len(), 3);
        let m = paraphrase_metrics(&mined, &truth)?;
        close(
            &m,
            &[
                ("average_precision", (1.0 + 2.0 / 3.0 + 0.75) / 3.0),
                ("recall", 1.0),
            ],
        );
        // max_pairs keeps the best.
        assert_eq!(mine_pairs(&emb, 2, 3, 2, None).unwrap().len(), 2);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<(), EvalError> {
        // ParaphraseMiningEvaluator of sentence-transformers 6.2.0 on these
        // float32 embeddings (scripts/evaluator_reference_values.py):
        // sentence i + 1 is sentence i plus noise for i a multiple of 3.
        let mut emb = gen(10, 30, 5, 4, 0.3);
        let noise = gen(11, 30, 5, 3, 0.2);
        for i in (0..29).step_by(3) {
            emb[i + 1] = emb[i]
                .iter()
                .zip(&noise[i])
                .map(|(a, b)| a + 0.2f32 * b)
                .collect();
        }
        let mut pairs: Vec<(usize, usize)> = (0..29).step_by(3).map(|i| (i, i + 1)).collect();
        pairs.extend([(0, 7), (7, 20)]);
        let unit = search::unit_rows(emb);
        for chunk in [None, Some(7)] {
            let mined = mine_pairs(&unit, 5, 5, 40, chunk).unwrap();
            assert_eq!(mined.len(), 40);
            let m = paraphrase_metrics(&mined, &Paraphrases::new(30, &pairs, false))?;
            close(
                &m,
                &[
                    ("average_precision", 0.38341750841750843),
                    ("f1", 0.6666666666666666),
                    ("precision", 0.6666666666666666),
                    ("recall", 0.6666666666666666),
                ],
            );
            assert!((m.get("threshold").unwrap_or(0.0) - 0.9900861084461212).abs() < 1e-6);
            let m = paraphrase_metrics(&mined, &Paraphrases::new(30, &pairs, true))?;
            close(
                &m,
                &[
                    ("average_precision", 0.255611672278339),
                    ("f1", 0.5333333333333333),
                    ("precision", 0.6666666666666666),
                    ("recall", 0.4444444444444444),
                ],
            );
        }
        Ok(())
    }

    #[test]
    fn an_empty_list_is_an_error() {
        let truth = Paraphrases::new(2, &[(0, 1)], false);
        assert_eq!(
            paraphrase_metrics(&[], &truth).unwrap_err(),
            EvalError::Empty
        );
    }
}
