//! Loading a data source: its file (read by [`super::read`]), or the
//! sources it is derived from, with its limit and its labels checked.

use std::collections::HashMap;

use super::read::read_file;
use super::{DataError, Dataset, Example, Label, TransformCx, TransformEntry};
use crate::check::types::{DataKind, DataSource, Format, Pipeline};
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
