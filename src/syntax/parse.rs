//! From text to AST, through the pest grammar.

use pest::iterators::{Pair, Pairs};
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use super::errors::{check_nesting, syntax_error};
use crate::diag::{Diag, Span};

#[derive(Parser)]
#[grammar = "../grammar/stp.pest"]
pub(super) struct StpParser;

/// Most arithmetic operators in one column expression.
const MAX_OPERATORS: usize = 64;

/// Most syntax errors reported for one file; parsing stops after them.
const MAX_SYNTAX_ERRORS: usize = 50;

/// Parse a whole file. Every syntax error is reported: after one, parsing
/// resumes at the next line that starts a statement (`let`, `model`,
/// `data`, ...), the broken statement blanked out so that offsets stay
/// those of the file.
pub fn parse(src: &str) -> Result<File, Vec<Diag>> {
    check_nesting(src).map_err(|d| vec![*d])?;
    pest::set_error_detail(true);
    let starts = statement_starts(src);
    let mut text = src.to_string();
    let mut diags = Vec::new();
    loop {
        match parse_once(&text) {
            Ok(file) if diags.is_empty() => return Ok(file),
            Ok(_) => return Err(diags),
            Err(e) => {
                let (d, at) = *e;
                diags.push(d);
                let region = broken_statement(&starts, at, text.len());
                let blanked = region.is_some_and(|(a, b)| blank(&mut text, a, b));
                if !blanked || diags.len() >= MAX_SYNTAX_ERRORS {
                    return Err(diags);
                }
            }
        }
    }
}

/// Byte offsets of the lines whose first token is a statement keyword.
fn statement_starts(src: &str) -> Vec<usize> {
    use super::errors::STATEMENTS;
    let mut out = Vec::new();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '\t', '\r']);
        let word: String = trimmed
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if STATEMENTS.contains(&word.as_str()) {
            out.push(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    out
}

/// The statement an error at `at` belongs to: from the statement start at
/// or before it (the one before when the error is at a statement's very
/// start: the previous statement ran into it) to the next statement start.
fn broken_statement(starts: &[usize], at: usize, len: usize) -> Option<(usize, usize)> {
    let i = starts.partition_point(|&s| s <= at);
    let (from, next) = match i {
        0 => (0, starts.first().copied()),
        _ if starts[i - 1] == at && i >= 2 => (starts[i - 2], Some(at)),
        _ => (starts[i - 1], starts.get(i).copied()),
    };
    let to = next.unwrap_or(len);
    (to > from).then_some((from, to))
}

/// Replace `text[a..b]` by spaces (newlines kept); whether anything changed.
fn blank(text: &mut String, a: usize, b: usize) -> bool {
    let region = &text[a..b];
    if region.chars().all(|c| c == ' ' || c == '\n') {
        return false;
    }
    // Keep byte offsets: a multi-byte character becomes as many spaces as
    // it had bytes.
    let spaces: String = region
        .char_indices()
        .flat_map(|(_, c)| {
            let n = if c == '\n' { 0 } else { c.len_utf8() };
            std::iter::repeat_n(' ', n).chain((c == '\n').then_some('\n'))
        })
        .collect();
    text.replace_range(a..b, &spaces);
    true
}

/// One parse; a syntax error with the offset parsing failed at.
fn parse_once(src: &str) -> Result<File, Box<(Diag, usize)>> {
    let mut pairs = StpParser::parse(Rule::file, src).map_err(|e| {
        let d = syntax_error(src, e);
        let at = d.span.start;
        Box::new((d, at))
    })?;
    let file = pairs
        .next()
        .ok_or_else(|| Box::new((Diag::error("syntax", Span::default(), "empty parse"), 0)))?;
    // Bound the depth of column expressions (the checker walks them
    // recursively).
    for p in file.clone().into_inner().flatten() {
        if p.as_rule() == Rule::column {
            let ops = p
                .clone()
                .into_inner()
                .flatten()
                .filter(|q| q.as_rule() == Rule::arith_op)
                .count();
            if ops > MAX_OPERATORS {
                let sp = span(&p);
                return Err(Box::new((
                    Diag::error(
                        "syntax",
                        sp,
                        format!("column expression with more than {MAX_OPERATORS} operators"),
                    )
                    .help("simplify the expression"),
                    sp.start,
                )));
            }
        }
    }
    let mut stmts = Vec::new();
    for p in file.into_inner() {
        if p.as_rule() == Rule::EOI {
            break;
        }
        stmts.push(stmt(p));
    }
    Ok(File { stmts })
}

fn span(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(&p),
    }
}

