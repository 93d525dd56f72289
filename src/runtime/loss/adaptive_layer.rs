//! `AdaptiveLayerLoss` (after 2D Matryoshka Sentence Embeddings, Li et al.
//! 2024, and the Starbucks paper): another loss applied to the embeddings
//! of the model's final layer and of its earlier layers, so that a model
//! cut after any layer still embeds well. The earlier layers' embeddings
//! are what the rest of the chain (Pooling, Dense, ...) makes of each
//! layer's input, from the same forward pass (`SentenceEncoder::embed_layers`).
//!
//! The loss is `last_layer_weight * loss(final)` plus, for each earlier
//! layer `i` used in the batch (`n_layers_per_step` of them, drawn from the
//! batch's seed; all of them when it is -1 or at least their number),
//! `prior_layers_weight * w(i) / k * loss(layer i)` with `w` `uniform` (1),
//! `log` (`1 / (1 + ln(1 + i))`) or `linear` (`1 / (1 + i)`), and, when
//! `kl_temperature` is above 0, `kl_div_weight * T * KL(softmax(final / T)
//! || softmax(layer_i / T))` over each text's embedding, averaged over the
//! texts of all columns (the final layer's side detached). Layer 0 is the
//! embedding layer's output, as in sentence-transformers.
//!
//! The wrapped loss may not run under GradCache, which embeds a batch a
//! mini-batch at a time: every layer's embeddings of the whole batch are
//! needed at once (the checker refuses a cached loss inside).

use candle_core::{bail, Result, Tensor, D};

use super::{Loss, LossCx, LossEntry, LossInputs};
use crate::check::types::WRAPPED_LOSS;
use crate::registry::choices::LayerWeighting;
use crate::registry::{catalogue, opt, req, ArgSpec, ArgType::*, Args, Component, Family, Rule};
use crate::runtime::train::rng::Rng;

/// The arguments AdaptiveLayerLoss and Matryoshka2dLoss share.
pub(super) const LAYER_ARGS: [ArgSpec; 6] = [
    opt("n_layers_per_step", Int, "1", "how many earlier layers each batch trains, drawn at random; -1 trains all"),
    opt("last_layer_weight", Float, "1.0", "the weight of the final layer's loss"),
    opt("prior_layers_weight", Float, "1.0", "the weight of the earlier layers' losses"),
    opt("kl_div_weight", Float, "1.0", "the weight of the KL divergence between each earlier layer's embeddings and the final layer's"),
    opt("kl_temperature", Float, "0.3", "the temperature of that KL divergence; 0 leaves it out").at_least(0.0),
    opt("layer_weighting", Choice(LayerWeighting::NAMES), "uniform", "how earlier layer `i` is weighted: uniform (1), log (1 / (1 + ln(1 + i))) or linear (1 / (1 + i))"),
];

const ARGS: [ArgSpec; 7] = [
    req(
        WRAPPED_LOSS,
        LossCall,
        "the loss applied at every layer, e.g. `MultipleNegativesRankingLoss(m)`",
    ),
    LAYER_ARGS[0],
    LAYER_ARGS[1],
    LAYER_ARGS[2],
    LAYER_ARGS[3],
    LAYER_ARGS[4],
    LAYER_ARGS[5],
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "AdaptiveLayerLoss",
        family: Family::Loss,
        doc: "Trains a model that still embeds well when cut after any layer: the wrapped loss on the final layer's embeddings and on those of earlier layers (drawn per batch), plus a KL divergence pulling each earlier layer toward the final one. The data is the wrapped loss's.",
        args: &ARGS,
        columns: None,
        rules: &[Rule::Uncached],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let inner = a.call(WRAPPED_LOSS).map_err(super::arg)?;
    let Some(entry) = catalogue::loss(&inner.name) else {
        bail!("AdaptiveLayerLoss: unknown loss `{}`", inner.name);
    };
    Ok(Box::new(AdaptiveLayerLoss::from_args(
        (entry.build)(&inner.args, cx)?,
        a,
    )?))
}

