//! `TranslationEvaluator`: bitext retrieval. Each source text must find its
//! own translation among all the targets by cosine similarity, and each
//! target its source (`src2trg_accuracy`, `trg2src_accuracy`, and their
//! mean, the primary metric), as sentence-transformers computes them: a
//! match counts when the text found is the expected text (a duplicate
//! translation elsewhere counts as found), and ties go to the first row.
//!
//! The similarity matrix is never held whole: rows are scored a block at a
//! time against all columns, so memory grows with the number of texts, not
//! its square.

use super::{
    math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry, BATCH_SIZE, MODEL,
    PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES,
};
use crate::registry::{columns, req, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "Translation",
        family: Family::Evaluator,
        doc: "Bitext retrieval: the share of source texts whose most similar target (by cosine) is their own translation, the same from targets to sources, and their mean.",
        args: &[
            MODEL,
            req("data", Data, "source texts and their translations, row by row (e.g. `zip(en, de)`)"),
            BATCH_SIZE,
            PROMPTS,
            TRUNCATE_DIM,
            TRUNCATE_LAYERS,
        ],
        columns: Some(columns::BITEXT),
        metrics: &["mean_accuracy", "src2trg_accuracy", "trg2src_accuracy"],
        rules: TRUNCATE_RULES,
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(Translation {
        common: Common::from_args(a)?,
    }))
}

struct Translation {
    common: Common,
}

impl Evaluator for Translation {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let src = c.encode_column(model, ds, 0)?;
        let trg = c.encode_column(model, ds, 1)?;
        let text =
            |i: usize| -> Vec<&str> { ds.examples.iter().map(|e| e.texts[i].as_str()).collect() };
        translation_accuracy(&src, &trg, &text(0), &text(1)).map_err(math_err("Translation"))
    }
}

/// Rows scored at a time.
const BLOCK: usize = 256;

/// Unit-length copies of the rows (a zero row stays zero, as
/// `util.cos_sim`'s normalisation leaves it).
fn unit_rows(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(|x| x / n).collect()
        })
        .collect()
}

/// For each row of `a`, the index of its most cosine-similar row of `b`
/// (the first among equals), computed `BLOCK` rows at a time.
fn best_matches(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len());
    for block in a.chunks(BLOCK) {
        for row in block {
            let mut best = (f32::NEG_INFINITY, 0usize);
            for (j, col) in b.iter().enumerate() {
                let s: f32 = row.iter().zip(col).map(|(x, y)| x * y).sum();
                if s > best.0 {
                    best = (s, j);
                }
            }
            out.push(best.1);
        }
    }
    out
}

/// The translation metrics of source embeddings `src` and target
/// embeddings `trg` (row `i` of each is a pair), with their texts.
pub fn translation_accuracy(
    src: &[Vec<f32>],
    trg: &[Vec<f32>],
    src_texts: &[&str],
    trg_texts: &[&str],
) -> Result<EvalMetrics, EvalError> {
    let n = src.len();
    if n == 0 {
        return Err(EvalError::Empty);
    }
    for (what, len) in [
        ("targets", trg.len()),
        ("source texts", src_texts.len()),
        ("target texts", trg_texts.len()),
    ] {
        if len != n {
            return Err(EvalError::LengthMismatch {
                what,
                expected: n,
                got: len,
            });
        }
    }
    let dim = src[0].len();
    if let Some((index, got)) = src
        .iter()
        .chain(trg)
        .map(Vec::len)
        .enumerate()
        .find(|&(_, d)| d != dim)
    {
        return Err(EvalError::DimensionMismatch {
            index,
            expected: dim,
            got,
        });
    }
    let (s, t) = (unit_rows(src), unit_rows(trg));
    let share = |found: Vec<usize>, texts: &[&str]| {
        let hits = found
            .iter()
            .enumerate()
            .filter(|&(i, &j)| texts[i] == texts[j])
            .count();
        hits as f64 / n as f64
    };
    let src2trg = share(best_matches(&s, &t), trg_texts);
    let trg2src = share(best_matches(&t, &s), src_texts);
    Ok(EvalMetrics {
        entries: vec![
            ("mean_accuracy".into(), (src2trg + trg2src) / 2.0),
            ("src2trg_accuracy".into(), src2trg),
            ("trg2src_accuracy".into(), trg2src),
        ],
        primary: "mean_accuracy".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::eval::testdata::gen;

    #[test]
    fn by_hand() -> Result<(), EvalError> {
        // Sources (1,0), (0,1), (1,1); targets (2,0.1), (1,1.2), (0,1).
        // src2trg: 0 -> 0 (cos ~1), 1 -> 2 (wrong), 2 -> 1 (wrong): 1/3.
        // trg2src: 0 -> 0, 1 -> 2 (wrong), 2 -> 1 (wrong): 1/3.
        let src = [vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let trg = [vec![2.0, 0.1], vec![1.0, 1.2], vec![0.0, 1.0]];
        let m = translation_accuracy(&src, &trg, &["a", "b", "c"], &["x", "y", "z"])?;
        assert!((m.get("src2trg_accuracy").unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.get("trg2src_accuracy").unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.primary, "mean_accuracy");
        // A duplicate target text counts as found: rows 1 and 2 translate
        // to the same text, so 1 -> 2 and 2 -> 1 are right.
        let m = translation_accuracy(&src, &trg, &["a", "b", "c"], &["x", "y", "y"])?;
        assert!((m.get("src2trg_accuracy").unwrap_or(0.0) - 1.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<(), EvalError> {
        // TranslationEvaluator of sentence-transformers 6.2.0 on these
        // float32 embeddings (scripts/evaluator_reference_values.py); the
        // targets are their sources plus noise, and their texts repeat
        // every 7 rows.
        let src = gen(6, 16, 5, 4, 0.5);
        let noise = gen(7, 16, 5, 3, 0.2);
        let trg: Vec<Vec<f32>> = src
            .iter()
            .zip(&noise)
            .map(|(s, n)| s.iter().zip(n).map(|(a, b)| a + 0.15f32 * b).collect())
            .collect();
        let s: Vec<String> = (0..16).map(|i| format!("s{i}")).collect();
        let t: Vec<String> = (0..16).map(|i| format!("t{}", i % 7)).collect();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let m = translation_accuracy(&src, &trg, &s, &t)?;
        let want = [("src2trg_accuracy", 0.875), ("trg2src_accuracy", 0.9375)];
        for (k, v) in want {
            assert!(
                (m.get(k).unwrap_or(-1.0) - v).abs() < 1e-12,
                "{k}: {:?}",
                m.get(k)
            );
        }
        Ok(())
    }

    #[test]
    fn rejects_mismatched_inputs() {
        let a = [vec![1.0, 0.0]];
        assert_eq!(
            translation_accuracy(&[], &[], &[], &[]),
            Err(EvalError::Empty)
        );
        assert!(translation_accuracy(&a, &[], &["a"], &[]).is_err());
        assert!(translation_accuracy(&a, &[vec![1.0]], &["a"], &["b"]).is_err());
    }
}
