//! `CoSENTLoss` (Su 2022): for a batch of pairs with similarity `s_i` and
//! label `y_i`,
//!
//! `loss = log(1 + sum_{i,j: y_i > y_j} exp(scale * (s_j - s_i)))`,
//!
//! computed as a logsumexp over the `[n, n]` matrix of differences with the
//! pairs whose labels are not ordered masked out, and a 0 prepended for the
//! `1 +`. sentence-transformers 6.2 evaluates the same sum with a sort and a
//! `logcumsumexp`; the value is identical.

use candle_core::{Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

/// The arguments of the CoSENT family (CoSENT, AnglE).
pub(super) const ARGS: &[crate::registry::ArgSpec] = &[
    req("model", Model, "the model trained"),
    opt("scale", Float, "20.0", "inverse temperature").above(0.0),
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CoSENTLoss",
        family: Family::Loss,
        doc: "Ranks pairs so that pairs with higher scores have higher cosine similarity (CoSENT).",
        args: ARGS,
        columns: Some(columns::PAIR_SCORE),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(CoSENTLoss::new(
        a.f64("scale").map_err(super::arg)?,
    )))
}

/// Masked-out entries: `exp` of this is 0 in f32 and f64.
const MASKED: f64 = -1e12;

/// The CoSENT objective over pair similarities `sims` `[n]` and their
/// float labels `labels` `[n]` (same dtype), at `scale`.
pub fn cosent_from_similarities(sims: &Tensor, labels: &Tensor, scale: f64) -> Result<Tensor> {
    let n = sims.elem_count();
    let s = sims.flatten_all()?.affine(scale, 0.0)?;
    let y = labels.flatten_all()?;
    // diff[i][j] = s_j - s_i, kept where y_i > y_j.
    let diff = s.unsqueeze(0)?.broadcast_sub(&s.unsqueeze(1)?)?;
    let ordered = y.unsqueeze(1)?.broadcast_gt(&y.unsqueeze(0)?)?;
    let masked = Tensor::full(MASKED, (n, n), s.device())?.to_dtype(s.dtype())?;
    let kept = ordered.where_cond(&diff, &masked)?.reshape((1, n * n))?;
    let zero = Tensor::zeros((1, 1), s.dtype(), s.device())?;
    let all = Tensor::cat(&[&zero, &kept], 1)?;
    ops::logsumexp_rows(&all)?.squeeze(0)
}

/// Which pairwise similarity CoSENT ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairSim {
    /// `util.pairwise_cos_sim`.
    Cosine,
    /// `util.pairwise_angle_sim` (AnglE).
    Angle,
}

