//! Positions and document addresses: LSP speaks of lines and UTF-16 code
//! units and of `file://` URIs, stpipe of byte offsets and paths.

use std::path::PathBuf;

use lsp_types::{Position, Range, Uri};

use crate::diag::Span;

/// The byte offsets where the lines of a document start, by the LSP's
/// rules: `\n`, `\r\n` and a lone `\r` all end a line (editors send all
/// three, and a position must name the same line for both sides).
#[derive(Debug, Clone)]
pub struct LineMap {
    starts: Vec<usize>,
}

impl LineMap {
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineMap { starts }
    }

    /// The byte range of line `line`, without its terminator.
    fn line_bounds(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.starts[line];
        let mut end = self.starts.get(line + 1).copied().unwrap_or(text.len());
        let bytes = text.as_bytes();
        if end > start && bytes.get(end - 1) == Some(&b'\n') {
            end -= 1;
        }
        if end > start && bytes.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        (start, end)
    }

    /// The LSP position of a byte offset (clamped into the text, moved
    /// back to a character boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let (start, end) = self.line_bounds(text, line);
        let col: usize = text[start..offset.min(end)]
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(to_u32(line), to_u32(col))
    }

    /// The byte offset of an LSP position. A line past the end is the end
    /// of the text; a character past the end of its line is the line's end
    /// (the protocol says so); one inside a surrogate pair is the start of
    /// its character.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let line = pos.line as usize;
        if line >= self.starts.len() {
            return text.len();
        }
        let (start, end) = self.line_bounds(text, line);
        let want = pos.character as usize;
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            let next = units + c.len_utf16();
            if next > want {
                return start + i;
            }
            units = next;
        }
        end
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(
            self.position(text, span.start),
            self.position(text, span.end.max(span.start)),
        )
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The local path a `file:` URI names; `None` for other schemes, remote
/// hosts and undecodable escapes (such a document is still checked, with
/// relative paths resolved from the server's directory).
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    let s = uri.as_str();
    let rest = s
        .strip_prefix("file:")
        .or_else(|| s.strip_prefix("FILE:"))?;
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let slash = after.find('/')?;
            let host = &after[..slash];
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return None;
            }
            &after[slash..]
        }
        None => rest,
    };
    // Queries and fragments are not part of a file's path.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let bytes = percent_decode(path)?;
    bytes_to_path(bytes)
}

#[cfg(unix)]
fn bytes_to_path(bytes: Vec<u8>) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn bytes_to_path(bytes: Vec<u8>) -> Option<PathBuf> {
    let s = String::from_utf8(bytes).ok()?;
    // `/C:/dir` names the drive path `C:/dir`.
    let b = s.as_bytes();
    let s = if b.len() >= 3 && b[0] == b'/' && b[1].is_ascii_alphabetic() && b[2] == b':' {
        &s[1..]
    } else {
        &s[..]
    };
    Some(PathBuf::from(s))
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "ab\né😀x\r\nlast";
        let map = LineMap::new(text);
        let x = text.find('x').unwrap();
        // é is 1 unit, 😀 is 2.
        assert_eq!(map.position(text, x), Position::new(1, 3));
        assert_eq!(map.offset(text, Position::new(1, 3)), x);
        // Inside the surrogate pair: the start of the emoji.
        let emoji = text.find('😀').unwrap();
        assert_eq!(map.offset(text, Position::new(1, 2)), emoji);
        // Past the line's end: before its `\r\n`.
        assert_eq!(map.offset(text, Position::new(1, 99)), x + 1);
        assert_eq!(map.position(text, text.len()), Position::new(2, 4));
        assert_eq!(map.offset(text, Position::new(9, 0)), text.len());
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        let text = "a\rb";
        let map = LineMap::new(text);
        assert_eq!(map.position(text, 2), Position::new(1, 0));
    }

    #[test]
    fn file_uris_become_paths() {
        let uri: Uri = "file:///tmp/a%20b/p.stp".parse().unwrap();
        assert_eq!(uri_to_path(&uri), Some(PathBuf::from("/tmp/a b/p.stp")));
        let remote: Uri = "file://host/x.stp".parse().unwrap();
        assert_eq!(uri_to_path(&remote), None);
        let untitled: Uri = "untitled:Untitled-1".parse().unwrap();
        assert_eq!(uri_to_path(&untitled), None);
    }
}
