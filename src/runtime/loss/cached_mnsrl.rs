//! `CachedMultipleNegativesSymmetricRankingLoss`:
//! MultipleNegativesSymmetricRankingLoss with GradCache; the same loss and
//! gradients, memory bounded by `mini_batch_size` texts (see
//! [`super::cached_mnrl`] for how the trainer computes it).

use candle_core::Result;

use super::cached::{build_in_batch, Cached};
use super::mnsrl::MultipleNegativesSymmetricRankingLoss;
use super::{Loss, LossCx, LossEntry};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CachedMultipleNegativesSymmetricRankingLoss",
        family: Family::Loss,
        doc: "MultipleNegativesSymmetricRankingLoss with GradCache: the same loss and gradients, with memory bounded by `mini_batch_size` texts instead of the batch.",
        args: super::cached_mnrl::ARGS,
        columns: Some(columns::RANKING),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    build_in_batch(
        ENTRY.spec.name,
        a,
        MultipleNegativesSymmetricRankingLoss::new,
    )
}

pub type CachedMultipleNegativesSymmetricRankingLoss =
    Cached<MultipleNegativesSymmetricRankingLoss>;

impl CachedMultipleNegativesSymmetricRankingLoss {
    pub fn new(inner: MultipleNegativesSymmetricRankingLoss, mini_batch_size: usize) -> Self {
        Cached::with_name(ENTRY.spec.name, inner, mini_batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn the_value_is_the_uncached_loss() -> Result<()> {
        // scripts/loss_reference_values.py: cached_mnsrl_uvw.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let cached = CachedMultipleNegativesSymmetricRankingLoss::new(
            MultipleNegativesSymmetricRankingLoss::default(),
            3,
        );
        assert_reference(&[(columns_value(&cached, &cols)?, 25.299610662721825)]);
        Ok(())
    }
}
