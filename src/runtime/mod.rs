//! The engine: executes plans with candle.

pub mod eval;
pub mod loss;
pub mod train;
