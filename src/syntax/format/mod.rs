//! `stpipe fmt`: the canonical layout of a `.stp` file.
//!
//! The formatter works on the pest pairs of the grammar (not on the AST),
//! because it must print every token exactly as written: strings are never
//! re-escaped and numbers never reformatted (`2e-5` stays `2e-5`). The
//! grammar's comments are silent, so they are recovered from the source
//! text between tokens ([`comments`]) and put back where they were: a
//! comment alone on its line stays alone on its line before the token that
//! followed it; a comment after code stays at the end of the line of the
//! token it followed.
//!
//! The rules (documented for users in `docs/language.md`, "Formatting"):
//!
//! * one statement per line group, at most one blank line between
//!   statements (a user's grouping is kept, runs of blank lines collapse);
//! * the `=` of consecutive statements of one kind (no blank line between,
//!   comments allowed) is aligned;
//! * anything that fits in [`WIDTH`] columns stays on one line, except a
//!   model chain of more than two modules (one module a line, `->` under
//!   the `=`), a statement with a comment inside, and train blocks (one
//!   setting a line, indented 2);
//! * a bracketed list that does not fit breaks one item a line, the items
//!   aligned after the opening bracket;
//! * a data statement that does not fit puts its column block on the next
//!   line under the reader; an objective puts `on DATA (options)` on the
//!   next line under the loss.
//!
//! Formatting never changes what a file means: the output parses to the
//! same statements, so `stpipe check` says the same about it (only the
//! places of its diagnostics move).

mod comments;
mod flat;
mod printer;
mod stmt;
mod value;

#[cfg(test)]
mod tests;

use pest::Parser;

use super::parse::{Rule, StpParser};
use crate::diag::{Diag, Span};

/// The line width the layout aims for (comments and unbreakable tokens,
/// such as long strings, may go past it).
pub const WIDTH: usize = 100;

/// The canonical layout of a pipeline file.
///
/// A leading byte-order mark is kept as it is. A file that does not parse
/// is not formatted: the error is the parser's diagnostics, exactly those
/// `stpipe check` reports, with spans into the text after the byte-order
/// mark (as the checker's report has them).
pub fn format_source(src: &str) -> Result<String, Vec<Diag>> {
    let (bom, text) = match src.strip_prefix('\u{feff}') {
        Some(rest) => ("\u{feff}", rest),
        None => ("", src),
    };
    // The parser proper first: it adds the nesting and expression-size
    // limits the grammar alone does not have, and recovers to report every
    // syntax error, as `check` does.
    super::parse(text)?;
    let mut pairs = StpParser::parse(Rule::file, text)
        .map_err(|e| vec![super::errors::syntax_error(text, e)])?;
    let file = pairs
        .next()
        .ok_or_else(|| vec![Diag::error("syntax", Span::default(), "empty parse")])?;
    let mut p = printer::Printer::new(text);
    p.file(file);
    Ok(format!("{bom}{}", p.finish()))
}