fn stmt(p: Pair<Rule>) -> Stmt {
    let sp = span(&p);
    let rule = p.as_rule();
    let mut it = p.into_inner();
    let kind = match rule {
        Rule::let_stmt => {
            let name = ident(it.next().expect("grammar: let name"));
            let value = value(it.next().expect("grammar: let value"));
            StmtKind::Let { name, value }
        }
        Rule::model_stmt => {
            let name = ident(it.next().expect("grammar: model name"));
            let chain = it
                .next()
                .expect("grammar: chain")
                .into_inner()
                .map(call)
                .collect();
            StmtKind::Model { name, chain }
        }
        Rule::data_stmt => data_stmt(it),
        Rule::objective_stmt => {
            let name = ident(it.next().expect("grammar: objective name"));
            let loss = call(it.next().expect("grammar: loss"));
            let data = ident(it.next().expect("grammar: objective data"));
            let (options, options_span) = match it.next() {
                Some(a) => (args(a.clone()), Some(span(&a))),
                None => (Vec::new(), None),
            };
            StmtKind::Objective {
                name,
                loss,
                data,
                options,
                options_span,
            }
        }
        Rule::evaluator_stmt => {
            let name = ident(it.next().expect("grammar: evaluator name"));
            let call = call(it.next().expect("grammar: evaluator call"));
            StmtKind::Evaluator { name, call }
        }
        Rule::train_stmt => train_stmt(it),
        Rule::save_stmt => {
            let model = ident(it.next().expect("grammar: save model"));
            let path = value(it.next().expect("grammar: save path"));
            let best = it
                .next()
                .and_then(|b| b.into_inner().next())
                .map(metric_ref);
            StmtKind::Save { model, path, best }
        }
        Rule::expect_stmt => {
            let metric = metric_ref(it.next().expect("grammar: expect metric"));
            let op = match it.next().expect("grammar: cmp").as_str() {
                ">=" => CmpOp::Ge,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Lt,
            };
            let value = value(it.next().expect("grammar: expect value"));
            StmtKind::Expect { metric, op, value }
        }
        _ => unreachable!("grammar: unexpected statement rule {rule:?}"),
    };
    Stmt { kind, span: sp }
}

/// `data NAME = SOURCE { COLUMNS } limit N`: the parts after the name.
fn data_stmt(mut it: Pairs<Rule>) -> StmtKind {
    let name = ident(it.next().expect("grammar: data name"));
    let mut inner = it.next().expect("grammar: data expr").into_inner();
    let source = call(inner.next().expect("grammar: data source"));
    let mut columns = None;
    let mut columns_span = None;
    let mut limit = None;
    for q in inner {
        match q.as_rule() {
            Rule::columns => {
                columns_span = Some(span(&q));
                columns = Some(
                    q.into_inner()
                        .map(|c| {
                            let mut ci = c.into_inner();
                            let name = ident(ci.next().expect("grammar: column name"));
                            let expr = col_expr(ci.next().expect("grammar: column expr"));
                            ColumnDef { name, expr }
                        })
                        .collect(),
                );
            }
            Rule::limit => {
                limit = q.into_inner().next().map(value);
            }
            _ => {}
        }
    }
    StmtKind::Data {
        name,
        source,
        columns,
        columns_span,
        limit,
    }
}

/// `train MODEL [as NAME] { ITEMS }`.
fn train_stmt(mut it: Pairs<Rule>) -> StmtKind {
    let model = ident(it.next().expect("grammar: train model"));
    let mut name = None;
    let mut items = Vec::new();
    for q in it {
        let qs = span(&q);
        match q.as_rule() {
            Rule::stage_name => {
                name = q.into_inner().next().map(ident);
            }
            Rule::evaluate_item => {
                let mut qi = q.into_inner();
                let what = value(qi.next().expect("grammar: evaluate what"));
                let every = qi.next().and_then(|e| e.into_inner().next()).map(value);
                items.push(StageItem::Evaluate {
                    what,
                    every,
                    span: qs,
                });
            }
            Rule::checkpoint_item => {
                let mut qi = q.into_inner();
                let every = qi
                    .next()
                    .and_then(|e| e.into_inner().next())
                    .map(value)
                    .expect("grammar: checkpoint every");
                let keep = qi.next().map(value);
                items.push(StageItem::Checkpoint {
                    every,
                    keep,
                    span: qs,
                });
            }
            Rule::setting => {
                let mut qi = q.into_inner();
                let key = ident(qi.next().expect("grammar: setting key"));
                let value = value(qi.next().expect("grammar: setting value"));
                items.push(StageItem::Setting { key, value });
            }
            _ => {}
        }
    }
    StmtKind::Train { model, name, items }
}

fn metric_ref(p: Pair<Rule>) -> MetricRef {
    let sp = span(&p);
    let mut it = p.into_inner();
    let evaluator = ident(it.next().expect("grammar: metric evaluator"));
    let metric = ident(it.next().expect("grammar: metric name"));
    MetricRef {
        evaluator,
        metric,
        span: sp,
    }
}

fn call(p: Pair<Rule>) -> Call {
    let sp = span(&p);
    let mut it = p.into_inner();
    let name = ident(it.next().expect("grammar: call name"));
    let (args, parens) = match it.next() {
        Some(a) => (args(a), true),
        None => (Vec::new(), false),
    };
    Call {
        name,
        args,
        parens,
        span: sp,
    }
}

