//! `SoftmaxLoss` (the SBERT NLI objective): a trainable linear classifier
//! over `concat(u, v, |u - v|)` (sentence-transformers' defaults:
//! `concatenation_sent_rep`, `concatenation_sent_difference`, no
//! `concatenation_sent_multiplication`) trained with cross-entropy on
//! integer labels. The classifier is named as in sentence-transformers'
//! state dict (`classifier.weight` `[num_labels, k * dim]`,
//! `classifier.bias` `[num_labels]`) and initialised like torch's
//! `nn.Linear` (uniform in `±1/sqrt(in_features)`), from the run's seeded
//! [`Rng`].

use std::path::Path;

use candle_core::{bail, DType, Device, Result, Tensor, Var};

use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, opt, req, ArgType::*, Args, Columns, Component, Family, Rule};
use crate::runtime::train::rng::Rng;

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "SoftmaxLoss",
        family: Family::Loss,
        doc: "A classifier on (u, v, |u-v|) of two sentence embeddings, trained with cross-entropy (the SBERT NLI objective). Its classifier is saved with the model's checkpoints, and LabelAccuracy evaluates it.",
        args: &[
            req("model", Model, "the model trained"),
            req("num_labels", Count, "number of classes; labels are 0..num_labels-1").at_least(2.0),
            opt("concat_rep", Bool, "true", "feed u and v to the classifier"),
            opt("concat_difference", Bool, "true", "feed |u-v| to the classifier"),
            opt("concat_multiplication", Bool, "false", "feed u*v to the classifier"),
        ],
        columns: Some(Columns {
            label_classes: Some("num_labels"),
            ..columns::PAIR_LABEL
        }),
        rules: &[Rule::AnyTrue(&["concat_rep", "concat_difference", "concat_multiplication"])],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, cx: &LossCx) -> Result<Box<dyn Loss>> {
    let config = SoftmaxConfig {
        embedding_dim: cx.dim,
        num_labels: a.usize("num_labels").map_err(super::arg)?,
        concatenation_sent_rep: a.bool("concat_rep").map_err(super::arg)?,
        concatenation_sent_difference: a.bool("concat_difference").map_err(super::arg)?,
        concatenation_sent_multiplication: a.bool("concat_multiplication").map_err(super::arg)?,
    };
    if config.num_vectors() == 0 {
        bail!("SoftmaxLoss: the classifier would see nothing; keep one of the concat_ options on");
    }
    let mut rng = Rng::derived(cx.seed, &format!("objective.{}", cx.objective));
    Ok(Box::new(SoftmaxLoss::with_config(
        config,
        &mut rng,
        &cx.device,
        DType::F32,
    )?))
}

/// Which vectors the classifier sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxConfig {
    pub embedding_dim: usize,
    pub num_labels: usize,
    /// `u` and `v` (default true).
    pub concatenation_sent_rep: bool,
    /// `|u - v|` (default true).
    pub concatenation_sent_difference: bool,
    /// `u * v` (default false).
    pub concatenation_sent_multiplication: bool,
}

impl SoftmaxConfig {
    pub fn new(embedding_dim: usize, num_labels: usize) -> Self {
        SoftmaxConfig {
            embedding_dim,
            num_labels,
            concatenation_sent_rep: true,
            concatenation_sent_difference: true,
            concatenation_sent_multiplication: false,
        }
    }

    /// How many `dim`-wide vectors are concatenated.
    pub fn num_vectors(&self) -> usize {
        2 * self.concatenation_sent_rep as usize
            + self.concatenation_sent_difference as usize
            + self.concatenation_sent_multiplication as usize
    }

    pub fn in_features(&self) -> usize {
        self.num_vectors() * self.embedding_dim
    }
}

#[derive(Debug, Clone)]
pub struct SoftmaxLoss {
    config: SoftmaxConfig,
    weight: Var,
    bias: Var,
}

impl SoftmaxLoss {
    /// The default configuration, f32 weights on `device`.
    pub fn new(
        embedding_dim: usize,
        num_labels: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        Self::with_config(
            SoftmaxConfig::new(embedding_dim, num_labels),
            rng,
            device,
            DType::F32,
        )
    }

