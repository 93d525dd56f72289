//! `DenoisingAutoEncoderLoss` (TSDAE, Wang et al., 2021): the model embeds
//! a damaged text, and a decoder must rebuild the original text from that
//! one vector. The loss is the decoder's token cross-entropy (mean over
//! the original's tokens after the first, padding ignored), predicting
//! each token from the ones before it and the sentence embedding.
//!
//! The decoder is the model's own Transformer run as a causal language
//! model with a cross-attention to the embedding in every layer, every
//! weight it shares with the encoder tied to it
//! (`tie_encoder_decoder=True`, sentence-transformers' default and the
//! paper's recipe): see `arch/bert/decoder.rs` for what it holds and how
//! its own weights start. transformers has such a decoder for the BERT
//! family only, so the model must be one (`bert`, `roberta`,
//! `xlm-roberta`, `camembert`), and its sentence embedding as wide as the
//! Transformer. Untied decoders from another checkpoint are not offered.
//!
//! Data: (damaged, original) pairs as two text columns, or sentences as one
//! column, which the loss damages batch by batch with
//! `DenoisingAutoEncoderDataset`'s deletion noise (`del_ratio`, from the
//! batch's seed: each epoch sees other damage, as with the dataset's
//! on-the-fly noise, and a resumed run the same).
//!
//! One difference from sentence-transformers: its decoder is loaded anew
//! from the model's original checkpoint and its weights then replace the
//! encoder's, so a model already trained in memory by an earlier stage
//! would start TSDAE from its checkpoint's weights again; stpipe's decoder
//! shares the model's weights as they stand.

use candle_core::{bail, DType, Result, Tensor, Var};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, TextBatch};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family, Rule};
use crate::runtime::arch::{Decoder, DECODER_TYPES};
use crate::runtime::train::rng::Rng;
use crate::runtime::{Ctx, SentenceEncoder};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "DenoisingAutoEncoderLoss",
        family: Family::Loss,
        doc: "TSDAE: a decoder tied to the model's Transformer rebuilds each original text from the model's embedding of its damaged version (token cross-entropy). Two text columns: (damaged, original); one: sentences, damaged by deleting words with probability `del_ratio`. BERT-family models whose embedding is as wide as the Transformer.",
        args: &[
            req("model", Model, "the model trained"),
            opt(
                "del_ratio",
                Float,
                "0.6",
                "with one text column: the probability of deleting each word",
            )
            .at_least(0.0)
            .below(1.0),
        ],
        columns: Some(columns::SINGLE_OR_PAIR),
        rules: &[
            Rule::TiedDecoder(DECODER_TYPES),
            Rule::OneTextColumn("del_ratio"),
        ],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let model = cx.need_model("DenoisingAutoEncoderLoss")?;
    let seed = Rng::derived(cx.seed, &format!("{}.decoder", cx.objective)).next_u64();
    Ok(Box::new(DenoisingAutoEncoderLoss::new(
        model,
        a.f64("del_ratio").map_err(super::arg)?,
        seed,
    )?))
}

#[derive(Debug)]
pub struct DenoisingAutoEncoderLoss {
    decoder: Box<dyn Decoder>,
    /// Label ids equal to it are ignored (the tokenizer's padding id).
    pad_id: u32,
    del_ratio: f64,
}

