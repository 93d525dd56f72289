//! `MatryoshkaLoss` (Kusupati et al. 2022): another loss applied to the
//! leading `d` dimensions of the embeddings for several `d`, so that a
//! truncated embedding is still a good one.
//!
//! For each dimension `d` (largest first) the wrapped loss sees every
//! column's embeddings cut to their first `d` values and scaled to unit
//! length again (sentence-transformers' `shrink`: `F.normalize(x[..., :d])`),
//! and the result is `sum_d weight_d * loss(shrunk_d)`. The model runs once
//! per batch; only the cheap loss is repeated. Teacher embeddings as wide
//! as the model's (MSELoss) are cut to `d` too, without normalising, as
//! sentence-transformers cuts such labels. With `n_dims_per_step: k` each
//! batch uses `k` of the dimensions, drawn without replacement from the
//! batch's seed (so a resumed run draws what an uninterrupted one would).

use candle_core::{bail, Result, Tensor, Var};

use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::check::types::WRAPPED_LOSS;
use crate::registry::{catalogue, maybe, opt, req, ArgType::*, Args, Component, Family, Rule};
use crate::runtime::train::rng::Rng;

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MatryoshkaLoss",
        family: Family::Loss,
        doc: "Trains embeddings that stay good when truncated: the wrapped loss is applied to the first `d` dimensions (renormalised) for each of `dims`, and the weighted losses are summed. The data is the wrapped loss's.",
        args: &[
            req(WRAPPED_LOSS, LossCall, "the loss applied at every dimension, e.g. `MultipleNegativesRankingLoss(m)`"),
            req("dims", Count, "the embedding dimensions trained, e.g. `[384, 256, 128, 64]`; include the model's full width").at_least(1.0).variadic(),
            maybe("weights", Float, "one weight per dimension (default: 1 each)").variadic(),
            opt("n_dims_per_step", Int, "-1", "how many of the dimensions each batch uses, drawn at random; -1 uses all"),
        ],
        columns: None,
        rules: &[Rule::SameLength("weights", "dims"), Rule::AtMostWidth("dims")],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let inner = a.call(WRAPPED_LOSS).map_err(super::arg)?;
    let Some(entry) = catalogue::loss(&inner.name) else {
        bail!("MatryoshkaLoss: unknown loss `{}`", inner.name);
    };
    let dims = a.usize_list("dims").map_err(super::arg)?;
    let weights = a.opt_f64_list("weights").map_err(super::arg)?;
    let per_step = a.i64("n_dims_per_step").map_err(super::arg)?;
    Ok(Box::new(MatryoshkaLoss::new(
        (entry.build)(&inner.args, cx)?,
        &dims,
        weights.as_deref(),
        per_step,
    )?))
}

pub struct MatryoshkaLoss {
    inner: Box<dyn Loss>,
    /// `(dimension, weight)`, largest dimension first.
    dims: Vec<(usize, f64)>,
    /// Dimensions used per batch; `None` uses all.
    per_step: Option<usize>,
}

impl MatryoshkaLoss {
    /// `weights` default to 1 each; `n_dims_per_step` <= 0 or at least
    /// the number of dimensions uses all of them.
    pub fn new(
        inner: Box<dyn Loss>,
        dims: &[usize],
        weights: Option<&[f64]>,
        n_dims_per_step: i64,
    ) -> Result<Self> {
        if dims.is_empty() || dims.contains(&0) {
            bail!("MatryoshkaLoss: dims must be one or more positive dimensions, got {dims:?}");
        }
        let weights = weights.map_or_else(|| vec![1.0; dims.len()], <[f64]>::to_vec);
        if weights.len() != dims.len() {
            bail!(
                "MatryoshkaLoss: {} weights for {} dims; give one weight per dimension",
                weights.len(),
                dims.len()
            );
        }
        let mut pairs: Vec<(usize, f64)> = dims.iter().copied().zip(weights).collect();
        // Stable: equal dimensions keep their order, as Python's sorted.
        pairs.sort_by_key(|p| std::cmp::Reverse(p.0));
        let per_step = usize::try_from(n_dims_per_step)
            .ok()
            .filter(|&k| k > 0 && k < pairs.len());
        Ok(MatryoshkaLoss {
            inner,
            dims: pairs,
            per_step,
        })
    }