fn args(p: Pair<Rule>) -> Vec<Arg> {
    p.into_inner()
        .map(|a| {
            let sp = span(&a);
            let mut parts: Vec<Pair<Rule>> = a.into_inner().collect();
            let v = value(parts.pop().expect("grammar: arg value"));
            let name = parts.pop().map(ident);
            Arg {
                name,
                value: v,
                span: sp,
            }
        })
        .collect()
}

fn value(p: Pair<Rule>) -> Value {
    let sp = span(&p);
    let kind = match p.as_rule() {
        Rule::number => number(p.as_str()),
        Rule::percent => {
            let t = p.as_str().trim_end_matches('%');
            ValueKind::Percent(t.parse().unwrap_or(f64::NAN))
        }
        Rule::boolean => ValueKind::Bool(p.as_str() == "true"),
        Rule::string => ValueKind::Str(unescape(
            p.into_inner().next().map(|s| s.as_str()).unwrap_or(""),
        )),
        Rule::list => ValueKind::List(p.into_inner().map(value).collect()),
        Rule::map => ValueKind::Map(
            p.into_inner()
                .map(|e| {
                    let mut it = e.into_inner();
                    let k = it.next().expect("grammar: map key");
                    let ks = span(&k);
                    let text = if k.as_rule() == Rule::string {
                        unescape(k.into_inner().next().map(|s| s.as_str()).unwrap_or(""))
                    } else {
                        k.as_str().to_string()
                    };
                    let v = value(it.next().expect("grammar: map value"));
                    (MapKey { text, span: ks }, v)
                })
                .collect(),
        ),
        Rule::call => ValueKind::Call(call(p)),
        Rule::ident => ValueKind::Ident(ident(p)),
        r => unreachable!("grammar: unexpected value rule {r:?}"),
    };
    Value { kind, span: sp }
}

fn number(text: &str) -> ValueKind {
    if text.contains(['.', 'e', 'E']) {
        ValueKind::Float(text.parse().unwrap_or(f64::NAN))
    } else {
        match text.parse::<i64>() {
            Ok(i) => ValueKind::Int(i),
            Err(_) => ValueKind::Float(text.parse().unwrap_or(f64::NAN)),
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                // `\$` keeps a literal dollar out of interpolation.
                Some('$') => out.push_str("\\$"),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn col_expr(p: Pair<Rule>) -> ColExpr {
    let sp = span(&p);
    match p.as_rule() {
        Rule::col_expr => {
            let mut it = p.into_inner();
            let mut acc = col_expr(it.next().expect("grammar: col term"));
            while let Some(op) = it.next() {
                let op = match op.as_str() {
                    "+" => ArithOp::Add,
                    "-" => ArithOp::Sub,
                    "*" => ArithOp::Mul,
                    _ => ArithOp::Div,
                };
                let rhs = col_expr(it.next().expect("grammar: col rhs"));
                // `*` and `/` bind tighter than `+` and `-`.
                acc = combine(acc, op, rhs);
            }
            if let ColExprKind::Binary { .. } = acc.kind {
                acc.span = sp;
            }
            acc
        }
        Rule::number => match number(p.as_str()) {
            ValueKind::Int(i) => ColExpr {
                kind: ColExprKind::Number(i as f64),
                span: sp,
            },
            ValueKind::Float(f) => ColExpr {
                kind: ColExprKind::Number(f),
                span: sp,
            },
            _ => ColExpr {
                kind: ColExprKind::Number(f64::NAN),
                span: sp,
            },
        },
        Rule::col_call => {
            let mut it = p.into_inner();
            let name = ident(it.next().expect("grammar: col call name"));
            let args = it.map(col_expr).collect();
            ColExpr {
                kind: ColExprKind::Call { name, args },
                span: sp,
            }
        }
        _ => ColExpr {
            kind: ColExprKind::Value(value(p)),
            span: sp,
        },
    }
}

fn combine(lhs: ColExpr, op: ArithOp, rhs: ColExpr) -> ColExpr {
    let tight = matches!(op, ArithOp::Mul | ArithOp::Div);
    if tight {
        if let ColExprKind::Binary {
            op: lop,
            lhs: ll,
            rhs: lr,
        } = &lhs.kind
        {
            if matches!(lop, ArithOp::Add | ArithOp::Sub) {
                let inner = combine((**lr).clone(), op, rhs);
                let span = Span::new(ll.span.start, inner.span.end);
                return ColExpr {
                    kind: ColExprKind::Binary {
                        op: *lop,
                        lhs: ll.clone(),
                        rhs: Box::new(inner),
                    },
                    span,
                };
            }
        }
    }
    let span = Span::new(lhs.span.start, rhs.span.end);
    ColExpr {
        kind: ColExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    }
}
