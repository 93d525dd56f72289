//! `GISTEmbedLoss` (Solatorio 2024, "GISTEmbed: Guided In-sample Selection
//! of Training Negatives"): MultipleNegativesRankingLoss whose in-batch
//! negatives are vetted by a frozen guide model. For (anchor, positive[,
//! negative]) rows, with cosine similarities of the student (`s`) and of
//! the guide (`g`):
//!
//! - the candidates of anchor `i` are every positive, and (by default)
//!   every other anchor, every other positive, and every negative;
//! - a candidate the guide finds more similar to the anchor than the
//!   anchor's own positive, `g > g(i, i) - margin` (`absolute`) or
//!   `g > g(i, i) - |g(i, i)| * margin` (`relative`), is taken for a false
//!   negative and left out (its score is -inf); the true positive never is;
//! - the loss is the cross-entropy of the scores / temperature with the
//!   positive as the target.
//!
//! The guide's embeddings of every text are computed once, before training
//! (`runtime/train/teacher.rs`): the guide is frozen. It encodes the texts
//! with its own tokenizer and length limit (sentence-transformers reuses
//! the student's tokens when the vocabularies agree and the guide's limit
//! is not shorter; the two differ only for texts past the student's limit).

use candle_core::{bail, Result, Tensor};

use super::cached::{mini_batch_size, Cached, MINI_BATCH_SIZE};
use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::choices::MarginStrategy;
use crate::registry::{columns, opt, req, ArgSpec, ArgType::*, Args, Component, Family};

const ARGS: [ArgSpec; 7] = [
    req("model", Model, "the model trained"),
    req("guide", Model, "a frozen model whose similarities decide which in-batch candidates are false negatives"),
    opt("temperature", Float, "0.01", "divides the cosine similarities (the inverse of MultipleNegativesRankingLoss's scale)").above(0.0),
    opt("margin_strategy", Choice(MarginStrategy::NAMES), "absolute", "how `margin` lowers the guide's positive similarity into the false-negative threshold"),
    opt("margin", Float, "0.0", "candidates the guide scores above the positive's similarity minus this (absolute) or minus this fraction of it (relative) are left out"),
    opt("contrast_anchors", Bool, "true", "the other anchors are candidates too (pushes anchors apart)"),
    opt("contrast_positives", Bool, "true", "the other positives are candidates of each positive too"),
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "GISTEmbedLoss",
        family: Family::Loss,
        doc: "In-batch negatives ranking (as MultipleNegativesRankingLoss, cosine / temperature) where a frozen guide model removes the in-batch candidates it finds more similar to the anchor than the positive (false negatives).",
        args: &ARGS,
        columns: Some(columns::PAIR_OR_TRIPLET),
        ..Component::BASE
    },
    build,
};

const CACHED_ARGS: [ArgSpec; 8] = [
    ARGS[0],
    ARGS[1],
    ARGS[2],
    ARGS[3],
    ARGS[4],
    ARGS[5],
    ARGS[6],
    MINI_BATCH_SIZE,
];

pub const CACHED_ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CachedGISTEmbedLoss",
        family: Family::Loss,
        doc: "GISTEmbedLoss under GradCache: the same value and gradients, with the texts embedded `mini_batch_size` at a time, so large batches fit in memory.",
        args: &CACHED_ARGS,
        columns: Some(columns::PAIR_OR_TRIPLET),
        ..Component::BASE
    },
    build: build_cached,
};

fn gist(a: &Args) -> Result<GISTEmbedLoss> {
    Ok(GISTEmbedLoss {
        temperature: a.f64("temperature").map_err(super::arg)?,
        margin_strategy: a.choice("margin_strategy").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
        contrast_anchors: a.bool("contrast_anchors").map_err(super::arg)?,
        contrast_positives: a.bool("contrast_positives").map_err(super::arg)?,
    })
}

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(gist(a)?))
}

fn build_cached(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    let n = mini_batch_size(a).map_err(super::arg)?;
    Ok(Box::new(Cached::with_name(
        "CachedGISTEmbedLoss",
        gist(a)?,
        n,
    )))
}

#[derive(Debug, Clone)]
pub struct GISTEmbedLoss {
    pub temperature: f64,
    pub margin_strategy: MarginStrategy,
    pub margin: f64,
    pub contrast_anchors: bool,
    pub contrast_positives: bool,
}

/// `nn.CosineSimilarity(dim=-1)` between every row of `a` and every row
/// of `b` (eps 1e-8).
fn cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    ops::normalize_rows(a, 1e-8)?.matmul(&ops::normalize_rows(b, 1e-8)?.t()?)
}

impl GISTEmbedLoss {
    /// `sim` with -inf where the guide's `guided` exceeds each row's
    /// threshold, except on the diagonal when `keep_diagonal`.
    fn mask(
        &self,
        sim: Tensor,
        guided: &Tensor,
        threshold: &Tensor,
        keep_diagonal: bool,
    ) -> Result<Tensor> {
        let mut out = guided.broadcast_gt(threshold)?;
        if keep_diagonal {
            let (n, m) = out.dims2()?;
            let eye = Tensor::eye(n.max(m), candle_core::DType::U8, out.device())?
                .narrow(0, 0, n)?
                .narrow(1, 0, m)?;
            out = out.gt(&eye)?;
        }
        let minus_inf =
            Tensor::full(f32::NEG_INFINITY, sim.dims(), sim.device())?.to_dtype(sim.dtype())?;
        out.where_cond(&minus_inf, &sim)
    }
}

