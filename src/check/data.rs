//! Data sources: readers, files, columns, transforms.

use super::args::to_args;
use super::columns::{infer, FileCtx};
use super::peek::peek;
use super::{BindKind, Checker};
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::{self, Family};
use crate::syntax::ast;

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
            return Some(DataSource::new(
                name,
                DataKind::Ref { source: src },
                columns,
                limit,
            ));
        };
        let args = self.bind(comp, &source.args, source.span)?;
        if let Some(entry) = crate::registry::catalogue::transform(comp.name) {
            if let Some(columns) = entry.columns {
                if let Some(cs) = columns_span {
                    self.no_columns_here(cs);
                    return None;
                }
                let (kind, columns) = self.check_derived(comp, &args, columns, source.span)?;
                return Some(DataSource::new(name, kind, columns, limit));
            }
        }
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
                            cols.push(Column::derived_from(c));
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
                    .map(|n| Column::derived(n, ColType::Text))
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
                let entry = crate::registry::catalogue::reader(reader)?;
                let format = match (entry.format)(&to_args(comp, &args)) {
                    Ok(f) => f,
                    Err(p) => {
                        let at = args.get(p.arg).map(|a| a.1).unwrap_or(source.span);
                        self.err(Diag::error(p.code, at, p.message).help(p.help));
                        return None;
                    }
                };
                let path = self.resolve_path(&written);
                let skip_rows = self.opts.skip_bad_rows
                    || get("skip_bad_rows").and_then(|v| v.0.as_bool()) == Some(true);
                let pk = if path.is_file() {
                    match peek(&path, &format) {
                        Ok(p) if p.is_empty() => {
                            let what = if p.has_header_line {
                                "has a header but no rows"
                            } else {
                                "is empty"
                            };
                            self.err(
                                Diag::error(
                                    "empty-data",
                                    path_span,
                                    format!("data file `{written}` {what}"),
                                )
                                .help(format!("`{}` must hold at least one row", path.display())),
                            );
                            return None;
                        }
                        Ok(p) => {
                            if let (Some(line), false) = (p.not_utf8_line, skip_rows) {
                                self.err(
                                    Diag::error(
                                        "not-utf8",
                                        path_span,
                                        format!("line {line} of data file `{written}` is not UTF-8"),
                                    )
                                    .help("convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or let the source skip bad rows (`skip_bad_rows: true`)"),
                                );
                                return None;
                            }
                            Some(p)
                        }
                        Err(e) => {
                            self.err(
                                Diag::error(
                                    "unreadable-file",
                                    path_span,
                                    format!("cannot read `{written}`: {e}"),
                                )
                                .help(
                                    if crate::data::open::is_gzip_error(&e) {
                                        crate::data::open::help_for(&e)
                                    } else {
                                        "check the file's permissions"
                                    },
                                ),
                            );
                            return None;
                        }
                    }
                } else {
                    let what = if path.is_dir() {
                        "is a directory, not a file"
                    } else if path.exists() {
                        "is not a regular file (a pipe or a device: stpipe reads data twice, at check and at run time)"
                    } else {
                        "not found"
                    };
                    let help = if Self::tilde_path(&written) {
                        "`~` is not your home directory here (nothing expands it): write `${HOME}` instead".to_string()
                    } else {
                        format!(
                            "looked for `{}`; relative paths start at the pipeline file's directory, and the data root can be set with STPIPE_DATA or --data-root",
                            path.display()
                        )
                    };
                    self.err(
                        Diag::error(
                            "file-not-found",
                            path_span,
                            format!("data file `{written}` {what}"),
                        )
                        .help(help),
                    );
                    None
                };
                let (header, json) = match &format {
                    Format::Delimited { header, .. } => (*header, false),
                    Format::JsonLines | Format::Parquet | Format::Smart { .. } => (true, true),
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
                                samples: pk.as_ref().map(|p| p.values(i)).unwrap_or_default(),
                                list_len: None,
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
                        skip_bad_rows: get("skip_bad_rows")
                            .and_then(|v| v.0.as_bool())
                            .unwrap_or(false),
                    },
                    cols,
                )
            }
        };
        Some(DataSource::new(name, kind, columns, limit))
    }

    pub(crate) fn no_columns_here(&mut self, span: Span) {
        self.err(
            Diag::error(
                "misplaced-columns",
                span,
                "a column block can only follow a file reader (tsv, csv, jsonl, parquet, smart)",
            )
            .help("choose and name the columns in the column blocks of the file sources"),
        );
    }
}

impl DataSource {
    fn new(name: &ast::Ident, kind: DataKind, columns: Vec<Column>, limit: Option<usize>) -> Self {
        DataSource {
            name: name.name.clone(),
            span: name.span,
            kind,
            columns,
            limit,
            label_checks: Vec::new(),
        }
    }
}

impl ast::Call {
    fn call_name(&self) -> ast::Ident {
        self.name.clone()
    }
}
