//! Loading a checked data source into memory as training examples.
//!
//! A source's columns follow sentence-transformers' convention: every column
//! is a text except the one named `label` or `score`, which is a float score
//! or an integer class label. Files are read in full here (the checker only
//! peeks at their first rows); a bad row stops the load with the file and
//! line, unless the load was asked to skip bad rows, in which case they are
//! counted.

mod expr;
mod load;
pub mod mine;
mod read;
pub mod record;
pub mod relevant_pairs;
pub mod split;
pub mod triplets;
pub mod zip;

pub use load::{load, load_with, LoadEnv, LoadOptions};

use crate::check::types::{Column, DataKind, DataSource};
use crate::data::ArgProblem;
use crate::registry::{Args, Component};
use crate::runtime::SentenceEncoder;

/// A registered data transform: its description, the columns it produces
/// and how it builds its rows from its input sources'.
pub struct TransformEntry {
    pub spec: Component,
    /// The columns of the result, from the checked arguments and the
    /// sources they name (check time). `None` for `zip` and `triplets`,
    /// whose results `check/data.rs` describes.
    pub columns: Option<ColumnsFn>,
    pub apply: fn(TransformCx) -> Result<Dataset, DataError>,
    /// The result is costly (it encodes with a model): the run writes it
    /// to the run directory as JSON Lines and reuses it while the step's
    /// fingerprint is unchanged.
    pub recorded: bool,
}

/// How a transform describes its result's columns at check time.
pub type ColumnsFn = fn(&TransformInput) -> Result<Vec<Column>, ArgProblem>;

/// What a transform's `columns` sees at check time.
pub struct TransformInput<'a> {
    pub args: &'a Args,
    /// The checked sources its `Data` arguments name, by argument name.
    pub sources: Vec<(&'static str, &'a DataSource)>,
}

impl TransformInput<'_> {
    /// The source argument `arg` names, if given.
    pub fn source(&self, arg: &str) -> Option<&DataSource> {
        self.sources
            .iter()
            .find(|(a, _)| *a == arg)
            .map(|(_, s)| *s)
    }
}

/// What a transform's `apply` gets at run time.
pub struct TransformCx<'a> {
    pub source: &'a DataSource,
    /// The loaded sources its `Data` arguments name, by argument name (in
    /// argument order; `zip`'s sources in theirs).
    pub inputs: Vec<(&'static str, Dataset)>,
    /// The models the run has built, by name.
    pub models: &'a dyn Fn(&str) -> Option<&'a SentenceEncoder>,
    /// Progress and statistics for the run's log.
    pub note: &'a dyn Fn(&str),
}

impl TransformCx<'_> {
    /// The checked arguments of a generic derived source.
    pub fn args(&self) -> Result<&Args, DataError> {
        match &self.source.kind {
            DataKind::Derived { args, .. } => Ok(args),
            _ => Err(self.bug("is not a derived source")),
        }
    }

    /// The loaded source of argument `arg`.
    pub fn input(&self, arg: &str) -> Result<&Dataset, DataError> {
        self.inputs
            .iter()
            .find(|(a, _)| *a == arg)
            .map(|(_, d)| d)
            .ok_or_else(|| self.bug(&format!("has no loaded input `{arg}`")))
    }

    /// An internal inconsistency (what the checker guarantees is not so).
    pub fn bug(&self, what: &str) -> DataError {
        DataError::Source {
            name: self.source.name.clone(),
            message: what.to_string(),
            help: "this is an stpipe bug; please report it".into(),
        }
    }

    /// A problem of the data itself, found while building the result.
    pub fn fail(&self, message: String, help: impl Into<String>) -> DataError {
        DataError::Source {
            name: self.source.name.clone(),
            message,
            help: help.into(),
        }
    }
}

/// An argument error at run time (a value the checker let through that
/// the runtime reads differently is a bug).
impl From<crate::registry::ArgError> for DataError {
    fn from(e: crate::registry::ArgError) -> Self {
        DataError::Source {
            name: e.component,
            message: format!("argument `{}`: {}", e.name, e.problem),
            help: "this is an stpipe bug; please report it".into(),
        }
    }
}

use std::path::PathBuf;

/// A label value of one example.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    Score(f32),
    Class(i64),
    /// One score per candidate column (teacher scores for distillation),
    /// the same number in every row of a source.
    Scores(Vec<f32>),
}

/// One training or evaluation example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The text columns, in the source's column order.
    pub texts: Vec<String>,
    pub label: Option<Label>,
    /// The file line the example comes from (0 when unknown), for errors
    /// found after loading.
    pub line: usize,
}

/// A data source loaded in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// Names of the text columns.
    pub text_columns: Vec<String>,
    /// Name of the label column (`label` or `score`), if any.
    pub label_column: Option<String>,
    pub examples: Vec<Example>,
    /// Rows skipped as bad (only when skipping was asked for).
    pub skipped: usize,
}

impl Dataset {
    /// The prompt of text column `i` in a `prompts` map (keys are column
    /// names), if it has one.
    pub fn column_prompt<'p>(&self, i: usize, prompts: &'p [(String, String)]) -> Option<&'p str> {
        let col = self.text_columns.get(i)?;
        prompts
            .iter()
            .find(|(k, _)| k == col)
            .map(|(_, p)| p.as_str())
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The float scores (class labels converted), one per example; `None`
    /// when the source has no label column.
    pub fn scores(&self) -> Option<Vec<f32>> {
        self.label_column.as_ref()?;
        self.examples
            .iter()
            .map(|e| match e.label {
                Some(Label::Score(s)) => Some(s),
                Some(Label::Class(c)) => Some(c as f32),
                Some(Label::Scores(_)) | None => None,
            })
            .collect()
    }

    /// The integer labels; `None` unless every example has a class label.
    pub fn classes(&self) -> Option<Vec<i64>> {
        self.examples
            .iter()
            .map(|e| match e.label {
                Some(Label::Class(c)) => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// Where a bad row is: `file:LINE`, or `file: row N (row group G)`.
fn place(path: &std::path::Path, line: usize, group: Option<usize>) -> String {
    match group {
        None => format!("{}:{line}", path.display()),
        Some(g) => format!("{}: row {line} (row group {g})", path.display()),
    }
}

/// Why a data source could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DataError {
    #[error("cannot read data file {path}: {source}")]
    #[diagnostic(
        code(stpipe::data::io),
        help("check that the file exists and is readable")
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read data file {path}: {source}")]
    #[diagnostic(code(stpipe::data::gzip), help("{}", crate::data::open::GZIP_HELP))]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", place(.path, *.line, *.group))]
    #[diagnostic(code(stpipe::data::bad_row), help("{help}"))]
    BadRow {
        path: PathBuf,
        /// The 1-based line of a text file, or row of a Parquet file.
        line: usize,
        /// The Parquet row group (from 0) the row is in.
        group: Option<usize>,
        message: String,
        help: String,
    },
    #[error("data source `{name}`: {message}")]
    #[diagnostic(code(stpipe::data::source), help("{help}"))]
    Source {
        name: String,
        message: String,
        help: String,
    },
}
