//! `MSEEvaluator` (distillation): the mean squared error between the
//! teacher's embedding of each source text (column 1) and the student's
//! embedding of its translations (every further column), reported as
//! `-100 * MSE` so that higher is better, as sentence-transformers does.

use super::{
    column, encode, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry, BATCH_SIZE,
    MODEL, PROMPTS,
};
use crate::registry::{columns, req, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "MSE",
        family: Family::Evaluator,
        doc: "Distillation quality: mean squared error between the teacher's embedding of the first column and the student's embedding of the others (reported negated and x100, higher is better).",
        args: &[
            MODEL,
            req("data", Data, "source texts and their translations"),
            req("teacher", Model, "the teacher model"),
            BATCH_SIZE,
            PROMPTS,
        ],
        columns: Some(columns::SOURCE_AND_TRANSLATIONS),
        metrics: &["negative_mse"],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(Mse {
        common: Common::from_args(a)?,
        teacher: a.str("teacher")?.to_string(),
    }))
}

struct Mse {
    common: Common,
    teacher: String,
}

/// `-100 * mean((source - target)^2)` over every target row and value.
pub fn negative_mse(source: &[Vec<f32>], targets: &[Vec<Vec<f32>>]) -> Result<f64, EvalError> {
    if source.is_empty() {
        return Err(EvalError::Empty);
    }
    let dim = source[0].len();
    let (mut sum, mut n) = (0f64, 0usize);
    for target in targets {
        if target.len() != source.len() {
            return Err(EvalError::LengthMismatch {
                what: "translations",
                expected: source.len(),
                got: target.len(),
            });
        }
        for (index, (a, b)) in source.iter().zip(target).enumerate() {
            if a.len() != dim || b.len() != dim {
                return Err(EvalError::DimensionMismatch {
                    index,
                    expected: dim,
                    got: if a.len() != dim { a.len() } else { b.len() },
                });
            }
            for (x, y) in a.iter().zip(b) {
                let d = (*x - *y) as f64;
                sum += d * d;
                n += 1;
            }
        }
    }
    Ok(if n == 0 { 0.0 } else { -100.0 * sum / n as f64 })
}

impl Evaluator for Mse {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (student, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let teacher = cx.model(&self.teacher)?;
        let source = encode(
            teacher,
            &column(ds, 0)?,
            c.batch_size,
            None,
            super::Truncate::default(),
        )?;
        let targets = (1..ds.text_columns.len())
            .map(|i| c.encode_column(student, ds, i))
            .collect::<crate::runtime::Result<Vec<_>>>()?;
        let v = negative_mse(&source, &targets).map_err(super::math_err("MSE"))?;
        Ok(EvalMetrics {
            entries: vec![("negative_mse".to_string(), v)],
            primary: "negative_mse".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() -> Result<(), EvalError> {
        // Source (1, 0); translations (0, 0) and (1, 2): squared errors
        // 1 + 0 and 0 + 4 over 4 values: MSE 1.25, reported -125.
        let v = negative_mse(
            &[vec![1.0, 0.0]],
            &[vec![vec![0.0, 0.0]], vec![vec![1.0, 2.0]]],
        )?;
        assert!((v + 125.0).abs() < 1e-12);
        assert!(negative_mse(&[vec![1.0]], &[vec![]]).is_err());
        assert_eq!(negative_mse(&[], &[]), Err(EvalError::Empty));
        Ok(())
    }
}
