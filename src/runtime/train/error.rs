//! Errors of `stpipe run`: every failure names what it is about.

use std::path::PathBuf;

use crate::runtime::data::DataError;

use super::checkpoint::CheckpointError;

/// Why a run stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Model(#[from] crate::runtime::Error),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Checkpoint(#[from] CheckpointError),

    #[error("tensor computation failed: {0}")]
    #[diagnostic(code(stpipe::run::tensor))]
    Tensor(#[from] candle_core::Error),

    #[error("stage `{stage}`: the loss of objective `{objective}` became {value} at step {step}")]
    #[diagnostic(
        code(stpipe::run::non_finite_loss),
        help(
            "lower the learning rate or check the data's scores; the last good checkpoint is kept"
        )
    )]
    NonFiniteLoss {
        stage: String,
        objective: String,
        step: u64,
        value: f32,
    },

    #[error("cannot write {path}: {source}")]
    #[diagnostic(code(stpipe::run::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the disk is full: cannot write {path}")]
    #[diagnostic(
        code(stpipe::disk_full),
        help("free some space and run the same command again: what was written before is intact, and the run resumes from the newest checkpoint")
    )]
    DiskFull { path: PathBuf },

    #[error("{0}")]
    #[diagnostic(code(stpipe::run::invalid))]
    Invalid(String),

    #[error("stopped by a signal{}", at.as_ref().map(|(s, k)| format!(" after step {k} of stage `{s}`")).unwrap_or_default())]
    #[diagnostic(code(stpipe::run::interrupted), help("{resume}"))]
    Interrupted {
        /// The stage and step a checkpoint was written at.
        at: Option<(String, u64)>,
        resume: String,
    },

    #[error("the run directory {} is in use: {holder}", dir.display())]
    #[diagnostic(
        code(stpipe::run::locked),
        help("wait for that run to finish, or give this one another `--run-dir`")
    )]
    Locked { dir: PathBuf, holder: String },
}

pub type Result<T> = std::result::Result<T, RunError>;

impl RunError {
    /// An I/O error on `path`; a full disk says so.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if crate::fsio::disk_full(&source) {
            RunError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            RunError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}
