//! Bindings (`let`, `model`, `data`, `objective`, `evaluator` names):
//! declared in a first pass so that duplicates and forward references
//! are reported precisely, resolved by kind at every use (with
//! did-you-mean), and reported when never used.

use super::{lets, BindKind, Binding, Checker};
use crate::diag::{Diag, Span};
use crate::syntax::ast::{self, StmtKind};

impl Checker<'_> {
    /// The first pass: every binding, so that duplicates and forward
    /// references are reported precisely.
    pub(super) fn declare_bindings(&mut self, file: &ast::File) {
        for s in &file.stmts {
            let (name, kind) = match &s.kind {
                StmtKind::Let { name, .. } => (name, BindKind::Let),
                StmtKind::Model { name, .. } => (name, BindKind::Model),
                StmtKind::Data { name, .. } => (name, BindKind::Data),
                StmtKind::Objective { name, .. } => (name, BindKind::Objective),
                StmtKind::Evaluator { name, .. } => (name, BindKind::Evaluator),
                _ => continue,
            };
            if let Some(prev) = self.bindings.get(&name.name) {
                let (l, _) = self.lines.line_col(self.src, prev.span.start);
                let d = Diag::error(
                    "duplicate-binding",
                    name.span,
                    format!("`{}` is already defined (line {l})", name.name),
                )
                .label("defined again here")
                .also(prev.span, "first defined here")
                .help("give each model, data source, objective, evaluator and let a distinct name");
                self.err(d);
                continue;
            }
            self.bindings.insert(
                name.name.clone(),
                Binding {
                    kind,
                    span: name.span,
                    ready: false,
                    used: false,
                },
            );
        }
    }

    /// Whether this statement is the one that defined `name` (duplicates are
    /// skipped after their error).
    pub(super) fn is_first_def(&self, name: &ast::Ident) -> bool {
        self.bindings
            .get(&name.name)
            .is_some_and(|b| b.span == name.span)
    }

    /// The kind of binding `name` names, if any.
    pub(crate) fn binding_kind(&self, name: &str) -> Option<BindKind> {
        self.bindings.get(name).map(|b| b.kind)
    }

    pub(super) fn mark_ready(&mut self, name: &ast::Ident) {
        if let Some(b) = self.bindings.get_mut(&name.name) {
            b.ready = true;
        }
    }

    /// Resolve a reference to a binding of `kind`; reports undefined names
    /// (with did-you-mean), wrong kinds and uses before definition.
    pub(crate) fn resolve(&mut self, id: &ast::Ident, kind: BindKind) -> Option<String> {
        match self.bindings.get_mut(&id.name) {
            Some(b) if b.kind == kind && b.ready => {
                b.used = true;
                Some(id.name.clone())
            }
            Some(b) if b.kind == kind => {
                b.used = true;
                let (l, _) = self.lines.line_col(self.src, b.span.start);
                let d = Diag::error(
                    "use-before-definition",
                    id.span,
                    format!("`{}` is used before its definition (line {l})", id.name),
                )
                .help("move the definition above its first use");
                self.err(d);
                None
            }
            Some(b) => {
                let other = b.kind.noun();
                let d = Diag::error(
                    "wrong-kind",
                    id.span,
                    format!("`{}` is {other}, not {}", id.name, kind.noun()),
                )
                .help(format!("name {} here", kind.noun()));
                self.err(d);
                None
            }
            None => {
                let candidates: Vec<&str> = self
                    .bindings
                    .iter()
                    .filter(|(_, b)| b.kind == kind)
                    .map(|(n, _)| n.as_str())
                    .collect();
                let help = match crate::registry::did_you_mean(&id.name, candidates.iter().copied())
                {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if candidates.is_empty() => {
                        format!("define {} first", kind.noun())
                    }
                    None => {
                        let mut c = candidates.clone();
                        c.sort();
                        format!("defined: {}", c.join(", "))
                    }
                };
                let noun = kind
                    .noun()
                    .trim_start_matches("a ")
                    .trim_start_matches("an ");
                let d = Diag::error(
                    "undefined",
                    id.span,
                    format!("undefined {noun} `{}`", id.name),
                )
                .help(help);
                self.err(d);
                None
            }
        }
    }

    pub(super) fn warn_unused(&mut self) {
        let mut unused: Vec<(Span, String, BindKind)> = self
            .bindings
            .iter()
            .filter(|(_, b)| !b.used && b.ready)
            .filter(|(_, b)| {
                matches!(
                    b.kind,
                    BindKind::Let | BindKind::Data | BindKind::Objective | BindKind::Evaluator
                )
            })
            .map(|(n, b)| (b.span, n.clone(), b.kind))
            .collect();
        // A let read by a string that was not interpolated (because of an
        // error nearby) still counts as used.
        let referenced = lets::referenced_names(self.src);
        unused.retain(|(_, n, k)| *k != BindKind::Let || !referenced.contains(n.as_str()));
        // A mined source is a result of its own: the run writes it.
        unused.retain(|(_, n, k)| {
            *k != BindKind::Data || !self.out.data_source(n).is_some_and(|d| d.is_recorded())
        });
        unused.sort_by_key(|u| u.0.start);
        for (span, name, kind) in unused {
            let (msg, help) = match kind {
                BindKind::Let => (
                    format!("`{name}` is never used"),
                    "use it as a value or as `${NAME}` in a string, or remove it",
                ),
                BindKind::Data => (
                    format!("data source `{name}` is never used"),
                    "use it in an objective or evaluator, or remove it",
                ),
                BindKind::Objective => (
                    format!("objective `{name}` is not trained in any stage"),
                    "list it in a train block's `objectives:`, or remove it",
                ),
                _ => (
                    format!("evaluator `{name}` is never run"),
                    "use it in `evaluate:`, `expect` or `save ... best by`, or remove it",
                ),
            };
            self.diags
                .push(Diag::warning("unused", span, msg).help(help));
        }
    }
}