pub struct AdaptiveLayerLoss {
    inner: Box<dyn Loss>,
    /// Earlier layers per batch; `None` uses all.
    per_step: Option<usize>,
    pub last_layer_weight: f64,
    pub prior_layers_weight: f64,
    pub kl_div_weight: f64,
    pub kl_temperature: f64,
    pub layer_weighting: LayerWeighting,
}

impl AdaptiveLayerLoss {
    /// `inner` under the layer arguments of `a` ([`LAYER_ARGS`]).
    pub(super) fn from_args(inner: Box<dyn Loss>, a: &Args) -> Result<Self> {
        Ok(AdaptiveLayerLoss::new(
            inner,
            a.i64("n_layers_per_step").map_err(super::arg)?,
            a.f64("last_layer_weight").map_err(super::arg)?,
            a.f64("prior_layers_weight").map_err(super::arg)?,
            a.f64("kl_div_weight").map_err(super::arg)?,
            a.f64("kl_temperature").map_err(super::arg)?,
            a.choice("layer_weighting").map_err(super::arg)?,
        ))
    }

    pub fn new(
        inner: Box<dyn Loss>,
        n_layers_per_step: i64,
        last_layer_weight: f64,
        prior_layers_weight: f64,
        kl_div_weight: f64,
        kl_temperature: f64,
        layer_weighting: LayerWeighting,
    ) -> Self {
        AdaptiveLayerLoss {
            inner,
            per_step: usize::try_from(n_layers_per_step).ok().filter(|&k| k > 0),
            last_layer_weight,
            prior_layers_weight,
            kl_div_weight,
            kl_temperature,
            layer_weighting,
        }
    }

    /// The earlier layers a batch with `seed` uses, of `n`, ascending.
    fn chosen(&self, n: usize, seed: u64) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        if let Some(k) = self.per_step.filter(|&k| k < n) {
            Rng::derived(seed, "adaptive_layer.layers").shuffle(&mut all);
            all.truncate(k);
            all.sort_unstable();
        }
        all
    }

    fn layer_weight(&self, i: usize) -> f64 {
        match self.layer_weighting {
            LayerWeighting::Uniform => 1.0,
            LayerWeighting::Log => 1.0 / (1.0 + (1.0 + i as f64).ln()),
            LayerWeighting::Linear => 1.0 / (1.0 + i as f64),
        }
    }
}

