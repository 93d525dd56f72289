//! Syntax: the pest grammar (`grammar/stp.pest`), a spanned AST and string
//! interpolation.

pub mod ast;
mod errors;
pub mod interp;
mod parse;

pub use parse::parse;
