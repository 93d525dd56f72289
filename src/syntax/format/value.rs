//! Values, calls and column expressions: one line when they fit, else
//! their bracketed lists break one item a line.

use pest::iterators::Pair;

use super::flat::{flat, flat_in, steps_word, width};
use super::printer::Printer;
use super::{Rule, WIDTH};

/// The brackets of a breakable list: opening, closing, and whether the
/// items are padded with a space inside them (column blocks).
struct Brackets {
    open: &'static str,
    close: &'static str,
    pad: bool,
}

const PARENS: Brackets = Brackets {
    open: "(",
    close: ")",
    pad: false,
};
const LIST: Brackets = Brackets {
    open: "[",
    close: "]",
    pad: false,
};
const MAP: Brackets = Brackets {
    open: "{",
    close: "}",
    pad: false,
};
const COLUMNS: Brackets = Brackets {
    open: "{",
    close: "}",
    pad: true,
};

impl Printer<'_> {
    /// Print `p` followed on its last line by `tail` more columns (closing
    /// brackets, a comma, the rest of a statement): on one line if that
    /// fits and no comment is inside, else broken where it can be.
    pub(super) fn node(&mut self, p: Pair<Rule>, tail: usize) {
        let (a, b) = (p.as_span().start(), self.end_of(&p));
        self.sync(a);
        if !self.has_comment(a, b) {
            let text = flat_in(&p, self.as_written);
            if self.col() + width(&text) + tail <= WIDTH || !breakable(p.as_rule()) {
                self.emit_span(a, b, &text);
                return;
            }
        }
        match p.as_rule() {
            Rule::args => self.group(p.into_inner().collect(), &PARENS, tail),
            Rule::list => self.group(p.into_inner().collect(), &LIST, tail),
            Rule::map => self.group(p.into_inner().collect(), &MAP, tail),
            Rule::columns => self.group(p.into_inner().collect(), &COLUMNS, tail),
            Rule::call | Rule::module => {
                for c in p.into_inner() {
                    self.node(c, tail);
                }
            }
            Rule::col_call => {
                let mut it = p.into_inner();
                if let Some(name) = it.next() {
                    self.node(name, 0);
                }
                let saved = std::mem::replace(&mut self.as_written, true);
                self.group(it.collect(), &PARENS, tail);
                self.as_written = saved;
            }
            Rule::arg | Rule::map_entry | Rule::column | Rule::setting => self.keyed(p, tail),
            Rule::col_expr => self.col_expr(p, tail),
            Rule::limit => {
                self.lit("limit");
                self.space();
                for c in p.into_inner() {
                    self.node(c, tail);
                }
            }
            Rule::every => self.every(p, tail),
            Rule::metric_ref => self.metric_ref(p),
            // A token (possibly wider than the line): as written.
            _ => {
                let text = p.as_str().to_string();
                self.emit_span(a, b, &text);
            }
        }
    }

    /// Items one a line, aligned after the opening bracket; the commas
    /// stay after their items, a trailing comma is dropped.
    fn group(&mut self, items: Vec<Pair<Rule>>, br: &Brackets, tail: usize) {
        let t = self.next_token();
        self.sync(t);
        let column = self.col() + br.open.len() + usize::from(br.pad);
        self.lit(br.open);
        let saved = self.cont;
        self.cont = column;
        if br.pad {
            self.space();
        }
        let n = items.len();
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.newline(column);
            }
            let last = i + 1 == n;
            let t = if last {
                br.close.len() + usize::from(br.pad) + tail
            } else {
                1
            };
            self.node(item, t);
            if !last {
                self.comma();
            }
        }
        let t = self.next_token();
        if self.as_written && n > 0 && self.src[t..].starts_with(',') {
            self.comma();
        } else {
            self.skip(",");
        }
        if br.pad && n > 0 {
            self.space();
        }
        self.lit(br.close);
        self.cont = saved;
    }

    /// `name: value` (or a positional value alone).
    fn keyed(&mut self, p: Pair<Rule>, tail: usize) {
        let mut parts: Vec<Pair<Rule>> = p.into_inner().collect();
        let value = parts.pop();
        for key in parts {
            self.node(key, 0);
            self.lit(":");
            self.space();
        }
        if let Some(v) = value {
            self.node(v, tail);
        }
    }

    /// Terms with spaced operators; each term is measured with what
    /// follows it on the line.
    fn col_expr(&mut self, p: Pair<Rule>, tail: usize) {
        let parts: Vec<Pair<Rule>> = p.into_inner().collect();
        let widths: Vec<usize> = parts.iter().map(|c| term_width(c) + 1).collect();
        for (i, c) in parts.into_iter().enumerate() {
            let rest: usize = widths[i + 1..].iter().sum::<usize>() + tail;
            if i > 0 {
                self.space();
            }
            match c.as_rule() {
                Rule::arith_op => self.node(c, 0),
                Rule::col_expr => {
                    self.lit("(");
                    self.node(c, rest + 1);
                    self.lit(")");
                }
                _ => self.node(c, rest),
            }
        }
    }

    /// `every N steps`, the word as written.
    pub(super) fn every(&mut self, p: Pair<Rule>, tail: usize) {
        let word = steps_word(&p);
        self.lit("every");
        self.space();
        for c in p.into_inner() {
            self.node(c, word.len() + 1 + tail);
        }
        self.space();
        self.lit(word);
    }

    /// `EVALUATOR.METRIC`.
    pub(super) fn metric_ref(&mut self, p: Pair<Rule>) {
        let mut it = p.into_inner();
        if let Some(e) = it.next() {
            self.node(e, 0);
        }
        self.lit(".");
        if let Some(m) = it.next() {
            self.node(m, 0);
        }
    }
}

/// Whether a construct can be laid out on several lines (tokens cannot).
fn breakable(r: Rule) -> bool {
    !matches!(
        r,
        Rule::ident
            | Rule::key
            | Rule::string
            | Rule::number
            | Rule::percent
            | Rule::boolean
            | Rule::arith_op
            | Rule::cmp_op
    )
}

/// Width of a term of a column expression, parentheses included.
fn term_width(p: &Pair<Rule>) -> usize {
    let w = width(&flat(p));
    if p.as_rule() == Rule::col_expr {
        w + 2
    } else {
        w
    }
}
