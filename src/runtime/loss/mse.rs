//! `MSELoss` for distillation: the mean squared error between the student's
//! embeddings and precomputed teacher embeddings. With several text columns
//! the loss is the mean over columns of each column's MSE, against the same
//! teacher embedding (`[batch, dim]`, broadcast) or one per column
//! (`[batch, columns, dim]`), as sentence-transformers' `EmbedDistillLoss`
//! with `distance_metric = "mse"` (its optional learned projection is not
//! supported: teacher and student dimensions must match).

use candle_core::{bail, Result, Tensor};

use super::{Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MSELoss",
        family: Family::Loss,
        doc: "Distillation: the student's embedding of every text column regresses on the teacher's embedding of the first column.",
        args: &[
            req("model", Model, "the student model trained"),
            req("teacher", Model, "the frozen teacher model; same embedding width as the student"),
        ],
        columns: Some(columns::SOURCE_AND_TARGETS),
        ..Component::BASE
    },
    build,
};

fn build(_: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(MSELoss))
}

#[derive(Debug, Clone, Default)]
pub struct MSELoss;

impl Loss for MSELoss {
    fn name(&self) -> &str {
        "MSELoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, dim) = inputs.columns(self.name(), 1, None)?;
        let Some(teacher) = &inputs.teacher else {
            bail!("MSELoss needs precomputed teacher embeddings");
        };
        let teacher = teacher
            .detach()
            .to_dtype(cols[0].dtype())?
            .to_device(cols[0].device())?;
        let per_column: Vec<Tensor> = match teacher.dims() {
            &[b, d] if b == batch && d == dim => vec![teacher; cols.len()],
            &[b, c, d] if b == batch && c == cols.len() && d == dim => (0..c)
                .map(|i| teacher.narrow(1, i, 1)?.squeeze(1))
                .collect::<Result<_>>()?,
            other => bail!(
                "MSELoss: teacher embeddings have shape {other:?}; expected [{batch}, {dim}] \
                 or [{batch}, {}, {dim}]",
                cols.len()
            ),
        };
        let losses: Vec<Tensor> = cols
            .iter()
            .zip(&per_column)
            .map(|(s, t)| (s - t)?.sqr()?.mean_all())
            .collect::<Result<_>>()?;
        Tensor::stack(&losses, 0)?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Student [[1, 2], [3, 4]], teacher [[1, 0], [0, 4]]: squared
        // errors 0, 4, 9, 0 -> mean 13/4.
        let s = t2(&[vec![1.0, 2.0], vec![3.0, 4.0]]);
        let t = t2(&[vec![1.0, 0.0], vec![0.0, 4.0]]);
        let l =
            scalar(&MSELoss.forward(&LossInputs::new(vec![s.clone()]).with_teacher(t.clone()))?);
        assert_eq!(l, 3.25);
        // Two columns (the second equal to the teacher): (13/4 + 0) / 2.
        let two = LossInputs::new(vec![s, t.clone()]).with_teacher(t);
        assert_eq!(scalar(&MSELoss.forward(&two)?), 1.625);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let (u, v, t, t2_) = (gen(0, 5, 4), gen(1, 5, 4), gen(5, 5, 4), gen(6, 5, 4));
        let one = LossInputs::new(vec![t2(&u)]).with_teacher(t2(&t));
        assert!((scalar(&MSELoss.forward(&one)?) - 2.1566394959575512).abs() < 1e-12);
        let two = LossInputs::new(vec![t2(&u), t2(&v)]).with_teacher(t2(&t));
        assert!((scalar(&MSELoss.forward(&two)?) - 1.2764690046107092).abs() < 1e-12);
        let per_col = Tensor::stack(&[t2(&t), t2(&t2_)], 1)?;
        let three_d = LossInputs::new(vec![t2(&u), t2(&v)]).with_teacher(per_col);
        assert!((scalar(&MSELoss.forward(&three_d)?) - 1.9556446081403371).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let t = t2(&gen(5, 3, 4));
        check_grads(&[gen(0, 3, 4), gen(1, 3, 4)], |x| {
            MSELoss.forward(&LossInputs::new(x.to_vec()).with_teacher(t.clone()))
        })
    }

    #[test]
    fn shape_errors() {
        let s = t2(&gen(0, 3, 4));
        assert!(MSELoss.forward(&LossInputs::new(vec![s.clone()])).is_err());
        let wrong = LossInputs::new(vec![s]).with_teacher(t2(&gen(5, 3, 5)));
        assert!(MSELoss.forward(&wrong).is_err());
    }
}
