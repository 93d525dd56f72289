//! The engine: executes plans with candle.

pub mod data;
