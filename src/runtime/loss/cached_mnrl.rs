//! `CachedMultipleNegativesRankingLoss`: MultipleNegativesRankingLoss with
//! GradCache (Gao et al. 2021), so that the batch size, and with it the
//! number of in-batch negatives, is not bounded by memory.
//!
//! The loss value and its gradients are those of the uncached loss; what
//! changes is how the trainer computes them (`train/grad_cache.rs`): it
//! embeds the batch `mini_batch_size` texts at a time without keeping the
//! model's activations, computes the loss and its gradient with respect to
//! the embeddings, then embeds each mini-batch again (with the same dropout
//! masks) and backpropagates that mini-batch's share of the gradient. Peak
//! memory is that of one mini-batch's forward and backward, plus the
//! embeddings of the whole batch.

use candle_core::Result;

use super::cached::{build_in_batch, Cached, MINI_BATCH_SIZE};
use super::mnrl::{MultipleNegativesRankingLoss, ARGS as MNRL_ARGS};
use super::{Loss, LossCx, LossEntry};
use crate::registry::{columns, ArgSpec, Args, Component, Family};

/// The arguments of the cached in-batch negatives losses: the uncached
/// ones' and `mini_batch_size`.
pub(super) const ARGS: &[ArgSpec] = &[MNRL_ARGS[0], MNRL_ARGS[1], MNRL_ARGS[2], MINI_BATCH_SIZE];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CachedMultipleNegativesRankingLoss",
        family: Family::Loss,
        doc: "MultipleNegativesRankingLoss with GradCache: the same loss and gradients, with memory bounded by `mini_batch_size` texts instead of the batch, so batches can be as large as the in-batch negatives need.",
        args: ARGS,
        columns: Some(columns::RANKING),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    build_in_batch(ENTRY.spec.name, a, MultipleNegativesRankingLoss::new)
}

pub type CachedMultipleNegativesRankingLoss = Cached<MultipleNegativesRankingLoss>;

impl CachedMultipleNegativesRankingLoss {
    pub fn new(inner: MultipleNegativesRankingLoss, mini_batch_size: usize) -> Self {
        Cached::with_name(ENTRY.spec.name, inner, mini_batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn the_value_is_the_uncached_loss() -> Result<()> {
        // scripts/loss_reference_values.py: cached_mnrl_uvw.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let cached =
            CachedMultipleNegativesRankingLoss::new(MultipleNegativesRankingLoss::default(), 2);
        assert_reference(&[(columns_value(&cached, &cols)?, 25.562258914953567)]);
        assert_eq!(cached.mini_batch_size(), Some(2));
        assert_eq!(cached.name(), "CachedMultipleNegativesRankingLoss");
        Ok(())
    }
}
