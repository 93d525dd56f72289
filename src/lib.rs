//! stpipe: train sentence-embedding models from declarative `.stp` pipelines.
//!
//! The crate is layered as a compiler followed by an engine; each layer only
//! knows the ones below it:
//!
//! * [`syntax`]: the pest grammar and a spanned AST;
//! * [`check`]: name resolution, types, dimensions, data/loss compatibility;
//! * [`plan`]: a petgraph DAG of fingerprinted steps;
//! * [`runtime`]: candle modules, encoders, training.
//!
//! [`registry`] describes every component once, for the checker and the
//! runtime alike; [`hub`] finds model directories on disk; [`diag`] holds
//! the diagnostics type; [`report`] turns what a run recorded into JUnit
//! XML, JSON, `curves.png` and `report.html`; [`cli`] is the `stpipe`
//! command line.
//!
//! The engine's entry point is [`check::check_file`], which returns the
//! diagnostics and, for a valid file, a typed [`check::Pipeline`]; then
//! [`plan::Plan::build`] gives the fingerprinted step graph.

pub mod alloc_guard;
pub mod check;
pub mod cli;
pub mod data;
pub mod diag;
pub mod fsio;
pub mod hub;
pub mod lsp;
pub mod plan;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod syntax;
