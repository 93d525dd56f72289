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
//! runtime alike; [`hub`] finds model directories on disk.

pub mod cli;
pub mod hub;
pub mod runtime;
