//! `LabelAccuracyEvaluator`: the share of pairs whose predicted class (the
//! argmax of a classifier's logits, e.g. [`SoftmaxLoss`]) equals the gold
//! label. One metric, `accuracy`, which is also the primary.
//!
//! [`SoftmaxLoss`]: crate::runtime::loss::SoftmaxLoss

use candle_core::Tensor;

use super::{
    math_err, Common, EvalCx, EvalError, EvalMetrics, Evaluator, EvaluatorEntry, BATCH_SIZE, MODEL,
    PROMPTS,
};
use crate::registry::{columns, req, ArgError, ArgType::*, Args, Component, Family};
use crate::runtime::loss::LossInputs;

pub const ENTRY: EvaluatorEntry = EvaluatorEntry {
    spec: Component {
        name: "LabelAccuracy",
        family: Family::Evaluator,
        doc: "Accuracy of the classifier of a SoftmaxLoss objective on labelled pairs.",
        args: &[
            MODEL,
            req("data", Data, "the labelled pairs"),
            req(
                "objective",
                ClassifierObjective,
                "a SoftmaxLoss objective of the same model, whose classifier is used",
            ),
            BATCH_SIZE,
            PROMPTS,
        ],
        columns: Some(columns::PAIR_LABEL),
        metrics: &["accuracy"],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn Evaluator>, ArgError> {
    Ok(Box::new(LabelAccuracy {
        common: Common::from_args(a)?,
        objective: a.str("objective")?.to_string(),
    }))
}

struct LabelAccuracy {
    common: Common,
    objective: String,
}

impl Evaluator for LabelAccuracy {
    fn evaluate(&self, cx: &EvalCx) -> crate::runtime::Result<EvalMetrics> {
        let c = &self.common;
        let (model, ds) = (cx.model(&c.model)?, cx.dataset(&c.data)?);
        let loss = cx.loss(&self.objective)?;
        let labels = ds.classes().ok_or_else(|| {
            crate::runtime::Error::Msg(format!("`{}` has no class labels", ds.name))
        })?;
        let to_t = |rows: Vec<Vec<f32>>| -> crate::runtime::Result<Tensor> {
            let dim = rows.first().map_or(0, Vec::len);
            let n = rows.len();
            Ok(Tensor::from_vec(rows.concat(), (n, dim), model.device())?)
        };
        let e1 = to_t(c.encode_column(model, ds, 0)?)?;
        let e2 = to_t(c.encode_column(model, ds, 1)?)?;
        let logits = loss
            .logits(&LossInputs::new(vec![e1, e2]))?
            .ok_or_else(|| {
                crate::runtime::Error::Msg(format!(
                    "objective `{}` has no classifier",
                    self.objective
                ))
            })?;
        let preds = argmax_rows(&logits.to_vec2::<f32>()?);
        label_accuracy(&preds, &labels).map_err(math_err("LabelAccuracy"))
    }
}

/// Accuracy of `predictions` against `labels`.
pub fn label_accuracy(predictions: &[u32], labels: &[i64]) -> Result<EvalMetrics, EvalError> {
    if labels.is_empty() {
        return Err(EvalError::Empty);
    }
    if predictions.len() != labels.len() {
        return Err(EvalError::LengthMismatch {
            what: "predictions",
            expected: labels.len(),
            got: predictions.len(),
        });
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p as i64 == **l)
        .count();
    let mut out = EvalMetrics {
        entries: vec![],
        primary: "accuracy".into(),
    };
    out.push("accuracy", correct as f64 / labels.len() as f64);
    Ok(out)
}

/// The argmax of each row of logits (the first maximum on ties, as torch).
pub fn argmax_rows(logits: &[Vec<f32>]) -> Vec<u32> {
    logits
        .iter()
        .map(|row| {
            let mut best = 0usize;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_by_hand() -> Result<(), EvalError> {
        // Predictions 0, 2, 1, 1 vs labels 0, 2, 2, 1: 3 of 4 right.
        let m = label_accuracy(&[0, 2, 1, 1], &[0, 2, 2, 1])?;
        assert_eq!(m.entries, vec![("accuracy".to_string(), 0.75)]);
        assert_eq!(m.primary, "accuracy");
        assert_eq!(label_accuracy(&[], &[]), Err(EvalError::Empty));
        assert!(label_accuracy(&[0], &[0, 1]).is_err());
        Ok(())
    }

    #[test]
    fn argmax() {
        let p = argmax_rows(&[
            vec![0.1, 0.7, 0.2],
            vec![1.0, 1.0, 0.0],
            vec![-3.0, -1.0, -2.0],
        ]);
        assert_eq!(p, vec![1, 0, 1]);
    }
}
