//! Data sources: readers, files, columns, transforms.

use super::peek::{peek, Peek};
use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Family};
use crate::syntax::ast::{self, ColExprKind, ValueKind};

/// What the column expressions of a file source can see.
struct FileCtx<'p> {
    written: String,
    peek: Option<&'p Peek>,
    header: bool,
    json: bool,
}

impl Checker<'_> {
    pub(crate) fn check_data(
        &mut self,
        name: &ast::Ident,
        source: &ast::Call,
        columns: Option<&[ast::ColumnDef]>,
        columns_span: Option<Span>,
        limit: Option<&ast::Value>,
    ) -> Option<DataSource> {
        let limit = match limit {
            Some(v) => match self.convert(v, registry::ArgType::Count, "`limit`") {
                Some(ArgValue::Int(0)) => {
                    self.err(
                        Diag::error("out-of-range", v.span, "`limit 0` leaves no rows")
                            .help("give a positive number of rows, or remove the limit"),
                    );
                    return None;
                }
                Some(ArgValue::Int(n)) => Some(n as usize),
                _ => return None,
            },
            None => None,
        };
        let call_name = &source.call_name();
        let is_binding = self.bindings.contains_key(&call_name.name);
        let comp = if !source.parens && is_binding {
            None
        } else {
            match registry::lookup(Family::Reader, &call_name.name)
                .or_else(|| registry::lookup(Family::Transform, &call_name.name))
            {
                Some(c) => Some(c),
                None => {
                    let mut names: Vec<&str> = registry::family(Family::Reader)
                        .iter()
                        .chain(registry::family(Family::Transform).iter())
                        .map(|c| c.name)
                        .collect();
                    let data_names: Vec<String> = self
                        .bindings
                        .iter()
                        .filter(|(_, b)| b.kind == BindKind::Data)
                        .map(|(n, _)| n.clone())
                        .collect();
                    let mut all = names.clone();
                    all.extend(data_names.iter().map(String::as_str));
                    let help = match registry::did_you_mean(&call_name.name, all.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => {
                            names.sort();
                            format!("readers and transforms: {}", names.join(", "))
                        }
                    };
                    self.err(
                        Diag::error(
                            "unknown-name",
                            call_name.span,
                            format!("unknown data reader `{}`", call_name.name),
                        )
                        .help(help),
                    );
                    return None;
                }
            }
        };
        let Some(comp) = comp else {
            // `data d = other limit 10`
            let src = self.resolve(call_name, BindKind::Data)?;
            if let Some(cs) = columns_span {
                self.no_columns_here(cs);
                return None;
            }
            let columns = self.out.data_source(&src)?.columns.clone();
            return Some(DataSource {
                name: name.name.clone(),
                span: name.span,
                kind: DataKind::Ref { source: src },
                columns,
                limit,
            });
        };
        let args = self.bind(comp, &source.args, source.span)?;
        let get = |k: &str| args.get(k).map(|(v, s)| (v.clone(), *s));
        let (kind, columns) = match comp.name {
            "zip" => {
                if let Some(cs) = columns_span {
                    self.no_columns_here(cs);
                    return None;
                }
                let (srcs, sp) = get("sources")?;
                let names: Vec<String> = match srcs {
                    ArgValue::List(l) => l
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                if names.len() < 2 {
                    self.err(
                        Diag::error("zip-arity", sp, "zip needs at least two data sources")
                            .help("e.g. `zip(english, german)` with line-aligned sources"),
                    );
                    return None;
                }
                let mut cols: Vec<Column> = Vec::new();
                let mut ok = true;
                for n in &names {
                    let Some(d) = self.out.data_source(n).cloned() else {
                        ok = false;
                        continue;
                    };
                    for c in &d.columns {
                        if cols.iter().any(|x| x.name == c.name) {
                            self.err(
                                Diag::error(
                                    "duplicate-column",
                                    sp,
                                    format!("zip: column `{}` comes from more than one source (again from `{n}`)", c.name),
                                )
                                .help("rename the columns in the sources' column blocks so that they differ"),
                            );
                            ok = false;
                        } else {
                            cols.push(Column {
                                name: c.name.clone(),
                                expr: None,
                                ty: c.ty,
                            });
                        }
                    }
                }
                if !ok {
                    return None;
                }
                (DataKind::Zip { sources: names }, cols)
            }
            "triplets" => {
                if let Some(cs) = columns_span {
                    self.no_columns_here(cs);
                    return None;
                }
                let src_name = get("source")?.0.as_str()?.to_string();
                let src = self.out.data_source(&src_name)?.clone();
                let col_names: Vec<&str> = src.columns.iter().map(|c| c.name.as_str()).collect();
                let (by, by_span) = get("by")?;
                let by = by.as_str()?.to_string();
                let (label, label_span) = get("label")?;
                let label = label.as_str()?.to_string();
                let text = match get("text") {
                    Some((v, s)) => (v.as_str()?.to_string(), s),
                    None => {
                        let t = src
                            .text_columns()
                            .into_iter()
                            .map(|c| c.name.clone())
                            .find(|c| *c != by && *c != label);
                        match t {
                            Some(t) => (t, source.span),
                            None => {
                                self.err(
                                    Diag::error(
                                        "missing-column",
                                        source.span,
                                        format!("`{src_name}` has no text column besides `{by}`"),
                                    )
                                    .help("triplets need an anchor column and a candidate text column"),
                                );
                                return None;
                            }
                        }
                    }
                };
                let mut ok = true;
                for (c, sp, role) in [
                    (&by, by_span, "by"),
                    (&text.0, text.1, "text"),
                    (&label, label_span, "label"),
                ] {
                    if !col_names.contains(&c.as_str()) {
                        let help = match registry::did_you_mean(c, col_names.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("`{src_name}` has columns: {}", col_names.join(", ")),
                        };
                        self.err(
                            Diag::error(
                                "unknown-column",
                                sp,
                                format!("`{src_name}` has no column `{c}` (for `{role}`)"),
                            )
                            .help(help),
                        );
                        ok = false;
                    }
                }
                let to_label = |v: Option<(ArgValue, Span)>| match v {
                    Some((ArgValue::Int(i), _)) => Some(LabelValue::Int(i)),
                    Some((ArgValue::Str(s), _)) => Some(LabelValue::Str(s)),
                    _ => None,
                };
                let pos_span = get("positive").map(|p| p.1).unwrap_or(source.span);
                let positive = to_label(get("positive"))?;
                let negative = to_label(get("negative"))?;
                if positive == negative {
                    self.err(
                        Diag::error(
                            "bad-triplets",
                            pos_span,
                            "the positive and negative labels are the same",
                        )
                        .help(
                            "e.g. for NLI: `positive: 0, negative: 2` (entailment, contradiction)",
                        ),
                    );
                    ok = false;
                }
                if !ok {
                    return None;
                }
                let cols = ["anchor", "positive", "negative"]
                    .iter()
                    .map(|n| Column {
                        name: n.to_string(),
                        expr: None,
                        ty: Some(ColType::Text),
                    })
                    .collect();
                (
                    DataKind::Triplets {
                        source: src_name,
                        by,
                        text: text.0,
                        label,
                        positive,
                        negative,
                    },
                    cols,
                )
            }
            reader => {
                let (path_v, path_span) = get("path")?;
                let written = path_v.as_str()?.to_string();
                let format = if reader == "jsonl" {
                    Format::JsonLines
                } else {
                    let header = get("header").and_then(|v| v.0.as_bool()).unwrap_or(true);
                    let quoting = get("quoting")
                        .map(|v| v.0.as_str() == Some("csv"))
                        .unwrap_or(true);
                    let delimiter = if reader == "tsv" {
                        '\t'
                    } else {
                        let (d, dspan) =
                            get("delimiter").unwrap_or((ArgValue::Str(",".into()), source.span));
                        let d = d.as_str().unwrap_or(",").replace("\\t", "\t");
                        let mut it = d.chars();
                        match (it.next(), it.next()) {
                            (Some(c), None) if c != '"' && c != '\n' => c,
                            _ => {
                                self.err(
                                    Diag::error(
                                        "bad-delimiter",
                                        dspan,
                                        format!("the delimiter must be one character, not `{d}`"),
                                    )
                                    .help("e.g. `delimiter: \";\"`; use tsv(...) for tabs"),
                                );
                                return None;
                            }
                        }
                    };
                    Format::Delimited {
                        delimiter,
                        header,
                        quoting,
                    }
                };
                let path = self.resolve_path(&written);
                let pk = if path.is_file() {
                    match peek(&path, &format) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            self.err(
                                Diag::error(
                                    "unreadable-file",
                                    path_span,
                                    format!("cannot read `{written}`: {e}"),
                                )
                                .help("check the file's permissions"),
                            );
                            return None;
                        }
                    }
                } else {
                    let what = if path.is_dir() {
                        "is a directory, not a file"
                    } else {
                        "not found"
                    };
                    self.err(
                        Diag::error("file-not-found", path_span, format!("data file `{written}` {what}"))
                            .help(format!(
                                "relative paths start at the pipeline file's directory ({}); the data root can be set with STPIPE_DATA or --data-root",
                                self.base_dir.display()
                            )),
                    );
                    None
                };
                let (header, json) = match &format {
                    Format::Delimited { header, .. } => (*header, false),
                    Format::JsonLines => (true, true),
                };
                let ctx = FileCtx {
                    written: written.clone(),
                    peek: pk.as_ref(),
                    header,
                    json,
                };
                let cols = match columns {
                    Some(defs) => {
                        self.file_columns(&ctx, defs, columns_span.unwrap_or(source.span))?
                    }
                    None => match pk.as_ref().and_then(|p| p.header.clone()) {
                        Some(h) => h
                            .iter()
                            .enumerate()
                            .map(|(i, n)| Column {
                                name: n.clone(),
                                expr: Some(ColumnExpr::Field {
                                    field: FieldRef::Name(n.clone()),
                                }),
                                ty: infer(&pk.as_ref().map(|p| p.values(i)).unwrap_or_default()),
                            })
                            .collect(),
                        None if pk.is_none() => return None,
                        None => {
                            self.err(
                                Diag::error(
                                    "missing-columns",
                                    source.span,
                                    format!("`{written}` has no header, so its columns must be chosen"),
                                )
                                .help("add a column block, e.g. `{ sentence1: col(0), sentence2: col(1), score: col(2) / 5.0 }`"),
                            );
                            return None;
                        }
                    },
                };
                (
                    DataKind::File {
                        path,
                        written,
                        format,
                    },
                    cols,
                )
            }
        };
        Some(DataSource {
            name: name.name.clone(),
            span: name.span,
            kind,
            columns,
            limit,
        })
    }

    fn no_columns_here(&mut self, span: Span) {
        self.err(
            Diag::error(
                "misplaced-columns",
                span,
                "a column block can only follow a file reader (tsv, csv, jsonl)",
            )
            .help("choose and name the columns in the column blocks of the file sources"),
        );
    }

    fn file_columns(
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
            match self.col_expr(ctx, &d.expr) {
                Some((expr, ty, _)) => out.push(Column {
                    name: d.name.name.clone(),
                    expr: Some(expr),
                    ty,
                }),
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
    fn col_expr(
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
            ColExprKind::Binary { op, lhs, rhs } => {
                let l = self.col_expr(ctx, lhs);
                let r = self.col_expr(ctx, rhs);
                let (l, r) = (l?, r?);
                let mut ok = true;
                for (side, x) in [(lhs, &l), (rhs, &r)] {
                    if x.1 == Some(ColType::Text) {
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
                ok.then(|| {
                    (
                        ColumnExpr::Arith {
                            op: (*op).into(),
                            lhs: Box::new(l.0),
                            rhs: Box::new(r.0),
                        },
                        Some(ColType::Float),
                        None,
                    )
                })
            }
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
                other => {
                    let help = match registry::did_you_mean(other, ["col", "map"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "columns are chosen with col(INDEX) or col(\"NAME\"), labels mapped with map(...)".into(),
                    };
                    self.err(
                        Diag::error(
                            "unknown-name",
                            name.span,
                            format!("unknown column function `{other}`"),
                        )
                        .help(help),
                    );
                    None
                }
            },
        }
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
                            "JSON Lines columns are chosen by key",
                        )
                        .help("write `col(\"key\")`"),
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

impl ast::Call {
    fn call_name(&self) -> ast::Ident {
        self.name.clone()
    }
}
