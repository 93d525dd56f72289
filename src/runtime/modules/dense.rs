//! `Dense`: a fully connected layer with an activation on the sentence
//! embedding (sentence-transformers `models.Dense`).

use std::any::Any;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::{Features, Module};
use crate::runtime::error::{read_json, write_json, Error, Result};
use crate::runtime::ops::{self, Ctx};
use crate::runtime::weights::{save_safetensors, vars_to_tensors, WeightFile};

pub use crate::registry::choices::Activation;
use crate::registry::{maybe, opt, req, ArgType::*, Args, Component, Family, ModuleShape};

use super::{ModuleCx, ModuleEntry};

pub const ENTRY: ModuleEntry = ModuleEntry {
    spec: Component {
        name: "Dense",
        family: Family::Module,
        doc: "A fully connected layer with an activation; its input width is the width of what precedes it.",
        args: &[
            req("out_features", Count, "output width").at_least(1.0).at_most(1_048_576.0),
            opt("activation", Choice(Activation::NAMES), "tanh", "activation function"),
            opt("bias", Bool, "true", "learn a bias"),
            maybe("in_features", Count, "input width; when given, it must equal the width of what precedes the Dense"),
        ],
        ..Component::BASE
    },
    shape: ModuleShape::Project {
        out: "out_features",
        input: "in_features",
    },
    build,
};

fn build(a: &Args, cx: &ModuleCx) -> Result<Vec<Box<dyn Module>>> {
    let e = |e: crate::registry::ArgError| Error::Msg(e.to_string());
    Ok(vec![Box::new(Dense::new(
        cx.in_dim,
        a.usize("out_features").map_err(e)?,
        a.bool("bias").map_err(e)?,
        a.choice("activation").map_err(e)?,
        cx.seed,
        cx.device,
    )?)])
}

impl Activation {
    /// The torch class path sentence-transformers stores in `config.json`.
    pub fn torch_path(self) -> &'static str {
        match self {
            Activation::Identity => "torch.nn.modules.linear.Identity",
            Activation::Tanh => "torch.nn.modules.activation.Tanh",
            Activation::Relu => "torch.nn.modules.activation.ReLU",
            Activation::Gelu => "torch.nn.modules.activation.GELU",
            Activation::Sigmoid => "torch.nn.modules.activation.Sigmoid",
        }
    }

    /// Parse a torch class path or a short name (`tanh`, `relu`, ...).
    pub fn parse_config(s: &str) -> Option<Self> {
        let last = s.rsplit('.').next().unwrap_or(s).to_ascii_lowercase();
        Some(match last.as_str() {
            "identity" | "none" | "linear" => Activation::Identity,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "sigmoid" => Activation::Sigmoid,
            _ => return None,
        })
    }

    fn apply(self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        Ok(match self {
            Activation::Identity => x.clone(),
            Activation::Tanh => x.tanh()?,
            Activation::Relu => x.relu()?,
            Activation::Gelu => ops::gelu(x, ctx)?,
            Activation::Sigmoid => candle_nn::ops::sigmoid(x)?,
        })
    }
}

/// `activation(x W^T + b)`, W `[out, in]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub in_features: usize,
    pub out_features: usize,
    pub activation: Activation,
    pub weight: Var,
    pub bias: Option<Var>,
}

#[derive(Serialize, Deserialize)]
struct Config {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default = "default_act")]
    activation_function: String,
}

fn yes() -> bool {
    true
}

fn default_act() -> String {
    Activation::Tanh.torch_path().to_string()
}

impl Dense {
    /// A freshly initialised layer, as torch's `nn.Linear`
    /// (uniform in ±1/sqrt(in)), drawn from `seed`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        activation: Activation,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let bound = 1.0 / (in_features.max(1) as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..=bound)).collect() };
        let w = Tensor::from_vec(
            draw(in_features * out_features),
            (out_features, in_features),
            device,
        )?;
        let b = if bias {
            Some(Var::from_tensor(&Tensor::from_vec(
                draw(out_features),
                out_features,
                device,
            )?)?)
        } else {
            None
        };
        Ok(Dense {
            in_features,
            out_features,
            activation,
            weight: Var::from_tensor(&w)?,
            bias: b,
        })
    }

    /// Load from a module directory (`config.json` + `model.safetensors`
    /// or `pytorch_model.bin`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cpath = dir.join("config.json");
        let c: Config = read_json(&cpath)?;
        let activation = Activation::parse_config(&c.activation_function).ok_or_else(|| {
            Error::config(
                &cpath,
                format!(
                    "unsupported activation_function `{}`",
                    c.activation_function
                ),
            )
        })?;
        let w = WeightFile::load_from_dir(dir, device)?;
        let weight = w.var("linear.weight", &[c.out_features, c.in_features])?;
        let bias = if c.bias {
            Some(w.var("linear.bias", &[c.out_features])?)
        } else {
            None
        };
        Ok(Dense {
            in_features: c.in_features,
            out_features: c.out_features,
            activation,
            weight,
            bias,
        })
    }
}

impl Module for Dense {
    fn type_name(&self) -> &'static str {
        "Dense"
    }

    fn forward(&self, mut f: Features, ctx: &Ctx) -> Result<Features> {
        let x = Features::need(&f.sentence_embedding, "sentence_embedding", "Dense")?;
        let y = ops::linear(
            &x.to_dtype(DType::F32)?,
            self.weight.as_tensor(),
            self.bias.as_ref().map(|b| b.as_tensor()),
            ctx,
        )?;
        f.sentence_embedding = Some(self.activation.apply(&y, ctx)?);
        Ok(f)
    }

    fn out_dim(&self) -> Option<usize> {
        Some(self.out_features)
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = vec![("linear.weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("linear.bias".to_string(), b.clone()));
        }
        v
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_json(
            &dir.join("config.json"),
            &Config {
                in_features: self.in_features,
                out_features: self.out_features,
                bias: self.bias.is_some(),
                activation_function: self.activation.torch_path().to_string(),
            },
        )?;
        save_safetensors(
            &dir.join("model.safetensors"),
            &vars_to_tensors(&self.named_vars()),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
