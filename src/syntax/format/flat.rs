//! The one-line form of a construct: what the printer emits when it fits,
//! and what it measures to decide.

use pest::iterators::Pair;

use super::Rule;

/// The canonical one-line text of `p`, tokens as written. Comments are
/// not part of it: the printer uses it only for constructs without any.
pub(super) fn flat(p: &Pair<Rule>) -> String {
    flat_in(p, false)
}

/// [`flat`], inside the arguments of a column function when `as_written`:
/// there a trailing comma is meaningful (`col(x,)` is not a column
/// function but a plain call, `col(x)` is), so it is kept.
pub(super) fn flat_in(p: &Pair<Rule>, as_written: bool) -> String {
    let mut out = String::new();
    write(p, &mut out, as_written);
    out
}

/// Whether the bracketed construct `p` ends with a trailing comma.
pub(super) fn trailing_comma(p: &Pair<Rule>) -> bool {
    let s = p.as_str();
    let inner = &s[..s.len().saturating_sub(1)];
    p.clone().into_inner().next().is_some() && inner.trim_end().ends_with(',')
}

/// Width in columns (characters) of a text.
pub(super) fn width(s: &str) -> usize {
    s.chars().count()
}

/// The word closing `every N steps`, as written (`step` or `steps`).
pub(super) fn steps_word(every: &Pair<Rule>) -> &'static str {
    if every.as_str().ends_with("steps") {
        "steps"
    } else {
        "step"
    }
}

fn join(p: &Pair<Rule>, sep: &str, out: &mut String, kc: bool) {
    for (i, c) in p.clone().into_inner().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        write(&c, out, kc);
    }
}

fn bracketed(p: &Pair<Rule>, open: &str, close: &str, out: &mut String, kc: bool) {
    out.push_str(open);
    join(p, ", ", out, kc);
    if kc && trailing_comma(p) {
        out.push(',');
    }
    out.push_str(close);
}

/// `name: value`, or `value` alone (a positional argument).
fn keyed(p: &Pair<Rule>, out: &mut String, kc: bool) {
    let parts: Vec<Pair<Rule>> = p.clone().into_inner().collect();
    for (i, c) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        write(c, out, kc);
    }
}

/// `kc`: keep trailing commas (inside a column function's arguments).
fn write(p: &Pair<Rule>, out: &mut String, kc: bool) {
    match p.as_rule() {
        Rule::args => bracketed(p, "(", ")", out, kc),
        Rule::list => bracketed(p, "[", "]", out, kc),
        Rule::map => bracketed(p, "{", "}", out, kc),
        Rule::columns if p.clone().into_inner().next().is_none() => out.push_str("{}"),
        Rule::columns => bracketed(p, "{ ", " }", out, kc),
        Rule::call | Rule::module => join(p, "", out, kc),
        Rule::col_call => {
            let mut it = p.clone().into_inner();
            if let Some(name) = it.next() {
                out.push_str(name.as_str());
            }
            out.push('(');
            for (i, c) in it.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(&c, out, true);
            }
            out.push(')');
        }
        Rule::arg | Rule::map_entry | Rule::column | Rule::setting => keyed(p, out, kc),
        Rule::col_expr => col_expr(p, out, kc),
        Rule::chain => join(p, " -> ", out, kc),
        Rule::data_expr => join(p, " ", out, kc),
        Rule::limit => {
            out.push_str("limit ");
            join(p, "", out, kc);
        }
        Rule::every => {
            out.push_str("every ");
            join(p, "", out, kc);
            out.push(' ');
            out.push_str(steps_word(p));
        }
        Rule::metric_ref => join(p, ".", out, kc),
        Rule::evaluate_item => {
            out.push_str("evaluate: ");
            join(p, " ", out, kc);
        }
        Rule::checkpoint_item => {
            out.push_str("checkpoint: ");
            join(p, ", keep ", out, kc);
        }
        // Tokens: names, numbers, strings, operators, exactly as written.
        _ => out.push_str(p.as_str()),
    }
}

/// Terms and operators with a space either side; a parenthesised
/// sub-expression keeps its parentheses.
fn col_expr(p: &Pair<Rule>, out: &mut String, kc: bool) {
    for (i, c) in p.clone().into_inner().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if c.as_rule() == Rule::col_expr {
            out.push('(');
            col_expr(&c, out, kc);
            out.push(')');
        } else {
            write(&c, out, kc);
        }
    }
}
