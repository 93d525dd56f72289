//! The column function `normalize(EXPR, LO, HI)`: a score rescaled from
//! [LO, HI] to [0, 1], `(x - LO) / (HI - LO)`, as sentence-transformers'
//! `STSDataReader(normalize_scores=True, min_score=0, max_score=5)` reads
//! the STS benchmark. It is checked like arithmetic (a text column is an
//! error) and resolves to the same arithmetic, so the runtime has nothing
//! new to run.

use super::columns::{numbers, FileCtx, Operand};
use super::Checker;
use crate::check::types::{ArithOpName, ColumnExpr};
use crate::diag::{Diag, Span};
use crate::registry::ColType;
use crate::syntax::ast::{self, ColExprKind};

const USAGE: &str = "e.g. `normalize(col(4), 0, 5)` rescales a 0..5 score to 0..1";

impl Checker<'_> {
    pub(super) fn col_normalize(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
    ) -> Option<Operand> {
        let [input, lo, hi] = args else {
            self.err(
                Diag::error(
                    "bad-column",
                    span,
                    "normalize takes a column, a minimum and a maximum",
                )
                .help(USAGE),
            );
            return None;
        };
        let bound = |this: &mut Self, e: &ast::ColExpr, what: &str| match &e.kind {
            ColExprKind::Number(n) if n.is_finite() => Some(*n),
            _ => {
                this.err(
                    Diag::error(
                        "bad-column",
                        e.span,
                        format!("the {what} of `normalize` must be a number"),
                    )
                    .help(USAGE),
                );
                None
            }
        };
        let inner = self.col_expr(ctx, input);
        let (lo_v, hi_v) = (bound(self, lo, "minimum"), bound(self, hi, "maximum"));
        let (inner, lo_v, hi_v) = (inner?, lo_v?, hi_v?);
        if lo_v >= hi_v {
            self.err(
                Diag::error(
                    "bad-range",
                    Span::new(lo.span.start, hi.span.end),
                    format!("`normalize` needs a minimum below the maximum, not {lo_v} and {hi_v}"),
                )
                .label("minimum, maximum")
                .help(USAGE),
            );
            return None;
        }
        if matches!(inner.0, ColumnExpr::Take { .. }) {
            self.err(
                Diag::error("list-arithmetic", input.span, "`normalize` of a list")
                    .help("normalize single values: item(col(...), INDEX) is one element"),
            );
            return None;
        }
        if inner.1 == Some(ColType::Text) {
            let eg = inner
                .2
                .as_ref()
                .and_then(|v| v.first().cloned())
                .unwrap_or_default();
            self.err(
                Diag::error(
                    "text-arithmetic",
                    input.span,
                    format!(
                        "`normalize` of a text column (e.g. {eg:?} in `{}`)",
                        ctx.written
                    ),
                )
                .help("only numeric columns (such as a score) can be normalized"),
            );
            return None;
        }
        let scale = hi_v - lo_v;
        let samples = numbers(&inner)
            .filter(|_| inner.2.is_some())
            .map(|v| v.iter().map(|x| ((x - lo_v) / scale).to_string()).collect());
        let expr = ColumnExpr::Arith {
            op: ArithOpName::Div,
            lhs: Box::new(ColumnExpr::Arith {
                op: ArithOpName::Sub,
                lhs: Box::new(inner.0),
                rhs: Box::new(ColumnExpr::Const { value: lo_v }),
            }),
            rhs: Box::new(ColumnExpr::Const { value: scale }),
        };
        Some((expr, Some(ColType::Float), samples))
    }
}
