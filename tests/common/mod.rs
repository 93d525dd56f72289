//! Shared test setup: a fixed environment and the shared model directory.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use stpipe::check::Options;
use stpipe::hub::ModelSearch;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// No environment variables (defaults in `${VAR:-default}` apply), models
/// from the shared model directory next to the repository.
pub fn options() -> Options {
    Options {
        env: HashMap::new(),
        models: ModelSearch {
            paths: vec![repo().join("../shared/models")],
            hf_cache: None,
        },
    }
}
