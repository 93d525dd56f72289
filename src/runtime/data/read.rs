//! Reading one data file into a [`Dataset`]: delimited records (CSV,
//! TSV, any delimiter), SMART collections, JSON Lines and Parquet, each row
//! through the source's column expressions. A row that cannot be read is
//! an error at its line (and Parquet row group), or skipped and counted
//! when the source skips bad rows.

use std::ops::ControlFlow;
use std::path::Path;

use super::expr::{self, Row, Typed};
use super::load::LoadOptions;
use super::{DataError, Dataset, Example, Label};
use crate::check::types::{ColType, Column, DataSource, Format};
use crate::data::json::OrderedObject;
use crate::data::records::Records;
use crate::data::smart::{smart, SMART_FIELDS};

/// Read `path`, the file of `source`, in `format`: at most `limit`
/// examples.
pub(super) fn read_file(
    source: &DataSource,
    path: &Path,
    format: &Format,
    limit: Option<usize>,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let reader = crate::data::open::open(path).map_err(io_error(path))?;
    let mut r = FileRead {
        source,
        path,
        limit,
        opts,
        ds: Dataset {
            name: source.name.clone(),
            text_columns: source
                .columns
                .iter()
                .filter(|c| !is_label(c))
                .map(|c| c.name.clone())
                .collect(),
            label_column: source
                .columns
                .iter()
                .find(|c| is_label(c))
                .map(|c| c.name.clone()),
            examples: Vec::new(),
            skipped: 0,
        },
    };
    match format {
        Format::Delimited {
            delimiter,
            header,
            quoting,
            collapse,
        } => {
            let records = Records::new(reader, *delimiter, *quoting).collapsing(*collapse);
            r.delimited(records, *header)?;
        }
        Format::Smart { ids_by_position } => r.smart(reader, *ids_by_position)?,
        Format::JsonLines => r.json_lines(reader)?,
        Format::Parquet => r.parquet()?,
    }
    Ok(r.ds)
}

/// An I/O error of `path`: a damaged gzip stream named as such.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |e| {
        if crate::data::open::is_gzip_error(&e) {
            DataError::Gzip {
                path: path.to_path_buf(),
                source: e,
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }
}

/// One file being read into a dataset.
struct FileRead<'a> {
    source: &'a DataSource,
    path: &'a Path,
    limit: Option<usize>,
    opts: &'a LoadOptions,
    ds: Dataset,
}

