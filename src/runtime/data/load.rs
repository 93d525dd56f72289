//! Reading files and resolving derived sources.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use super::expr::{self, Row, Typed};
use super::{DataError, Dataset, Example, Label, TransformCx, TransformEntry};
use crate::check::types::{ColType, Column, DataKind, DataSource, Format, Pipeline};
use crate::data::json::OrderedObject;
use crate::data::records::Records;
use crate::data::smart::{smart, SMART_FIELDS};
use crate::registry::ArgType;
use crate::runtime::SentenceEncoder;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Count and skip rows that cannot be read instead of stopping.
    pub skip_bad_rows: bool,
    /// Read at most this many examples from every source (smoke runs).
    pub max_rows: Option<usize>,
}

/// What a load can use besides the files: the sources a run has already
/// loaded (a mined source is only ever built by its own plan step) and
/// the models transforms encode with.
#[derive(Default)]
pub struct LoadEnv<'a> {
    pub ready: Option<&'a HashMap<String, Dataset>>,
    pub models: Option<&'a HashMap<String, SentenceEncoder>>,
    pub note: Option<&'a dyn Fn(&str)>,
}

/// Load the data source `name` of a checked pipeline from its files.
pub fn load(pipeline: &Pipeline, name: &str, opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_with(pipeline, name, opts, &LoadEnv::default())
}

/// Load the data source `name`, taking the sources it is built from from
/// `env.ready` where they are there.
pub fn load_with(
    pipeline: &Pipeline,
    name: &str,
    opts: &LoadOptions,
    env: &LoadEnv,
) -> Result<Dataset, DataError> {
    load_depth(pipeline, name, opts, env, 0)
}

/// An input of a derived source: loaded already, or loaded now.
fn input(
    pipeline: &Pipeline,
    name: &str,
    opts: &LoadOptions,
    env: &LoadEnv,
    depth: usize,
) -> Result<Dataset, DataError> {
    match env.ready.and_then(|r| r.get(name)) {
        Some(d) => Ok(d.clone()),
        None => load_depth(pipeline, name, opts, env, depth + 1),
    }
}

pub(super) fn load_depth(
    pipeline: &Pipeline,
    name: &str,
    opts: &LoadOptions,
    env: &LoadEnv,
    depth: usize,
) -> Result<Dataset, DataError> {
    let source = pipeline
        .data_source(name)
        .ok_or_else(|| DataError::Source {
            name: name.to_string(),
            message: "no such data source in the pipeline".to_string(),
            help: "data sources are declared with `data NAME = ...`".to_string(),
        })?;
    if depth > 64 {
        return Err(DataError::Source {
            name: name.to_string(),
            message: "data sources refer to each other in a cycle".to_string(),
            help: "a source may only be built from sources declared before it".to_string(),
        });
    }
    let limit = match (source.limit, opts.max_rows) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut ds = match &source.kind {
        DataKind::File {
            path,
            format,
            skip_bad_rows,
            ..
        } => {
            let opts = LoadOptions {
                skip_bad_rows: opts.skip_bad_rows || *skip_bad_rows,
                ..opts.clone()
            };
            read_file(source, path, format, limit, &opts)?
        }
        DataKind::Ref { source: inner } => {
            let mut d = input(pipeline, inner, opts, env, depth)?;
            d.name = source.name.clone();
            d
        }
        DataKind::Zip { sources } => {
            let parts = sources
                .iter()
                .map(|s| Ok(("sources", input(pipeline, s, opts, env, depth)?)))
                .collect::<Result<Vec<_>, DataError>>()?;
            apply(&crate::runtime::data::zip::ENTRY, source, parts, env)?
        }
        DataKind::Triplets { source: inner, .. } => {
            let pairs = input(pipeline, inner, opts, env, depth)?;
            let entry = &crate::runtime::data::triplets::ENTRY;
            apply(entry, source, vec![("source", pairs)], env)?
        }
        DataKind::Derived {
            transform, args, ..
        } => {
            let entry = crate::registry::catalogue::transform(transform).ok_or_else(|| {
                DataError::Source {
                    name: source.name.clone(),
                    message: format!("no transform `{transform}`"),
                    help: "this is an stpipe bug; please report it".into(),
                }
            })?;
            let mut parts = Vec::new();
            for spec in entry.spec.args {
                if !matches!(spec.ty, ArgType::Data | ArgType::DataColumns(_)) {
                    continue;
                }
                if let Some(inner) = args.values().get(spec.name).and_then(|v| v.as_str()) {
                    parts.push((spec.name, input(pipeline, inner, opts, env, depth)?));
                }
            }
            apply(entry, source, parts, env)?
        }
    };
    if let Some(n) = limit {
        ds.examples.truncate(n);
    }
    let skip = opts.skip_bad_rows
        || matches!(
            &source.kind,
            DataKind::File {
                skip_bad_rows: true,
                ..
            }
        );
    check_labels(source, &mut ds, skip)?;
    Ok(ds)
}

