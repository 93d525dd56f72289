//! `SequentialEvaluator`: several evaluators of one model run one after
//! the other, as one. Its metrics are every metric of every part under the
//! part's name (`dev_spearman_cosine`), and `sequential_score` (primary),
//! computed from the parts' primary metrics: the last one's by default, as
//! in sentence-transformers, or their first, mean, minimum or maximum. So
//! `best by all.sequential_score` keeps the weights that do best over
//! several data sets at once.
//!
//! The checker (`check/sequence.rs`) puts each part's checked call in the
//! arguments; the parts are built from them here, through the catalogue.

use super::{EvalCx, EvalMetrics, Evaluator, EvaluatorEntry, MODEL};
use crate::registry::choices::MainScore;
use crate::registry::{opt, req, ArgError, ArgType::*, ArgValue, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "Sequential",
        family: Family::Evaluator,
        doc: "Several evaluators of one model as one: every metric of every part, under the part's name (`dev_spearman_cosine`), and `sequential_score`, from the parts' primary metrics (the last one's, or their first, mean, min or max). Its metrics are `sequential_score` and those of its parts.",
        args: &[
            MODEL,
            req("evaluators", Evaluators, "the evaluators, declared before, of the same model"),
            opt("main_score", Choice(MainScore::NAMES), "last", "how `sequential_score` comes from the parts' primary metrics"),
        ],
        columns: None,
        metrics: &["sequential_score"],
        rules: &[],
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    let bug = |problem: &str| ArgError {
        component: "Sequential".into(),
        name: "evaluators".into(),
        problem: problem.into(),
    };
    let Some(ArgValue::List(items)) = a.get("evaluators")? else {
        return Err(bug("is not a list"));
    };
    let mut parts = Vec::new();
    for item in items {
        let ArgValue::Call(call) = item else {
            return Err(bug("holds a name the checker did not resolve to its call"));
        };
        let entry = crate::registry::catalogue::evaluator(&call.name)
            .ok_or_else(|| bug(&format!("names an unknown evaluator `{}`", call.name)))?;
        let name = call.binding.clone().unwrap_or_else(|| call.name.clone());
        parts.push((name, (entry.build)(&call.args)?));
    }
    Ok(Box::new(Sequential {
        parts,
        main: a.choice("main_score")?,
    }))
}

struct Sequential {
    parts: Vec<(String, Box<dyn Evaluator>)>,
    main: MainScore,
}

/// The combined score of the parts' primary metrics.
pub fn main_score(how: MainScore, scores: &[f64]) -> f64 {
    let (Some(first), Some(last)) = (scores.first(), scores.last()) else {
        return 0.0;
    };
    match how {
        MainScore::Last => *last,
        MainScore::First => *first,
        MainScore::Mean => scores.iter().sum::<f64>() / scores.len() as f64,
        MainScore::Min => scores.iter().copied().fold(f64::INFINITY, f64::min),
        MainScore::Max => scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

impl Evaluator for Sequential {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let mut entries = Vec::new();
        let mut scores = Vec::new();
        for (name, part) in &self.parts {
            let m = part.evaluate(cx)?;
            scores.extend(m.primary_value());
            entries.extend(
                m.entries
                    .into_iter()
                    .map(|(k, v)| (format!("{name}_{k}"), v)),
            );
        }
        entries.insert(
            0,
            ("sequential_score".into(), main_score(self.main, &scores)),
        );
        Ok(EvalMetrics {
            entries,
            primary: "sequential_score".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_score_of_the_parts() {
        let s = [0.5, 0.9, 0.7];
        assert_eq!(main_score(MainScore::Last, &s), 0.7);
        assert_eq!(main_score(MainScore::First, &s), 0.5);
        assert!((main_score(MainScore::Mean, &s) - 0.7).abs() < 1e-12);
        assert_eq!(main_score(MainScore::Min, &s), 0.5);
        assert_eq!(main_score(MainScore::Max, &s), 0.9);
        // sentence-transformers gives 0 when no part scored.
        assert_eq!(main_score(MainScore::Mean, &[]), 0.0);
    }
}
