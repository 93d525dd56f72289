//! Diagnostics in the formats CI systems display: GitHub Actions workflow
//! commands (`::error file=...,line=...::message`, shown on the pull
//! request's diff) and SARIF 2.1.0 (code-scanning uploads, IDE viewers).

use serde_json::{json, Value};

use crate::diag::{Diag, Level, LineIndex, Report};

/// GitHub's escaping of a workflow command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a workflow command's property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

/// The message with its help line, as one text.
fn full_message(d: &Diag) -> String {
    match &d.help {
        Some(h) => format!("{}\nhelp: {h}", d.message),
        None => d.message.clone(),
    }
}

/// One `::error`/`::warning` line per diagnostic of `report`, for the file
/// as `path` names it (GitHub resolves it from the workspace root).
pub fn github(report: &Report, path: &str) -> String {
    let index = LineIndex::new(&report.source);
    let mut out = String::new();
    for d in &report.diags {
        let (line, col) = index.line_col(&report.source, d.span.start);
        let (end_line, end_col) = index.line_col(&report.source, d.span.end);
        let mut props = vec![
            format!("file={}", escape_property(path)),
            format!("line={line}"),
            format!("col={col}"),
            format!("endLine={end_line}"),
        ];
        if end_line == line {
            props.push(format!("endColumn={end_col}"));
        }
        props.push(format!(
            "title={}",
            escape_property(&format!("stpipe {}", d.code))
        ));
        out.push_str(&format!(
            "::{} {}::{}\n",
            level_word(d.level),
            props.join(","),
            escape_data(&full_message(d))
        ));
    }
    out
}

/// A SARIF region of a span.
fn region(report: &Report, index: &LineIndex, start: usize, end: usize) -> Value {
    let (l, c) = index.line_col(&report.source, start);
    let (el, ec) = index.line_col(&report.source, end);
    json!({ "startLine": l, "startColumn": c, "endLine": el, "endColumn": ec })
}

/// A SARIF 2.1.0 log of every report, `(report, path)` pairs, and of the
/// files that could not be read, `(path, error)`.
pub fn sarif(reports: &[(Report, String)], unreadable: &[(String, String)]) -> Value {
    let mut rules: Vec<&'static str> = Vec::new();
    let mut results = Vec::new();
    for (report, path) in reports {
        let index = LineIndex::new(&report.source);
        for d in &report.diags {
            if !rules.contains(&d.code) {
                rules.push(d.code);
            }
            let related: Vec<Value> = d
                .also
                .iter()
                .enumerate()
                .map(|(i, (sp, label))| {
                    json!({
                        "id": i,
                        "message": { "text": label },
                        "physicalLocation": {
                            "artifactLocation": { "uri": path },
                            "region": region(report, &index, sp.start, sp.end),
                        },
                    })
                })
                .collect();
            results.push(json!({
                "ruleId": d.code,
                "level": level_word(d.level),
                "message": { "text": full_message(d) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": path },
                        "region": region(report, &index, d.span.start, d.span.end),
                    },
                }],
                "relatedLocations": related,
            }));
        }
    }
    for (path, e) in unreadable {
        if !rules.contains(&"unreadable-file") {
            rules.push("unreadable-file");
        }
        results.push(json!({
            "ruleId": "unreadable-file",
            "level": "error",
            "message": { "text": format!("cannot read {path}: {e}") },
            "locations": [{ "physicalLocation": { "artifactLocation": { "uri": path } } }],
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "stpipe",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| json!({ "id": r })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_github_documents() {
        assert_eq!(escape_data("50% a\nb\r"), "50%25 a%0Ab%0D");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
