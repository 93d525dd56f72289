pub mod adamw;
pub mod rng;
pub mod sampler;
pub mod schedule;
