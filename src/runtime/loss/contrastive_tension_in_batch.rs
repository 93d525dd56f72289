//! `ContrastiveTensionLossInBatchNegatives`: Contrastive Tension with the
//! other sentences of the batch as negatives. The copy of the model
//! (`model1`) and the model (`model2`, the one saved) both embed every
//! sentence; `scores = sim(copy, model) * exp(logit_scale)` and the loss is
//! the mean of the cross-entropies of the rows and of the columns with the
//! diagonal as target. `logit_scale` starts at `ln(scale)` and is trained
//! with both models, as in sentence-transformers 6.2.

use candle_core::{bail, Result, Tensor, Var};

use super::contrastive_tension::ModelCopy;
use super::mnrl::check_scale;
use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity, TextBatch};
use crate::registry::{columns, Args, Component, Family, Rule};
use crate::runtime::{Ctx, SentenceEncoder};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "ContrastiveTensionLossInBatchNegatives",
        family: Family::Loss,
        doc: "Contrastive Tension with in-batch negatives: an independent copy of the model and the model embed the same sentences; symmetric cross-entropy of their scaled similarities with the diagonal as target. The scale (`logit_scale = ln(scale)`) is trained along with both copies (twice the model's memory); the model is what is saved.",
        args: super::mnrl::ARGS,
        columns: Some(columns::SINGLE),
        rules: &[Rule::CopiesModel],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let model = cx.need_model("ContrastiveTensionLossInBatchNegatives")?;
    Ok(Box::new(ContrastiveTensionLossInBatchNegatives::new(
        model,
        a.f64("scale").map_err(super::arg)?,
        a.choice("similarity").map_err(super::arg)?,
    )?))
}

#[derive(Debug)]
pub struct ContrastiveTensionLossInBatchNegatives {
    copy: ModelCopy,
    similarity: Similarity,
    /// `ln(scale)` at the start, a 0-d f32 parameter.
    logit_scale: Var,
}

impl ContrastiveTensionLossInBatchNegatives {
    pub fn new(model: &SentenceEncoder, scale: f64, similarity: Similarity) -> Result<Self> {
        Ok(ContrastiveTensionLossInBatchNegatives {
            copy: ModelCopy::of(model)?,
            similarity,
            logit_scale: logit_scale(scale, model.device())?,
        })
    }

    /// The copy that embeds the sentences besides the model.
    pub fn copy(&self) -> &SentenceEncoder {
        &self.copy.model
    }

    /// `exp(logit_scale)`, as a number.
    pub fn scale(&self) -> Result<f64> {
        Ok(self.logit_scale.as_tensor().exp()?.to_scalar::<f32>()? as f64)
    }
}

/// The trained logarithm of the scale, `ln(scale)`.
fn logit_scale(scale: f64, device: &candle_core::Device) -> Result<Var> {
    check_scale(scale)?;
    Var::from_tensor(&Tensor::new(scale.ln() as f32, device)?)
}

/// The loss of embeddings `a` (the copy's) and `b` (the model's) of the
/// same sentences, at `scale = exp(logit_scale)`.
fn value(a: &Tensor, b: &Tensor, logit_scale: &Tensor, sim: Similarity) -> Result<Tensor> {
    let n = a.dim(0)?;
    let scores = sim
        .matrix(a, b)?
        .broadcast_mul(&logit_scale.to_dtype(a.dtype())?.exp()?)?;
    let targets = ops::diagonal_targets(n, &scores)?;
    let rows = ops::cross_entropy(&scores, &targets)?;
    let cols = ops::cross_entropy(&scores.t()?.contiguous()?, &targets)?;
    (rows + cols)? * 0.5
}

impl Loss for ContrastiveTensionLossInBatchNegatives {
    fn name(&self) -> &str {
        "ContrastiveTensionLossInBatchNegatives"
    }

    /// Column 0: the copy's embeddings; column 1: the model's, of the same
    /// sentences.
    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, _, _) = inputs.columns(self.name(), 2, Some(2))?;
        value(
            &cols[0],
            &cols[1],
            self.logit_scale.as_tensor(),
            self.similarity,
        )
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut vars = vec![("logit_scale".to_string(), self.logit_scale.clone())];
        vars.extend(self.copy.vars());
        vars
    }

    fn runs_models(&self) -> bool {
        true
    }

    fn forward_texts(
        &self,
        model: &SentenceEncoder,
        batch: TextBatch,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let [texts] = batch.columns else {
            bail!(
                "{} expects one text column, got {}",
                self.name(),
                batch.columns.len()
            );
        };
        let prompt = batch.prompts.first().copied().flatten();
        let embed = |m: &SentenceEncoder| {
            m.embed_prompted(texts, prompt, ctx)
                .map_err(candle_core::Error::wrap)
        };
        let a = embed(&self.copy.model)?;
        let b = embed(model)?;
        self.forward(&LossInputs::new(vec![a, b]))
    }
}

/// The value at the initial scale (`ln(scale)` rounded to f32, as the
/// parameter holds it), for embeddings in f64 (tests).
#[cfg(test)]
fn value_at(a: &Tensor, b: &Tensor, scale: f64, sim: Similarity) -> Result<Tensor> {
    let ls = Tensor::new(scale.ln() as f32 as f64, a.device())?;
    value(a, b, &ls, sim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Orthonormal rows: cosine = identity, scores = 2 I; every row and
        // column: -log(e^2 / (e^2 + 1)) = ln(1 + e^-2).
        let a = t2(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        let got = scalar(&value_at(&a, &a, 2.0, Similarity::Cosine)?);
        // (The scale is held as ln(2) in f32.)
        let want = (1.0 + (-2f64).exp()).ln();
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: contrastive_tension_in_batch_*.
        let (a, b) = (t2(&gen(0, 5, 4)), t2(&gen(1, 5, 4)));
        assert_reference(&[
            (
                scalar(&value_at(&a, &b, 20.0, Similarity::Cosine)?),
                25.077493226101417,
            ),
            (
                scalar(&value_at(&a, &b, 1.0, Similarity::Dot)?),
                3.348954881907555,
            ),
        ]);
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        check_grads(&[gen(0, 5, 4), gen(1, 5, 4)], |t| {
            value_at(&t[0], &t[1], 20.0, Similarity::Cosine)
        })
    }

    #[test]
    fn the_scale_gets_its_gradient() -> Result<()> {
        // d/ds of the loss at s = ln(scale): finite differences on s.
        let (a, b) = (t2(&gen(0, 5, 4)), t2(&gen(1, 5, 4)));
        let s = Var::from_tensor(&Tensor::new(20f64.ln(), a.device())?)?;
        let g = value(&a, &b, s.as_tensor(), Similarity::Cosine)?.backward()?;
        let got = g
            .get(s.as_tensor())
            .map(|g| g.to_scalar::<f64>())
            .transpose()?
            .unwrap_or(0.0);
        let at = |x: f64| -> Result<f64> {
            let t = Tensor::new(x, a.device())?;
            Ok(scalar(&value(&a, &b, &t, Similarity::Cosine)?))
        };
        let h = 1e-6;
        let fd = (at(20f64.ln() + h)? - at(20f64.ln() - h)?) / (2.0 * h);
        assert!((got - fd).abs() < 1e-6 * fd.abs().max(1.0), "{got} vs {fd}");
        Ok(())
    }
}