/// `log_softmax(x / t)` along the last dimension.
fn log_softmax(x: &Tensor, t: f64) -> Result<Tensor> {
    let x = (x / t)?;
    let m = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

impl Loss for AdaptiveLayerLoss {
    fn name(&self) -> &str {
        "AdaptiveLayerLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let Some(layers) = &inputs.layers else {
            bail!("AdaptiveLayerLoss needs the embeddings of every layer");
        };
        let mut loss = (self.inner.forward(inputs)? * self.last_layer_weight)?;
        let chosen = self.chosen(layers.len(), inputs.seed);
        if chosen.is_empty() {
            return Ok(loss);
        }
        let t = self.kl_temperature;
        let target = if t > 0.0 {
            let log_p = log_softmax(&Tensor::cat(&inputs.embeddings, 0)?, t)?.detach();
            Some((log_p.exp()?, log_p))
        } else {
            None
        };
        for &i in &chosen {
            let mut cut = inputs.clone();
            cut.embeddings = layers[i].clone();
            cut.layers = None;
            let w = self.layer_weight(i) / chosen.len() as f64 * self.prior_layers_weight;
            loss = (loss + (self.inner.forward(&cut)? * w)?)?;
            if let Some((p, log_p)) = &target {
                let log_q = log_softmax(&Tensor::cat(&layers[i], 0)?, t)?;
                let rows = log_q.dim(0)? as f64;
                // KL(p || q), "batchmean": summed, divided by the rows.
                let kl = (p * (log_p - log_q)?)?.sum_all()?;
                loss = (loss + (kl * (t * self.kl_div_weight / rows))?)?;
            }
        }
        Ok(loss)
    }

    fn trainable_vars(&self) -> Vec<(String, candle_core::Var)> {
        self.inner.trainable_vars()
    }

    fn wants_layers(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;
    use crate::runtime::loss::MultipleNegativesRankingLoss;

    fn adaptive(per_step: i64, kl_t: f64, weighting: LayerWeighting) -> AdaptiveLayerLoss {
        AdaptiveLayerLoss::new(
            Box::new(MultipleNegativesRankingLoss::default()),
            per_step,
            1.0,
            0.7,
            1.3,
            kl_t,
            weighting,
        )
    }

    /// Inputs from `n_layers + 1` sets of two columns: the last set is the
    /// final layer's.
    fn inputs(t: &[Tensor], n_layers: usize) -> LossInputs {
        let final_cols = t[2 * n_layers..].to_vec();
        let layers = (0..n_layers)
            .map(|l| t[2 * l..2 * l + 2].to_vec())
            .collect();
        LossInputs {
            layers: Some(layers),
            ..LossInputs::new(final_cols)
        }
    }

    #[test]
    fn hand_computed_terms() -> Result<()> {
        // Without the KL term and with one earlier layer, the loss is
        // mnrl(final) + 0.7 * w(0) * mnrl(layer 0).
        let cols: Vec<Vec<Vec<f64>>> = (0..4).map(|c| gen(c, 3, 4)).collect();
        let t: Vec<Tensor> = cols.iter().map(|c| t2(c)).collect();
        let mnrl = MultipleNegativesRankingLoss::default();
        let fin = scalar(&mnrl.forward(&LossInputs::new(t[2..].to_vec()))?);
        let early = scalar(&mnrl.forward(&LossInputs::new(t[..2].to_vec()))?);
        let got = scalar(&adaptive(-1, 0.0, LayerWeighting::Uniform).forward(&inputs(&t, 1))?);
        assert!((got - (fin + 0.7 * early)).abs() < 1e-12, "{got}");
        // The final layer's KL divergence with itself is 0.
        let same = vec![t[2].clone(), t[3].clone(), t[2].clone(), t[3].clone()];
        let got = scalar(&adaptive(-1, 0.5, LayerWeighting::Uniform).forward(&inputs(&same, 1))?);
        assert!((got - 1.7 * fin).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn weights_and_drawn_layers() {
        let l = adaptive(2, 0.3, LayerWeighting::Log);
        assert!((l.layer_weight(0) - 1.0).abs() < 1e-15);
        assert!((l.layer_weight(3) - 1.0 / (1.0 + 4f64.ln())).abs() < 1e-15);
        assert!((adaptive(1, 0.3, LayerWeighting::Linear).layer_weight(3) - 0.25).abs() < 1e-15);
        let a = l.chosen(6, 7);
        assert_eq!(a.len(), 2);
        assert_eq!(a, l.chosen(6, 7), "the batch's seed decides");
        assert_eq!(l.chosen(2, 7), [0, 1]);
        assert_eq!(
            adaptive(-1, 0.3, LayerWeighting::Log).chosen(5, 1),
            [0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols: Vec<Vec<Vec<f64>>> = (0..6).map(|c| gen(c, 3, 4)).collect();
        check_grads(&cols, |t| {
            adaptive(-1, 0.0, LayerWeighting::Linear).forward(&inputs(t, 2))
        })?;
        // With the KL term, the final layer's distribution is a detached
        // target (as in sentence-transformers), so only the earlier layers
        // are checked against finite differences, the final ones held.
        let fixed: Vec<Tensor> = cols[4..].iter().map(|c| t2(c)).collect();
        let l = adaptive(-1, 0.4, LayerWeighting::Linear);
        check_grads(&cols[..4], |t| {
            let all: Vec<Tensor> = t.iter().chain(&fixed).cloned().collect();
            l.forward(&inputs(&all, 2))
        })
    }

    #[test]
    fn needs_the_layers() {
        let l = adaptive(1, 0.3, LayerWeighting::Uniform);
        let t: Vec<Tensor> = (0..2).map(|c| t2(&gen(c, 3, 4))).collect();
        assert!(l.forward(&LossInputs::new(t)).is_err());
    }
}
