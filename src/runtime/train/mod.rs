pub mod adamw;
pub mod schedule;
