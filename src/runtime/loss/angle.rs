//! `AnglELoss` (Li & Li 2024): CoSENT over `pairwise_angle_sim`, with
//! sentence-transformers' extension to (anchor, positive, negatives...)
//! tuples: the anchor is paired with every other column, positives labelled
//! with the scores (or 1 when there are none) and negatives with
//! `1 - score`.

use candle_core::{Result, Tensor};

use super::cosent::{cosent_from_similarities, PairSim};
use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "AnglELoss",
        family: Family::Loss,
        doc: "CoSENT on angle differences in complex space (AnglE).",
        args: super::cosent::ARGS,
        columns: Some(columns::PAIR_SCORE),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(AnglELoss::new(
        a.f64("scale").map_err(super::arg)?,
    )))
}

/// `util.pairwise_angle_sim`: `|cos(x, y) + sin(x, y)|` after L2
/// normalisation, where dimension `i` is paired with `i + D/2` for the sine
/// term (`sum(last_x * first_y - first_x * last_y)`), odd dimensions
/// padded with a zero. `[n]`.
pub fn pairwise_angle_sim(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (x, y) = if x.dim(1)? % 2 == 1 {
        (x.pad_with_zeros(1, 0, 1)?, y.pad_with_zeros(1, 0, 1)?)
    } else {
        (x.clone(), y.clone())
    };
    let half = x.dim(1)? / 2;
    let nx = ops::normalize_rows(&x, 1e-12)?;
    let ny = ops::normalize_rows(&y, 1e-12)?;
    let cos = (&nx * &ny)?.sum(1)?;
    let (fx, lx) = (nx.narrow(1, 0, half)?, nx.narrow(1, half, half)?);
    let (fy, ly) = (ny.narrow(1, 0, half)?, ny.narrow(1, half, half)?);
    let sin = ((lx * fy)? - (fx * ly)?)?.sum(1)?;
    (cos + sin)?.abs()
}

#[derive(Debug, Clone)]
pub struct AnglELoss {
    /// Inverse temperature; sentence-transformers' default is 20.
    pub scale: f64,
}

impl Default for AnglELoss {
    fn default() -> Self {
        AnglELoss { scale: 20.0 }
    }
}

impl AnglELoss {
    pub fn new(scale: f64) -> Self {
        AnglELoss { scale }
    }
}

impl Loss for AnglELoss {
    fn name(&self) -> &str {
        "AnglELoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, None)?;
        let dtype = cols[0].dtype();
        if cols.len() == 2 {
            let labels = inputs.scores_for(self.name(), batch, dtype, cols[0].device())?;
            let sims = PairSim::Angle.apply(&cols[0], &cols[1])?;
            return cosent_from_similarities(&sims, &labels, self.scale);
        }
        let labels = match inputs.scores {
            Some(_) => inputs.scores_for(self.name(), batch, dtype, cols[0].device())?,
            None => Tensor::ones(batch, dtype, cols[0].device())?,
        };
        let k = cols.len() - 1;
        let anchors = Tensor::cat(&vec![&cols[0]; k], 0)?;
        let others = Tensor::cat(&cols[1..], 0)?;
        let negative_labels = labels.affine(-1.0, 1.0)?;
        let mut all = vec![labels];
        all.extend(std::iter::repeat_n(negative_labels, k - 1));
        let labels = Tensor::cat(&all, 0)?;
        let sims = PairSim::Angle.apply(&anchors, &others)?;
        cosent_from_similarities(&sims, &labels, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn angle_sim_hand_values() -> Result<()> {
        // d = 2 pairs dimension 0 with dimension 1 (first = [x0], last = [x1]).
        // x = (1,0), y = (0,1): cos 0, sin = x1*y0 - x0*y1 = -1: |0 - 1| = 1.
        // x = (1,0), y = (1,1)/sqrt(2): cos = 1/sqrt(2), sin = 0 - 1/sqrt(2),
        // |cos + sin| = 0.
        // d = 3 (padded to 4): x = (1,0,0,0), y = (0,1,0,0): cos 0, first
        // halves (1,0), (0,1), last halves zero: sin 0, result 0.
        let s = pairwise_angle_sim(
            &t2(&[vec![1.0, 0.0], vec![1.0, 0.0]]),
            &t2(&[vec![0.0, 1.0], vec![1.0, 1.0]]),
        )?
        .to_vec1::<f64>()?;
        assert!((s[0] - 1.0).abs() < 1e-15 && s[1].abs() < 1e-15, "{s:?}");
        let s = pairwise_angle_sim(&t2(&[vec![1.0, 0.0, 0.0]]), &t2(&[vec![0.0, 1.0, 0.0]]))?;
        assert_eq!(s.to_vec1::<f64>()?, vec![0.0]);
        Ok(())
    }

    fn value(cols: &[Vec<Vec<f64>>], scores: Option<&[f64]>) -> Result<f64> {
        let mut inputs = LossInputs::new(cols.iter().map(|c| t2(c)).collect());
        if let Some(s) = scores {
            inputs = inputs.with_scores(t1(s));
        }
        Ok(scalar(&AnglELoss::default().forward(&inputs)?))
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let y = gen_scores(5);
        let cases: [(f64, f64); 4] = [
            (
                value(&[gen(0, 5, 4), gen(1, 5, 4)], Some(&y))?,
                20.04004232019252,
            ),
            (
                value(&[gen(0, 5, 5), gen(1, 5, 5)], Some(&y))?,
                11.53137656746254,
            ),
            (
                value(&[gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)], None)?,
                8.384323689356506,
            ),
            (
                value(
                    &[gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4), gen(3, 5, 4)],
                    Some(&y),
                )?,
                22.141420815117662,
            ),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn triplet_labels_hand_value() -> Result<()> {
        // Anchor (1,0), positive (1,0) (angle sim 1), negative (0,1) (angle
        // sim 1 too: |0 + (0*0 - 1*1)| = 1) -> labels 1 and 0 with equal
        // sims: log(1 + exp(20 * (1 - 1))) = log 2.
        let l = value(
            &[
                vec![vec![1.0, 0.0]],
                vec![vec![1.0, 0.0]],
                vec![vec![0.0, 1.0]],
            ],
            None,
        )?;
        assert!((l - 2f64.ln()).abs() < 1e-12, "{l}");
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let y = t1(&gen_scores(5));
        let loss = AnglELoss::new(3.0);
        check_grads(&[gen(0, 5, 4), gen(1, 5, 4)], |t| {
            loss.forward(&LossInputs::new(t.to_vec()).with_scores(y.clone()))
        })?;
        check_grads(&[gen(0, 4, 5), gen(1, 4, 5), gen(2, 4, 5)], |t| {
            loss.forward(&LossInputs::new(t.to_vec()))
        })
    }
}
