//! Syntax errors: pest's errors as diagnostics, and the nesting guard.

use super::parse::Rule;
use crate::diag::{Diag, Span};

/// The reserved words: the statement keywords first, then the booleans.
pub const KEYWORDS: &[&str] = &[
    "let",
    "model",
    "data",
    "objective",
    "evaluator",
    "train",
    "save",
    "expect",
    "true",
    "false",
];

/// The words that start a statement.
pub const STATEMENTS: &[&str] = KEYWORDS.split_at(8).0;

/// Deepest bracket nesting accepted, so that no input exhausts the stack.
const MAX_NESTING: usize = 64;

pub(super) fn check_nesting(src: &str) -> Result<(), Box<Diag>> {
    let mut depth = 0usize;
    for (i, c, class) in super::lex::classify(src) {
        if class != super::lex::Class::Code {
            continue;
        }
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Box::new(
                        Diag::error(
                            "syntax",
                            Span::new(i, i + 1),
                            format!("brackets nested more than {MAX_NESTING} deep"),
                        )
                        .help("flatten the expression"),
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::let_stmt
        | Rule::model_stmt
        | Rule::data_stmt
        | Rule::objective_stmt
        | Rule::evaluator_stmt
        | Rule::train_stmt
        | Rule::save_stmt
        | Rule::expect_stmt => {
            "a statement (let, model, data, objective, evaluator, train, save, expect)"
        }
        Rule::ident | Rule::key | Rule::stage_name => "a name",
        Rule::string | Rule::str_inner => "a string",
        Rule::number | Rule::percent => "a number",
        Rule::boolean => "true or false",
        Rule::list => "a list",
        Rule::map => "a map",
        Rule::call | Rule::module => "a component",
        Rule::args => "`(`",
        Rule::arith_op => "an operator",
        Rule::cmp_op => "a comparison (>=, <=, >, <)",
        Rule::columns => "a column block `{ ... }`",
        Rule::column => "a column `name: expr`",
        Rule::col_expr | Rule::col_call => "a column expression",
        Rule::limit => "`limit`",
        Rule::best_by => "`best by`",
        Rule::metric_ref => "EVALUATOR.METRIC",
        Rule::every => "`every N steps`",
        Rule::evaluate_item | Rule::checkpoint_item | Rule::setting => "a stage setting",
        Rule::map_entry => "a map entry `key: value`",
        Rule::arg => "an argument",
        Rule::chain => "a module chain",
        Rule::EOI => "end of file",
        _ => return None,
    })
}

pub(super) fn syntax_error(src: &str, e: pest::error::Error<Rule>) -> Diag {
    let (mut start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((a, b)) => (a, b),
    };
    // Literal tokens expected further on than the rules pest reports
    // (`,` or `)` after an argument, say) make a more precise message.
    let mut tokens: Vec<String> = Vec::new();
    if let Some(a) = e.parse_attempts() {
        if a.max_position > start {
            for t in a.expected_tokens() {
                let token = t.to_string();
                let punct = !token.is_empty()
                    && token != "#"
                    && token.chars().all(|c| c.is_ascii_punctuation() && c != '_');
                if punct {
                    let t = format!("`{token}`");
                    if !tokens.contains(&t) {
                        tokens.push(t);
                    }
                }
            }
            if !tokens.is_empty() {
                start = a.max_position;
            }
        }
    }
    let end = if tokens.is_empty() { end } else { start };
    let start = start.min(src.len());
    // Point at the whole offending token when there is one.
    let mut end = end.max(start).min(src.len());
    if end == start {
        end = src[start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| start + i)
            .unwrap_or(src.len());
        if end == start {
            end = src[start..]
                .chars()
                .next()
                .map(|c| start + c.len_utf8())
                .unwrap_or(start);
        }
    }
    let mut expected: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if let (true, pest::error::ErrorVariant::ParsingError { positives, .. }) =
        (tokens.is_empty(), &e.variant)
    {
        for r in positives {
            if let Some(n) = rule_name(r) {
                if !expected.contains(&n) {
                    expected.push(n);
                }
            }
        }
    }
    let found = if start >= src.len() {
        "end of file".to_string()
    } else {
        format!("`{}`", &src[start..end])
    };
    let msg = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", expected.join(" or "))
    };
    let word = &src[start..end];
    let msg = if expected.contains(&"a name") && KEYWORDS.contains(&word) {
        format!("`{word}` is a keyword and cannot be used as a name")
    } else {
        msg
    };
    let statement = expected.iter().any(|e| e.starts_with("a statement"));
    let help = match crate::registry::did_you_mean(word, STATEMENTS.iter().copied()) {
        Some(k) if statement && k != word => format!("did you mean `{k}`?"),
        _ => "see docs/language.md for the syntax of pipeline files".to_string(),
    };
    Diag::error("syntax", Span::new(start, end), msg)
        .label("here")
        .help(help)
}
