//! A data source read from a file: its reader's format, the file itself
//! (found, a regular file, readable, not empty, UTF-8 in its first rows:
//! the first rows are read now, see [`super::peek`]), and its columns,
//! chosen in a column block or taken from the file's header.

use std::path::Path;

use super::args::{to_args, BoundArgs};
use super::columns::{infer, FileCtx};
use super::data::DataStmt;
use super::peek::{peek, Peek};
use super::Checker;
use crate::check::types::*;
use crate::diag::{Diag, Span};
use crate::registry::Component;

impl Checker<'_> {
    /// A file reader's source (`tsv(...)`, `jsonl(...)`, ...).
    pub(super) fn check_file_source(
        &mut self,
        comp: &'static Component,
        args: &BoundArgs,
        stmt: &DataStmt,
    ) -> Option<(DataKind, Vec<Column>)> {
        let source = stmt.source;
        let (path_v, path_span) = args.get("path")?;
        let written = path_v.as_str()?.to_string();
        let entry = crate::registry::catalogue::reader(comp.name)?;
        let format = match (entry.format)(&to_args(comp, args)) {
            Ok(f) => f,
            Err(p) => {
                let at = args.get(p.arg).map(|a| a.1).unwrap_or(source.span);
                self.err(Diag::error(p.code, at, p.message).help(p.help));
                return None;
            }
        };
        let path = self.resolve_path(&written);
        let skip_flag = args.get("skip_bad_rows").and_then(|v| v.0.as_bool()) == Some(true);
        let skip_rows = self.opts.skip_bad_rows || skip_flag;
        let pk = if path.is_file() {
            Some(self.peek_file(&path, &written, *path_span, &format, skip_rows)?)
        } else {
            self.file_not_found(&path, &written, *path_span);
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
        let cols = match stmt.columns {
            Some(defs) => {
                let at = stmt.columns_span.unwrap_or(source.span);
                self.file_columns(&ctx, defs, at)?
            }
            None => self.header_columns(pk.as_ref(), &written, source.span)?,
        };
        let kind = DataKind::File {
            path,
            written,
            format,
            skip_bad_rows: skip_flag,
        };
        Some((kind, cols))
    }

    /// The file's first rows; reports a file that is empty, unreadable,
    /// or not UTF-8 (unless bad rows are skipped).
    fn peek_file(
        &mut self,
        path: &Path,
        written: &str,
        at: Span,
        format: &Format,
        skip_rows: bool,
    ) -> Option<Peek> {
        let p = match peek(path, format) {
            Ok(p) => p,
            Err(e) => {
                let help = if crate::data::open::is_gzip_error(&e) {
                    crate::data::open::help_for(&e)
                } else {
                    "check the file's permissions"
                };
                self.err(
                    Diag::error(
                        "unreadable-file",
                        at,
                        format!("cannot read `{written}`: {e}"),
                    )
                    .help(help),
                );
                return None;
            }
        };
        if p.is_empty() {
            let what = if p.has_header_line {
                "has a header but no rows"
            } else {
                "is empty"
            };
            self.err(
                Diag::error("empty-data", at, format!("data file `{written}` {what}"))
                    .help(format!("`{}` must hold at least one row", path.display())),
            );
            return None;
        }
        if let (Some(line), false) = (p.not_utf8_line, skip_rows) {
            self.err(
                Diag::error(
                    "not-utf8",
                    at,
                    format!("line {line} of data file `{written}` is not UTF-8"),
                )
                .help("convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or let the source skip bad rows (`skip_bad_rows: true`)"),
            );
            return None;
        }
        Some(p)
    }

    /// Reports a data path that is not a regular file.
    fn file_not_found(&mut self, path: &Path, written: &str, at: Span) {
        let what = if path.is_dir() {
            "is a directory, not a file"
        } else if path.exists() {
            "is not a regular file (a pipe or a device: stpipe reads data twice, at check and at run time)"
        } else {
            "not found"
        };
        let help = if Self::tilde_path(written) {
            "`~` is not your home directory here (nothing expands it): write `${HOME}` instead"
                .to_string()
        } else {
            format!(
                "looked for `{}`; relative paths start at the pipeline file's directory, and the data root can be set with STPIPE_DATA or --data-root",
                path.display()
            )
        };
        self.err(
            Diag::error(
                "file-not-found",
                at,
                format!("data file `{written}` {what}"),
            )
            .help(help),
        );
    }

    /// Without a column block: the columns the file's header names, each
    /// read by name, typed from the first rows. A file without a header
    /// needs a block.
    fn header_columns(
        &mut self,
        pk: Option<&Peek>,
        written: &str,
        at: Span,
    ) -> Option<Vec<Column>> {
        let pk = pk?;
        let Some(h) = &pk.header else {
            self.err(
                Diag::error(
                    "missing-columns",
                    at,
                    format!("`{written}` has no header, so its columns must be chosen"),
                )
                .help("add a column block, e.g. `{ sentence1: col(0), sentence2: col(1), score: col(2) / 5.0 }`"),
            );
            return None;
        };
        let columns = h
            .iter()
            .enumerate()
            .map(|(i, n)| Column {
                name: n.clone(),
                expr: Some(ColumnExpr::Field {
                    field: FieldRef::Name(n.clone()),
                }),
                ty: infer(&pk.values(i)),
                samples: pk.values(i),
                list_len: None,
            })
            .collect();
        Some(columns)
    }
}
