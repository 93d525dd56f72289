//! The column functions that read list fields (see [`crate::data::list`]):
//!
//! * `item(col("pos"), 0)`: one element, a text or a number;
//! * `take(col("neg"), 3)`: the first three elements. As a text column,
//!   `negative: take(col("neg"), 3)` becomes the three text columns
//!   `negative_1`, `negative_2`, `negative_3` (an n-tuple, as losses read
//!   (anchor, positive, negative_1, ...)); as the label, `score:
//!   take(col("scores"), 4)` is one list of four scores per row (teacher
//!   scores for MarginMSELoss and DistillKLDivLoss).
//!
//! A row whose list is shorter than what is taken is a bad row (reported at
//! its line, or skipped with `skip_bad_rows`); a longer one gives its first
//! elements, since lists of mined negatives often differ in length and a
//! loss needs the same number of columns in every row.

use super::columns::{FileCtx, Operand};
use super::Checker;
use crate::check::types::{Column, ColumnExpr};
use crate::data::list::{elements, Element};
use crate::diag::{Diag, Span};
use crate::registry::ColType;
use crate::syntax::ast::{self, ColExprKind};

const ITEM_USAGE: &str =
    "e.g. `item(col(\"pos\"), 0)` is the first element of the list in field `pos`";
const TAKE_USAGE: &str =
    "e.g. `negative: take(col(\"neg\"), 3)` gives the columns negative_1, negative_2, negative_3";

/// A list longer than this is not taken as columns (a typo such as
/// `take(col("neg"), 3000)` would make thousands of columns).
const MAX_TAKE: usize = 1024;

