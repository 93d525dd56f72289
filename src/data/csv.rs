//! `csv`: delimiter-separated files (comma by default; any one character),
//! read by [`super::records`].

use super::{internal, ArgProblem, Format, ReaderEntry, PATH, SKIP_BAD_ROWS};
use crate::registry::{choices::Quoting, opt, ArgType::*, Args, Component, Family};

pub const ENTRY: ReaderEntry = ReaderEntry {
    spec: Component {
        name: "csv",
        family: Family::Reader,
        doc: "A delimiter-separated file (comma by default).",
        args: &[
            PATH,
            SKIP_BAD_ROWS,
            opt("header", Bool, "true", "the first line names the columns"),
            opt(
                "quoting",
                Choice(Quoting::NAMES),
                "csv",
                "`csv`: fields may be double-quoted; `none`: quotes are ordinary characters",
            ),
            opt(
                "delimiter",
                Str,
                "\",\"",
                "the one-character field separator (`\\t` for a tab)",
            ),
            opt(
                "collapse",
                Bool,
                "false",
                "runs of the delimiter separate one pair of fields, and delimiters at a line's start or end are ignored: whitespace-separated files such as TREC qrels (`delimiter: \" \", collapse: true`); needs `quoting: none`",
            ),
        ],
        ..Component::BASE
    },
    format,
};

fn format(a: &Args) -> Result<Format, ArgProblem> {
    let d = a
        .str("delimiter")
        .map_err(|e| internal("delimiter", e))?
        .replace("\\t", "\t");
    let mut it = d.chars();
    let delimiter = match (it.next(), it.next()) {
        (Some(c), None) if c != '"' && c != '\n' && c != '\r' => c,
        _ => {
            return Err(ArgProblem {
                arg: "delimiter",
                code: "bad-delimiter",
                message: format!("the delimiter must be one character, not `{d}`"),
                help: "e.g. `delimiter: \";\"`; use tsv(...) for tabs".into(),
            })
        }
    };
    let quoting = a
        .choice::<Quoting>("quoting")
        .map_err(|e| internal("quoting", e))?
        == Quoting::Csv;
    let collapse = a.bool("collapse").map_err(|e| internal("collapse", e))?;
    if collapse && quoting {
        return Err(ArgProblem {
            arg: "collapse",
            code: "argument-conflict",
            message: "`collapse: true` needs `quoting: none` (an empty quoted field would vanish)"
                .into(),
            help: "add `quoting: none`".into(),
        });
    }
    Ok(Format::Delimited {
        delimiter,
        header: a.bool("header").map_err(|e| internal("header", e))?,
        quoting,
        collapse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ArgValue;

    #[test]
    fn delimiters() {
        let args = |d: &str| Args::defaults(&ENTRY.spec).with("delimiter", ArgValue::Str(d.into()));
        assert!(matches!(
            format(&args(";")),
            Ok(Format::Delimited { delimiter: ';', .. })
        ));
        assert!(matches!(
            format(&args("\\t")),
            Ok(Format::Delimited {
                delimiter: '\t',
                ..
            })
        ));
        assert_eq!(format(&args(";;")).unwrap_err().code, "bad-delimiter");
        assert_eq!(format(&args("\"")).unwrap_err().code, "bad-delimiter");
    }
}
