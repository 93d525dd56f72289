//! `let` bindings and `${NAME}` interpolation.
//!
//! A `let` string is interpolated once, where it is defined, from the
//! `let`s before it and the environment; a string that uses it reads that
//! text. Interpolated text is capped at [`MAX_TEXT`] characters, so that a
//! chain of lets that each double the one before fails with a clear
//! message instead of exhausting memory.

use std::collections::HashSet;

use super::{Checker, DATA_ENV};
use crate::diag::{Diag, Span};
use crate::syntax::ast;
use crate::syntax::interp::{interpolate, InterpError};

/// Longest interpolated string (paths and names are far shorter).
pub(crate) const MAX_TEXT: usize = 64 * 1024;

impl Checker<'_> {
    /// Record a `let`; a string value is interpolated now.
    pub(crate) fn define_let(&mut self, name: &ast::Ident, value: &ast::Value) {
        self.lets.insert(name.name.clone(), value.clone());
        if let ast::ValueKind::Str(s) = &value.kind {
            let text = self.interpolate_inner(s, value.span, false);
            if let Some(t) = &text {
                if t.chars().count() > MAX_TEXT {
                    self.err(
                        Diag::error(
                            "interpolation-too-long",
                            value.span,
                            format!(
                                "`{}` grows to more than {MAX_TEXT} characters when its variables are filled in",
                                name.name
                            ),
                        )
                        .help("a `let` that repeats another's value grows with every step; shorten the chain"),
                    );
                    self.let_text.insert(name.name.clone(), None);
                    return;
                }
            }
            self.let_text.insert(name.name.clone(), text);
        }
    }

    /// Interpolate a string with `let` values and the environment, marking
    /// the lets it reads (and those they read) as used.
    pub(crate) fn interpolate(&mut self, s: &str, span: Span) -> Option<String> {
        self.interpolate_inner(s, span, true)
    }

    fn interpolate_inner(&mut self, s: &str, span: Span, mark: bool) -> Option<String> {
        if mark {
            self.mark_lets_used(s);
        }
        // A let that failed was reported where it is defined.
        if lets_in(s)
            .iter()
            .any(|n| matches!(self.let_text.get(n), Some(None)))
        {
            return None;
        }
        let lets = &self.let_text;
        let env = &self.opts.env;
        let read = std::cell::RefCell::new(Vec::new());
        let lookup = |name: &str| match lets.get(name) {
            Some(t) => t.clone(),
            None => {
                let v = env.get(name).cloned();
                if let Some(v) = &v {
                    read.borrow_mut().push((name.to_string(), v.clone()));
                }
                v
            }
        };
        let result = interpolate(s, &lookup);
        self.out.env_used.extend(read.into_inner());
        match result {
            Ok(v) => Some(v),
            Err(InterpError::Unset(var)) => {
                let help = if var == DATA_ENV {
                    format!(
                        "set {DATA_ENV} or pass --data-root DIR, or give a default: `${{{DATA_ENV}:-DIR}}`"
                    )
                } else {
                    format!("set it in the environment, or give a default: `${{{var}:-DEFAULT}}`")
                };
                self.err(
                    Diag::error(
                        "unset-variable",
                        span,
                        format!("variable `{var}` is not set"),
                    )
                    .help(help),
                );
                None
            }
            Err(InterpError::Malformed(m)) => {
                let d = Diag::error("bad-interpolation", span, format!("bad interpolation: {m}"))
                    .help("write `${NAME}` or `${NAME:-default}`; `\\$` is a literal dollar");
                self.err(d);
                None
            }
        }
    }

    /// Mark the lets `s` reads, and the lets they read, as used.
    fn mark_lets_used(&mut self, s: &str) {
        let mut todo = lets_in(s);
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(b) = self.bindings.get_mut(&name) {
                b.used = true;
            }
            if let Some(ast::Value {
                kind: ast::ValueKind::Str(inner),
                ..
            }) = self.lets.get(&name)
            {
                todo.extend(lets_in(inner));
            }
        }
    }
}

/// Names referenced as `${name}` in a string.
pub(crate) fn lets_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        out.push(rest[..end].to_string());
    }
    out
}

/// Every name a `${name}` anywhere in the source refers to.
pub(crate) fn referenced_names(src: &str) -> HashSet<&str> {
    let mut out = HashSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        out.insert(&rest[..end]);
    }
    out
}
