//! Training: optimizer, schedules, sampling, checkpoints, the stage loop
//! and the pipeline runner.

pub mod build;
pub mod cache;
pub mod card;
pub mod checkpoint;
pub mod error;
pub mod evaluate;
mod feed;
pub mod grad_cache;
pub mod log;
pub mod optim;
pub mod outcome;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod schedule;
pub mod stage;
mod stage_eval;
mod teacher;
