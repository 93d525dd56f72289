//! Column expressions of file sources: `col(4) / 5.0`, `map(col("label"), {...})`.

use super::peek::Peek;
use super::Checker;
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry;
use crate::syntax::ast::{self, ColExprKind, ValueKind};

/// The functions of column expressions.
pub const COLUMN_FUNCTIONS: &[&str] = &["col", "map", "normalize", "item", "take"];

/// What the column expressions of a file source can see.
pub(crate) struct FileCtx<'p> {
    pub written: String,
    pub peek: Option<&'p Peek>,
    pub header: bool,
    pub json: bool,
}

impl Checker<'_> {
    pub(crate) fn file_columns(
        &mut self,
        ctx: &FileCtx,
        defs: &[ast::ColumnDef],
        block: Span,
    ) -> Option<Vec<Column>> {
        let mut out: Vec<Column> = Vec::new();
        let mut ok = true;
        for d in defs {
            if out.iter().any(|c| c.name == d.name.name) {
                self.err(
                    Diag::error(
                        "duplicate-column",
                        d.name.span,
                        format!("column `{}` is defined twice", d.name.name),
                    )
                    .help("give each column a distinct name"),
                );
                ok = false;
                continue;
            }
            match self
                .col_expr(ctx, &d.expr)
                .and_then(|op| self.expand_take(&d.name, op, ctx))
            {
                Some(cols) => {
                    for c in cols {
                        if out.iter().any(|o| o.name == c.name) {
                            self.err(
                                Diag::error(
                                    "duplicate-column",
                                    d.name.span,
                                    format!("column `{}` is defined twice", c.name),
                                )
                                .help("give each column a distinct name"),
                            );
                            ok = false;
                        } else {
                            out.push(c);
                        }
                    }
                }
                None => ok = false,
            }
        }
        if out.is_empty() && ok {
            self.err(
                Diag::error("missing-columns", block, "empty column block")
                    .help("choose at least one column"),
            );
            ok = false;
        }
        ok.then_some(out)
    }

    /// A column expression: its resolved form, its type when known, and
    /// its sample values (for fields).
    pub(super) fn col_expr(
        &mut self,
        ctx: &FileCtx,
        e: &ast::ColExpr,
    ) -> Option<(ColumnExpr, Option<ColType>, Option<Vec<String>>)> {
        match &e.kind {
            ColExprKind::Number(n) => {
                if !n.is_finite() {
                    self.err(
                        Diag::error("bad-number", e.span, "this number is out of range")
                            .help("write a finite number"),
                    );
                    return None;
                }
                Some((ColumnExpr::Const { value: *n }, Some(ColType::Float), None))
            }
            ColExprKind::Binary { op, lhs, rhs } => self.col_arith(ctx, *op, lhs, rhs),
            ColExprKind::Value(v) => {
                self.err(
                    Diag::error(
                        "bad-column",
                        v.span,
                        "expected a column expression such as `col(0)` or `col(\"name\")`",
                    )
                    .help("choose a column with col(INDEX) or col(\"NAME\"); compute with + - * /; map labels with map(col(...), {...})"),
                );
                None
            }
            ColExprKind::Call { name, args } => match name.name.as_str() {
                "col" => self.col_field(ctx, e.span, args),
                "map" => self.col_map(ctx, e.span, args),
                "normalize" => self.col_normalize(ctx, e.span, args),
                "item" => self.col_item(ctx, e.span, args),
                "take" => self.col_take(ctx, e.span, args),
                other => {
                    self.unknown_column_function(other, name.span);
                    None
                }
            },
        }
    }

    /// `a + b`, `a - b`, `a * b`, `a / b` of numeric single values; its
    /// samples computed from the operands' where the file gave some.
    fn col_arith(
        &mut self,
        ctx: &FileCtx,
        op: ast::ArithOp,
        lhs: &ast::ColExpr,
        rhs: &ast::ColExpr,
    ) -> Option<(ColumnExpr, Option<ColType>, Option<Vec<String>>)> {
        let l = self.col_expr(ctx, lhs);
        let r = self.col_expr(ctx, rhs);
        let (l, r) = (l?, r?);
        let mut ok = true;
        for (side, x) in [(lhs, &l), (rhs, &r)] {
            if matches!(x.0, ColumnExpr::Take { .. }) {
                self.err(
                    Diag::error("list-arithmetic", side.span, "arithmetic on a list")
                        .help("compute with single values: item(col(...), INDEX) is one element"),
                );
                ok = false;
            } else if x.1 == Some(ColType::Text) {
                let eg =
                    x.2.as_ref()
                        .and_then(|v| v.first().cloned())
                        .unwrap_or_default();
                self.err(
                    Diag::error(
                        "text-arithmetic",
                        side.span,
                        format!(
                            "arithmetic on a text column (e.g. {eg:?} in `{}`)",
                            ctx.written
                        ),
                    )
                    .help("only numeric columns (such as a score) can be computed with"),
                );
                ok = false;
            }
        }
        if matches!(op, ast::ArithOp::Div) && r.0 == (ColumnExpr::Const { value: 0.0 }) {
            self.err(
                Diag::error("division-by-zero", rhs.span, "division by zero")
                    .help("divide by the scale of the score, e.g. `col(4) / 5.0`"),
            );
            ok = false;
        }
        let samples = arith_samples(op, &l, &r);
        ok.then(|| {
            (
                ColumnExpr::Arith {
                    op: op.into(),
                    lhs: Box::new(l.0),
                    rhs: Box::new(r.0),
                },
                Some(ColType::Float),
                samples,
            )
        })
    }

    /// Reports a call of a function that column expressions do not have.
    fn unknown_column_function(&mut self, other: &str, span: Span) {
        let help = match registry::did_you_mean(other, COLUMN_FUNCTIONS.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "columns are chosen with col(INDEX) or col(\"NAME\"), labels mapped with map(...), scores rescaled with normalize(...), lists read with item(...) and take(...)".into(),
        };
        self.err(
            Diag::error(
                "unknown-name",
                span,
                format!("unknown column function `{other}`"),
            )
            .help(help),
        );
    }

    fn col_field(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
    ) -> Option<(ColumnExpr, Option<ColType>, Option<Vec<String>>)> {
        let bad = |this: &mut Self, sp: Span| {
            this.err(
                Diag::error("bad-column", sp, "col takes one column index or name")
                    .help("e.g. `col(4)` or `col(\"premise\")`"),
            );
            None
        };
        let [arg] = args else {
            return bad(self, span);
        };
        let (field, idx) = match &arg.kind {
            ColExprKind::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e9 => {
                let i = *n as usize;
                if ctx.json {
                    self.err(
                        Diag::error(
                            "bad-column",
                            arg.span,
                            "columns of JSON Lines, Parquet and SMART files are chosen by name",
                        )
                        .help("write `col(\"name\")`; SMART fields are id, title, author, biblio, text"),
                    );
                    return None;
                }
                if let Some(w) = ctx.peek.and_then(Peek::width) {
                    if i >= w {
                        self.err(
                            Diag::error(
                                "column-out-of-range",
                                arg.span,
                                format!(
                                    "column {i} is out of range: `{}` has {w} columns (0 to {})",
                                    ctx.written,
                                    w.saturating_sub(1)
                                ),
                            )
                            .help("columns are numbered from 0"),
                        );
                        return None;
                    }
                }
                (FieldRef::Index(i), Some(i))
            }
            ColExprKind::Value(ast::Value {
                kind: ValueKind::Str(s),
                ..
            }) => {
                if !ctx.header {
                    self.err(
                        Diag::error(
                            "column-by-name",
                            arg.span,
                            format!("`{}` is read without a header, so columns cannot be chosen by name", ctx.written),
                        )
                        .help("choose by index, `col(0)`, or read the header with `header: true`"),
                    );
                    return None;
                }
                let idx = match ctx.peek {
                    Some(p) => match p.index_of(s) {
                        Some(i) => Some(i),
                        None => {
                            let names = p.header.clone().unwrap_or_default();
                            let help =
                                match registry::did_you_mean(s, names.iter().map(String::as_str)) {
                                    Some(x) => format!("did you mean `{x}`?"),
                                    None => format!("its columns are: {}", names.join(", ")),
                                };
                            self.err(
                                Diag::error(
                                    "unknown-column",
                                    arg.span,
                                    format!("`{}` has no column named `{s}`", ctx.written),
                                )
                                .help(help),
                            );
                            return None;
                        }
                    },
                    None => None,
                };
                (FieldRef::Name(s.clone()), idx)
            }
            _ => return bad(self, arg.span),
        };
        let samples = match (ctx.peek, idx) {
            (Some(p), Some(i)) => Some(p.values(i)),
            _ => None,
        };
        let ty = samples.as_deref().and_then(infer);
        Some((ColumnExpr::Field { field }, ty, samples))
    }

    fn col_map(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
    ) -> Option<(ColumnExpr, Option<ColType>, Option<Vec<String>>)> {
        let (input, entries) = match args {
            [input, ast::ColExpr {
                kind:
                    ColExprKind::Value(ast::Value {
                        kind: ValueKind::Map(entries),
                        ..
                    }),
                ..
            }] => (input, entries),
            _ => {
                self.err(
                    Diag::error("bad-column", span, "map takes a column and a map of labels")
                        .help("e.g. `map(col(\"label\"), {\"entailment\": 0, \"neutral\": 1, \"contradiction\": 2})`"),
                );
                return None;
            }
        };
        let (inner, _, samples) = self.col_expr(ctx, input)?;
        if matches!(inner, ColumnExpr::Take { .. }) {
            self.err(
                Diag::error("list-arithmetic", input.span, "map of a list")
                    .help("map single values: item(col(...), INDEX) is one element"),
            );
            return None;
        }
        let mut map: Vec<(String, i64)> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            if map.iter().any(|(x, _)| *x == k.text) {
                self.err(
                    Diag::error(
                        "duplicate-key",
                        k.span,
                        format!("label `{}` is mapped twice", k.text),
                    )
                    .help("map each label once"),
                );
                ok = false;
                continue;
            }
            match v.kind {
                ValueKind::Int(i) => map.push((k.text.clone(), i)),
                _ => {
                    self.err(
                        Diag::error("type-mismatch", v.span, "labels must map to integers")
                            .help("e.g. `{\"entailment\": 0}`"),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        if let Some(samples) = &samples {
            if let Some(missing) = samples.iter().find(|s| !map.iter().any(|(k, _)| k == *s)) {
                self.err(
                    Diag::error(
                        "unmapped-label",
                        span,
                        format!(
                            "value {missing:?} of `{}` is not in the label map",
                            ctx.written
                        ),
                    )
                    .help("add it to the map"),
                );
                return None;
            }
        }
        Some((
            ColumnExpr::Map {
                input: Box::new(inner),
                map,
            },
            Some(ColType::Int),
            None,
        ))
    }
}

/// The numbers of an operand: its samples, or its constant.
/// A checked column expression: its form, its type and its sample values.
pub(super) type Operand = (ColumnExpr, Option<ColType>, Option<Vec<String>>);
pub(super) fn numbers(x: &Operand) -> Option<Vec<f64>> {
    match (&x.0, &x.2) {
        (ColumnExpr::Const { value }, _) => Some(vec![*value]),
        (_, Some(s)) if !s.is_empty() => s.iter().map(|v| v.trim().parse::<f64>().ok()).collect(),
        _ => None,
    }
}

/// The type of sample values: all integers, all numbers, or text.
pub(crate) fn infer(samples: &[String]) -> Option<ColType> {
    if samples.is_empty() {
        return None;
    }
    if samples.iter().all(|s| s.trim().parse::<i64>().is_ok()) {
        Some(ColType::Int)
    } else if samples.iter().all(|s| s.trim().parse::<f64>().is_ok()) {
        Some(ColType::Float)
    } else {
        Some(ColType::Text)
    }
}

/// The samples of `l op r`: computed row by row from the operands' (a
/// constant applies to every row); none when neither side came from the
/// file (a constant alone is not a sample of it).
fn arith_samples(op: ast::ArithOp, l: &Operand, r: &Operand) -> Option<Vec<String>> {
    let (a, b) = (numbers(l)?, numbers(r)?);
    let n = a.len().max(b.len());
    let at = |v: &Vec<f64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let vals: Vec<String> = (0..n)
        .filter(|i| *i < a.len() || a.len() == 1)
        .filter(|i| *i < b.len() || b.len() == 1)
        .map(|i| {
            let (x, y) = (at(&a, i), at(&b, i));
            let v = match op {
                ast::ArithOp::Add => x + y,
                ast::ArithOp::Sub => x - y,
                ast::ArithOp::Mul => x * y,
                ast::ArithOp::Div => x / y,
            };
            v.to_string()
        })
        .collect();
    (a.len() > 1 || b.len() > 1 || l.2.is_some() || r.2.is_some()).then_some(vals)
}
