//! Data readers (files) and transforms (sources built from sources).

use super::{opt, req, ArgSpec, ArgType::*, Component, Family};

pub const QUOTING: &[&str] = &["csv", "none"];

pub const ALL: &[Component] = &[
    Component {
        name: "tsv",
        family: Family::Reader,
        doc: "A tab-separated file. Columns are chosen in the column block by index (`col(0)`) or, with a header, by name (`col(\"premise\")`).",
        args: &[
            req("path", Str, "file path; relative paths start at the pipeline file's directory"),
            opt("skip_bad_rows", Bool, "false", "count and skip rows that cannot be read (bad number, missing field, unknown label) instead of stopping the run"),
            opt("header", Bool, "true", "the first line names the columns"),
            opt("quoting", Choice(QUOTING), "csv", "`csv`: fields may be double-quoted, `\"\"` escapes a quote; `none`: quotes are ordinary characters"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "csv",
        family: Family::Reader,
        doc: "A delimiter-separated file (comma by default).",
        args: &[
            req("path", Str, "file path; relative paths start at the pipeline file's directory"),
            opt("skip_bad_rows", Bool, "false", "count and skip rows that cannot be read (bad number, missing field, unknown label) instead of stopping the run"),
            opt("header", Bool, "true", "the first line names the columns"),
            opt("quoting", Choice(QUOTING), "csv", "`csv`: fields may be double-quoted; `none`: quotes are ordinary characters"),
            opt("delimiter", Str, "\",\"", "the one-character field separator"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "jsonl",
        family: Family::Reader,
        doc: "JSON Lines: one JSON object per line; columns are chosen by key (`col(\"text\")`).",
        args: &[
            req("path", Str, "file path; relative paths start at the pipeline file's directory"),
            opt("skip_bad_rows", Bool, "false", "count and skip rows that cannot be read (bad number, missing field, unknown label) instead of stopping the run"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "smart",
        family: Family::Reader,
        doc: "SMART records (`.I`, `.T`, `.A`, `.B`, `.W` markers), as in the Cranfield collection. Fields, chosen by name: `id`, `title`, `author`, `biblio`, `text`.",
        args: &[
            req("path", Str, "file path; relative paths start at the pipeline file's directory"),
            opt("skip_bad_rows", Bool, "false", "count and skip rows that cannot be read (bad number, missing field, unknown label) instead of stopping the run"),
            opt("ids", Choice(&["file", "position"]), "file", "`file`: ids from `.I`; `position`: 1, 2, 3... in file order (Cranfield queries are judged by position)"),
        ],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "zip",
        family: Family::Transform,
        doc: "Joins line-aligned sources row by row: the columns of the first source, then those of the next (names must differ). Stops at the shortest source.",
        args: &[ArgSpec {
            name: "sources",
            ty: Data,
            required: true,
            default: None,
            variadic: true,
            doc: "two or more data sources",
        }],
        columns: None,
        metrics: &[],
    },
    Component {
        name: "triplets",
        family: Family::Transform,
        doc: "Turns labelled pairs into (anchor, positive, negative) triplets by grouping rows on an anchor column (e.g. NLI premise): every positive of an anchor is paired with one of its negatives. Produces columns `anchor`, `positive`, `negative`.",
        args: &[
            req("source", Data, "the labelled pairs"),
            req("by", ColumnName, "the anchor column rows are grouped on"),
            req("positive", LabelValue, "label of positive rows"),
            req("negative", LabelValue, "label of negative rows"),
            opt("text", ColumnName, "the first text column that is not `by`", "the column holding the candidate texts"),
            opt("label", ColumnName, "label", "the label column"),
        ],
        columns: None,
        metrics: &[],
    },
];