fn apply(
    entry: &TransformEntry,
    source: &DataSource,
    inputs: Vec<(&'static str, Dataset)>,
    env: &LoadEnv,
) -> Result<Dataset, DataError> {
    let models = |name: &str| env.models.and_then(|m| m.get(name));
    let quiet = |_: &str| {};
    (entry.apply)(TransformCx {
        source,
        inputs,
        models: &models,
        note: env.note.unwrap_or(&quiet),
    })
}

/// Every label against what the losses and evaluators reading the source
/// require (the checker saw only the first rows): an error naming the row
/// and its line, or the row skipped and counted when the source skips bad
/// rows.
fn check_labels(source: &DataSource, ds: &mut Dataset, skip: bool) -> Result<(), DataError> {
    if source.label_checks.is_empty() {
        return Ok(());
    }
    let column = ds.label_column.clone().unwrap_or_else(|| "label".into());
    let problem = |e: &Example| -> Option<String> {
        // Compared as f64, shown as read (`1.7`, not its f64 widening).
        let values: Vec<(f64, String)> = match e.label.as_ref()? {
            Label::Score(s) => vec![(*s as f64, s.to_string())],
            Label::Class(k) => vec![(*k as f64, k.to_string())],
            Label::Scores(v) => v.iter().map(|s| (*s as f64, s.to_string())).collect(),
        };
        values.into_iter().find_map(|(v, shown)| {
            source.label_checks.iter().find_map(|c| {
                if let Some((lo, hi)) = c.range {
                    if !(lo..=hi).contains(&v) {
                        return Some(format!(
                            "`{column}` is {shown}, outside [{lo}, {hi}], the range {} needs",
                            c.by
                        ));
                    }
                }
                if let Some(n) = c.classes {
                    if v.fract() != 0.0 || v < 0.0 || v >= n as f64 {
                        return Some(format!(
                            "`{column}` is {shown}, not a class 0..{} of {}",
                            n - 1,
                            c.by
                        ));
                    }
                }
                None
            })
        })
    };
    let mut kept = Vec::with_capacity(ds.examples.len());
    for (row, e) in std::mem::take(&mut ds.examples).into_iter().enumerate() {
        match problem(&e) {
            None => kept.push(e),
            Some(_) if skip => ds.skipped += 1,
            Some(message) => {
                let help = "fix the data (e.g. scale scores with `score: col(4) / 5.0`), or let the source skip bad rows (`skip_bad_rows: true`)".to_string();
                return Err(match &source.kind {
                    DataKind::File { path, format, .. }
                        if e.line > 0 && *format != Format::Parquet =>
                    {
                        DataError::BadRow {
                            path: path.clone(),
                            line: e.line,
                            group: None,
                            message,
                            help,
                        }
                    }
                    _ => DataError::Source {
                        name: source.name.clone(),
                        message: format!("row {}: {message}", row + 1),
                        help,
                    },
                });
            }
        }
    }
    ds.examples = kept;
    Ok(())
}

/// The type a column is read as: its checked type, else by name.
fn column_type(c: &Column) -> ColType {
    c.ty.unwrap_or(match c.name.as_str() {
        "score" => ColType::Float,
        "label" => ColType::Int,
        _ => ColType::Text,
    })
}

fn is_label(c: &Column) -> bool {
    c.name == "label" || c.name == "score"
}

fn read_file(
    source: &DataSource,
    path: &Path,
    format: &Format,
    limit: Option<usize>,
    opts: &LoadOptions,
) -> Result<Dataset, DataError> {
    let io_err = |e: std::io::Error| {
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
    };
    let reader = crate::data::open::open(path).map_err(io_err)?;
    let mut ds = Dataset {
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
    };
    let push = |line: usize,
                group: Option<usize>,
                fields: &[String],
                names: Option<&[String]>,
                ds: &mut Dataset|
     -> Result<(), DataError> {
        match example(source, &Row { fields, names }) {
            Ok(e) => ds.examples.push(Example { line, ..e }),
            Err((column, message)) if !opts.skip_bad_rows => {
                return Err(DataError::BadRow {
                    path: path.to_path_buf(),
                    line,
                    group,
                    message: format!("column `{column}`: {message}"),
                    help: "fix the row, or let the source skip bad rows".to_string(),
                })
            }
            Err(_) => ds.skipped += 1,
        }
        Ok(())
    };
    let full = |ds: &Dataset| limit.is_some_and(|n| ds.examples.len() >= n);
    match format {
        Format::Delimited {
            delimiter,
            header,
            quoting,
            collapse,
        } => {
            let mut records = Records::new(reader, *delimiter, *quoting).collapsing(*collapse);
            let names = if *header {
                match records.next() {
                    Some(r) => Some(r.map_err(io_err)?.fields),
                    None => None,
                }
            } else {
                None
            };
            for rec in records {
                if full(&ds) {
                    break;
                }
                let rec = rec.map_err(io_err)?;
                if let Some(col) = rec.not_utf8 {
                    bad_row(
                        path,
                        (rec.last_line, None),
                        format!("the line is not UTF-8 (byte {col})"),
                        opts,
                        &mut ds,
                    )?;
                    ds.skipped += rec.last_line - rec.line;
                    continue;
                }
                if rec.unterminated {
                    bad_row(
                        path,
                        (rec.line, None),
                        format!(
                            "the quote opened on this line is never closed: it runs over lines {} to {} (the end of the file)",
                            rec.line, rec.last_line
                        ),
                        opts,
                        &mut ds,
                    )?;
                    ds.skipped += rec.last_line - rec.line;
                    continue;
                }
                let before = ds.skipped;
                push(rec.line, None, &rec.fields, names.as_deref(), &mut ds)?;
                if ds.skipped > before {
                    // A bad record that ran over several lines (an
                    // unterminated quote) skips all of them.
                    ds.skipped += rec.last_line - rec.line;
                }
            }
        }
        Format::Smart { ids_by_position } => {
            let mut text = String::new();
            let mut reader = reader;
            std::io::Read::read_to_string(&mut reader, &mut text).map_err(io_err)?;
            let names: Vec<String> = SMART_FIELDS.iter().map(|s| s.to_string()).collect();
            // SMART records are numbered by position: the row number is the
            // record number.
            for (i, rec) in smart(&text, limit.unwrap_or(usize::MAX), *ids_by_position)
                .into_iter()
                .enumerate()
            {
                push(i + 1, None, &rec, Some(&names), &mut ds)?;
            }
        }
        Format::JsonLines => {
            let mut reader = reader;
            let mut bytes = Vec::new();
            let mut i = 0;
            while let Some(line) =
                crate::data::records::read_line(&mut reader, &mut bytes, i == 0).map_err(io_err)?
            {
                i += 1;
                if full(&ds) {
                    break;
                }
                let line = match line {
                    Ok(l) => l,
                    Err(col) => {
                        bad_row(
                            path,
                            (i, None),
                            format!("the line is not UTF-8 (byte {col})"),
                            opts,
                            &mut ds,
                        )?;
                        continue;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                let (names, fields) = match json_row(&line).and_then(|r| text_values(source, r)) {
                    Ok(v) => v,
                    Err(message) => {
                        bad_row(path, (i, None), message, opts, &mut ds)?;
                        continue;
                    }
                };
                push(i, None, &fields, Some(&names), &mut ds)?;
            }
        }
        Format::Parquet => {
            let file = crate::data::parquet::ParquetFile::open(path).map_err(io_err)?;
            let keep = fields_read(source);
            let mut failed = None;
            file.for_each_row(keep.as_deref(), |place, row| {
                if full(&ds) {
                    return ControlFlow::Break(());
                }
                let at = (place.row, Some(place.group));
                let r = match row.and_then(|row| text_values(source, row)) {
                    Ok((names, fields)) => push(place.row, at.1, &fields, Some(&names), &mut ds),
                    Err(message) => bad_row(path, at, message, opts, &mut ds),
                };
                match r {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })
            .map_err(io_err)?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    Ok(ds)
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

/// A row that cannot be read: an error at its line, or skipped and
/// counted when the source skips bad rows.
fn bad_row(
    path: &Path,
    (line, group): (usize, Option<usize>),
    message: String,
    opts: &LoadOptions,
    ds: &mut Dataset,
) -> Result<(), DataError> {
    if opts.skip_bad_rows {
        ds.skipped += 1;
        return Ok(());
    }
    Err(DataError::BadRow {
        path: path.to_path_buf(),
        line,
        group,
        message,
        help: "fix the row, or let the source skip bad rows (`skip_bad_rows: true`)".to_string(),
    })
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
