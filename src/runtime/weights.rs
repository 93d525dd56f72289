//! Reading and writing weight files, with every error naming the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};

use super::error::{Error, Result};

/// The tensors of one weights file, looked up by name.
pub struct WeightFile {
    pub path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl WeightFile {
    /// Load `model.safetensors` from `dir`, else `pytorch_model.bin`, else
    /// the shards an index (`model.safetensors.index.json`,
    /// `pytorch_model.bin.index.json`) lists.
    pub fn load_from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let st = dir.join("model.safetensors");
        if st.is_file() {
            return Self::load_safetensors(&st, device);
        }
        let bin = dir.join("pytorch_model.bin");
        if bin.is_file() {
            return Self::load_pytorch(&bin, device);
        }
        for (index, pickle) in [
            ("model.safetensors.index.json", false),
            ("pytorch_model.bin.index.json", true),
        ] {
            let p = dir.join(index);
            if p.is_file() {
                return Self::load_sharded(&p, pickle, device);
            }
        }
        Err(Error::missing(
            &st,
            "model weights (neither model.safetensors nor pytorch_model.bin nor a sharded index is present)",
        ))
    }

    /// The shards named by a Hugging Face index file's `weight_map`, as one
    /// file (each tensor from the shard the index names for it).
    fn load_sharded(index: &Path, pickle: bool, device: &Device) -> Result<Self> {
        let v: serde_json::Value = super::error::read_json(index)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::config(index, "no `weight_map` object"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<&str> = Vec::new();
        for (name, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                Error::config(index, format!("the shard of `{name}` is not a file name"))
            })?;
            // A shard must be a plain file name inside the directory.
            if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                return Err(Error::config(
                    index,
                    format!("shard `{shard}` is not a file of the model directory"),
                ));
            }
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        let mut tensors = HashMap::new();
        for shard in shards {
            let p = dir.join(shard);
            let part = if pickle {
                Self::load_pytorch(&p, device)?
            } else {
                Self::load_safetensors(&p, device)?
            };
            for (name, t) in part.tensors {
                if map.get(&name).and_then(|s| s.as_str()) == Some(shard) {
                    tensors.insert(name, t);
                }
            }
        }
        if let Some(name) = map.keys().find(|n| !tensors.contains_key(*n)) {
            return Err(Error::MissingTensor {
                path: index.to_path_buf(),
                name: name.clone(),
            });
        }
        Ok(WeightFile {
            path: index.to_path_buf(),
            tensors,
        })
    }

    /// Load a safetensors file.
    pub fn load_safetensors(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tensors =
            candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| Error::Weights {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })?;
        Ok(WeightFile {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Load a PyTorch pickle checkpoint (`pytorch_model.bin`).
    pub fn load_pytorch(path: &Path, device: &Device) -> Result<Self> {
        let list = candle_core::pickle::read_all(path).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let mut tensors = HashMap::new();
        for (name, t) in list {
            tensors.insert(name, t.to_device(device)?);
        }
        Ok(WeightFile {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Every tensor name in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    /// The raw tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Whether the file holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name`, checked against `shape`, as a trainable f32 variable.
    pub fn var(&self, name: &str, shape: &[usize]) -> Result<Var> {
        let t = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        if t.dims() != shape {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: name.to_string(),
                got: t.dims().to_vec(),
                expected: shape.to_vec(),
            });
        }
        let t = t.to_dtype(DType::F32)?.contiguous()?;
        Ok(Var::from_tensor(&t)?)
    }

    /// Like [`WeightFile::var`], trying several names in order (e.g. `weight`
    /// then the old `gamma`); errors name the first.
    pub fn var_any(&self, names: &[String], shape: &[usize]) -> Result<Var> {
        for n in names {
            if self.contains(n) {
                return self.var(n, shape);
            }
        }
        self.var(names.first().map(|s| s.as_str()).unwrap_or(""), shape)
    }
}

/// Write named tensors to a safetensors file that PyTorch/transformers read
/// (metadata `format: pt`).
pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    use super::safetensors_out::{write, Source, WriteError};
    let sources: Vec<(&str, Source)> = tensors
        .iter()
        .map(|(name, t)| (name.as_str(), Source::Tensor(t)))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    write(path, &sources, Some(meta)).map_err(|e| match e {
        WriteError::Io(e) => Error::io(path, e),
        WriteError::Format(msg) => Error::Weights {
            path: path.to_path_buf(),
            msg,
        },
    })
}

/// Detached copies of vars, for saving.
pub fn vars_to_tensors(vars: &[(String, Var)]) -> Vec<(String, Tensor)> {
    vars.iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect()
}
