//! The runtime's error type: every failure that comes from a file names it.

use std::path::{Path, PathBuf};

/// Result alias of the runtime.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while loading, running or saving a model.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// A file the model needs is absent.
    #[error("missing file {}: {what}", path.display())]
    #[diagnostic(
        code(stpipe::runtime::missing_file),
        help("the model directory is incomplete; re-download or re-save the model")
    )]
    MissingFile { path: PathBuf, what: String },

    /// A file exists but could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    #[diagnostic(code(stpipe::runtime::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A write failed because the disk (or the quota) is full.
    #[error("the disk is full: cannot write {}", path.display())]
    #[diagnostic(
        code(stpipe::disk_full),
        help("free some space and run the same command again; a model saved before is intact")
    )]
    DiskFull { path: PathBuf },

    /// A JSON file is not valid JSON.
    #[error("invalid JSON in {}: {source}", path.display())]
    #[diagnostic(code(stpipe::runtime::json))]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A configuration file is valid JSON but describes something wrong.
    #[error("invalid configuration in {}: {msg}", path.display())]
    #[diagnostic(code(stpipe::runtime::config))]
    Config { path: PathBuf, msg: String },

    /// A weights file could not be parsed (truncated, corrupt, wrong format).
    #[error("cannot read weights from {}: {msg}", path.display())]
    #[diagnostic(
        code(stpipe::runtime::weights),
        help("the file may be truncated or corrupt; re-download or re-save the model")
    )]
    Weights { path: PathBuf, msg: String },

    /// A tensor the model needs is absent from its weights file.
    #[error("tensor `{name}` is missing from {}", path.display())]
    #[diagnostic(code(stpipe::runtime::missing_tensor))]
    MissingTensor { path: PathBuf, name: String },

    /// A tensor has the wrong shape for the model's configuration.
    #[error("tensor `{name}` in {} has shape {got:?}, expected {expected:?}", path.display())]
    #[diagnostic(
        code(stpipe::runtime::tensor_shape),
        help("the weights do not match the configuration next to them")
    )]
    TensorShape {
        path: PathBuf,
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },

    /// `modules.json` names a module type stpipe does not implement.
    #[error("unknown module type `{ty}` in {}", path.display())]
    #[diagnostic(
        code(stpipe::runtime::unknown_module),
        help("supported: Transformer, Pooling, Dense, Normalize, LayerNorm, Dropout")
    )]
    UnknownModule { path: PathBuf, ty: String },

    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer {}: {msg}", path.display())]
    #[diagnostic(code(stpipe::runtime::tokenizer))]
    Tokenizer { path: PathBuf, msg: String },

    /// A model could be neither found locally nor downloaded.
    #[error("model `{spec}` is not available: {msg}")]
    #[diagnostic(
        code(stpipe::runtime::model_unavailable),
        help("pass a local directory, add one with --model-path / STPIPE_MODEL_PATH, or go online so the Hub id can be downloaded")
    )]
    ModelUnavailable { spec: String, msg: String },

    /// A tensor operation failed (shapes, dtypes, ...).
    #[error("tensor operation failed: {0}")]
    #[diagnostic(code(stpipe::runtime::candle))]
    Candle(#[from] candle_core::Error),

    /// Anything else, described in words.
    #[error("{0}")]
    #[diagnostic(code(stpipe::runtime::other))]
    Msg(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if crate::fsio::disk_full(&source) {
            return Error::DiskFull {
                path: path.to_path_buf(),
            };
        }
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn config(path: &Path, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn missing(path: &Path, what: impl Into<String>) -> Self {
        Error::MissingFile {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Read a JSON file into `T`, naming the file in every error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::missing(path, "required configuration file"))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    crate::fsio::write(path, text.as_bytes()).map_err(|e| Error::io(path, e))
}
