//! `LabelAccuracyEvaluator`: the share of pairs whose predicted class (the
//! argmax of a classifier's logits, e.g. [`SoftmaxLoss`]) equals the gold
//! label. One metric, `accuracy`, which is also the primary.
//!
//! [`SoftmaxLoss`]: crate::runtime::loss::SoftmaxLoss

use super::{EvalError, EvalMetrics};

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
