pub mod adamw;
pub mod checkpoint;
pub mod rng;
pub mod sampler;
pub mod schedule;
