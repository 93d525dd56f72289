//! `DistillKLDivLoss` (Lin et al. 2020, "Distilling Dense Representations
//! for Ranking using Tightly-Coupled Teachers"): the student learns the
//! teacher's ranking of a query's candidates. For (query, positive,
//! negative_1 .. negative_n) and the teacher's n + 1 scores per row (the
//! label list, `score: take(col("scores"), n + 1)`):
//!
//! - the student's scores `s_i = sim(query, candidate_i) / T_s`;
//! - the teacher's distribution `p = softmax(t / T_t)`;
//! - the loss `T_s^2 * sum_rows KL(p || softmax(s)) / batch` (torch's
//!   `KLDivLoss(reduction="batchmean")`; a candidate the teacher gives
//!   probability 0 adds nothing), scaled by the student temperature
//!   squared, which keeps gradient magnitudes comparable across
//!   temperatures (Hinton et al.).
//!
//! The teacher's scores come from the label column, or from a teacher
//! model given as `teacher:` (scored once before training, see
//! `runtime/train/teacher.rs`). `temperature` sets both; `student_temperature` and `teacher_temperature`
//! override one side, as in sentence-transformers 6.

use candle_core::{bail, Result, Tensor, D};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, maybe, opt, req, ArgType::*, Args, Component, Family, Rule};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "DistillKLDivLoss",
        family: Family::Loss,
        doc: "Distils a teacher's ranking: the KL divergence from the softmax of the teacher's scores (a list per row, one per candidate: the positive, then each negative) to the softmax of the student's similarities.",
        args: &[
            req("model", Model, "the model trained (the student)"),
            opt("similarity", Choice(Similarity::NAMES), "dot", "the student's similarity"),
            maybe("teacher", Model, "a frozen teacher model that scores each row's candidates (instead of a score column): sim(query, candidate) under `teacher_similarity`"),
            opt("teacher_similarity", Choice(Similarity::NAMES), "cosine", "the teacher's similarity (sentence-transformers' model default is cosine)"),
            opt("temperature", Float, "1.0", "softens both distributions (higher: softer); 1.0 leaves the scores as they are").above(0.0),
            maybe("student_temperature", Float, "the student side's temperature (default: temperature); the loss is scaled by its square").above(0.0),
            maybe("teacher_temperature", Float, "the teacher side's temperature (default: temperature); match it to the spread of the teacher's scores").above(0.0),
        ],
        columns: Some(columns::CANDIDATE_SCORES),
        rules: &[Rule::Needs("teacher_similarity", "teacher")],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    let t = a.f64("temperature").map_err(super::arg)?;
    Ok(Box::new(DistillKLDivLoss {
        similarity: a.choice("similarity").map_err(super::arg)?,
        student_temperature: a
            .opt_f64("student_temperature")
            .map_err(super::arg)?
            .unwrap_or(t),
        teacher_temperature: a
            .opt_f64("teacher_temperature")
            .map_err(super::arg)?
            .unwrap_or(t),
    }))
}

#[derive(Debug, Clone)]
pub struct DistillKLDivLoss {
    pub similarity: Similarity,
    pub student_temperature: f64,
    pub teacher_temperature: f64,
}