impl Checker<'_> {
    /// `item(col(...), INDEX)`.
    pub(super) fn col_item(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
    ) -> Option<Operand> {
        let (input, index) = self.list_args(ctx, span, args, "item", ITEM_USAGE, 0)?;
        let mut samples = Vec::new();
        for (row, field) in input.2.iter().flatten().enumerate() {
            match elements(field).map(|e| e.into_iter().nth(index)) {
                Ok(Some(Element::Text(t))) => samples.push(t),
                Ok(Some(Element::Number(n))) => samples.push(n.to_string()),
                Ok(Some(Element::Other(what))) => {
                    return self.list_fault(ctx, span, row, format!("element {index} is {what}"))
                }
                Ok(None) => {
                    return self.list_fault(
                        ctx,
                        span,
                        row,
                        format!("the list has no element {index} (elements are numbered from 0)"),
                    )
                }
                Err(m) => return self.list_fault(ctx, span, row, m),
            }
        }
        let ty = super::columns::infer(&samples);
        let expr = ColumnExpr::Item {
            input: Box::new(input.0),
            index,
        };
        Some((expr, ty, input.2.is_some().then_some(samples)))
    }

    /// `take(col(...), N)`: typed `FloatList` when the first rows' elements
    /// are numbers, `Text` when they are texts; the samples are the fields
    /// as they are (the lists' JSON), for [`expand_take`].
    pub(super) fn col_take(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
    ) -> Option<Operand> {
        let (input, n) = self.list_args(ctx, span, args, "take", TAKE_USAGE, 1)?;
        // Texts, numbers, and numbers written as text (which read as
        // either: scores, or texts such as "42").
        let (mut texts, mut numbers, mut numeric_texts) = (false, false, false);
        for (row, field) in input.2.iter().flatten().enumerate() {
            let items = match elements(field) {
                Ok(items) => items,
                Err(m) => return self.list_fault(ctx, span, row, m),
            };
            if items.len() < n {
                return self.list_fault(
                    ctx,
                    span,
                    row,
                    format!(
                        "the list has {} element(s), fewer than the {n} taken",
                        items.len()
                    ),
                );
            }
            for (i, e) in items.iter().take(n).enumerate() {
                match e {
                    // A number written as text reads as a score too.
                    Element::Text(t) if t.trim().parse::<f64>().is_ok() => numeric_texts = true,
                    Element::Text(_) => texts = true,
                    Element::Number(_) => numbers = true,
                    Element::Other(what) => {
                        return self.list_fault(ctx, span, row, format!("element {i} is {what}"))
                    }
                }
            }
        }
        let ty = match (texts, numbers || numeric_texts) {
            (true, _) if !numbers => Some(ColType::Text),
            (false, true) => Some(ColType::FloatList),
            (false, false) => None,
            (true, _) => {
                self.err(
                    Diag::error(
                        "mixed-list",
                        span,
                        format!("the lists of `{}` mix texts and numbers", ctx.written),
                    )
                    .help("take a list of texts (as text columns) or a list of scores (as the label), not both"),
                );
                return None;
            }
        };
        let expr = ColumnExpr::Take {
            input: Box::new(input.0),
            n,
        };
        Some((expr, ty, input.2))
    }

    /// The field and the number of `item` / `take`.
    fn list_args(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        args: &[ast::ColExpr],
        name: &str,
        usage: &str,
        min: usize,
    ) -> Option<(Operand, usize)> {
        let [input, count] = args else {
            self.err(
                Diag::error(
                    "bad-column",
                    span,
                    format!("{name} takes a column and a number"),
                )
                .help(usage),
            );
            return None;
        };
        if !matches!(&input.kind, ColExprKind::Call { name, .. } if name.name == "col") {
            self.err(
                Diag::error(
                    "bad-column",
                    input.span,
                    format!("{name} reads a field of the file: its first argument is col(...)"),
                )
                .help(usage),
            );
            return None;
        }
        let n = match &count.kind {
            ColExprKind::Number(n)
                if n.fract() == 0.0 && *n >= min as f64 && *n <= MAX_TAKE as f64 =>
            {
                *n as usize
            }
            _ => {
                self.err(
                    Diag::error(
                        "bad-column",
                        count.span,
                        format!(
                            "the second argument of {name} must be a whole number from {min} to {MAX_TAKE}"
                        ),
                    )
                    .help(usage),
                );
                return None;
            }
        };
        let input = self.col_expr(ctx, input)?;
        Some((input, n))
    }

    fn list_fault(
        &mut self,
        ctx: &FileCtx,
        span: Span,
        row: usize,
        message: String,
    ) -> Option<Operand> {
        self.err(
            Diag::error(
                "bad-list",
                span,
                format!("row {} of `{}`: {message}", row + 1, ctx.written),
            )
            .help("item(...) and take(...) read fields that hold lists (JSON arrays, Parquet list columns)"),
        );
        None
    }

    /// The columns of one column definition: itself, or, for `take` of a
    /// list of texts, one text column per element, named `NAME_1` ...
    pub(super) fn expand_take(
        &mut self,
        name: &ast::Ident,
        op: Operand,
        ctx: &FileCtx,
    ) -> Option<Vec<Column>> {
        let (expr, ty, samples) = op;
        let ColumnExpr::Take { input, n } = expr else {
            if let (ColumnExpr::Field { .. }, Some(s)) = (&expr, &samples) {
                self.nested_as_text(name, s, ctx)?;
            }
            return Some(vec![Column {
                name: name.name.clone(),
                list_len: None,
                expr: Some(expr),
                ty,
                samples: samples.unwrap_or_default(),
            }]);
        };
        let is_label = name.name == "label" || name.name == "score";
        if is_label {
            if ty == Some(ColType::Text) {
                self.err(
                    Diag::error(
                        "label-type",
                        name.span,
                        format!("`{}` takes a list of texts, which cannot be a label", name.name),
                    )
                    .help("a list label holds scores (numbers); name the column otherwise to read the texts as columns"),
                );
                return None;
            }
            return Some(vec![Column {
                name: name.name.clone(),
                expr: Some(ColumnExpr::Take { input, n }),
                ty: Some(ColType::FloatList),
                samples: samples.unwrap_or_default(),
                list_len: Some(n),
            }]);
        }
        Some(
            (0..n)
                .map(|i| Column {
                    name: format!("{}_{}", name.name, i + 1),
                    expr: Some(ColumnExpr::Item {
                        input: input.clone(),
                        index: i,
                    }),
                    ty: Some(ColType::Text),
                    samples: samples
                        .iter()
                        .flatten()
                        .filter_map(|f| match elements(f).ok()?.into_iter().nth(i)? {
                            Element::Text(t) => Some(t),
                            Element::Number(x) => Some(x.to_string()),
                            Element::Other(_) => None,
                        })
                        .collect(),
                    list_len: None,
                })
                .collect(),
        )
    }

    /// A field that JSON Lines or Parquet hands on as JSON text (a list, a
    /// struct or map) read as one text column would silently train on
    /// `["...", ...]`: an error when every sample is one.
    fn nested_as_text(
        &mut self,
        name: &ast::Ident,
        samples: &[String],
        ctx: &FileCtx,
    ) -> Option<()> {
        if !ctx.json || samples.is_empty() {
            return Some(());
        }
        let list = |v: &String| matches!(elements(v), Ok(e) if !e.is_empty());
        let object = |v: &String| {
            v.trim_start().starts_with('{')
                && serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| j.is_object())
        };
        let (code, what, help) = if samples.iter().all(list) {
            (
                "list-as-text",
                "lists",
                format!("`{}: take(col(...), N)` gives one text column per element, `item(col(...), 0)` one element", name.name),
            )
        } else if samples.iter().all(object) {
            (
                "object-as-text",
                "objects (structs or maps)",
                "choose a column that holds texts; a nested field cannot be selected yet"
                    .to_string(),
            )
        } else {
            return Some(());
        };
        self.err(
            Diag::error(
                code,
                name.span,
                format!(
                    "column `{}` reads a field of `{}` that holds {what}, as one text",
                    name.name, ctx.written
                ),
            )
            .help(help),
        );
        None
    }
}