impl Loss for GISTEmbedLoss {
    fn name(&self) -> &str {
        "GISTEmbedLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(3))?;
        let Some(guide) = &inputs.guide else {
            bail!("GISTEmbedLoss needs the guide model's embeddings");
        };
        if guide.len() != cols.len() || guide.iter().any(|g| g.dim(0).ok() != Some(batch)) {
            bail!(
                "GISTEmbedLoss: guide embeddings for {} columns of {batch} rows expected",
                cols.len()
            );
        }
        let g: Vec<Tensor> = guide
            .iter()
            .map(|t| {
                ops::float(&t.detach())?
                    .to_dtype(cols[0].dtype())?
                    .to_device(cols[0].device())
            })
            .collect::<Result<_>>()?;
        let (anchor, positive) = (&cols[0], &cols[1]);
        let guided_ap = cosine(&g[0], &g[1])?;
        let diag = (&guided_ap * Tensor::eye(batch, guided_ap.dtype(), guided_ap.device())?)?
            .sum_keepdim(1)?;
        let threshold = match self.margin_strategy {
            MarginStrategy::Absolute => (&diag - self.margin)?,
            MarginStrategy::Relative => (&diag - (diag.abs()? * self.margin)?)?,
        };
        let mut scores =
            vec![self.mask(cosine(anchor, positive)?, &guided_ap, &threshold, true)?];
        if self.contrast_anchors {
            scores.push(self.mask(
                cosine(anchor, anchor)?,
                &cosine(&g[0], &g[0])?,
                &threshold,
                false,
            )?);
        }
        if self.contrast_positives {
            scores.push(self.mask(
                cosine(positive, positive)?,
                &cosine(&g[1], &g[1])?,
                &threshold,
                false,
            )?);
        }
        if let (Some(neg), Some(gn)) = (cols.get(2), g.get(2)) {
            scores.push(self.mask(cosine(anchor, neg)?, &cosine(&g[0], gn)?, &threshold, false)?);
        }
        let logits = (Tensor::cat(&scores, 1)? / self.temperature)?;
        ops::cross_entropy(&logits, &ops::diagonal_targets(batch, &logits)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn loss(strategy: MarginStrategy, margin: f64, aa: bool, pp: bool) -> GISTEmbedLoss {
        GISTEmbedLoss {
            temperature: 0.05,
            margin_strategy: strategy,
            margin,
            contrast_anchors: aa,
            contrast_positives: pp,
        }
    }

    fn value(l: &GISTEmbedLoss, cols: &[Vec<Vec<f64>>], guide: &[Vec<Vec<f64>>]) -> Result<f64> {
        let mut inputs = LossInputs::new(cols.iter().map(|c| t2(c)).collect());
        inputs.guide = Some(guide.iter().map(|c| t2(c)).collect());
        Ok(scalar(&l.forward(&inputs)?))
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Two pairs, only anchor-positive candidates. Student: a0 = p0 =
        // (1, 0), a1 = (0, 1), p1 = (1, 0): cosines [[1, 1], [0, 0]].
        // Guide: a0 = p0 = (1, 0), a1 = p1 = (0, 1), so nothing else is
        // above a positive: no candidate is removed. Row 0: logits (20, 20)
        // (temperature 0.05), loss ln 2; row 1: (0, 0), loss ln 2.
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let p = vec![vec![1.0, 0.0], vec![1.0, 0.0]];
        let ga = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let l = loss(MarginStrategy::Absolute, 0.0, false, false);
        let got = value(&l, &[a.clone(), p.clone()], &[ga.clone(), ga.clone()])?;
        assert!((got - 2f64.ln()).abs() < 1e-9, "{got}");
        // A guide that finds p1 closer to a0 (cos 2/sqrt 5) than p0 is
        // (cos 1/sqrt 2): p1 is a false negative of a0 and leaves row 0
        // (loss 0 there); row 1 keeps both (p0 is at 0, below its 1/sqrt 5).
        let ga = vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]];
        let gp = vec![vec![1.0, 1.0, 0.0], vec![2.0, 0.0, 1.0]];
        let got = value(&l, &[a, p], &[ga, gp])?;
        assert!((got - 2f64.ln() / 2.0).abs() < 1e-9, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: gist_*.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let guide = [gen(3, 5, 3), gen(4, 5, 3), gen(5, 5, 3)];
        assert_reference(&[
            (
                value(
                    &loss(MarginStrategy::Absolute, 0.0, true, true),
                    &cols[..2],
                    &guide[..2],
                )?,
                16.162086144576964,
            ),
            (
                value(
                    &loss(MarginStrategy::Absolute, 0.1, true, false),
                    &cols,
                    &guide,
                )?,
                15.224844793809751,
            ),
            (
                value(
                    &loss(MarginStrategy::Relative, 0.05, false, true),
                    &cols,
                    &guide,
                )?,
                12.557870273195453,
            ),
        ]);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        let guide: Vec<Tensor> = (3..6).map(|c| t2(&gen(c, 4, 3))).collect();
        let l = GISTEmbedLoss {
            temperature: 0.5,
            ..loss(MarginStrategy::Absolute, 0.1, true, true)
        };
        check_grads(&cols, |x| {
            let mut inputs = LossInputs::new(x.to_vec());
            inputs.guide = Some(guide.clone());
            l.forward(&inputs)
        })
    }

    #[test]
    fn needs_the_guide() {
        let l = loss(MarginStrategy::Absolute, 0.0, true, true);
        let cols: Vec<Tensor> = (0..2).map(|c| t2(&gen(c, 3, 2))).collect();
        assert!(l.forward(&LossInputs::new(cols)).is_err());
    }
}
