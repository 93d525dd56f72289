//! Evaluators made of evaluators (Sequential): each one named must be
//! declared before and evaluate the same model; the checked call of each
//! replaces its name in the arguments (the runtime builds them from it,
//! the plan finds their data and teachers in it), and the metrics are
//! the combined score followed by every metric of every part, prefixed by
//! the part's name (`dev_spearman_cosine`).

use super::args::{to_args, BoundArgs};
use super::Checker;
use crate::check::types::Evaluator;
use crate::diag::Diag;
use crate::registry::{ArgType, ArgValue, CallValue, Component};
use crate::syntax::ast;

/// The metric a sequence adds before those of its parts.
pub const SEQUENCE_SCORE: &str = "sequential_score";

impl Checker<'_> {
    pub(crate) fn check_sequence(
        &mut self,
        name: &ast::Ident,
        comp: &'static Component,
        args: &mut BoundArgs,
        model: String,
    ) -> Option<Evaluator> {
        let mut metrics = vec![SEQUENCE_SCORE.to_string()];
        let mut ok = true;
        for spec in comp.args.iter().filter(|a| a.ty == ArgType::Evaluators) {
            let Some((ArgValue::List(names), span)) = args.get(spec.name).cloned() else {
                continue;
            };
            let mut calls = Vec::new();
            for n in names.iter().filter_map(ArgValue::as_str) {
                let Some(part) = self.out.evaluator(n).cloned() else {
                    // Reported where it was declared.
                    ok = false;
                    continue;
                };
                if part.model != model {
                    self.err(
                        Diag::error(
                            "model-mismatch",
                            span,
                            format!(
                                "evaluator `{n}` evaluates `{}`, but this one evaluates `{model}`",
                                part.model
                            ),
                        )
                        .help("a sequence evaluates one model: list evaluators of that model"),
                    );
                    ok = false;
                }
                if calls.iter().any(|c: &ArgValue| matches!(c, ArgValue::Call(c) if c.binding.as_deref() == Some(n))) {
                    self.err(
                        Diag::error("duplicate", span, format!("evaluator `{n}` is listed twice"))
                            .help("list each evaluator once"),
                    );
                    ok = false;
                }
                metrics.extend(part.metrics.iter().map(|m| format!("{n}_{m}")));
                calls.push(ArgValue::Call(CallValue {
                    name: part.kind.clone(),
                    args: part.args.clone(),
                    binding: Some(n.to_string()),
                }));
            }
            if calls.is_empty() && ok {
                self.err(
                    Diag::error(
                        "empty-list",
                        span,
                        format!("`{}` needs at least one evaluator", comp.name),
                    )
                    .help("e.g. `Sequential(m, [dev, test])`"),
                );
                ok = false;
            }
            args.insert(spec.name.to_string(), (ArgValue::List(calls), span));
        }
        ok.then(|| Evaluator {
            name: name.name.clone(),
            span: name.span,
            kind: comp.name.to_string(),
            model,
            data: String::new(),
            args: to_args(comp, args),
            metrics,
        })
    }
}
