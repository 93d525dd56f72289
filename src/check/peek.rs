//! Reading the first rows of a data file (never the whole file).

use std::io::Read;
use std::path::Path;

use crate::check::types::Format;

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
}

impl Peek {
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
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(PEEK_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    Ok(match format {
        Format::Delimited {
            delimiter,
            header,
            quoting,
        } => {
            let mut recs = delimited(&text, *delimiter, *quoting, PEEK_ROWS + 1);
            let header = if *header && !recs.is_empty() {
                Some(recs.remove(0))
            } else {
                None
            };
            recs.truncate(PEEK_ROWS);
            Peek { header, rows: recs }
        }
        Format::JsonLines => {
            let mut header: Option<Vec<String>> = None;
            let mut rows = Vec::new();
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(PEEK_ROWS)
            {
                let Ok(serde_json::Value::Object(obj)) =
                    serde_json::from_str::<serde_json::Value>(line)
                else {
                    rows.push(Vec::new());
                    continue;
                };
                let keys: Vec<String> = obj.keys().cloned().collect();
                let h = header.get_or_insert(keys);
                let row = h
                    .iter()
                    .map(|k| match obj.get(k) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    })
                    .collect();
                rows.push(row);
            }
            Peek { header, rows }
        }
    })
}

/// Split the first `max` records of delimited text. With `quoting`, fields
/// may be double-quoted (a quoted field may span lines; `""` is a quote).
pub(crate) fn delimited(text: &str, delim: char, quoting: bool, max: usize) -> Vec<Vec<String>> {
    let mut recs = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if recs.len() >= max {
            break;
        }
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        if quoting && c == '"' && at_field_start {
            in_quotes = true;
            at_field_start = false;
            continue;
        }
        if c == delim {
            rec.push(std::mem::take(&mut field));
            at_field_start = true;
            continue;
        }
        if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            rec.push(std::mem::take(&mut field));
            if !(rec.len() == 1 && rec[0].is_empty()) {
                recs.push(std::mem::take(&mut rec));
            } else {
                rec.clear();
            }
            at_field_start = true;
            continue;
        }
        at_field_start = false;
        field.push(c);
    }
    if recs.len() < max && (!field.is_empty() || !rec.is_empty()) {
        rec.push(field);
        recs.push(rec);
    }
    recs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_and_unquoted() {
        let t = "a\t\"b \"\"x\"\" c\"\td\n1\t2\t3\n";
        let r = delimited(t, '\t', true, 10);
        assert_eq!(r[0], vec!["a", "b \"x\" c", "d"]);
        assert_eq!(r[1], vec!["1", "2", "3"]);
        let r = delimited(t, '\t', false, 10);
        assert_eq!(r[0][1], "\"b \"\"x\"\" c\"");
        let r = delimited("x,\"y\nz\"\r\nw,v", ',', true, 10);
        assert_eq!(r, vec![vec!["x", "y\nz"], vec!["w", "v"]]);
    }
}
