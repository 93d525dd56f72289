//! Syntax: the pest grammar (`grammar/stp.pest`), a spanned AST and string
//! interpolation.

pub mod ast;
mod errors;
pub mod format;
pub mod interp;
mod lex;
mod parse;

pub use errors::{KEYWORDS, STATEMENTS};
pub use parse::parse;