    pub fn with_config(
        config: SoftmaxConfig,
        rng: &mut Rng,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if config.num_vectors() == 0 {
            bail!(
                "SoftmaxLoss: at least one of concatenation_sent_rep, concatenation_sent_difference \
                 or concatenation_sent_multiplication must be true"
            );
        }
        if config.num_labels == 0 || config.embedding_dim == 0 {
            bail!("SoftmaxLoss needs num_labels > 0 and embedding_dim > 0");
        }
        let (k, n) = (config.num_labels, config.in_features());
        // torch: kaiming_uniform_(a = sqrt(5)) gives bound 1/sqrt(fan_in) for
        // the weight, and the bias is uniform in the same bound.
        let bound = 1.0 / (n as f32).sqrt();
        let mut draw = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| (2.0 * rng.next_f32() - 1.0) * bound)
                .collect()
        };
        let w = Tensor::from_vec(draw(k * n), (k, n), device)?.to_dtype(dtype)?;
        let b = Tensor::from_vec(draw(k), k, device)?.to_dtype(dtype)?;
        Ok(SoftmaxLoss {
            config,
            weight: Var::from_tensor(&w)?,
            bias: Var::from_tensor(&b)?,
        })
    }

    pub fn config(&self) -> &SoftmaxConfig {
        &self.config
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// Class logits `[batch, num_labels]` of the two text columns.
    pub fn classify(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, _, dim) = inputs.columns(self.name(), 2, Some(2))?;
        if dim != self.config.embedding_dim {
            bail!(
                "SoftmaxLoss was built for {}-dimensional embeddings, got {dim}",
                self.config.embedding_dim
            );
        }
        let (u, v) = (&cols[0], &cols[1]);
        let mut parts = Vec::with_capacity(4);
        if self.config.concatenation_sent_rep {
            parts.push(u.clone());
            parts.push(v.clone());
        }
        if self.config.concatenation_sent_difference {
            parts.push((u - v)?.abs()?);
        }
        if self.config.concatenation_sent_multiplication {
            parts.push((u * v)?);
        }
        let features = Tensor::cat(&parts, 1)?.to_dtype(self.weight.dtype())?;
        features
            .matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())
    }

    /// The predicted class (argmax of the logits) of each pair.
    pub fn predict(&self, inputs: &LossInputs) -> Result<Vec<u32>> {
        self.classify(inputs)?.argmax(1)?.to_vec1::<u32>()
    }

    /// Writes `classifier.weight` and `classifier.bias` to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::save_vars(self, path)
    }

    /// Reads weights written by [`SoftmaxLoss::save`].
    pub fn load(&self, path: &Path) -> Result<()> {
        super::load_vars(self, path)
    }
}

impl Loss for SoftmaxLoss {
    fn name(&self) -> &str {
        "SoftmaxLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let logits = self.classify(inputs)?;
        let batch = logits.dim(0)?;
        let targets = ops::class_targets(
            self.name(),
            inputs.labels.as_ref(),
            batch,
            Some(self.config.num_labels),
        )?;
        ops::cross_entropy(&logits, &targets.to_device(logits.device())?)
    }

    fn trainable_vars(&self) -> Vec<(String, Var)> {
        vec![
            ("classifier.weight".to_string(), self.weight.clone()),
            ("classifier.bias".to_string(), self.bias.clone()),
        ]
    }

    fn logits(&self, inputs: &LossInputs) -> Result<Option<Tensor>> {
        self.classify(inputs).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    /// A loss in f64 with the reference weights
    /// `W[k][j] = cos(0.21 * (12k + j))`, `b[k] = 0.1k`.
    fn reference_loss(dim: usize) -> Result<SoftmaxLoss> {
        let loss = SoftmaxLoss::with_config(
            SoftmaxConfig::new(dim, 3),
            &mut Rng::new(0),
            &Device::Cpu,
            DType::F64,
        )?;
        let n = 3 * dim;
        let w: Vec<Vec<f64>> = (0..3)
            .map(|k| (0..n).map(|j| (0.21 * (k * 12 + j) as f64).cos()).collect())
            .collect();
        loss.weight.set(&t2(&w))?;
        loss.bias.set(&t1(&[0.0, 0.1, 0.2]))?;
        Ok(loss)
    }

    fn labels(n: usize) -> Tensor {
        let v: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
        Tensor::new(v.as_slice(), &Device::Cpu).expect("labels")
    }

    #[test]
    fn matches_torch() -> Result<()> {
        let loss = reference_loss(4)?;
        let inputs =
            LossInputs::new(vec![t2(&gen(0, 5, 4)), t2(&gen(1, 5, 4))]).with_labels(labels(5));
        let l = scalar(&loss.forward(&inputs)?);
        assert!((l - 3.4863198377132).abs() < 1e-12, "{l}");
        assert_eq!(loss.predict(&inputs)?, vec![2, 1, 2, 2, 2]);
        Ok(())
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // dim 1, 2 labels, W = [[1, 0, 0], [0, 0, 1]], b = [0, 0]:
        // logits = [u, |u - v|]. u = 1, v = 3: logits [1, 2]; label 0:
        // CE = log(e + e^2) - 1 = log(1 + e).
        let cfg = SoftmaxConfig::new(1, 2);
        let loss = SoftmaxLoss::with_config(cfg, &mut Rng::new(1), &Device::Cpu, DType::F64)?;
        loss.weight
            .set(&t2(&[vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]]))?;
        loss.bias.set(&t1(&[0.0, 0.0]))?;
        let inputs = LossInputs::new(vec![t2(&[vec![1.0]]), t2(&[vec![3.0]])])
            .with_labels(Tensor::new(&[0u32], &Device::Cpu)?);
        let l = scalar(&loss.forward(&inputs)?);
        assert!((l - 1f64.exp().ln_1p()).abs() < 1e-12, "{l}");
        assert_eq!(loss.predict(&inputs)?, vec![1]);
        Ok(())
    }

