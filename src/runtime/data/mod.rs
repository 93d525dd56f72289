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
pub mod triplets;
pub mod zip;

pub use load::{load, LoadOptions};

use crate::check::types::DataSource;
use crate::registry::Component;

/// A registered data transform: its description and how it builds its
/// rows from its input sources' (loaded in argument order).
pub struct TransformEntry {
    pub spec: Component,
    pub apply: fn(&DataSource, Vec<Dataset>) -> Result<Dataset, DataError>,
}

use std::path::PathBuf;

/// A label value of one example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    Score(f32),
    Class(i64),
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
                None => None,
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
    #[error("{path}:{line}: {message}")]
    #[diagnostic(code(stpipe::data::bad_row), help("{help}"))]
    BadRow {
        path: PathBuf,
        line: usize,
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
