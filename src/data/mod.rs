//! Reading data files, shared by the checker (which peeks at the first rows)
//! and the runtime (which reads them whole). Each reader of the registry
//! (`tsv`, `csv`, `jsonl`, `smart`) has its file here: its description and
//! how its checked arguments become a [`Format`], the one thing both
//! layers read a file by. Every reader reads gzip-compressed files too
//! ([`open`]).

pub mod csv;
pub mod json;
pub mod list;
pub mod open;
pub mod parquet;
pub mod records;
pub mod smart;
pub mod tsv;

use serde::Serialize;

use crate::registry::{opt, req, ArgSpec, ArgType, Args, Component};

/// How a file is read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Format {
    Delimited {
        delimiter: char,
        header: bool,
        /// CSV-style double quotes (with `""` escapes).
        quoting: bool,
        /// Runs of the delimiter count as one, and delimiters at a line's
        /// ends are ignored (whitespace-separated files).
        #[serde(default)]
        collapse: bool,
    },
    JsonLines,
    /// Apache Parquet, read row group by row group; columns by name.
    Parquet,
    /// SMART records (`.I id`, `.T` title, `.A` author, `.B` biblio, `.W`
    /// text), as in the Cranfield collection. Fields: id, title, author,
    /// biblio, text.
    Smart {
        /// Number records 1, 2, 3... in file order instead of using `.I`.
        ids_by_position: bool,
    },
}

/// A problem with one argument, found by a component's own validation at
/// check time (the checker points at the argument).
#[derive(Debug, Clone, PartialEq)]
pub struct ArgProblem {
    pub arg: &'static str,
    pub code: &'static str,
    pub message: String,
    pub help: String,
}

/// A registered file reader: its description and how its arguments
/// become a [`Format`].
pub struct ReaderEntry {
    pub spec: Component,
    pub format: fn(&Args) -> Result<Format, ArgProblem>,
}

/// The arguments of every reader.
pub(crate) const PATH: ArgSpec = req(
    "path",
    ArgType::Str,
    "file path; relative paths start at the pipeline file's directory",
);
pub(crate) const SKIP_BAD_ROWS: ArgSpec = opt(
    "skip_bad_rows",
    ArgType::Bool,
    "false",
    "count and skip rows that cannot be read (bad number, missing field, unknown label) instead of stopping the run",
);

/// An argument the checker resolved (internal errors only).
pub(crate) fn internal(arg: &'static str, e: crate::registry::ArgError) -> ArgProblem {
    ArgProblem {
        arg,
        code: "internal",
        message: e.to_string(),
        help: "this is an stpipe bug; please report it".into(),
    }
}
