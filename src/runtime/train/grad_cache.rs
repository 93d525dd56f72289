//! GradCache (Gao et al. 2021): the training step of the Cached... losses,
//! with memory bounded by a mini-batch instead of the batch.
//!
//! 1. Every text column is embedded `mini_batch` texts at a time in a
//!    forward-only pass (dropout on, no activations kept); the embeddings
//!    are gathered into one leaf variable per column.
//! 2. The loss over the whole batch is computed from those variables and
//!    differentiated with respect to them only (the loss graph is small).
//! 3. Each mini-batch is embedded again with the same dropout masks, and
//!    `sum(embedding * d loss / d embedding)` is backpropagated into the
//!    model, so the parameter gradient is the chain rule's sum over the
//!    mini-batches: the gradient of the uncached loss.
//!
//! Each mini-batch draws its dropout masks from its own seed (turn,
//! column, mini-batch), so both passes see the same masks; with dropout
//! off the gradients equal the uncached loss's (`tests/grad_cache.rs`).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::registry::choices::Precision;
use crate::runtime::loss::{Loss, LossInputs};
use crate::runtime::{Ctx, SentenceEncoder};

use super::error::Result;
use super::rng::Rng;

/// The mini-batches of `n` texts, as (start, length).
fn chunks(n: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = size.max(1);
    (0..n).step_by(size).map(move |s| (s, size.min(n - s)))
}

/// One GradCache step of `loss` on `model`.
pub struct GradCache<'a> {
    pub model: &'a SentenceEncoder,
    pub loss: &'a dyn Loss,
    /// The prompt of each text column.
    pub prompts: Vec<Option<&'a str>>,
    /// Texts embedded at a time.
    pub mini_batch: usize,
    /// Seeds the dropout masks of the step's mini-batches.
    pub seed: u64,
    /// Dropout on (training); off to compare with the uncached loss.
    pub dropout: bool,
    /// The linear layers' precision (the stage's).
    pub precision: Precision,
}

impl GradCache<'_> {
    fn ctx(&self, column: usize, chunk: usize, grad: bool) -> Ctx {
        let seed = Rng::derived(self.seed, &format!("gradcache.col{column}.mb{chunk}")).next_u64();
        let ctx = match (self.dropout, grad) {
            (true, true) => Ctx::train(seed),
            (true, false) => Ctx::train_forward(seed),
            (false, true) => Ctx::eval_with_grad(),
            (false, false) => Ctx::eval(),
        };
        // Both passes round alike, so the second recomputes the first's
        // embeddings exactly.
        ctx.with_precision(self.precision)
    }

    /// The embeddings of column `i`'s mini-batch `k`.
    fn embed(&self, texts: &[&str], i: usize, k: usize, grad: bool) -> Result<Tensor> {
        let prompt = self.prompts.get(i).copied().flatten();
        Ok(self
            .model
            .embed_prompted(texts, prompt, &self.ctx(i, k, grad))?)
    }

    /// One batch (`cols`: its texts by column; `inputs`: what the loss sees
    /// besides embeddings). Hands every gradient store to `sink` (the
    /// loss's own weights first, then one per mini-batch) and returns the
    /// loss, detached.
    pub fn run(
        &self,
        cols: &[Vec<&str>],
        mut inputs: LossInputs,
        sink: &mut dyn FnMut(&GradStore) -> Result<()>,
    ) -> Result<Tensor> {
        let mut vars = Vec::with_capacity(cols.len());
        for (i, texts) in cols.iter().enumerate() {
            let parts = chunks(texts.len(), self.mini_batch)
                .enumerate()
                .map(|(k, (s, n))| Ok(self.embed(&texts[s..s + n], i, k, false)?.detach()))
                .collect::<Result<Vec<_>>>()?;
            vars.push(Var::from_tensor(&Tensor::cat(&parts, 0)?)?);
        }
        inputs.embeddings = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let loss = self.loss.forward(&inputs)?;
        let grads = loss.backward()?;
        sink(&grads)?;
        for (i, texts) in cols.iter().enumerate() {
            let Some(g) = grads.get(vars[i].as_tensor()) else {
                continue;
            };
            for (k, (s, n)) in chunks(texts.len(), self.mini_batch).enumerate() {
                let e = self.embed(&texts[s..s + n], i, k, true)?;
                let share = (&e * g.narrow(0, s, n)?.to_dtype(e.dtype())?)?.sum_all()?;
                sink(&share.backward()?)?;
            }
        }
        Ok(loss.detach())
    }
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_cover_the_batch_once() {
        let c: Vec<_> = chunks(10, 4).collect();
        assert_eq!(c, vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(chunks(3, 32).collect::<Vec<_>>(), vec![(0, 3)]);
        assert_eq!(chunks(0, 4).count(), 0);
        assert_eq!(chunks(2, 0).collect::<Vec<_>>(), vec![(0, 1), (1, 1)]);
    }
}
