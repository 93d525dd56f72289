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

    #[error("{0}")]
    #[diagnostic(code(stpipe::run::invalid))]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, RunError>;