impl FileRead<'_> {
    /// Whether `limit` examples have been read.
    fn full(&self) -> bool {
        self.limit.is_some_and(|n| self.ds.examples.len() >= n)
    }

    /// The example of one row (fields, with their names where the format
    /// has them), at `line` (and Parquet row `group`).
    fn push(
        &mut self,
        line: usize,
        group: Option<usize>,
        fields: &[String],
        names: Option<&[String]>,
    ) -> Result<(), DataError> {
        match example(self.source, &Row { fields, names }) {
            Ok(e) => self.ds.examples.push(Example { line, ..e }),
            Err((column, message)) if !self.opts.skip_bad_rows => {
                return Err(DataError::BadRow {
                    path: self.path.to_path_buf(),
                    line,
                    group,
                    message: format!("column `{column}`: {message}"),
                    help: "fix the row, or let the source skip bad rows".to_string(),
                })
            }
            Err(_) => self.ds.skipped += 1,
        }
        Ok(())
    }

    /// A row that cannot be read: an error at its line, or skipped and
    /// counted when the source skips bad rows.
    fn bad_row(
        &mut self,
        (line, group): (usize, Option<usize>),
        message: String,
    ) -> Result<(), DataError> {
        if self.opts.skip_bad_rows {
            self.ds.skipped += 1;
            return Ok(());
        }
        Err(DataError::BadRow {
            path: self.path.to_path_buf(),
            line,
            group,
            message,
            help: "fix the row, or let the source skip bad rows (`skip_bad_rows: true`)"
                .to_string(),
        })
    }

    /// Delimited records; with `header`, the first names the fields.
    fn delimited<R: std::io::BufRead>(
        &mut self,
        mut records: Records<R>,
        header: bool,
    ) -> Result<(), DataError> {
        let io_err = io_error(self.path);
        let names = match header {
            true => records
                .next()
                .transpose()
                .map_err(&io_err)?
                .map(|r| r.fields),
            false => None,
        };
        for rec in records {
            if self.full() {
                break;
            }
            self.record(rec.map_err(&io_err)?, names.as_deref())?;
        }
        Ok(())
    }

    /// One delimited record: a bad one (not UTF-8, an unterminated quote)
    /// skips every line it ran over.
    fn record(
        &mut self,
        rec: crate::data::records::Record,
        names: Option<&[String]>,
    ) -> Result<(), DataError> {
        if let Some(col) = rec.not_utf8 {
            let message = format!("the line is not UTF-8 (byte {col})");
            self.bad_row((rec.last_line, None), message)?;
            self.ds.skipped += rec.last_line - rec.line;
            return Ok(());
        }
        if rec.unterminated {
            let message = format!(
                "the quote opened on this line is never closed: it runs over lines {} to {} (the end of the file)",
                rec.line, rec.last_line
            );
            self.bad_row((rec.line, None), message)?;
            self.ds.skipped += rec.last_line - rec.line;
            return Ok(());
        }
        let before = self.ds.skipped;
        self.push(rec.line, None, &rec.fields, names)?;
        if self.ds.skipped > before {
            // A bad record that ran over several lines (an unterminated
            // quote) skips all of them.
            self.ds.skipped += rec.last_line - rec.line;
        }
        Ok(())
    }

    /// A SMART collection: records are numbered by position, so the row
    /// number is the record number.
    fn smart(
        &mut self,
        mut reader: impl std::io::Read,
        ids_by_position: bool,
    ) -> Result<(), DataError> {
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(io_error(self.path))?;
        let names: Vec<String> = SMART_FIELDS.iter().map(|s| s.to_string()).collect();
        let records = smart(&text, self.limit.unwrap_or(usize::MAX), ids_by_position);
        for (i, rec) in records.into_iter().enumerate() {
            self.push(i + 1, None, &rec, Some(&names))?;
        }
        Ok(())
    }

    /// JSON Lines: one object per line, blank lines ignored.
    fn json_lines(&mut self, mut reader: impl std::io::BufRead) -> Result<(), DataError> {
        let io_err = io_error(self.path);
        let mut bytes = Vec::new();
        let mut i = 0;
        while let Some(line) =
            crate::data::records::read_line(&mut reader, &mut bytes, i == 0).map_err(&io_err)?
        {
            i += 1;
            if self.full() {
                break;
            }
            let line = match line {
                Ok(l) => l,
                Err(col) => {
                    self.bad_row((i, None), format!("the line is not UTF-8 (byte {col})"))?;
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match json_row(&line).and_then(|r| text_values(self.source, r)) {
                Ok((names, fields)) => self.push(i, None, &fields, Some(&names))?,
                Err(message) => self.bad_row((i, None), message)?,
            }
        }
        Ok(())
    }

    /// Parquet: only the fields the columns read, row group by row group.
    fn parquet(&mut self) -> Result<(), DataError> {
        let io_err = io_error(self.path);
        let file = crate::data::parquet::ParquetFile::open(self.path).map_err(&io_err)?;
        let keep = fields_read(self.source);
        let mut failed = None;
        file.for_each_row(keep.as_deref(), |place, row| {
            if self.full() {
                return ControlFlow::Break(());
            }
            let at = (place.row, Some(place.group));
            let r = match row.and_then(|row| text_values(self.source, row)) {
                Ok((names, fields)) => self.push(place.row, at.1, &fields, Some(&names)),
                Err(message) => self.bad_row(at, message),
            };
            match r {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(&io_err)?;
        failed.map_or(Ok(()), Err)
    }
}

/// The type a column is read as: its checked type, else by name.
fn column_type(c: &Column) -> ColType {
    c.ty.unwrap_or(match c.name.as_str() {
        "score" => ColType::Float,
        "label" => ColType::Int,
        _ => ColType::Text,
    })
}

/// A label column: named `label` or `score`.
fn is_label(c: &Column) -> bool {
    c.name == "label" || c.name == "score"
}

/// The fields the source's column expressions read by name; `None` when
/// one reads a field by position (every field must then be read).
fn fields_read(source: &DataSource) -> Option<Vec<String>> {
    use crate::check::types::{ColumnExpr, FieldRef};
    fn walk(e: &ColumnExpr, out: &mut Vec<String>) -> bool {
        match e {
            ColumnExpr::Field {
                field: FieldRef::Name(n),
            } => {
                if !out.contains(n) {
                    out.push(n.clone());
                }
                true
            }
            ColumnExpr::Field {
                field: FieldRef::Index(_),
            } => false,
            ColumnExpr::Const { .. } => true,
            ColumnExpr::Arith { lhs, rhs, .. } => walk(lhs, out) && walk(rhs, out),
            ColumnExpr::Map { input, .. }
            | ColumnExpr::Item { input, .. }
            | ColumnExpr::Take { input, .. } => walk(input, out),
        }
    }
    let mut out = Vec::new();
    for c in &source.columns {
        if !walk(c.expr.as_ref()?, &mut out) {
            return None;
        }
    }
    Some(out)
}

/// Keys (in file order) and values of one JSON Lines row.
fn json_row(line: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
    serde_json::from_str::<OrderedObject>(line)
        .map(|o| o.0)
        .map_err(|e| format!("not a JSON object: {e}"))
}

/// The row's keys and values as text; a text column that reads a `null`,
/// an array or an object is an error (it is not a text).
fn text_values(
    source: &DataSource,
    row: Vec<(String, serde_json::Value)>,
) -> Result<(Vec<String>, Vec<String>), String> {
    use crate::check::types::{ColumnExpr, FieldRef};
    for c in source.columns.iter().filter(|c| !is_label(c)) {
        let Some(ColumnExpr::Field {
            field: FieldRef::Name(key),
        }) = &c.expr
        else {
            continue;
        };
        let bad = row
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                serde_json::Value::Null => Some("null"),
                serde_json::Value::Array(_) => Some("an array"),
                serde_json::Value::Object(_) => Some("an object"),
                _ => None,
            });
        if let Some(what) = bad {
            return Err(format!(
                "column `{}`: the value of key `{key}` is {what}, not a text",
                c.name
            ));
        }
    }
    Ok(crate::data::json::OrderedObject(row).into_fields())
}

/// One example from a row; on failure the column at fault and why.
fn example(source: &DataSource, row: &Row) -> Result<Example, (String, String)> {
    let mut texts = Vec::with_capacity(source.columns.len());
    let mut label = None;
    for c in &source.columns {
        let fail = |m: String| (c.name.clone(), m);
        let e = c
            .expr
            .as_ref()
            .ok_or_else(|| fail("the column has no expression".to_string()))?;
        let cell = expr::eval(e, row).map_err(fail)?;
        let ty = if is_label(c) {
            column_type(c)
        } else {
            ColType::Text
        };
        match expr::typed(cell, ty).map_err(fail)? {
            Typed::Text(t) if !is_label(c) => texts.push(t),
            Typed::Text(t) => {
                return Err(fail(format!(
                    "`{t}` is not a label; map text labels to integers with map(...)"
                )))
            }
            Typed::Score(s) => label = Some(Label::Score(s)),
            Typed::Class(k) => label = Some(Label::Class(k)),
            Typed::Scores(v) => label = Some(Label::Scores(v)),
        }
    }
    Ok(Example {
        texts,
        label,
        line: 0,
    })
}
