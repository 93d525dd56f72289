//! Building runtime objects from the checked pipeline: a model's module
//! chain and an objective's loss.

use std::path::Path;

use candle_core::Device;

use crate::check::types::{self as ct, ArgValue, Objective};
use crate::hub::ModelSearch;
use crate::runtime::loss::{
    AnglELoss, CoSENTLoss, CosineSimilarityLoss, Loss, MSELoss, MultipleNegativesRankingLoss,
    MultipleNegativesSymmetricRankingLoss, SoftmaxLoss,
};
use crate::runtime::modules::{
    dense::{Activation, Dense},
    dropout::Dropout,
    layer_norm::LayerNorm,
    normalize::Normalize,
    Pooling, PoolingMode,
};
use crate::runtime::SentenceEncoder;

use super::error::{unsupported, Result, RunError};
use super::rng::Rng;

/// Build a model: load its Transformer (or whole saved model) and append
/// the modules the chain adds, new ones initialised from `seed`.
pub fn build_model(
    model: &ct::Model,
    search: &ModelSearch,
    base_dir: &Path,
    seed: u64,
) -> Result<SentenceEncoder> {
    let device = Device::Cpu;
    let mut modules = model.modules.iter();
    let mut enc = match modules.next() {
        Some(ct::Module::Transformer {
            model: spec,
            max_seq_length,
            ..
        }) => {
            let dir = crate::runtime::download::resolve(spec, search, base_dir)?;
            let t = crate::runtime::modules::Transformer::load(&dir, *max_seq_length, &device)?;
            SentenceEncoder::new(vec![Box::new(t)])?
        }
        Some(ct::Module::Pretrained { model: spec, .. }) => {
            SentenceEncoder::from_spec(spec, search, base_dir)?
        }
        _ => {
            return Err(RunError::Invalid(format!(
                "model `{}` must start with a Transformer or a loaded model",
                model.name
            )))
        }
    };
    for (i, m) in modules.enumerate() {
        let dim = enc.dim();
        let module_seed = Rng::derived(seed, &format!("{}.module{}", model.name, i + 1)).next_u64();
        match m {
            ct::Module::Pooling { modes, .. } => {
                let modes: Vec<PoolingMode> = modes.iter().map(|&m| pooling_mode(m)).collect();
                enc.push(Box::new(Pooling::new(dim, &modes)));
            }
            ct::Module::Dense {
                out_features,
                activation,
                bias,
                ..
            } => enc.push(Box::new(Dense::new(
                dim,
                *out_features,
                *bias,
                activation_of(*activation),
                module_seed,
                &device,
            )?)),
            ct::Module::Normalize => enc.push(Box::new(Normalize::new())),
            ct::Module::LayerNorm { .. } => enc.push(Box::new(LayerNorm::new(dim, &device)?)),
            ct::Module::Dropout { p } => enc.push(Box::new(Dropout::new(*p))),
            ct::Module::Transformer { .. } | ct::Module::Pretrained { .. } => {
                return Err(RunError::Invalid(format!(
                    "model `{}`: a Transformer can only start a chain",
                    model.name
                )))
            }
        }
    }
    Ok(enc)
}

fn pooling_mode(m: ct::PoolingMode) -> PoolingMode {
    match m {
        ct::PoolingMode::Cls => PoolingMode::Cls,
        ct::PoolingMode::Mean => PoolingMode::Mean,
        ct::PoolingMode::Max => PoolingMode::Max,
        ct::PoolingMode::MeanSqrtLenTokens => PoolingMode::MeanSqrtLen,
        ct::PoolingMode::WeightedMean => PoolingMode::WeightedMean,
        ct::PoolingMode::LastToken => PoolingMode::LastToken,
    }
}

fn activation_of(a: ct::Activation) -> Activation {
    match a {
        ct::Activation::Tanh => Activation::Tanh,
        ct::Activation::Identity => Activation::Identity,
        ct::Activation::Relu => Activation::Relu,
        ct::Activation::Gelu => Activation::Gelu,
        ct::Activation::Sigmoid => Activation::Sigmoid,
    }
}

fn f64_arg(o: &Objective, name: &str, default: f64) -> f64 {
    o.args
        .get(name)
        .and_then(ArgValue::as_f64)
        .unwrap_or(default)
}

/// Build the loss of an objective for a model of width `dim`.
pub fn build_loss(o: &Objective, dim: usize, seed: u64) -> Result<Box<dyn Loss>> {
    use crate::runtime::loss::Similarity;
    let similarity = || match o.args.get("similarity").and_then(ArgValue::as_str) {
        Some("dot") => Similarity::Dot,
        _ => Similarity::Cosine,
    };
    Ok(match o.loss.as_str() {
        "CosineSimilarityLoss" => Box::new(CosineSimilarityLoss),
        "CoSENTLoss" => Box::new(CoSENTLoss::new(f64_arg(o, "scale", 20.0))),
        "AnglELoss" => Box::new(AnglELoss::new(f64_arg(o, "scale", 20.0))),
        "MultipleNegativesRankingLoss" => Box::new(MultipleNegativesRankingLoss::new(
            f64_arg(o, "scale", 20.0),
            similarity(),
        )?),
        "MultipleNegativesSymmetricRankingLoss" => Box::new(
            MultipleNegativesSymmetricRankingLoss::new(f64_arg(o, "scale", 20.0), similarity())?,
        ),
        "MSELoss" => Box::new(MSELoss),
        "SoftmaxLoss" => {
            let num_labels = o
                .args
                .get("num_labels")
                .and_then(ArgValue::as_i64)
                .unwrap_or(0)
                .max(0) as usize;
            let mut rng = Rng::derived(seed, &format!("objective.{}", o.name));
            let config = crate::runtime::loss::softmax::SoftmaxConfig {
                embedding_dim: dim,
                num_labels,
                concatenation_sent_rep: true,
                concatenation_sent_difference: o
                    .args
                    .get("concat_difference")
                    .and_then(ArgValue::as_bool)
                    .unwrap_or(true),
                concatenation_sent_multiplication: o
                    .args
                    .get("concat_multiplication")
                    .and_then(ArgValue::as_bool)
                    .unwrap_or(false),
            };
            Box::new(SoftmaxLoss::with_config(
                config,
                &mut rng,
                &Device::Cpu,
                candle_core::DType::F32,
            )?)
        }
        other => {
            return Err(unsupported(
                &format!("objective `{}`", o.name),
                &format!("the loss `{other}` is checked but has no training implementation yet"),
                "use CosineSimilarityLoss, CoSENTLoss, AnglELoss, SoftmaxLoss, \
                 MultipleNegativesRankingLoss, MultipleNegativesSymmetricRankingLoss or MSELoss",
            ))
        }
    })
}
