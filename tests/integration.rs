//! The integration tests, as one test binary: each file beside this one is a
//! module of it. One binary links the crate and its dependencies once, where a
//! binary per file linked them 28 times (about 350 MB of debug executable
//! each, 14 GB for a `cargo test` build). Run one file's tests with
//! `cargo test --test integration FILE::`, e.g. `cargo test --test integration lsp::`.

mod common;

mod adaptive_layer;
mod arch_parity;
mod catalogue;
mod ci_formats;
mod cli_encode;
mod corrupt_models;
mod data_load;
mod denormals;
mod distillation;
mod explicit_step;
mod failpoints;
mod fmt;
mod frontend;
mod fuzz;
mod grad_cache;
mod gzip_data;
mod invalid;
mod lsp;
mod mining;
mod model_card;
mod options;
mod overrides;
mod parity;
mod parquet_data;
mod pipelines;
mod plan_cache;
mod promises_files;
mod promises_inputs;
mod prompts;
mod reports;
mod run_baseline;
mod run_resume;
mod st_format;
mod train_mode;
mod unsupervised_losses;
