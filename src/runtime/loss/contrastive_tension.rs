//! `ContrastiveTensionLoss` (Carlsson et al., 2021): unsupervised training
//! from sentences alone. An independent copy of the model (`model1`)
//! embeds the first text of each pair and the model itself (`model2`, the
//! one saved) the second; the score of a pair is the dot product of the two
//! embeddings, and the loss is the binary cross-entropy with logits,
//! summed over the batch, with label 1 for identical inputs and 0 for
//! different ones. Both copies are trained (sentence-transformers 6.2: the
//! copy's parameters belong to the loss, and the Trainer's optimizer takes
//! the loss's parameters).
//!
//! The labels are not read from the data: as sentence-transformers does
//! without labels, a pair is positive when its two texts tokenise to the
//! same ids (padding aside). The data is either pairs (two text columns,
//! made however the user likes) or single sentences (one column): the loss
//! then pairs each batch as `ContrastiveTensionDataLoader` does, one
//! positive pair (a sentence with itself) for every `pos_neg_ratio` pairs,
//! the others a sentence with another sentence of the batch drawn at
//! random from the batch's seed (so a resumed run draws the same pairs).

use candle_core::{bail, DType, Result, Tensor, Var};

use super::{Loss, LossCx, LossEntry, LossInputs, TextBatch};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family, Rule};
use crate::runtime::train::rng::Rng;
use crate::runtime::{Ctx, SentenceEncoder};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "ContrastiveTensionLoss",
        family: Family::Loss,
        doc: "Contrastive Tension: an independent copy of the model embeds the first text of each pair, the model the second; binary cross-entropy of their dot product against 'the two inputs are identical'. Both copies train (twice the model's memory); the model is what is saved. One text column: each batch is paired as ContrastiveTensionDataLoader does (one positive pair per `pos_neg_ratio`).",
        args: &[
            req("model", Model, "the model trained"),
            opt(
                "pos_neg_ratio",
                Int,
                "8",
                "with one text column: one pair in this many is a sentence with itself, the others a sentence with another of the batch",
            )
            .at_least(1.0),
        ],
        columns: Some(columns::SINGLE_OR_PAIR),
        rules: &[Rule::CopiesModel, Rule::OneTextColumn("pos_neg_ratio")],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let ratio = a.i64("pos_neg_ratio").map_err(super::arg)?;
    Ok(Box::new(ContrastiveTensionLoss::new(
        cx.need_model("ContrastiveTensionLoss")?,
        usize::try_from(ratio).unwrap_or(1),
    )?))
}

/// The independent copy of the model that ContrastiveTension losses train
/// beside it (`model1`).
#[derive(Debug)]
pub struct ModelCopy {
    pub model: SentenceEncoder,
}

impl ModelCopy {
    /// A copy of `model` as it stands now.
    pub fn of(model: &SentenceEncoder) -> Result<Self> {
        Ok(ModelCopy {
            model: model.deep_copy().map_err(candle_core::Error::wrap)?,
        })
    }

    /// Its parameters, named `model1.<module>.<name>` (the module's index
    /// in the chain, as checkpoints name the model's own).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.model
            .named_vars()
            .into_iter()
            .map(|v| (format!("model1.{}.{}", v.module, v.name), v.var))
            .collect()
    }
}

#[derive(Debug)]
pub struct ContrastiveTensionLoss {
    copy: ModelCopy,
    pos_neg_ratio: usize,
}

impl ContrastiveTensionLoss {
    /// A loss over `model`, with its own copy of it.
    pub fn new(model: &SentenceEncoder, pos_neg_ratio: usize) -> Result<Self> {
        Ok(ContrastiveTensionLoss {
            copy: ModelCopy::of(model)?,
            pos_neg_ratio: pos_neg_ratio.max(1),
        })
    }

    /// The copy that embeds the first texts.
    pub fn copy(&self) -> &SentenceEncoder {
        &self.copy.model
    }
}

/// The texts of each pair of a batch: the two columns as they are, or one
/// column paired as `ContrastiveTensionDataLoader` pairs sentences.
pub(super) fn pairs<'a>(
    columns: &[Vec<&'a str>],
    pos_neg_ratio: usize,
    seed: u64,
) -> Result<(Vec<&'a str>, Vec<&'a str>)> {
    match columns {
        [a, b] => Ok((a.clone(), b.clone())),
        [one] => {
            let n = one.len();
            let mut rng = Rng::derived(seed, "contrastive_tension.pairs");
            let second = (0..n)
                .map(|i| {
                    if i % pos_neg_ratio == 0 || n == 1 {
                        one[i]
                    } else {
                        // Any other row: an offset of 1 to n - 1.
                        one[(i + 1 + rng.below(n as u64 - 1) as usize) % n]
                    }
                })
                .collect();
            Ok((one.clone(), second))
        }
        other => bail!(
            "ContrastiveTensionLoss expects one or two text columns, got {}",
            other.len()
        ),
    }
}