impl DenoisingAutoEncoderLoss {
    /// A loss over `model`, whose decoder's own new weights are drawn from
    /// `seed`.
    pub fn new(model: &SentenceEncoder, del_ratio: f64, seed: u64) -> Result<Self> {
        let t = model.transformer();
        let hidden = t.hidden_size();
        if model.dim() != hidden {
            bail!(
                "DenoisingAutoEncoderLoss: the decoder attends to the sentence embedding, which must be as wide as the Transformer ({hidden}); the model gives {}",
                model.dim()
            );
        }
        let Some(decoder) = t
            .encoder
            .tied_decoder(seed)
            .map_err(candle_core::Error::wrap)?
        else {
            bail!(
                "DenoisingAutoEncoderLoss: a `{}` Transformer has no decoder (types with one: {})",
                t.arch.model_type(),
                DECODER_TYPES.join(", ")
            );
        };
        if !(0.0..1.0).contains(&del_ratio) {
            bail!("del_ratio must lie in [0, 1), got {del_ratio}");
        }
        Ok(DenoisingAutoEncoderLoss {
            decoder,
            pad_id: t.tokenizer.pad_id,
            del_ratio,
        })
    }

    /// The loss of `sentences` (the model's embeddings of the damaged
    /// texts, `[batch, hidden]`) decoding the original texts' token ids
    /// `[batch, len]`.
    pub fn decode_loss(&self, sentences: &Tensor, ids: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        if len < 2 {
            bail!("DenoisingAutoEncoderLoss: the original texts have fewer than 2 tokens");
        }
        let inputs = ids.narrow(1, 0, len - 1)?;
        let labels = ids.narrow(1, 1, len - 1)?.flatten_all()?.to_vec1::<u32>()?;
        // Only the positions whose label counts reach the head.
        let (rows, targets): (Vec<u32>, Vec<u32>) = labels
            .iter()
            .enumerate()
            .filter(|(_, &l)| l != self.pad_id)
            .map(|(i, &l)| (i as u32, l))
            .unzip();
        if rows.is_empty() {
            bail!("DenoisingAutoEncoderLoss: the original texts have no token to predict");
        }
        let wrap = candle_core::Error::wrap;
        let memory = sentences.unsqueeze(1)?;
        let hidden = self.decoder.forward(&inputs, &memory, ctx).map_err(wrap)?;
        let h = hidden.dim(2)?;
        let dev = hidden.device();
        let picked = hidden
            .reshape((b * (len - 1), h))?
            .index_select(&Tensor::new(rows.as_slice(), dev)?, 0)?;
        let logits = self.decoder.logits(&picked, ctx).map_err(wrap)?;
        let n = targets.len();
        let targets = Tensor::from_vec(targets, (n, 1), dev)?;
        ops::cross_entropy(&ops::float(&logits)?, &targets)
    }
}

impl Loss for DenoisingAutoEncoderLoss {
    fn name(&self) -> &str {
        "DenoisingAutoEncoderLoss"
    }

    fn forward(&self, _inputs: &LossInputs) -> Result<Tensor> {
        bail!("DenoisingAutoEncoderLoss decodes token ids: it has no form over embeddings alone")
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.decoder
            .named_vars()
            .into_iter()
            .map(|(n, v)| (format!("decoder.{n}"), v))
            .collect()
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
        let prompt = |c: usize| batch.prompts.get(c).copied().flatten();
        let damaged: Vec<String>;
        let (source, target, target_prompt): (Vec<&str>, &[&str], _) = match batch.columns {
            [one] => {
                let mut rng = Rng::derived(batch.inputs.seed, "tsdae.noise");
                damaged = one
                    .iter()
                    .map(|t| super::deletion_noise::delete(t, self.del_ratio, &mut rng))
                    .collect();
                (damaged.iter().map(String::as_str).collect(), one, prompt(0))
            }
            [d, o] => (d.clone(), o, prompt(1)),
            other => bail!(
                "{} expects one or two text columns, got {}",
                self.name(),
                other.len()
            ),
        };
        let wrap = candle_core::Error::wrap;
        let sentences = model
            .embed_prompted(&source, prompt(0), ctx)
            .map_err(wrap)?;
        let features = model.features(target, target_prompt).map_err(wrap)?;
        let Some(ids) = features.input_ids else {
            bail!("the tokenizer gave no ids");
        };
        self.decode_loss(&sentences, &ids.to_dtype(DType::U32)?, ctx)
    }
}
