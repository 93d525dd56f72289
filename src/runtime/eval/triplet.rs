//! `TripletEvaluator`: the share of (anchor, positive, negative) triplets
//! whose anchor is more similar to the positive than to the negative (by
//! more than `margin`), for each similarity function, and the best of them.

use super::{
    math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry, Similarity,
    BATCH_SIZE, MODEL, PROMPTS, TRUNCATE_DIM, TRUNCATE_LAYERS, TRUNCATE_RULES,
};
use crate::registry::{columns, opt, req, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "Triplet",
        family: Family::Evaluator,
        doc: "Share of (anchor, positive, negative) triplets where the anchor is more similar to the positive than to the negative, by cosine, dot product, Euclidean and Manhattan distance, and the best of the four.",
        args: &[
            MODEL,
            req("data", Data, "the triplets"),
            BATCH_SIZE,
            PROMPTS,
            opt("margin", Float, "0.0", "the positive must be more similar by more than this"),
            TRUNCATE_DIM,
            TRUNCATE_LAYERS,
        ],
        rules: TRUNCATE_RULES,
        columns: Some(columns::TRIPLET),
        metrics: &[
            "cosine_accuracy",
            "dot_accuracy",
            "euclidean_accuracy",
            "manhattan_accuracy",
            "max_accuracy",
        ],
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(TripletEvaluator {
        common: Common::from_args(a)?,
        margin: a.f64("margin")?,
    }))
}

struct TripletEvaluator {
    common: Common,
    margin: f64,
}

/// Accuracies of `(anchors[i], positives[i], negatives[i])` for each of
/// `fns`, named `{fn}_accuracy`, then `max_accuracy` with several; the
/// first function's accuracy is the primary metric.
pub fn triplet_accuracy(
    anchors: &[Vec<f32>],
    positives: &[Vec<f32>],
    negatives: &[Vec<f32>],
    fns: &[Similarity],
    margin: f64,
) -> Result<EvalMetrics, EvalError> {
    super::check_pairs(anchors, positives, anchors.len())?;
    super::check_pairs(anchors, negatives, anchors.len())?;
    let mut out = EvalMetrics {
        entries: Vec::with_capacity(fns.len() + 1),
        primary: format!(
            "{}_accuracy",
            fns.first().copied().unwrap_or(Similarity::Cosine)
        ),
    };
    let mut best = f64::NEG_INFINITY;
    for f in fns {
        let hits = anchors
            .iter()
            .zip(positives)
            .zip(negatives)
            .filter(|((a, p), n)| f.score(a, p) > f.score(a, n) + margin)
            .count();
        let acc = hits as f64 / anchors.len() as f64;
        best = best.max(acc);
        out.push(format!("{f}_accuracy"), acc);
    }
    if fns.len() > 1 {
        out.push("max_accuracy", best);
    }
    Ok(out)
}

impl Evaluator for TripletEvaluator {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let a = c.encode_column(model, ds, 0)?;
        let p = c.encode_column(model, ds, 1)?;
        let n = c.encode_column(model, ds, 2)?;
        triplet_accuracy(&a, &p, &n, &Similarity::all(), self.margin).map_err(math_err("Triplet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::eval::testdata::gen;

    #[test]
    fn by_hand() -> Result<(), EvalError> {
        // Triplet 1: anchor (1, 0), positive (2, 0), negative (0, 1): the
        // positive wins by every function (cosine 1 vs 0, dot 2 vs 0,
        // distances 1 vs sqrt 2 and 1 vs 2). Triplet 2: anchor (1, 0),
        // positive (0, 3), negative (1, 0.1): the negative wins by all.
        let m = triplet_accuracy(
            &[vec![1.0, 0.0], vec![1.0, 0.0]],
            &[vec![2.0, 0.0], vec![0.0, 3.0]],
            &[vec![0.0, 1.0], vec![1.0, 0.1]],
            &Similarity::all(),
            0.0,
        )?;
        for f in ["cosine", "dot", "euclidean", "manhattan", "max"] {
            assert_eq!(m.get(&format!("{f}_accuracy")), Some(0.5), "{f}");
        }
        assert_eq!(m.primary, "cosine_accuracy");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<(), EvalError> {
        // TripletEvaluator(similarity_fn_names=[cosine, dot, euclidean,
        // manhattan], margin) of sentence-transformers 6.2.0 on these
        // float32 embeddings (scripts/evaluator_reference_values.py).
        let (a, p, n) = (
            gen(0, 12, 6, 4, 0.5),
            gen(1, 12, 6, 3, 0.7),
            gen(2, 12, 6, 5, 0.3),
        );
        let cases = [
            (0.0, [12.0, 10.0, 8.0, 8.0, 12.0]),
            (0.5, [8.0, 10.0, 8.0, 8.0, 10.0]),
        ];
        for (margin, hits) in cases {
            let m = triplet_accuracy(&a, &p, &n, &Similarity::all(), margin)?;
            let names = ["cosine", "dot", "euclidean", "manhattan", "max"];
            for (name, h) in names.iter().zip(hits) {
                let got = m.get(&format!("{name}_accuracy")).unwrap_or(f64::NAN);
                assert!((got - h / 12.0).abs() < 1e-6, "{name} at {margin}: {got}");
            }
        }
        Ok(())
    }
}