impl Loss for DistillKLDivLoss {
    fn name(&self) -> &str {
        "DistillKLDivLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 3, None)?;
        let ways = cols.len() - 1;
        let teacher = inputs.score_matrix(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        if teacher.dim(1)? != ways {
            bail!(
                "DistillKLDivLoss: {ways} candidate column(s) need {ways} teacher scores per row, got {}",
                teacher.dim(1)?
            );
        }
        let student = cols[1..]
            .iter()
            .map(|c| self.similarity.pairwise(&cols[0], c))
            .collect::<Result<Vec<_>>>()?;
        let student = (Tensor::stack(&student, 1)? / self.student_temperature)?;
        let log_q = student.broadcast_sub(&ops::logsumexp_rows(&student)?.unsqueeze(1)?)?;
        let t = (teacher / self.teacher_temperature)?;
        let log_p = t.broadcast_sub(&ops::logsumexp_rows(&t)?.unsqueeze(1)?)?;
        let p = log_p.exp()?;
        // p * (log p - log q), with 0 where p underflowed to 0 (torch's
        // xlogy convention): `log p` is then -inf and the product NaN.
        let zero = p.zeros_like()?;
        let terms = p.gt(&zero)?.where_cond(&(&p * (log_p - &log_q)?)?, &zero)?;
        let kl = (terms.sum(D::Minus1)?.sum_all()? / batch as f64)?;
        kl * (self.student_temperature * self.student_temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::teacher_scores as teacher;
    use crate::runtime::loss::testutil::*;

    fn loss(similarity: Similarity, ts: f64, tt: f64) -> DistillKLDivLoss {
        DistillKLDivLoss {
            similarity,
            student_temperature: ts,
            teacher_temperature: tt,
        }
    }

    fn value(l: &DistillKLDivLoss, cols: &[Vec<Vec<f64>>], teacher: &[Vec<f64>]) -> Result<f64> {
        let inputs = LossInputs::new(cols.iter().map(|c| t2(c)).collect()).with_scores(t2(teacher));
        Ok(scalar(&l.forward(&inputs)?))
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // One row: q (1, 0), p (1, 0), n (0, 1): dot scores 1, 0.
        // Teacher scores (0, 0): p = (1/2, 1/2); q = softmax(1, 0).
        // KL = sum p (log p - log q) = log(1/2) - (1/2)(log q1 + log q2).
        let (q1, q2) = (1f64.exp() / (1f64.exp() + 1.0), 1.0 / (1f64.exp() + 1.0));
        let want = 0.5f64.ln() - 0.5 * (q1.ln() + q2.ln());
        let cols = [
            vec![vec![1.0, 0.0]],
            vec![vec![1.0, 0.0]],
            vec![vec![0.0, 1.0]],
        ];
        let got = value(&loss(Similarity::Dot, 1.0, 1.0), &cols, &[vec![0.0, 0.0]])?;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Student temperature 2: scores (1/2, 0), the loss times 4.
        let (r1, r2) = (
            0.5f64.exp() / (0.5f64.exp() + 1.0),
            1.0 / (0.5f64.exp() + 1.0),
        );
        let want2 = 4.0 * (0.5f64.ln() - 0.5 * (r1.ln() + r2.ln()));
        let got2 = value(&loss(Similarity::Dot, 2.0, 1.0), &cols, &[vec![0.0, 0.0]])?;
        assert!((got2 - want2).abs() < 1e-12, "{got2} vs {want2}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: distill_kl_*.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4), gen(3, 5, 4)];
        let t = teacher(5, 3);
        assert_reference(&[
            (
                value(&loss(Similarity::Dot, 1.0, 1.0), &cols, &t)?,
                2.314152190267475,
            ),
            (
                value(&loss(Similarity::Cosine, 2.0, 2.0), &cols, &t)?,
                3.104173683666207,
            ),
            (
                value(&loss(Similarity::Dot, 0.5, 3.0), &cols, &t)?,
                0.971523616957875,
            ),
        ]);
        Ok(())
    }

    #[test]
    fn a_teacher_probability_of_zero_adds_nothing() -> Result<()> {
        // A teacher score of -1e6 underflows to probability 0: that
        // candidate drops out instead of making the loss NaN.
        let cols = [gen(0, 2, 3), gen(1, 2, 3), gen(2, 2, 3)];
        let got = value(
            &loss(Similarity::Dot, 1.0, 1.0),
            &cols,
            &[vec![0.0, -1e6], vec![1.0, -1e6]],
        )?;
        assert!(got.is_finite(), "{got}");
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3), gen(3, 4, 3)];
        let t = t2(&teacher(4, 3));
        for similarity in Similarity::all() {
            let l = loss(similarity, 1.5, 0.7);
            check_grads(&cols, |x| {
                l.forward(&LossInputs::new(x.to_vec()).with_scores(t.clone()))
            })?;
        }
        Ok(())
    }

    #[test]
    fn needs_one_teacher_score_per_candidate() {
        let l = loss(Similarity::Dot, 1.0, 1.0);
        let cols: Vec<Tensor> = (0..3).map(|c| t2(&gen(c, 2, 2))).collect();
        let short = LossInputs::new(cols.clone()).with_scores(t1(&[0.0, 1.0]));
        assert!(l.forward(&short).is_err());
        assert!(l.forward(&LossInputs::new(cols)).is_err());
    }
}