    /// The indices into `dims` a batch with `seed` uses, ascending.
    fn chosen(&self, seed: u64) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.dims.len()).collect();
        if let Some(k) = self.per_step {
            Rng::derived(seed, "matryoshka.dims").shuffle(&mut all);
            all.truncate(k);
            all.sort_unstable();
        }
        all
    }
}

/// The first `d` values of each row of a `[batch, dim]` tensor, scaled to
/// unit length (eps 1e-12, as `F.normalize`).
fn shrink(t: &Tensor, d: usize) -> Result<Tensor> {
    let width = t.dim(t.rank().saturating_sub(1))?;
    if d > width {
        bail!("MatryoshkaLoss: dimension {d} is wider than the model's {width}-dimensional embeddings");
    }
    ops::normalize_rows(&t.narrow(1, 0, d)?, 1e-12)
}

impl Loss for MatryoshkaLoss {
    fn name(&self) -> &str {
        "MatryoshkaLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, _, width) = inputs.columns(self.name(), 1, None)?;
        let mut total: Option<Tensor> = None;
        for i in self.chosen(inputs.seed) {
            let (d, weight) = self.dims[i];
            let mut cut = inputs.clone();
            cut.embeddings = cols.iter().map(|c| shrink(c, d)).collect::<Result<_>>()?;
            // An AdaptiveLayerLoss inside sees every layer cut the same way.
            if let Some(layers) = &inputs.layers {
                cut.layers = Some(
                    layers
                        .iter()
                        .map(|l| l.iter().map(|c| shrink(&ops::float(c)?, d)).collect())
                        .collect::<Result<_>>()?,
                );
            }
            if let Some(t) = &inputs.teacher {
                let last = t.rank().saturating_sub(1);
                if t.dim(last)? == width {
                    cut.teacher = Some(t.narrow(last, 0, d)?);
                }
            }
            let term = self.inner.forward(&cut)?.affine(weight, 0.0)?;
            total = Some(match total {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        match total {
            Some(t) => Ok(t),
            None => bail!("MatryoshkaLoss: no dimension to train"),
        }
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.inner.trainable_vars()
    }

    /// A cached wrapped loss stays cached: the trainer's GradCache pass
    /// differentiates this whole sum with respect to the embeddings.
    fn mini_batch_size(&self) -> Option<usize> {
        self.inner.mini_batch_size()
    }

    fn wants_layers(&self) -> bool {
        self.inner.wants_layers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;
    use crate::runtime::loss::{CoSENTLoss, MultipleNegativesRankingLoss, Similarity};

    fn mnrl(scale: f64) -> Box<dyn Loss> {
        Box::new(MultipleNegativesRankingLoss::new(scale, Similarity::Cosine).expect("scale"))
    }

    /// MNRL (scale 1) of anchors against positives given as cosine
    /// similarity rows: mean over rows of logsumexp(row) - row[i].
    fn mnrl_of(sims: &[[f64; 2]; 2]) -> f64 {
        let row = |i: usize| {
            let r = sims[i];
            (r[0].exp() + r[1].exp()).ln() - r[i]
        };
        (row(0) + row(1)) / 2.0
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Anchors (1,1), (-1,2); positives (2,0), (1,1).
        // At 2 dims: cosines [[1/sqrt2, 1], [-1/sqrt5, 1/sqrt10]].
        // At 1 dim every value shrinks to its sign: [[1, 1], [-1, -1]].
        let a = vec![vec![1.0, 1.0], vec![-1.0, 2.0]];
        let p = vec![vec![2.0, 0.0], vec![1.0, 1.0]];
        let (r2, r5, r10) = (2f64.sqrt(), 5f64.sqrt(), 10f64.sqrt());
        let full = mnrl_of(&[[1.0 / r2, 1.0], [-1.0 / r5, 1.0 / r10]]);
        let one = mnrl_of(&[[1.0, 1.0], [-1.0, -1.0]]);
        let m = MatryoshkaLoss::new(mnrl(1.0), &[1, 2], Some(&[0.5, 2.0]), -1)?;
        let got = columns_value(&m, &[a, p])?;
        let want = 2.0 * full + 0.5 * one;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: matryoshka_*.
        let (u, v, w) = (gen(0, 5, 6), gen(1, 5, 6), gen(2, 5, 6));
        let scores = gen_scores(5);
        let m = MatryoshkaLoss::new(mnrl(20.0), &[6, 4, 2], None, -1)?;
        let weighted = MatryoshkaLoss::new(mnrl(20.0), &[2, 6, 3], Some(&[0.25, 1.0, 0.5]), -1)?;
        let cosent = MatryoshkaLoss::new(Box::new(CoSENTLoss::new(20.0)), &[6, 3, 1], None, -1)?;
        let cases: [(f64, f64); 3] = [
            (
                columns_value(&m, &[u.clone(), v.clone(), w])?,
                75.63721046337102,
            ),
            (
                columns_value(&weighted, &[u.clone(), v.clone()])?,
                43.05379545848261,
            ),
            (scored_value(&cosent, &[u, v], &scores)?, 78.22585009287357),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 5), gen(1, 4, 5), gen(2, 4, 5)];
        let m = MatryoshkaLoss::new(mnrl(2.0), &[5, 3, 2], Some(&[1.0, 0.5, 0.25]), -1)?;
        check_grads(&cols, |t| m.forward(&LossInputs::new(t.to_vec())))
    }

    #[test]
    fn samples_dimensions_per_batch_from_its_seed() -> Result<()> {
        let m = MatryoshkaLoss::new(mnrl(20.0), &[64, 256, 128, 384], None, 2)?;
        let picks: Vec<Vec<usize>> = (0..50).map(|s| m.chosen(s)).collect();
        assert!(
            picks.iter().all(|p| p.len() == 2 && p[0] < p[1]),
            "{picks:?}"
        );
        assert_eq!(m.chosen(7), m.chosen(7));
        let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
        assert!(distinct.len() > 3, "{distinct:?}");
        // Largest first: index 0 is 384.
        assert_eq!(m.dims[0].0, 384);
        // -1 and n or more use all dimensions.
        for k in [-1, 0, 4, 9] {
            let all = MatryoshkaLoss::new(mnrl(20.0), &[64, 128, 256, 384], None, k)?;
            assert_eq!(all.chosen(3), vec![0, 1, 2, 3]);
        }
        Ok(())
    }

    #[test]
    fn cuts_teacher_embeddings_of_the_full_width_without_normalising() -> Result<()> {
        // MSE of the shrunk student against the teacher's first d values.
        let (x, t) = (gen(0, 3, 4), gen(1, 3, 4));
        let m = MatryoshkaLoss::new(Box::new(crate::runtime::loss::MSELoss), &[4, 2], None, -1)?;
        let inputs = LossInputs::new(vec![t2(&x)]).with_teacher(t2(&t));
        let got = scalar(&m.forward(&inputs)?);
        let mse = |d: usize| {
            let mut sum = 0.0;
            for (xr, tr) in x.iter().zip(&t) {
                let norm = xr[..d].iter().map(|v| v * v).sum::<f64>().sqrt();
                sum += (0..d).map(|j| (xr[j] / norm - tr[j]).powi(2)).sum::<f64>();
            }
            sum / (3 * d) as f64
        };
        let want = mse(4) + mse(2);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(MatryoshkaLoss::new(mnrl(1.0), &[], None, -1).is_err());
        assert!(MatryoshkaLoss::new(mnrl(1.0), &[0, 4], None, -1).is_err());
        assert!(MatryoshkaLoss::new(mnrl(1.0), &[4, 2], Some(&[1.0]), -1).is_err());
        let wide = MatryoshkaLoss::new(mnrl(1.0), &[8], None, -1).expect("valid");
        let inputs = LossInputs::new(vec![t2(&gen(0, 2, 4)), t2(&gen(1, 2, 4))]);
        let err = wide.forward(&inputs).expect_err("8 > 4");
        assert!(err.to_string().contains("wider"), "{err}");
    }
}
