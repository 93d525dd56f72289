//! `tsv`: tab-separated files (the STS benchmark, SNLI, MRPC), read by
//! [`super::records`].

use super::{internal, ArgProblem, Format, ReaderEntry, PATH, SKIP_BAD_ROWS};
use crate::registry::{choices::Quoting, opt, ArgType::*, Args, Component, Family};

pub const ENTRY: ReaderEntry = ReaderEntry {
    spec: Component {
        name: "tsv",
        family: Family::Reader,
        doc: "A tab-separated file. Columns are chosen in the column block by index (`col(0)`) or, with a header, by name (`col(\"premise\")`).",
        args: &[
            PATH,
            SKIP_BAD_ROWS,
            opt("header", Bool, "true", "the first line names the columns"),
            opt("quoting", Choice(Quoting::NAMES), "csv", "`csv`: fields may be double-quoted, `\"\"` escapes a quote; `none`: quotes are ordinary characters"),
        ],
        ..Component::BASE
    },
    format,
};

fn format(a: &Args) -> Result<Format, ArgProblem> {
    Ok(Format::Delimited {
        delimiter: '\t',
        header: a.bool("header").map_err(|e| internal("header", e))?,
        quoting: a
            .choice::<Quoting>("quoting")
            .map_err(|e| internal("quoting", e))?
            == Quoting::Csv,
        collapse: false,
    })
}
