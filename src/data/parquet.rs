//! `parquet`: Apache Parquet files, as the Hugging Face Hub serves every
//! data set (and as pandas, pyarrow and polars write them). Columns are
//! chosen by name; nested list columns (`list<string>`, `list<double>`)
//! read as lists for `item(...)` and `take(...)`. Rows are read one row
//! group at a time through the record API, so memory holds one row group's
//! pages, never the file; a bad row is reported by its row number and row
//! group.
//!
//! Each row is handed on as a JSON object (keys in schema order), the form
//! the JSON Lines reader produces, so both share the rest of the path.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::{ArgProblem, Format, ReaderEntry, PATH, SKIP_BAD_ROWS};
use crate::registry::{Args, Component, Family};

pub const ENTRY: ReaderEntry = ReaderEntry {
    spec: Component {
        name: "parquet",
        family: Family::Reader,
        doc: "Apache Parquet (any codec pyarrow or polars write: snappy, zstd, gzip, lz4, brotli); columns are chosen by name (`col(\"anchor\")`), list columns read with item(...) and take(...). Read one row group at a time.",
        args: &[PATH, SKIP_BAD_ROWS],
        ..Component::BASE
    },
    format,
};

fn format(_: &Args) -> Result<Format, ArgProblem> {
    Ok(Format::Parquet)
}

/// Where a row is: its 1-based number in the file and its row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPlace {
    pub row: usize,
    pub group: usize,
}

/// One row: its columns' names and values, in schema order.
pub type JsonRow = Vec<(String, serde_json::Value)>;

/// A Parquet file opened for reading: its footer has been read.
pub struct ParquetFile {
    reader: SerializedFileReader<File>,
}

impl ParquetFile {
    pub fn open(path: &Path) -> std::io::Result<ParquetFile> {
        let file = File::open(path)?;
        let reader = SerializedFileReader::new(file).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a readable Parquet file ({e})"),
            )
        })?;
        Ok(ParquetFile { reader })
    }

    /// The top-level column names, in schema order.
    pub fn columns(&self) -> Vec<String> {
        self.reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }

    /// Rows in the file, from the footer.
    pub fn num_rows(&self) -> usize {
        usize::try_from(self.reader.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// The schema of the top-level columns named in `keep` (all of them
    /// when `None`), in schema order: only those are decoded, so a wide
    /// file (one with an embedding column, say) costs only what is read.
    fn projection(&self, keep: Option<&[String]>) -> std::io::Result<Option<Type>> {
        let Some(keep) = keep else {
            return Ok(None);
        };
        let root = self
            .reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema();
        let fields: Vec<_> = root
            .get_fields()
            .iter()
            .filter(|f| keep.iter().any(|k| k == f.name()))
            .cloned()
            .collect();
        Type::group_type_builder(root.name())
            .with_fields(fields)
            .build()
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("cannot select the columns ({e})")))
    }

    /// Calls `f` on every row in order, row group by row group, until it
    /// breaks; with `keep`, each row holds only those columns. A row that
    /// cannot be decoded (a damaged page) ends the read with an error
    /// naming the row.
    pub fn for_each_row(
        &self,
        keep: Option<&[String]>,
        mut f: impl FnMut(RowPlace, Result<JsonRow, String>) -> ControlFlow<()>,
    ) -> std::io::Result<()> {
        let projection = self.projection(keep)?;
        let mut row = 0;
        for group in 0..self.reader.num_row_groups() {
            let bad = |e: parquet::errors::ParquetError, row: usize| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("row {row} (row group {group}) cannot be decoded ({e})"),
                )
            };
            let reader = self
                .reader
                .get_row_group(group)
                .map_err(|e| bad(e, row + 1))?;
            for r in reader
                .get_row_iter(projection.clone())
                .map_err(|e| bad(e, row + 1))?
            {
                row += 1;
                let r = r.map_err(|e| bad(e, row))?;
                let values = r
                    .get_column_iter()
                    .map(|(name, field)| {
                        json(field)
                            .map(|v| (name.clone(), v))
                            .map_err(|e| format!("column `{name}`: {e}"))
                    })
                    .collect();
                if f(RowPlace { row, group }, values).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A field as JSON: as the `json` feature of the parquet crate converts
/// it, except that bytes must be UTF-8 text (never base64 text standing
/// in for a sentence) and a float that is not finite stays a number's
/// text (`NaN`), so a score column reports it as not finite rather than
/// as missing.
fn json(field: &Field) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match field {
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(e) => {
                return Err(format!(
                    "a binary value that is not UTF-8 text (byte {})",
                    e.valid_up_to() + 1
                ))
            }
        },
        Field::Float(x) if !x.is_finite() => Value::String(x.to_string()),
        Field::Double(x) if !x.is_finite() => Value::String(x.to_string()),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(json).collect::<Result<_, _>>()?)
        }
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| json(v).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.to_json_value(),
    })
}

/// The first `n` rows and the column names, for the checker (a row that
/// cannot be converted has no fields, as a JSON Lines row that is not an
/// object).
pub fn head(path: &Path, n: usize) -> std::io::Result<(Vec<String>, Vec<JsonRow>, bool)> {
    let file = ParquetFile::open(path)?;
    let mut rows = Vec::new();
    file.for_each_row(None, |_, r| {
        rows.push(r.unwrap_or_default());
        if rows.len() >= n {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok((file.columns(), rows, file.num_rows() <= n))
}
