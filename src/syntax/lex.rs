//! The lexical classes of a pipeline's characters (code, string, comment)
//! as the grammar defines them, for the passes that read the text before
//! or beside the parser: the nesting guard and the formatter's comments.

/// What a character belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Code,
    /// Inside a string, its quotes included.
    Str,
    /// From `#` to the end of its line (the newline excluded).
    Comment,
}

/// Every character of `src` with its byte offset and class. A `#` starts
/// a comment anywhere outside a string; inside one, `\` escapes the next
/// character (a newline too, as `str_inner` allows), and an unescaped
/// newline ends it as the grammar does.
pub(crate) fn classify(src: &str) -> impl Iterator<Item = (usize, char, Class)> + '_ {
    let (mut in_str, mut in_comment, mut escape) = (false, false, false);
    src.char_indices().map(move |(i, c)| {
        if in_comment {
            if c != '\n' {
                return (i, c, Class::Comment);
            }
            in_comment = false;
            return (i, c, Class::Code);
        }
        if in_str {
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' || c == '\n' {
                in_str = false;
            }
            return (i, c, Class::Str);
        }
        match c {
            '#' => {
                in_comment = true;
                (i, c, Class::Comment)
            }
            '"' => {
                in_str = true;
                (i, c, Class::Str)
            }
            _ => (i, c, Class::Code),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_hide_hashes_and_comments_hide_quotes() {
        let src = "a \"#x\\\"\" # \"q\"\nb";
        let classes: String = classify(src)
            .map(|(_, _, k)| match k {
                Class::Code => 'c',
                Class::Str => 's',
                Class::Comment => '#',
            })
            .collect();
        assert_eq!(classes, "ccssssssc#####cc");
    }
}
