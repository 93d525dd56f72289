//! Splitting delimited text (CSV, TSV) into records, one at a time, with the
//! line each record starts on, so that any problem can name its place.
//!
//! With quoting on, a field that starts with `"` runs to the next lone `"`
//! (a doubled `""` stands for one quote) and may span lines; with quoting
//! off, quotes are ordinary characters (the STS benchmark needs this).
//! Line ends may be `\n` or `\r\n`; blank lines are skipped.

use std::io::BufRead;

/// One record of a delimited file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number where the record starts.
    pub line: usize,
    pub fields: Vec<String>,
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
            done: false,
        }
    }

    /// Collapse runs of the delimiter (see the field `collapse`).
    pub fn collapsing(mut self, collapse: bool) -> Self {
        self.collapse = collapse;
        self
    }

    /// Read one physical line into `self.buf` (without its line end);
    /// `false` at the end of the input.
    fn next_line(&mut self) -> std::io::Result<bool> {
        self.buf.clear();
        if self.input.read_line(&mut self.buf)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.ends_with('\n') {
            self.buf.pop();
            if self.buf.ends_with('\r') {
                self.buf.pop();
            }
        }
        Ok(true)
    }

    fn read_record(&mut self) -> std::io::Result<Option<Record>> {
        loop {
            if !self.next_line()? {
                return Ok(None);
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
                // Unterminated quote at the end of the file: keep what
                // there is rather than lose the record.
                field.pop();
                break;
            }
        }
        fields.push(field);
        if self.collapse {
            fields.retain(|f| !f.is_empty());
        }
        Ok(Some(Record {
            line: start,
            fields,
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
    fn unterminated_quote_keeps_the_record() {
        let r = all("a,\"b\nc", ',', true);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].fields, vec!["a", "b\nc"]);
    }
}
