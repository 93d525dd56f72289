//! Statements: the alignment of consecutive bindings, and the layout of
//! each kind of statement.

use pest::iterators::Pair;

use super::flat::{flat, width};
use super::printer::Printer;
use super::{Rule, WIDTH};

/// How a train block's settings are indented.
const BLOCK_INDENT: usize = 2;

/// Where a comment forces a break inside a statement with no planned one.
const CONTINUATION: usize = 4;

/// Chains of more modules than this break one module a line even when
/// they would fit: a pipeline reads as a pipeline (`pipelines/` style).
const MAX_FLAT_CHAIN: usize = 2;

/// The statement keyword of a binding statement (whose `=` is aligned
/// with its neighbours').
fn binding_keyword(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::let_stmt => "let",
        Rule::model_stmt => "model",
        Rule::data_stmt => "data",
        Rule::objective_stmt => "objective",
        Rule::evaluator_stmt => "evaluator",
        _ => return None,
    })
}

impl Printer<'_> {
    /// The whole file, statement by statement.
    pub(super) fn file(&mut self, file: Pair<Rule>) {
        let stmts: Vec<Pair<Rule>> = file
            .into_inner()
            .filter(|p| p.as_rule() != Rule::EOI)
            .collect();
        let widths = self.name_widths(&stmts);
        for (s, w) in stmts.into_iter().zip(widths) {
            self.newline(0);
            self.cont = 0;
            self.flush_to(s.as_span().start(), true);
            self.cont = CONTINUATION;
            self.statement(s, w);
        }
    }

    /// The width each binding's name is padded to: the widest name of its
    /// run of same-kind statements with no blank line between them.
    fn name_widths(&self, stmts: &[Pair<Rule>]) -> Vec<usize> {
        let name_len = |s: &Pair<Rule>| {
            s.clone()
                .into_inner()
                .next()
                .map_or(0, |n| width(n.as_str()))
        };
        let mut out: Vec<usize> = stmts.iter().map(name_len).collect();
        let mut i = 0;
        while i < stmts.len() {
            let kind = binding_keyword(stmts[i].as_rule());
            let mut j = i + 1;
            while kind.is_some()
                && j < stmts.len()
                && stmts[j].as_rule() == stmts[i].as_rule()
                && !self.gap_has_blank(self.end_of(&stmts[j - 1]), stmts[j].as_span().start())
            {
                j += 1;
            }
            let w = out[i..j].iter().copied().max().unwrap_or(0);
            out[i..j].iter_mut().for_each(|x| *x = w);
            i = j;
        }
        out
    }

    fn statement(&mut self, s: Pair<Rule>, name_width: usize) {
        let end = self.end_of(&s);
        let rule = s.as_rule();
        let mut it = s.into_inner();
        if let Some(kw) = binding_keyword(rule) {
            if let Some(name) = it.next() {
                self.binding_head(kw, name, name_width);
            }
            let rhs: Vec<Pair<Rule>> = it.collect();
            match rule {
                Rule::model_stmt => self.chain(rhs, kw.len() + 1 + name_width + 1),
                Rule::data_stmt => self.data_expr(rhs),
                Rule::objective_stmt => self.objective(rhs, end),
                _ => rhs.into_iter().for_each(|p| self.node(p, 0)),
            }
            return;
        }
        match rule {
            Rule::train_stmt => self.train(it.collect(), end),
            Rule::save_stmt => self.save(it.collect()),
            Rule::expect_stmt => {
                self.lit("expect");
                for p in it {
                    self.space();
                    self.node(p, 0);
                }
            }
            _ => {}
        }
    }

    /// `save MODEL to PATH [best by EVALUATOR.METRIC]`.
    fn save(&mut self, parts: Vec<Pair<Rule>>) {
        self.lit("save");
        let mut it = parts.into_iter();
        let (model, path, best) = (it.next(), it.next(), it.next());
        let metric = best.and_then(|b| b.into_inner().next());
        if let Some(m) = model {
            self.space();
            self.node(m, 0);
        }
        self.space();
        self.lit("to");
        if let Some(p) = path {
            let tail = metric
                .as_ref()
                .map_or(0, |m| " best by ".len() + width(&flat(m)));
            self.space();
            self.node(p, tail);
        }
        if let Some(m) = metric {
            self.space();
            self.lit("best");
            self.space();
            self.lit("by");
            self.space();
            self.metric_ref(m);
        }
    }

    /// `KEYWORD NAME = ` with the name padded; the right-hand side's
    /// column becomes where forced breaks go.
    fn binding_head(&mut self, kw: &str, name: Pair<Rule>, name_width: usize) {
        self.lit(kw);
        self.space();
        let pad = name_width.saturating_sub(width(name.as_str()));
        self.node(name, 0);
        self.pad(pad);
        self.space();
        self.lit("=");
        self.space();
        self.cont = kw.len() + 1 + name_width + 3;
    }

    /// `A -> B` on one line when it fits and is short, else one module a
    /// line with `->` under the `=` (at column `eq`).
    fn chain(&mut self, rhs: Vec<Pair<Rule>>, eq: usize) {
        for chain in rhs {
            let (a, b) = (chain.as_span().start(), self.end_of(&chain));
            self.sync(a);
            let modules: Vec<Pair<Rule>> = chain.clone().into_inner().collect();
            let text = flat(&chain);
            if modules.len() <= MAX_FLAT_CHAIN
                && !self.has_comment(a, b)
                && self.col() + width(&text) <= WIDTH
            {
                self.emit_span(a, b, &text);
                continue;
            }
            for (i, m) in modules.into_iter().enumerate() {
                if i > 0 {
                    self.newline(eq);
                    self.lit("->");
                    self.space();
                    self.cont = eq + 3;
                }
                self.node(m, 0);
            }
        }
    }

    /// `reader(...) { columns } limit N`: on one line if it fits, else the
    /// column block on the next line under the reader.
    fn data_expr(&mut self, rhs: Vec<Pair<Rule>>) {
        let Some(expr) = rhs.into_iter().next() else {
            return;
        };
        let (a, b) = (expr.as_span().start(), self.end_of(&expr));
        self.sync(a);
        let text = flat(&expr);
        let column = self.col();
        if !self.has_comment(a, b) && column + width(&text) <= WIDTH {
            self.emit_span(a, b, &text);
            return;
        }
        let parts: Vec<Pair<Rule>> = expr.into_inner().collect();
        let limit_width = parts
            .iter()
            .find(|p| p.as_rule() == Rule::limit)
            .map_or(0, |l| 1 + width(&flat(l)));
        let has_columns = parts.iter().any(|p| p.as_rule() == Rule::columns);
        for p in parts {
            match p.as_rule() {
                Rule::columns => {
                    self.newline(column);
                    self.node(p, limit_width);
                }
                Rule::limit => {
                    self.space();
                    self.node(p, 0);
                }
                _ => {
                    let tail = if has_columns { 0 } else { limit_width };
                    self.node(p, tail);
                }
            }
        }
    }

    /// `Loss(...) on DATA (options)`: on one line if it fits, else
    /// `on DATA (options)` on the next line under the loss.
    fn objective(&mut self, rhs: Vec<Pair<Rule>>, end: usize) {
        let Some(a) = rhs.first().map(|p| p.as_span().start()) else {
            return;
        };
        self.sync(a);
        let column = self.col();
        let mut it = rhs.into_iter();
        let (loss, data, options) = (it.next(), it.next(), it.next());
        let mut text = loss.as_ref().map(flat).unwrap_or_default();
        text.push_str(" on ");
        text.push_str(data.as_ref().map_or("", |d| d.as_str()));
        if let Some(o) = &options {
            text.push(' ');
            text.push_str(&flat(o));
        }
        if !self.has_comment(a, end) && column + width(&text) <= WIDTH {
            self.emit_span(a, end, &text);
            return;
        }
        if let Some(l) = loss {
            self.node(l, 0);
        }
        self.newline(column);
        self.lit("on");
        for p in data.into_iter().chain(options) {
            self.space();
            self.node(p, 0);
        }
    }

    /// `train MODEL [as NAME] {`, one setting a line, `}`.
    fn train(&mut self, parts: Vec<Pair<Rule>>, end: usize) {
        self.lit("train");
        let mut items = Vec::new();
        for p in parts {
            match p.as_rule() {
                Rule::stage_name => {
                    self.space();
                    self.lit("as");
                    self.space();
                    p.into_inner().for_each(|n| self.node(n, 0));
                }
                Rule::ident => {
                    self.space();
                    self.node(p, 0);
                }
                _ => items.push(p),
            }
        }
        self.space();
        self.lit("{");
        let close = end.saturating_sub(1);
        if items.is_empty() && !self.has_comment(self.pos, close) {
            self.lit("}");
            return;
        }
        self.at_block_start();
        for item in items {
            self.newline(BLOCK_INDENT);
            self.cont = BLOCK_INDENT;
            self.flush_to(item.as_span().start(), true);
            self.cont = BLOCK_INDENT + CONTINUATION;
            self.stage_item(item);
            // The comments around a dropped comma are those before the
            // next setting.
            self.newline(BLOCK_INDENT);
            self.cont = BLOCK_INDENT;
            self.skip_with_blanks(",");
        }
        self.newline(BLOCK_INDENT);
        self.cont = BLOCK_INDENT;
        self.flush_to(close, true);
        self.no_blank();
        self.newline(0);
        self.cont = CONTINUATION;
        self.lit("}");
    }

    fn stage_item(&mut self, item: Pair<Rule>) {
        match item.as_rule() {
            Rule::evaluate_item => {
                self.lit("evaluate");
                self.lit(":");
                let mut it = item.into_inner();
                let (what, every) = (it.next(), it.next());
                let tail = every.as_ref().map_or(0, |e| 1 + width(&flat(e)));
                if let Some(w) = what {
                    self.space();
                    self.node(w, tail);
                }
                if let Some(e) = every {
                    self.space();
                    self.every(e, 0);
                }
            }
            Rule::checkpoint_item => {
                self.lit("checkpoint");
                self.lit(":");
                let mut it = item.into_inner();
                if let Some(e) = it.next() {
                    self.space();
                    self.every(e, 0);
                }
                if let Some(k) = it.next() {
                    self.comma();
                    self.space();
                    self.lit("keep");
                    self.space();
                    self.node(k, 0);
                }
            }
            _ => self.node(item, 0),
        }
    }
}
