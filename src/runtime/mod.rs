//! The engine: executes plans with candle.

pub mod data;
pub mod eval;
pub mod loss;
pub mod train;
