//! `Matryoshka2dLoss` (2D Matryoshka Sentence Embeddings, Li et al. 2024):
//! AdaptiveLayerLoss around MatryoshkaLoss, so that the embeddings stay
//! good both when truncated and when the model is cut after an earlier
//! layer. `Matryoshka2dLoss(loss, dims: [...])` is
//! `AdaptiveLayerLoss(MatryoshkaLoss(loss, dims: [...]))` with the
//! arguments of both, as sentence-transformers defines it.

use candle_core::{bail, Result};

use super::adaptive_layer::{AdaptiveLayerLoss, LAYER_ARGS};
use super::matryoshka::MatryoshkaLoss;
use super::{Loss, LossCx, LossEntry};
use crate::check::types::WRAPPED_LOSS;
use crate::registry::{
    catalogue, maybe, opt, req, ArgSpec, ArgType::*, Args, Component, Family, Rule,
};

const ARGS: [ArgSpec; 10] = [
    req(WRAPPED_LOSS, LossCall, "the loss applied at every layer and dimension, e.g. `MultipleNegativesRankingLoss(m)`"),
    req("dims", Count, "the embedding dimensions trained, e.g. `[768, 512, 256, 128, 64]`; include the model's full width").at_least(1.0).variadic(),
    maybe("weights", Float, "one weight per dimension (default: 1 each)").variadic(),
    opt("n_dims_per_step", Int, "1", "how many of the dimensions each batch uses, drawn at random; -1 uses all"),
    LAYER_ARGS[0], LAYER_ARGS[1], LAYER_ARGS[2], LAYER_ARGS[3], LAYER_ARGS[4], LAYER_ARGS[5],
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "Matryoshka2dLoss",
        family: Family::Loss,
        doc: "AdaptiveLayerLoss around MatryoshkaLoss: the wrapped loss at several embedding dimensions and at the final and earlier layers, so that both truncated embeddings and a model cut after an earlier layer stay good. The data is the wrapped loss's.",
        args: &ARGS,
        columns: None,
        rules: &[Rule::SameLength("weights", "dims"), Rule::AtMostWidth("dims"), Rule::Uncached],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let inner = a.call(WRAPPED_LOSS).map_err(super::arg)?;
    let Some(entry) = catalogue::loss(&inner.name) else {
        bail!("Matryoshka2dLoss: unknown loss `{}`", inner.name);
    };
    let dims = a.usize_list("dims").map_err(super::arg)?;
    let weights = a.opt_f64_list("weights").map_err(super::arg)?;
    let matryoshka = MatryoshkaLoss::new(
        (entry.build)(&inner.args, cx)?,
        &dims,
        weights.as_deref(),
        a.i64("n_dims_per_step").map_err(super::arg)?,
    )?;
    Ok(Box::new(AdaptiveLayerLoss::from_args(
        Box::new(matryoshka),
        a,
    )?))
}