impl PairSim {
    pub(crate) fn apply(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            PairSim::Cosine => ops::pairwise_cos_sim(a, b),
            PairSim::Angle => super::angle::pairwise_angle_sim(a, b),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CoSENTLoss {
    /// Inverse temperature; sentence-transformers' default is 20.
    pub scale: f64,
}

impl Default for CoSENTLoss {
    fn default() -> Self {
        CoSENTLoss { scale: 20.0 }
    }
}

impl CoSENTLoss {
    pub fn new(scale: f64) -> Self {
        CoSENTLoss { scale }
    }
}

impl Loss for CoSENTLoss {
    fn name(&self) -> &str {
        "CoSENTLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let labels = inputs.scores_for(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        let sims = PairSim::Cosine.apply(&cols[0], &cols[1])?;
        cosent_from_similarities(&sims, &labels, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;
    use candle_core::Var;

    fn loss_of(u: Vec<Vec<f64>>, v: Vec<Vec<f64>>, y: &[f64], scale: f64) -> Result<f64> {
        let inputs = LossInputs::new(vec![t2(&u), t2(&v)]).with_scores(t1(y));
        Ok(scalar(&CoSENTLoss::new(scale).forward(&inputs)?))
    }

    #[test]
    fn hand_computed_values() -> Result<()> {
        // Cosines 1 and 0 with labels 1 and 0: the only ordered pair is
        // (i=0, j=1), so loss = log(1 + exp(20 * (0 - 1))) = log(1 + e^-20).
        let u = vec![vec![1.0, 0.0], vec![1.0, 0.0]];
        let v = vec![vec![2.0, 0.0], vec![0.0, 3.0]];
        let l = loss_of(u.clone(), v.clone(), &[1.0, 0.0], 20.0)?;
        assert!((l - (-20f64).exp().ln_1p()).abs() < 1e-15, "{l}");
        // Equal labels: no ordered pair, loss = log(1) = 0.
        assert_eq!(loss_of(u.clone(), v.clone(), &[0.3, 0.3], 20.0)?, 0.0);
        // Inverted labels, scale 1: log(1 + exp(1 - 0)) = log(1 + e).
        let l = loss_of(u, v, &[0.0, 1.0], 1.0)?;
        assert!((l - 1f64.exp().ln_1p()).abs() < 1e-12, "{l}");
        // Three pairs, cosines a = 1, b = 1/sqrt(2), c = 0 with labels
        // 1, 0.5, 0 at scale 2: log(1 + e^{2(b-a)} + e^{2(c-a)} + e^{2(c-b)}).
        let u = vec![vec![1.0, 0.0]; 3];
        let v = vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![0.0, 1.0]];
        let b = 0.5f64.sqrt();
        let expected = (1.0 + (2.0 * (b - 1.0)).exp() + (-2.0f64).exp() + (-2.0 * b).exp()).ln();
        let l = loss_of(u, v, &[1.0, 0.5, 0.0], 2.0)?;
        assert!((l - expected).abs() < 1e-12, "{l} vs {expected}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let l = loss_of(gen(0, 5, 4), gen(1, 5, 4), &gen_scores(5), 20.0)?;
        assert!((l - 24.125964846727605).abs() < 1e-10, "{l}");
        let l = loss_of(gen(0, 5, 4), gen(1, 5, 4), &gen_scores(5), 5.0)?;
        assert!((l - 6.778273878872926).abs() < 1e-10, "{l}");
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let y = t1(&gen_scores(5));
        check_grads(&[gen(0, 5, 4), gen(1, 5, 4)], |t| {
            CoSENTLoss::new(5.0).forward(&LossInputs::new(t.to_vec()).with_scores(y.clone()))
        })?;
        check_grads(&[gen(2, 4, 3), gen(3, 4, 3)], |t| {
            CoSENTLoss::default()
                .forward(&LossInputs::new(t.to_vec()).with_scores(y.narrow(0, 0, 4)?))
        })
    }

    #[test]
    fn integer_labels_stand_in_for_scores() -> Result<()> {
        // Labels 1, 0 as integers: same as float scores 1.0, 0.0.
        let u = t2(&[vec![1.0, 0.0], vec![1.0, 0.0]]);
        let v = t2(&[vec![2.0, 0.0], vec![0.0, 3.0]]);
        let labels = Tensor::new(&[1i64, 0], &candle_core::Device::Cpu)?;
        let l = scalar(
            &CoSENTLoss::default().forward(&LossInputs::new(vec![u, v]).with_labels(labels))?,
        );
        assert!((l - (-20f64).exp().ln_1p()).abs() < 1e-15, "{l}");
        Ok(())
    }

    #[test]
    fn f32_embeddings() -> Result<()> {
        let u = t2(&gen(0, 5, 4)).to_dtype(candle_core::DType::F32)?;
        let v = t2(&gen(1, 5, 4)).to_dtype(candle_core::DType::F32)?;
        let inputs = LossInputs::new(vec![u, v]).with_scores(t1(&gen_scores(5)));
        let l = CoSENTLoss::default().forward(&inputs)?.to_vec0::<f32>()?;
        assert!((l as f64 - 24.125964846727605).abs() < 1e-4, "{l}");
        Ok(())
    }

    #[test]
    fn half_precision_embeddings_are_upcast() -> Result<()> {
        use candle_core::DType;
        let u = Var::from_tensor(&t2(&gen(0, 5, 4)).to_dtype(DType::BF16)?)?;
        let v = t2(&gen(1, 5, 4)).to_dtype(DType::BF16)?;
        let inputs =
            LossInputs::new(vec![u.as_tensor().clone(), v]).with_scores(t1(&gen_scores(5)));
        let loss = CoSENTLoss::default().forward(&inputs)?;
        assert_eq!(loss.dtype(), DType::F32);
        // bf16 rounding of the inputs moves the value a little.
        assert!((loss.to_vec0::<f32>()? as f64 - 24.125964846727605).abs() < 0.5);
        // The gradient reaches the bf16 input through the upcast.
        let grads = loss.backward()?;
        let g = grads.get(u.as_tensor()).map(|g| g.dtype());
        assert_eq!(g, Some(DType::BF16));
        Ok(())
    }
}
