//! Comments recovered from the source text: the grammar's `COMMENT` rule
//! is silent, so the pairs do not carry them.

/// One comment: the byte range of its text, from `#` to the end of its
/// line (the newline excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Comment {
    pub start: usize,
    pub end: usize,
}

/// Every comment of a file that parses, in order (see
/// [`crate::syntax::lex::classify`] for where comments start and end).
pub(super) fn scan(src: &str) -> Vec<Comment> {
    use crate::syntax::lex::{classify, Class};
    let mut out: Vec<Comment> = Vec::new();
    let mut open: Option<usize> = None;
    for (i, _, class) in classify(src) {
        match (class, open) {
            (Class::Comment, None) => open = Some(i),
            (Class::Comment, Some(_)) => {}
            (_, Some(s)) => {
                out.push(Comment { start: s, end: i });
                open = None;
            }
            (_, None) => {}
        }
    }
    if let Some(s) = open {
        out.push(Comment {
            start: s,
            end: src.len(),
        });
    }
    out
}

/// Whether a comment is alone on its line (only whitespace before it), as
/// opposed to trailing code.
pub(super) fn own_line(src: &str, c: Comment) -> bool {
    let line_start = src[..c.start].rfind('\n').map_or(0, |i| i + 1);
    src[line_start..c.start].trim().is_empty()
}

/// Whether whitespace `gap` (comments excluded) holds a blank line.
pub(super) fn blank(gap: &str) -> bool {
    gap.bytes().filter(|b| *b == b'\n').count() >= 2
}

/// The first comment at or after `at`.
pub(super) fn first_from(comments: &[Comment], at: usize) -> usize {
    comments.partition_point(|c| c.start < at)
}

/// Whether some comment starts in `a..b`.
pub(super) fn any_in(comments: &[Comment], a: usize, b: usize) -> bool {
    comments
        .get(first_from(comments, a))
        .is_some_and(|c| c.start < b)
}

/// Whether the stretch `a..b` between two tokens (whitespace and comments)
/// holds a blank line, before, between or after its comments.
pub(super) fn gap_has_blank(src: &str, comments: &[Comment], a: usize, b: usize) -> bool {
    let mut i = a;
    for c in &comments[first_from(comments, a)..] {
        if c.start >= b {
            break;
        }
        if blank(&src[i..c.start]) {
            return true;
        }
        i = c.end;
    }
    i < b && blank(&src[i..b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_strings_are_not_comments() {
        let src = "let a = \"x # y\" # real\nlet b = \"\\\"#\" #2";
        let c = scan(src);
        let texts: Vec<&str> = c.iter().map(|c| &src[c.start..c.end]).collect();
        assert_eq!(texts, ["# real", "#2"]);
        assert!(!own_line(src, c[0]));
    }

    #[test]
    fn own_line_and_blank_gaps() {
        let src = "a\n  # c\n\nb";
        let c = scan(src);
        assert!(own_line(src, c[0]));
        assert!(gap_has_blank(src, &c, 1, src.len() - 1));
        assert!(!gap_has_blank(src, &c, 1, c[0].end));
        assert!(any_in(&c, 0, src.len()));
        assert!(!any_in(&c, c[0].end, src.len()));
    }
}
