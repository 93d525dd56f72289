//! From text to AST, through the pest grammar.

use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use crate::diag::{Diag, Span};

#[derive(Parser)]
#[grammar = "../grammar/stp.pest"]
struct StpParser;

/// Deepest bracket nesting accepted, so that no input exhausts the stack.
const MAX_NESTING: usize = 64;

/// Parse a whole file. A syntax error yields exactly one diagnostic.
pub fn parse(src: &str) -> Result<File, Diag> {
    check_nesting(src)?;
    pest::set_error_detail(true);
    let mut pairs = StpParser::parse(Rule::file, src).map_err(|e| syntax_error(src, e))?;
    let file = pairs
        .next()
        .ok_or_else(|| Diag::error("syntax", Span::default(), "empty parse"))?;
    let mut stmts = Vec::new();
    for p in file.into_inner() {
        if p.as_rule() == Rule::EOI {
            break;
        }
        stmts.push(stmt(p));
    }
    Ok(File { stmts })
}

fn check_nesting(src: &str) -> Result<(), Diag> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut in_comment = false;
    let mut escape = false;
    for (i, c) in src.char_indices() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_str {
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' || c == '\n' {
                in_str = false;
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => in_str = true,
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diag::error(
                        "syntax",
                        Span::new(i, i + 1),
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    )
                    .help("flatten the expression"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::let_stmt
        | Rule::model_stmt
        | Rule::data_stmt
        | Rule::objective_stmt
        | Rule::evaluator_stmt
        | Rule::train_stmt
        | Rule::save_stmt
        | Rule::expect_stmt => {
            "a statement (let, model, data, objective, evaluator, train, save, expect)"
        }
        Rule::ident | Rule::key | Rule::stage_name => "a name",
        Rule::string | Rule::str_inner => "a string",
        Rule::number | Rule::percent => "a number",
        Rule::boolean => "true or false",
        Rule::list => "a list",
        Rule::map => "a map",
        Rule::call | Rule::module => "a component",
        Rule::args => "`(`",
        Rule::arith_op => "an operator",
        Rule::cmp_op => "a comparison (>=, <=, >, <)",
        Rule::columns => "a column block `{ ... }`",
        Rule::column => "a column `name: expr`",
        Rule::col_expr | Rule::col_call => "a column expression",
        Rule::limit => "`limit`",
        Rule::best_by => "`best by`",
        Rule::metric_ref => "EVALUATOR.METRIC",
        Rule::every => "`every N steps`",
        Rule::evaluate_item | Rule::checkpoint_item | Rule::setting => "a stage setting",
        Rule::map_entry => "a map entry `key: value`",
        Rule::arg => "an argument",
        Rule::chain => "a module chain",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

fn syntax_error(src: &str, e: pest::error::Error<Rule>) -> Diag {
    let (mut start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((a, b)) => (a, b),
    };
    // Literal tokens expected further on than the rules pest reports
    // (`,` or `)` after an argument, say) make a more precise message.
    let mut tokens: Vec<String> = Vec::new();
    if let Some(a) = e.parse_attempts() {
        if a.max_position > start {
            for t in a.expected_tokens() {
                let token = t.to_string();
                let punct = !token.is_empty()
                    && token != "#"
                    && token.chars().all(|c| c.is_ascii_punctuation() && c != '_');
                if punct {
                    let t = format!("`{token}`");
                    if !tokens.contains(&t) {
                        tokens.push(t);
                    }
                }
            }
            if !tokens.is_empty() {
                start = a.max_position;
            }
        }
    }
    let end = if tokens.is_empty() { end } else { start };
    let start = start.min(src.len());
    // Point at the whole offending token when there is one.
    let mut end = end.max(start).min(src.len());
    if end == start {
        end = src[start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| start + i)
            .unwrap_or(src.len());
        if end == start {
            end = src[start..]
                .chars()
                .next()
                .map(|c| start + c.len_utf8())
                .unwrap_or(start);
        }
    }
    let mut expected: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if let (true, pest::error::ErrorVariant::ParsingError { positives, .. }) =
        (tokens.is_empty(), &e.variant)
    {
        for r in positives {
            if let Some(n) = rule_name(r) {
                if !expected.contains(&n) {
                    expected.push(n);
                }
            }
        }
    }
    let found = if start >= src.len() {
        "end of file".to_string()
    } else {
        format!("`{}`", &src[start..end])
    };
    let msg = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", expected.join(" or "))
    };
    let word = &src[start..end];
    const KEYWORDS: &[&str] = &[
        "let",
        "model",
        "data",
        "objective",
        "evaluator",
        "train",
        "save",
        "expect",
        "true",
        "false",
    ];
    let msg = if expected.contains(&"a name") && KEYWORDS.contains(&word) {
        format!("`{word}` is a keyword and cannot be used as a name")
    } else {
        msg
    };
    Diag::error("syntax", Span::new(start, end), msg)
        .label("here")
        .help("see docs/language.md for the syntax of pipeline files")
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
        Rule::data_stmt => {
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
        Rule::train_stmt => {
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
