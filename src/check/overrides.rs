//! `--set NAME=VALUE`: command-line values for a pipeline's `let`
//! bindings. The value replaces the text of the binding's value in the
//! source before anything is checked, so it is checked like the file
//! itself (its type where the binding is used, its range) and the
//! diagnostics show it in place; a name the file does not bind is a
//! diagnostic, not a silently ignored flag.

use crate::diag::{Diag, Span};
use crate::syntax::ast::StmtKind;

/// One `NAME=VALUE` of the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub name: String,
    /// The value as `.stp` text (`3e-5`, `"a string"`, `[1, 2]`).
    pub value: String,
}

/// Parse `NAME=VALUE` (clap's value parser for `--set`).
pub fn parse_override(s: &str) -> Result<Override, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{name}` is not a binding name"));
    }
    if value.trim().is_empty() {
        return Err(format!("`--set {name}=` has no value"));
    }
    Ok(Override {
        name: name.to_string(),
        value: value.trim().to_string(),
    })
}

/// One `--sweep NAME=V1,V2,...`: the values a binding takes in turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub name: String,
    pub values: Vec<String>,
}

impl Sweep {
    /// The override of the `i`-th value.
    pub fn point(&self, i: usize) -> Override {
        Override {
            name: self.name.clone(),
            value: self.values[i].clone(),
        }
    }
}

/// Parse `NAME=V1,V2,...` (clap's value parser for `--sweep`): values are
/// split at commas outside brackets, braces and strings, so that
/// `dims=[64, 128],[256]` sweeps two lists.
pub fn parse_sweep(s: &str) -> Result<Sweep, String> {
    let o = parse_override(s)?;
    let mut values = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut cur) = (0i32, false, false, String::new());
    for c in o.value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '[' | '{' | '(' if !in_str => depth += 1,
            ']' | '}' | ')' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                values.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    values.push(cur.trim().to_string());
    if let Some(i) = values.iter().position(String::is_empty) {
        return Err(format!("`--sweep {}`: value {} is empty", o.name, i + 1));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(v) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(format!("`--sweep {}`: `{v}` is given twice", o.name));
    }
    Ok(Sweep {
        name: o.name,
        values,
    })
}

/// The source with every override's value in place of its binding's, and
/// the diagnostics of overrides that name no binding or are not values.
/// A source that does not parse is returned as it is (its syntax errors
/// come first).
pub fn apply(src: &str, overrides: &[Override]) -> (String, Vec<Diag>) {
    let Ok(file) = crate::syntax::parse(src) else {
        return (src.to_string(), Vec::new());
    };
    let lets: Vec<(&str, Span)> = file
        .stmts
        .iter()
        .filter_map(|s| match &s.kind {
            StmtKind::Let { name, value } => Some((name.name.as_str(), value.span)),
            _ => None,
        })
        .collect();
    let mut diags = Vec::new();
    let mut edits: Vec<(Span, &str)> = Vec::new();
    for o in overrides {
        let Some(&(_, span)) = lets.iter().find(|(n, _)| *n == o.name) else {
            let names: Vec<&str> = lets.iter().map(|(n, _)| *n).collect();
            let help = if names.is_empty() {
                "the file has no `let` bindings; `--set` gives a `let NAME = VALUE` another value"
                    .to_string()
            } else {
                format!("its bindings: {}", names.join(", "))
            };
            diags.push(
                Diag::error(
                    "unknown-override",
                    Span::new(0, 0),
                    format!("`--set {}`: the file has no `let {}`", o.name, o.name),
                )
                .help(help),
            );
            continue;
        };
        if let Err(problem) = single_value(&o.value) {
            diags.push(
                Diag::error(
                    "bad-override",
                    span,
                    format!("`--set {}={}` is not a value: {problem}", o.name, o.value),
                )
                .help("write the value as in the file: `3e-5`, `\"text\"`, `[0.9, 0.999]`"),
            );
            continue;
        }
        // A later `--set` of the same name wins.
        edits.retain(|(s, _)| *s != span);
        edits.push((span, &o.value));
    }
    edits.sort_by_key(|(s, _)| std::cmp::Reverse(s.start));
    let mut out = src.to_string();
    for (span, value) in edits {
        out.replace_range(span.start..span.end, value);
    }
    (out, diags)
}

/// Whether `text` parses as exactly one value.
fn single_value(text: &str) -> Result<(), String> {
    if text.contains('\n') || text.contains('#') {
        return Err("a value is one line without comments".into());
    }
    match crate::syntax::parse(&format!("let v = {text}")) {
        Ok(f) if f.stmts.len() == 1 => Ok(()),
        Ok(_) => Err("it is more than one value".into()),
        Err(d) => Err(d
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_else(|| "it does not parse".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Override {
        parse_override(s).unwrap()
    }

    #[test]
    fn values_replace_the_bindings_text() {
        let src = "let lr = 2e-5\nlet bs = 16 # batch\nlet name = \"a\"\n";
        let (out, d) = apply(src, &[o("bs=32"), o("lr=3e-5"), o("bs=64")]);
        assert!(d.is_empty());
        assert_eq!(
            out,
            "let lr = 3e-5\nlet bs = 64 # batch\nlet name = \"a\"\n"
        );
    }

    #[test]
    fn unknown_names_and_non_values_are_diagnostics() {
        let (_, d) = apply("let lr = 1\n", &[o("lrr=2"), o("lr=[1,")]);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].code, "unknown-override");
        assert!(d[0].help.as_deref().unwrap().contains("lr"));
        assert_eq!(d[1].code, "bad-override");
        assert!(parse_override("lr").is_err());
        assert!(parse_override("a b=1").is_err());
        assert!(parse_override("lr=").is_err());
    }
}
