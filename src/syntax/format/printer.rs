//! The output being built: lines, the breaks the layout asks for, and the
//! comments of the source put back between the tokens.
//!
//! The printer walks the tokens in source order. Before each token it
//! takes the comments met since the previous one ([`Printer::flush_to`]):
//! a trailing comment ends the current line (the next token goes on a new
//! line), an own-line comment gets a line of its own. Breaks asked for by
//! the layout are lazy ([`Printer::newline`]): the line ends only when the
//! next token comes, so that a trailing comment found on the way still
//! joins the line it trailed.

use super::comments::{self, Comment};
use super::flat::width;

/// One output line: indentation, code, and a trailing (or, without code,
/// own-line) comment.
#[derive(Debug, Default)]
struct Line {
    indent: usize,
    code: String,
    comment: Option<String>,
}

impl Line {
    fn is_blank(&self) -> bool {
        self.code.is_empty() && self.comment.is_none()
    }
}

pub(super) struct Printer<'s> {
    pub(super) src: &'s str,
    comments: Vec<Comment>,
    /// Source offset up to which tokens and comments have been consumed.
    pub(super) pos: usize,
    lines: Vec<Line>,
    cur: Option<Line>,
    /// The indentation of the next line, when the layout asked for a break.
    pending: Option<usize>,
    /// Where a line goes that a comment forced (no break planned there).
    pub(super) cont: usize,
    /// A space is wanted before the next token, if it stays on this line.
    sep: bool,
    /// A blank line goes before the next line (statement level only).
    want_blank: bool,
    /// Just after a train block's `{`: no blank line here.
    block_start: bool,
    /// Inside a column function's arguments, where trailing commas are
    /// kept ([`super::flat::flat_in`]).
    pub(super) as_written: bool,
}

impl<'s> Printer<'s> {
    pub(super) fn new(src: &'s str) -> Self {
        Printer {
            src,
            comments: comments::scan(src),
            pos: 0,
            lines: Vec::new(),
            cur: None,
            pending: None,
            cont: 0,
            sep: false,
            want_blank: false,
            block_start: false,
            as_written: false,
        }
    }

    /// Whether a comment lies inside `a..b` (such a construct is never
    /// printed on one line).
    pub(super) fn has_comment(&self, a: usize, b: usize) -> bool {
        comments::any_in(&self.comments, a, b)
    }

    /// Whether the stretch `a..b` between tokens holds a blank line.
    pub(super) fn gap_has_blank(&self, a: usize, b: usize) -> bool {
        comments::gap_has_blank(self.src, &self.comments, a, b)
    }

    /// Where the last token of `p` ends. A pair's span can run on over the
    /// whitespace and comments after it (pest skips them before trying an
    /// optional part that then is absent); those belong to what follows.
    pub(super) fn end_of(&self, p: &pest::iterators::Pair<super::Rule>) -> usize {
        let start = p.as_span().start();
        let mut e = p.as_span().end();
        loop {
            let trimmed = self.src[start..e].trim_end_matches([' ', '\t', '\r', '\n']);
            e = start + trimmed.len();
            let i = comments::first_from(&self.comments, e);
            match i.checked_sub(1).map(|k| self.comments[k]) {
                Some(c) if c.start >= start && c.end >= e => e = c.start,
                _ => return e,
            }
        }
    }

