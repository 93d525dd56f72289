//! Splitting delimited text (CSV, TSV) into records, one at a time, with the
//! line each record starts on, so that any problem can name its place.
//!
//! With quoting on, a field that starts with `"` runs to the next lone `"`
//! (a doubled `""` stands for one quote) and may span lines; with quoting
//! off, quotes are ordinary characters (the STS benchmark needs this).
//! Line ends may be `\n` or `\r\n`; blank lines are skipped; a
//! byte-order mark at the start is dropped. A line that is not UTF-8 is a
//! record of its own with [`Record::not_utf8`] set (the reader reports it
//! at its line, or skips it when asked), never the end of the file.

use std::io::BufRead;

/// One record of a delimited file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number where the record starts.
    pub line: usize,
    /// 1-based line number where it ends (a quoted field may span lines).
    pub last_line: usize,
    pub fields: Vec<String>,
    /// The line is not UTF-8: where its first bad byte is (1-based
    /// column, in bytes); `fields` is empty. A bad line inside a quoted
    /// field ends the record: it is then `last_line`.
    pub not_utf8: Option<usize>,
    /// A quote opened on `line` is never closed: the last field runs to
    /// the end of the file.
    pub unterminated: bool,
}

/// One line of `input` as UTF-8, without its line end: `Ok(None)` at the
/// end, `Ok(Some(Err(column)))` for a line that is not UTF-8 (the 1-based
/// byte column of its first bad byte). The byte-order mark of the first
/// line is dropped.
pub fn read_line<R: BufRead>(
    input: &mut R,
    bytes: &mut Vec<u8>,
    first: bool,
) -> std::io::Result<Option<Result<String, usize>>> {
    bytes.clear();
    if input.read_until(b'\n', bytes)? == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let start = if first && bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        3
    } else {
        0
    };
    Ok(Some(match std::str::from_utf8(&bytes[start..]) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(start + e.valid_up_to() + 1),
    }))
}

/// An iterator over the records of a delimited text stream.
pub struct Records<R> {
    input: R,
    delimiter: char,
    quoting: bool,
    /// Runs of the delimiter separate one pair of fields, and delimiters
    /// at a line's start or end separate nothing (whitespace-separated
    /// formats).
    collapse: bool,
    /// Lines consumed so far.
    line: usize,
    buf: String,
    bytes: Vec<u8>,
    /// The current line is not UTF-8 (its bad byte's column).
    bad: Option<usize>,
    done: bool,
}

impl<R: BufRead> Records<R> {
    pub fn new(input: R, delimiter: char, quoting: bool) -> Self {
        Records {
            input,
            delimiter,
            quoting,
            collapse: false,
            line: 0,
            buf: String::new(),
            bytes: Vec::new(),
            bad: None,
            done: false,
        }
    }

    /// Collapse runs of the delimiter (see the field `collapse`).
    pub fn collapsing(mut self, collapse: bool) -> Self {
        self.collapse = collapse;
        self
    }

    /// Read one physical line into `self.buf` (without its line end);
    /// `false` at the end of the input. A line that is not UTF-8 leaves
    /// `self.bad` set and `self.buf` empty.
    fn next_line(&mut self) -> std::io::Result<bool> {
        self.buf.clear();
        self.bad = None;
        let Some(line) = read_line(&mut self.input, &mut self.bytes, self.line == 0)? else {
            return Ok(false);
        };
        self.line += 1;
        match line {
            Ok(s) => self.buf = s,
            Err(col) => self.bad = Some(col),
        }
        Ok(true)
    }

    fn read_record(&mut self) -> std::io::Result<Option<Record>> {
        loop {
            if !self.next_line()? {
                return Ok(None);
            }
            if let Some(col) = self.bad {
                return Ok(Some(Record {
                    line: self.line,
                    last_line: self.line,
                    fields: Vec::new(),
                    not_utf8: Some(col),
                    unterminated: false,
                }));
            }
            if !self.buf.is_empty() {
                break;
            }
        }
        let start = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut at_field_start = true;
        let mut unterminated = false;
        loop {
            let line = std::mem::take(&mut self.buf);
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
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
                } else if self.quoting && c == '"' && at_field_start {
                    in_quotes = true;
                    at_field_start = false;
                } else if c == self.delimiter {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                } else {
                    at_field_start = false;
                    field.push(c);
                }
            }
            self.buf = line;
            if !in_quotes {
                break;
            }
            // A quoted field continues on the next line.
            field.push('\n');
            if !self.next_line()? {
                // Unterminated quote at the end of the file: the fields
                // are returned, flagged, for the reader to report.
                field.pop();
                unterminated = true;
                break;
            }
            if let Some(col) = self.bad {
                return Ok(Some(Record {
                    line: start,
                    last_line: self.line,
                    fields: Vec::new(),
                    not_utf8: Some(col),
                    unterminated: false,
                }));
            }
        }
        fields.push(field);
        if self.collapse {
            fields.retain(|f| !f.is_empty());
        }
        Ok(Some(Record {
            line: start,
            last_line: self.line,
            fields,
            not_utf8: None,
            unterminated,
        }))
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = std::io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, d: char, q: bool) -> Vec<Record> {
        Records::new(text.as_bytes(), d, q)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn quoted_fields_and_line_numbers() {
        let r = all("a\t\"b \"\"x\"\" c\"\td\n\n1\t2\t3\n", '\t', true);
        assert_eq!(r[0].fields, vec!["a", "b \"x\" c", "d"]);
        assert_eq!(r[1].line, 3);
        assert_eq!(r[1].fields, vec!["1", "2", "3"]);
        let r = all("a\t\"b \"\"x\"\" c\"\td\n", '\t', false);
        assert_eq!(r[0].fields[1], "\"b \"\"x\"\" c\"");
    }

    #[test]
    fn multi_line_quotes_and_crlf() {
        let r = all("x,\"y\r\nz\"\r\nw,v", ',', true);
        assert_eq!(r[0].fields, vec!["x", "y\nz"]);
        assert_eq!(r[1].line, 3);
        assert_eq!(r[1].fields, vec!["w", "v"]);
    }

    #[test]
    fn bad_utf8_lines_and_a_bom() {
        let text = b"\xef\xbb\xbfa,b\nc,\xff\xfe\nd,e\n";
        let r: Vec<Record> = Records::new(&text[..], ',', true)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(r[0].fields, vec!["a", "b"]);
        assert_eq!((r[1].line, r[1].not_utf8), (2, Some(3)));
        assert_eq!(r[2].fields, vec!["d", "e"]);
    }

    #[test]
    fn unterminated_quote_is_flagged_with_its_lines() {
        let r = all("a,\"b\nc", ',', true);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].fields, vec!["a", "b\nc"]);
        assert_eq!((r[0].line, r[0].last_line), (1, 2));
        assert!(r[0].unterminated);
        assert!(!all("a,\"b\nc\"\n", ',', true)[0].unterminated);
    }

    #[test]
    fn a_bad_line_inside_a_quoted_field_ends_the_record_there() {
        let input = b"a,\"b\nc\xff\nd\"\ne,f\n".to_vec();
        let r: Vec<Record> = Records::new(&input[..], ',', true)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!((r[0].line, r[0].last_line, r[0].not_utf8), (1, 2, Some(2)));
    }
}
