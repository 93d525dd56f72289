//! Reading the first rows of a data file (never the whole file).

use std::io::Read;
use std::path::Path;

use crate::check::types::Format;
use crate::data::json::OrderedObject;
use crate::data::records::Records;
use crate::data::smart::{smart, SMART_FIELDS};

/// Rows read to check column choices and infer types.
pub(crate) const PEEK_ROWS: usize = 5;
/// Bytes read at most.
const PEEK_BYTES: u64 = 64 * 1024;

/// The head of a file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peek {
    /// Column names, if the file has a header (or JSON keys).
    pub header: Option<Vec<String>>,
    /// The first rows' fields.
    pub rows: Vec<Vec<String>>,
    /// The whole file was read (it is shorter than the peek limit), so an
    /// empty `rows` means the file holds no rows at all.
    pub complete: bool,
    /// Lines of the head holding anything but whitespace.
    pub lines_with_text: usize,
    /// A header line was present (a delimited file with `header: true`).
    pub has_header_line: bool,
    /// The first line (1-based) of the head that is not UTF-8.
    pub not_utf8_line: Option<usize>,
}

impl Peek {
    /// The file holds no rows at all: it was read to its end and holds
    /// nothing but blank lines and, maybe, a header.
    pub fn is_empty(&self) -> bool {
        self.complete
            && self.rows.is_empty()
            && self.lines_with_text <= usize::from(self.has_header_line)
    }

    /// Number of fields in the first row (header included).
    pub fn width(&self) -> Option<usize> {
        self.header
            .as_ref()
            .map(Vec::len)
            .or_else(|| self.rows.first().map(Vec::len))
    }

    /// Index of a named column.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.header.as_ref()?.iter().position(|h| h == name)
    }

    /// The sample values of column `i` (rows too short are skipped).
    pub fn values(&self, i: usize) -> Vec<String> {
        self.rows.iter().filter_map(|r| r.get(i).cloned()).collect()
    }
}

pub(crate) fn peek(path: &Path, format: &Format) -> std::io::Result<Peek> {
    if *format == Format::Parquet {
        return peek_parquet(path);
    }
    let f = crate::data::open::open(path)?;
    let mut buf = Vec::new();
    f.take(PEEK_BYTES + 1).read_to_end(&mut buf)?;
    let complete = buf.len() as u64 <= PEEK_BYTES;
    buf.truncate(PEEK_BYTES as usize);
    let not_utf8_line = first_bad_line(&buf, complete);
    let text = String::from_utf8_lossy(&buf);
    let mut peek = parse(&text, format);
    peek.complete = complete;
    peek.lines_with_text = text.lines().filter(|l| !l.trim().is_empty()).count();
    peek.not_utf8_line = not_utf8_line;
    Ok(peek)
}

/// The head of a Parquet file: its columns from the schema, its first rows
/// as the runtime reads them (lists as JSON text).
fn peek_parquet(path: &Path) -> std::io::Result<Peek> {
    let (header, rows, complete) = crate::data::parquet::head(path, PEEK_ROWS)?;
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| OrderedObject(r).into_fields().1)
        .collect();
    Ok(Peek {
        header: Some(header),
        lines_with_text: rows.len(),
        rows,
        complete,
        ..Peek::default()
    })
}

/// The line of the first byte that cannot be UTF-8. A character cut by the
/// peek limit at the very end is not a fault of the file.
fn first_bad_line(buf: &[u8], complete: bool) -> Option<usize> {
    let e = std::str::from_utf8(buf).err()?;
    if e.error_len().is_none() && !complete {
        return None;
    }
    let at = e.valid_up_to();
    Some(1 + buf[..at].iter().filter(|&&b| b == b'\n').count())
}

fn parse(text: &str, format: &Format) -> Peek {
    match format {
        Format::Delimited {
            delimiter,
            header,
            quoting,
            collapse,
        } => {
            let mut recs: Vec<Vec<String>> = Records::new(text.as_bytes(), *delimiter, *quoting)
                .collapsing(*collapse)
                .take(PEEK_ROWS + 1)
                .map_while(|r| r.ok().map(|r| r.fields))
                .collect();
            let has_header_line = *header && !recs.is_empty();
            let header = has_header_line.then(|| recs.remove(0));
            recs.truncate(PEEK_ROWS);
            Peek {
                header,
                rows: recs,
                has_header_line,
                ..Peek::default()
            }
        }
        Format::Smart { ids_by_position } => {
            let rows = smart(text, PEEK_ROWS, *ids_by_position);
            Peek {
                header: Some(SMART_FIELDS.iter().map(|s| s.to_string()).collect()),
                rows,
                ..Peek::default()
            }
        }
        Format::Parquet => Peek::default(),
        Format::JsonLines => {
            let mut header: Option<Vec<String>> = None;
            let mut rows = Vec::new();
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(PEEK_ROWS)
            {
                let Ok(OrderedObject(obj)) = serde_json::from_str::<OrderedObject>(line) else {
                    rows.push(Vec::new());
                    continue;
                };
                let keys: Vec<String> = obj.iter().map(|(k, _)| k.clone()).collect();
                let h = header.get_or_insert(keys);
                let row = h
                    .iter()
                    .map(|k| match obj.iter().find(|(x, _)| x == k).map(|(_, v)| v) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    })
                    .collect();
                rows.push(row);
            }
            Peek {
                header,
                rows,
                ..Peek::default()
            }
        }
    }
}