/// 1.0 where the two texts of a pair tokenise (with their prompts) to the
/// same ids, padding aside; 0.0 elsewhere.
pub(super) fn identical(
    model: &SentenceEncoder,
    (first, second): (&[&str], &[&str]),
    prompts: (Option<&str>, Option<&str>),
) -> Result<Vec<f32>> {
    let ids = |texts: &[&str], prompt| -> Result<Vec<Vec<u32>>> {
        let f = model
            .features(texts, prompt)
            .map_err(candle_core::Error::wrap)?;
        let (Some(ids), Some(mask)) = (f.input_ids, f.attention_mask) else {
            bail!("the tokenizer gave no ids or attention mask");
        };
        let ids = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mask = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        Ok(ids
            .into_iter()
            .zip(mask)
            .map(|(row, m)| {
                row.into_iter()
                    .zip(m)
                    .filter(|&(_, m)| m > 0.0)
                    .map(|(id, _)| id)
                    .collect()
            })
            .collect())
    };
    let (a, b) = (ids(first, prompts.0)?, ids(second, prompts.1)?);
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| if x == y { 1.0 } else { 0.0 })
        .collect())
}

/// `BCEWithLogitsLoss(reduction="sum")`: `sum(max(x, 0) - x y + log(1 +
/// exp(-|x|)))`, stable for logits of any size.
pub(super) fn bce_with_logits_sum(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let soft = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((x.relu()? - (x * y)?)? + soft)?.sum_all()
}

impl Loss for ContrastiveTensionLoss {
    fn name(&self) -> &str {
        "ContrastiveTensionLoss"
    }

    /// Column 0: the copy's embeddings of the first texts; column 1: the
    /// model's of the second; the scores are the labels (1 identical, 0
    /// not).
    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let scores = (&cols[0] * &cols[1])?.sum(1)?;
        let labels = inputs.scores_for(self.name(), batch, scores.dtype(), scores.device())?;
        bce_with_logits_sum(&scores, &labels)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.copy.vars()
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
        let (first, second) = pairs(batch.columns, self.pos_neg_ratio, batch.inputs.seed)?;
        let p0 = batch.prompts.first().copied().flatten();
        let p1 = match batch.columns.len() {
            1 => p0,
            _ => batch.prompts.get(1).copied().flatten(),
        };
        let labels = identical(model, (&first, &second), (p0, p1))?;
        let a = self
            .copy
            .model
            .embed_prompted(&first, p0, ctx)
            .map_err(candle_core::Error::wrap)?;
        let b = model
            .embed_prompted(&second, p1, ctx)
            .map_err(candle_core::Error::wrap)?;
        let n = labels.len();
        let inputs =
            LossInputs::new(vec![a, b]).with_scores(Tensor::from_vec(labels, n, model.device())?);
        self.forward(&inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    /// What `forward` computes from the two embedding columns.
    fn value(a: &Tensor, b: &Tensor, labels: &[f64]) -> Result<Tensor> {
        let scores = (a * b)?.sum(1)?;
        bce_with_logits_sum(&scores, &t1(labels))
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Pairs with dot products 2 (label 1) and -1 (label 0):
        // softplus(-2) + softplus(-1) = ln(1 + e^-2) + ln(1 + e^-1).
        let a = t2(&[vec![1.0, 1.0], vec![1.0, 0.0]]);
        let b = t2(&[vec![1.0, 1.0], vec![-1.0, 3.0]]);
        let got = scalar(&value(&a, &b, &[1.0, 0.0])?);
        let want = (1.0 + (-2f64).exp()).ln() + (1.0 + (-1f64).exp()).ln();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Large logits stay finite: softplus(-1000) = 0, softplus(1000) = 1000.
        let big = t2(&[vec![1000.0]]);
        let one = t2(&[vec![1.0]]);
        assert!(scalar(&value(&big, &one, &[1.0])?).abs() < 1e-12);
        assert!((scalar(&value(&big, &one, &[0.0])?) - 1000.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: contrastive_tension.
        let labels = [1.0, 0.0, 0.0, 1.0, 0.0];
        let got = scalar(&value(&t2(&gen(0, 5, 4)), &t2(&gen(1, 5, 4)), &labels)?);
        assert_reference(&[(got, 4.063191872016688)]);
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let labels = [1.0, 0.0, 0.0, 1.0, 0.0];
        check_grads(&[gen(0, 5, 4), gen(1, 5, 4)], |t| {
            value(&t[0], &t[1], &labels)
        })
    }

    #[test]
    fn one_column_is_paired_like_the_data_loader() -> Result<()> {
        let texts: Vec<&str> = (0..17).map(|i| ["a", "b", "c", "d"][i % 4]).collect();
        let (first, second) = pairs(std::slice::from_ref(&texts), 8, 7)?;
        assert_eq!(first, texts);
        for i in 0..17 {
            if i % 8 == 0 {
                assert_eq!(second[i], texts[i]);
            }
        }
        // The same seed gives the same pairs, another seed other ones.
        assert_eq!(pairs(std::slice::from_ref(&texts), 8, 7)?.1, second);
        let distinct: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = distinct.iter().map(String::as_str).collect();
        let (f, s) = pairs(std::slice::from_ref(&refs), 4, 1)?;
        for i in 0..40 {
            // A negative pair never pairs a row with itself.
            assert_eq!(f[i] == s[i], i % 4 == 0, "row {i}");
        }
        assert_ne!(pairs(std::slice::from_ref(&refs), 4, 2)?.1, s);
        assert!(pairs(&[refs.clone(), refs.clone(), refs], 4, 1).is_err());
        Ok(())
    }
}
