//! `MarginMSELoss` (Hofstätter et al. 2021): distillation of a teacher's
//! margins. For (query, positive, negative) and the teacher's margin
//! `m = t(query, positive) - t(query, negative)` given as the score column,
//! the loss is `mean((sim(q, p) - sim(q, n) - m)^2)`; `sim` is the dot
//! product by default, as in sentence-transformers.
//!
//! With several negatives (query, positive, negative_1 .. negative_n) the
//! label is a list (`score: take(col("margins"), n)`): one margin per
//! negative, or the teacher's n + 1 scores (positive first), whose margins
//! `s_pos - s_neg_i` the loss takes, as sentence-transformers does. The
//! error is averaged over every (row, negative).
//!
//! The margins come from a data column (precomputed by the teacher, as in
//! the MS MARCO recipes, or mined with `output_scores`), or from a teacher
//! model given as `teacher:`, which scores every row's candidates once
//! before training (see `runtime/train/teacher.rs`).

use candle_core::{Result, Tensor};

use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, maybe, opt, req, ArgType::*, Args, Component, Family, Rule};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MarginMSELoss",
        family: Family::Loss,
        doc: "Distils a teacher's margins: the mean squared error between sim(query, positive) - sim(query, negative_i) and the teacher's margins in the score column (one number with one negative; with n negatives a list of n margins or of the n + 1 teacher scores, positive first).",
        args: &[
            req("model", Model, "the model trained"),
            opt("similarity", Choice(Similarity::NAMES), "dot", "the student's similarity (the teacher's margins should use the same scale)"),
            maybe("teacher", Model, "a frozen teacher model that scores each row's candidates (instead of a score column): sim(query, candidate) under `teacher_similarity`"),
            opt("teacher_similarity", Choice(Similarity::NAMES), "cosine", "the teacher's similarity (sentence-transformers' model default is cosine)"),
        ],
        columns: Some(columns::TRIPLET_MARGIN),
        rules: &[Rule::Needs("teacher_similarity", "teacher")],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(MarginMSELoss {
        similarity: a.choice("similarity").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct MarginMSELoss {
    pub similarity: Similarity,
}

impl Loss for MarginMSELoss {
    fn name(&self) -> &str {
        "MarginMSELoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 3, None)?;
        let negatives = cols.len() - 2;
        let labels = inputs.score_matrix(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        let targets = match labels.dim(1)? {
            k if k == negatives => labels,
            k if k == negatives + 1 => labels
                .narrow(1, 0, 1)?
                .broadcast_sub(&labels.narrow(1, 1, negatives)?)?,
            k => candle_core::bail!(
                "MarginMSELoss: {negatives} negative column(s) need {negatives} margins or {} scores per row, got {k}",
                negatives + 1
            ),
        };
        let pos = self.similarity.pairwise(&cols[0], &cols[1])?;
        let margins = cols[2..]
            .iter()
            .map(|n| &pos - self.similarity.pairwise(&cols[0], n)?)
            .collect::<Result<Vec<_>>>()?;
        (Tensor::stack(&margins, 1)? - targets)?.sqr()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn triplet_value(loss: &MarginMSELoss, cols: &[Vec<Vec<f64>>], scores: &[f64]) -> Result<f64> {
        scored_value(loss, cols, scores)
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // q (1, 2), p (3, 0), n (0, 1): dot margin 3 - 2 = 1; teacher 0.5.
        // q (0, 1), p (0, 2), n (1, 1): margin 2 - 1 = 1; teacher 2.
        // Loss = ((1 - 0.5)^2 + (1 - 2)^2) / 2 = 0.625.
        let q = vec![vec![1.0, 2.0], vec![0.0, 1.0]];
        let p = vec![vec![3.0, 0.0], vec![0.0, 2.0]];
        let n = vec![vec![0.0, 1.0], vec![1.0, 1.0]];
        let loss = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let got = triplet_value(&loss, &[q, p, n], &[0.5, 2.0])?;
        assert!((got - 0.625).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: margin_mse_*.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let scores = gen_scores(5);
        let dot = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let cos = MarginMSELoss {
            similarity: Similarity::Cosine,
        };
        assert_reference(&[
            (triplet_value(&dot, &cols, &scores)?, 0.9750074888546381),
            (triplet_value(&cos, &cols, &scores)?, 0.4487982160153129),
        ]);
        Ok(())
    }

    #[test]
    fn lists_of_margins_or_scores_match_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: margin_mse_two_margins and
        // margin_mse_three_scores (two negatives).
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4), gen(3, 5, 4)];
        let with = |l: &MarginMSELoss, k: usize| -> Result<f64> {
            let inputs = LossInputs::new(cols.iter().map(|c| t2(c)).collect())
                .with_scores(t2(&teacher_scores(5, k)));
            Ok(scalar(&l.forward(&inputs)?))
        };
        let dot = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let cos = MarginMSELoss {
            similarity: Similarity::Cosine,
        };
        assert_reference(&[
            (with(&dot, 2)?, 48.4830381908199),
            (with(&cos, 3)?, 34.40854035049663),
        ]);
        // One score per row with two negatives, or four: neither fits.
        assert!(with(&dot, 1).is_err() && with(&dot, 4).is_err());
        Ok(())
    }

    #[test]
    fn hand_computed_list_of_scores() -> Result<()> {
        // q (1, 0); p (2, 0), n1 (1, 0), n2 (0, 3): dot 2, 1, 0, so the
        // margins are 1 and 2. Teacher scores (5, 4.5, 2) give margins 0.5
        // and 3: loss ((1 - 0.5)^2 + (2 - 3)^2) / 2 = 0.625.
        let cols = [
            vec![vec![1.0, 0.0]],
            vec![vec![2.0, 0.0]],
            vec![vec![1.0, 0.0]],
            vec![vec![0.0, 3.0]],
        ];
        let inputs = LossInputs::new(cols.iter().map(|c| t2(c)).collect())
            .with_scores(t2(&[vec![5.0, 4.5, 2.0]]));
        let loss = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let got = scalar(&loss.forward(&inputs)?);
        assert!((got - 0.625).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn gradients_with_two_negatives() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3), gen(3, 4, 3)];
        let t = t2(&teacher_scores(4, 3));
        let loss = MarginMSELoss {
            similarity: Similarity::Cosine,
        };
        check_grads(&cols, |x| {
            loss.forward(&LossInputs::new(x.to_vec()).with_scores(t.clone()))
        })
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        let scores = t1(&gen_scores(4));
        for similarity in Similarity::all() {
            let loss = MarginMSELoss { similarity };
            check_grads(&cols, |t| {
                loss.forward(&LossInputs::new(t.to_vec()).with_scores(scores.clone()))
            })?;
        }
        Ok(())
    }

    #[test]
    fn needs_three_columns_and_a_margin() {
        let loss = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let two = LossInputs::new(vec![t2(&gen(0, 2, 2)), t2(&gen(1, 2, 2))])
            .with_scores(t1(&[0.0, 1.0]));
        assert!(loss.forward(&two).is_err());
        let unlabelled = LossInputs::new(vec![
            t2(&gen(0, 2, 2)),
            t2(&gen(1, 2, 2)),
            t2(&gen(2, 2, 2)),
        ]);
        assert!(loss.forward(&unlabelled).is_err());
    }
}
