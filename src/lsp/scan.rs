//! A lexical view of a document, for hover, completion and definition.
//!
//! While the user types, the file rarely parses: a call is unclosed, a
//! value is missing. The grammar's AST is then of no help, so these
//! features read tokens instead: statements start at a statement keyword
//! (at bracket depth 0, or first on a line, as the parser's own recovery
//! assumes), bindings are `KEYWORD NAME =`, and what may stand at the
//! cursor ([`Slot`](super::slot::Slot)) follows from the brackets open before it and from
//! the statement it is in (`slot.rs`). Nothing here can fail: any text
//! gives tokens.

use crate::check::BindKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    Word,
    Str,
    Num,
    Punct,
}

#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    pub kind: TokKind,
    pub start: usize,
    pub end: usize,
    pub text: &'a str,
    /// The first token of its line.
    pub line_first: bool,
}

pub use crate::syntax::STATEMENTS;

/// The tokens of `src`; comments and whitespace are dropped, a string
/// ends at its closing quote or at the end of its line (as the grammar
/// says), anything unknown is a one-character punctuation token.
pub fn lex(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut line_first = true;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            b'\n' | b'\r' => {
                line_first = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i = string_end(b, i + 1);
                TokKind::Str
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                TokKind::Word
            }
            c if c.is_ascii_digit() => {
                i = number_end(b, i);
                TokKind::Num
            }
            b'-' if b.get(i + 1) == Some(&b'>') => {
                i += 2;
                TokKind::Punct
            }
            b'>' | b'<' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                TokKind::Punct
            }
            _ => {
                i += src[i..].chars().next().map_or(1, char::len_utf8);
                TokKind::Punct
            }
        };
        out.push(Token {
            kind,
            start,
            end: i,
            text: &src[start..i],
            line_first,
        });
        line_first = false;
    }
    out
}

/// The end of a string whose contents start at `i`: after the closing
/// quote, or at the end of the line or text.
fn string_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if b.get(i + 1).is_some_and(|c| c.is_ascii()) => i += 2,
            b'"' => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    b.len()
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        let c = b[i];
        // `2e-5`: a sign right after the exponent's `e` (never the first
        // byte: a number starts with a digit).
        let sign = (c == b'+' || c == b'-') && i > 0 && matches!(b[i - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'%' || c == b'_' || sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// A statement: its keyword and its tokens `first..end`.
#[derive(Debug, Clone, Copy)]
pub struct Stmt {
    pub kw: &'static str,
    pub first: usize,
    pub end: usize,
}

/// A name bound by `let`, `model`, `data`, `objective` or `evaluator`.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub kind: BindKind,
    pub name: &'a str,
    /// The name's byte range at its definition.
    pub start: usize,
    pub end: usize,
    /// The statement it is bound in (an index into [`Doc::stmts`]).
    pub stmt: usize,
    /// The first word after `=` (the component or source it is bound to).
    pub component: Option<&'a str>,
}

/// The lexical view of one document.
pub struct Doc<'a> {
    pub src: &'a str,
    pub toks: Vec<Token<'a>>,
    pub stmts: Vec<Stmt>,
    pub bindings: Vec<Binding<'a>>,
}

impl<'a> Doc<'a> {
    pub fn new(src: &'a str) -> Self {
        let toks = lex(src);
        let stmts = statements(&toks);
        let bindings = stmts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| binding(&toks, s, i))
            .collect();
        Doc {
            src,
            toks,
            stmts,
            bindings,
        }
    }

    /// The token whose bytes contain `offset`, else a word that ends at
    /// it (the cursor just after a name still names it).
    pub fn token_at(&self, offset: usize) -> Option<usize> {
        let i = self.toks.partition_point(|t| t.end <= offset);
        if self.toks.get(i).is_some_and(|t| t.start <= offset) {
            return Some(i);
        }
        (i > 0 && self.toks[i - 1].kind == TokKind::Word && self.toks[i - 1].end == offset)
            .then(|| i - 1)
    }

    /// The statement token `k` belongs to.
    pub fn stmt_of(&self, k: usize) -> Option<usize> {
        self.stmts.partition_point(|s| s.first <= k).checked_sub(1)
    }

    /// The first binding of `name` (the one the checker keeps).
    pub fn binding(&self, name: &str) -> Option<&Binding<'a>> {
        self.bindings.iter().find(|b| b.name == name)
    }

    /// The text of statement `i`, from its keyword to its last token.
    pub fn stmt_text(&self, i: usize) -> &'a str {
        let Some(s) = self.stmts.get(i) else {
            return "";
        };
        let (Some(a), Some(b)) = (
            self.toks.get(s.first),
            self.toks.get(s.end.saturating_sub(1)),
        ) else {
            return "";
        };
        self.src.get(a.start..b.end.max(a.start)).unwrap_or("")
    }

    /// The name of a `${NAME` interpolation whose name contains `offset`,
    /// inside string token `k`, with its byte range.
    pub fn interpolation_at(&self, k: usize, offset: usize) -> Option<(&'a str, usize, usize)> {
        let t = self.toks.get(k).filter(|t| t.kind == TokKind::Str)?;
        let mut from = 0;
        while let Some(p) = t.text[from..].find("${") {
            let name_start = from + p + 2;
            let len = t.text[name_start..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            let (a, b) = (t.start + name_start, t.start + name_start + len);
            if len > 0 && a <= offset && offset <= b {
                return Some((&t.text[name_start..name_start + len], a, b));
            }
            from = name_start;
        }
        None
    }
}

fn statements(toks: &[Token]) -> Vec<Stmt> {
    let mut out: Vec<Stmt> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        let kw = STATEMENTS.iter().find(|k| **k == t.text);
        let next_is_key = toks.get(i + 1).is_some_and(|n| n.text == ":");
        if let Some(kw) = kw.filter(|_| (depth == 0 || t.line_first) && !next_is_key) {
            if let Some(last) = out.last_mut() {
                last.end = i;
            }
            out.push(Stmt {
                kw,
                first: i,
                end: toks.len(),
            });
            depth = 0;
            continue;
        }
        match t.text {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

fn binding<'a>(toks: &[Token<'a>], s: &Stmt, stmt: usize) -> Option<Binding<'a>> {
    let kind = match s.kw {
        "let" => BindKind::Let,
        "model" => BindKind::Model,
        "data" => BindKind::Data,
        "objective" => BindKind::Objective,
        "evaluator" => BindKind::Evaluator,
        _ => return None,
    };
    let name = toks.get(s.first + 1).filter(|t| t.kind == TokKind::Word)?;
    let after_eq = toks.get(s.first + 2).filter(|t| t.text == "=").is_some();
    let component = toks
        .get(s.first + 3)
        .filter(|t| after_eq && t.kind == TokKind::Word && s.first + 3 < s.end)
        .map(|t| t.text);
    Some(Binding {
        kind,
        name: name.text,
        start: name.start,
        end: name.end,
        stmt,
        component,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_text_still_scans() {
        let doc = Doc::new("model m = T(\"unterminated\nlet x = 1 \u{0}\u{7f}é(((");
        assert_eq!(doc.stmts.len(), 2);
        assert_eq!(doc.binding("x").map(|b| b.kind), Some(BindKind::Let));
        for k in 0..=doc.toks.len() {
            let _ = doc.slot_at(k, doc.src.len());
        }
    }
}