    /// The start of the next token after `pos` (whitespace and comments
    /// skipped).
    pub(super) fn next_token(&self) -> usize {
        let bytes = self.src.as_bytes();
        let mut i = self.pos;
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => {
                    i = self.src[i..].find('\n').map_or(self.src.len(), |n| i + n);
                }
                _ => break,
            }
        }
        i
    }

    /// Put back the comments between `pos` and `target`; with `blanks`
    /// (statement level), keep one blank line where the source had some.
    pub(super) fn flush_to(&mut self, target: usize, blanks: bool) {
        if target <= self.pos {
            return;
        }
        let mut i = self.pos;
        let first = comments::first_from(&self.comments, self.pos);
        let found: Vec<Comment> = self.comments[first..]
            .iter()
            .take_while(|c| c.start < target)
            .copied()
            .collect();
        for c in found {
            let blank = blanks && comments::blank(&self.src[i..c.start]);
            let own = comments::own_line(self.src, c);
            self.comment(self.src[c.start..c.end].trim_end(), own, blank);
            i = c.end.min(target);
        }
        if blanks && comments::blank(&self.src[i..target]) {
            self.want_blank = true;
        }
        self.pos = target;
    }

    fn comment(&mut self, text: &str, own_line: bool, blank: bool) {
        if let Some(cur) = self.cur.as_mut() {
            if !own_line && !cur.code.is_empty() && cur.comment.is_none() {
                cur.comment = Some(text.to_string());
                return;
            }
        }
        let indent = self.pending.unwrap_or(self.cont);
        self.end_line();
        if blank {
            self.blank_line();
        }
        self.lines.push(Line {
            indent,
            code: String::new(),
            comment: Some(text.to_string()),
        });
        self.block_start = false;
        self.pending = Some(indent);
    }

    fn end_line(&mut self) {
        if let Some(l) = self.cur.take() {
            self.lines.push(l);
        }
    }

    fn blank_line(&mut self) {
        let after_text = self.lines.last().is_some_and(|l| !l.is_blank());
        if after_text && !self.block_start {
            self.lines.push(Line::default());
        }
    }

    /// Append a token's text, starting the line the layout or a comment
    /// asked for.
    pub(super) fn emit(&mut self, text: &str) {
        let fresh = match &self.cur {
            None => true,
            Some(l) => l.comment.is_some() || self.pending.is_some(),
        };
        if fresh {
            let indent = self.pending.take().unwrap_or(self.cont);
            self.end_line();
            if std::mem::take(&mut self.want_blank) {
                self.blank_line();
            }
            self.cur = Some(Line {
                indent,
                ..Line::default()
            });
        }
        if let Some(cur) = self.cur.as_mut() {
            if self.sep && !fresh {
                cur.code.push(' ');
            }
            cur.code.push_str(text);
        }
        self.sep = false;
        self.want_blank = false;
        self.block_start = false;
    }

    /// The column where the next token will start.
    pub(super) fn col(&self) -> usize {
        match &self.cur {
            Some(l) if l.comment.is_none() && self.pending.is_none() => {
                l.indent + width(&l.code) + usize::from(self.sep)
            }
            _ => self.pending.unwrap_or(self.cont),
        }
    }

    /// The next token goes on a new line at `indent`.
    pub(super) fn newline(&mut self, indent: usize) {
        self.pending = Some(indent);
        self.sep = false;
    }

    /// `n` spaces of alignment after the last token, unless a line break
    /// comes first.
    pub(super) fn pad(&mut self, n: usize) {
        if let Some(l) = self.cur.as_mut() {
            if l.comment.is_none() && self.pending.is_none() {
                l.code.extend(std::iter::repeat_n(' ', n));
            }
        }
    }

    /// A space before the next token (dropped if it starts a line).
    pub(super) fn space(&mut self) {
        self.sep = true;
    }

    /// No blank line before the next line (the inside of a block starts).
    pub(super) fn at_block_start(&mut self) {
        self.block_start = true;
    }

    /// Drop a blank line asked for by the last flush.
    pub(super) fn no_blank(&mut self) {
        self.want_blank = false;
    }

    /// Flush the comments before `at` (before measuring a construct there).
    pub(super) fn sync(&mut self, at: usize) {
        self.flush_to(at, false);
    }

    /// Emit the literal token `s` (a keyword or punctuation) found next in
    /// the source.
    pub(super) fn lit(&mut self, s: &str) {
        let t = self.next_token();
        self.flush_to(t, false);
        self.emit(s);
        if self.src[t..].starts_with(s) {
            self.pos = t + s.len();
        }
    }

    /// Consume the optional literal `s` if it comes next, without
    /// printing it (optional and trailing commas).
    pub(super) fn skip(&mut self, s: &str) {
        let t = self.next_token();
        if self.src[t..].starts_with(s) {
            self.flush_to(t, false);
            self.pos = t + s.len();
        }
    }

    /// [`Printer::skip`] at statement level: blank lines around the
    /// skipped token are kept.
    pub(super) fn skip_with_blanks(&mut self, s: &str) {
        let t = self.next_token();
        if self.src[t..].starts_with(s) {
            self.flush_to(t, true);
            self.pos = t + s.len();
        }
    }

    /// A separating comma: it stays right after the item before it, even
    /// when a comment came between them.
    pub(super) fn comma(&mut self) {
        let t = self.next_token();
        self.flush_to(t, false);
        if self.src[t..].starts_with(',') {
            self.pos = t + 1;
        }
        let target = match self.cur.as_mut() {
            Some(l) if !l.code.is_empty() => Some(l),
            _ => self.lines.iter_mut().rev().find(|l| !l.code.is_empty()),
        };
        match target {
            Some(l) => l.code.push(','),
            None => self.emit(","),
        }
    }

    /// Emit the text of the construct at `start..end`, which has no
    /// comment inside.
    pub(super) fn emit_span(&mut self, start: usize, end: usize, text: &str) {
        self.sync(start);
        self.emit(text);
        self.pos = self.pos.max(end);
    }

    /// The file's text: the rest of the comments, the lines joined, and
    /// the trailing comments of consecutive lines aligned.
    pub(super) fn finish(mut self) -> String {
        self.newline(0);
        self.cont = 0;
        self.flush_to(self.src.len(), true);
        self.end_line();
        while self.lines.last().is_some_and(Line::is_blank) {
            self.lines.pop();
        }
        render(&self.lines)
    }
}

/// Lines as text. A run of consecutive lines with trailing comments has
/// them in one column, two spaces after the longest code.
fn render(lines: &[Line]) -> String {
    let trailing = |l: &Line| !l.code.is_empty() && l.comment.is_some();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j < lines.len() && trailing(&lines[j]) {
            j += 1;
        }
        let run = &lines[i..j.max(i + 1)];
        let column = run
            .iter()
            .map(|l| l.indent + width(&l.code))
            .max()
            .unwrap_or(0)
            + 2;
        for l in run {
            if !l.is_blank() {
                out.extend(std::iter::repeat_n(' ', l.indent));
            }
            out.push_str(&l.code);
            if let Some(c) = &l.comment {
                if !l.code.is_empty() {
                    let pad = column.saturating_sub(l.indent + width(&l.code));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
                out.push_str(c);
            }
            out.push('\n');
        }
        i = j.max(i + 1);
    }
    out
}
