//! `smart`: the SMART format of classic IR collections (Cranfield): `.I`
//! starts a record, `.T .A .B .W` start its fields.

use super::{internal, ArgProblem, Format, ReaderEntry, PATH, SKIP_BAD_ROWS};
use crate::registry::{choices::SmartIds, opt, ArgType::*, Args, Component, Family};

pub const ENTRY: ReaderEntry = ReaderEntry {
    spec: Component {
        name: "smart",
        family: Family::Reader,
        doc: "SMART records (`.I`, `.T`, `.A`, `.B`, `.W` markers), as in the Cranfield collection. Fields, chosen by name: `id`, `title`, `author`, `biblio`, `text`.",
        args: &[
            PATH,
            SKIP_BAD_ROWS,
            opt("ids", Choice(SmartIds::NAMES), "file", "`file`: ids from `.I`; `position`: 1, 2, 3... in file order (Cranfield queries are judged by position)"),
        ],
        ..Component::BASE
    },
    format,
};

fn format(a: &Args) -> Result<Format, ArgProblem> {
    Ok(Format::Smart {
        ids_by_position: a
            .choice::<SmartIds>("ids")
            .map_err(|e| internal("ids", e))?
            == SmartIds::Position,
    })
}

/// The fields of a SMART record, in column order.
pub const SMART_FIELDS: &[&str] = &["id", "title", "author", "biblio", "text"];

/// The first `max` SMART records: `.I` starts a record, `.T .A .B .W` start
/// fields whose text runs until the next marker.
pub fn smart(text: &str, max: usize, ids_by_position: bool) -> Vec<Vec<String>> {
    let mut recs: Vec<Vec<String>> = Vec::new();
    let mut field: Option<usize> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(".I") {
            if recs.len() == max {
                break;
            }
            let id = if ids_by_position {
                (recs.len() + 1).to_string()
            } else {
                rest.trim().to_string()
            };
            let mut r = vec![String::new(); SMART_FIELDS.len()];
            r[0] = id;
            recs.push(r);
            field = None;
            continue;
        }
        let marker = match line {
            ".T" => Some(1),
            ".A" => Some(2),
            ".B" => Some(3),
            ".W" => Some(4),
            _ => None,
        };
        if marker.is_some() {
            field = marker;
            continue;
        }
        if let (Some(f), Some(r)) = (field, recs.last_mut()) {
            if !r[f].is_empty() {
                r[f].push(' ');
            }
            r[f].push_str(line.trim());
        }
    }
    recs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_position_with_crlf() {
        let s = smart(
            ".I 001\r\n.W\r\nwhat is\r\nlift .\r\n.I 004\r\n.T\r\nt\r\n",
            5,
            true,
        );
        assert_eq!(s[0], vec!["1", "", "", "", "what is lift ."]);
        assert_eq!(s[1][0], "2");
        assert_eq!(s[1][1], "t");
        let s = smart(".I 7\n.T\nx\n", 5, false);
        assert_eq!(s[0][0], "7");
    }
}