    #[test]
    fn gradients_wrt_embeddings_and_weights() -> Result<()> {
        let loss = reference_loss(3)?;
        let y = labels(4);
        check_grads(&[gen(0, 4, 3), gen(1, 4, 3)], |t| {
            loss.forward(&LossInputs::new(t.to_vec()).with_labels(y.clone()))
        })?;
        // Gradients reaching the classifier's own Vars, against finite
        // differences on the weight and bias values.
        let inputs = LossInputs::new(vec![t2(&gen(0, 4, 3)), t2(&gen(1, 4, 3))]).with_labels(y);
        let grads = loss.forward(&inputs)?.backward()?;
        for (name, var) in loss.trainable_vars() {
            let Some(g) = grads.get(var.as_tensor()) else {
                panic!("no gradient for {name}");
            };
            let g = g.flatten_all()?.to_vec1::<f64>()?;
            let base = var.flatten_all()?.to_vec1::<f64>()?;
            let h = 1e-5;
            for (i, gi) in g.iter().enumerate() {
                let eval = |delta: f64| -> Result<f64> {
                    let mut p = base.clone();
                    p[i] += delta;
                    var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu)?)?;
                    loss.forward(&inputs)?.to_vec0::<f64>()
                };
                let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu)?)?;
                assert!((gi - fd).abs() < 1e-7, "{name}[{i}]: {gi} vs {fd}");
            }
        }
        Ok(())
    }

    #[test]
    fn init_is_seeded_and_bounded() -> Result<()> {
        let a = SoftmaxLoss::new(8, 3, &mut Rng::new(42), &Device::Cpu)?;
        let b = SoftmaxLoss::new(8, 3, &mut Rng::new(42), &Device::Cpu)?;
        let c = SoftmaxLoss::new(8, 3, &mut Rng::new(43), &Device::Cpu)?;
        let wa = a.weight.to_vec2::<f32>()?;
        assert_eq!(wa, b.weight.to_vec2::<f32>()?);
        assert_ne!(wa, c.weight.to_vec2::<f32>()?);
        assert_eq!(a.weight.dims(), &[3, 24]);
        let bound = 1.0 / 24f32.sqrt();
        assert!(wa.iter().flatten().all(|x| x.abs() <= bound));
        assert!(a.bias.to_vec1::<f32>()?.iter().all(|x| x.abs() <= bound));
        Ok(())
    }

    #[test]
    fn save_and_load_round_trip() -> Result<()> {
        let dir = tempfile::tempdir().map_err(candle_core::Error::wrap)?;
        let path = dir.path().join("loss.safetensors");
        let a = SoftmaxLoss::new(4, 3, &mut Rng::new(1), &Device::Cpu)?;
        a.save(&path)?;
        let b = SoftmaxLoss::new(4, 3, &mut Rng::new(2), &Device::Cpu)?;
        b.load(&path)?;
        assert_eq!(a.weight.to_vec2::<f32>()?, b.weight.to_vec2::<f32>()?);
        assert_eq!(a.bias.to_vec1::<f32>()?, b.bias.to_vec1::<f32>()?);
        let names: Vec<String> = candle_core::safetensors::load(&path, &Device::Cpu)?
            .into_keys()
            .collect();
        assert!(names.contains(&"classifier.weight".to_string()));
        // A classifier of another shape does not load.
        let c = SoftmaxLoss::new(5, 3, &mut Rng::new(2), &Device::Cpu)?;
        assert!(c.load(&path).is_err());
        Ok(())
    }

    #[test]
    fn label_errors() -> Result<()> {
        let loss = SoftmaxLoss::new(2, 3, &mut Rng::new(1), &Device::Cpu)?;
        let cols = vec![t2(&gen(0, 2, 2)), t2(&gen(1, 2, 2))];
        // Label 3 is outside 0..3; missing labels.
        let bad = LossInputs::new(cols.clone()).with_labels(Tensor::new(&[0u32, 3], &Device::Cpu)?);
        assert!(loss.forward(&bad).is_err());
        assert!(loss.forward(&LossInputs::new(cols)).is_err());
        Ok(())
    }
}
